//! The OpenAPI 3 description of the HTTP API, generated from the handlers'
//! `#[utoipa::path]` attributes and the `ToSchema` derives of the types they
//! answer with. Served at `/api/v1/openapi.json`; `govledger openapi` prints
//! the same document, which is committed as `docs/openapi.json`.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{admin, approvals, deployments, events, health, lineage, proofs, reports, search, subjects};

/// Routes that answer without a token.
const PUBLIC: [&str; 6] =
    ["/healthz", "/readyz", "/metrics", "/api/v1/checkpoint", "/api/v1/checkpoint/key", "/api/v1/openapi.json"];

#[derive(OpenApi)]
#[openapi(
    info(
        title = "govledger",
        description = "Append-only, hash-chained governance ledger for machine learning in production. \
            Every route except the probes, metrics, checkpoints and this document needs a bearer JWT \
            (see docs/ACCESS.md). Every error is `{\"error\": code, \"message\": text}`.",
        license(name = "Apache-2.0")
    ),
    paths(
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
        events::append,
        events::list,
        events::get,
        events::head,
        events::verify,
        proofs::checkpoint,
        proofs::verifier_key,
        proofs::inclusion,
        proofs::consistency,
        approvals::request_approval,
        approvals::list_approvals,
        approvals::get_approval,
        approvals::decide,
        deployments::gate,
        deployments::deploy,
        lineage::lineage,
        lineage::openlineage,
        lineage::impact,
        lineage::entity,
        search::search,
        subjects::access,
        subjects::erase,
        reports::report,
        admin::issue_token,
        admin::list_tokens,
        admin::revoke_token,
        admin::get_policy,
        admin::put_policy,
    ),
    components(schemas(
        super::error::ErrorBody,
        crate::reports::ReportType,
        super::params::Seq,
        crate::ledger::EntityRef,
        crate::governance::ModelVersionRef
    )),
    modifiers(&CommonResponses),
    tags(
        (name = "probes", description = "Liveness, readiness and Prometheus metrics"),
        (name = "events", description = "Appending to and reading the ledger"),
        (name = "proofs", description = "Signed checkpoints, inclusion and consistency proofs"),
        (name = "governance", description = "Approvals, deployment gates, lineage and entities"),
        (name = "search", description = "Full-text and faceted search"),
        (name = "subjects", description = "Data subjects: access answers and erasure (GDPR)"),
        (name = "reports", description = "Compliance reports as PDF, JSON or CSV"),
        (name = "admin", description = "Tokens and the access policy"),
    )
)]
struct ApiDoc;

/// The document as pretty-printed JSON with a final newline, exactly the
/// bytes of `docs/openapi.json`.
pub fn document() -> String {
    let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// The methods served at a route pattern (`/api/v1/entities/{ref:.*}`,
/// parameter names and regular expressions aside), as an `Allow` value.
pub fn methods_of(pattern: &str) -> String {
    static METHODS: OnceLock<Vec<(String, String)>> = OnceLock::new();
    let table = METHODS.get_or_init(|| {
        let api = ApiDoc::openapi();
        api.paths
            .paths
            .iter()
            .map(|(path, item)| {
                let served = [
                    ("GET", item.get.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("PATCH", item.patch.is_some()),
                ];
                let methods: Vec<&str> = served.iter().filter(|(_, on)| *on).map(|(m, _)| *m).collect();
                (template_shape(path), methods.join(", "))
            })
            .collect()
    });
    let shape = template_shape(pattern);
    table.iter().find(|(p, _)| *p == shape).map(|(_, m)| m.clone()).unwrap_or_default()
}

/// A path template with every `{...}` emptied, so that `{ref:.*}` and
/// `{ref}` compare equal.
pub fn template_shape(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut depth = 0usize;
    for c in template.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push_str("{}");
                }
                depth += 1;
            }
            '}' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "probes",
    responses((status = 200, description = "This document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    HttpResponse::Ok().content_type("application/json").body(DOCUMENT.get_or_init(document).as_str())
}

/// The responses every route of a kind can give, added in one place rather
/// than on each handler: authentication, authorization and rate limits on
/// every route that takes a token; unreadable or oversized bodies on every
/// route that takes one; unreadable query strings and paths; an unavailable
/// database.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        for (path, item) in api.paths.paths.iter_mut() {
            let public = PUBLIC.contains(&path.as_str());
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                add_common(operation, public, path.starts_with("/api/v1/") || path == "/readyz" || path == "/metrics");
            }
        }
    }
}

fn add_common(operation: &mut Operation, public: bool, uses_database: bool) {
    let mut errors: Vec<(&str, &str)> = Vec::new();
    if !public {
        operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
        errors.push(("401", "`unauthenticated`: no bearer token, or one that is invalid, expired or revoked"));
        errors.push(("403", "`forbidden`: the token's roles do not allow this here"));
        errors.push(("429", "`rate_limited`: the token's rate limit is exhausted; see `Retry-After`"));
    }
    if operation.request_body.is_some() {
        errors.push(("400", "`malformed_json` or `invalid_request`: the body cannot be read as this route's request"));
        errors.push(("413", "`payload_too_large`: the body is larger than the configured limit"));
        errors.push(("415", "`unsupported_media_type`: the body is not of the documented content type"));
    }
    if operation.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        errors.push(("400", "`invalid_query` or `invalid_path`: a parameter cannot be read"));
    }
    if uses_database {
        errors.push((
            "503",
            "`storage_unavailable` or `shutting_down`: retry later (appends: with the same idempotency key)",
        ));
    }
    for (status, description) in errors {
        // A route's own description of a status says more; keep it.
        operation.responses.responses.entry(status.to_owned()).or_insert_with(|| {
            ResponseBuilder::new()
                .description(description)
                .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
                .build()
                .into()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_an_operation_id_and_a_success_response() {
        let api = ApiDoc::openapi();
        for (path, item) in &api.paths.paths {
            for operation in [&item.get, &item.post, &item.put].into_iter().flatten() {
                assert!(operation.operation_id.is_some(), "{path}");
                assert!(
                    operation.responses.responses.keys().any(|s| s.starts_with('2')),
                    "{path} documents no success response"
                );
            }
        }
    }
}
