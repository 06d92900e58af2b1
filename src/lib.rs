//! govledger: an append-only, hash-chained governance ledger for machine
//! learning in production.
//!
//! Layers, data flowing down only: [`http`] decodes requests and calls the
//! [`store`]; the [`ledger`] core (event model, canonical encoding, hashing,
//! verification) depends on neither, so offline verifiers share it.
//!
//! Error policy: each layer has one `thiserror` type ([`ledger::ValidationError`],
//! [`store::StoreError`], [`http::ApiError`], [`startup::StartupError`]);
//! they convert at layer boundaries. `anyhow` is used in `main` only.

pub mod auth;
pub mod client;
pub mod config;
pub mod config_file;
pub mod demo;
pub mod error_code;
pub mod governance;
pub mod http;
pub mod keyfile;
pub mod ledger;
pub mod metrics;
pub mod mlflow;
pub mod process_lock;
pub mod proofs;
pub mod reports;
pub mod search;
pub mod startup;
pub mod store;
pub mod webhooks;
