//! Persistence on SQLite (embedded default) and PostgreSQL.
//!
//! Queries are written once and compiled for each backend by [`with_conn!`]:
//! the schema uses only portable types (integers, text, binary), so every
//! query body type-checks against both connections. Backend-specific SQL
//! (locking, pragmas) is an explicit `match`.

pub mod connection;
pub mod events;
pub mod schema;
pub mod writer;

use std::sync::Arc;

pub use connection::{ConnectionManager, DbConn, StorageTarget};
pub use events::{EventFilter, Head};
pub use writer::{AppendError, Appended, LedgerWriter, WriterConfig};

use crate::ledger::{ChainVerifier, Event, VerifyFailure};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("cannot connect to the database: {0}")]
    Connection(#[from] diesel::ConnectionError),
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("migrations failed: {0}")]
    Migration(String),
    #[error("cannot prepare the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported database URL {0:?}: expected postgres:// or postgresql://")]
    UnsupportedUrl(String),
    #[error("stored event seq {seq} is damaged: {reason}")]
    CorruptRow { seq: u64, reason: String },
}

/// Runs `$body` with `$c` bound to the concrete connection of either backend.
#[macro_export]
macro_rules! with_conn {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::store::DbConn::Sqlite($c) => $body,
            $crate::store::DbConn::Pg($c) => $body,
        }
    };
}

/// How many rows verification reads per query.
const VERIFY_CHUNK: i64 = 20_000;

/// The ledger's storage: a pool for reads and the single group-commit writer.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<ConnectionManager>,
    writer: LedgerWriter,
    target: Arc<StorageTarget>,
}

/// The outcome of verifying the stored chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    pub ok: bool,
    /// Events checked (all of them when `ok`).
    pub verified: u64,
    /// The size of the ledger when verification started.
    pub size: u64,
    /// Hex hash of the last verified event.
    pub head_hash: Option<String>,
    pub failure: Option<VerifyFailure>,
}

impl Store {
    /// Connects, runs migrations and starts the writer thread.
    pub fn open(
        target: StorageTarget,
        pool_size: u32,
        writer_config: WriterConfig,
    ) -> Result<(Self, std::thread::JoinHandle<()>), StoreError> {
        let manager = ConnectionManager::new(target.clone())?;
        manager.run_migrations()?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(manager.clone())?;
        let (writer, handle) = writer::spawn(manager, writer_config)?;
        Ok((
            Self {
                pool,
                writer,
                target: Arc::new(target),
            },
            handle,
        ))
    }

    /// The writer handle.
    pub fn writer(&self) -> &LedgerWriter {
        &self.writer
    }

    /// Where the data lives.
    pub fn target(&self) -> &StorageTarget {
        &self.target
    }

    /// A pooled connection for reads.
    pub fn conn(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// One event by seq.
    pub fn event(&self, seq: u64) -> Result<Option<Event>, StoreError> {
        events::by_seq(&mut *self.conn()?, seq)
    }

    /// A page of events matching `filter`.
    pub fn list(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        events::list(&mut *self.conn()?, filter)
    }

    /// The chain head.
    pub fn head(&self) -> Result<Head, StoreError> {
        events::head(&mut *self.conn()?)
    }

    /// Recomputes the whole chain.
    pub fn verify(&self) -> Result<ChainReport, StoreError> {
        verify_chain(&mut *self.conn()?)
    }
}

/// Recomputes the chain up to the head as it stood when verification began,
/// reading in chunks so memory stays flat.
pub fn verify_chain(conn: &mut DbConn) -> Result<ChainReport, StoreError> {
    let head = events::head(conn)?;
    let mut verifier = ChainVerifier::new();
    let mut after = 0u64;
    let mut failure = None;
    'chunks: while after < head.size {
        let rows = events::raw_range(conn, after, VERIFY_CHUNK)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let seq = u64::try_from(row.seq).unwrap_or(0);
            after = seq;
            if seq > head.size {
                break 'chunks;
            }
            let result = match row.into_event() {
                Ok(event) => verifier.push(&event),
                Err(StoreError::CorruptRow { seq, reason }) => Err(VerifyFailure {
                    seq,
                    kind: crate::ledger::VerifyFailureKind::CorruptRow,
                    message: reason,
                }),
                Err(other) => return Err(other),
            };
            if let Err(f) = result {
                failure = Some(f);
                break 'chunks;
            }
        }
    }
    if failure.is_none() && verifier.verified() < head.size {
        // The highest seq exists but lower ones are missing at the end of the scan.
        failure = Some(VerifyFailure {
            seq: verifier.verified() + 1,
            kind: crate::ledger::VerifyFailureKind::Gap,
            message: format!("seq {} is missing", verifier.verified() + 1),
        });
    }
    let verified = verifier.verified();
    Ok(ChainReport {
        ok: failure.is_none(),
        verified,
        size: head.size,
        head_hash: (verified > 0).then(|| hex::encode(verifier.last_hash())),
        failure,
    })
}
