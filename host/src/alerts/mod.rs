//! Built-in alerts (docs/alerts.md): rules over every queue of every tenant —
//! failure rate over a window, dead-letter growth, backlog age — and over every cron schedule
//! (its last runs all failed), evaluated by one leader at a
//! time, firing and resolving a webhook, and listed at `GET /v1/alerts`.
//!
//! The state of every alert lives in PostgreSQL (`spool.alerts`), so every host lists the same
//! alerts and a change of leader neither forgets a firing alert nor fires it again. An alert
//! notifies once when it fires and once when it resolves (optionally again every
//! [`AlertsConfig::renotify_interval`] while it fires); a notification that fails is retried
//! with exponential backoff and jitter, by a loop of its own so that a slow receiver never
//! holds up evaluation, and given up after [`AlertsConfig::webhook_max_attempts`].
//!
//! ```no_run
//! # async fn wire(store: spool::store::Store, shutdown: tokio_util::sync::CancellationToken)
//! # -> Result<(), spool::alerts::AlertsError> {
//! use spool::alerts::{Alerts, AlertsConfig};
//! let config: AlertsConfig = toml::from_str("interval = \"30s\"").expect("valid settings");
//! let alerts = Alerts::new(config, store)?;
//! tokio::spawn(async move { alerts.run(shutdown).await });
//! # Ok(()) }
//! ```

mod config;
mod rules;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::{
    AlertsConfig, AlertsConfigError, BacklogAgeRule, DeadLetterGrowthRule, FailureRateRule,
    ScheduleFailingRule, parse_duration,
};
pub use rules::{Observation, Rule, Verdict, observe, observe_schedule};
pub use webhook::Notification;

use crate::model::RetryPolicy;
use crate::store::{Alert, AlertFigures, AlertKey, AlertState, AlertValue, Store, StoreError};
use webhook::Webhook;

/// The leader lease's name: one evaluator over all hosts, independent of maintenance's.
pub const LEADER_LEASE: &str = "alerts";

/// How often the delivery loop looks for due notifications (retries, and any queued by
/// another leader); new ones wake it at once.
const DELIVERY_POLL: Duration = Duration::from_secs(1);

/// The most notifications one delivery pass sends at once.
const DELIVERY_BATCH: u32 = 32;

/// Why the alerts service could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// The settings are not valid.
    #[error(transparent)]
    Config(#[from] AlertsConfigError),
    /// The webhook's HTTP client could not be built (no TLS roots, say).
    #[error("alerts: building the webhook client: {0}")]
    Client(String),
}

/// What one evaluation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Queues looked at (those with recent activity or available jobs).
    pub queues: usize,
    /// Alerts that started firing.
    pub fired: usize,
    /// Alerts that resolved.
    pub resolved: usize,
    /// Alerts that were firing and still are.
    pub still_firing: usize,
    /// Firing alerts whose notification was queued again ([`AlertsConfig::renotify_interval`]).
    pub renotified: u64,
}

/// What one delivery pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Notifications the webhook accepted (a 2xx answer).
    pub delivered: usize,
    /// Notifications that failed and will be tried again after a backoff.
    pub retrying: usize,
    /// Notifications that failed their last attempt and were given up.
    pub given_up: usize,
}

/// The alerts service over one store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Alerts {
    config: AlertsConfig,
    store: Store,
    node: String,
    webhook: Option<Webhook>,
    backoff: RetryPolicy,
    wake: Arc<Notify>,
}

impl Alerts {
    /// Returns the service over `store`, once `config` is validated. Its node name in the
    /// leader election is random; see [`Alerts::with_node`].
    pub fn new(config: AlertsConfig, store: Store) -> Result<Alerts, AlertsError> {
        config.validate()?;
        let webhook = config
            .webhook_url
            .clone()
            .map(|url| Webhook::new(url, config.webhook_timeout))
            .transpose()
            .map_err(AlertsError::Client)?;
        let backoff = RetryPolicy {
            base: config.webhook_backoff_base,
            cap: config.webhook_backoff_cap,
            max_attempts: config.webhook_max_attempts,
            ..RetryPolicy::default()
        };
        Ok(Alerts {
            config,
            store,
            node: format!("alerts-{}", uuid::Uuid::new_v4().simple()),
            webhook,
            backoff,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Names this node in the leader election (unique per running process).
    pub fn with_node(mut self, node: impl Into<String>) -> Alerts {
        self.node = node.into();
        self
    }

    /// Returns the settings.
    pub fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// Evaluates every enabled rule over every queue as of `now` (the database's clock when
    /// `None`): fires the alerts whose condition holds, resolves those whose condition no
    /// longer does (or whose queue went quiet, or whose rule was disabled), records the
    /// figures of those still firing, and queues their webhook notifications. Does not check
    /// leadership: [`Alerts::run`] calls it only while it leads.
    pub async fn evaluate_once(
        &self,
        now: Option<DateTime<Utc>>,
    ) -> Result<Evaluation, StoreError> {
        let c = &self.config;
        let mut done = Evaluation::default();
        if !c.enabled {
            return Ok(done);
        }
        let notify = self.webhook.is_some();
        let figures = self
            .store
            .alert_figures(c.failure_rate.window, c.dead_letter_growth.window, now)
            .await?;
        done.queues = figures.len();
        let mut firing: HashMap<AlertKey, Alert> = self
            .store
            .alert_list(None)
            .await?
            .into_iter()
            .filter(|a| a.state == AlertState::Firing)
            .map(|a| (a.key.clone(), a))
            .collect();
        let mut still = Vec::new();
        let mut observed = Vec::new();
        for f in &figures {
            for rule in Rule::QUEUE.into_iter().filter(|r| r.enabled(c)) {
                observed.push((
                    rule,
                    f.tenant.clone(),
                    alert_value(rule, f, observe(rule, c, f)),
                ));
            }
        }
        if Rule::ScheduleFailing.enabled(c) {
            let schedules = self
                .store
                .schedule_failures(c.schedule_failing.runs)
                .await?;
            for f in &schedules {
                let o = observe_schedule(c, f);
                let value = AlertValue {
                    key: AlertKey {
                        tenant_id: f.tenant_id,
                        rule: Rule::ScheduleFailing.as_str().to_string(),
                        queue: f.schedule.clone(),
                    },
                    value: o.value,
                    threshold: o.threshold,
                    description: o.description.clone(),
                };
                observed.push((Rule::ScheduleFailing, f.tenant.clone(), (value, o)));
            }
        }
        for (rule, tenant, (value, o)) in observed {
            let was_firing = firing.remove(&value.key).is_some();
            let scope = &value.key.queue;
            match (o.verdict, was_firing) {
                (Verdict::Fire, false) => {
                    if self.store.alert_fire(&value, notify, now).await? {
                        done.fired += 1;
                        tracing::warn!(
                            rule = %rule, %tenant, queue = %scope,
                            value = o.value, threshold = o.threshold,
                            "alert firing: {}", o.description
                        );
                    }
                }
                (Verdict::Fire | Verdict::Hold, true) => still.push(value),
                (Verdict::Resolve, true) => {
                    if self.store.alert_resolve(&value, notify, now).await? {
                        done.resolved += 1;
                        tracing::info!(
                            rule = %rule, %tenant, queue = %scope,
                            value = o.value, threshold = o.threshold,
                            "alert resolved: {}", o.description
                        );
                    }
                }
                (Verdict::Hold | Verdict::Resolve, false) => {}
            }
        }
        // Firing alerts left over: their queue has had no activity over the windows and has
        // nothing available (it reads as all zeros), or their rule is disabled now.
        for (key, alert) in firing {
            let value = match Rule::parse(&key.rule).filter(|r| r.enabled(c)) {
                Some(rule) => {
                    let quiet = AlertFigures {
                        tenant_id: key.tenant_id,
                        tenant: alert.tenant.clone(),
                        queue: key.queue.clone(),
                        completed: 0,
                        failed: 0,
                        dead: 0,
                        oldest_available_age: None,
                    };
                    alert_value(rule, &quiet, observe(rule, c, &quiet)).0
                }
                None => AlertValue {
                    key,
                    value: alert.value,
                    threshold: alert.threshold,
                    description: format!("{}; the rule is disabled now", alert.description),
                },
            };
            if self.store.alert_resolve(&value, notify, now).await? {
                done.resolved += 1;
                tracing::info!(
                    rule = %value.key.rule, tenant = %alert.tenant, queue = %value.key.queue,
                    "alert resolved: {}", value.description
                );
            }
        }
        done.still_firing = still.len();
        self.store.alert_update_many(&still, now).await?;
        if let Some(interval) = c.renotify_interval.filter(|_| notify) {
            done.renotified = self.store.alert_renotify(interval, now).await?;
        }
        if done.fired + done.resolved > 0 || done.renotified > 0 {
            self.wake.notify_one();
        }
        Ok(done)
    }

    /// Sends the webhook notifications due at `now` (the database's clock when `None`), a
    /// batch at a time and the requests of a batch at once, and records each outcome: a
    /// failure (an error or a non-2xx answer) is retried after an exponential backoff with
    /// jitter, or given up after its last attempt. Does nothing without a webhook.
    pub async fn deliver_once(&self, now: Option<DateTime<Utc>>) -> Result<Delivery, StoreError> {
        let mut done = Delivery::default();
        let Some(webhook) = &self.webhook else {
            return Ok(done);
        };
        loop {
            let due = self
                .store
                .alert_notifications_due(DELIVERY_BATCH, now)
                .await?;
            let full = due.len() == DELIVERY_BATCH as usize;
            let mut sending = JoinSet::new();
            for alert in due {
                let Some(notification) = Notification::pending(&alert) else {
                    continue;
                };
                let webhook = webhook.clone();
                sending.spawn(async move { (alert, webhook.send(&notification).await) });
            }
            while let Some(sent) = sending.join_next().await {
                let (alert, result) = match sent {
                    Ok(sent) => sent,
                    Err(e) => {
                        // The request's task panicked: the notification stays due.
                        tracing::error!(error = %e, "alert notification task failed");
                        continue;
                    }
                };
                self.record(&alert, result, now, &mut done).await?;
            }
            if !full {
                return Ok(done);
            }
        }
    }

    async fn record(
        &self,
        alert: &Alert,
        result: Result<(), String>,
        now: Option<DateTime<Utc>>,
        done: &mut Delivery,
    ) -> Result<(), StoreError> {
        let (key, seq) = (&alert.key, alert.notify_seq);
        let status = alert.notify.map_or("", AlertState::as_str);
        match result {
            Ok(()) => {
                self.store.alert_notified(key, seq, now).await?;
                done.delivered += 1;
                tracing::debug!(
                    rule = %key.rule, tenant = %alert.tenant, queue = %key.queue, status,
                    "alert notification delivered"
                );
            }
            Err(error) => {
                let attempt = alert.notify_attempts + 1;
                let retry_in = self
                    .backoff
                    .has_attempts_left(attempt)
                    .then(|| self.backoff.backoff(attempt, rand::random::<f64>()));
                self.store
                    .alert_notify_failed(key, seq, &error, retry_in, now)
                    .await?;
                match retry_in {
                    Some(delay) => {
                        done.retrying += 1;
                        tracing::info!(
                            rule = %key.rule, tenant = %alert.tenant, queue = %key.queue,
                            status, attempt, %error, retry_in_ms = delay.as_millis() as u64,
                            "alert notification failed; retrying"
                        );
                    }
                    None => {
                        done.given_up += 1;
                        tracing::warn!(
                            rule = %key.rule, tenant = %alert.tenant, queue = %key.queue,
                            status, attempt, %error,
                            "alert notification failed its last attempt; given up"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Evaluates the rules every [`AlertsConfig::interval`] and delivers notifications as
    /// they come due, while this node holds the `alerts` leader lease, until `shutdown` is
    /// cancelled; then hands the lease over. Evaluation and delivery are separate loops, so a
    /// slow webhook never delays an evaluation. Returns at once when alerts are disabled.
    pub async fn run(&self, shutdown: CancellationToken) {
        if !self.config.enabled {
            return;
        }
        let (leader_tx, leader_rx) = watch::channel(false);
        tokio::join!(
            crate::leader::lead(
                &self.store,
                LEADER_LEASE,
                &self.node,
                self.config.leader_ttl,
                &shutdown,
                leader_tx,
            ),
            self.evaluate_loop(&shutdown, leader_rx.clone()),
            self.deliver_loop(&shutdown, leader_rx),
        );
    }

    async fn evaluate_loop(&self, shutdown: &CancellationToken, mut leader: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.config.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                // A new leader evaluates at once rather than an interval later.
                Ok(()) = leader.changed() => {}
            }
            if !*leader.borrow_and_update() {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                result = self.evaluate_once(None) => match result {
                    Ok(counts) => tracing::debug!(?counts, "alerts evaluated"),
                    Err(e) => tracing::warn!(error = %e, "alerts: evaluation failed"),
                },
            }
        }
    }

    async fn deliver_loop(&self, shutdown: &CancellationToken, mut leader: watch::Receiver<bool>) {
        if self.webhook.is_none() {
            return;
        }
        let mut tick = tokio::time::interval(DELIVERY_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = self.wake.notified() => {}
                Ok(()) = leader.changed() => {}
            }
            if !*leader.borrow_and_update() {
                continue;
            }
            tokio::select! {
                // An undelivered notification stays due, for the next leader.
                _ = shutdown.cancelled() => return,
                result = self.deliver_once(None) => match result {
                    Ok(counts) => tracing::debug!(?counts, "alert notifications sent"),
                    Err(e) => tracing::warn!(error = %e, "alerts: delivering notifications failed"),
                },
            }
        }
    }
}

fn alert_value(rule: Rule, figures: &AlertFigures, o: Observation) -> (AlertValue, Observation) {
    let value = AlertValue {
        key: AlertKey {
            tenant_id: figures.tenant_id,
            rule: rule.as_str().to_string(),
            queue: figures.queue.clone(),
        },
        value: o.value,
        threshold: o.threshold,
        description: o.description.clone(),
    };
    (value, o)
}
