//! Per-attempt resource limits: what one attempt of one job may use.

use std::time::Duration;

/// The bounds on everything a guest controls during one attempt.
///
/// A tenant has a set of these as its caps; a job may ask for less, never more
/// ([`Limits::capped_by`]). The defaults are the README's sandbox table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units the attempt may burn (roughly one per WebAssembly instruction).
    /// Default [`Limits::DEFAULT_FUEL`] (10^9).
    pub fuel: u64,
    /// Wall-clock time the attempt may take, host calls included. Default 30 s.
    pub timeout: Duration,
    /// Linear memory the instance may grow to, in bytes. Default 64 MiB.
    pub memory_bytes: u64,
    /// Largest result the handler may return, in bytes. Default 1 MiB.
    pub max_result_bytes: u64,
    /// Log bytes kept per attempt (log calls plus stdout/stderr). Default 64 KiB; past it,
    /// lines are dropped and counted.
    pub max_log_bytes: u64,
    /// Longest idempotency-store key, in bytes. Default 512.
    pub max_store_key_bytes: u32,
    /// Largest idempotency-store value, in bytes. Default 256 KiB.
    pub max_store_value_bytes: u32,
    /// Bytes (keys plus values) the attempt may write to the store in all. Default 4 MiB.
    pub max_store_write_bytes: u64,
    /// Store reads (`get` and `list-keys` calls that reach the database) per attempt. Default
    /// 10,000: a read loop is refused with `quota-exceeded`, not served forever.
    pub max_store_reads: u32,
    /// Bytes (values and keys) the attempt may read from the store in all. Default 64 MiB.
    pub max_store_read_bytes: u64,
    /// Follow-up jobs the attempt may enqueue. Default 100.
    pub max_enqueued: u32,
    /// Largest payload of a follow-up job, in bytes. Default 256 KiB.
    pub max_payload_bytes: u32,
    /// Outbound HTTP requests the attempt may make; past it a request fails at once. Default
    /// [`Limits::DEFAULT_HTTP_REQUESTS`] (50).
    pub max_http_requests: u32,
    /// Largest outbound HTTP response body, in bytes; past it the guest's read fails.
    /// Default 10 MiB.
    pub max_http_response_bytes: u64,
    /// Largest outbound HTTP request body, in bytes; past it the request fails. Default 1 MiB.
    pub max_http_request_bytes: u64,
    /// Longest an outbound request may take to connect (name lookup, TCP and TLS); a guest
    /// may ask for less. Default 5 s.
    pub http_connect_timeout: Duration,
    /// Longest an outbound request may wait, once connected, for the response's headers
    /// (sending the request body included); a guest may ask for less. Default 20 s.
    pub http_first_byte_timeout: Duration,
    /// Longest an outbound response body may pause between two chunks; a guest may ask for
    /// less. Default 10 s.
    pub http_between_bytes_timeout: Duration,
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

    /// Returns these limits with every field lowered to at most `cap`'s.
    pub fn capped_by(&self, cap: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.min(cap.fuel),
            timeout: self.timeout.min(cap.timeout),
            memory_bytes: self.memory_bytes.min(cap.memory_bytes),
            max_result_bytes: self.max_result_bytes.min(cap.max_result_bytes),
            max_log_bytes: self.max_log_bytes.min(cap.max_log_bytes),
            max_store_key_bytes: self.max_store_key_bytes.min(cap.max_store_key_bytes),
            max_store_value_bytes: self.max_store_value_bytes.min(cap.max_store_value_bytes),
            max_store_write_bytes: self.max_store_write_bytes.min(cap.max_store_write_bytes),
            max_store_reads: self.max_store_reads.min(cap.max_store_reads),
            max_store_read_bytes: self.max_store_read_bytes.min(cap.max_store_read_bytes),
            max_enqueued: self.max_enqueued.min(cap.max_enqueued),
            max_payload_bytes: self.max_payload_bytes.min(cap.max_payload_bytes),
            max_http_requests: self.max_http_requests.min(cap.max_http_requests),
            max_http_response_bytes: self
                .max_http_response_bytes
                .min(cap.max_http_response_bytes),
            max_http_request_bytes: self.max_http_request_bytes.min(cap.max_http_request_bytes),
            http_connect_timeout: self.http_connect_timeout.min(cap.http_connect_timeout),
            http_first_byte_timeout: self
                .http_first_byte_timeout
                .min(cap.http_first_byte_timeout),
            http_between_bytes_timeout: self
                .http_between_bytes_timeout
                .min(cap.http_between_bytes_timeout),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: Self::DEFAULT_FUEL,
            timeout: Self::DEFAULT_TIMEOUT,
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            max_result_bytes: 1 << 20,
            max_log_bytes: 64 << 10,
            max_store_key_bytes: 512,
            max_store_value_bytes: 256 << 10,
            max_store_write_bytes: 4 << 20,
            max_store_reads: 10_000,
            max_store_read_bytes: 64 << 20,
            max_enqueued: 100,
            max_payload_bytes: 256 << 10,
            max_http_requests: Self::DEFAULT_HTTP_REQUESTS,
            max_http_response_bytes: Self::DEFAULT_HTTP_RESPONSE_BYTES,
            max_http_request_bytes: Self::DEFAULT_HTTP_REQUEST_BYTES,
            http_connect_timeout: Self::DEFAULT_HTTP_CONNECT_TIMEOUT,
            http_first_byte_timeout: Self::DEFAULT_HTTP_FIRST_BYTE_TIMEOUT,
            http_between_bytes_timeout: Self::DEFAULT_HTTP_BETWEEN_BYTES_TIMEOUT,
        }
    }
}

impl Limits {
    /// Returns these limits with the fields `spec` sets replaced (memory given in MiB).
    pub fn with(&self, spec: &super::LimitSpec) -> Limits {
        Limits {
            fuel: spec.fuel.unwrap_or(self.fuel),
            timeout: spec.timeout_ms.map_or(self.timeout, Duration::from_millis),
            memory_bytes: spec.memory_mb.map_or(self.memory_bytes, |mb| mb << 20),
            ..*self
        }
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
}
