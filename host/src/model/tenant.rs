//! A tenant's limits: what one tenant may use, per attempt and in all.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Limits;

/// The limits a tenant has been given explicitly; every unset field takes its default (see
/// [`TenantLimits`]). This is what `POST /v1/tenants` and `PATCH /v1/tenants/{name}` accept and
/// what is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantLimitSpec {
    /// Fuel per attempt (a job may ask for less).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall-clock timeout per attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Linear memory per attempt, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Jobs running at once, over all workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    /// Jobs waiting (scheduled, available, running, retryable) at once; past it enqueue
    /// answers 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queued: Option<u64>,
    /// Largest job payload, in bytes (enqueued over the API or by a handler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_payload_bytes: Option<u32>,
    /// Largest handler component, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_component_bytes: Option<u64>,
    /// Bytes (keys plus values) in the tenant's idempotency store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_store_bytes: Option<u64>,
    /// Follow-up jobs one attempt may enqueue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_follow_ups: Option<u32>,
    /// Jobs enqueued per second over the API; a batch may use up to a second's worth at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enqueue_rate: Option<u32>,
    /// Races on store keys a job may lose (each runs it again, no attempt charged) before a
    /// conflict counts as a failure of kind `commit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_conflicts: Option<u32>,
    /// Distinct queues the tenant may have jobs in; past it an enqueue naming a new queue
    /// answers 422.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_queues: Option<u32>,
    /// Outbound HTTP requests one attempt may make.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_http_requests: Option<u32>,
    /// Largest outbound HTTP response body, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_http_response_bytes: Option<u64>,
    /// Largest outbound HTTP request body, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_http_request_bytes: Option<u64>,
    /// Cap on connecting (name lookup, TCP, TLS) for an outbound request, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_connect_timeout_ms: Option<u64>,
    /// Cap on waiting for an outbound response's headers, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_first_byte_timeout_ms: Option<u64>,
    /// Cap on a pause within an outbound response body, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_between_bytes_timeout_ms: Option<u64>,
}

/// A tenant's effective limits: its [`TenantLimitSpec`] over the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TenantLimits {
    /// Fuel per attempt. Default 10^9.
    pub fuel: u64,
    /// Timeout per attempt, in milliseconds. Default 30,000.
    pub timeout_ms: u64,
    /// Linear memory per attempt, in MiB. Default 64.
    pub memory_mb: u64,
    /// Jobs running at once. Default 100.
    pub max_running: u32,
    /// Jobs waiting at once. Default 100,000.
    pub max_queued: u64,
    /// Largest payload, in bytes. Default 256 KiB.
    pub max_payload_bytes: u32,
    /// Largest component, in bytes. Default 64 MiB.
    pub max_component_bytes: u64,
    /// Idempotency-store bytes. Default 64 MiB.
    pub max_store_bytes: u64,
    /// Follow-up jobs per attempt. Default 100.
    pub max_follow_ups: u32,
    /// Jobs enqueued per second. Default 10,000.
    pub enqueue_rate: u32,
    /// Store-key races a job may lose before a conflict is a failure. Default 100.
    pub max_conflicts: u32,
    /// Distinct queues with jobs. Default 100.
    pub max_queues: u32,
    /// Outbound HTTP requests per attempt. Default 50.
    pub max_http_requests: u32,
    /// Largest outbound HTTP response body, in bytes. Default 10 MiB.
    pub max_http_response_bytes: u64,
    /// Largest outbound HTTP request body, in bytes. Default 1 MiB.
    pub max_http_request_bytes: u64,
    /// Cap on connecting, in milliseconds. Default 5,000.
    pub http_connect_timeout_ms: u64,
    /// Cap on waiting for response headers, in milliseconds. Default 20,000.
    pub http_first_byte_timeout_ms: u64,
    /// Cap on a pause within a response body, in milliseconds. Default 10,000.
    pub http_between_bytes_timeout_ms: u64,
}

impl TenantLimits {
    /// The defaults.
    pub const DEFAULT: TenantLimits = TenantLimits {
        fuel: Limits::DEFAULT_FUEL,
        timeout_ms: Limits::DEFAULT_TIMEOUT.as_millis() as u64,
        memory_mb: Limits::DEFAULT_MEMORY_BYTES >> 20,
        max_running: 100,
        max_queued: 100_000,
        max_payload_bytes: 256 << 10,
        max_component_bytes: 64 << 20,
        max_store_bytes: 64 << 20,
        max_follow_ups: 100,
        enqueue_rate: 10_000,
        max_conflicts: 100,
        max_queues: 100,
        max_http_requests: Limits::DEFAULT_HTTP_REQUESTS,
        max_http_response_bytes: Limits::DEFAULT_HTTP_RESPONSE_BYTES,
        max_http_request_bytes: Limits::DEFAULT_HTTP_REQUEST_BYTES,
        http_connect_timeout_ms: Limits::DEFAULT_HTTP_CONNECT_TIMEOUT.as_millis() as u64,
        http_first_byte_timeout_ms: Limits::DEFAULT_HTTP_FIRST_BYTE_TIMEOUT.as_millis() as u64,
        http_between_bytes_timeout_ms: Limits::DEFAULT_HTTP_BETWEEN_BYTES_TIMEOUT.as_millis()
            as u64,
    };

    /// The largest batch `POST /v1/jobs/batch` takes.
    pub const MAX_BATCH: usize = 10_000;

    /// Returns `spec` over the defaults.
    pub fn resolve(spec: &TenantLimitSpec) -> TenantLimits {
        let d = TenantLimits::DEFAULT;
        TenantLimits {
            fuel: spec.fuel.unwrap_or(d.fuel),
            timeout_ms: spec.timeout_ms.unwrap_or(d.timeout_ms),
            memory_mb: spec.memory_mb.unwrap_or(d.memory_mb),
            max_running: spec.max_running.unwrap_or(d.max_running),
            max_queued: spec.max_queued.unwrap_or(d.max_queued),
            max_payload_bytes: spec.max_payload_bytes.unwrap_or(d.max_payload_bytes),
            max_component_bytes: spec.max_component_bytes.unwrap_or(d.max_component_bytes),
            max_store_bytes: spec.max_store_bytes.unwrap_or(d.max_store_bytes),
            max_follow_ups: spec.max_follow_ups.unwrap_or(d.max_follow_ups),
            enqueue_rate: spec.enqueue_rate.unwrap_or(d.enqueue_rate),
            max_conflicts: spec.max_conflicts.unwrap_or(d.max_conflicts),
            max_queues: spec.max_queues.unwrap_or(d.max_queues),
            max_http_requests: spec.max_http_requests.unwrap_or(d.max_http_requests),
            max_http_response_bytes: spec
                .max_http_response_bytes
                .unwrap_or(d.max_http_response_bytes),
            max_http_request_bytes: spec
                .max_http_request_bytes
                .unwrap_or(d.max_http_request_bytes),
            http_connect_timeout_ms: spec
                .http_connect_timeout_ms
                .unwrap_or(d.http_connect_timeout_ms),
            http_first_byte_timeout_ms: spec
                .http_first_byte_timeout_ms
                .unwrap_or(d.http_first_byte_timeout_ms),
            http_between_bytes_timeout_ms: spec
                .http_between_bytes_timeout_ms
                .unwrap_or(d.http_between_bytes_timeout_ms),
        }
    }

    /// The per-attempt caps these limits put on every job of the tenant, whose store holds
    /// `store_used` bytes: an attempt may write no more than the store has room for.
    pub fn attempt_caps_with_store(&self, store_used: u64) -> Limits {
        let mut caps = self.attempt_caps();
        let room = self.max_store_bytes.saturating_sub(store_used);
        caps.max_store_write_bytes = caps.max_store_write_bytes.min(room);
        caps
    }

    /// The per-attempt caps these limits put on every job of the tenant.
    pub fn attempt_caps(&self) -> Limits {
        Limits {
            fuel: self.fuel,
            timeout: Duration::from_millis(self.timeout_ms),
            memory_bytes: self.memory_mb << 20,
            max_enqueued: self.max_follow_ups,
            max_payload_bytes: self.max_payload_bytes,
            max_http_requests: self.max_http_requests,
            max_http_response_bytes: self.max_http_response_bytes,
            max_http_request_bytes: self.max_http_request_bytes,
            http_connect_timeout: Duration::from_millis(self.http_connect_timeout_ms),
            http_first_byte_timeout: Duration::from_millis(self.http_first_byte_timeout_ms),
            http_between_bytes_timeout: Duration::from_millis(self.http_between_bytes_timeout_ms),
            ..Limits::default()
        }
    }
}

impl TenantLimitSpec {
    /// Returns `self` with every field `patch` sets replaced.
    pub fn merged(&self, patch: &TenantLimitSpec) -> TenantLimitSpec {
        TenantLimitSpec {
            fuel: patch.fuel.or(self.fuel),
            timeout_ms: patch.timeout_ms.or(self.timeout_ms),
            memory_mb: patch.memory_mb.or(self.memory_mb),
            max_running: patch.max_running.or(self.max_running),
            max_queued: patch.max_queued.or(self.max_queued),
            max_payload_bytes: patch.max_payload_bytes.or(self.max_payload_bytes),
            max_component_bytes: patch.max_component_bytes.or(self.max_component_bytes),
            max_store_bytes: patch.max_store_bytes.or(self.max_store_bytes),
            max_follow_ups: patch.max_follow_ups.or(self.max_follow_ups),
            enqueue_rate: patch.enqueue_rate.or(self.enqueue_rate),
            max_conflicts: patch.max_conflicts.or(self.max_conflicts),
            max_queues: patch.max_queues.or(self.max_queues),
            max_http_requests: patch.max_http_requests.or(self.max_http_requests),
            max_http_response_bytes: patch
                .max_http_response_bytes
                .or(self.max_http_response_bytes),
            max_http_request_bytes: patch.max_http_request_bytes.or(self.max_http_request_bytes),
            http_connect_timeout_ms: patch
                .http_connect_timeout_ms
                .or(self.http_connect_timeout_ms),
            http_first_byte_timeout_ms: patch
                .http_first_byte_timeout_ms
                .or(self.http_first_byte_timeout_ms),
            http_between_bytes_timeout_ms: patch
                .http_between_bytes_timeout_ms
                .or(self.http_between_bytes_timeout_ms),
        }
    }

    /// Returns a description of the first value that is out of range, if any.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("fuel", self.fuel),
            ("timeout_ms", self.timeout_ms),
            ("memory_mb", self.memory_mb),
            ("max_running", self.max_running.map(u64::from)),
            ("max_payload_bytes", self.max_payload_bytes.map(u64::from)),
            ("max_component_bytes", self.max_component_bytes),
            ("enqueue_rate", self.enqueue_rate.map(u64::from)),
            ("max_queues", self.max_queues.map(u64::from)),
            ("max_http_response_bytes", self.max_http_response_bytes),
            ("max_http_request_bytes", self.max_http_request_bytes),
            ("http_connect_timeout_ms", self.http_connect_timeout_ms),
            (
                "http_first_byte_timeout_ms",
                self.http_first_byte_timeout_ms,
            ),
            (
                "http_between_bytes_timeout_ms",
                self.http_between_bytes_timeout_ms,
            ),
        ];
        for (name, value) in positive {
            if value == Some(0) {
                return Err(format!("limits.{name} must be greater than 0"));
            }
        }
        // Upper bounds keep a tenant's HTTP within what one attempt's memory and wall clock
        // can hold anyway (0 requests is allowed: it turns outbound HTTP off).
        let ms = Limits::MAX_HTTP_TIMEOUT.as_millis() as u64;
        let at_most = [
            (
                "max_http_requests",
                self.max_http_requests.map(u64::from),
                u64::from(Limits::MAX_HTTP_REQUESTS),
            ),
            (
                "max_http_response_bytes",
                self.max_http_response_bytes,
                Limits::MAX_HTTP_BODY_BYTES,
            ),
            (
                "max_http_request_bytes",
                self.max_http_request_bytes,
                Limits::MAX_HTTP_BODY_BYTES,
            ),
            ("http_connect_timeout_ms", self.http_connect_timeout_ms, ms),
            (
                "http_first_byte_timeout_ms",
                self.http_first_byte_timeout_ms,
                ms,
            ),
            (
                "http_between_bytes_timeout_ms",
                self.http_between_bytes_timeout_ms,
                ms,
            ),
        ];
        for (name, value, max) in at_most {
            if value.is_some_and(|v| v > max) {
                return Err(format!("limits.{name} must be at most {max}"));
            }
        }
        if self.max_running.is_some_and(|n| n > i32::MAX as u32) {
            return Err("limits.max_running is too large".into());
        }
        if self.max_conflicts.is_some_and(|n| n > 100_000) {
            return Err("limits.max_conflicts must be at most 100000".into());
        }
        Ok(())
    }
}
