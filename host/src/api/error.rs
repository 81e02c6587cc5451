//! Errors as RFC 9457 problem details (`application/problem+json`).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// An error answer: a status, a short title for its kind, and a detail for this occurrence.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    detail: String,
    /// Seconds to wait before trying again (`Retry-After`), for a 429 or a 503.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> ApiError {
        ApiError {
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// This error, telling the client to wait `wait` (rounded up to whole seconds) before
    /// trying again.
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> ApiError {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.retry_after = Some(secs.max(1));
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no token, or one that is not valid.
    pub fn unauthorized(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, detail)
    }

    /// 403: the caller may not do this (a tenant calling an admin endpoint).
    pub fn forbidden(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404: no such thing, or not the caller's.
    pub fn not_found(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, detail)
    }

    /// 409: the request conflicts with what is stored.
    pub fn conflict(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, detail)
    }

    /// 413: the body is larger than allowed.
    pub fn too_large(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, detail)
    }

    /// 422: well-formed, but not acceptable (a limit above the tenant's cap, say).
    pub fn unprocessable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// 408: the request took longer than its route allows (its body arrived too slowly, or
    /// answering it did).
    pub fn timeout(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, detail)
    }

    /// 429: a quota is exhausted.
    pub fn too_many(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, detail)
    }

    /// 503: the database cannot be reached.
    pub fn unavailable(detail: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    /// 500: logs `cause` and answers without it.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        let reference = uuid::Uuid::new_v4();
        tracing::error!(%reference, error = %cause, "internal error answering a request");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error; reference {reference} in the server log"),
        )
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let slug = title.to_ascii_lowercase().replace([' ', '\''], "-");
        let body = json!({
            "type": format!("https://spool.dev/problems/{slug}"),
            "title": title,
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::not_found("not found"),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Unavailable(m) => {
                tracing::warn!(error = %m, "database unavailable");
                ApiError::unavailable("the database is unavailable; try again")
            }
            // A safety net: requests are validated before they reach the store, but a value
            // the database refuses is still the request's fault, never the server's.
            StoreError::InvalidValue(m) => {
                ApiError::unprocessable(format!("a value in the request is out of range: {m}"))
            }
            e => ApiError::internal(e),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match r {
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected a body with content-type application/json",
            ),
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::too_large("the body is larger than this endpoint accepts")
            }
            JsonRejection::JsonDataError(e) => ApiError::unprocessable(e.body_text()),
            r => ApiError::bad_request(r.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> ApiError {
        ApiError::bad_request(r.body_text())
    }
}

/// The result of a request handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// `axum::Json`, rejecting bad bodies with problem details.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// `axum::extract::Query`, rejecting bad query strings with problem details.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// `axum::extract::Path`, rejecting bad path parameters with problem details.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Reads a JSON body of at most `limit` bytes, as [`ApiJson`] does with the route's limit:
/// for a route whose limit depends on the caller (the tenant's payload size, say).
pub async fn json_within<T: serde::de::DeserializeOwned>(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> ApiResult<T> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime_type::Essence>().ok())
        .is_some_and(|m| m.is_json());
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected a body with content-type application/json",
        ));
    }
    let too_large = || {
        ApiError::too_large(format!(
            "the body is larger than this endpoint accepts ({limit} bytes)"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let Json(value) = Json::<T>::from_bytes(&bytes)?;
    Ok(value)
}

/// Just enough of a media type to tell JSON apart, as axum's `Json` does.
mod mime_type {
    /// A media type's essence: `type/subtype`, without parameters, lower-cased.
    pub struct Essence(String);

    impl std::str::FromStr for Essence {
        type Err = ();

        fn from_str(s: &str) -> Result<Essence, ()> {
            let essence = s.split(';').next().unwrap_or_default().trim();
            if essence.split('/').count() != 2 {
                return Err(());
            }
            Ok(Essence(essence.to_ascii_lowercase()))
        }
    }

    impl Essence {
        /// `application/json`, or any `+json` type.
        pub fn is_json(&self) -> bool {
            let (kind, subtype) = self.0.split_once('/').expect("checked when parsed");
            kind == "application" && (subtype == "json" || subtype.ends_with("+json"))
        }
    }
}
