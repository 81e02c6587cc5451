//! One typed method per API operation: each returns a [`Call`] answered by the operation's
//! response type.

use std::fmt::Display;

use reqwest::Method;

use crate::types::{
    BatchRequest, BatchView, CreateTenant, DeadSelection, Discarded, EnqueuedView, HandlerDetail,
    HandlerList, HandlerView, JobPage, JobRequest, JobView, ListQuery, Retried, ScheduleList,
    SchedulePatch, ScheduleRequest, ScheduleView, StateView, TenantList, TenantView, TokenList,
    TokenView, UpdateTenant,
};
use crate::{Call, Client};

/// The content type of a component upload.
const WASM: &str = "application/wasm";

/// Tenants (the admin token).
impl Client {
    /// `POST /v1/tenants`: creates a tenant and its first token (in the answer's `token`).
    pub fn tenant_create(&self, tenant: &CreateTenant) -> Call<'_, TenantView> {
        self.request(Method::POST, &["tenants"]).json(tenant)
    }

    /// `GET /v1/tenants`: every tenant.
    pub fn tenant_list(&self) -> Call<'_, TenantList> {
        self.request(Method::GET, &["tenants"])
    }

    /// `PATCH /v1/tenants/{name}`: changes a tenant's limits or allowed hosts.
    pub fn tenant_update(&self, name: &str, update: &UpdateTenant) -> Call<'_, TenantView> {
        self.request(Method::PATCH, &["tenants", name]).json(update)
    }

    /// `POST /v1/tenants/{name}/tokens`: a new token for a tenant.
    pub fn token_create(&self, tenant: &str) -> Call<'_, TokenView> {
        self.request(Method::POST, &["tenants", tenant, "tokens"])
    }

    /// `GET /v1/tenants/{name}/tokens`: a tenant's tokens.
    pub fn token_list(&self, tenant: &str) -> Call<'_, TokenList> {
        self.request(Method::GET, &["tenants", tenant, "tokens"])
    }

    /// `DELETE /v1/tenants/{name}/tokens/{id}`: revokes a token.
    pub fn token_revoke(&self, tenant: &str, id: impl Display) -> Call<'_, ()> {
        let id = id.to_string();
        self.request(Method::DELETE, &["tenants", tenant, "tokens", &id])
    }
}

/// Handlers.
impl Client {
    /// `PUT /v1/handlers/{name}`: uploads `component`, `len` bytes, as the handler's new
    /// version (status 201), or finds it is the current one (200).
    pub fn handler_upload(
        &self,
        name: &str,
        component: impl Into<reqwest::Body>,
        len: u64,
    ) -> Call<'_, HandlerView> {
        self.request(Method::PUT, &["handlers", name])
            .body(component, len, WASM)
    }

    /// `GET /v1/handlers`: the handlers.
    pub fn handler_list(&self) -> Call<'_, HandlerList> {
        self.request(Method::GET, &["handlers"])
    }

    /// `GET /v1/handlers/{name}`: a handler and its versions.
    pub fn handler_get(&self, name: &str) -> Call<'_, HandlerDetail> {
        self.request(Method::GET, &["handlers", name])
    }

    /// `DELETE /v1/handlers/{name}`: deletes a handler and its versions.
    pub fn handler_delete(&self, name: &str) -> Call<'_, ()> {
        self.request(Method::DELETE, &["handlers", name])
    }
}

/// Jobs. A job's id is taken as text (a `Uuid` or a `&str`): the API answers an id that is
/// not one with 404, like an unknown one.
impl Client {
    /// `POST /v1/jobs`: enqueues a job (status 201), or finds the job its key names (200,
    /// `duplicate`).
    pub fn job_enqueue(&self, job: &JobRequest) -> Call<'_, EnqueuedView> {
        self.request(Method::POST, &["jobs"]).json(job)
    }

    /// `POST /v1/jobs/batch`: enqueues up to 10,000 jobs, all or none.
    pub fn job_enqueue_batch(&self, batch: &BatchRequest) -> Call<'_, BatchView> {
        self.request(Method::POST, &["jobs", "batch"]).json(batch)
    }

    /// `GET /v1/jobs/{id}`: a job with its payload, result, errors and last attempt's logs.
    pub fn job_get(&self, id: impl Display) -> Call<'_, JobView> {
        let id = id.to_string();
        self.request(Method::GET, &["jobs", &id])
    }

    /// `GET /v1/jobs`: a page of jobs, newest first.
    pub fn job_list(&self, query: &ListQuery) -> Call<'_, JobPage> {
        self.request(Method::GET, &["jobs"]).query_of(query)
    }

    /// `POST /v1/jobs/{id}/cancel`: cancels a job that has not started running.
    pub fn job_cancel(&self, id: impl Display) -> Call<'_, StateView> {
        let id = id.to_string();
        self.request(Method::POST, &["jobs", &id, "cancel"])
            .json(&serde_json::json!({}))
    }

    /// `POST /v1/jobs/{id}/retry`: requeues a dead or cancelled job.
    pub fn job_retry(&self, id: impl Display) -> Call<'_, StateView> {
        let id = id.to_string();
        self.request(Method::POST, &["jobs", &id, "retry"])
            .json(&serde_json::json!({}))
    }
}

/// Schedules.
impl Client {
    /// `POST /v1/schedules`: creates a schedule.
    pub fn schedule_create(&self, schedule: &ScheduleRequest) -> Call<'_, ScheduleView> {
        self.request(Method::POST, &["schedules"]).json(schedule)
    }

    /// `GET /v1/schedules`: the schedules.
    pub fn schedule_list(&self) -> Call<'_, ScheduleList> {
        self.request(Method::GET, &["schedules"])
    }

    /// `GET /v1/schedules/{name}`: a schedule, its next fire times and its last runs.
    pub fn schedule_get(&self, name: &str) -> Call<'_, ScheduleView> {
        self.request(Method::GET, &["schedules", name])
    }

    /// `PUT /v1/schedules/{name}`: creates (status 201) or replaces (200) a schedule.
    pub fn schedule_put(&self, name: &str, schedule: &ScheduleRequest) -> Call<'_, ScheduleView> {
        self.request(Method::PUT, &["schedules", name])
            .json(schedule)
    }

    /// `PATCH /v1/schedules/{name}`: changes some of a schedule's settings (`enabled` pauses
    /// and resumes it).
    pub fn schedule_update(&self, name: &str, patch: &SchedulePatch) -> Call<'_, ScheduleView> {
        self.request(Method::PATCH, &["schedules", name])
            .json(patch)
    }

    /// `DELETE /v1/schedules/{name}`: deletes a schedule.
    pub fn schedule_delete(&self, name: &str) -> Call<'_, ()> {
        self.request(Method::DELETE, &["schedules", name])
    }
}

/// The dead-letter queue.
impl Client {
    /// `GET /v1/dead`: a page of dead jobs, newest first.
    pub fn dead_list(&self, query: &ListQuery) -> Call<'_, JobPage> {
        self.request(Method::GET, &["dead"]).query_of(query)
    }

    /// `POST /v1/dead/retry`: requeues dead jobs, by id or by filter (up to 10,000 a call).
    pub fn dead_retry(&self, selection: &DeadSelection) -> Call<'_, Retried> {
        self.request(Method::POST, &["dead", "retry"])
            .json(selection)
    }

    /// `POST /v1/dead/discard`: deletes dead jobs, by id or by filter (up to 10,000 a call).
    pub fn dead_discard(&self, selection: &DeadSelection) -> Call<'_, Discarded> {
        self.request(Method::POST, &["dead", "discard"])
            .json(selection)
    }
}
