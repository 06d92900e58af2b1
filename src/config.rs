//! Runtime configuration, built once in `main` and passed down as a value so
//! that tests can run many servers in one process.

use crate::store::{StorageTarget, WriterConfig};

/// Request limits. A request over any of them is refused with a JSON error
/// and writes nothing.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request body, in bytes (413 above it).
    pub max_body_bytes: usize,
    /// Most events in one `{"events": [...]}` request (422 above it).
    pub max_batch_events: usize,
    /// Largest `limit` a list query may ask for (422 above it).
    pub max_page_size: u32,
    /// `limit` when a list query gives none.
    pub default_page_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_batch_events: 1000,
            max_page_size: 1000,
            default_page_size: 100,
        }
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port.
    pub bind: String,
    pub storage: StorageTarget,
    pub limits: Limits,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Read connections in the pool.
    pub pool_size: u32,
    pub writer: WriterConfig,
}

impl Config {
    /// Defaults for `storage`.
    pub fn new(bind: impl Into<String>, storage: StorageTarget) -> Self {
        Self {
            bind: bind.into(),
            storage,
            limits: Limits::default(),
            workers: 0,
            pool_size: 8,
            writer: WriterConfig::default(),
        }
    }
}
