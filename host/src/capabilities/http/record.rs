//! The record of one outbound request: a line in the job's log and an [`HttpCall`] for the
//! metrics, written exactly once however the request ends (even when the attempt is torn
//! down under it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::capabilities::log::LogState;
use crate::model::{LogLevel, LogSource};

/// How an outbound request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response came (whatever its status).
    Ok,
    /// The tenant's allow-list does not have the origin, or it is an IP literal.
    Denied,
    /// The SSRF guard refused every address the host resolved to, or plain `http://` to
    /// the internet.
    Blocked,
    /// A bound of the attempt: request count, request or response body bytes.
    Limit,
    /// A connect, first-byte or between-bytes timeout.
    Timeout,
    /// Anything else: name lookup, connection, TLS, protocol.
    Error,
    /// The attempt ended while the request was in flight.
    Cancelled,
}

impl Outcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Blocked => "blocked",
            Outcome::Limit => "limit",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One outbound request of an attempt, as the metrics count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// The allow-list entry that allowed it ([`AllowedOrigin::label`]), or `other`.
    ///
    /// [`AllowedOrigin::label`]: crate::model::allow_list::AllowedOrigin::label
    pub host: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The response's status, when one came.
    pub status: Option<u16>,
    /// Response body bytes the guest read.
    pub bytes: u64,
    /// From the request to the end of its response body, or to its failure.
    pub duration: Duration,
}

/// A request in flight; records itself when finished or dropped.
pub(crate) struct Pending {
    started: Instant,
    method: String,
    host: String,
    path: String,
    label: Option<String>,
    status: Option<u16>,
    idempotency_key: Option<String>,
    log: LogState,
    calls: Arc<Mutex<Vec<HttpCall>>>,
    done: bool,
}

impl Pending {
    /// Starts the record of `request`.
    pub(crate) fn start<B>(
        request: &http::Request<B>,
        log: LogState,
        calls: Arc<Mutex<Vec<HttpCall>>>,
    ) -> Pending {
        let uri = request.uri();
        let host = match (uri.host(), uri.port_u16()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => String::new(),
        };
        Pending {
            started: Instant::now(),
            method: request.method().to_string(),
            host,
            // The path only: a query may hold secrets.
            path: uri.path().to_string(),
            label: None,
            status: None,
            idempotency_key: None,
            log,
            calls,
            done: false,
        }
    }

    /// Notes that the allow-list entry labelled `label` allowed the request.
    pub(crate) fn allowed(&mut self, label: String) {
        self.label = Some(label);
    }

    /// Notes the idempotency key the request carries.
    pub(crate) fn keyed(&mut self, key: String) {
        self.idempotency_key = Some(key);
    }

    /// Notes the response's status.
    pub(crate) fn responded(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// Records the request as ended with `outcome` after reading `bytes` of response body;
    /// `reason` says why it failed. Only the first call records anything.
    pub(crate) fn finish(&mut self, outcome: Outcome, bytes: u64, reason: Option<&str>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let duration = self.started.elapsed();
        let mut fields = vec![
            ("method".to_string(), self.method.clone()),
            ("host".to_string(), self.host.clone()),
            ("path".to_string(), self.path.clone()),
            ("outcome".to_string(), outcome.label().to_string()),
        ];
        if let Some(status) = self.status {
            fields.push(("status".into(), status.to_string()));
        }
        if self.status.is_some() {
            fields.push(("bytes".into(), bytes.to_string()));
        }
        fields.push(("duration_ms".into(), duration.as_millis().to_string()));
        if let Some(key) = &self.idempotency_key {
            fields.push(("idempotency_key".into(), key.clone()));
        }
        let target = format!("{} {}{}", self.method, self.host, self.path);
        let (level, message) = match (self.status, reason) {
            (Some(status), None) => (LogLevel::Info, format!("{target} -> {status}")),
            (Some(status), Some(reason)) => (
                LogLevel::Warn,
                format!("{target} -> {status}, then failed: {reason}"),
            ),
            (None, reason) => (
                LogLevel::Warn,
                format!(
                    "{target} failed ({}): {}",
                    outcome.label(),
                    reason.unwrap_or("no reason given")
                ),
            ),
        };
        if let Some(reason) = reason {
            fields.push(("reason".into(), reason.to_string()));
        }
        self.log.push(LogSource::Http, level, message, fields);
        let call = HttpCall {
            host: self.label.clone().unwrap_or_else(|| "other".into()),
            outcome,
            status: self.status,
            bytes,
            duration,
        };
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(call);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.status.is_some() {
            // The guest dropped the body before its end (or never read it): the request
            // itself succeeded.
            self.finish(Outcome::Ok, 0, None);
        } else {
            self.finish(
                Outcome::Cancelled,
                0,
                Some("the attempt ended while the request was in flight"),
            );
        }
    }
}
