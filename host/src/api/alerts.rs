//! `GET /v1/alerts`: the built-in alerts and their state.

use axum::Json;
use serde_json::{Value, json};

use super::auth::Caller;
use super::{ApiResult, State};
use crate::store::Alert;

/// Lists the alerts, firing ones first (the most recently fired first), then resolved ones
/// (the most recently resolved first): every tenant's for the admin, its own for a tenant.
///
/// `{alerts: [{rule, tenant, queue, state, value, threshold, description, fired_at,
/// resolved_at}]}`; `value` and `threshold` are a fraction for `failure_rate`, a count for
/// `dead_letter_growth` and seconds for `backlog_age`.
pub async fn list(state: State, caller: Caller) -> ApiResult<Json<Value>> {
    let tenant_id = match &caller {
        Caller::Admin => None,
        Caller::Tenant(tenant) => Some(tenant.id),
    };
    let alerts = state.store.alert_list(tenant_id).await?;
    Ok(Json(json!({
        "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
    })))
}

fn alert_json(a: &Alert) -> Value {
    json!({
        "rule": a.key.rule,
        "tenant": a.tenant,
        "queue": a.key.queue,
        "state": a.state.as_str(),
        "value": a.value,
        "threshold": a.threshold,
        "description": a.description,
        "fired_at": a.fired_at,
        "resolved_at": a.resolved_at,
    })
}
