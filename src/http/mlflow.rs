//! `POST /api/v1/integrations/mlflow`: MLflow's registry webhooks. No bearer
//! token: MLflow cannot send one, so the delivery's HMAC signature with the
//! configured secret is what authenticates it, and what it may record is
//! what the policy lets the bridge's role do in the mapped project.

use actix_web::{web, HttpRequest, HttpResponse};

use super::{ApiError, AppState};
use crate::error_code::ErrorCode;
use crate::mlflow::signature::{self, Signed};
use crate::mlflow::Outcome;

/// The route MLflow delivers to.
pub const PATH: &str = "/api/v1/integrations/mlflow";

/// What a delivery led to.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryAnswer {
    /// The seqs recorded (empty: already on the record, or not mirrored).
    recorded: Vec<u64>,
    /// What the bridge did.
    summary: String,
}

impl From<Outcome> for DeliveryAnswer {
    fn from(o: Outcome) -> Self {
        Self { recorded: o.recorded, summary: o.summary }
    }
}

/// `POST /api/v1/integrations/mlflow`: one MLflow webhook delivery
/// (`registered_model.created`, `model_version.created`,
/// `model_version_tag.set`, `model_version_alias.created`,
/// `model_version_alias.deleted`), mirrored as docs/MLFLOW.md describes.
#[utoipa::path(post, path = "/api/v1/integrations/mlflow", tag = "integrations",
    request_body(content = Object, description = "MLflow's webhook payload: `entity`, `action`, `timestamp`, `data`"),
    params(
        ("X-MLflow-Delivery-Id" = String, Header, description = "The delivery's id (part of what is signed)"),
        ("X-MLflow-Timestamp" = String, Header, description = "Unix seconds; at most 5 minutes off"),
    ),
    security(("mlflow_signature" = [])),
    responses((status = 200, description = "Mirrored (or already on the record)", body = DeliveryAnswer)))]
pub async fn deliver(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let signed = Signed {
        delivery_id: header("X-MLflow-Delivery-Id"),
        timestamp: header("X-MLflow-Timestamp"),
        signature: header("X-MLflow-Signature"),
    };
    // An unsigned request is refused as such, configured or not: whether the
    // integration is on is only told to a sender that signs.
    if signed.delivery_id.is_none() || signed.timestamp.is_none() || signed.signature.is_none() {
        let missing = signature::verify(Some(""), &signed, &body, 0).err().map(|e| e.to_string()).unwrap_or_default();
        return Err(ApiError::new(ErrorCode::InvalidSignature, missing));
    }
    let Some(bridge) = state.mlflow.clone() else {
        return Err(ApiError::new(
            ErrorCode::IntegrationNotConfigured,
            "this server was started without --mlflow-url: MLflow deliveries are not accepted",
        ));
    };
    let now =
        i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs())
            .unwrap_or(i64::MAX);
    signature::verify(bridge.webhook_secret(), &signed, &body, now)
        .map_err(|e| ApiError::new(ErrorCode::InvalidSignature, e.to_string()))?;
    let payload: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("the delivery is not JSON: {e}")))?;
    let delivery_id = signed.delivery_id.unwrap_or_default();
    let outcome = bridge.deliver(delivery_id, &payload).await.map_err(|e| {
        tracing::warn!(delivery = delivery_id, error = %e, "an MLflow delivery was not mirrored");
        ApiError::from(e)
    })?;
    tracing::info!(delivery = delivery_id, recorded = ?outcome.recorded, "{}", outcome.summary);
    Ok(HttpResponse::Ok().json(DeliveryAnswer::from(outcome)))
}
