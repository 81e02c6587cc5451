//! The OpenAPI document, generated from the handlers' annotations, then completed with what
//! every operation shares ([`Errors`]): the bearer scheme, `?tenant=`, and the error answers
//! (RFC 9457 problem details) each kind of operation can give.

use axum::Json;
use serde::Serialize;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Required, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::{alerts, dead, handlers, health, jobs, queues, schedules, tenants};

/// Spool's API, as OpenAPI 3.1.
#[derive(OpenApi)]
#[openapi(
    info(title = "Spool", description = "Sandboxed background jobs on PostgreSQL."),
    paths(
        tenants::create, tenants::list, tenants::update, tenants::token_create,
        tenants::token_list, tenants::token_revoke,
        handlers::upload, handlers::list, handlers::show, handlers::delete,
        jobs::enqueue, jobs::enqueue_batch, jobs::show, jobs::list, jobs::cancel, jobs::retry,
        schedules::create, schedules::list, schedules::show, schedules::put, schedules::update,
        schedules::delete,
        dead::list, dead::retry, dead::discard, queues::list, alerts::list,
        health::live, health::ready, health::metrics, document,
    ),
    components(schemas(Problem)),
    security(("bearer" = [])),
    modifiers(&Errors),
)]
pub struct ApiDoc;

/// An error answer (`application/problem+json`, RFC 9457).
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
}

/// Completes every operation with what the annotations leave out: the bearer scheme, the
/// `tenant` parameter of operations that act for a tenant, and the error statuses each can
/// answer, all as problem details.
struct Errors;

/// Statuses any `/v1` operation can answer: no or a bad token, not allowed, too slow,
/// throttled, a bug, the database or the server too busy.
const ANY: &[(&str, &str)] = &[
    ("401", "No token, or one that is not valid"),
    (
        "403",
        "The token may not do this (a tenant's token on an admin endpoint, or acting \
             for another tenant)",
    ),
    (
        "408",
        "The request took too long (its body arrived too slowly, or answering it did)",
    ),
    (
        "429",
        "A quota is exhausted, or too many failed authentications from this address \
             (see Retry-After)",
    ),
    (
        "500",
        "A bug: the detail holds a reference to the server's log",
    ),
    (
        "503",
        "The database or the server is busy or unreachable; retry (see Retry-After)",
    ),
];
/// Statuses of an operation that takes a body.
const BODY: &[(&str, &str)] = &[
    ("400", "The body is not well-formed"),
    ("413", "The body is larger than this operation takes"),
    (
        "415",
        "The body's content type is not the one this operation takes",
    ),
    (
        "422",
        "The body is well-formed but not acceptable (an unknown field, a value out of \
             range)",
    ),
];
/// Statuses of an operation that names something in its path, or acts for a tenant that
/// `?tenant=` names.
const NAMED: &[(&str, &str)] = &[
    (
        "400",
        "A malformed parameter, or the admin token without ?tenant=",
    ),
    ("404", "No such thing, or not the caller's"),
];

impl Modify for Errors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                complete(path, operation);
            }
        }
    }
}

/// Whether an operation acts for a tenant (the caller's, or the admin's `?tenant=`).
fn scoped(path: &str) -> bool {
    path.starts_with("/v1/") && !path.starts_with("/v1/tenants") && path != "/v1/openapi.json"
}

fn complete(path: &str, operation: &mut Operation) {
    let public = operation
        .security
        .as_ref()
        .is_some_and(|s| s.iter().all(|r| r == &SecurityRequirement::default()));
    let mut statuses: Vec<(&str, &str)> = Vec::new();
    if !public {
        statuses.extend(ANY);
        if operation.security.is_none() {
            operation.security = Some(vec![SecurityRequirement::new(
                "bearer",
                Vec::<String>::new(),
            )]);
        }
    }
    if operation.request_body.is_some() {
        statuses.extend(BODY);
    }
    if path.contains('{') || scoped(path) {
        statuses.extend(NAMED);
    }
    if scoped(path) {
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        if !parameters.iter().any(|p| p.name == "tenant") {
            parameters.push(tenant_parameter());
        }
    }
    for (status, description) in statuses {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(description).build()));
    }
    // Every error answer is a problem, whatever its annotation says about its content.
    for (status, response) in operation.responses.responses.iter_mut() {
        if let (RefOr::T(response), true) = (response, status.as_str() >= "400") {
            if response.description.is_empty() {
                response.description = "See the detail".into();
            }
            response.content.clear();
            response.content.insert(
                "application/problem+json".into(),
                Content::new(Some(Ref::from_schema_name("Problem"))),
            );
        }
    }
}

fn tenant_parameter() -> Parameter {
    ParameterBuilder::new()
        .name("tenant")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(
            "(admin token only) The tenant to act for; a tenant's token may name only itself",
        ))
        .schema(Some(utoipa::openapi::schema::Object::with_type(
            utoipa::openapi::schema::Type::String,
        )))
        .build()
}

/// This document (OpenAPI 3.1).
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
