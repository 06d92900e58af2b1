//! Persistence on SQLite (embedded default) and PostgreSQL.
//!
//! Queries are written once and compiled for each backend by [`with_conn!`]:
//! the schema uses only portable types (integers, text, binary), so every
//! query body type-checks against both connections. Backend-specific SQL
//! (locking, pragmas) is an explicit `match`.

pub mod backup;
pub mod checkpoints;
pub mod connection;
pub mod events;
mod guard;
pub mod monitoring;
pub mod projections;
pub mod schema;
mod sealing;
pub mod subjects;
pub mod tiles;
pub mod webhooks;
pub mod writer;

pub use connection::{ConnectionManager, DbConn, StorageTarget};
pub use events::{EventFilter, Head};
pub use writer::{
    AppendError, Appended, Builder, FollowUp, Follower, LedgerWriter, Precondition, Refusal, WriterConfig,
};

use std::ops::ControlFlow;

use crate::ledger::{ChainVerifier, Event, VerifyFailure, VerifyFailureKind};

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
    DataDir { path: String, source: std::io::Error },
    #[error("unsupported database URL {0:?}: expected postgres:// or postgresql://")]
    UnsupportedUrl(String),
    #[error("{0}")]
    Thread(String),
    #[error("database busy: {0}")]
    Busy(String),
    #[error("backup: {0}")]
    Backup(String),
    #[error("stored event seq {seq} is damaged: {reason}")]
    CorruptRow { seq: u64, reason: String },
    /// The stored Merkle tiles do not form the tree of the events.
    #[error(
        "merkle_tiles: {0} (govledger verify names what differs; govledger rebuild derives the tiles from the events)"
    )]
    DamagedTiles(String),
    /// A fault of the server's own making (what it wrote does not read back).
    #[error("{0}")]
    Internal(String),
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

/// The ledger's storage: a pool for reads and the single group-commit writer.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<ConnectionManager>,
    writer: LedgerWriter,
    thread: std::sync::Arc<WriterThread>,
}

/// The writer thread, joined by whichever clone of the store is closed last.
struct WriterThread(std::sync::Mutex<Option<std::thread::JoinHandle<()>>>);

/// The outcome of verifying the stored chain.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    pub ok: bool,
    /// Events checked (all of them when `ok`).
    pub verified: u64,
    /// The size of the ledger when verification started.
    pub size: u64,
    /// Hex hash of the last verified event.
    pub head_hash: Option<String>,
    /// Signed checkpoints found consistent with the ledger.
    pub checkpoints_verified: u64,
    pub failure: Option<VerifyFailure>,
}

impl Store {
    /// Connects, runs migrations and starts the writer thread, which the
    /// store owns: [`Store::close`] on the last clone waits for it.
    pub fn open(target: StorageTarget, pool_size: u32, writer_config: WriterConfig) -> Result<Self, StoreError> {
        let manager = ConnectionManager::new(target.clone())?;
        manager.run_migrations()?;
        let caught_up = catch_up_projections(&mut manager.connect()?)?;
        if caught_up > 0 {
            tracing::info!(events = caught_up, "projections caught up with the ledger");
        }
        build_tiles_logged(&mut manager.connect()?)?;
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(std::time::Duration::from_secs(10))
            .build(manager.clone())?;
        let (writer, handle) = writer::spawn(manager, writer_config)?;
        let thread = std::sync::Arc::new(WriterThread(std::sync::Mutex::new(Some(handle))));
        Ok(Self { pool, writer, thread })
    }

    /// Gives up this handle on the store. The last one to close waits for
    /// the writer to finish what is queued and stop, so every acknowledged
    /// append is committed when it returns; the others return at once. A
    /// store dropped without closing leaves its writer to finish on its own.
    /// Blocking: call it off an async executor.
    pub fn close(self) {
        let Self { pool, writer, thread } = self;
        drop(pool);
        drop(writer);
        if let Some(last) = std::sync::Arc::into_inner(thread) {
            let handle = last.0.into_inner().unwrap_or_else(|e| e.into_inner());
            if let Some(handle) = handle {
                if handle.join().is_err() {
                    tracing::error!("the ledger writer thread panicked");
                }
            }
        }
    }

    /// The writer handle.
    pub fn writer(&self) -> &LedgerWriter {
        &self.writer
    }

    /// A pooled connection for reads.
    pub fn conn(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Whether the store can serve: a connection within `timeout` answers a
    /// query, and the writer thread is running. The ledger's head when so.
    pub fn ready(&self, timeout: std::time::Duration) -> Result<Head, StoreError> {
        if !self.writer.is_running() {
            return Err(StoreError::Thread("the ledger writer has stopped".into()));
        }
        events::head(&mut *self.pool.get_timeout(timeout)?)
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
}

/// Stores the Merkle tiles a ledger from before them lacks (`govledger
/// migrate` does it with a progress bar), logging progress every few seconds.
fn build_tiles_logged(conn: &mut DbConn) -> Result<(), StoreError> {
    let mut logged = std::time::Instant::now();
    let (from, to) = tiles::build(conn, |p| {
        if logged.elapsed() >= std::time::Duration::from_secs(5) {
            tracing::info!(covered = p.covered, head = p.head, "building the Merkle tiles");
            logged = std::time::Instant::now();
        }
    })?;
    if to.covered > from.covered {
        tracing::info!(from = from.covered, to = to.covered, "Merkle tiles built for the existing events");
    }
    Ok(())
}

/// Applies to the projections any events they do not reflect yet (a ledger
/// written before they existed), under the append lock.
fn catch_up_projections(conn: &mut DbConn) -> Result<u64, StoreError> {
    // The pseudonym index may trail by the appends of the last moments.
    in_append_transaction(conn, |conn| subjects::catch_up(conn, u64::MAX))?;
    in_append_transaction(conn, subjects::fold_keys)?;
    if projections::backlog_until(conn)? == 0 {
        return Ok(0);
    }
    // Another replica may have done it while this one waited for the lock.
    in_append_transaction(conn, |conn| match projections::backlog_until(conn)? {
        0 => Ok(0),
        last => projections::replay(conn, last),
    })
}

/// Drops every projection (the Merkle tiles too) and rebuilds it from the
/// events, in one transaction under the append lock (appends wait; reads see
/// the old projections until it commits). Returns the number of events replayed.
pub fn rebuild_projections(conn: &mut DbConn) -> Result<u64, StoreError> {
    let replayed = in_append_transaction(conn, |conn| {
        projections::clear(conn)?;
        let head = events::head(conn)?.size;
        let replayed = projections::replay(conn, head)?;
        subjects::catch_up(conn, u64::MAX)?;
        tiles::clear(conn)?;
        tiles::edge_at(conn, head)?;
        Ok(replayed)
    })?;
    conn.analyze_projections()?;
    Ok(replayed)
}

fn in_append_transaction<T>(
    conn: &mut DbConn,
    work: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.begin_append()?;
    match work(conn) {
        Ok(value) => {
            conn.commit()?;
            Ok(value)
        }
        Err(e) => {
            conn.rollback();
            Err(e)
        }
    }
}

/// The first problem SQLite's `quick_check` finds in the database file
/// (`None` when it finds none, and always on PostgreSQL, whose pages are
/// checksummed by the server).
pub fn storage_problem(conn: &mut DbConn) -> Result<Option<String>, StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Check {
        #[diesel(sql_type = diesel::sql_types::Text)]
        quick_check: String,
    }
    let DbConn::Sqlite(c) = conn else { return Ok(None) };
    let found: Vec<Check> = diesel::RunQueryDsl::load(diesel::sql_query("PRAGMA quick_check(1)"), c)?;
    let first = found.into_iter().map(|r| r.quick_check).find(|r| r != "ok");
    Ok(first.map(|problem| problem.trim().replace('\n', "; ")))
}

/// Verifies the chain in `target`, opening its own connections.
pub fn verify_target(target: &StorageTarget) -> Result<ChainReport, StoreError> {
    verify_chain(|| DbConn::establish(target).map(Box::new))
}

/// Ledgers smaller than this are verified on one thread.
pub const PARALLEL_VERIFY_MIN: u64 = 50_000;

/// Recomputes the chain up to the head as it stood when verification began.
///
/// The seq range is split across one thread per core, each streaming its
/// range on its own connection; the ranges are then linked (each range's
/// first `prev_hash` must equal the previous range's last hash). The first
/// failure in seq order is reported, exactly as a sequential scan would.
pub fn verify_chain<C, F>(connect: F) -> Result<ChainReport, StoreError>
where
    C: std::ops::DerefMut<Target = DbConn>,
    F: Fn() -> Result<C, StoreError> + Sync,
{
    verify_chain_in_ranges(connect, cores(), PARALLEL_VERIFY_MIN)
}

/// Threads for parallel work: one per core, at most 8.
pub fn cores() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8) as u64
}

/// [`verify_chain`] with `ranges` parallel ranges once the ledger has at
/// least `min_parallel` events (tests use small ledgers). Each range streams
/// its rows, so memory does not grow with the ledger.
pub fn verify_chain_in_ranges<C, F>(connect: F, ranges: u64, min_parallel: u64) -> Result<ChainReport, StoreError>
where
    C: std::ops::DerefMut<Target = DbConn>,
    F: Fn() -> Result<C, StoreError> + Sync,
{
    let size = events::head(&mut *connect()?)?.size;
    let threads = if size < min_parallel { 1 } else { ranges.max(1) };
    let per_range = size.div_ceil(threads).max(1);
    let bounds: Vec<(u64, u64)> = (0..threads)
        .map(|i| (i * per_range + 1, ((i + 1) * per_range).min(size)))
        .filter(|(first, last)| first <= last)
        .collect();
    let outcomes: Vec<Result<RangeOutcome, StoreError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = bounds
            .iter()
            .map(|&(first, last)| {
                let connect = &connect;
                scope.spawn(move || {
                    let prev = (first == 1).then_some(crate::ledger::GENESIS_PREV_HASH);
                    verify_range(&mut *connect()?, first, last, prev)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(StoreError::Thread("a verifier thread panicked".into()))))
            .collect()
    });
    let outcomes = outcomes.into_iter().collect::<Result<Vec<_>, _>>()?;

    let mut failures: Vec<VerifyFailure> = outcomes.iter().filter_map(|o| o.failure.clone()).collect();
    for pair in outcomes.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        if let (Some(last), Some(first_prev)) = (before.last_hash, after.first_prev_hash) {
            if before.failure.is_none() && last != first_prev {
                failures.push(VerifyFailure {
                    seq: after.first,
                    kind: VerifyFailureKind::BrokenLink,
                    message: format!(
                        "prev_hash {} does not match the hash of seq {} ({})",
                        hex::encode(first_prev),
                        after.first - 1,
                        hex::encode(last)
                    ),
                });
            }
        }
    }
    let failure = failures.into_iter().min_by_key(|f| f.seq);
    let verified = failure.as_ref().map_or(size, |f| f.seq - 1);
    let head_hash = outcomes
        .iter()
        .rev()
        .find(|o| o.last_verified_seq >= o.first && o.last_verified_seq <= verified)
        .and_then(|o| o.last_hash)
        .map(hex::encode);
    Ok(ChainReport { ok: failure.is_none(), verified, size, head_hash, checkpoints_verified: 0, failure })
}

/// Verifies one row without building an [`Event`]: the hot loop of
/// `verify`. A row that cannot be read as an event is a `corrupt_row` failure,
/// exactly as [`events::EventRow::into_event`] would report it.
fn push_row(verifier: &mut ChainVerifier, row: &events::EventRow) -> Result<(), VerifyFailure> {
    let corrupt = |message: String| VerifyFailure {
        seq: verifier.last_verified_seq() + 1,
        kind: VerifyFailureKind::CorruptRow,
        message,
    };
    let seq = u64::try_from(row.seq).map_err(|_| corrupt("negative seq".into()))?;
    let hash_of = |field: &str, bytes: &[u8]| {
        crate::ledger::Hash::try_from(bytes).map_err(|_| format!("{field} is {} bytes, not 32", bytes.len()))
    };
    let prev_hash = hash_of("prev_hash", &row.prev_hash).map_err(corrupt)?;
    let hash = hash_of("hash", &row.hash).map_err(corrupt)?;
    let inputs =
        events::parse_refs(&row.inputs).ok_or_else(|| corrupt("inputs is not a JSON array of strings".into()))?;
    let outputs =
        events::parse_refs(&row.outputs).ok_or_else(|| corrupt("outputs is not a JSON array of strings".into()))?;
    let input = crate::ledger::encoding::EncodingInput {
        seq,
        prev_hash: &prev_hash,
        id: &row.id,
        recorded_at: &row.recorded_at,
        actor: &row.actor,
        kind: &row.kind,
        subject: &row.subject,
        project: row.project.as_deref(),
        inputs: &inputs,
        outputs: &outputs,
        attributes: &row.attributes,
        occurred_at: row.occurred_at.as_deref(),
        idempotency_key: row.idempotency_key.as_deref(),
    };
    verifier.push_encoded(&input, &hash)
}

struct RangeOutcome {
    first: u64,
    last_verified_seq: u64,
    first_prev_hash: Option<crate::ledger::Hash>,
    last_hash: Option<crate::ledger::Hash>,
    failure: Option<VerifyFailure>,
}

fn verify_range(
    conn: &mut DbConn,
    first: u64,
    last: u64,
    prev: Option<crate::ledger::Hash>,
) -> Result<RangeOutcome, StoreError> {
    let mut verifier = ChainVerifier::starting_at(first, prev);
    let mut failure = None;
    let scanned = events::for_each_in_range(conn, first, last, |row| match push_row(&mut verifier, &row) {
        Ok(()) => ControlFlow::Continue(()),
        Err(f) => {
            failure = Some(f);
            ControlFlow::Break(())
        }
    });
    if let Err(error) = scanned {
        // A row whose columns cannot even be read (bytes that are not text,
        // say) stops the scan; if that row cannot be read on its own either,
        // it is the corrupt one, at its seq.
        let next = verifier.last_verified_seq() + 1;
        match events::by_seq(conn, next) {
            Err(_) => {
                failure = Some(VerifyFailure {
                    seq: next,
                    kind: VerifyFailureKind::CorruptRow,
                    message: format!("the stored row cannot be read as an event: {error}"),
                })
            }
            Ok(_) => return Err(error),
        }
    }
    if failure.is_none() && verifier.last_verified_seq() < last {
        let missing = verifier.last_verified_seq() + 1;
        failure = Some(VerifyFailure {
            seq: missing,
            kind: VerifyFailureKind::Gap,
            message: format!("seq {missing} is missing"),
        });
    }
    Ok(RangeOutcome {
        first,
        last_verified_seq: verifier.last_verified_seq(),
        first_prev_hash: verifier.first_prev_hash(),
        last_hash: (verifier.verified() > 0).then(|| verifier.last_hash()).flatten(),
        failure,
    })
}
