//! Structured logging into the job's log.
//!
//! Each call appends one line, with a level and `key = value` fields, to the log Spool keeps
//! for the attempt (and forwards to its own structured logs). The log is bounded per attempt
//! (64 KiB by default); past the bound, lines are dropped and the log says how many bytes were.
//! Output written with `println!` and `eprintln!` is captured into the same log.
//!
//! ```no_run
//! use spool_guest::log;
//!
//! let order = "42";
//! log::info!("charged order {order}");
//! log::warn("card declined, retrying", &[("order", order), ("code", "insufficient_funds")]);
//! log::log(log::Level::Debug, "cache miss", &[]);
//! ```

use crate::bindings::spool::job::log as raw;
use crate::sys;

/// How severe a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very fine-grained detail.
    Trace,
    /// Detail useful when debugging.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that the handler coped with.
    Warn,
    /// Something failed.
    Error,
}

impl From<Level> for raw::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => raw::Level::Trace,
            Level::Debug => raw::Level::Debug,
            Level::Info => raw::Level::Info,
            Level::Warn => raw::Level::Warn,
            Level::Error => raw::Level::Error,
        }
    }
}

/// Appends one line at `level` to the job's log, with structured `fields`.
pub fn log(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|&(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    sys::log(level, message, &fields);
}

/// Appends one [`Level::Trace`] line to the job's log, with structured `fields`.
pub fn trace(message: &str, fields: &[(&str, &str)]) {
    log(Level::Trace, message, fields);
}

/// Appends one [`Level::Debug`] line to the job's log, with structured `fields`.
pub fn debug(message: &str, fields: &[(&str, &str)]) {
    log(Level::Debug, message, fields);
}

/// Appends one [`Level::Info`] line to the job's log, with structured `fields`.
pub fn info(message: &str, fields: &[(&str, &str)]) {
    log(Level::Info, message, fields);
}

/// Appends one [`Level::Warn`] line to the job's log, with structured `fields`.
pub fn warn(message: &str, fields: &[(&str, &str)]) {
    log(Level::Warn, message, fields);
}

/// Appends one [`Level::Error`] line to the job's log, with structured `fields`.
pub fn error(message: &str, fields: &[(&str, &str)]) {
    log(Level::Error, message, fields);
}

// The macros are `#[macro_export]`ed under private names (which puts them at the crate root)
// and re-exported here, so that they are used as `spool_guest::log::info!`, next to the
// functions of the same names.

/// Appends one line at a [`Level`] to the job's log, formatted like `format!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __spool_log {
    ($level:expr, $($arg:tt)+) => {
        $crate::log::log($level, &::std::format!($($arg)+), &[])
    };
}

/// Appends one [`Level::Trace`] line to the job's log, formatted like `format!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __spool_log_trace {
    ($($arg:tt)+) => { $crate::__spool_log!($crate::log::Level::Trace, $($arg)+) };
}

/// Appends one [`Level::Debug`] line to the job's log, formatted like `format!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __spool_log_debug {
    ($($arg:tt)+) => { $crate::__spool_log!($crate::log::Level::Debug, $($arg)+) };
}

/// Appends one [`Level::Info`] line to the job's log, formatted like `format!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __spool_log_info {
    ($($arg:tt)+) => { $crate::__spool_log!($crate::log::Level::Info, $($arg)+) };
}

/// Appends one [`Level::Warn`] line to the job's log, formatted like `format!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __spool_log_warn {
    ($($arg:tt)+) => { $crate::__spool_log!($crate::log::Level::Warn, $($arg)+) };
}

/// Appends one [`Level::Error`] line to the job's log, formatted like `format!`.
#[doc(hidden)]
#[macro_export]
macro_rules! __spool_log_error {
    ($($arg:tt)+) => { $crate::__spool_log!($crate::log::Level::Error, $($arg)+) };
}

#[doc(inline)]
pub use crate::__spool_log as log;
#[doc(inline)]
pub use crate::__spool_log_debug as debug;
#[doc(inline)]
pub use crate::__spool_log_error as error;
#[doc(inline)]
pub use crate::__spool_log_info as info;
#[doc(inline)]
pub use crate::__spool_log_trace as trace;
#[doc(inline)]
pub use crate::__spool_log_warn as warn;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn macros_format_their_arguments() {
        testing::reset();
        let order = 42;
        crate::log::info!("charged order {order} for {} cents", 1250);
        crate::log::error!("gave up");
        crate::log::log!(Level::Trace, "at {}", "trace");
        let lines = testing::logs();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            (lines[0].level, lines[0].message.as_str()),
            (Level::Info, "charged order 42 for 1250 cents")
        );
        assert_eq!(lines[1].level, Level::Error);
        assert_eq!(
            (lines[2].level, lines[2].message.as_str()),
            (Level::Trace, "at trace")
        );
    }

    #[test]
    fn functions_carry_fields() {
        testing::reset();
        warn(
            "declined",
            &[("order", "42"), ("code", "insufficient_funds")],
        );
        let lines = testing::logs();
        assert_eq!(lines[0].level, Level::Warn);
        assert_eq!(
            lines[0].fields,
            [
                ("order".to_owned(), "42".to_owned()),
                ("code".to_owned(), "insufficient_funds".to_owned())
            ]
        );
    }

    #[test]
    fn levels_map_onto_the_wit_enum_in_order() {
        let all = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ];
        let raw: Vec<raw::Level> = all.into_iter().map(raw::Level::from).collect();
        assert_eq!(
            raw,
            [
                raw::Level::Trace,
                raw::Level::Debug,
                raw::Level::Info,
                raw::Level::Warn,
                raw::Level::Error
            ]
        );
    }
}
