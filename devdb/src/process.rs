//! Running helper commands and reading the server log.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::{DevDbError, Result};

/// Runs `cmd` to completion, returning its stdout or its status and output as an error.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let command = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = match cmd.stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) => {
            return Err(DevDbError::Command {
                command,
                output: e.to_string(),
            });
        }
    };
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(DevDbError::Command {
        command,
        output: format!(
            "{}\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .trim()
        .to_owned(),
    })
}

/// Returns the last lines of `log` written after byte `from`.
pub(crate) fn log_tail(log: &Path, from: u64) -> String {
    let text = fs::read(log).unwrap_or_default();
    let text = String::from_utf8_lossy(text.get(from as usize..).unwrap_or_default());
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
