"""A Spool job handler written in Python that calls a vendor over HTTP.

Built into a WebAssembly component with componentize-py against `wit/` (world `http-handler` of
`spool:job@0.1.1`: `handler` plus `wasi:http/outgoing-handler@0.2.12`); see README.md beside
this file and `scripts/build-python.sh`.

Payload (UTF-8 JSON): `{"url": "https://api.vendor.example/v1/charges", "body": {...}}`. The
handler POSTs `body` as JSON to `url` and returns `{"status": 200, "body": "<the answer>"}`.
Spool adds an `Idempotency-Key` header to the request, the same on every retry of the job.
"""

import json
from urllib.parse import urlsplit

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, outgoing_handler
from wit_world.imports.spool_job_types import Failure_Permanent, Failure_Retry, Job
from wit_world.imports.streams import StreamError, StreamError_Closed
from wit_world.imports.wasi_http_types import (
    ErrorCode,
    ErrorCode_ConnectionLimitReached,
    ErrorCode_DestinationIpProhibited,
    ErrorCode_HttpRequestBodySize,
    ErrorCode_HttpRequestDenied,
    ErrorCode_HttpRequestMethodInvalid,
    ErrorCode_HttpRequestUriInvalid,
    ErrorCode_HttpResponseBodySize,
    Fields,
    IncomingBody,
    Method_Post,
    OutgoingBody,
    OutgoingRequest,
    Scheme_Http,
    Scheme_Https,
    http_error_code,
)

# Most bytes one `blocking_write_and_flush` may take (a wasi:io 0.2 rule).
WRITE_CHUNK = 4096
# Bytes asked for per read of the response body.
READ_CHUNK = 64 * 1024

# Spool refused the request; its log line says why in full.
DENIED = {
    ErrorCode_HttpRequestDenied: "the URL's origin is not on the tenant's allow-list",
    ErrorCode_DestinationIpProhibited: "the host resolves to a private address",
}
# Errors a retry cannot fix: a bound of the attempt, or a malformed request.
PERMANENT = (
    ErrorCode_ConnectionLimitReached,
    ErrorCode_HttpRequestBodySize,
    ErrorCode_HttpResponseBodySize,
    ErrorCode_HttpRequestMethodInvalid,
    ErrorCode_HttpRequestUriInvalid,
)


def _permanent(message: str) -> Err:
    return Err(Failure_Permanent(message))


def _retry(message: str) -> Err:
    return Err(Failure_Retry(message))


def _failure(code: ErrorCode) -> Err:
    """Maps a `wasi:http` error to the job's failure: denials and bounds are permanent, the
    rest (timeouts, refused or dropped connections) worth a retry."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    if type(code) in DENIED:
        return _permanent(f"vendor call denied ({name}): {DENIED[type(code)]}")
    if isinstance(code, PERMANENT):
        return _permanent(f"vendor call refused: {name}")
    return _retry(f"vendor call failed: {name}")


def _stream_failure(error: StreamError) -> Err:
    if isinstance(error, StreamError_Closed):
        return _retry("vendor call failed: the connection closed")
    code = http_error_code(error.value)
    if code is None:
        return _retry(f"vendor call failed: {error.value.to_debug_string()}")
    return _failure(code)


def post_json(url: str, body: bytes) -> tuple[int, bytes]:
    """POSTs `body` to `url` as JSON, blocking; returns the response's status and body.

    Raises `Err(Failure_*)` when the request gets no response.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _permanent(f"url {url!r} is not http(s)://host[:port]/path")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = OutgoingRequest(Fields.from_list([("content-type", b"application/json")]))
    try:
        request.set_method(Method_Post())
        request.set_scheme(Scheme_Https() if parts.scheme == "https" else Scheme_Http())
        request.set_authority(parts.netloc)
        request.set_path_with_query(path)
    except Err:
        raise _permanent(f"url {url!r} is not a valid request target")
    outgoing = request.body()

    # Send first, then write: the host streams the body to the vendor as it is written.
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise _failure(e.value)
    write_error = None
    with outgoing.write() as stream:
        try:
            for start in range(0, len(body), WRITE_CHUNK):
                stream.blocking_write_and_flush(body[start : start + WRITE_CHUNK])
        except Err as e:
            write_error = _stream_failure(e.value)
    try:
        OutgoingBody.finish(outgoing, None)
    except Err as e:
        write_error = write_error or _failure(e.value)

    with future:
        while (result := future.get()) is None:
            with future.subscribe() as ready:
                ready.block()
        # `result` is Ok(Ok(response)) or Ok(Err(code)); Err(()) only if taken twice.
        # The response's error says more than the body's (a denial, say).
        if isinstance(result.value, Err):
            raise _failure(result.value.value)
        if write_error is not None:
            raise write_error
        with result.value.value as response:
            return response.status(), _read_body(response.consume())


def _read_body(body: IncomingBody) -> bytes:
    chunks = []
    with body.stream() as stream:
        while True:
            try:
                chunks.append(stream.blocking_read(READ_CHUNK))
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise _stream_failure(e.value)
    IncomingBody.finish(body)
    return b"".join(chunks)


def _parse_payload(payload: bytes) -> tuple[str, bytes]:
    try:
        value = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _permanent(f"payload is not UTF-8 JSON: {e}")
    if not isinstance(value, dict) or not isinstance(value.get("url"), str):
        raise _permanent('payload must be a JSON object with a string "url"')
    return value["url"], json.dumps(value.get("body", {})).encode("utf-8")


class WitWorld(wit_world.WitWorld):
    def run(self, job: Job) -> bytes:
        """Returns the result bytes for `ok`; raises `Err(Failure_*)` for `err`."""
        url, body = _parse_payload(job.payload)
        status, answer = post_json(url, body)
        log.log(
            log.Level.INFO,
            "vendor answered",
            [("status", str(status)), ("bytes", str(len(answer))), ("attempt", str(job.attempt))],
        )
        # A busy or failing vendor may answer the same request differently next time.
        if status >= 500 or status == 429:
            raise _retry(f"vendor answered {status}")
        text = answer.decode("utf-8", "replace")
        if status >= 400:
            raise _permanent(f"vendor answered {status}: {text[:200]}")
        return json.dumps({"status": status, "body": text}).encode("utf-8")
