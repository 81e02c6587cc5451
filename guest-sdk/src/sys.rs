//! The one place that calls the host.
//!
//! On `wasm32` every function here is a WIT import; elsewhere it goes to the in-memory fake in
//! [`crate::testing`], so that handler logic can be unit-tested natively. The public modules
//! (`store`, `jobs`, `log`) call only these functions.

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::fake::*;

/// Outbound HTTP is not faked: natively a well-formed request is unavailable (a malformed
/// one is refused as it would be on wasm).
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn http_send(
    request: &crate::http::RequestBuilder,
) -> Result<crate::http::Response, crate::http::Error> {
    crate::http::split_url(&request.url)?;
    if request.method.is_empty() {
        return Err(crate::http::Error::Invalid("no method".into()));
    }
    Err(crate::http::Error::Unavailable)
}

#[cfg(target_arch = "wasm32")]
pub(crate) use http_wasm::http_send;

/// `wasi:http/outgoing-handler`, through the `wasip2` crate's bindings.
#[cfg(target_arch = "wasm32")]
mod http_wasm {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{
        ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions,
        Scheme,
    };
    use wasip2::io::streams::StreamError;

    use crate::http::{Error, RequestBuilder, Response, split_url};

    /// Most bytes one `blocking-write-and-flush` may take.
    const WRITE_CHUNK: usize = 4096;
    /// Bytes asked for per read of the response body.
    const READ_CHUNK: u64 = 64 << 10;

    fn from_code(code: &ErrorCode) -> Error {
        let text = format!("{code:?}");
        match code {
            ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
                Error::Denied(text)
            }
            ErrorCode::ConnectionLimitReached
            | ErrorCode::HttpRequestBodySize(_)
            | ErrorCode::HttpResponseBodySize(_) => Error::Limit(text),
            ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::HttpResponseTimeout
            | ErrorCode::DnsTimeout => Error::Timeout(text),
            ErrorCode::HttpRequestMethodInvalid | ErrorCode::HttpRequestUriInvalid => {
                Error::Invalid(text)
            }
            _ => Error::Connection(text),
        }
    }

    fn from_stream(error: StreamError) -> Error {
        match error {
            StreamError::LastOperationFailed(e) => match wasip2::http::types::http_error_code(&e) {
                Some(code) => from_code(&code),
                None => Error::Connection(e.to_debug_string()),
            },
            StreamError::Closed => Error::Connection("the stream closed".into()),
        }
    }

    pub(crate) fn http_send(request: &RequestBuilder) -> Result<Response, Error> {
        let (scheme, authority, path) = split_url(&request.url)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => Scheme::Other(other.to_string()),
        };
        let method = match request.method.as_str() {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        };
        let headers = Fields::from_list(&request.headers)
            .map_err(|e| Error::Invalid(format!("headers: {e:?}")))?;
        let outgoing = OutgoingRequest::new(headers);
        let invalid = |what: &str| Error::Invalid(what.to_string());
        outgoing
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        outgoing
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        outgoing
            .set_authority(Some(authority))
            .map_err(|()| invalid("authority"))?;
        outgoing
            .set_path_with_query(Some(path))
            .map_err(|()| invalid("path"))?;
        let body = outgoing.body().map_err(|()| invalid("body"))?;
        let options = RequestOptions::new();
        let nanos = |d: std::time::Duration| d.as_nanos().min(u64::MAX as u128) as u64;
        if let Some(t) = request.connect_timeout {
            let _ = options.set_connect_timeout(Some(nanos(t)));
        }
        if let Some(t) = request.timeout {
            let _ = options.set_first_byte_timeout(Some(nanos(t)));
            let _ = options.set_between_bytes_timeout(Some(nanos(t)));
        }
        // Handle first, then write: the host reads the body as the guest writes it.
        let future =
            outgoing_handler::handle(outgoing, Some(options)).map_err(|c| from_code(&c))?;
        let mut write_error = None;
        {
            let stream = body.write().map_err(|()| invalid("body stream"))?;
            for chunk in request.body.chunks(WRITE_CHUNK) {
                if let Err(e) = stream.blocking_write_and_flush(chunk) {
                    write_error = Some(from_stream(e));
                    break;
                }
            }
        }
        let finished = OutgoingBody::finish(body, None);
        let response = loop {
            match future.get() {
                Some(Ok(Ok(response))) => break response,
                // The response's error says more than the body's (a refusal, say).
                Some(Ok(Err(code))) => return Err(from_code(&code)),
                Some(Err(())) => return Err(Error::Connection("response taken twice".into())),
                None => future.subscribe().block(),
            }
        };
        if let Some(error) = write_error {
            return Err(error);
        }
        finished.map_err(|c| from_code(&c))?;
        let status = response.status();
        let headers = response.headers().entries();
        let incoming = response.consume().map_err(|()| invalid("response body"))?;
        let mut bytes = Vec::new();
        {
            let stream = incoming
                .stream()
                .map_err(|()| invalid("response body stream"))?;
            loop {
                match stream.blocking_read(READ_CHUNK) {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(StreamError::Closed) => break,
                    Err(e) => return Err(from_stream(e)),
                }
            }
        }
        let _ = IncomingBody::finish(incoming);
        Ok(Response {
            status,
            headers,
            body: bytes,
        })
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use crate::bindings::spool::job::idempotency_store as store;
    use crate::bindings::spool::job::jobs::{self, EnqueueRequest};
    use crate::bindings::spool::job::log as wit_log;
    use crate::jobs::EnqueueError;
    use crate::log::Level;
    use crate::store::StoreError;

    pub(crate) fn store_get(key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        store::get(key).map_err(StoreError::from)
    }

    pub(crate) fn store_put(key: &str, value: &[u8]) -> Result<(), StoreError> {
        store::put(key, value).map_err(StoreError::from)
    }

    pub(crate) fn store_delete(key: &str) -> Result<(), StoreError> {
        store::delete(key).map_err(StoreError::from)
    }

    pub(crate) fn store_add(key: &str, delta: i64) -> Result<(), StoreError> {
        store::add(key, delta).map_err(StoreError::from)
    }

    pub(crate) fn store_list_keys(
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        store::list_keys(prefix, after, limit).map_err(StoreError::from)
    }

    pub(crate) fn effect_key(label: &str) -> String {
        store::effect_key(label)
    }

    pub(crate) fn enqueue(request: &EnqueueRequest) -> Result<String, EnqueueError> {
        jobs::enqueue(request).map_err(EnqueueError::from)
    }

    pub(crate) fn log(level: Level, message: &str, fields: &[(String, String)]) {
        wit_log::log(level.into(), message, fields);
    }
}
