//! Calls to the API: the base URL, the bearer token, `?tenant=` for an admin acting as a
//! tenant, and problem answers turned into errors that print as `<title>: <detail>`.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use reqwest::{Method, RequestBuilder, StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

/// How long connecting to the API may take before the client gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of an answer that is not a problem document is quoted in an error.
const QUOTE_BYTES: usize = 300;

/// Settings missing or malformed before any request is made: exit code 2, like bad flags.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// A request the API did not answer with success.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// An `application/problem+json` answer.
    #[error("{title}: {detail}")]
    Problem {
        /// The HTTP status.
        status: StatusCode,
        /// The kind of problem (`Not Found`).
        title: String,
        /// What went wrong this time.
        detail: String,
    },
    /// Nothing answers at the URL.
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
        url: Url,
        /// The HTTP status.
        status: StatusCode,
        /// The start of the body.
        body: String,
    },
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    /// Its status (201 and 200 tell a new upload or job from one that was there).
    pub status: StatusCode,
    /// Its body, as it came.
    pub body: Bytes,
}

impl Answer {
    /// Parses the body as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "the API's answer is not what this client expects: {}",
                quote(&self.body)
            )
        })
    }

    /// Returns the body as text, for `--json`.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

/// An API client: one base URL, one token.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
    tenant: Option<String>,
}

/// An RFC 9457 problem document, as far as the client reads it.
#[derive(Debug, Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

impl Client {
    /// Returns a client of the API at `base`, authenticating with `token`, acting for `tenant`
    /// when it is given (the admin token's `?tenant=NAME`).
    pub fn new(base: Url, token: String, tenant: Option<String>) -> Result<Client, Usage> {
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(Usage(format!(
                "--url {base}: expected an http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("spool-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Usage(format!("building the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            token,
            tenant,
        })
    }

    /// Returns the URL of `/v1/<path...>` with `query`, each segment percent-encoded.
    fn url(&self, path: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in Client::new: the URL can be a base")
            .pop_if_empty()
            .push("v1")
            .extend(path);
        url.set_query(None);
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
            if let Some(tenant) = &self.tenant {
                pairs.append_pair("tenant", tenant);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// `GET /v1/<path>?<query>`.
    pub async fn get(&self, path: &[&str], query: &[(&str, &str)]) -> anyhow::Result<Answer> {
        self.send(Method::GET, self.url(path, query), |r| r).await
    }

    /// `POST /v1/<path>` with a JSON body.
    pub async fn post(&self, path: &[&str], body: &Value) -> anyhow::Result<Answer> {
        self.send(Method::POST, self.url(path, &[]), |r| r.json(body))
            .await
    }

    /// `PUT /v1/<path>` with `body`, `len` bytes of `content_type`.
    pub async fn put(
        &self,
        path: &[&str],
        body: reqwest::Body,
        len: u64,
        content_type: &'static str,
    ) -> anyhow::Result<Answer> {
        self.send(Method::PUT, self.url(path, &[]), |r| {
            r.header(header::CONTENT_TYPE, content_type)
                // Declared so that the server can refuse an oversized body before reading it.
                .header(header::CONTENT_LENGTH, len)
                .body(body)
        })
        .await
    }

    /// `PUT /v1/<path>` with a JSON body.
    pub async fn put_json(&self, path: &[&str], body: &Value) -> anyhow::Result<Answer> {
        self.send(Method::PUT, self.url(path, &[]), |r| r.json(body))
            .await
    }

    /// `PATCH /v1/<path>` with a JSON body.
    pub async fn patch(&self, path: &[&str], body: &Value) -> anyhow::Result<Answer> {
        self.send(Method::PATCH, self.url(path, &[]), |r| r.json(body))
            .await
    }

    /// `DELETE /v1/<path>`.
    pub async fn delete(&self, path: &[&str]) -> anyhow::Result<Answer> {
        self.send(Method::DELETE, self.url(path, &[]), |r| r).await
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> anyhow::Result<Answer> {
        let request = build(
            self.http
                .request(method.clone(), url.clone())
                .bearer_auth(&self.token),
        );
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_connect() => {
                return Err(Failure::Unreachable {
                    url: self.base.clone(),
                    cause: innermost(&e),
                }
                .into());
            }
            Err(e) => {
                let cause = innermost(&e);
                return Err(anyhow::Error::new(e).context(format!("{method} {url}: {cause}")));
            }
        };
        let status = response.status();
        let body = response
            .bytes()
            .await
            .with_context(|| format!("{method} {url}: reading the answer"))?;
        if status.is_success() {
            return Ok(Answer { status, body });
        }
        Err(match serde_json::from_slice::<Problem>(&body) {
            Ok(Problem {
                title: Some(title),
                detail,
            }) => Failure::Problem {
                status,
                title,
                detail: detail.unwrap_or_else(|| status.to_string()),
            },
            _ => Failure::Unexpected {
                method,
                url,
                status,
                body: quote(&body),
            },
        }
        .into())
    }
}

/// Returns the message of the innermost error under `e`: the OS's reason, not reqwest's
/// wrapping of it.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Returns the start of `body` as one line of text.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(QUOTE_BYTES)
        .collect();
    if text.chars().count() > QUOTE_BYTES {
        line.push('…');
    }
    if line.trim().is_empty() {
        "(empty body)".into()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str, tenant: Option<&str>) -> Client {
        Client::new(base.parse().unwrap(), "t".into(), tenant.map(String::from)).unwrap()
    }

    #[test]
    fn paths_are_joined_under_v1_and_percent_encoded() {
        let c = client("http://h:1", None);
        assert_eq!(
            c.url(&["jobs", "a/b"], &[]).as_str(),
            "http://h:1/v1/jobs/a%2Fb"
        );
        let c = client("https://h/spool/", Some("acme"));
        assert_eq!(
            c.url(&["jobs"], &[("state", "dead")]).as_str(),
            "https://h/spool/v1/jobs?state=dead&tenant=acme"
        );
    }

    #[test]
    fn a_url_that_is_not_http_is_refused() {
        assert!(Client::new("mailto:a@b".parse().unwrap(), "t".into(), None).is_err());
        assert!(Client::new("ftp://h/".parse().unwrap(), "t".into(), None).is_err());
    }

    #[test]
    fn quotes_are_one_line_and_bounded() {
        assert_eq!(quote(b"a\nb"), "a b");
        assert_eq!(quote(b""), "(empty body)");
        assert_eq!(quote(&[b'x'; 400]).chars().count(), QUOTE_BYTES + 1);
    }
}
