//! The webhook: one JSON POST per notification, with a timeout; the caller retries failures
//! with backoff.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::store::{Alert, AlertState};

/// The JSON body POSTed to the webhook when an alert fires or resolves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// `firing` or `resolved`.
    pub status: String,
    /// The rule: `failure_rate`, `dead_letter_growth` or `backlog_age`.
    pub rule: String,
    /// The tenant's name.
    pub tenant: String,
    /// The queue.
    pub queue: String,
    /// The rule's figure: a fraction for `failure_rate`, a count for `dead_letter_growth`,
    /// seconds for `backlog_age`.
    pub value: f64,
    /// The threshold the figure was compared with, in the same unit.
    pub threshold: f64,
    /// The figure and the threshold in words.
    pub description: String,
    /// When the alert started firing.
    pub fired_at: DateTime<Utc>,
    /// When it resolved; absent while it fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
}

impl Notification {
    /// Returns the notification `alert` has pending, if any.
    pub fn pending(alert: &Alert) -> Option<Notification> {
        let status = alert.notify?;
        Some(Notification {
            status: status.as_str().to_string(),
            rule: alert.key.rule.clone(),
            tenant: alert.tenant.clone(),
            queue: alert.key.queue.clone(),
            value: alert.value,
            threshold: alert.threshold,
            description: alert.description.clone(),
            fired_at: alert.fired_at,
            resolved_at: match status {
                AlertState::Firing => None,
                AlertState::Resolved => alert.resolved_at,
            },
        })
    }
}

/// A webhook receiver. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Webhook {
    client: reqwest::Client,
    url: Url,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the origin: the path and query of a webhook URL often carry its secret.
        f.debug_struct("Webhook")
            .field("origin", &self.url.origin().ascii_serialization())
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Returns a webhook POSTing to `url`, each request given `timeout` in all.
    pub(crate) fn new(url: Url, timeout: std::time::Duration) -> Result<Webhook, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("spool/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Webhook { client, url })
    }

    /// Delivers `notification`: `Ok` on a 2xx answer, else why not. The reason never holds
    /// the URL, which often carries a secret.
    pub(crate) async fn send(&self, notification: &Notification) -> Result<(), String> {
        let response = self
            .client
            .post(self.url.clone())
            .json(notification)
            .send()
            .await
            .map_err(|e| chain(&e.without_url()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {status}"))
        }
    }
}

/// Writes an error with its causes: reqwest's own message is only "error sending request".
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AlertKey;

    fn alert(state: AlertState, notify: Option<AlertState>) -> Alert {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        Alert {
            key: AlertKey {
                tenant_id: 7,
                rule: "backlog_age".into(),
                queue: "default".into(),
            },
            tenant: "acme".into(),
            state,
            value: 301.0,
            threshold: 300.0,
            description: "waited".into(),
            fired_at: at("2030-01-01T00:05:01Z"),
            resolved_at: (state == AlertState::Resolved).then(|| at("2030-01-01T00:06:00Z")),
            evaluated_at: at("2030-01-01T00:06:00Z"),
            notify,
            notify_seq: 1,
            notify_attempts: 0,
            notify_next_at: None,
            notify_error: None,
            last_notified_at: None,
        }
    }

    #[test]
    fn the_body_describes_rule_scope_value_and_threshold() {
        let firing = Notification::pending(&alert(AlertState::Firing, Some(AlertState::Firing)));
        assert_eq!(
            serde_json::to_value(firing.unwrap()).unwrap(),
            serde_json::json!({
                "status": "firing", "rule": "backlog_age", "tenant": "acme",
                "queue": "default", "value": 301.0, "threshold": 300.0,
                "description": "waited", "fired_at": "2030-01-01T00:05:01Z",
            })
        );
        let resolved =
            Notification::pending(&alert(AlertState::Resolved, Some(AlertState::Resolved)));
        let body = serde_json::to_value(resolved.unwrap()).unwrap();
        assert_eq!(body["status"], "resolved");
        assert_eq!(body["resolved_at"], "2030-01-01T00:06:00Z");
        assert_eq!(
            Notification::pending(&alert(AlertState::Firing, None)),
            None
        );
    }

    #[test]
    fn debug_output_keeps_the_url_secret() {
        let url: Url = "https://hooks.example.com/services/T0/B0/s3cret?token=x"
            .parse()
            .unwrap();
        let webhook = Webhook::new(url, std::time::Duration::from_secs(1)).unwrap();
        let shown = format!("{webhook:?}");
        assert!(shown.contains("https://hooks.example.com"), "{shown}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("token"),
            "{shown}"
        );
    }
}
