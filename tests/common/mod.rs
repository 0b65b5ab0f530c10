//! Helpers shared by the integration tests of the `mediagraph` binary.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished `mediagraph` process left behind.
pub struct Run {
    pub success: bool,
    /// The exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The repository root (where `graphs/` lives).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary with `args` in `dir`; kills it (and fails the test) after 60 s, so a hung
/// graph cannot hang the test suite.
pub fn mediagraph_in(dir: &Path, args: &[&str]) -> Run {
    let child = spawn_in(dir, args);
    wait_for(child, args, Duration::from_secs(60))
}

/// Starts the binary with `args` in `dir`, stdout and stderr piped.
pub fn spawn_in(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mediagraph"))
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mediagraph binary starts")
}

/// Waits for a started binary, collecting its output; kills it (and fails the test) after
/// `limit`.
pub fn wait_for(mut child: Child, args: &[&str], limit: Duration) -> Run {
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for mediagraph") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mediagraph {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        success: status.success(),
        code: status.code(),
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Runs the binary with `args` in the repository root.
pub fn mediagraph(args: &[&str]) -> Run {
    mediagraph_in(&repo(), args)
}

/// Asserts success and returns stdout.
pub fn assert_ok(r: &Run) -> &str {
    assert!(
        r.success,
        "expected success; stdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    &r.stdout
}

/// Asserts a clean failure (non-zero exit, an `error:` headline, no panic) and returns stderr.
pub fn assert_failed(r: &Run) -> &str {
    assert!(
        !r.success,
        "expected failure; stdout:\n{}\nstderr:\n{}",
        r.stdout, r.stderr
    );
    assert!(r.stderr.starts_with("error: "), "stderr:\n{}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "stderr:\n{}", r.stderr);
    &r.stderr
}

pub fn assert_contains(haystack: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            haystack.contains(needle),
            "expected {needle:?} in:\n{haystack}"
        );
    }
}

/// Writes `text` to `dir/name` and returns the path as a string.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("temp file is writable");
    path.display().to_string()
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("output file exists")
}
