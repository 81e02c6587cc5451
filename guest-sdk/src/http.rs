//! Outbound HTTP: call a vendor's API from a handler, blocking, the way a handler is written.
//!
//! ```no_run
//! use spool_guest::{Failure, http};
//!
//! fn charge(order: &str, cents: u64) -> Result<String, Failure> {
//!     let response = http::post("https://api.payments.example/v1/charges")
//!         .json(&serde_json::json!({ "order": order, "amount": cents }))
//!         .send()?
//!         .error_for_status()?;
//!     let charge: serde_json::Value = response.json()?;
//!     Ok(charge["id"].as_str().unwrap_or_default().to_string())
//! }
//! ```
//!
//! Spool sends only to origins on the tenant's allow-list (`allowed_hosts`), never to a
//! private or loopback address unless the operator allows the network, and plain `http://`
//! only inside such networks. A request other than GET or HEAD without an `Idempotency-Key`
//! header gets one from Spool: the job's effect key for the request's position in the
//! attempt, the same on every retry of the job that makes the same calls, so a vendor that
//! dedupes by the key charges once. Set the header to choose the key yourself.
//!
//! Errors convert into a [`Failure`](crate::Failure) with `?`: timeouts, connection errors and
//! 5xx/429 statuses (through [`Response::error_for_status`]) are retried; a denied request,
//! a bound of the attempt and other 4xx statuses are permanent. Why a request was denied is in
//! the job's log. Built on `wasi:http/outgoing-handler@0.2`; on native targets (unit tests)
//! every request fails with [`Error::Unavailable`].

use std::fmt;
use std::time::Duration;

/// Why a request got no usable response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// Spool refused it: the origin is not on the tenant's allow-list, or the address is
    /// private (the job's log says which). Permanent.
    Denied(String),
    /// A bound of the attempt: too many requests, or a request or response body too large.
    /// Permanent.
    Limit(String),
    /// Connecting, the response's headers or a pause in its body took too long. Transient.
    Timeout(String),
    /// Name lookup, connection, TLS or protocol failure. Transient.
    Connection(String),
    /// The response's status is an error ([`Response::error_for_status`]): transient for 5xx
    /// and 429, permanent otherwise.
    Status(u16),
    /// The request cannot be made (a malformed URL or header, or a body that does not
    /// encode). Permanent.
    Invalid(String),
    /// Outbound HTTP is not available here (native unit tests).
    Unavailable,
}

impl Error {
    /// Whether retrying the job may help.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Timeout(_) | Error::Connection(_) => true,
            Error::Status(status) => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied(why) => write!(f, "request denied: {why} (the job's log says why)"),
            Error::Limit(why) => write!(f, "request over a limit: {why}"),
            Error::Timeout(why) => write!(f, "request timed out: {why}"),
            Error::Connection(why) => write!(f, "request failed: {why}"),
            Error::Status(status) => write!(f, "the server answered {status}"),
            Error::Invalid(why) => write!(f, "invalid request: {why}"),
            Error::Unavailable => f.write_str("outbound HTTP is not available outside wasm32"),
        }
    }
}

impl std::error::Error for Error {}

/// A request being built; [`RequestBuilder::send`] sends it.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    pub(crate) method: String,
    pub(crate) url: String,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) body: Vec<u8>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
    /// A body that did not encode: reported by [`RequestBuilder::send`].
    pub(crate) invalid: Option<String>,
}

/// Starts a request of `method` (`GET`, `POST`, ...) to `url` (`https://host[:port]/path`).
pub fn request(method: &str, url: &str) -> RequestBuilder {
    RequestBuilder {
        method: method.to_ascii_uppercase(),
        url: url.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
        connect_timeout: None,
        timeout: None,
        invalid: None,
    }
}

/// Starts a GET request.
pub fn get(url: &str) -> RequestBuilder {
    request("GET", url)
}

/// Starts a POST request.
pub fn post(url: &str) -> RequestBuilder {
    request("POST", url)
}

/// Starts a PUT request.
pub fn put(url: &str) -> RequestBuilder {
    request("PUT", url)
}

/// Starts a DELETE request.
pub fn delete(url: &str) -> RequestBuilder {
    request("DELETE", url)
}

impl RequestBuilder {
    /// Adds a header (`Idempotency-Key` replaces the automatic one).
    #[must_use]
    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_ref().to_vec()));
        self
    }

    /// Sets the body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, and `Content-Type: application/json`. A value that
    /// does not encode makes [`RequestBuilder::send`] fail with [`Error::Invalid`].
    #[must_use]
    pub fn json<T: serde::Serialize + ?Sized>(mut self, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => self.header("content-type", "application/json").body(body),
            Err(e) => {
                self.invalid = Some(format!("the JSON body: {e}"));
                self
            }
        }
    }

    /// Bounds connecting (the tenant's cap applies when it is lower).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Bounds the wait for the response's headers and each pause in its body (the tenant's
    /// caps apply when they are lower).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response, blocking.
    pub fn send(self) -> Result<Response, Error> {
        if let Some(why) = self.invalid {
            return Err(Error::Invalid(why));
        }
        crate::sys::http_send(&self)
    }
}

/// A response, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of header `name` (any case), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The body.
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded from JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|e| Error::Invalid(format!("response: {e}")))
    }

    /// This response if its status is below 400, else [`Error::Status`].
    pub fn error_for_status(self) -> Result<Response, Error> {
        if self.status >= 400 {
            Err(Error::Status(self.status))
        } else {
            Ok(self)
        }
    }
}

/// Splits `scheme://authority/path?query`.
pub(crate) fn split_url(url: &str) -> Result<(&str, &str, &str), Error> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| Error::Invalid(format!("{url:?} has no scheme")))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(Error::Invalid(format!("{url:?} has no host")));
    }
    Ok((scheme, authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        assert_eq!(
            split_url("https://api.example.com:8443/v1/charges?x=1").unwrap(),
            ("https", "api.example.com:8443", "/v1/charges?x=1")
        );
        assert_eq!(
            split_url("http://vendor.test").unwrap(),
            ("http", "vendor.test", "/")
        );
        assert!(split_url("vendor.test/x").is_err());
    }

    #[test]
    fn timeouts_and_server_errors_are_retried_the_rest_is_not() {
        assert!(Error::Timeout("t".into()).is_transient());
        assert!(Error::Status(503).is_transient());
        assert!(Error::Status(429).is_transient());
        assert!(!Error::Status(404).is_transient());
        assert!(!Error::Denied("d".into()).is_transient());
        assert!(crate::Failure::from(Error::Denied("d".into())).is_permanent());
        assert!(crate::Failure::from(Error::Status(502)).is_retry());
    }

    #[test]
    fn natively_requests_are_unavailable() {
        assert_eq!(get("https://x.example").send(), Err(Error::Unavailable));
    }
}
