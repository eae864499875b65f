//! A temporary workspace with helpers to write files and run the real binary in it.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Workspace {
        Workspace {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file (creating parent folders).
    pub fn write(&self, rel: &str, content: &str) -> &Self {
        let p = self.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// `orchestrate ARGS…` in the workspace, with color and the user's store variable off.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("orchestrate").expect("binary");
        c.current_dir(self.path())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("ORCHESTRATE_STORE")
            .env_remove("ORCHESTRATE_WORKER_WRAPPER")
            .env_remove("CUDA_VISIBLE_DEVICES");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn orchestrate")
    }

    /// Runs the experiment and returns the parsed manifest; panics unless it exits 0.
    pub fn run_ok(&self, experiment: &str) -> serde_json::Value {
        self.run_json(&["run", experiment, "--json"])
    }

    /// Runs `orchestrate ARGS…` (which must print JSON) and parses stdout; panics unless it exits 0.
    pub fn run_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "run failed ({:?}):\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("manifest JSON on stdout")
    }

    /// Starts `orchestrate ARGS…` in the background with stdout and stderr captured.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        std::process::Command::new(assert_cmd::cargo::cargo_bin!("orchestrate"))
            .current_dir(self.path())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("ORCHESTRATE_STORE")
            .env_remove("ORCHESTRATE_WORKER_WRAPPER")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn orchestrate")
    }
}

/// Names of the stages with the given status in a run manifest.
pub fn stages_with(manifest: &serde_json::Value, status: &str) -> Vec<String> {
    manifest["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .filter(|s| s["status"] == status)
        .map(|s| s["name"].as_str().expect("name").to_string())
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits (up to a minute) until `path` exists, then a moment more for its writer to finish.
pub fn wait_for(path: &Path, what: &str) {
    let start = std::time::Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
}

/// The recorded metrics of `stage` in `store` (from `orchestrate show --json`).
pub fn stage_metrics(ws: &Workspace, store: &str, stage: &str) -> serde_json::Value {
    let out = ws.run(&["--store", store, "show", stage, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("show JSON");
    let metrics = &v["record"]["metrics"];
    assert!(metrics.is_object(), "no metrics in {v}");
    metrics.clone()
}

/// Writes a `.tar.gz` as an attacker would: any members, in the given order.
pub fn write_tar_gz(path: &Path, members: &[(&str, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

/// Every member of a `.tar.gz`, by name.
pub fn read_tar_gz(path: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(f));
    let mut members = std::collections::BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        members.insert(name, bytes);
    }
    members
}

/// Runs `script` with `sh` in the workspace inside a private mount namespace (as root, or mapped
/// to root), for tests that mount a tmpfs or a read-only bind. `None` when that cannot be done
/// here (no `unshare`, no permission, or the script exited 97 to say its mount failed): the
/// caller reports the test as skipped.
pub fn in_mount_namespace(ws: &Workspace, script: &str) -> Option<Output> {
    let mut unshare = std::process::Command::new("unshare");
    if unsafe { libc::geteuid() } != 0 {
        unshare.arg("--map-root-user");
    }
    unshare
        .args(["--mount", "sh", "-c", script])
        .current_dir(ws.path())
        .env_remove("ORCHESTRATE_STORE")
        .env("NO_COLOR", "1")
        .output()
        .ok()
        .filter(|o| o.status.code() != Some(97))
}
