//! `/api/v1/checkpoint` and `/api/v1/proofs/*`.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::auth::Caller;
use super::{ApiError, AppState};

/// Query of `GET /api/v1/checkpoint`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointQuery {
    size: Option<u64>,
}

/// `GET /api/v1/checkpoint[?size=N]`: the signed note, as `text/plain`.
/// Without `size`, a checkpoint of the current ledger (signed now if the
/// ledger grew since the last one).
pub async fn checkpoint(
    state: web::Data<AppState>,
    query: web::Query<CheckpointQuery>,
) -> Result<HttpResponse, ApiError> {
    let size = query.into_inner().size;
    let proofs = state.proofs.clone();
    let found = web::block(move || proofs.checkpoint(size)).await??;
    match found {
        Some(cp) => Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(cp.note)),
        None => Err(ApiError::not_found(match size {
            Some(size) => format!("no checkpoint was published at tree size {size}"),
            None => "the ledger is empty: there is nothing to checkpoint yet".to_owned(),
        })),
    }
}

/// `GET /api/v1/checkpoint/key`: the verifier key, as `text/plain`.
pub async fn verifier_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(format!("{}\n", state.proofs.verifier().to_vkey()))
}

/// Query of `GET /api/v1/proofs/inclusion`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionQuery {
    seq: u64,
    tree_size: Option<u64>,
}

/// `GET /api/v1/proofs/inclusion?seq=N[&tree_size=M]`. An event the caller
/// may not read is answered like one that does not exist.
pub async fn inclusion(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<InclusionQuery>,
) -> Result<HttpResponse, ApiError> {
    let InclusionQuery { seq, tree_size } = query.into_inner();
    let store = state.store.clone();
    let event = web::block(move || store.event(seq)).await??;
    if !event.is_some_and(|e| caller.may("events", "read", e.project.as_deref())) {
        return Err(ApiError::not_found(format!("no event with seq {seq}")));
    }
    let proofs = state.proofs.clone();
    let proof = web::block(move || proofs.inclusion(seq, tree_size)).await??;
    Ok(HttpResponse::Ok().json(proof))
}

/// Query of `GET /api/v1/proofs/consistency`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyQuery {
    from: u64,
    to: u64,
}

/// `GET /api/v1/proofs/consistency?from=A&to=B`.
pub async fn consistency(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ConsistencyQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require("proofs", "read", None)?;
    let ConsistencyQuery { from, to } = query.into_inner();
    let proofs = state.proofs.clone();
    let proof = web::block(move || proofs.consistency(from, to)).await??;
    Ok(HttpResponse::Ok().json(proof))
}
