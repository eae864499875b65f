//! Computes the code identity of each built-in stage kind at build time, so that a binary on a
//! cluster node knows which code produced an artifact without a checkout.
//!
//! A kind's identity is the SHA-256 of every file that can change what a task of that kind
//! computes, plus the compiler version. The files are not listed by hand: a hand-written list
//! goes stale silently (it missed the worker, which builds the thread pool, and a statistics
//! error type an AUC file imports), and a file left out serves stale artifacts as fresh, the one
//! failure a reproducibility tool must not have. They are read from the module graph
//! (build/module_graph.rs, where the rules are spelled out):
//!
//! - the roots: the kind's stage module (`stages::<kind>`), and what every task runs through,
//!   the worker (`crate::worker`), the task files (`crate::task`), the stage dispatcher
//!   (`crate::stages`) and the typed configs (`crate::stages::config`); `command` adds
//!   `dsl::template`, which renders its command;
//! - from each module, every module whose items it names (`use` trees, `crate::`/`super::`/
//!   `self::` and relative paths in code, re-exports followed to the defining module), its
//!   `mod` children, the files it embeds with `include_str!`, the modules defining macros it
//!   invokes, and any module with an `impl` block for types it reaches. Only the dispatcher's
//!   match arms `StageKind::X => …` (and its `mod x;` lines) count for kind `x` alone, so the
//!   kinds stay apart: editing a report template re-renders reports and retrains nothing;
//! - for every kind, Cargo.lock (the pinned crates) and Cargo.toml (their features, the
//!   profiles); for `report`, every file under templates/.
//!
//! When the scan is unsure it includes more, never less; it stops the build on what it cannot
//! follow (`#[path]`, `include!` of a source file). Test-only code (`#[cfg(test)]`) is not
//! compiled into the binary and is not followed.
//!
//! Generated, in `$OUT_DIR/code_identity.rs`: `KIND_IDENTITY` (kind → digest), `KIND_FILES`
//! (kind → its files, sorted, workspace-relative; see `builtin_code_files`) and
//! `BINARY_IDENTITY` (every source file, the build script and the compiler).

use std::fs;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

// Shared with the tests of src/fingerprint/code_identity.rs, which re-scan the sources.
#[allow(dead_code)]
mod module_graph {
    include!("build/module_graph.rs");
}

/// `rustc -vV` of the compiler cargo builds this crate with: the release, the commit, the host
/// and the LLVM version.
fn rustc_version() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{rustc} -vV`: {e}"));
    assert!(
        out.status.success(),
        "`{rustc} -vV` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("`rustc -vV` prints UTF-8")
}

/// SHA-256 over each file's workspace-relative path and content, then the compiler version.
fn identity(root: &Path, files: &[String], rustc: &str) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(f.as_bytes());
        h.update([0]);
        h.update(fs::read(root.join(f)).unwrap_or_else(|e| panic!("cannot read `{f}`: {e}")));
        h.update([0]);
    }
    h.update(b"rustc -vV");
    h.update([0]);
    h.update(rustc.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything the binary is built from: watched for changes and hashed into `BINARY_IDENTITY`.
const SOURCES: [&str; 6] = [
    "src",
    "templates",
    "build",
    "build.rs",
    "Cargo.lock",
    "Cargo.toml",
];

fn main() {
    // A folder makes cargo re-run the script when any file under it changes or appears.
    for p in SOURCES {
        println!("cargo:rerun-if-changed={p}");
    }
    println!("cargo:rerun-if-env-changed=RUSTC");

    let root_dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    let root = Path::new(&root_dir);
    let rustc = rustc_version();
    let krate = module_graph::Crate::load(root)
        .unwrap_or_else(|e| panic!("build.rs: reading the module graph: {e}"));

    let mut ids = String::new();
    let mut lists = String::new();
    for kind in module_graph::KINDS {
        let files = krate
            .kind_files(root, kind)
            .unwrap_or_else(|e| panic!("build.rs: the files of `{kind}`: {e}"));
        ids.push_str(&format!(
            "    ({kind:?}, {:?}),\n",
            identity(root, &files, &rustc)
        ));
        lists.push_str(&format!("    ({kind:?}, &[\n"));
        for f in &files {
            lists.push_str(&format!("        {f:?},\n"));
        }
        lists.push_str("    ]),\n");
    }

    let mut all = std::collections::BTreeSet::new();
    for p in SOURCES {
        module_graph::files_under(root, p, &mut all).unwrap_or_else(|e| panic!("build.rs: {e}"));
    }
    let all: Vec<String> = all.into_iter().collect();

    let out = format!(
        "/// Built-in code identity per stage kind (generated by build.rs).\n\
         pub const KIND_IDENTITY: &[(&str, &str)] = &[\n{ids}];\n\
         /// The files each kind's code identity covers, sorted, workspace-relative (generated by \
         build.rs).\n\
         pub const KIND_FILES: &[(&str, &[&str])] = &[\n{lists}];\n\
         /// Digest of every source file of this binary and of its compiler (generated by \
         build.rs).\n\
         pub const BINARY_IDENTITY: &str = {:?};\n",
        identity(root, &all, &rustc)
    );
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("code_identity.rs");
    fs::write(dest, out).expect("write code identity");
}
