//! Alert settings: the `[alerts]` section of `spool serve`'s config file, with defaults, and
//! their validation.
//!
//! ```toml
//! [alerts]
//! webhook_url = "https://hooks.example.com/spool"   # no webhook: alerts are only listed
//! interval = "30s"
//!
//! [alerts.failure_rate]        # failed / (completed + failed) attempts over the window
//! window = "5m"
//! threshold = 0.2
//! min_attempts = 10
//!
//! [alerts.dead_letter_growth]  # jobs dead-lettered over the window
//! window = "10m"
//! threshold = 0
//!
//! [alerts.backlog_age]         # how long the oldest available job has waited
//! threshold = "5m"
//!
//! [alerts.schedule_failing]    # a cron schedule's last runs all ended dead
//! runs = 3
//! ```
//!
//! Durations are whole seconds (`30`) or a number with a unit: `ms`, `s`, `m`, `h`, `d`
//! (`"250ms"`, `"5m"`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

/// Settings of the built-in alerts. Every field has a default; an empty `[alerts]` section
/// (or none) evaluates the three rules and notifies no one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Whether alerts are evaluated at all. Default true.
    pub enabled: bool,
    /// Where firing and resolved notifications are POSTed as JSON. Default none: alerts are
    /// evaluated and listed at `GET /v1/alerts`, and nobody is notified.
    #[serde(deserialize_with = "url_opt")]
    pub webhook_url: Option<Url>,
    /// How often the rules are evaluated. Default 30 s.
    #[serde(with = "duration")]
    pub interval: Duration,
    /// How long one webhook request may take. Default 10 s.
    #[serde(with = "duration")]
    pub webhook_timeout: Duration,
    /// Delivery attempts per notification before it is given up. Default 10.
    pub webhook_max_attempts: u32,
    /// The delay before the second delivery attempt; it doubles for each next one, with
    /// jitter. Default 1 s.
    #[serde(with = "duration")]
    pub webhook_backoff_base: Duration,
    /// The longest delay between delivery attempts. Default 5 min.
    #[serde(with = "duration")]
    pub webhook_backoff_cap: Duration,
    /// Notify again of an alert that has stayed firing this long since it was last notified.
    /// Default none: one notification when it fires, one when it resolves.
    #[serde(with = "duration_opt")]
    pub renotify_interval: Option<Duration>,
    /// How long the evaluator's leadership lasts without renewal. Default 15 s.
    #[serde(with = "duration")]
    pub leader_ttl: Duration,
    /// Too many failed attempts.
    pub failure_rate: FailureRateRule,
    /// Jobs reaching the dead-letter queue.
    pub dead_letter_growth: DeadLetterGrowthRule,
    /// A backlog nobody works off.
    pub backlog_age: BacklogAgeRule,
    /// A schedule whose runs keep failing.
    pub schedule_failing: ScheduleFailingRule,
}

impl AlertsConfig {
    /// Default evaluation interval.
    pub const INTERVAL_DEFAULT: Duration = Duration::from_secs(30);
    /// Default webhook request timeout.
    pub const WEBHOOK_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
    /// Default delivery attempts per notification.
    pub const WEBHOOK_MAX_ATTEMPTS_DEFAULT: u32 = 10;
    /// Default first delivery backoff.
    pub const WEBHOOK_BACKOFF_BASE_DEFAULT: Duration = Duration::from_secs(1);
    /// Default longest delivery backoff.
    pub const WEBHOOK_BACKOFF_CAP_DEFAULT: Duration = Duration::from_secs(300);
    /// Default leader lease.
    pub const LEADER_TTL_DEFAULT: Duration = Duration::from_secs(15);

    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<(), AlertsConfigError> {
        let invalid = |field: &'static str, reason: &str| {
            Err(AlertsConfigError::Invalid {
                field,
                reason: reason.to_string(),
            })
        };
        if let Some(url) = &self.webhook_url
            && !matches!(url.scheme(), "http" | "https")
        {
            return invalid("webhook_url", "must be an http or https URL");
        }
        if self.interval < Duration::from_millis(10) {
            return invalid("interval", "must be at least 10ms");
        }
        if self.webhook_timeout.is_zero() {
            return invalid("webhook_timeout", "must be more than zero");
        }
        if self.webhook_max_attempts == 0 {
            return invalid("webhook_max_attempts", "must be at least 1");
        }
        if self.webhook_backoff_base.is_zero() {
            return invalid("webhook_backoff_base", "must be more than zero");
        }
        if self.webhook_backoff_cap < self.webhook_backoff_base {
            return invalid(
                "webhook_backoff_cap",
                "must be at least webhook_backoff_base",
            );
        }
        if self.renotify_interval.is_some_and(|r| r < self.interval) {
            return invalid("renotify_interval", "must be at least the interval");
        }
        if self.leader_ttl < Duration::from_millis(100) {
            return invalid("leader_ttl", "must be at least 100ms");
        }
        let window = |field, w: Duration| {
            // The counters behind the windows are per minute: a shorter window is a minute
            // anyway, and a longer one than a day reads many rows every evaluation.
            if w < Duration::from_secs(60) || w > Duration::from_secs(86_400) {
                invalid(field, "must be from 1m to 1d (the counters are per minute)")
            } else {
                Ok(())
            }
        };
        window("failure_rate.window", self.failure_rate.window)?;
        window("dead_letter_growth.window", self.dead_letter_growth.window)?;
        let rate = self.failure_rate.threshold;
        if !(0.0..1.0).contains(&rate) {
            return invalid(
                "failure_rate.threshold",
                "must be a fraction from 0 up to (not including) 1",
            );
        }
        if self.backlog_age.threshold.is_zero() {
            return invalid("backlog_age.threshold", "must be more than zero");
        }
        if !(1..=ScheduleFailingRule::RUNS_MAX).contains(&self.schedule_failing.runs) {
            return invalid("schedule_failing.runs", "must be from 1 to 50");
        }
        Ok(())
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            webhook_url: None,
            interval: Self::INTERVAL_DEFAULT,
            webhook_timeout: Self::WEBHOOK_TIMEOUT_DEFAULT,
            webhook_max_attempts: Self::WEBHOOK_MAX_ATTEMPTS_DEFAULT,
            webhook_backoff_base: Self::WEBHOOK_BACKOFF_BASE_DEFAULT,
            webhook_backoff_cap: Self::WEBHOOK_BACKOFF_CAP_DEFAULT,
            renotify_interval: None,
            leader_ttl: Self::LEADER_TTL_DEFAULT,
            failure_rate: FailureRateRule::default(),
            dead_letter_growth: DeadLetterGrowthRule::default(),
            backlog_age: BacklogAgeRule::default(),
            schedule_failing: ScheduleFailingRule::default(),
        }
    }
}

/// Fires when the share of failed attempts of a queue over a window is above a threshold:
/// `failed / (completed + failed)`, where failed counts retried and dead-lettered attempts.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FailureRateRule {
    /// Whether the rule is evaluated. Default true.
    pub enabled: bool,
    /// The window, in whole minutes. Default 5 min.
    #[serde(with = "duration")]
    pub window: Duration,
    /// The failure rate above which the alert fires, from 0 to 1. Default 0.2.
    pub threshold: f64,
    /// The fewest attempts in the window for the alert to fire, so that a quiet queue's one
    /// failure is no alert. Default 10.
    pub min_attempts: u32,
}

impl Default for FailureRateRule {
    fn default() -> Self {
        FailureRateRule {
            enabled: true,
            window: Duration::from_secs(300),
            threshold: 0.2,
            min_attempts: 10,
        }
    }
}

/// Fires when more jobs of a queue than a threshold reached the dead-letter queue over a
/// window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeadLetterGrowthRule {
    /// Whether the rule is evaluated. Default true.
    pub enabled: bool,
    /// The window, in whole minutes. Default 10 min.
    #[serde(with = "duration")]
    pub window: Duration,
    /// The count of new dead jobs above which the alert fires. Default 0: any.
    pub threshold: u64,
}

impl Default for DeadLetterGrowthRule {
    fn default() -> Self {
        DeadLetterGrowthRule {
            enabled: true,
            window: Duration::from_secs(600),
            threshold: 0,
        }
    }
}

/// Fires when the oldest available job of a queue has waited longer than a threshold: the
/// workers are down, stuck, or too few.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BacklogAgeRule {
    /// Whether the rule is evaluated. Default true.
    pub enabled: bool,
    /// The wait above which the alert fires. Default 5 min.
    #[serde(with = "duration")]
    pub threshold: Duration,
}

impl Default for BacklogAgeRule {
    fn default() -> Self {
        BacklogAgeRule {
            enabled: true,
            threshold: Duration::from_secs(300),
        }
    }
}

/// Fires when the last `runs` finished runs of a cron schedule all ended dead (its jobs used
/// up their attempts or failed permanently); resolves when one of its last runs completes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleFailingRule {
    /// Whether the rule is evaluated. Default true.
    pub enabled: bool,
    /// How many runs in a row must have failed, from 1 to 50. Default 3.
    pub runs: u32,
}

impl ScheduleFailingRule {
    /// The most runs the rule may look at (a schedule keeps the outcomes of its last 50
    /// ticks).
    pub const RUNS_MAX: u32 = 50;
}

impl Default for ScheduleFailingRule {
    fn default() -> Self {
        ScheduleFailingRule {
            enabled: true,
            runs: 3,
        }
    }
}

/// Why alert settings were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlertsConfigError {
    /// A setting is out of range.
    #[error("alerts.{field}: {reason}")]
    Invalid {
        /// The setting, as written in the config file.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses a duration: whole seconds, or a number followed by `ms`, `s`, `m`, `h` or `d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Seconds(u64),
    Text(String),
}

impl RawDuration {
    fn parse<E: serde::de::Error>(self) -> Result<Duration, E> {
        match self {
            RawDuration::Seconds(s) => Ok(Duration::from_secs(s)),
            RawDuration::Text(t) => parse_duration(&t).ok_or_else(|| {
                E::custom(format!(
                    "{t:?} is not a duration (say 30, \"250ms\", \"30s\", \"5m\", \"1h\")"
                ))
            }),
        }
    }
}

mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        RawDuration::deserialize(d)?.parse()
    }
}

mod duration_opt {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<RawDuration>::deserialize(d)?
            .map(RawDuration::parse)
            .transpose()
    }
}

fn url_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| Url::parse(&s).map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}"))))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<AlertsConfig, toml::de::Error> {
        toml::from_str(toml)
    }

    #[test]
    fn an_empty_section_takes_every_default() {
        let config = parse("").unwrap();
        assert_eq!(config, AlertsConfig::default());
        assert!(config.validate().is_ok());
        assert_eq!(config.failure_rate.window, Duration::from_secs(300));
        assert_eq!(config.backlog_age.threshold, Duration::from_secs(300));
        assert!(config.webhook_url.is_none() && config.renotify_interval.is_none());
    }

    #[test]
    fn a_section_sets_rules_webhook_and_durations() {
        let config = parse(
            r#"
            webhook_url = "https://hooks.example.com/spool"
            interval = "15s"
            renotify_interval = "4h"
            webhook_timeout = 5
            [failure_rate]
            window = "10m"
            threshold = 0.5
            min_attempts = 3
            [dead_letter_growth]
            enabled = false
            [backlog_age]
            threshold = "90s"
            "#,
        )
        .unwrap();
        assert_eq!(
            config.webhook_url.as_ref().map(Url::as_str),
            Some("https://hooks.example.com/spool")
        );
        assert_eq!(config.interval, Duration::from_secs(15));
        assert_eq!(
            config.renotify_interval,
            Some(Duration::from_secs(4 * 3600))
        );
        assert_eq!(config.webhook_timeout, Duration::from_secs(5));
        assert_eq!(config.failure_rate.window, Duration::from_secs(600));
        assert_eq!(config.failure_rate.threshold, 0.5);
        assert_eq!(config.failure_rate.min_attempts, 3);
        assert!(!config.dead_letter_growth.enabled);
        assert_eq!(config.dead_letter_growth.window, Duration::from_secs(600));
        assert_eq!(config.backlog_age.threshold, Duration::from_secs(90));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn unknown_settings_and_bad_values_are_refused() {
        assert!(parse("webhook = \"https://x\"").is_err());
        assert!(parse("[failure_rate]\nthreshhold = 0.1").is_err());
        assert!(parse("interval = \"soon\"").is_err());
        assert!(parse("webhook_url = \"not a url\"").is_err());
        let refused = |config: AlertsConfig, field: &str| match config.validate() {
            Err(AlertsConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
            Ok(()) => panic!("{field} was accepted"),
        };
        refused(parse("webhook_url = \"ftp://x/\"").unwrap(), "webhook_url");
        refused(
            parse("[failure_rate]\nthreshold = 1.5").unwrap(),
            "failure_rate.threshold",
        );
        refused(
            parse("[dead_letter_growth]\nwindow = \"10s\"").unwrap(),
            "dead_letter_growth.window",
        );
        refused(
            parse("webhook_max_attempts = 0").unwrap(),
            "webhook_max_attempts",
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("5 m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("3w"), None);
    }
}
