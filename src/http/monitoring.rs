//! `/api/v1/monitoring/rules`: the monitoring rules in force, and changing
//! them (a `monitoring.rules_changed` on the record).

use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::Guarded;
use super::{ApiError, AppState};
use crate::auth::actions::{ReadPolicy, WritePolicy};
use crate::governance::monitoring::RulesVersion;

/// The header naming the `monitoring.rules_changed` seq of the rules sent
/// (0: none recorded yet; the first metric report records them).
const RULES_SEQ: &str = "Monitoring-Rules-Seq";

fn answer(rules: RulesVersion) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/toml; charset=utf-8")
        .insert_header((RULES_SEQ, rules.seq.to_string()))
        .body(rules.text)
}

/// `GET /api/v1/monitoring/rules`: the monitoring rules in force, as TOML;
/// `Monitoring-Rules-Seq` names the event that recorded them.
#[utoipa::path(get, path = "/api/v1/monitoring/rules", tag = "admin",
    responses((status = 200, description = "The monitoring rules in force (policies/monitoring.toml format)",
        content_type = "application/toml", body = String,
        headers(("Monitoring-Rules-Seq" = u64, description = "The seq of their `monitoring.rules_changed` (0: not recorded yet)")))))]
pub async fn get_rules(_: Guarded<ReadPolicy>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    Ok(answer(state.governance.monitoring_rules().await?))
}

/// `PUT /api/v1/monitoring/rules` (admin): replaces the monitoring rules
/// with `monitoring.rules_changed` on the record. Reports are judged by the
/// new rules from the next append on; each breach cites the version it used.
#[utoipa::path(put, path = "/api/v1/monitoring/rules", tag = "admin",
    request_body(content = String, description = "Monitoring rules (policies/monitoring.toml format), as text", content_type = "text/plain"),
    responses((status = 200, description = "In force; `monitoring.rules_changed` is on the record",
        content_type = "application/toml", body = String,
        headers(("Monitoring-Rules-Seq" = u64, description = "The seq of their `monitoring.rules_changed`")))))]
pub async fn put_rules(
    guard: Guarded<WritePolicy>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let text = super::body::read_text(&req, payload, state.limits.max_body_bytes, "the monitoring rules").await?;
    Ok(answer(state.governance.record_monitoring_rules(guard.sub(), &text, true).await?))
}
