//! The MLflow bridge: govledger as the verifiable governance layer of an
//! MLflow model registry (docs/MLFLOW.md). Registry webhooks and `mlflow
//! import` become events; aliases mapped to environments are deployments,
//! gated like any other, and a denied one can be moved back in MLflow.

pub mod api;
pub mod bridge;
pub mod config;
pub mod importer;
pub mod mapping;
pub mod signature;

pub use bridge::{Bridge, BridgeError, Outcome};
pub use config::{Mapping, MlflowConfig};
