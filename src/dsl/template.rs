//! `{…}` placeholders in `command` stages: checked at load time, filled at run time.
//!
//! `{deps.X}`, `{outs.X}`, `{params.X}`, `{seed}`, `{threads}` and `{workspace}` are replaced;
//! `{{` and `}}` write a literal brace; `${…}` (shell parameter expansion) and braces whose content
//! is not a placeholder name (`awk '{print $1}'`, `{a,b}`) are left alone. A well-formed name that
//! is not known (`{deps.rwa}`) is an error, since it is almost always a typo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The names a command may refer to.
pub struct Names {
    pub deps: Vec<String>,
    pub outs: Vec<String>,
    pub params: Vec<String>,
}

enum Token<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

fn is_placeholder_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !s.starts_with('.')
        && !s.ends_with('.')
}

fn tokens(cmd: &str) -> Vec<Token<'_>> {
    let b = cmd.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => {
                out.push(Token::Text(&cmd[start..i + 1]));
                i += 2;
                start = i;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => {
                out.push(Token::Text(&cmd[start..i + 1]));
                i += 2;
                start = i;
            }
            b'$' if b.get(i + 1) == Some(&b'{') => {
                // Shell parameter expansion: copy through the closing brace.
                i = cmd[i..].find('}').map_or(b.len(), |j| i + j + 1);
            }
            b'{' => match cmd[i + 1..].find('}') {
                Some(j) if is_placeholder_name(&cmd[i + 1..i + 1 + j]) => {
                    out.push(Token::Text(&cmd[start..i]));
                    out.push(Token::Placeholder(&cmd[i + 1..i + 1 + j]));
                    i += j + 2;
                    start = i;
                }
                _ => i += 1,
            },
            _ => i += 1,
        }
    }
    out.push(Token::Text(&cmd[start..]));
    out
}

/// Checks that every placeholder of `cmd` is known; on error returns the offending placeholder
/// as written (`{deps.rwa}`) and the message.
pub fn check(cmd: &str, names: &Names) -> Result<(), (String, String)> {
    for t in tokens(cmd) {
        let Token::Placeholder(p) = t else { continue };
        let ok = match p.split_once('.') {
            Some(("deps", n)) => names.deps.iter().any(|d| d == n),
            Some(("outs", n)) => names.outs.iter().any(|d| d == n),
            Some(("params", n)) => names.params.iter().any(|d| d == n),
            None => matches!(p, "seed" | "threads" | "workspace"),
            _ => false,
        };
        if !ok {
            let mut known: Vec<String> = Vec::new();
            known.extend(names.deps.iter().map(|n| format!("{{deps.{n}}}")));
            known.extend(names.outs.iter().map(|n| format!("{{outs.{n}}}")));
            known.extend(names.params.iter().map(|n| format!("{{params.{n}}}")));
            known.extend(["{seed}", "{threads}", "{workspace}"].map(String::from));
            return Err((
                format!("{{{p}}}"),
                format!(
                    "unknown placeholder `{{{p}}}` in `cmd` (known: {}; write `{{{{` for a literal brace)",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Fills the placeholders of a checked command; `lookup` gets `deps.raw`, `seed`, … and returns
/// the text to insert (already shell-quoted where needed).
pub fn render(cmd: &str, lookup: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(cmd.len() + 64);
    for t in tokens(cmd) {
        match t {
            Token::Text(s) => out.push_str(s),
            Token::Placeholder(p) => out.push_str(&lookup(p)),
        }
    }
    out
}

/// Quotes `s` for `sh` when it contains anything but safe characters.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./-=:,+@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Fills the command template of `stage` for one attempt.
pub fn render_command(
    stage: &super::Stage,
    workspace: &Path,
    inputs: &BTreeMap<String, Vec<PathBuf>>,
    out_dir: &Path,
    threads: u32,
) -> String {
    let cmd = stage.cmd.as_deref().unwrap_or_default();
    render(cmd, |p| match p.split_once('.') {
        Some(("deps", n)) => inputs
            .get(n)
            .map(|paths| {
                paths
                    .iter()
                    .map(|p| shell_quote(&p.to_string_lossy()))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        Some(("outs", n)) => stage
            .outs
            .get(n)
            .map(|rel| shell_quote(&out_dir.join(rel).to_string_lossy()))
            .unwrap_or_default(),
        Some(("params", n)) => stage
            .params
            .get(n)
            .map(|v| shell_quote(&super::coord_text(v)))
            .unwrap_or_default(),
        _ => match p {
            "seed" => stage.seed.to_string(),
            "threads" => threads.to_string(),
            "workspace" => shell_quote(&workspace.to_string_lossy()),
            _ => String::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        Names {
            deps: vec!["raw".into()],
            outs: vec!["table".into()],
            params: vec!["t".into()],
        }
    }

    #[test]
    fn placeholders_are_checked_and_rendered() {
        let cmd = "p --in {deps.raw} --out {outs.table} --t {params.t} --s {seed} ${HOME} {{x}} awk '{print $1}'";
        check(cmd, &names()).unwrap();
        let r = render(cmd, |p| format!("<{p}>"));
        assert_eq!(
            r,
            "p --in <deps.raw> --out <outs.table> --t <params.t> --s <seed> ${HOME} {x} awk '{print $1}'"
        );
    }

    #[test]
    fn typos_are_errors() {
        let (p, e) = check("cp {deps.rwa} x", &names()).unwrap_err();
        assert_eq!(p, "{deps.rwa}");
        assert!(e.contains("`{deps.rwa}`"), "{e}");
        assert!(e.contains("{deps.raw}"), "{e}");
        assert!(check("echo {foo}", &names()).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a/b.csv"), "/a/b.csv");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
