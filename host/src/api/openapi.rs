//! The OpenAPI document, generated from the handlers' annotations.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{dead, handlers, jobs, queues, tenants};

/// Spool's API, as OpenAPI 3.1.
#[derive(OpenApi)]
#[openapi(
    info(title = "Spool", description = "Sandboxed background jobs on PostgreSQL."),
    paths(
        tenants::create, tenants::list, tenants::update, tenants::token_create,
        tenants::token_list, tenants::token_revoke,
        handlers::upload, handlers::list, handlers::show, handlers::delete,
        jobs::enqueue, jobs::enqueue_batch, jobs::show, jobs::list, jobs::cancel, jobs::retry,
        dead::list, dead::retry, dead::discard, queues::list,
    ),
    modifiers(&Bearer),
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// `GET /v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
