//! Built-in alerts: the figures the rules read, and each alert's state and pending webhook
//! notification (migration 0005).
//!
//! Transitions are guarded in SQL (an alert fires only if it is not firing, resolves only if it
//! is), so two evaluators racing over a leader hand-over change nothing twice; delivery outcomes
//! are fenced on the notification's sequence number.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Result, Store, StoreError, int};

/// What the alert rules read about one queue of one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertFigures {
    /// The tenant's id.
    pub tenant_id: i64,
    /// The tenant's name.
    pub tenant: String,
    /// The queue.
    pub queue: String,
    /// Attempts that completed their job over the failure-rate window.
    pub completed: i64,
    /// Attempts that failed (retried or dead-lettered) over the failure-rate window.
    pub failed: i64,
    /// Jobs dead-lettered over the dead-letter window.
    pub dead: i64,
    /// How long the oldest available job has been runnable; `None` when none is available.
    pub oldest_available_age: Option<Duration>,
}

/// Whether an alert is firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertState {
    /// Its condition holds.
    Firing,
    /// Its condition held and no longer does.
    Resolved,
}

impl AlertState {
    /// Returns the state's name, as stored and shown: `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }

    /// Parses a state name.
    pub fn parse(name: &str) -> Option<AlertState> {
        match name {
            "firing" => Some(AlertState::Firing),
            "resolved" => Some(AlertState::Resolved),
            _ => None,
        }
    }
}

/// Which alert: a rule over one queue of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AlertKey {
    /// The tenant's id.
    pub tenant_id: i64,
    /// The rule's name (`failure_rate`, `dead_letter_growth`, `backlog_age`,
    /// `schedule_failing`).
    pub rule: String,
    /// The queue; for `schedule_failing`, the schedule's name.
    pub queue: String,
}

/// A rule's figure for one alert at one evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertValue {
    /// Which alert.
    pub key: AlertKey,
    /// The figure the rule computed.
    pub value: f64,
    /// The threshold it was compared with.
    pub threshold: f64,
    /// What the figure means, for people.
    pub description: String,
}

/// One alert as stored: its state, figures and webhook notification.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// Which alert.
    pub key: AlertKey,
    /// The tenant's name.
    pub tenant: String,
    /// Firing or resolved.
    pub state: AlertState,
    /// The figure at the last evaluation while firing, or at resolution.
    pub value: f64,
    /// The threshold the figure was compared with.
    pub threshold: f64,
    /// What the figure means, for people.
    pub description: String,
    /// When the current (or last) episode began.
    pub fired_at: DateTime<Utc>,
    /// When it ended; `None` while firing.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When the figures were last recorded.
    pub evaluated_at: DateTime<Utc>,
    /// The notification still to deliver, if any: the state it announces.
    pub notify: Option<AlertState>,
    /// The notification's sequence number, which fences its delivery's outcome.
    pub notify_seq: i64,
    /// Delivery attempts of the current (or last) notification.
    pub notify_attempts: u32,
    /// When the next delivery attempt is due; `None` when nothing is pending.
    pub notify_next_at: Option<DateTime<Utc>>,
    /// Why the last delivery attempt failed, if it did.
    pub notify_error: Option<String>,
    /// When a notification was last delivered.
    pub last_notified_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Returns what the alert rules read for every queue with recent activity or available
    /// jobs: attempts over the last `rate_window` and dead-lettered jobs over the last
    /// `dead_window` (each widened to the whole minute it starts in), from the folded
    /// counters, and the oldest available job's age, all as of `now`.
    pub async fn alert_figures(
        &self,
        rate_window: Duration,
        dead_window: Duration,
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<AlertFigures>> {
        let rows: Vec<FiguresRow> = sqlx::query_as(include_str!("sql/alert_figures.sql"))
            .bind(now)
            .bind(millis(rate_window))
            .bind(millis(dead_window))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(AlertFigures::from).collect())
    }

    /// Returns the alerts of `tenant_id` (every tenant's when `None`): firing ones first, then
    /// the most recent first.
    pub async fn alert_list(&self, tenant_id: Option<i64>) -> Result<Vec<Alert>> {
        let rows: Vec<AlertRow> = sqlx::query_as(include_str!("sql/alert_list.sql"))
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Alert::try_from).collect()
    }

    /// Fires `alert` as of `now` unless it is firing already, queueing a webhook notification
    /// when `notify`. Returns whether it fired.
    pub async fn alert_fire(
        &self,
        alert: &AlertValue,
        notify: bool,
        now: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        self.alert_transition(include_str!("sql/alert_fire.sql"), alert, notify, now)
            .await
    }

    /// Resolves `alert` as of `now` if it is firing, queueing a webhook notification (in place
    /// of any not yet delivered) when `notify`. Returns whether it resolved.
    pub async fn alert_resolve(
        &self,
        alert: &AlertValue,
        notify: bool,
        now: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        self.alert_transition(include_str!("sql/alert_resolve.sql"), alert, notify, now)
            .await
    }

    /// Runs a fire or resolve statement (same parameters, a row back when it took effect).
    async fn alert_transition(
        &self,
        sql: &'static str,
        alert: &AlertValue,
        notify: bool,
        now: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let row = sqlx::query(sql)
            .bind(alert.key.tenant_id)
            .bind(&alert.key.rule)
            .bind(&alert.key.queue)
            .bind(alert.value)
            .bind(alert.threshold)
            .bind(&alert.description)
            .bind(now)
            .bind(notify)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Records the latest figures of alerts that stay firing. Returns how many were updated.
    pub async fn alert_update_many(
        &self,
        alerts: &[AlertValue],
        now: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        if alerts.is_empty() {
            return Ok(0);
        }
        let tenants: Vec<i64> = alerts.iter().map(|a| a.key.tenant_id).collect();
        let rules: Vec<&str> = alerts.iter().map(|a| a.key.rule.as_str()).collect();
        let queues: Vec<&str> = alerts.iter().map(|a| a.key.queue.as_str()).collect();
        let values: Vec<f64> = alerts.iter().map(|a| a.value).collect();
        let thresholds: Vec<f64> = alerts.iter().map(|a| a.threshold).collect();
        let descriptions: Vec<&str> = alerts.iter().map(|a| a.description.as_str()).collect();
        let n = sqlx::query(include_str!("sql/alert_update_many.sql"))
            .bind(tenants)
            .bind(rules)
            .bind(queues)
            .bind(values)
            .bind(thresholds)
            .bind(descriptions)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }

    /// Queues the firing notification again for alerts firing with nothing delivered for
    /// `interval` as of `now`. Returns how many.
    pub async fn alert_renotify(
        &self,
        interval: Duration,
        now: Option<DateTime<Utc>>,
    ) -> Result<u64> {
        let n = sqlx::query(include_str!("sql/alert_renotify.sql"))
            .bind(millis(interval))
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }

    /// Returns up to `limit` alerts whose webhook notification is due at `now`, the longest
    /// waiting first.
    pub async fn alert_notifications_due(
        &self,
        limit: u32,
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<Alert>> {
        let rows: Vec<AlertRow> = sqlx::query_as(include_str!("sql/alert_notifications_due.sql"))
            .bind(int(limit.into()))
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(Alert::try_from).collect()
    }

    /// Records that notification `seq` of `key` was delivered at `now`. Returns `false` when a
    /// newer notification replaced it meanwhile (that one stays pending).
    pub async fn alert_notified(
        &self,
        key: &AlertKey,
        seq: i64,
        now: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        self.alert_notify_result(key, seq, None, None, now).await
    }

    /// Records that delivering notification `seq` of `key` failed with `error` at `now`: it is
    /// tried again `retry_in` later, or given up when `None`. Returns `false` when a newer
    /// notification replaced it meanwhile.
    pub async fn alert_notify_failed(
        &self,
        key: &AlertKey,
        seq: i64,
        error: &str,
        retry_in: Option<Duration>,
        now: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        self.alert_notify_result(key, seq, Some(error), retry_in, now)
            .await
    }

    async fn alert_notify_result(
        &self,
        key: &AlertKey,
        seq: i64,
        error: Option<&str>,
        retry_in: Option<Duration>,
        now: Option<DateTime<Utc>>,
    ) -> Result<bool> {
        let n = sqlx::query(include_str!("sql/alert_notify_result.sql"))
            .bind(key.tenant_id)
            .bind(&key.rule)
            .bind(&key.queue)
            .bind(seq)
            .bind(error)
            .bind(retry_in.map(millis))
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A row of `alert_figures.sql`.
#[derive(sqlx::FromRow)]
struct FiguresRow {
    tenant_id: i64,
    tenant: String,
    queue: String,
    completed: i64,
    failed: i64,
    dead: i64,
    oldest_available_secs: Option<f64>,
}

impl From<FiguresRow> for AlertFigures {
    fn from(row: FiguresRow) -> AlertFigures {
        AlertFigures {
            tenant_id: row.tenant_id,
            tenant: row.tenant,
            queue: row.queue,
            completed: row.completed,
            failed: row.failed,
            dead: row.dead,
            oldest_available_age: row
                .oldest_available_secs
                .map(|s| Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)),
        }
    }
}

/// A row of `alert_list.sql` and `alert_notifications_due.sql`.
#[derive(sqlx::FromRow)]
struct AlertRow {
    tenant_id: i64,
    rule: String,
    queue: String,
    tenant: String,
    state: String,
    value: f64,
    threshold: f64,
    description: String,
    fired_at: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    evaluated_at: DateTime<Utc>,
    notify_status: Option<String>,
    notify_seq: i64,
    notify_attempts: i32,
    notify_next_at: Option<DateTime<Utc>>,
    notify_error: Option<String>,
    last_notified_at: Option<DateTime<Utc>>,
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;

    fn try_from(row: AlertRow) -> Result<Alert> {
        let parse = |s: &str| {
            AlertState::parse(s).ok_or_else(|| StoreError::Database(format!("alert state {s:?}")))
        };
        Ok(Alert {
            key: AlertKey {
                tenant_id: row.tenant_id,
                rule: row.rule,
                queue: row.queue,
            },
            tenant: row.tenant,
            state: parse(&row.state)?,
            value: row.value,
            threshold: row.threshold,
            description: row.description,
            fired_at: row.fired_at,
            resolved_at: row.resolved_at,
            evaluated_at: row.evaluated_at,
            notify: row.notify_status.as_deref().map(parse).transpose()?,
            notify_seq: row.notify_seq,
            notify_attempts: row.notify_attempts.max(0) as u32,
            notify_next_at: row.notify_next_at,
            notify_error: row.notify_error,
            last_notified_at: row.last_notified_at,
        })
    }
}
