//! The group-commit writer: one thread owns the write connection and turns
//! whatever append requests have queued up into one transaction and one
//! durable commit. Requests are answered only after that commit returns, so
//! an acknowledged event is never lost; throughput comes from sharing the
//! fsync, not from weakening it.

use std::collections::HashMap;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use super::events::{self, EventRow, Head};
use super::projections;
use super::sealing::{HeadMark, KeyCache};
use super::{ConnectionManager, DbConn, StoreError};
use crate::ledger::encoding::{hash_with, EncodingInput};
use crate::ledger::personal::MasterKey;
use crate::ledger::tiles::TileEdge;
use crate::ledger::{timestamp, Event, EventDraft, GENESIS_PREV_HASH};

/// Tuning for the writer.
#[derive(Clone)]
pub struct WriterConfig {
    /// Seals personal data inside the append transaction; `None` refuses it.
    pub master_key: Option<std::sync::Arc<MasterKey>>,
    /// Most events one transaction takes (a single larger request still goes
    /// through whole, alone).
    pub max_batch_events: usize,
    /// Requests that may wait for the writer before callers are held back.
    pub queue_capacity: usize,
    /// New subject keys logged before they are folded into the key store
    /// (readers scan the log: it must stay small).
    pub fold_keys_after: usize,
}

// The master key is never printed.
impl std::fmt::Debug for WriterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterConfig")
            .field("master_key", &self.master_key.as_ref().map(|_| "[set]"))
            .field("max_batch_events", &self.max_batch_events)
            .field("queue_capacity", &self.queue_capacity)
            .field("fold_keys_after", &self.fold_keys_after)
            .finish()
    }
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self { master_key: None, max_batch_events: 2000, queue_capacity: 8192, fold_keys_after: 2000 }
    }
}

/// What an append did.
#[derive(Debug, Clone)]
pub enum Appended {
    /// The events were added to the chain.
    Created(Vec<Event>),
    /// A retry: the same idempotency keys were already recorded for the same
    /// content; these are the original events and nothing was written.
    Replayed(Vec<Event>),
}

impl Appended {
    /// The events, created or original.
    pub fn events(&self) -> &[Event] {
        match self {
            Self::Created(e) | Self::Replayed(e) => e,
        }
    }
}

/// Why an append was refused or failed. Nothing was written in either case.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// `differs` says how the request differs from what the key recorded.
    #[error("idempotency key {key:?} was already used for a different event: {differs}")]
    IdempotencyConflict { key: String, differs: String },
    #[error("storage failed, nothing was written: {0}")]
    Storage(String),
    #[error("the ledger writer has stopped")]
    WriterStopped,
    /// A precondition checked inside the append transaction failed.
    #[error("{0}")]
    Refused(Refusal),
}

/// Why a precondition refused a job: a stable code (which decides the
/// answer's status) and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    pub code: crate::error_code::ErrorCode,
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: crate::error_code::ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// A check run inside the append transaction, after every earlier event of
/// the batch is written and projected, so that it sees exactly the state the
/// job's events will follow. It may run more than once if the batch is
/// retried. `Ok(Err(_))` refuses the job (only it); a storage error fails the
/// batch like any other.
pub type Precondition = Box<dyn Fn(&mut DbConn) -> Result<Result<(), Refusal>, StoreError> + Send + Sync>;

/// Builds a job's events inside the append transaction, from exactly the
/// state they will follow: what an erasure records (the subject's events,
/// the keys it destroys) cannot be read beforehand while appends naming the
/// subject keep arriving. Like a precondition it may run more than once if
/// the batch is retried, and `Ok(Err(_))` refuses the job.
pub type Builder = Box<dyn Fn(&mut DbConn) -> Result<Result<Vec<EventDraft>, Refusal>, StoreError> + Send + Sync>;

/// Events the server records because of a job's own, in the same
/// transaction, chained right after them (a breach after the report that
/// crossed a threshold). Given the seq the job's first event will get and
/// the job's drafts; may write state of its own through the connection,
/// which the transaction commits or rolls back with the events. Like a
/// builder it may run more than once, and `Ok(Err(_))` refuses the job.
pub type Follower =
    Box<dyn Fn(&mut DbConn, u64, &[EventDraft]) -> Result<Result<FollowUp, Refusal>, StoreError> + Send + Sync>;

/// What a [`Follower`] adds after a job's events, and as whom.
pub struct FollowUp {
    pub actor: String,
    pub drafts: Vec<EventDraft>,
}

struct Job {
    actor: String,
    drafts: Vec<EventDraft>,
    precondition: Option<Precondition>,
    build: Option<Builder>,
    follow: Option<Follower>,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// A cloneable handle for submitting appends to the writer thread.
#[derive(Clone)]
pub struct LedgerWriter {
    jobs: mpsc::Sender<Job>,
}

impl LedgerWriter {
    /// Appends `drafts` atomically and in order, as `actor`.
    pub async fn append(&self, actor: String, drafts: Vec<EventDraft>) -> Result<Appended, AppendError> {
        self.append_checked(actor, drafts, None).await
    }

    /// Whether the writer thread still takes jobs.
    pub fn is_running(&self) -> bool {
        !self.jobs.is_closed()
    }

    /// How many jobs wait for the writer: work that yields to appends
    /// (webhook delivery) waits while there are any.
    pub fn backlog(&self) -> usize {
        self.jobs.max_capacity() - self.jobs.capacity()
    }

    /// Appends `drafts` if `precondition` holds inside the append transaction.
    pub async fn append_checked(
        &self,
        actor: String,
        drafts: Vec<EventDraft>,
        precondition: Option<Precondition>,
    ) -> Result<Appended, AppendError> {
        let started = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { actor, drafts, precondition, build: None, follow: None, reply })
            .await
            .map_err(|_| AppendError::WriterStopped)?;
        let outcome = answer.await.map_err(|_| AppendError::WriterStopped)?;
        crate::metrics::get().append_seconds.observe_duration(started.elapsed());
        outcome
    }

    /// Appends the events `build` makes inside the append transaction (they
    /// are not matched against earlier idempotency keys).
    pub async fn append_built(&self, actor: String, build: Builder) -> Result<Appended, AppendError> {
        let started = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { actor, drafts: Vec::new(), precondition: None, build: Some(build), follow: None, reply })
            .await
            .map_err(|_| AppendError::WriterStopped)?;
        let outcome = answer.await.map_err(|_| AppendError::WriterStopped)?;
        crate::metrics::get().append_seconds.observe_duration(started.elapsed());
        outcome
    }

    /// Appends `drafts`, then what `follow` makes of them, in one
    /// transaction. The answer lists the job's events first, then those the
    /// follower added. A replay (every idempotency key seen before) answers
    /// with the original events and does not run the follower.
    pub async fn append_followed(
        &self,
        actor: String,
        drafts: Vec<EventDraft>,
        follow: Follower,
    ) -> Result<Appended, AppendError> {
        let started = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { actor, drafts, precondition: None, build: None, follow: Some(follow), reply })
            .await
            .map_err(|_| AppendError::WriterStopped)?;
        let outcome = answer.await.map_err(|_| AppendError::WriterStopped)?;
        crate::metrics::get().append_seconds.observe_duration(started.elapsed());
        outcome
    }

    /// The same, for callers outside an async runtime (CLI tools, benchmarks).
    pub fn append_blocking(&self, actor: String, drafts: Vec<EventDraft>) -> Result<Appended, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .blocking_send(Job { actor, drafts, precondition: None, build: None, follow: None, reply })
            .map_err(|_| AppendError::WriterStopped)?;
        answer.blocking_recv().map_err(|_| AppendError::WriterStopped)?
    }
}

/// Starts the writer thread. It runs until every [`LedgerWriter`] is dropped,
/// then finishes the requests already queued and exits.
pub fn spawn(manager: ConnectionManager, config: WriterConfig) -> Result<(LedgerWriter, JoinHandle<()>), StoreError> {
    let conn = writer_connection(&manager)?;
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let handle = std::thread::Builder::new()
        .name("ledger-writer".into())
        .spawn(move || run(manager, conn, rx, config))
        .map_err(|e| StoreError::Thread(format!("cannot start the ledger writer thread: {e}")))?;
    Ok((LedgerWriter { jobs: tx }, handle))
}

/// The writer's connection, set up for a stream of batched appends (public
/// for the storage-floor bench, which must write with the same settings).
pub fn writer_connection(manager: &ConnectionManager) -> Result<DbConn, StoreError> {
    let mut conn = manager.connect()?;
    match &mut conn {
        DbConn::Pg(c) => {
            // Every query of the writer is a lookup by key (entities and live
            // edges of a batch, idempotency keys, subject keys, approvals). On a
            // table not yet analyzed PostgreSQL guesses that `key = ANY(32
            // keys)` matches 16% of it and scans the whole table: the lineage
            // edges of a growing ledger were read in full on every batch until
            // autovacuum got to them (docs/BENCHMARKS.md). Discouraging
            // sequential scans keeps the writer on its indexes.
            diesel::connection::SimpleConnection::batch_execute(c, "SET enable_seqscan = off")?;
        }
        DbConn::Sqlite(c) => {
            // 32 MiB of page cache: the index pages every append touches stay
            // in memory on a million-event ledger.
            diesel::RunQueryDsl::execute(diesel::sql_query("PRAGMA cache_size = -32768"), c)?;
            // A multi-row insert keeps a statement journal (the pages it
            // changed, to undo just that statement). A batch's outgrows
            // SQLite's 64 KiB in-memory spill limit, and every second commit
            // created, wrote and unlinked a temporary file for it; in memory
            // it stays bounded by the batch (at most max_batch_events rows).
            diesel::RunQueryDsl::execute(diesel::sql_query("PRAGMA temp_store = MEMORY"), c)?;
        }
    }
    Ok(conn)
}

/// How often a batch is retried after a transient failure (a lost connection,
/// a serialization failure) before its callers get an error.
const MAX_ATTEMPTS: usize = 3;

/// The pseudonym index is brought up to date after this many appended
/// events, or a second after the last time, whichever comes first.
const INDEX_SUBJECTS_EVERY: usize = 10_000;
const INDEX_SUBJECTS_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

fn run(manager: ConnectionManager, conn: DbConn, mut rx: mpsc::Receiver<Job>, config: WriterConfig) {
    let mut conn = Some(conn);
    let mut scratch = Vec::with_capacity(1024);
    let mut keys = KeyCache::default();
    // The right edge of the Merkle tiles after the last commit: valid while
    // no other writer has moved the head since (else rebuilt from storage).
    let mut tiles: Option<TileEdge> = None;
    let mut unindexed = 0;
    let mut indexed_at = std::time::Instant::now();
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        let mut events_in_batch = jobs[0].drafts.len();
        while events_in_batch < config.max_batch_events {
            match rx.try_recv() {
                Ok(job) => {
                    events_in_batch += job.drafts.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let mut outcome = Err(AppendError::Storage("not attempted".into()));
        for attempt in 1..=MAX_ATTEMPTS {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match writer_connection(&manager) {
                    Ok(fresh) => conn.insert(fresh),
                    Err(e) => {
                        outcome = Err(AppendError::Storage(e.to_string()));
                        continue;
                    }
                },
            };
            match commit_batch(c, &jobs, config.master_key.as_deref(), &mut scratch, &mut keys, &mut tiles) {
                Ok(results) => {
                    outcome = Ok(results);
                    break;
                }
                Err(BatchFailure { error, commit_sent }) => {
                    tracing::warn!(%error, attempt, events = events_in_batch, commit_sent, "append batch failed");
                    // The connection may be broken or mid-transaction: start afresh.
                    conn = None;
                    outcome = Err(AppendError::Storage(error.to_string()));
                    if commit_sent {
                        // The commit may have landed: retrying could record the
                        // events twice. The callers retry with their idempotency
                        // keys, which resolves it either way.
                        break;
                    }
                }
            }
        }
        match outcome {
            Ok(results) => {
                let created: usize =
                    results.iter().map(|r| if let Ok(Appended::Created(e)) = r { e.len() } else { 0 }).sum();
                let metrics = crate::metrics::get();
                metrics.appended_events.fetch_add(created as u64, std::sync::atomic::Ordering::Relaxed);
                metrics.commit_batch_events.observe(created as f64);
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
                if keys.logged() >= config.fold_keys_after {
                    if let Some(c) = conn.as_mut() {
                        match fold_keys(c) {
                            Ok(()) => keys.folded(),
                            Err(error) => {
                                // The keys stay in the log, where readers find them.
                                tracing::warn!(%error, "folding subject keys failed");
                                keys.forget();
                                conn = None;
                            }
                        }
                    }
                }
                unindexed += events_in_batch;
                if unindexed >= INDEX_SUBJECTS_EVERY || indexed_at.elapsed() >= INDEX_SUBJECTS_AFTER {
                    if let Some(c) = conn.as_mut() {
                        match index_subjects(c, config.fold_keys_after) {
                            Ok(true) => keys.folded(),
                            Ok(false) => {}
                            Err(error) => {
                                // Readers scan what the index lacks; the next round retries.
                                tracing::warn!(%error, "indexing data subjects failed");
                                keys.forget();
                                conn = None;
                            }
                        }
                    }
                    unindexed = 0;
                    indexed_at = std::time::Instant::now();
                }
            }
            Err(e) => {
                for job in jobs {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Brings the pseudonym index up to date, in its own transaction after the
/// appends were acknowledged: one large sorted batch writes each index page
/// once, where an insert per append transaction wrote one page per event.
/// Folds the key log too when it has grown to `fold_keys_after` keys
/// without this writer knowing (it holds the log only while no other writer
/// moves the head); returns whether it folded.
fn index_subjects(conn: &mut DbConn, fold_keys_after: usize) -> Result<bool, StoreError> {
    super::in_append_transaction(conn, |conn| {
        super::subjects::catch_up(conn, 10 * INDEX_SUBJECTS_EVERY as u64)?;
        if super::subjects::logged_count(conn)? < fold_keys_after {
            return Ok(false);
        }
        super::subjects::fold_keys(conn)?;
        Ok(true)
    })
}

/// Moves the key log into the key store, in its own transaction after the
/// appends were acknowledged (see `subjects::fold_keys`).
fn fold_keys(conn: &mut DbConn) -> Result<(), StoreError> {
    super::in_append_transaction(conn, super::subjects::fold_keys).map(drop)
}

/// One transaction for all `jobs`. Jobs refused for idempotency conflicts are
/// left out of the transaction; if the transaction fails, none is written.
fn commit_batch(
    conn: &mut DbConn,
    jobs: &[Job],
    master_key: Option<&MasterKey>,
    scratch: &mut Vec<u8>,
    keys: &mut KeyCache,
    tiles: &mut Option<TileEdge>,
) -> Result<Vec<Result<Appended, AppendError>>, BatchFailure> {
    let before_commit = |error| BatchFailure { error, commit_sent: false };
    conn.begin_append().map_err(before_commit)?;
    let chained = chain_and_insert(conn, jobs, master_key, scratch, keys)
        .and_then(|(results, head)| Ok((append_tiles(conn, tiles.take(), &results)?, results, head)));
    match chained {
        Ok((edge, results, head)) => {
            if let Err(error) = conn.commit() {
                keys.forget();
                return Err(BatchFailure { error, commit_sent: true });
            }
            keys.committed(head);
            *tiles = edge;
            Ok(results)
        }
        Err(e) => {
            conn.rollback();
            keys.forget();
            Err(before_commit(e))
        }
    }
}

/// Stores the Merkle tiles the batch's events fill, in its transaction, so
/// tiles and events commit together; returns the edge after the batch.
fn append_tiles(
    conn: &mut DbConn,
    cached: Option<TileEdge>,
    results: &[Result<Appended, AppendError>],
) -> Result<Option<TileEdge>, StoreError> {
    let mut created = results
        .iter()
        .filter_map(|r| match r {
            Ok(Appended::Created(events)) => Some(events),
            _ => None,
        })
        .flatten()
        .peekable();
    let Some(first) = created.peek() else { return Ok(cached) };
    let before = first.seq - 1;
    let mut edge = match cached.filter(|e| e.size() == before) {
        Some(edge) => edge,
        None => super::tiles::edge_at(conn, before)?,
    };
    let mut filled = Vec::new();
    for event in created {
        if event.seq != edge.size() + 1 {
            return Err(StoreError::CorruptRow { seq: edge.size() + 1, reason: "not chained in order".into() });
        }
        filled.extend(edge.push(&event.hash));
    }
    super::tiles::insert(conn, &filled)?;
    Ok(Some(edge))
}

struct BatchFailure {
    error: StoreError,
    /// Whether COMMIT had been sent, which leaves the outcome unknown.
    commit_sent: bool,
}

fn chain_and_insert(
    conn: &mut DbConn,
    jobs: &[Job],
    master_key: Option<&MasterKey>,
    scratch: &mut Vec<u8>,
    keys: &mut KeyCache,
) -> Result<(Vec<Result<Appended, AppendError>>, HeadMark), StoreError> {
    let head = events::head(conn)?;
    let idempotency_keys: Vec<String> =
        jobs.iter().flat_map(|j| j.drafts.iter().filter_map(|d| d.idempotency_key.clone())).collect();
    let mut by_key: HashMap<(String, String), Event> = events::by_idempotency_keys(conn, &idempotency_keys)?
        .into_iter()
        .filter_map(|e| Some(((e.actor.clone(), e.idempotency_key.clone()?), e)))
        .collect();

    let mut chain = ChainTip::new(&head);
    let mut pending = Pending::default();
    let mut guard = super::guard::EntityGuard::load(conn, jobs.iter().flat_map(|j| &j.drafts))?;
    keys.begin_batch(conn, master_key, &head, jobs.iter().flat_map(|j| &j.drafts))?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        match replay_of(conn, job, &by_key, &pending.events)? {
            Some(replay) => results.push(replay),
            None => {
                // A job's own drafts are checked before anything of it is
                // chained; built drafts (erasures) are about data subjects,
                // which no request creates.
                if let Err(reason) = guard.check(&job.drafts) {
                    results.push(Err(AppendError::Refused(reason)));
                    continue;
                }
                if job.precondition.is_some() || job.build.is_some() {
                    pending.flush(conn)?;
                    keys.flush(conn)?;
                    // Either may change subject keys (an erasure does).
                    keys.forget();
                }
                if let Some(check) = &job.precondition {
                    if let Err(reason) = check(conn)? {
                        results.push(Err(AppendError::Refused(reason)));
                        continue;
                    }
                }
                let built;
                let drafts: &[EventDraft] = match &job.build {
                    None => &job.drafts,
                    Some(build) => match build(conn)? {
                        Ok(made) => {
                            built = made;
                            &built
                        }
                        Err(reason) => {
                            results.push(Err(AppendError::Refused(reason)));
                            continue;
                        }
                    },
                };
                // Sealed before any event of the job is chained, so that a
                // refusal leaves the chain untouched.
                let mut sealed = Vec::with_capacity(drafts.len());
                let mut refusal = None;
                for d in drafts {
                    match &d.personal {
                        None => sealed.push(None),
                        Some(p) => match keys.seal(conn, master_key, p, &d.attributes)? {
                            Ok(attributes) => sealed.push(Some(attributes)),
                            Err(r) => {
                                refusal = Some(r);
                                break;
                            }
                        },
                    }
                }
                if let Some(r) = refusal {
                    results.push(Err(AppendError::Refused(r)));
                    continue;
                }
                let followed = match &job.follow {
                    None => None,
                    Some(follow) => {
                        // It reads the state the job's events follow, the
                        // earlier jobs of this batch included.
                        pending.flush(conn)?;
                        match follow(conn, chain.next_seq, drafts)? {
                            Ok(up) => Some(up),
                            Err(reason) => {
                                results.push(Err(AppendError::Refused(reason)));
                                continue;
                            }
                        }
                    }
                };
                let mut created: Vec<Event> = drafts
                    .iter()
                    .zip(&sealed)
                    .map(|(d, a)| chain.append(&job.actor, d, a.as_deref(), scratch))
                    .collect();
                if let Some(up) = &followed {
                    created.extend(up.drafts.iter().map(|d| chain.append(&up.actor, d, None, scratch)));
                }
                guard.record(&created);
                for event in &created {
                    pending.rows.push(EventRow::from_event(event));
                    pending.events.push(event.clone());
                    if let Some(key) = &event.idempotency_key {
                        by_key.insert((event.actor.clone(), key.clone()), event.clone());
                    }
                }
                results.push(Ok(Appended::Created(created)));
            }
        }
    }
    keys.flush(conn)?;
    pending.flush(conn)?;
    Ok((results, chain.mark()))
}

/// Events chained but not yet written: written in one statement per batch,
/// or earlier when a precondition needs to see them.
#[derive(Default)]
struct Pending {
    rows: Vec<EventRow>,
    events: Vec<Event>,
}

impl Pending {
    fn flush(&mut self, conn: &mut DbConn) -> Result<(), StoreError> {
        events::insert(conn, &self.rows)?;
        projections::apply(conn, &self.events)?;
        self.rows.clear();
        self.events.clear();
        Ok(())
    }
}

/// `None` when the job is new. A job is a replay only when it is the same
/// request again: every event that carries a key matches what that key
/// recorded, and the events without one match the events recorded beside
/// them in the original request (a request is chained whole, in order, in
/// consecutive seqs). Any partial or differing match is a conflict, because
/// requests are atomic and a partial match cannot come from a retry.
fn replay_of(
    conn: &mut DbConn,
    job: &Job,
    by_key: &HashMap<(String, String), Event>,
    unwritten: &[Event],
) -> Result<Option<Result<Appended, AppendError>>, StoreError> {
    let keyed: Vec<(usize, &String, Option<&Event>)> = job
        .drafts
        .iter()
        .enumerate()
        .filter_map(|(i, d)| d.idempotency_key.as_ref().map(|k| (i, k, by_key.get(&(job.actor.clone(), k.clone())))))
        .collect();
    let Some(&(anchor_index, _, Some(anchor))) = keyed.iter().find(|(_, _, found)| found.is_some()) else {
        return Ok(None);
    };
    let conflict =
        |key: &str, differs: String| Ok(Some(Err(AppendError::IdempotencyConflict { key: key.to_owned(), differs })));
    for &(i, key, found) in &keyed {
        let Some(original) = found else {
            return conflict(
                key,
                format!("event {i} of this request carries a new key while another was recorded at seq {}", anchor.seq),
            );
        };
        let differs = job.drafts[i].differences(original);
        if !differs.is_empty() {
            return conflict(key, format!("seq {} records a different {}", original.seq, differs.join(", ")));
        }
    }
    let (anchor_key, first_seq) =
        (anchor.idempotency_key.clone().unwrap_or_default(), anchor.seq - anchor_index as u64);
    let wanted: Vec<u64> = (first_seq..first_seq + job.drafts.len() as u64).collect();
    // Events chained earlier in this batch are not written yet.
    let mut recorded: HashMap<u64, Event> =
        unwritten.iter().filter(|e| wanted.contains(&e.seq)).map(|e| (e.seq, e.clone())).collect();
    let missing: Vec<u64> = wanted.iter().copied().filter(|s| !recorded.contains_key(s)).collect();
    if !missing.is_empty() {
        recorded.extend(events::by_seqs(conn, &missing)?.into_iter().map(|e| (e.seq, e)));
    }
    let mut originals = Vec::with_capacity(job.drafts.len());
    for (i, (draft, seq)) in job.drafts.iter().zip(&wanted).enumerate() {
        let Some(original) = recorded.remove(seq).filter(|e| e.actor == job.actor) else {
            return conflict(&anchor_key, format!("the original request recorded no event {i} at seq {seq}"));
        };
        let differs = draft.differences(&original);
        if !differs.is_empty() {
            return conflict(
                &anchor_key,
                format!("event {i} of this request differs from seq {seq} of the original in {}", differs.join(", ")),
            );
        }
        originals.push(original);
    }
    Ok(Some(Ok(Appended::Replayed(originals))))
}

/// The running end of the chain while a batch is being built.
struct ChainTip {
    next_seq: u64,
    prev_hash: crate::ledger::Hash,
    recorded_at: String,
}

impl ChainTip {
    fn new(head: &Head) -> Self {
        // recorded_at never goes backwards along the chain, even if this
        // process's clock is behind another replica's: as-of queries rely on it.
        let now = timestamp::now();
        let recorded_at = match &head.recorded_at {
            Some(last) if *last > now => last.clone(),
            _ => now,
        };
        Self { next_seq: head.size + 1, prev_hash: head.hash.unwrap_or(GENESIS_PREV_HASH), recorded_at }
    }

    /// Where the chain ends now.
    fn mark(&self) -> HeadMark {
        let size = self.next_seq - 1;
        (size, (size > 0).then_some(self.prev_hash))
    }

    /// Chains `draft`; `sealed_attributes` replace its attributes when its
    /// personal data was sealed into them.
    fn append(
        &mut self,
        actor: &str,
        draft: &EventDraft,
        sealed_attributes: Option<&str>,
        scratch: &mut Vec<u8>,
    ) -> Event {
        let mut event = Event {
            seq: self.next_seq,
            id: uuid::Uuid::now_v7().to_string(),
            recorded_at: self.recorded_at.clone(),
            actor: actor.to_owned(),
            kind: draft.kind.as_str().to_owned(),
            subject: draft.subject.to_string(),
            project: draft.project.clone(),
            inputs: draft.inputs.iter().map(ToString::to_string).collect(),
            outputs: draft.outputs.iter().map(ToString::to_string).collect(),
            attributes: sealed_attributes.map_or_else(|| draft.attributes.clone(), str::to_owned),
            occurred_at: draft.occurred_at.clone(),
            idempotency_key: draft.idempotency_key.clone(),
            prev_hash: self.prev_hash,
            hash: [0; 32],
        };
        event.hash = hash_with(&EncodingInput::from(&event), scratch);
        self.prev_hash = event.hash;
        self.next_seq += 1;
        event
    }
}
