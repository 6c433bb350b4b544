//! All integration tests, in one test binary (one link instead of one per file).
//! Each module is one area; tests start real servers on 127.0.0.1:0 and real stores in
//! temporary folders.

mod backup;
mod classify;
mod cli;
mod daemon;
mod digest;
mod digest_crash;
mod faults;
mod fetch;
mod hostile;
mod ingest;
mod parse;
mod publish;
mod reclassify;
mod server;
mod service;

/// Writes the bundled taxonomy into `dir` as `programmes.toml`, its training set named by
/// absolute path, so a config in a temporary folder can load it as the daemon does.
pub fn bundled_taxonomy_into(dir: &std::path::Path) {
    let root = env!("CARGO_MANIFEST_DIR");
    let taxonomy = std::fs::read_to_string(format!("{root}/config/programmes.toml"))
        .expect("bundled taxonomy")
        .replace(
            "\"../fixtures/labelled\"",
            &format!("\"{root}/fixtures/labelled\""),
        );
    std::fs::write(dir.join("programmes.toml"), taxonomy).expect("taxonomy written");
}

/// `newsrelay run` as a child process, its stderr read line by line on a thread; killed on
/// drop, so a failing test leaves no daemon behind.
pub struct Daemon {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every line read so far.
    pub seen: Vec<String>,
}

impl Daemon {
    /// Starts the daemon on `config`; `rust_log` sets `RUST_LOG`, or `None` removes it so the
    /// config's `[log]` decides.
    pub fn start(config: &std::path::Path, rust_log: Option<&str>) -> Daemon {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut command = Command::new(env!("CARGO_BIN_EXE_newsrelay"));
        command.arg("--config").arg(config).arg("run");
        match rust_log {
            Some(level) => command.env("RUST_LOG", level),
            None => command.env_remove("RUST_LOG"),
        };
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 30 s) for a log line containing `needle` and returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            if let Ok(line) = self
                .lines
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!(
            "no log line with {needle:?}; saw:\n{}",
            self.seen.join("\n")
        );
    }

    /// Sends `sig` (as `kill` spells it, e.g. "-HUP").
    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Waits (at most 30 s) for the exit, reading every remaining line; returns the exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.seen.extend(self.lines.try_iter());
                // The reader thread may still hold the last lines for a moment.
                std::thread::sleep(std::time::Duration::from_millis(100));
                self.seen.extend(self.lines.try_iter());
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "daemon did not exit within 30 s"
            );
            self.seen.extend(self.lines.try_iter());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// SIGTERM, then [`Daemon::wait_exit`].
    pub fn stop(&mut self) -> Option<i32> {
        self.signal("-TERM");
        self.wait_exit()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
