//! Every route, with the action that guards it and where the project of
//! the check comes from. The table both registers the handlers and is
//! published ([`ROUTES`]) for the access matrix and the documentation; a
//! handler registered with an action must take `Guarded<thatAction>` as its
//! first argument, or the crate does not compile.

use actix_web::{web, FromRequest, Handler};

use super::auth::Guarded;
use super::{
    admin, approvals, deployments, events, health, lineage, mlflow, monitoring, openapi, proofs, reports, search,
    subjects, webhooks,
};
use crate::auth::actions::{self, Action, Guard};
use crate::error_code::ErrorCode;

/// One route: method, path as the OpenAPI description writes it, the
/// action that guards it (`None`: public), what decides the project, and the
/// refusals of its own that it may answer with (besides those every route
/// of its kind gives: authentication, unreadable input, storage). The
/// OpenAPI description documents each from [`ErrorCode`].
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub action: Option<Action>,
    pub project: &'static str,
    pub refuses: &'static [ErrorCode],
}

/// Handlers whose first argument is `T`.
pub trait StartsWith<T> {}
impl<T> StartsWith<T> for (T,) {}
impl<T, B> StartsWith<T> for (T, B) {}
impl<T, B, C> StartsWith<T> for (T, B, C) {}
impl<T, B, C, D> StartsWith<T> for (T, B, C, D) {}
impl<T, B, C, D, E> StartsWith<T> for (T, B, C, D, E) {}

/// `handler`, once the compiler has checked that it takes `Guarded<A>`
/// first: the table's action is the one the handler is written against.
pub fn guarded<A: Guard, F, Args>(handler: F) -> F
where
    F: Handler<Args>,
    Args: FromRequest + StartsWith<Guarded<A>>,
{
    handler
}

/// `handler` of a public route.
pub fn public<F: Handler<Args>, Args: FromRequest>(handler: F) -> F {
    handler
}

macro_rules! routes {
    ($($path:literal $(as $pattern:literal)? => {
        $($method:ident $handler:path : $guard:ident $project:literal [$($code:ident),*]),+ $(,)?
    })*) => {
        /// Every route of the API.
        pub const ROUTES: &[Route] = &[$($(Route {
            method: stringify!($method),
            path: $path,
            action: routes!(@action $guard),
            project: $project,
            refuses: &[$(ErrorCode::$code),*],
        },)+)*];

        /// Registers every route. Each path is one resource, so that a
        /// method it does not serve is answered 405 with `Allow`.
        pub fn register(cfg: &mut web::ServiceConfig) {
            $(
                let pattern = routes!(@pattern $path $(, $pattern)?);
                let resource = web::resource(pattern).default_service(web::to(super::method_not_allowed));
                $(let resource = resource.route(
                    web::method(actix_web::http::Method::$method).to(routes!(@wrap $guard, $handler)),
                );)+
                cfg.service(resource);
            )*
        }
    };
    (@action public) => { None };
    (@action $guard:ident) => { Some(<actions::$guard as Guard>::ACTION) };
    (@wrap public, $handler:path) => { public($handler) };
    (@wrap $guard:ident, $handler:path) => { guarded::<actions::$guard, _, _>($handler) };
    (@pattern $path:literal) => { $path };
    (@pattern $path:literal, $pattern:literal) => { $pattern };
}

routes! {
    "/healthz" => { GET health::healthz: public "none: liveness" [] }
    "/readyz" => { GET health::readyz: public "none: readiness" [NotReady] }
    "/metrics" => { GET health::metrics: public "none: counters without data" [] }
    "/api/v1/openapi.json" => { GET openapi::openapi_json: public "none: the API description" [] }
    "/api/v1/events" => {
        POST events::append: AppendEvents "each event's project, per kind" [
            ProjectMismatch, SeparationOfDuties, VersionExists, ModelRetired, PersonalData, InvalidEvent,
            ServerAssignedField, EmptyBatch, BatchTooLarge, UseEndpoint, IdempotencyKeyReused
        ],
        GET events::list: ReadEvents "each event's project: others are left out" [InvalidQuery, InvalidLimit],
    }
    "/api/v1/events/{seq}" => { GET events::get: ReadEvents "the event's project (404 otherwise)" [NotFound] }
    "/api/v1/head" => { GET events::head: ReadLedger "the whole ledger" [] }
    "/api/v1/verify" => { GET events::verify: VerifyLedger "the whole ledger" [] }
    "/api/v1/checkpoint" => { GET proofs::checkpoint: public "none: signed, public by design" [NotFound] }
    "/api/v1/checkpoint/key" => { GET proofs::verifier_key: public "none: the verifier key" [] }
    "/api/v1/proofs/inclusion" => {
        GET proofs::inclusion: ReadEvents "the event's project (404 otherwise)" [NotFound, OutOfRange]
    }
    "/api/v1/proofs/consistency" => { GET proofs::consistency: VerifyLedger "the whole ledger" [OutOfRange] }
    "/api/v1/approvals" => {
        POST approvals::request_approval: AppendEvents "the model's project" [
            NotFound, ProjectMismatch, ApprovalNotPending, ModelRetired, InvalidRequest, UnknownEnvironment,
            IdempotencyKeyReused
        ],
        GET approvals::list_approvals: ReadEvents "each approval's project: others are left out" [
            InvalidQuery, InvalidLimit
        ],
    }
    "/api/v1/approvals/{id}" => {
        GET approvals::get_approval: ReadEvents "the approval's project (404 otherwise)" [NotFound, InvalidRequest]
    }
    "/api/v1/approvals/{id}/decision" => {
        POST approvals::decide: AppendEvents "the approval's project" [
            SeparationOfDuties, NotFound, ApprovalNotPending, AlreadyDecided, InvalidRequest
        ]
    }
    "/api/v1/gate" => { GET deployments::gate: ReadEvents "the model's project (404 otherwise)" [NotFound, InvalidRequest] }
    "/api/v1/deployments" => {
        POST deployments::deploy: AppendEvents "the model's project" [
            NotFound, ProjectMismatch, InvalidRequest, IdempotencyKeyReused
        ]
    }
    "/api/v1/lineage" => {
        GET lineage::lineage: ReadEvents "each node's project: others are left out (404 for the start)" [
            NotFound, InvalidQuery, InvalidDepth, InvalidLimit
        ],
        POST lineage::openlineage: AppendEvents "the `project` query parameter" [
            ProjectMismatch, InvalidOpenlineageEvent, IdempotencyKeyReused
        ],
    }
    "/api/v1/impact" => {
        GET lineage::impact: ReadEvents "each node's project: others are left out" [NotFound, InvalidQuery, InvalidLimit]
    }
    "/api/v1/entities/{ref}" as "/api/v1/entities/{ref:.*}" => {
        GET lineage::entity: ReadEvents "the entity's project (404 otherwise); edges and history likewise" [
            NotFound, InvalidPath
        ]
    }
    "/api/v1/search" => {
        GET search::search: ReadEvents "each hit's project: others are left out" [InvalidQuery, InvalidLimit, IndexLagging]
    }
    "/api/v1/subjects/{id}" => {
        GET subjects::access: ReadSubjects "none: pseudonyms belong to no project" [InvalidRequest]
    }
    "/api/v1/subjects/{id}/erase" => {
        POST subjects::erase: EraseSubjects "none: pseudonyms belong to no project" [NotFound, InvalidRequest]
    }
    "/api/v1/reports/{type}" => {
        GET reports::report: ReadReports "the projects the caller may read events and reports in" [
            NotFound, InvalidReport, InvalidQuery
        ]
    }
    "/api/v1/tokens" => {
        POST admin::issue_token: IssueTokens "none: administration" [InvalidRequest],
        GET admin::list_tokens: IssueTokens "none: administration" [],
    }
    "/api/v1/tokens/{jti}/revoke" => {
        POST admin::revoke_token: RevokeTokens "none: administration" [NotFound, InvalidRequest]
    }
    "/api/v1/policies" => {
        GET admin::get_policy: ReadPolicy "none: administration" [],
        PUT admin::put_policy: WritePolicy "none: administration" [InvalidPolicy],
    }
    "/api/v1/identity-map" => {
        GET admin::get_identity_map: ReadPolicy "none: administration" [],
        PUT admin::put_identity_map: WritePolicy "none: administration" [InvalidIdentityMap],
    }
    "/api/v1/monitoring/rules" => {
        GET monitoring::get_rules: ReadPolicy "none: administration" [],
        PUT monitoring::put_rules: WritePolicy "none: administration" [InvalidMonitoringRules],
    }
    "/api/v1/webhooks" => {
        POST webhooks::create: ManageWebhooks "the projects of its filter (none: every project)" [
            InvalidRequest, MasterKeyRequired
        ],
        GET webhooks::list: ReadWebhooks "each subscription's projects: others are left out" [],
    }
    "/api/v1/webhooks/{id}" => {
        GET webhooks::get: ReadWebhooks "the subscription's projects (404 otherwise)" [NotFound],
        PATCH webhooks::change: ManageWebhooks "the subscription's projects, and those of a new filter" [
            NotFound, InvalidRequest
        ],
        DELETE webhooks::delete: ManageWebhooks "the subscription's projects" [NotFound, InvalidRequest],
    }
    "/api/v1/webhooks/{id}/rotate-secret" => {
        POST webhooks::rotate_secret: ManageWebhooks "the subscription's projects" [NotFound, MasterKeyRequired]
    }
    "/api/v1/webhooks/{id}/replay" => {
        POST webhooks::replay: ManageWebhooks "the subscription's projects" [NotFound, InvalidRequest]
    }
    "/api/v1/integrations/mlflow" => {
        POST mlflow::deliver: public "the mapping's project (policies/mlflow.toml), as role mlflow; authenticated by MLflow's signature" [
            InvalidSignature, IntegrationNotConfigured, Forbidden, InvalidRequest, UpstreamUnavailable
        ]
    }
    "/api/v1/webhooks/{id}/deliveries" => {
        GET webhooks::deliveries: ReadWebhooks "the subscription's projects (404 otherwise)" [NotFound, InvalidLimit]
    }
}

/// The table of routes, their actions and where the project of the check
/// comes from, as docs/ACCESS.md shows it (a test keeps the two equal).
pub fn access_table() -> String {
    let mut out = String::from("| route | action | casbin object, action | project |\n|---|---|---|---|\n");
    for r in ROUTES {
        let (name, casbin) = match r.action {
            Some(a) => (a.name, format!("`{}`, `{}`", a.object, a.action)),
            None => ("public", "none".to_owned()),
        };
        out.push_str(&format!("| `{} {}` | {name} | {casbin} | {} |\n", r.method, r.path, r.project));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_page_shows_this_table() {
        let doc = include_str!("../../docs/ACCESS.md");
        let shown = doc.split("<!-- routes -->").nth(1).unwrap_or_default().trim();
        assert_eq!(shown, access_table().trim(), "regenerate the table between the <!-- routes --> markers");
    }

    /// The table and the OpenAPI description list the same routes.
    #[test]
    fn every_described_route_is_in_the_table_and_back() {
        let doc: serde_json::Value = serde_json::from_str(&super::super::openapi::document()).unwrap();
        let mut described = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                described.insert((method.to_uppercase(), path.clone()));
            }
        }
        let table: std::collections::BTreeSet<(String, String)> =
            ROUTES.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
        assert_eq!(described, table);
    }
}
