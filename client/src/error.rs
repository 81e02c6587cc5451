//! What can go wrong calling the API.

use reqwest::{Method, StatusCode};
use url::Url;

/// A call that did not come back with the answer asked for.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The base URL is not an `http://` or `https://` URL that paths can be joined to.
    #[error("{0}: expected an http:// or https:// URL")]
    BadUrl(Url),
    /// The HTTP client could not be built (its TLS stack, say).
    #[error("building the HTTP client: {0}")]
    Build(reqwest::Error),
    /// An `application/problem+json` answer: the API refused the request.
    #[error("{title}: {detail}")]
    Problem {
        /// The HTTP status.
        status: StatusCode,
        /// The kind of problem (`Not Found`).
        title: String,
        /// What went wrong this time (the status when the problem gives no detail).
        detail: String,
    },
    /// Nothing answers at the base URL.
    #[error(
        "cannot reach the Spool API at {url}: {cause} (is `spool serve` running there? set \
         SPOOL_URL or pass --url)"
    )]
    Unreachable {
        /// The base URL tried.
        url: Url,
        /// The innermost cause (`Connection refused (os error 111)`).
        cause: String,
    },
    /// An error status without a problem document: a proxy, or not Spool at all.
    #[error("{method} {url}: {status}: {body}")]
    Unexpected {
        /// The method called.
        method: Method,
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: StatusCode,
        /// The start of the body, on one line.
        body: String,
    },
    /// The request could not be sent, or its answer not received (a timeout, a reset).
    #[error("{method} {url}: {cause}")]
    Send {
        /// The method called.
        method: Method,
        /// The URL called.
        url: String,
        /// The innermost cause.
        cause: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// The answer's body could not be read to its end.
    #[error("{method} {url}: reading the answer")]
    Read {
        /// The method called.
        method: Method,
        /// The URL called.
        url: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// A successful answer that is not the type asked for: another version of the API, or
    /// not Spool.
    #[error("the API's answer is not what this client expects: {body}")]
    Decode {
        /// The start of the body, on one line.
        body: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The request's body could not be written as JSON (a map whose keys are not strings).
    #[error("writing the request as JSON")]
    Encode(#[source] serde_json::Error),
}

impl Error {
    /// The status of an answer the API gave (a problem or an unexpected answer); `None` when
    /// no answer came.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Error::Problem { status, .. } | Error::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }
}
