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
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    client: reqwest::Client,
    url: Url,
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
