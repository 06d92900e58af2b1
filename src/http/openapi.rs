//! The OpenAPI 3 description of the HTTP API, generated from the handlers'
//! `#[utoipa::path]` attributes and the `ToSchema` derives of the types they
//! answer with. Served at `/api/v1/openapi.json`; `govledger openapi` prints
//! the same document, which is committed as `docs/openapi.json`.

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::routes::ROUTES;
use super::{
    admin, approvals, deployments, events, health, lineage, mlflow, monitoring, proofs, reports, search, subjects,
    webhooks,
};
use crate::error_code::ErrorCode;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "govledger",
        description = "Append-only, hash-chained governance ledger for machine learning in production. \
            Every route except the probes, metrics, checkpoints, this document and the MLflow \
            integration (authenticated by its HMAC signature) needs a bearer JWT \
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
        admin::get_identity_map,
        admin::put_identity_map,
        admin::put_policy,
        monitoring::get_rules,
        monitoring::put_rules,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::change,
        webhooks::delete,
        webhooks::rotate_secret,
        webhooks::replay,
        webhooks::deliveries,
        mlflow::deliver,
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
        (name = "webhooks", description = "Signed notifications of events (Standard Webhooks)"),
        (name = "integrations", description = "Deliveries from other systems (MLflow's registry), authenticated by their signatures"),
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

/// The error responses, added in one place rather than on each handler and
/// described from the error-code table, so a description cannot name a code
/// that does not exist: the refusals each route declares in the route
/// table, and those every route of a kind gives (authentication and rate
/// limits on every route that takes a token; unreadable bodies, query
/// strings and paths; an unavailable database).
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "mlflow_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-MLflow-Signature",
                "`v1,` + base64 HMAC-SHA256 of `delivery_id.timestamp.body` with the MLflow webhook's secret \
                 (docs/MLFLOW.md)",
            ))),
        );
        for route in ROUTES {
            let Some(item) = api.paths.paths.get_mut(route.path) else { continue };
            let operation = match route.method {
                "GET" => &mut item.get,
                "POST" => &mut item.post,
                "PUT" => &mut item.put,
                "DELETE" => &mut item.delete,
                _ => &mut item.patch,
            };
            if let Some(operation) = operation {
                let uses_database = route.path.starts_with("/api/v1/") || route.path == "/readyz";
                add_errors(operation, route.action.is_none(), uses_database, route.refuses);
            }
        }
    }
}

fn add_errors(operation: &mut Operation, public: bool, uses_database: bool, refuses: &[ErrorCode]) {
    use ErrorCode::*;
    let mut codes: Vec<ErrorCode> = refuses.to_vec();
    if !public {
        operation.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
        codes.extend([Unauthenticated, Forbidden, RateLimited]);
    }
    if operation.request_body.is_some() {
        codes.extend([MalformedJson, MalformedRequest, InvalidBody, PayloadTooLarge, UnsupportedMediaType]);
    }
    if let Some(parameters) = &operation.parameters {
        use utoipa::openapi::path::ParameterIn;
        if parameters.iter().any(|p| p.parameter_in == ParameterIn::Query) {
            codes.push(MalformedQuery);
        }
        if parameters.iter().any(|p| p.parameter_in == ParameterIn::Path) {
            codes.push(MalformedPath);
        }
    }
    if uses_database {
        codes.extend([StorageUnavailable, ShuttingDown]);
    }
    codes.sort();
    codes.dedup();
    let mut by_status: std::collections::BTreeMap<u16, Vec<ErrorCode>> = std::collections::BTreeMap::new();
    for code in codes {
        by_status.entry(code.status()).or_default().push(code);
    }
    for (status, codes) in by_status {
        let description =
            codes.iter().map(|c| format!("`{}`: {}", c.name(), c.meaning())).collect::<Vec<_>>().join("; ");
        // A route's own description of a status (with its own body) says more; keep it.
        operation.responses.responses.entry(status.to_string()).or_insert_with(|| {
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
