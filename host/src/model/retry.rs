//! Retry policy: how long to wait before the next attempt, and how many attempts there are.

use std::time::Duration;

use super::ErrorKind;

/// Exponential backoff with jitter, and a cap on attempts.
///
/// The delay before attempt `n + 1` after attempt `n` failed is
/// `min(cap, base · 2^(n-1))`, then jittered down by up to [`RetryPolicy::jitter`] of itself
/// (so that many jobs failing together do not retry together).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// The first delay. Default 1 s.
    pub base: Duration,
    /// The longest delay. Default 1 h.
    pub cap: Duration,
    /// Attempts in all before the job is dead-lettered. Default 20.
    pub max_attempts: u32,
    /// The fraction of each delay that is random, from 0 (none) to 1. Default 0.25.
    pub jitter: f64,
}

impl RetryPolicy {
    /// Default attempts per job.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 20;

    /// Returns the delay before the next attempt after attempt `attempt` (1-based) failed.
    /// `random` is a uniform sample in `[0, 1)`, passed in so the result is testable.
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(63);
        let full = self
            .base
            .checked_mul(1u32.checked_shl(exponent.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.cap)
            .min(self.cap);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        full.mul_f64(1.0 - jitter)
    }

    /// Returns whether a job that just failed attempt `attempt` has attempts left.
    pub fn has_attempts_left(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// Returns a job's policy: backoff from `base_ms` up to `cap_ms`, `max_attempts` in all,
    /// the default jitter.
    pub fn of_job(base_ms: u64, cap_ms: u64, max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(cap_ms),
            max_attempts,
            ..RetryPolicy::default()
        }
    }

    /// Returns the delay before the next attempt after attempt `attempt` failed with `kind`,
    /// jittered, or `None` when the job goes to the dead-letter queue (a permanent failure,
    /// or no attempts left).
    pub fn next_delay(&self, kind: ErrorKind, attempt: u32) -> Option<Duration> {
        (kind.is_retryable() && self.has_attempts_left(attempt))
            .then(|| self.backoff(attempt, rand::random::<f64>()))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(3600),
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            jitter: 0.25,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let secs: Vec<u64> = (1..=14).map(|n| policy.backoff(n, 0.5).as_secs()).collect();
        assert_eq!(
            secs,
            [
                1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600
            ]
        );
        assert_eq!(policy.backoff(1000, 0.0), policy.cap);
    }

    #[test]
    fn jitter_only_shortens_the_delay_within_its_fraction() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(3, 0.0), Duration::from_secs(4));
        assert_eq!(policy.backoff(3, 0.999_999).as_secs(), 3);
        assert!(policy.backoff(3, 0.5) < Duration::from_secs(4));
    }

    #[test]
    fn the_last_attempt_has_none_left() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(policy.has_attempts_left(2));
        assert!(!policy.has_attempts_left(3));
    }
}
