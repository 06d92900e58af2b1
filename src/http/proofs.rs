//! `/api/v1/checkpoint` and `/api/v1/proofs/*`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Guarded;
use super::params::Seq;
use super::{ApiError, AppState};
use crate::auth::actions::{ReadEvents, VerifyLedger};
use crate::proofs::{ConsistencyProof, InclusionProof};

/// Query of `GET /api/v1/checkpoint`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CheckpointQuery {
    /// A published checkpoint's tree size; the current ledger without it.
    #[param(value_type = Option<Seq>)]
    size: Option<Seq>,
}

/// `GET /api/v1/checkpoint[?size=N]`: the signed note, as `text/plain`.
/// Without `size`, a checkpoint of the current ledger (signed now if the
/// ledger grew since the last one).
#[utoipa::path(get, path = "/api/v1/checkpoint", tag = "proofs", params(CheckpointQuery),
    responses((status = 200, description = "A C2SP tlog-checkpoint signed note", content_type = "text/plain", body = String)))]
pub async fn checkpoint(
    state: web::Data<AppState>,
    query: web::Query<CheckpointQuery>,
) -> Result<HttpResponse, ApiError> {
    let size = query.into_inner().size.map(|Seq(s)| s);
    let proofs = state.proofs.clone();
    let found = state.blocking(move || proofs.checkpoint(size)).await??;
    match found {
        Some(cp) => Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(cp.note)),
        None => Err(ApiError::not_found(match size {
            Some(size) => format!("no checkpoint was published at tree size {size}"),
            None => "the ledger is empty: there is nothing to checkpoint yet".to_owned(),
        })),
    }
}

/// `GET /api/v1/checkpoint/key`: the verifier key, as `text/plain`.
#[utoipa::path(get, path = "/api/v1/checkpoint/key", tag = "proofs",
    responses((status = 200, description = "The signed-note verifier key", content_type = "text/plain", body = String)))]
pub async fn verifier_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!("{}\n", state.proofs.verifier().to_vkey()))
}

/// Query of `GET /api/v1/proofs/inclusion`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The event.
    #[param(value_type = Seq)]
    seq: Seq,
    /// The tree the proof is for; the current size without it.
    #[param(value_type = Option<Seq>)]
    tree_size: Option<Seq>,
}

/// `GET /api/v1/proofs/inclusion?seq=N[&tree_size=M]`. An event the caller
/// may not read is answered like one that does not exist.
#[utoipa::path(get, path = "/api/v1/proofs/inclusion", tag = "proofs", params(InclusionQuery),
    responses((status = 200, description = "RFC 9162 inclusion proof", body = InclusionProof)))]
pub async fn inclusion(
    guard: Guarded<ReadEvents>,
    state: web::Data<AppState>,
    query: web::Query<InclusionQuery>,
) -> Result<HttpResponse, ApiError> {
    let InclusionQuery { seq: Seq(seq), tree_size } = query.into_inner();
    let tree_size = tree_size.map(|Seq(s)| s);
    let store = state.store.clone();
    let event = state.blocking(move || store.event(seq)).await??;
    if !event.is_some_and(|e| guard.allows_in(e.project.as_deref())) {
        return Err(ApiError::not_found(format!("no event with seq {seq}")));
    }
    let proofs = state.proofs.clone();
    let proof = state.blocking(move || proofs.inclusion(seq, tree_size)).await??;
    Ok(HttpResponse::Ok().json(proof))
}

/// Query of `GET /api/v1/proofs/consistency`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree size.
    #[param(value_type = Seq)]
    from: Seq,
    /// The newer tree size.
    #[param(value_type = Seq)]
    to: Seq,
}

/// `GET /api/v1/proofs/consistency?from=A&to=B`.
#[utoipa::path(get, path = "/api/v1/proofs/consistency", tag = "proofs", params(ConsistencyQuery),
    responses((status = 200, description = "RFC 9162 consistency proof", body = ConsistencyProof)))]
pub async fn consistency(
    _: Guarded<VerifyLedger>,
    state: web::Data<AppState>,
    query: web::Query<ConsistencyQuery>,
) -> Result<HttpResponse, ApiError> {
    let ConsistencyQuery { from: Seq(from), to: Seq(to) } = query.into_inner();
    let proofs = state.proofs.clone();
    let proof = state.blocking(move || proofs.consistency(from, to)).await??;
    Ok(HttpResponse::Ok().json(proof))
}
