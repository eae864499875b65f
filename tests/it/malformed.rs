//! The malformed-experiment corpus: every file of `tests/corpus/malformed/` holds one defect and
//! must be rejected by `plan` and `run` alike with exit code 2, nothing on stdout, nothing written
//! in the workspace, and a precise message on stderr (snapshotted, so the `.snap` files are the
//! contract for each message).
//!
//! Each file runs in a fresh workspace seeded from `tests/corpus/workspace/`, so that a defect about
//! a path (escaping, absolute) is about that and not about a missing file.

use std::path::{Path, PathBuf};

use crate::common::{Workspace, stderr};

/// Where the corpus file is copied in each workspace.
const BAD: &str = "experiments/bad.yaml";

/// Files whose error has no position because none makes sense: there is no node to point at.
const NO_POSITION: &[&str] = &["05-empty-file.yaml", "06-only-comments.yaml"];

/// Files whose error has no position although one would make sense (none today).
const POSITION_MISSING: &[&str] = &[];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read corpus workspace") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Every file under `dir` with its content, relative paths sorted: what "untouched" compares.
fn snapshot_tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("dir entry").path();
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .display()
                .to_string();
            if path.is_dir() {
                out.push((format!("{rel}/"), Vec::new()));
                walk(root, &path, out);
            } else {
                out.push((rel, std::fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A fresh workspace holding the corpus workspace and `text` as `experiments/bad.yaml`.
fn workspace_with(text: &[u8]) -> Workspace {
    let ws = Workspace::new();
    copy_tree(&corpus_dir().join("workspace"), ws.path());
    std::fs::create_dir_all(ws.join("experiments")).expect("mkdir experiments");
    std::fs::write(ws.join(BAD), text).expect("write experiment");
    ws
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `text` names the experiment file followed by `:LINE:COL:`.
fn has_position(text: &str) -> bool {
    let prefix = format!("{BAD}:");
    text.match_indices(&prefix).any(|(i, _)| {
        let mut parts = text[i + prefix.len()..].splitn(3, ':');
        let is_num = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        is_num(parts.next()) && is_num(parts.next()) && parts.next().is_some()
    })
}

#[test]
fn corpus_has_at_least_35_experiments() {
    let n = std::fs::read_dir(corpus_dir().join("malformed"))
        .expect("read corpus")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        })
        .count();
    assert!(
        n >= 35,
        "the malformed corpus holds {n} files, expected at least 35"
    );
}

#[test]
fn malformed_experiments_exit_2_with_a_precise_error_and_write_nothing() {
    let mut problems: Vec<String> = Vec::new();
    insta::glob!("../corpus/malformed", "*.yaml", |path| {
        let name = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let first_problem = problems.len();
        let text = std::fs::read(path).expect("read corpus file");
        let ws = workspace_with(&text);
        let before = snapshot_tree(ws.path());

        let mut outputs = Vec::new();
        for verb in ["plan", "run"] {
            let out = ws.run(&[verb, BAD]);
            if out.status.code() != Some(2) {
                problems.push(format!(
                    "{name}: `{verb}` exited with {:?}, expected 2; stderr:\n{}",
                    out.status.code(),
                    stderr(&out)
                ));
            }
            if !out.stdout.is_empty() {
                problems.push(format!(
                    "{name}: `{verb}` printed on stdout:\n{}",
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
            if ws.join("runs").exists() {
                problems.push(format!("{name}: `{verb}` created `runs/`"));
            }
            if snapshot_tree(ws.path()) != before {
                problems.push(format!("{name}: `{verb}` changed the workspace"));
            }
            outputs.push(stderr(&out));
        }
        let (plan_err, run_err) = (&outputs[0], &outputs[1]);
        if plan_err != run_err {
            problems.push(format!(
                "{name}: `plan` and `run` print different errors:\n{plan_err}\n---\n{run_err}"
            ));
        }
        if !plan_err.contains(BAD) {
            problems.push(format!("{name}: stderr does not name `{BAD}`:\n{plan_err}"));
        }
        let positioned = has_position(plan_err);
        let exempt =
            NO_POSITION.contains(&name.as_str()) || POSITION_MISSING.contains(&name.as_str());
        if !positioned && !exempt {
            problems.push(format!(
                "{name}: stderr has no `{BAD}:LINE:COL:`:\n{plan_err}"
            ));
        }
        if positioned && exempt {
            problems.push(format!(
                "{name}: stderr now has a position: remove the file from the exemption lists"
            ));
        }

        let mut settings = insta::Settings::clone_current();
        let mut roots = vec![ws.path().to_path_buf()];
        if let Ok(real) = ws.path().canonicalize() {
            roots.insert(0, real);
        }
        for root in roots {
            settings.add_filter(&regex_escape(&root.display().to_string()), "[WS]");
        }
        // Printed now as well: a snapshot mismatch panics before the final assertion.
        for p in &problems[first_problem..] {
            eprintln!("{p}\n");
        }
        settings.bind(|| insta::assert_snapshot!("stderr", plan_err));
    });
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
