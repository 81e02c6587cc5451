//! Every limit, one row each: what one attempt of one job may use ([`Limits`]), and what a
//! tenant may be given ([`TenantLimitSpec`], [`TenantLimits`]) or a job may ask for
//! ([`LimitSpec`]). A new limit is one row; `limit_table.rs` writes out the structs and the
//! field-by-field functions.
//!
//! They live in the client crate because they are part of the API: a tenant's limits are what
//! `/v1/tenants` answers and takes, and a job's what `POST /v1/jobs` takes. The server
//! re-exports them as `spool::model::{Limits, TenantLimits, ...}`.

use std::convert::identity;
use std::time::Duration;

attempt_limits! {
    /// The bounds on everything a guest controls during one attempt.
    ///
    /// A tenant has a set of these as its caps; a job may ask for less, never more
    /// ([`Limits::capped_by`]). The defaults are the README's sandbox table.
    pub struct Limits {
        /// Fuel units the attempt may burn (roughly one per WebAssembly instruction).
        /// Default [`Limits::DEFAULT_FUEL`] (10^9).
        fuel: u64 = Limits::DEFAULT_FUEL,
        /// Wall-clock time the attempt may take, host calls included. Default 30 s.
        timeout: Duration = Limits::DEFAULT_TIMEOUT,
        /// Linear memory the instance may grow to, in bytes. Default 64 MiB.
        memory_bytes: u64 = Limits::DEFAULT_MEMORY_BYTES,
        /// Largest result the handler may return, in bytes. Default 1 MiB.
        max_result_bytes: u64 = 1 << 20,
        /// Log bytes kept per attempt (log calls plus stdout/stderr). Default 64 KiB; past it,
        /// lines are dropped and counted.
        max_log_bytes: u64 = 64 << 10,
        /// Longest idempotency-store key, in bytes. Default 512.
        max_store_key_bytes: u32 = 512,
        /// Largest idempotency-store value, in bytes. Default 256 KiB.
        max_store_value_bytes: u32 = 256 << 10,
        /// Bytes (keys plus values) the attempt may write to the store in all. Default 4 MiB.
        max_store_write_bytes: u64 = 4 << 20,
        /// Store reads (`get` and `list-keys` calls that reach the database) per attempt. Default
        /// 10,000: a read loop is refused with `quota-exceeded`, not served forever.
        max_store_reads: u32 = 10_000,
        /// Bytes (values and keys) the attempt may read from the store in all. Default 64 MiB.
        max_store_read_bytes: u64 = 64 << 20,
        /// Follow-up jobs the attempt may enqueue. Default 100.
        max_enqueued: u32 = 100,
        /// Largest payload of a follow-up job, in bytes. Default 256 KiB.
        max_payload_bytes: u32 = 256 << 10,
        /// Outbound HTTP requests the attempt may make; past it a request fails at once. Default
        /// [`Limits::DEFAULT_HTTP_REQUESTS`] (50).
        max_http_requests: u32 = Limits::DEFAULT_HTTP_REQUESTS,
        /// Largest outbound HTTP response body, in bytes; past it the guest's read fails.
        /// Default 10 MiB.
        max_http_response_bytes: u64 = Limits::DEFAULT_HTTP_RESPONSE_BYTES,
        /// Largest outbound HTTP request body, in bytes; past it the request fails. Default 1 MiB.
        max_http_request_bytes: u64 = Limits::DEFAULT_HTTP_REQUEST_BYTES,
        /// Longest an outbound request may take to connect (name lookup, TCP and TLS); a guest
        /// may ask for less. Default 5 s.
        http_connect_timeout: Duration = Limits::DEFAULT_HTTP_CONNECT_TIMEOUT,
        /// Longest an outbound request may wait, once connected, for the response's headers
        /// (sending the request body included); a guest may ask for less. Default 20 s.
        http_first_byte_timeout: Duration = Limits::DEFAULT_HTTP_FIRST_BYTE_TIMEOUT,
        /// Longest an outbound response body may pause between two chunks; a guest may ask for
        /// less. Default 10 s.
        http_between_bytes_timeout: Duration = Limits::DEFAULT_HTTP_BETWEEN_BYTES_TIMEOUT,
    }
}

// A tenant's limits, in the API's units. `attempt` names the field of `Limits` a limit caps
// and converts to its unit; `job` lets a job ask for less; `shown` documents the effective
// value. Changing a name, a type or a default changes the API (and `spool.limit_defaults`).
tenant_limits! {
    /// The limits a tenant has been given explicitly; every unset field takes its default (see
    /// [`TenantLimits`]). This is what `POST /v1/tenants` and `PATCH /v1/tenants/{name}` accept and
    /// what is stored.
    pub struct TenantLimitSpec;
    /// A tenant's effective limits: its [`TenantLimitSpec`] over the defaults.
    pub struct TenantLimits;
    /// Limits a job or tenant asks for; unset fields take the level above's.
    pub struct LimitSpec;

    /// Fuel per attempt (a job may ask for less).
    fuel: u64 = Limits::DEFAULT_FUEL, [> 0], attempt fuel(identity), job "Fuel per attempt.",
        shown "Fuel per attempt. Default 10^9.";
    /// Wall-clock timeout per attempt, in milliseconds.
    timeout_ms: u64 = Limits::DEFAULT_TIMEOUT.as_millis() as u64, [> 0],
        attempt timeout(Duration::from_millis),
        job "Wall-clock timeout per attempt, in milliseconds.",
        shown "Timeout per attempt, in milliseconds. Default 30,000.";
    /// Linear memory per attempt, in MiB.
    memory_mb: u64 = Limits::DEFAULT_MEMORY_BYTES >> 20, [> 0], attempt memory_bytes(mib),
        job "Linear memory per attempt, in MiB.",
        shown "Linear memory per attempt, in MiB. Default 64.";
    /// Jobs running at once, over all workers.
    max_running: u32 = 100, [> 0, <= i32::MAX as u32 => "is too large"],
        shown "Jobs running at once. Default 100.";
    /// Jobs waiting (scheduled, available, running, retryable) at once; past it enqueue
    /// answers 429.
    max_queued: u64 = 100_000, [], shown "Jobs waiting at once. Default 100,000.";
    /// Largest job payload, in bytes (enqueued over the API or by a handler).
    max_payload_bytes: u32 = 256 << 10, [> 0], attempt max_payload_bytes(identity),
        shown "Largest payload, in bytes. Default 256 KiB.";
    /// Largest handler component, in bytes.
    max_component_bytes: u64 = 64 << 20, [> 0],
        shown "Largest component, in bytes. Default 64 MiB.";
    /// Bytes (keys plus values) in the tenant's idempotency store.
    max_store_bytes: u64 = 64 << 20, [], shown "Idempotency-store bytes. Default 64 MiB.";
    /// Follow-up jobs one attempt may enqueue.
    max_follow_ups: u32 = 100, [], attempt max_enqueued(identity),
        shown "Follow-up jobs per attempt. Default 100.";
    /// Jobs enqueued per second over the API; a batch may use up to a second's worth at once.
    enqueue_rate: u32 = 10_000, [> 0], shown "Jobs enqueued per second. Default 10,000.";
    /// Races on store keys a job may lose (each runs it again, no attempt charged) before a
    /// conflict counts as a failure of kind `commit`.
    max_conflicts: u32 = 100, [<= 100_000],
        shown "Store-key races a job may lose before a conflict is a failure. Default 100.";
    /// Distinct queues the tenant may have jobs in; past it an enqueue naming a new queue
    /// answers 422.
    max_queues: u32 = 100, [> 0], shown "Distinct queues with jobs. Default 100.";
    /// Outbound HTTP requests one attempt may make.
    max_http_requests: u32 = Limits::DEFAULT_HTTP_REQUESTS, [<= Limits::MAX_HTTP_REQUESTS],
        attempt max_http_requests(identity),
        shown "Outbound HTTP requests per attempt. Default 50.";
    /// Largest outbound HTTP response body, in bytes.
    max_http_response_bytes: u64 = Limits::DEFAULT_HTTP_RESPONSE_BYTES,
        [> 0, <= Limits::MAX_HTTP_BODY_BYTES], attempt max_http_response_bytes(identity),
        shown "Largest outbound HTTP response body, in bytes. Default 10 MiB.";
    /// Largest outbound HTTP request body, in bytes.
    max_http_request_bytes: u64 = Limits::DEFAULT_HTTP_REQUEST_BYTES,
        [> 0, <= Limits::MAX_HTTP_BODY_BYTES], attempt max_http_request_bytes(identity),
        shown "Largest outbound HTTP request body, in bytes. Default 1 MiB.";
    /// Cap on connecting (name lookup, TCP, TLS) for an outbound request, in milliseconds.
    http_connect_timeout_ms: u64 = Limits::DEFAULT_HTTP_CONNECT_TIMEOUT.as_millis() as u64,
        [> 0, <= MAX_HTTP_TIMEOUT_MS], attempt http_connect_timeout(Duration::from_millis),
        shown "Cap on connecting, in milliseconds. Default 5,000.";
    /// Cap on waiting for an outbound response's headers, in milliseconds.
    http_first_byte_timeout_ms: u64 = Limits::DEFAULT_HTTP_FIRST_BYTE_TIMEOUT.as_millis() as u64,
        [> 0, <= MAX_HTTP_TIMEOUT_MS], attempt http_first_byte_timeout(Duration::from_millis),
        shown "Cap on waiting for response headers, in milliseconds. Default 20,000.";
    /// Cap on a pause within an outbound response body, in milliseconds.
    http_between_bytes_timeout_ms: u64 =
        Limits::DEFAULT_HTTP_BETWEEN_BYTES_TIMEOUT.as_millis() as u64,
        [> 0, <= MAX_HTTP_TIMEOUT_MS], attempt http_between_bytes_timeout(Duration::from_millis),
        shown "Cap on a pause within a response body, in milliseconds. Default 10,000.";
}

/// [`Limits::MAX_HTTP_TIMEOUT`] in milliseconds, the unit of a tenant's HTTP timeouts.
const MAX_HTTP_TIMEOUT_MS: u64 = Limits::MAX_HTTP_TIMEOUT.as_millis() as u64;

/// Mebibytes to bytes.
fn mib(mb: u64) -> u64 {
    mb << 20
}

impl Limits {
    /// Default fuel per attempt.
    pub const DEFAULT_FUEL: u64 = 1_000_000_000;
    /// Default wall-clock timeout per attempt.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default linear-memory cap per attempt.
    pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;
    /// Default outbound HTTP requests per attempt.
    pub const DEFAULT_HTTP_REQUESTS: u32 = 50;
    /// Default largest outbound HTTP response body.
    pub const DEFAULT_HTTP_RESPONSE_BYTES: u64 = 10 << 20;
    /// Default largest outbound HTTP request body.
    pub const DEFAULT_HTTP_REQUEST_BYTES: u64 = 1 << 20;
    /// Default cap on connecting.
    pub const DEFAULT_HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// Default cap on waiting for response headers.
    pub const DEFAULT_HTTP_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(20);
    /// Default cap on a pause within a response body.
    pub const DEFAULT_HTTP_BETWEEN_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
    /// The most outbound HTTP requests a tenant may give an attempt.
    pub const MAX_HTTP_REQUESTS: u32 = 10_000;
    /// The largest HTTP request or response body a tenant may allow.
    pub const MAX_HTTP_BODY_BYTES: u64 = 1 << 30;
    /// The longest HTTP timeout cap a tenant may set.
    pub const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(3600);

    /// These limits with the outbound-HTTP fields at the most a tenant may be given: what a
    /// runtime's `max_limits` starts from, so that the tenant's own HTTP limits are what holds.
    pub fn with_http_maxima(self) -> Limits {
        Limits {
            max_http_requests: Self::MAX_HTTP_REQUESTS,
            max_http_response_bytes: Self::MAX_HTTP_BODY_BYTES,
            max_http_request_bytes: Self::MAX_HTTP_BODY_BYTES,
            http_connect_timeout: Self::MAX_HTTP_TIMEOUT,
            http_first_byte_timeout: Self::MAX_HTTP_TIMEOUT,
            http_between_bytes_timeout: Self::MAX_HTTP_TIMEOUT,
            ..self
        }
    }
}

impl TenantLimits {
    /// The largest batch `POST /v1/jobs/batch` takes.
    pub const MAX_BATCH: usize = 10_000;

    /// The per-attempt caps these limits put on every job of the tenant, whose store holds
    /// `store_used` bytes: an attempt may write no more than the store has room for.
    pub fn attempt_caps_with_store(&self, store_used: u64) -> Limits {
        let mut caps = self.attempt_caps();
        let room = self.max_store_bytes.saturating_sub(store_used);
        caps.max_store_write_bytes = caps.max_store_write_bytes.min(room);
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_by_takes_the_lower_of_each_field() {
        let asked = Limits {
            fuel: 5,
            timeout: Duration::from_secs(100),
            ..Limits::default()
        };
        let capped = asked.capped_by(&Limits::default());
        assert_eq!(capped.fuel, 5);
        assert_eq!(capped.timeout, Limits::DEFAULT_TIMEOUT);
        assert_eq!(capped.memory_bytes, Limits::DEFAULT_MEMORY_BYTES);
    }

    #[test]
    fn a_tenant_with_default_limits_caps_attempts_at_the_attempt_defaults() {
        assert_eq!(TenantLimits::DEFAULT.attempt_caps(), Limits::default());
    }

    #[test]
    fn a_tenant_spec_resolves_converts_and_merges_field_by_field() {
        let spec = TenantLimitSpec {
            timeout_ms: Some(1_500),
            memory_mb: Some(2),
            max_follow_ups: Some(3),
            http_connect_timeout_ms: Some(7),
            ..TenantLimitSpec::default()
        };
        let caps = TenantLimits::resolve(&spec).attempt_caps();
        assert_eq!(caps.timeout, Duration::from_millis(1_500));
        assert_eq!(caps.memory_bytes, 2 << 20);
        assert_eq!(caps.max_enqueued, 3);
        assert_eq!(caps.http_connect_timeout, Duration::from_millis(7));
        assert_eq!(caps.fuel, Limits::DEFAULT_FUEL);
        let patch = TenantLimitSpec {
            memory_mb: Some(4),
            fuel: Some(9),
            ..TenantLimitSpec::default()
        };
        let merged = spec.merged(&patch);
        assert_eq!(
            (merged.timeout_ms, merged.memory_mb, merged.fuel),
            (Some(1_500), Some(4), Some(9))
        );
    }

    #[test]
    fn a_job_spec_replaces_only_what_it_asks_for() {
        let job = LimitSpec {
            timeout_ms: Some(250),
            memory_mb: Some(1),
            ..LimitSpec::default()
        };
        let limits = Limits::default().with(&job);
        assert_eq!(limits.timeout, Duration::from_millis(250));
        assert_eq!(limits.memory_bytes, 1 << 20);
        assert_eq!(limits.fuel, Limits::DEFAULT_FUEL);
        let asked: Vec<_> = job.against(&TenantLimits::DEFAULT).collect();
        assert_eq!(
            asked,
            [
                ("fuel", None, Limits::DEFAULT_FUEL),
                ("timeout_ms", Some(250), 30_000),
                ("memory_mb", Some(1), 64),
            ]
        );
    }

    #[test]
    fn check_names_the_first_value_out_of_range() {
        type Set = fn(&mut TenantLimitSpec);
        let cases: [(Set, Result<(), &str>); 8] = [
            (|_| {}, Ok(())),
            (
                |s| s.fuel = Some(0),
                Err("limits.fuel must be greater than 0"),
            ),
            (|s| s.max_http_requests = Some(0), Ok(())),
            (
                |s| s.max_http_requests = Some(10_001),
                Err("limits.max_http_requests must be at most 10000"),
            ),
            (
                |s| s.http_between_bytes_timeout_ms = Some(3_600_001),
                Err("limits.http_between_bytes_timeout_ms must be at most 3600000"),
            ),
            (
                |s| s.max_running = Some(u32::MAX),
                Err("limits.max_running is too large"),
            ),
            (
                |s| s.max_conflicts = Some(100_001),
                Err("limits.max_conflicts must be at most 100000"),
            ),
            (
                |s| (s.max_queues, s.max_http_requests) = (Some(0), Some(10_001)),
                Err("limits.max_queues must be greater than 0"),
            ),
        ];
        for (set, expected) in cases {
            let mut spec = TenantLimitSpec::default();
            set(&mut spec);
            assert_eq!(spec.check(), expected.map_err(String::from), "{spec:?}");
        }
    }
}
