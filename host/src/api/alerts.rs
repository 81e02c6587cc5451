//! `GET /v1/alerts`: the built-in alerts and their state.

use axum::Json;
use serde_json::{Value, json};

use serde::Deserialize;

use super::auth::Caller;
use super::error::ApiQuery;
use super::{ApiError, ApiResult, State};
use crate::store::{Alert, StoreError};

/// `GET /v1/alerts` query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// (admin) Only this tenant's alerts.
    tenant: Option<String>,
}

/// Lists the alerts, firing ones first (the most recently fired first), then resolved ones
/// (the most recently resolved first): every tenant's for the admin, its own for a tenant.
///
/// `{alerts: [{rule, tenant, queue, state, value, threshold, description, fired_at,
/// resolved_at}]}`; `value` and `threshold` are a fraction for `failure_rate`, a count for
/// `dead_letter_growth`, seconds for `backlog_age` and runs for `schedule_failing` (whose
/// alerts name the schedule as `schedule`, and as `queue` too).
/// The admin may narrow the list to one tenant with `?tenant=NAME`.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts",
    responses((status = 200, description = "The alerts", body = Object)))]
pub async fn list(
    state: State,
    caller: Caller,
    ApiQuery(query): ApiQuery<TenantQuery>,
) -> ApiResult<Json<Value>> {
    let tenant_id = match (&caller, query.tenant) {
        (Caller::Admin, None) => None,
        (Caller::Admin, Some(name)) => match state.store.tenant_get(&name).await {
            Ok(tenant) => Some(tenant.id),
            Err(StoreError::NotFound) => {
                return Err(ApiError::not_found(format!("no tenant named {name:?}")));
            }
            Err(e) => return Err(e.into()),
        },
        (Caller::Tenant(tenant), None) => Some(tenant.id),
        (Caller::Tenant(tenant), Some(name)) if name == tenant.name => Some(tenant.id),
        (Caller::Tenant(_), Some(_)) => {
            return Err(ApiError::forbidden(
                "only the admin token may act for another tenant",
            ));
        }
    };
    let alerts = state.store.alert_list(tenant_id).await?;
    Ok(Json(json!({
        "alerts": alerts.iter().map(alert_json).collect::<Vec<_>>(),
    })))
}

fn alert_json(a: &Alert) -> Value {
    let mut alert = json!({
        "rule": a.key.rule,
        "tenant": a.tenant,
        "queue": a.key.queue,
        "state": a.state.as_str(),
        "value": a.value,
        "threshold": a.threshold,
        "description": a.description,
        "fired_at": a.fired_at,
        "resolved_at": a.resolved_at,
    });
    if a.key.rule == crate::alerts::Rule::ScheduleFailing.as_str() {
        alert["schedule"] = json!(a.key.queue);
    }
    alert
}
