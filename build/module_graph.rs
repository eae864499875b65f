// The module graph of this crate, read from its sources, and the files each built-in stage kind's
// code identity covers. Shared through `include!` by build.rs (which hashes the files) and by the
// tests in src/fingerprint/code_identity.rs (which re-scan the sources and check the generated
// lists), so that both read the sources the same way. Plain `//` comments: an included file may
// not carry inner doc comments.
//
// The scan is a token scan, not a Rust parser. Comments, string and char literals are dropped
// first (a doc comment or a message naming `crate::report` is not a use of it). Then, per module
// (a file, or an inline `mod name { … }` inside one), it records:
//
// - every path it names: `use` trees (grouped `use crate::{a, b::{c, d}}`, `self`, globs, `as`
//   renames) and paths in code (`crate::stats::auc::foo(`, `super::x`, `self::x`, and relative
//   paths such as `config::Foo` that start with a child module or with a name imported by `use`);
//   string literals inside attributes that read as a path (`#[serde(with = "crate::x")]`);
// - its child modules (`mod x;`, `mod x { … }`);
// - the files it embeds (`include_str!`, `include_bytes!`);
// - the types and traits it defines, the names in the headers of its `impl` blocks, and the
//   macros it defines and invokes.
//
// Items under `#[cfg(test)]` are skipped: they are not compiled into the binary, so they cannot
// change what it computes. `#[path = …]` on a module, or an `include!` of a source file, stops the
// build: the scan does not follow them, and guessing would be unsafe.
//
// A kind's files are those of every module reachable from its roots, where a module reaches:
//
// 1. the module that holds each item it names: `crate::a::b::Item` reaches `a::b` (src/a/b.rs or
//    src/a/b/mod.rs), `crate::a` reaches `a` (src/a/mod.rs or src/a.rs); a name that module
//    re-exports (`pub use`, globs included) is followed on to where it is defined, and the
//    module that re-exports it is included too. Modules a path only passes through
//    (`a` in `crate::a::b::Item`) are not: they contribute a `mod b;` line, not code;
// 2. its child modules (`mod x;`), except from the crate root, which declares every module;
// 3. the files it embeds, and every module that defines a macro it invokes;
// 4. any module with an `impl` block whose trait and self type name only types defined in
//    reached modules (and at least one): methods and trait impls are found by type, not by path,
//    so a reached type's impl elsewhere in the crate counts (`impl Display for Reached` counts;
//    `impl From<Unreached> for Reached` does not: reached code never holds an `Unreached`);
// 5. any module with a `#[global_allocator]`, `#[no_mangle]`, `#[export_name]`,
//    `#[link_section]`, `#[used]` or `#[panic_handler]` item reaches every kind.
//
// One exception keeps the kinds apart: a dispatch module (`DISPATCH_MODULES`: `stages`, which
// matches on the running task's `StageKind`) reaches the code of a match arm
// `StageKind::X => …` only for kind `x`, and its `mod x;` line for a kind's own stage module
// only for that kind. Anything else it names counts for every kind.
//
// Whenever the scan is unsure it includes more: a path whose first segment is a top-level module
// of the crate counts as that module, impl-header names are matched by name, and a glob import
// makes every unresolved name of the importing module count as coming from the glob's source.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// A module's path from the crate root: `[]` is the root, `["stages", "config"]` is
/// `crate::stages::config`.
pub type ModPath = Vec<String>;

// ---------------------------------------------------------------------------------------------
// Project configuration: the built-in kinds and what each one's identity starts from.

/// The built-in stage kinds, named as `crate::kinds::StageKind::name` names them.
pub const KINDS: &[&str] = &[
    "command", "synth", "cohort", "evaluate", "pretrain", "train", "predict", "report",
];

/// Modules every task runs through, whatever its kind: the worker (`orchestrate worker` calls
/// `crate::worker::run`, which reads the task, builds the thread pool, runs the stage and hashes
/// its outputs), the task and result files, the stage dispatcher and the typed-config helpers.
/// Each kind also starts from its own stage module, `stages::<kind>`.
///
/// `src/main.rs` hands `orchestrate worker --task FILE` to `crate::worker` before the CLI parses
/// anything, so no CLI code runs in a worker; main.rs itself is in `BINARY_IDENTITY`.
pub const COMMON_ROOTS: &[&str] = &["worker", "task", "stages", "stages::config"];

/// Further roots of one kind: a command's text is rendered by `dsl::template` at plan time.
pub const EXTRA_ROOTS: &[(&str, &[&str])] = &[("command", &["dsl::template"])];

/// Modules that branch on the running task's kind: code under `StageKind::X =>` counts for `x`.
pub const DISPATCH_MODULES: &[&str] = &["stages"];

/// The enum whose variants guard match arms in a dispatch module.
pub const GUARD_ENUM: &str = "StageKind";

/// Files hashed for every kind: the pinned crates (Cargo.lock) and the dependencies' features and
/// the build profiles (Cargo.toml), which change the compiled code without changing Cargo.lock.
pub const COMMON_FILES: &[&str] = &["Cargo.lock", "Cargo.toml"];

/// Folders hashed whole for one kind, besides its module graph: the report's templates (the
/// embedded ones are reached through `include_str!` anyway; this also covers any other file).
pub const EXTRA_DIRS: &[(&str, &[&str])] = &[("report", &["templates"])];

/// Attributes that make an item global to the binary (see rule 5 above).
const GLOBAL_ATTRS: &[&str] = &[
    "global_allocator",
    "no_mangle",
    "export_name",
    "link_section",
    "used",
    "panic_handler",
];

// ---------------------------------------------------------------------------------------------
// Tokens.

/// A token of Rust source, as much as the scan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    /// A string literal's text, escapes left as written.
    Str(String),
    /// `::`
    PathSep,
    Punct(char),
    Lifetime,
    Char,
    Num,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// The end (exclusive) of the quoted string starting at `s[i] == '"'`, and its text.
fn quoted(s: &[char], i: usize) -> (String, usize) {
    let mut j = i + 1;
    while j < s.len() && s[j] != '"' {
        j += if s[j] == '\\' { 2 } else { 1 };
    }
    let end = j.min(s.len());
    (s[i + 1..end].iter().collect(), (j + 1).min(s.len()))
}

/// Splits `src` into tokens, dropping whitespace, comments (nested block comments included) and
/// the content of char literals; string literals keep their text (for `include_str!` paths and
/// attribute strings) but are never read as code. `$` is dropped, so `$crate::x` reads as
/// `crate::x`.
pub fn tokenize(src: &str) -> Vec<Tok> {
    let s: Vec<char> = src.chars().collect();
    let n = s.len();
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = s[i];
        let next = s.get(i + 1).copied();
        if c.is_whitespace() || c == '$' {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < n && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 1;
            i += 2;
            while i < n && depth > 0 {
                if s[i] == '/' && s.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if s[i] == '*' && s.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
        } else if is_ident_start(c) {
            let start = i;
            while i < n && is_ident_char(s[i]) {
                i += 1;
            }
            let word: String = s[start..i].iter().collect();
            let at = s.get(i).copied();
            if matches!(word.as_str(), "r" | "br" | "cr") && (at == Some('"') || at == Some('#')) {
                let mut j = i;
                while j < n && s[j] == '#' {
                    j += 1;
                }
                let hashes = j - i;
                if j < n && s[j] == '"' {
                    // A raw string: r"…", r#"…"#, br"…", cr"…".
                    let body = j + 1;
                    let mut k = body;
                    while k < n
                        && !(s[k] == '"' && (1..=hashes).all(|h| s.get(k + h) == Some(&'#')))
                    {
                        k += 1;
                    }
                    out.push(Tok::Str(s[body..k.min(n)].iter().collect()));
                    i = (k + 1 + hashes).min(n);
                    continue;
                }
                if word == "r" && hashes == 1 && j < n && is_ident_start(s[j]) {
                    // A raw identifier: r#type.
                    let st = j;
                    let mut k = j;
                    while k < n && is_ident_char(s[k]) {
                        k += 1;
                    }
                    out.push(Tok::Ident(s[st..k].iter().collect()));
                    i = k;
                    continue;
                }
            }
            if matches!(word.as_str(), "b" | "c") && at == Some('"') {
                let (text, end) = quoted(&s, i);
                out.push(Tok::Str(text));
                i = end;
                continue;
            }
            if word == "b" && at == Some('\'') {
                i = char_literal_end(&s, i).unwrap_or(i + 1);
                out.push(Tok::Char);
                continue;
            }
            out.push(Tok::Ident(word));
        } else if c.is_ascii_digit() {
            while i < n
                && (is_ident_char(s[i])
                    || (s[i] == '.' && s.get(i + 1).is_some_and(|d| d.is_ascii_digit())))
            {
                i += 1;
            }
            out.push(Tok::Num);
        } else if c == '"' {
            let (text, end) = quoted(&s, i);
            out.push(Tok::Str(text));
            i = end;
        } else if c == '\'' {
            match char_literal_end(&s, i) {
                Some(end) => {
                    out.push(Tok::Char);
                    i = end;
                }
                None => {
                    // A lifetime or a loop label: 'a, 'static.
                    i += 1;
                    while i < n && is_ident_char(s[i]) {
                        i += 1;
                    }
                    out.push(Tok::Lifetime);
                }
            }
        } else if c == ':' && next == Some(':') {
            out.push(Tok::PathSep);
            i += 2;
        } else {
            out.push(Tok::Punct(c));
            i += 1;
        }
    }
    out
}

/// If a char literal starts at `s[i] == '\''`, the index after it.
fn char_literal_end(s: &[char], i: usize) -> Option<usize> {
    match (s.get(i + 1), s.get(i + 2)) {
        (Some('\\'), _) => {
            let mut j = i + 3;
            while j < s.len() && s[j] != '\'' {
                j += 1;
            }
            Some((j + 1).min(s.len()))
        }
        (Some(_), Some('\'')) => Some(i + 3),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// One file's scan.

/// A path named in a module's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRef {
    pub segs: Vec<String>,
    /// The `StageKind` variants of the match arm it sits in, if any.
    pub guard: Option<Vec<String>>,
    /// A string literal in an attribute; a single segment then only counts as a child module or
    /// an imported name, never as a top-level module (`rename = "report"` is not `crate::report`).
    pub from_attr_string: bool,
}

/// One leaf of a `use` tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseItem {
    /// The full path, `self` leaves folded into their parent (`use a::{self}` → `a`).
    pub segs: Vec<String>,
    /// The name it brings into scope; `None` for `as _` and for globs.
    pub alias: Option<String>,
    pub glob: bool,
    pub guard: Option<Vec<String>>,
}

/// What a module's own code says (its inline child modules are modules of their own).
#[derive(Debug, Clone, Default)]
pub struct Module {
    pub path: ModPath,
    /// The file it lives in, workspace-relative with `/`.
    pub file: String,
    /// Child modules, declared `mod x;` or inline (not `#[cfg(test)]`).
    pub children: BTreeSet<String>,
    /// The children declared `mod x;`, whose files the loader finds.
    pub file_children: Vec<String>,
    pub uses: Vec<UseItem>,
    pub refs: Vec<PathRef>,
    /// Workspace-relative files embedded with `include_str!` / `include_bytes!`.
    pub includes: Vec<String>,
    /// Types, traits and aliases it defines.
    pub defs: BTreeSet<String>,
    /// The names in the trait and self type of each `impl` block (its generic parameters left out).
    pub impls: Vec<Vec<String>>,
    pub macros_defined: BTreeSet<String>,
    pub macros_invoked: BTreeSet<String>,
    /// Holds an item with an attribute of `GLOBAL_ATTRS`.
    pub global: bool,
}

/// Index of the bracket closing the one at `toks[open]`, or the end.
fn matching_close(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0i32;
    for (k, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if depth == 0 {
                    return k;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// The index after the item starting at `i` (after its attributes): its `;` or its `{ … }`; for
/// a field, an argument or a match arm, its `,` or the bracket that closes the list (not consumed),
/// so that an attribute on one field never hides the next.
fn skip_item(toks: &[Tok], mut i: usize) -> usize {
    while i < toks.len() && toks[i] == Tok::Punct('#') {
        let open = if toks.get(i + 1) == Some(&Tok::Punct('!')) {
            i + 2
        } else {
            i + 1
        };
        if toks.get(open) != Some(&Tok::Punct('[')) {
            break;
        }
        i = matching_close(toks, open) + 1;
    }
    while i < toks.len() {
        match toks[i] {
            Tok::Punct(';' | ',') => return i + 1,
            Tok::Punct('{') => return matching_close(toks, i) + 1,
            Tok::Punct('(' | '[') => i = matching_close(toks, i) + 1,
            Tok::Punct(')' | ']' | '}') => return i,
            _ => i += 1,
        }
    }
    i
}

fn ident(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// Parses the `use` tree starting at `toks[i]`; returns the index of the closing `;`.
fn parse_use_tree(
    toks: &[Tok],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, Option<String>, bool)>,
) -> Option<usize> {
    let mut path = prefix.to_vec();
    if toks.get(i) == Some(&Tok::PathSep) {
        // `use ::name`: always an external crate.
        path.push("::".to_string());
        i += 1;
    }
    loop {
        match toks.get(i)? {
            Tok::Ident(name) if name != "as" => {
                path.push(name.clone());
                i += 1;
                if toks.get(i) == Some(&Tok::PathSep) {
                    i += 1;
                    continue;
                }
                let self_leaf = name == "self";
                if self_leaf {
                    path.pop();
                }
                let mut alias = if self_leaf {
                    path.last().cloned()
                } else {
                    Some(name.clone())
                };
                if ident(toks.get(i)) == Some("as") {
                    alias = match toks.get(i + 1)? {
                        Tok::Ident(a) if a == "_" => None,
                        Tok::Ident(a) => Some(a.clone()),
                        _ => return None,
                    };
                    i += 2;
                }
                out.push((path, alias, false));
                return Some(i);
            }
            Tok::Punct('*') => {
                out.push((path, None, true));
                return Some(i + 1);
            }
            Tok::Punct('{') => {
                i += 1;
                while toks.get(i)? != &Tok::Punct('}') {
                    i = parse_use_tree(toks, i, &path, out)?;
                    if toks.get(i) == Some(&Tok::Punct(',')) {
                        i += 1;
                    }
                }
                return Some(i + 1);
            }
            _ => return None,
        }
    }
}

/// `text` as a path (`a::b::c`), if it reads as one.
fn path_in_string(text: &str) -> Option<Vec<String>> {
    let segs: Vec<String> = text.split("::").map(str::to_string).collect();
    let ok = segs.iter().all(|s| {
        let mut cs = s.chars();
        cs.next().is_some_and(is_ident_start) && cs.all(is_ident_char)
    });
    ok.then_some(segs)
}

/// Lexical `..` and `.` folding of a `/`-separated relative path.
fn normalize(path: &str) -> Result<String, String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts
                    .pop()
                    .ok_or_else(|| format!("`{path}` leaves the workspace"))?;
            }
            _ => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The directory part of a `/`-separated path (`src/a/b.rs` → `src/a`).
fn dir_of(file: &str) -> &str {
    file.rfind('/').map_or("", |k| &file[..k])
}

enum GuardEnd {
    /// Ends when the bracket depth falls back to this.
    Block(i32),
    /// Ends at a `,` at this depth, or when the depth falls below it.
    Expr(i32),
}

/// Scans one file that holds module `module`. Returns that module and its inline descendants.
pub fn scan_source(
    src: &str,
    file: &str,
    module: &[String],
    guard_enum: &str,
) -> Result<Vec<Module>, String> {
    let toks = tokenize(src);
    let mut mods: BTreeMap<ModPath, Module> = BTreeMap::new();
    mods.insert(
        module.to_vec(),
        Module {
            path: module.to_vec(),
            file: file.to_string(),
            ..Module::default()
        },
    );
    // Open inline modules: (name, bracket depth outside it).
    let mut inline: Vec<(String, i32)> = Vec::new();
    let mut guards: Vec<(Vec<String>, GuardEnd)> = Vec::new();
    let mut depth = 0i32;
    let mut attr_until = 0usize;
    let mut i = 0usize;
    while i < toks.len() {
        let mut scope = module.to_vec();
        scope.extend(inline.iter().map(|(n, _)| n.clone()));
        let guard = guards.last().map(|(g, _)| g.clone());
        let prev = if i > 0 { Some(&toks[i - 1]) } else { None };
        let m = mods.get_mut(&scope).expect("the open module is recorded");
        match &toks[i] {
            Tok::Punct('#') => {
                let inner = toks.get(i + 1) == Some(&Tok::Punct('!'));
                let open = if inner { i + 2 } else { i + 1 };
                if toks.get(open) == Some(&Tok::Punct('[')) {
                    let close = matching_close(&toks, open);
                    let attr = &toks[open + 1..close.min(toks.len())];
                    let cfg_test = attr
                        == [
                            Tok::Ident("cfg".into()),
                            Tok::Punct('('),
                            Tok::Ident("test".into()),
                            Tok::Punct(')'),
                        ];
                    if cfg_test && !inner {
                        i = skip_item(&toks, close + 1);
                        continue;
                    }
                    match ident(attr.first()) {
                        Some("path") => {
                            return Err(format!(
                                "{file}: `#[path]` is not supported by the module-graph scan (build/module_graph.rs)"
                            ));
                        }
                        Some(a) if GLOBAL_ATTRS.contains(&a) => m.global = true,
                        Some("unsafe")
                            if ident(attr.get(2)).is_some_and(|a| GLOBAL_ATTRS.contains(&a)) =>
                        {
                            m.global = true;
                        }
                        _ => {}
                    }
                    attr_until = close;
                }
                i += 1;
            }
            Tok::Punct('(' | '[' | '{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct(')' | ']' | '}') => {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                while let Some((_, end)) = guards.last() {
                    let done = match end {
                        GuardEnd::Block(d) => *d == depth,
                        GuardEnd::Expr(d) => depth < *d,
                    };
                    if !done {
                        break;
                    }
                    guards.pop();
                }
                i += 1;
            }
            Tok::Punct(',') => {
                while let Some((_, GuardEnd::Expr(d))) = guards.last() {
                    if *d != depth {
                        break;
                    }
                    guards.pop();
                }
                i += 1;
            }
            Tok::Str(text) => {
                if i < attr_until
                    && let Some(segs) = path_in_string(text)
                {
                    m.refs.push(PathRef {
                        segs,
                        guard,
                        from_attr_string: true,
                    });
                }
                i += 1;
            }
            Tok::Ident(word) => {
                let word = word.as_str();
                let after_sep = prev == Some(&Tok::PathSep);
                let name1 = ident(toks.get(i + 1)).map(str::to_string);
                if word == "mod"
                    && !after_sep
                    && let Some(name) = name1.clone()
                {
                    match toks.get(i + 2) {
                        Some(Tok::Punct(';')) => {
                            m.children.insert(name.clone());
                            m.file_children.push(name);
                            i += 3;
                            continue;
                        }
                        Some(Tok::Punct('{')) => {
                            m.children.insert(name.clone());
                            let mut child = scope.clone();
                            child.push(name.clone());
                            mods.insert(
                                child.clone(),
                                Module {
                                    path: child,
                                    file: file.to_string(),
                                    ..Module::default()
                                },
                            );
                            inline.push((name, depth));
                            depth += 1;
                            i += 3;
                            continue;
                        }
                        _ => {}
                    }
                }
                if word == "use" && !after_sep {
                    let mut leaves = Vec::new();
                    if let Some(end) = parse_use_tree(&toks, i + 1, &[], &mut leaves)
                        && toks.get(end) == Some(&Tok::Punct(';'))
                    {
                        for (segs, alias, glob) in leaves {
                            m.uses.push(UseItem {
                                segs,
                                alias,
                                glob,
                                guard: guard.clone(),
                            });
                        }
                        i = end + 1;
                        continue;
                    }
                    // Not a tree the parser knows: its paths are still read below.
                    i += 1;
                    continue;
                }
                if matches!(word, "include_str" | "include_bytes" | "include")
                    && toks.get(i + 1) == Some(&Tok::Punct('!'))
                    && toks.get(i + 2) == Some(&Tok::Punct('('))
                {
                    let close = matching_close(&toks, i + 2);
                    let args = &toks[i + 3..close.min(toks.len())];
                    if let Some(path) = include_path(args, file, word)? {
                        m.includes.push(path);
                    }
                    i = close + 1;
                    continue;
                }
                if word == "macro_rules"
                    && toks.get(i + 1) == Some(&Tok::Punct('!'))
                    && let Some(name) = ident(toks.get(i + 2))
                {
                    m.macros_defined.insert(name.to_string());
                    i += 3;
                    continue;
                }
                if toks.get(i + 1) == Some(&Tok::Punct('!'))
                    && toks.get(i + 2) != Some(&Tok::Punct('='))
                {
                    m.macros_invoked.insert(word.to_string());
                }
                if matches!(word, "struct" | "enum" | "union" | "trait" | "type")
                    && !after_sep
                    && let Some(name) = name1.clone()
                {
                    m.defs.insert(name);
                }
                if word == "impl" && impl_position(prev) {
                    m.impls.push(impl_header(&toks, i + 1));
                }
                if word == guard_enum
                    && !after_sep
                    && matches!(prev, Some(Tok::Punct('{' | ',' | '}')))
                    && let Some((variants, after)) = match_arm(&toks, i, guard_enum)
                {
                    let end = if toks.get(after) == Some(&Tok::Punct('{')) {
                        GuardEnd::Block(depth)
                    } else {
                        GuardEnd::Expr(depth)
                    };
                    guards.push((variants, end));
                    i = after;
                    continue;
                }
                if !after_sep && toks.get(i + 1) == Some(&Tok::PathSep) {
                    let mut segs = vec![word.to_string()];
                    let mut j = i + 1;
                    while toks.get(j) == Some(&Tok::PathSep)
                        && let Some(s) = ident(toks.get(j + 1))
                    {
                        segs.push(s.to_string());
                        j += 2;
                    }
                    m.refs.push(PathRef {
                        segs,
                        guard,
                        from_attr_string: false,
                    });
                    i = j;
                    continue;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(mods.into_values().collect())
}

/// Whether an `impl` after `prev` starts an item (not `-> impl Trait` or `x: impl Trait`).
fn impl_position(prev: Option<&Tok>) -> bool {
    match prev {
        None => true,
        Some(Tok::Punct('}' | ';' | '{' | ']')) => true,
        Some(Tok::Ident(w)) => w == "unsafe" || w == "default",
        _ => false,
    }
}

/// The names in an impl's trait and self type (`impl<B: Bound> Trait<X> for Type<B> where …`
/// → `Trait`, `X`, `Type`), read from `toks[i]` (just after `impl`).
fn impl_header(toks: &[Tok], mut i: usize) -> Vec<String> {
    let mut params = BTreeSet::new();
    if toks.get(i) == Some(&Tok::Punct('<')) {
        let mut angle = 0;
        while i < toks.len() {
            match &toks[i] {
                Tok::Punct('-') if toks.get(i + 1) == Some(&Tok::Punct('>')) => i += 1,
                Tok::Punct('<') => angle += 1,
                Tok::Punct('>') => {
                    angle -= 1;
                    if angle == 0 {
                        i += 1;
                        break;
                    }
                }
                // A parameter's name follows `<`, `,` or `const` at the outer level.
                Tok::Ident(p)
                    if angle == 1
                        && p != "const"
                        && (matches!(toks[i - 1], Tok::Punct('<' | ','))
                            || ident(toks.get(i - 1)) == Some("const")) =>
                {
                    params.insert(p.clone());
                }
                _ => {}
            }
            i += 1;
        }
    }
    let mut names = Vec::new();
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct('{' | ';') => break,
            Tok::Ident(w) if w == "where" => break,
            // A path's last segment names the type; the ones before it name modules.
            Tok::Ident(w)
                if !params.contains(w)
                    && toks.get(i + 1) != Some(&Tok::PathSep)
                    && !matches!(
                        w.as_str(),
                        "for" | "dyn" | "mut" | "const" | "crate" | "super" | "self" | "unsafe"
                    ) =>
            {
                names.push(w.clone());
            }
            _ => {}
        }
        i += 1;
    }
    names
}

/// `Enum::A | Enum::B =>` at `toks[i]`: the variants and the index after `=>`.
fn match_arm(toks: &[Tok], mut i: usize, guard_enum: &str) -> Option<(Vec<String>, usize)> {
    let mut variants = Vec::new();
    loop {
        if ident(toks.get(i)) != Some(guard_enum) || toks.get(i + 1) != Some(&Tok::PathSep) {
            return None;
        }
        variants.push(ident(toks.get(i + 2))?.to_string());
        i += 3;
        match (toks.get(i), toks.get(i + 1)) {
            (Some(Tok::Punct('=')), Some(Tok::Punct('>'))) => return Some((variants, i + 2)),
            (Some(Tok::Punct('|')), _) => i += 1,
            _ => return None,
        }
    }
}

/// The workspace-relative file an `include_str!(…)` names (`None` for a generated file under
/// `OUT_DIR`).
fn include_path(args: &[Tok], file: &str, mac: &str) -> Result<Option<String>, String> {
    let mut lits = Vec::new();
    let mut env_vars = Vec::new();
    let mut k = 0;
    while k < args.len() {
        match &args[k] {
            Tok::Ident(w) if w == "env" => {
                if let Some(Tok::Str(v)) = args.get(k + 3) {
                    env_vars.push(v.clone());
                }
                k += 4;
                continue;
            }
            Tok::Ident(w) if w != "concat" => {
                return Err(format!(
                    "{file}: `{mac}!` with a computed path is not supported by build/module_graph.rs"
                ));
            }
            Tok::Str(s) => lits.push(s.clone()),
            _ => {}
        }
        k += 1;
    }
    let text = lits.concat();
    let path = match env_vars.as_slice() {
        [v] if v == "OUT_DIR" => return Ok(None),
        [v] if v == "CARGO_MANIFEST_DIR" => normalize(&text)?,
        [] => normalize(&format!("{}/{}", dir_of(file), text))?,
        _ => {
            return Err(format!(
                "{file}: `{mac}!` of {env_vars:?} is not supported by build/module_graph.rs"
            ));
        }
    };
    if mac == "include" {
        return Err(format!(
            "{file}: `include!(\"{path}\")` of Rust source is not followed by build/module_graph.rs"
        ));
    }
    Ok(Some(path))
}

// ---------------------------------------------------------------------------------------------
// The crate.

/// How the names a module imports resolve.
#[derive(Debug, Clone, Default)]
struct Scope {
    /// Name → the crate path it stands for.
    aliases: BTreeMap<String, Vec<String>>,
    /// Names imported from outside the crate (`use serde::Serialize`).
    external: BTreeSet<String>,
    /// Modules glob-imported (`use super::view::*`).
    globs: Vec<Vec<String>>,
}

/// Every module of the library crate, from src/lib.rs down its `mod` declarations.
#[derive(Debug, Clone)]
pub struct Crate {
    pub modules: BTreeMap<ModPath, Module>,
    scopes: BTreeMap<ModPath, Scope>,
}

/// An edge of the graph, and why it is there (for messages).
#[derive(Debug, Clone)]
pub struct Edge {
    pub to: ModPath,
    pub why: String,
}

/// Reads a `/`-separated workspace-relative file.
fn read(root: &Path, rel: &str) -> Result<String, String> {
    fs::read_to_string(root.join(rel)).map_err(|e| format!("cannot read `{rel}`: {e}"))
}

/// `a::b` for messages (`crate` for the root).
pub fn show(path: &[String]) -> String {
    if path.is_empty() {
        "crate".to_string()
    } else {
        path.join("::")
    }
}

/// `"a::b"` → `["a", "b"]`.
pub fn mod_path(text: &str) -> ModPath {
    text.split("::").map(str::to_string).collect()
}

impl Crate {
    /// Loads the library crate rooted at `root/src/lib.rs`.
    pub fn load(root: &Path) -> Result<Crate, String> {
        let mut modules = BTreeMap::new();
        let mut queue = vec![(Vec::<String>::new(), "src/lib.rs".to_string())];
        while let Some((path, file)) = queue.pop() {
            let src = read(root, &file)?;
            for m in scan_source(&src, &file, &path, GUARD_ENUM)? {
                // The directory of this module's out-of-line children.
                let base = if file.ends_with("/mod.rs") || file == "src/lib.rs" {
                    dir_of(&file).to_string()
                } else {
                    file.trim_end_matches(".rs").to_string()
                };
                let inline_part = m.path[path.len()..].join("/");
                let base = if inline_part.is_empty() {
                    base
                } else {
                    format!("{base}/{inline_part}")
                };
                for child in &m.file_children {
                    let flat = format!("{base}/{child}.rs");
                    let nested = format!("{base}/{child}/mod.rs");
                    let child_file = match (
                        root.join(&flat).is_file(),
                        root.join(&nested).is_file(),
                    ) {
                        (true, false) => flat,
                        (false, true) => nested,
                        (true, true) => {
                            return Err(format!("both `{flat}` and `{nested}` exist"));
                        }
                        (false, false) => {
                            return Err(format!(
                                "`mod {child};` in `{file}`: neither `{flat}` nor `{nested}` exists"
                            ));
                        }
                    };
                    let mut child_path = m.path.clone();
                    child_path.push(child.clone());
                    queue.push((child_path, child_file));
                }
                modules.insert(m.path.clone(), m);
            }
        }
        let mut krate = Crate {
            modules,
            scopes: BTreeMap::new(),
        };
        krate.resolve_scopes();
        Ok(krate)
    }

    fn has_child(&self, module: &[String], name: &str) -> bool {
        self.modules
            .get(module)
            .is_some_and(|m| m.children.contains(name))
    }

    /// Computes what each module's imports stand for; repeated because an import may start with
    /// a name another import brought in.
    fn resolve_scopes(&mut self) {
        for _ in 0..4 {
            let mut scopes = BTreeMap::new();
            for (path, m) in &self.modules {
                let mut scope = Scope::default();
                for u in &m.uses {
                    match self.absolute(path, &u.segs, false) {
                        Some(abs) if u.glob => scope.globs.push(abs),
                        Some(abs) => {
                            if let Some(a) = &u.alias {
                                scope.aliases.insert(a.clone(), abs);
                            }
                        }
                        None => {
                            if let Some(a) = &u.alias {
                                scope.external.insert(a.clone());
                            }
                        }
                    }
                }
                scopes.insert(path.clone(), scope);
            }
            self.scopes = scopes;
        }
    }

    /// The crate path that `segs`, named in `module`, stands for; `None` for a path outside the
    /// crate (or `Self::…`, or a local name).
    fn absolute(
        &self,
        module: &[String],
        segs: &[String],
        attr_string: bool,
    ) -> Option<Vec<String>> {
        let first = segs.first()?.as_str();
        match first {
            "crate" => return Some(segs[1..].to_vec()),
            "self" | "super" => {
                let mut base = module.to_vec();
                let mut k = 0;
                if first == "self" {
                    k = 1;
                }
                while segs.get(k).map(String::as_str) == Some("super") {
                    base.pop()?;
                    k += 1;
                }
                base.extend(segs[k..].iter().cloned());
                return Some(base);
            }
            "Self" | "::" => return None,
            _ => {}
        }
        if self.has_child(module, first) {
            let mut p = module.to_vec();
            p.extend(segs.iter().cloned());
            return Some(p);
        }
        let scope = self.scopes.get(module);
        if let Some(target) = scope.and_then(|s| s.aliases.get(first)) {
            let mut p = target.clone();
            p.extend(segs[1..].iter().cloned());
            return Some(p);
        }
        if scope.is_some_and(|s| s.external.contains(first)) {
            return None;
        }
        for g in scope.map(|s| s.globs.as_slice()).unwrap_or_default() {
            if self.has_child(g, first) {
                let mut p = g.clone();
                p.extend(segs.iter().cloned());
                return Some(p);
            }
        }
        // Conservative: a bare top-level module name counts as that module.
        if (!attr_string || segs.len() > 1) && self.has_child(&[], first) {
            return Some(segs.to_vec());
        }
        None
    }

    /// The modules that the crate path `abs` reaches: the deepest module on it, and, where the
    /// rest of the path is a name that module re-exports, the re-exported item's module too.
    fn targets(&self, abs: &[String], hops: u32, out: &mut Vec<ModPath>) {
        let mut cur: ModPath = Vec::new();
        let mut k = 0;
        while k < abs.len() && self.has_child(&cur, &abs[k]) {
            cur.push(abs[k].clone());
            k += 1;
        }
        if !out.contains(&cur) {
            out.push(cur.clone());
        }
        if k == abs.len() || hops > 8 {
            return;
        }
        let Some(scope) = self.scopes.get(&cur) else {
            return;
        };
        if let Some(target) = scope.aliases.get(&abs[k]) {
            let mut p = target.clone();
            p.extend(abs[k + 1..].iter().cloned());
            self.targets(&p, hops + 1, out);
        }
        for g in &scope.globs {
            let mut p = g.clone();
            p.extend(abs[k..].iter().cloned());
            self.targets(&p, hops + 1, out);
        }
    }

    fn is_dispatch(module: &[String]) -> bool {
        DISPATCH_MODULES.iter().any(|d| mod_path(d) == module)
    }

    /// Whether code under `guard` in `module` runs for `kind`.
    fn guard_admits(module: &[String], guard: &Option<Vec<String>>, kind: &str) -> bool {
        match guard {
            Some(variants) if Self::is_dispatch(module) => {
                variants.iter().any(|v| v.eq_ignore_ascii_case(kind))
            }
            _ => true,
        }
    }

    /// The modules `module` reaches for `kind` by rules 1–3 (paths, children, macros).
    pub fn edges(&self, module: &[String], kind: &str) -> Vec<Edge> {
        let m = &self.modules[module];
        let mut out = Vec::new();
        let mut add = |targets: Vec<ModPath>, why: String| {
            for t in targets {
                if t != module {
                    out.push(Edge {
                        to: t,
                        why: why.clone(),
                    });
                }
            }
        };
        for u in &m.uses {
            if !Self::guard_admits(module, &u.guard, kind) {
                continue;
            }
            if let Some(abs) = self.absolute(module, &u.segs, false) {
                let mut t = Vec::new();
                self.targets(&abs, 0, &mut t);
                add(t, format!("use {}", u.segs.join("::")));
            }
        }
        for r in &m.refs {
            if !Self::guard_admits(module, &r.guard, kind) {
                continue;
            }
            if let Some(abs) = self.absolute(module, &r.segs, r.from_attr_string) {
                let mut t = Vec::new();
                self.targets(&abs, 0, &mut t);
                add(t, r.segs.join("::"));
            }
        }
        if !module.is_empty() {
            for c in &m.children {
                let other_kind = KINDS.contains(&c.as_str()) && c != kind;
                if Self::is_dispatch(module) && other_kind {
                    continue;
                }
                let mut p = module.to_vec();
                p.push(c.clone());
                add(vec![p], format!("mod {c}"));
            }
        }
        for mac in &m.macros_invoked {
            let definers: Vec<ModPath> = self
                .modules
                .values()
                .filter(|d| d.macros_defined.contains(mac))
                .map(|d| d.path.clone())
                .collect();
            add(definers, format!("{mac}!"));
        }
        out
    }

    /// Whether an impl block of `module` with header names `names` can be used by code that
    /// only reaches types in `reached_defs` (rule 4).
    pub fn impl_applies(
        &self,
        module: &[String],
        names: &[String],
        reached_defs: &BTreeSet<String>,
    ) -> bool {
        let m = &self.modules[module];
        let external = self.scopes.get(module).map(|s| &s.external);
        let crate_names: Vec<&String> = names
            .iter()
            .filter(|n| self.modules.values().any(|d| d.defs.contains(*n)))
            .filter(|n| !external.is_some_and(|e| e.contains(*n)))
            .collect();
        !crate_names.is_empty()
            && crate_names
                .iter()
                .all(|n| reached_defs.contains(*n) && !m.defs.contains(*n))
    }

    /// The roots of `kind`: its stage module, `COMMON_ROOTS`, its `EXTRA_ROOTS` and every
    /// module with a global item.
    pub fn roots(&self, kind: &str) -> Result<Vec<ModPath>, String> {
        let mut roots: Vec<ModPath> = vec![vec!["stages".to_string(), kind.to_string()]];
        roots.extend(COMMON_ROOTS.iter().map(|r| mod_path(r)));
        for (k, extra) in EXTRA_ROOTS {
            if *k == kind {
                roots.extend(extra.iter().map(|r| mod_path(r)));
            }
        }
        for r in &roots {
            if !self.modules.contains_key(r) {
                return Err(format!(
                    "`{}`, a root of kind `{kind}`, is not a module of the crate (build/module_graph.rs)",
                    show(r)
                ));
            }
        }
        roots.extend(
            self.modules
                .values()
                .filter(|m| m.global)
                .map(|m| m.path.clone()),
        );
        Ok(roots)
    }

    /// Every module `kind` reaches, each with the module and the reason that reached it first
    /// (`None` for a root).
    pub fn reach(
        &self,
        kind: &str,
    ) -> Result<BTreeMap<ModPath, Option<(ModPath, String)>>, String> {
        let mut seen: BTreeMap<ModPath, Option<(ModPath, String)>> = BTreeMap::new();
        let mut todo: Vec<(ModPath, Option<(ModPath, String)>)> =
            self.roots(kind)?.into_iter().map(|r| (r, None)).collect();
        loop {
            while let Some((m, why)) = todo.pop() {
                if seen.contains_key(&m) {
                    continue;
                }
                for e in self.edges(&m, kind) {
                    if !seen.contains_key(&e.to) {
                        todo.push((e.to, Some((m.clone(), e.why))));
                    }
                }
                seen.insert(m, why);
            }
            let defs: BTreeSet<String> = seen
                .keys()
                .flat_map(|m| self.modules[m].defs.iter().cloned())
                .collect();
            for (path, m) in &self.modules {
                if seen.contains_key(path) {
                    continue;
                }
                if let Some(names) = m.impls.iter().find(|n| self.impl_applies(path, n, &defs)) {
                    let why = format!("impl {}", names.join(" "));
                    todo.push((path.clone(), Some((path.clone(), why))));
                }
            }
            if todo.is_empty() {
                return Ok(seen);
            }
        }
    }

    /// The chain of reasons by which `kind` reaches `target`, for messages.
    pub fn explain(&self, kind: &str, target: &[String]) -> String {
        let Ok(seen) = self.reach(kind) else {
            return String::new();
        };
        let mut chain = vec![show(target)];
        let mut cur = target.to_vec();
        for _ in 0..64 {
            match seen.get(&cur) {
                Some(Some((from, why))) if from != &cur => {
                    chain.push(format!("{} ({why})", show(from)));
                    cur = from.clone();
                }
                Some(Some((_, why))) => {
                    chain.push(format!("[{why}]"));
                    break;
                }
                _ => break,
            }
        }
        chain.join(" <- ")
    }

    /// The files `kind`'s code identity covers: those of every module it reaches and the files
    /// they embed, `COMMON_FILES`, and its `EXTRA_DIRS`; sorted, workspace-relative.
    pub fn kind_files(&self, root: &Path, kind: &str) -> Result<Vec<String>, String> {
        let mut files = BTreeSet::new();
        for m in self.reach(kind)?.keys() {
            let module = &self.modules[m];
            files.insert(module.file.clone());
            files.extend(module.includes.iter().cloned());
        }
        files.extend(COMMON_FILES.iter().map(|f| f.to_string()));
        for (k, dirs) in EXTRA_DIRS {
            if *k == kind {
                for d in *dirs {
                    files_under(root, d, &mut files)?;
                }
            }
        }
        for f in &files {
            if !root.join(f).is_file() {
                return Err(format!(
                    "`{f}`, in the code identity of `{kind}`, is not a file"
                ));
            }
        }
        Ok(files.into_iter().collect())
    }
}

/// Every file under the workspace-relative `dir`, recursively.
pub fn files_under(root: &Path, dir: &str, out: &mut BTreeSet<String>) -> Result<(), String> {
    let p = root.join(dir);
    if p.is_file() {
        out.insert(dir.to_string());
        return Ok(());
    }
    let entries = fs::read_dir(&p).map_err(|e| format!("cannot list `{dir}`: {e}"))?;
    for e in entries {
        let e = e.map_err(|e| format!("cannot list `{dir}`: {e}"))?;
        let name = e.file_name().to_string_lossy().into_owned();
        files_under(root, &format!("{dir}/{name}"), out)?;
    }
    Ok(())
}
