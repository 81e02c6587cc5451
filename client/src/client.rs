//! The client: the base URL, the bearer token, `?tenant=` for an admin acting as a tenant;
//! a [`Call`] per request, and problem answers turned into [`Error::Problem`].

use std::borrow::Cow;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use reqwest::{Method, StatusCode, header};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::Error;

/// How long connecting to the API may take before a call gives up, unless
/// [`Builder::connect_timeout`] says otherwise.
pub const CONNECT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
/// How much of an answer that is not what was asked for is quoted in an error, in characters.
const QUOTE_CHARS: usize = 300;

/// A client of one Spool API (one base URL) with one token.
///
/// Cheap to clone: clones share their connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
    tenant: Option<String>,
}

/// Settings of a [`Client`] beyond its URL and token.
#[derive(Debug)]
pub struct Builder {
    base: Url,
    token: String,
    tenant: Option<String>,
    connect_timeout: Duration,
    user_agent: String,
}

impl Builder {
    /// Acts for `tenant` (sends `?tenant=NAME` on every call): the admin token acting as a
    /// tenant. Default: none.
    pub fn tenant(self, tenant: Option<String>) -> Builder {
        Builder { tenant, ..self }
    }

    /// How long connecting may take. Default [`CONNECT_TIMEOUT_DEFAULT`] (10 s).
    pub fn connect_timeout(self, connect_timeout: Duration) -> Builder {
        Builder {
            connect_timeout,
            ..self
        }
    }

    /// The `User-Agent` sent. Default `spool-client/<version>`.
    pub fn user_agent(self, user_agent: impl Into<String>) -> Builder {
        Builder {
            user_agent: user_agent.into(),
            ..self
        }
    }

    /// Returns the client, or [`Error::BadUrl`] when the base URL is not `http://` or
    /// `https://`.
    pub fn build(self) -> Result<Client, Error> {
        if !matches!(self.base.scheme(), "http" | "https") || self.base.cannot_be_a_base() {
            return Err(Error::BadUrl(self.base));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .user_agent(self.user_agent)
            .build()
            .map_err(Error::Build)?;
        Ok(Client {
            http,
            base: self.base,
            token: self.token,
            tenant: self.tenant,
        })
    }
}

impl Client {
    /// Returns a client of the API at `base` (`http://127.0.0.1:8080`; the API's paths are
    /// under its `/v1/`), authenticating with `token`, with the default settings.
    pub fn new(base: Url, token: impl Into<String>) -> Result<Client, Error> {
        Client::builder(base, token).build()
    }

    /// Returns a builder of a client of the API at `base`, authenticating with `token`.
    pub fn builder(base: Url, token: impl Into<String>) -> Builder {
        Builder {
            base,
            token: token.into(),
            tenant: None,
            connect_timeout: CONNECT_TIMEOUT_DEFAULT,
            user_agent: concat!("spool-client/", env!("CARGO_PKG_VERSION")).into(),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Returns a call of `method` on `/v1/<path...>` (each segment percent-encoded) whose
    /// successful answer is a `T`: the raw path, for an operation or a body the typed methods
    /// do not cover.
    pub fn request<T>(&self, method: Method, path: &[&str]) -> Call<'_, T> {
        Call {
            client: self,
            method,
            path: path.iter().map(|s| s.to_string()).collect(),
            query: Vec::new(),
            body: Body::None,
            answer: PhantomData,
        }
    }

    /// Returns the URL of `/v1/<path...>` with `query`, then `tenant` when the client acts for
    /// one.
    fn url(&self, path: &[String], query: &[(String, String)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in Builder::build: the URL can be a base")
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
}

/// A request's body.
#[derive(Debug)]
enum Body {
    None,
    Json(Result<Vec<u8>, serde_json::Error>),
    Raw {
        body: reqwest::Body,
        len: u64,
        content_type: &'static str,
    },
}

/// One call of the API, answered by a `T` when it succeeds.
///
/// `.await` it for the `T`; [`Call::reply`] keeps the status and the body as they came (what
/// `spool --json` prints), and [`Call::raw`] returns an error answer as it came too.
#[derive(Debug)]
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<'c, T> {
    client: &'c Client,
    method: Method,
    path: Vec<String>,
    query: Vec<(String, String)>,
    body: Body,
    answer: PhantomData<fn() -> T>,
}

impl<'c, T> Call<'c, T> {
    /// Adds `name=value` to the query string.
    pub fn query(mut self, name: &str, value: &str) -> Call<'c, T> {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Adds the fields of `query` (a struct of strings and numbers) to the query string, in
    /// order.
    pub fn query_of(mut self, query: &impl Serialize) -> Call<'c, T> {
        let encoded = serde_urlencoded::to_string(query).expect("a query of plain fields");
        self.query
            .extend(url::form_urlencoded::parse(encoded.as_bytes()).into_owned());
        self
    }

    /// Sends `body` as JSON.
    pub fn json(mut self, body: &impl Serialize) -> Call<'c, T> {
        self.body = Body::Json(serde_json::to_vec(body));
        self
    }

    /// Sends `body`, `len` bytes of `content_type` (declared, so that the server can refuse
    /// an oversized body before reading it).
    pub fn body(
        mut self,
        body: impl Into<reqwest::Body>,
        len: u64,
        content_type: &'static str,
    ) -> Call<'c, T> {
        self.body = Body::Raw {
            body: body.into(),
            len,
            content_type,
        };
        self
    }

    /// Sends the request and returns the answer as it came, whatever its status; an error only
    /// when no answer came.
    pub async fn raw(self) -> Result<Reply<T>, Error> {
        let client = self.client;
        let url = client.url(&self.path, &self.query);
        let method = self.method;
        let request = client
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(&client.token);
        let request = match self.body {
            Body::None => request,
            Body::Json(json) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(json.map_err(Error::Encode)?),
            Body::Raw {
                body,
                len,
                content_type,
            } => request
                .header(header::CONTENT_TYPE, content_type)
                .header(header::CONTENT_LENGTH, len)
                .body(body),
        };
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_connect() => {
                return Err(Error::Unreachable {
                    url: client.base.clone(),
                    cause: innermost(&e),
                });
            }
            Err(e) => {
                return Err(Error::Send {
                    method,
                    url: url.into(),
                    cause: innermost(&e),
                    source: e,
                });
            }
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(source) => {
                return Err(Error::Read {
                    method,
                    url: url.into(),
                    source,
                });
            }
        };
        Ok(Reply {
            method,
            url,
            status,
            body,
            value: PhantomData,
        })
    }

    /// Sends the request and returns a successful answer as it came; an error answer is an
    /// [`Error::Problem`] (or [`Error::Unexpected`], without a problem document).
    pub async fn reply(self) -> Result<Reply<T>, Error> {
        let reply = self.raw().await?;
        if reply.status.is_success() {
            return Ok(reply);
        }
        Err(reply.problem())
    }
}

impl<T: DeserializeOwned> Call<'_, T> {
    /// Sends the request and returns its answer; what `.await` does.
    pub async fn send(self) -> Result<T, Error> {
        self.reply().await?.value()
    }
}

impl<'c, T: DeserializeOwned + 'c> IntoFuture for Call<'c, T> {
    type Output = Result<T, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'c>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.send())
    }
}

/// An answer as it came: its status and its body, which parses as a `T` when the call
/// succeeded.
#[derive(Debug)]
pub struct Reply<T> {
    method: Method,
    url: Url,
    /// Its status (201 and 200 tell a new upload, job or schedule from one that was there).
    pub status: StatusCode,
    /// Its body, as it came.
    pub body: Bytes,
    value: PhantomData<fn() -> T>,
}

/// An RFC 9457 problem document, as far as the client reads it.
#[derive(Debug, Deserialize)]
struct ProblemFields {
    title: Option<String>,
    detail: Option<String>,
}

impl<T> Reply<T> {
    /// Returns the body as text (what `--json` prints).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// Returns the error this answer stands for: its problem document as
    /// [`Error::Problem`], or [`Error::Unexpected`] without one.
    fn problem(self) -> Error {
        match serde_json::from_slice::<ProblemFields>(&self.body) {
            Ok(ProblemFields {
                title: Some(title),
                detail,
            }) => Error::Problem {
                status: self.status,
                title,
                detail: detail.unwrap_or_else(|| self.status.to_string()),
            },
            _ => Error::Unexpected {
                method: self.method,
                url: self.url.into(),
                status: self.status,
                body: quote(&self.body),
            },
        }
    }
}

impl<T: DeserializeOwned> Reply<T> {
    /// Parses the body as a `T` (an empty body as `null`, which `()` is).
    pub fn value(&self) -> Result<T, Error> {
        let body: &[u8] = if self.body.is_empty() {
            b"null"
        } else {
            &self.body
        };
        serde_json::from_slice(body).map_err(|source| Error::Decode {
            body: quote(&self.body),
            source,
        })
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
        .take(QUOTE_CHARS)
        .collect();
    if text.chars().count() > QUOTE_CHARS {
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
        Client::builder(base.parse().unwrap(), "t")
            .tenant(tenant.map(String::from))
            .build()
            .unwrap()
    }

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paths_are_joined_under_v1_and_percent_encoded() {
        let c = client("http://h:1", None);
        assert_eq!(
            c.url(&path(&["jobs", "a/b"]), &[]).as_str(),
            "http://h:1/v1/jobs/a%2Fb"
        );
        let c = client("https://h/spool/", Some("acme"));
        assert_eq!(
            c.url(&path(&["jobs"]), &[("state".into(), "dead".into())])
                .as_str(),
            "https://h/spool/v1/jobs?state=dead&tenant=acme"
        );
    }

    #[test]
    fn a_query_struct_becomes_pairs_in_field_order() {
        let c = client("http://h", Some("acme"));
        let call = c
            .request::<()>(Method::GET, &["jobs"])
            .query_of(&crate::types::ListQuery {
                state: Some("dead".into()),
                limit: Some(5),
                ..Default::default()
            });
        assert_eq!(
            c.url(&call.path, &call.query).as_str(),
            "http://h/v1/jobs?state=dead&limit=5&tenant=acme"
        );
    }

    #[test]
    fn a_url_that_is_not_http_is_refused() {
        assert!(Client::new("mailto:a@b".parse().unwrap(), "t").is_err());
        assert!(Client::new("ftp://h/".parse().unwrap(), "t").is_err());
    }

    #[test]
    fn quotes_are_one_line_and_bounded() {
        assert_eq!(quote(b"a\nb"), "a b");
        assert_eq!(quote(b""), "(empty body)");
        assert_eq!(quote(&[b'x'; 400]).chars().count(), QUOTE_CHARS + 1);
    }
}
