//! The module layers, checked from the sources: no import cycle between top-level modules or
//! between the files of `src/report/`, and the "must never" rules of the module docs (the
//! experiment loader never reaches burn, the dispatcher never calls stage code). Run alone with
//! `cargo test --test it layers`; on failure it prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `text` without comments, string literals or char literals (so doc links and messages that
/// mention a module do not count as uses).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i + 1 < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(b[i] as char);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            j += 1;
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3; // 'x'
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Identifiers that follow `prefix` in `code` (`crate::` → `dsl`, `exec`, …), including those
/// inside a grouped import `crate::{a, b::c}` (its first segments).
fn names_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // First segment of every item of the group, at depth 0.
            let mut depth = 0;
            let mut item = String::new();
            let mut first = true;
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        first = true;
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 && first {
                    if c.is_alphanumeric() || c == '_' {
                        item.push(c);
                    } else if !item.is_empty() {
                        found.insert(std::mem::take(&mut item));
                        first = false;
                    }
                }
            }
            if !item.is_empty() {
                found.insert(item);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Strongly connected components with more than one member (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in t.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.g.contains_key(w) {
                continue;
            }
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            loop {
                let w = t.stack.pop().expect("on the stack");
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn show(graph: &BTreeMap<String, BTreeSet<String>>) -> String {
    graph
        .iter()
        .map(|(a, bs)| {
            format!(
                "{a} -> {}",
                bs.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module → the top-level modules its files name through `crate::`.
fn top_level_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let top = |p: &Path| -> String {
        let rel = p.strip_prefix(&src).expect("under src");
        let first = rel.components().next().expect("a component");
        first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| top(p))
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for f in &files {
        let m = top(f);
        if !modules.contains(&m) {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(f).expect("read"));
        for used in names_after(&code, "crate::") {
            if used != m && modules.contains(&used) {
                graph.get_mut(&m).expect("module").insert(used);
            }
        }
    }
    graph
}

/// Everything `from` reaches.
fn reach(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(m) = todo.pop() {
        for n in graph.get(&m).into_iter().flatten() {
            if seen.insert(n.clone()) {
                todo.push(n.clone());
            }
        }
    }
    seen
}

#[test]
fn top_level_modules_form_no_cycle() {
    let g = top_level_graph();
    assert!(
        g.contains_key("dsl") && g.contains_key("stages"),
        "{}",
        show(&g)
    );
    let c = cycles(&g);
    assert!(c.is_empty(), "import cycles {c:?} in\n{}", show(&g));
}

#[test]
fn lower_layers_never_reach_up() {
    let g = top_level_graph();
    let never: &[(&str, &[&str])] = &[
        // What stage kinds are, the exit codes and the task files sit below everything.
        ("kinds", &["dsl", "stages", "exec", "model", "cli"]),
        ("exit", &["cli", "exec", "stages"]),
        ("task", &["dsl", "exec", "stages", "model", "store"]),
        // The experiment loader never reaches burn or the stage code.
        ("dsl", &["stages", "model", "exec", "store", "cli"]),
        // The dispatcher never runs stage code; the worker does.
        ("exec", &["stages", "model", "worker", "cli"]),
        ("plan", &["stages", "model", "exec", "cli"]),
        ("store", &["dsl", "stages", "model", "exec", "cli"]),
        ("fingerprint", &["dsl", "stages", "model", "exec", "cli"]),
        // p-value adjustment is arithmetic on p-values, below statistics and reports alike.
        (
            "multiplicity",
            &[
                "dsl", "stages", "exec", "store", "model", "stats", "report", "cli",
            ],
        ),
        // Statistics and the model zoo know nothing of the pipeline.
        ("stats", &["dsl", "stages", "exec", "store", "model", "cli"]),
        (
            "model",
            &["dsl", "stages", "exec", "store", "report", "cli"],
        ),
        // Reports present what was computed; they never train or evaluate.
        ("report", &["stages", "model", "stats", "cli"]),
        ("verify", &["stages", "model", "cli"]),
    ];
    for (module, forbidden) in never {
        let r = reach(&g, module);
        let bad: Vec<&&str> = forbidden.iter().filter(|f| r.contains(**f)).collect();
        assert!(bad.is_empty(), "`{module}` reaches {bad:?}:\n{}", show(&g));
    }
}

#[test]
fn the_report_files_form_no_cycle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/report");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    let names: BTreeSet<String> = files
        .iter()
        .map(|p| p.file_stem().expect("stem").to_string_lossy().into_owned())
        .filter(|n| n != "mod")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let name = f.file_stem().expect("stem").to_string_lossy().into_owned();
        if name == "mod" {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(f).expect("read"));
        let mut used: BTreeSet<String> = names_after(&code, "super::");
        used.extend(names_after(&code, "crate::report::"));
        graph.insert(
            name.clone(),
            used.into_iter()
                .filter(|u| *u != name && names.contains(u))
                .collect(),
        );
    }
    let c = cycles(&graph);
    assert!(
        c.is_empty(),
        "cycles {c:?} in src/report:\n{}",
        show(&graph)
    );
}

#[test]
fn the_scanner_sees_grouped_imports_and_ignores_comments_and_strings() {
    let code = code_only(
        "use crate::{dsl::Stage, exec::{self, task}};\n// crate::cli in a comment\n\
         let s = \"crate::store\"; let r = r#\"crate::model\"#; crate::plan::key(x);",
    );
    let names = names_after(&code, "crate::");
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["dsl", "exec", "plan"],
        "{code}"
    );
}
