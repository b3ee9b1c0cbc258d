//! What the daemon's end-to-end tests share: a working directory with a swarm
//! home per test, its daemon killed by a guard if a test fails before
//! `swarm stop`, and small readers of the binary's output.
#![allow(dead_code)]

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A working directory with a swarm home; its daemon dies with it.
pub struct TestSwarm {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
}

impl TestSwarm {
    pub fn new() -> TestSwarm {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let home = dir.path().join(".bftswarm");
        TestSwarm { dir, home }
    }

    /// `swarm init` with `args`; returns its JSON.
    pub fn init(args: &[&str]) -> (TestSwarm, Value) {
        let swarm = TestSwarm::new();
        let info = swarm.json(&[&["swarm", "init"], args].concat());
        (swarm, info)
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bftswarm"));
        command
            .current_dir(self.dir.path())
            .env("BFTSWARM_HOME", &self.home)
            .env("NO_COLOR", "1")
            .env_remove("BFTSWARM_ADDR")
            .env_remove("BFTSWARM_TOKEN");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("the binary runs")
    }

    /// Runs a command that must succeed and print JSON (stdout is a pipe, so JSON is the default).
    pub fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args);
        assert!(output.status.success(), "{args:?}: exit {:?}, stderr: {}", output.status, stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: stdout is not JSON ({e}): {}", String::from_utf8_lossy(&output.stdout))
        })
    }

    /// Runs a command that must fail with `code` and one line on stderr; returns that line.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args);
        let line = stderr(&output);
        assert_eq!(output.status.code(), Some(code), "{args:?}: stderr: {line}");
        assert_eq!(line.trim_end().lines().count(), 1, "{args:?}: not one line: {line}");
        assert!(line.starts_with("error: "), "{line}");
        line
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }
}

impl Drop for TestSwarm {
    fn drop(&mut self) {
        let Ok(pid) = std::fs::read_to_string(self.home.join("daemon.pid")) else { return };
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: signals a process this test started; a stopped daemon removed its pid file.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Sends raw bytes to the control API and returns the whole answer.
pub fn raw_request(addr: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("the daemon listens");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("the file exists").permissions().mode() & 0o777
}

pub fn names(list: &Value, field: &str) -> Vec<String> {
    list.as_array().expect("a list").iter().map(|a| a[field].as_str().unwrap_or_default().to_string()).collect()
}
