//! Bodies with bounds: a request body that may not pass its byte limit, and a response body
//! that may not pass its byte limit nor pause longer than the between-bytes timeout, and
//! that records its request when it ends.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, WasiBody};

use super::record::{Outcome, Pending};

/// Most of a refused request's body that is read (and thrown away) before the refusal is
/// answered, and for how long: a guest still writing its body would otherwise see its stream
/// closed ("connection reset") rather than the refusal.
const DRAIN_BYTES: u64 = 1 << 20;
const DRAIN_TIME: Duration = Duration::from_millis(500);

/// Reads and discards up to [`DRAIN_BYTES`] of `body` for at most [`DRAIN_TIME`].
pub(crate) async fn drain(mut body: WasiBody) {
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                read += data.len() as u64;
            }
            if read > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

/// A guest's request body, failed past `max` bytes.
pub(crate) struct RequestBody {
    inner: WasiBody,
    max: u64,
    sent: u64,
    /// Set when the body passed `max`, for the request's error to say so.
    over: Arc<AtomicBool>,
}

impl RequestBody {
    pub(crate) fn new(inner: WasiBody, max: u64, over: Arc<AtomicBool>) -> RequestBody {
        RequestBody {
            inner,
            max,
            sent: 0,
            over,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.over.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.sent += data.len() as u64;
                    if this.sent > this.max {
                        this.over.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(Error::HttpRequestBodySize(Some(this.sent)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body as the guest reads it: bounded in bytes and in pauses, recording its
/// request when it ends, fails or is dropped.
pub(crate) struct ResponseBody {
    inner: hyper::body::Incoming,
    max: u64,
    read: u64,
    between: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    call: Pending,
    ended: bool,
}

impl ResponseBody {
    pub(crate) fn new(
        inner: hyper::body::Incoming,
        max: u64,
        between: Duration,
        call: Pending,
    ) -> ResponseBody {
        ResponseBody {
            inner,
            max,
            read: 0,
            between,
            timer: Box::pin(tokio::time::sleep(between)),
            call,
            ended: false,
        }
    }

    fn fail(
        &mut self,
        outcome: Outcome,
        reason: &str,
        error: Error,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.ended = true;
        self.call.finish(outcome, self.read, Some(reason));
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.read += data.len() as u64;
                    if this.read > this.max {
                        let reason = format!(
                            "the response body passed the {}-byte limit (max_http_response_bytes)",
                            this.max
                        );
                        let limit = this.max;
                        return this.fail(
                            Outcome::Limit,
                            &reason,
                            Error::HttpResponseBodySize(Some(limit)),
                        );
                    }
                }
                let next = tokio::time::Instant::now() + this.between;
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let reason = format!("reading the response body: {e}");
                this.fail(Outcome::Error, &reason, Error::Hyper(e))
            }
            Poll::Ready(None) => {
                this.ended = true;
                this.call.finish(Outcome::Ok, this.read, None);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.timer.as_mut().poll(cx).is_ready() {
                    let reason = format!(
                        "the response body paused longer than {} ms (between-bytes timeout)",
                        this.between.as_millis()
                    );
                    return this.fail(Outcome::Timeout, &reason, Error::ConnectionReadTimeout);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // The guest dropped the body, read or not: the request itself got its answer.
        let read = self.read;
        self.call.finish(Outcome::Ok, read, None);
    }
}
