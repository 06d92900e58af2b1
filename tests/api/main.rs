//! Integration tests: real servers on real SQLite files and a real PostgreSQL.
//! One test binary keeps link time down.

mod access;
mod append;
mod backup;
mod browser;
mod concurrency;
mod config;
mod console;
mod console_http;
mod console_matrix;
mod crash;
mod fail_closed;
mod governance;
mod helpers;
mod inputs;
mod interop;
mod limits;
mod listing;
mod matrix;
mod merkle_reference;
mod metrics;
mod monitoring;
mod oidc;
mod openapi;
mod personal;
mod plans;
mod proofs;
mod python_client;
mod readiness;
mod reports;
mod search;
mod tamper;
mod tiles;
mod walls;
mod webhooks;
