//! `/ui/events/{seq}`: one event, every field, and its inclusion in a
//! signed checkpoint, checked on the server; with the proof and a one-event
//! evidence bundle to download.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use askama::Template;

use super::page::{self, utc, Chrome, ConsoleError, Viewer};
use super::svg::entity_href;
use crate::auth::actions::ReadEvents;
use crate::http::{ApiError, AppState};
use crate::ledger::Event;
use crate::proofs::Included;

/// A reference with its link.
pub struct Linked {
    pub text: String,
    pub href: String,
}

impl Linked {
    pub fn entity(r: &str) -> Self {
        Self { text: r.to_owned(), href: entity_href(r) }
    }
}

#[derive(Template)]
#[template(path = "event.html", config = "src/http/console/askama.toml")]
struct EventPage {
    chrome: Chrome,
    event: Event,
    recorded_at: String,
    subject: Linked,
    inputs: Vec<Linked>,
    outputs: Vec<Linked>,
    attributes: String,
    personal: Option<String>,
    prev_hash: String,
    hash: String,
    included: Included,
    signed_at: String,
}

/// `GET /ui/events/{seq}`.
pub async fn page(
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    seq: web::Path<u64>,
) -> Result<HttpResponse, ConsoleError> {
    let seq = seq.into_inner();
    let chrome = viewer.chrome(format!("Event {seq}"), "");
    let (event, personal) = crate::http::events::read_one(&state, viewer.guard, seq).await?;
    let proofs = state.proofs.clone();
    let included = state.blocking(move || proofs.included(seq)).await?.map_err(ApiError::from)?;
    let pretty = |text: &str| {
        serde_json::from_str::<serde_json::Value>(text)
            .and_then(|v| serde_json::to_string_pretty(&v))
            .unwrap_or_else(|_| text.to_owned())
    };
    page::html(&EventPage {
        chrome,
        recorded_at: utc(&event.recorded_at),
        subject: Linked::entity(&event.subject),
        inputs: event.inputs.iter().map(|r| Linked::entity(r)).collect(),
        outputs: event.outputs.iter().map(|r| Linked::entity(r)).collect(),
        attributes: pretty(&event.attributes),
        personal: personal.map(|p| serde_json::to_string_pretty(&p).unwrap_or_default()),
        prev_hash: hex::encode(event.prev_hash),
        hash: hex::encode(event.hash),
        signed_at: utc(&included.checkpoint.created_at),
        included,
        event,
    })
}

/// `GET /ui/events/{seq}/proof.json`: the inclusion proof with the signed
/// checkpoint and verifier key it is checked against, in one file.
pub async fn proof(
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    seq: web::Path<u64>,
) -> Result<HttpResponse, ConsoleError> {
    let seq = seq.into_inner();
    crate::http::events::read_one(&state, viewer.guard, seq).await?;
    let proofs = state.proofs.clone();
    let included = state.blocking(move || proofs.included(seq)).await?.map_err(ApiError::from)?;
    let body = serde_json::json!({
        "proof": included.proof,
        "checkpoint": included.checkpoint.note,
        "verifier_key": state.proofs.verifier().to_vkey(),
    });
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"event-{seq}-proof.json\"")))
        .body(serde_json::to_vec_pretty(&body).map_err(ApiError::internal)?))
}

/// `GET /ui/events/{seq}/bundle.tar`: an evidence bundle of this one event
/// (the format `govledger verify-bundle` checks offline), as a tar archive.
pub async fn bundle(
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    seq: web::Path<u64>,
) -> Result<HttpResponse, ConsoleError> {
    let seq = seq.into_inner();
    let (event, _) = crate::http::events::read_one(&state, viewer.guard, seq).await?;
    let proofs = state.proofs.clone();
    let bytes = state
        .blocking(move || -> Result<Vec<u8>, ApiError> {
            let included = proofs.included(seq)?;
            let dir = std::env::temp_dir().join(format!("govledger-bundle-{}", super::session::random_hex()));
            let written = proofs
                .write_bundle(&included.checkpoint, std::slice::from_ref(&event), &dir)
                .map_err(ApiError::internal);
            let archive = written.and_then(|_| {
                let mut tar = tar::Builder::new(Vec::new());
                tar.mode(tar::HeaderMode::Deterministic);
                tar.append_dir_all(format!("event-{seq}"), &dir).map_err(ApiError::internal)?;
                tar.into_inner().map_err(ApiError::internal)
            });
            let _ = std::fs::remove_dir_all(&dir);
            archive
        })
        .await??;
    Ok(HttpResponse::Ok()
        .content_type("application/x-tar")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"event-{seq}-bundle.tar\"")))
        .body(bytes))
}
