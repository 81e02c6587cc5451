//! The `spool` binary as a user runs it ([`crate::spool_bin`]), and what it did.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

/// What a `spool` process did.
#[derive(Debug)]
pub struct Run {
    /// Its arguments.
    pub args: Vec<String>,
    /// Its exit code.
    pub code: Option<i32>,
    /// What it wrote to stdout.
    pub stdout: String,
    /// What it wrote to stderr.
    pub stderr: String,
}

impl Run {
    /// Runs `spool ARGS` with `env` and none of the client's settings (`SPOOL_URL`,
    /// `SPOOL_TOKEN`, `SPOOL_ADMIN_TOKEN`) from the test's own environment, in `cwd` (else
    /// the test's), and waits for it to end.
    ///
    /// # Panics
    ///
    /// When it cannot start or takes longer than `within`.
    pub async fn spool(
        args: &[&str],
        env: &[(&str, &str)],
        cwd: Option<&Path>,
        within: Duration,
    ) -> Run {
        let mut command = tokio::process::Command::new(crate::spool_bin());
        command
            .args(args)
            .env_remove("SPOOL_URL")
            .env_remove("SPOOL_TOKEN")
            .env_remove("SPOOL_ADMIN_TOKEN")
            .env("SPOOL_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let out = tokio::time::timeout(within, command.output())
            .await
            .unwrap_or_else(|_| panic!("spool {args:?} took over {within:?}"))
            .expect("running spool");
        Run {
            args: args.iter().map(|a| a.to_string()).collect(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// Asserts that it exited 0.
    ///
    /// # Panics
    ///
    /// When it did not.
    pub fn success(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "spool {:?} failed: {self:#?}",
            self.args
        );
        self
    }

    /// Asserts that it exited `code`, with `needle` in its stderr.
    ///
    /// # Panics
    ///
    /// When it did not.
    pub fn failure(self, code: i32, needle: &str) -> Run {
        assert_eq!(self.code, Some(code), "spool {:?}: {self:#?}", self.args);
        assert!(
            self.stderr.contains(needle),
            "spool {:?}: stderr lacks {needle:?}: {self:#?}",
            self.args
        );
        self
    }

    /// Parses stdout as one JSON document.
    ///
    /// # Panics
    ///
    /// When it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("spool {:?}: stdout is not JSON: {e}: {self:#?}", self.args))
    }

    /// Returns the job id in a line like `enqueued ID (available)`.
    ///
    /// # Panics
    ///
    /// When stdout is not such a line.
    pub fn id_after(&self, word: &str) -> String {
        let rest = self
            .stdout
            .trim()
            .strip_prefix(word)
            .unwrap_or_else(|| panic!("expected {word:?} ...: {self:#?}"));
        let id = rest.split_whitespace().next().expect("an id").to_string();
        uuid::Uuid::parse_str(&id).unwrap_or_else(|e| panic!("{id:?} is not an id: {e}"));
        id
    }
}
