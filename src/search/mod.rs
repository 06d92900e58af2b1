//! Full-text and faceted search over every event (tantivy).
//!
//! The index is a projection that follows the ledger by seq: each commit
//! records, as its payload, the last seq it holds, so after a crash or a kill
//! the follower resumes from exactly there (uncommitted documents are
//! discarded by tantivy, committed ones are never added twice). It lives in
//! `DATA_DIR/search-index`, one per server process; replicas sharing a
//! PostgreSQL database each follow the ledger into their own.

pub mod query;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy};

pub use query::{SearchHit, SearchRequest, SearchResults};
pub use schema::Fields;

use crate::store::{events, DbConn, Store, StoreError};

/// The index's folder inside the data directory.
pub const INDEX_DIR: &str = "search-index";
/// How often the follower looks for new events: with the commit that
/// follows, an appended event is searchable within about a second.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(200);
/// Events per index commit while catching up.
const CHUNK: u64 = 20_000;

/// Errors of the search layer.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The query could not be parsed; the message is the parser's.
    #[error("invalid query: {0}")]
    Query(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("search index folder {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the search index is at seq {indexed}, the ledger at {wanted}: not caught up in time")]
    Lagging { indexed: u64, wanted: u64 },
}

/// The search index of one ledger.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    indexed_seq: AtomicU64,
    caught_up: tokio::sync::Notify,
    path: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SearchError + '_ {
    move |source| SearchError::Io { path: path.display().to_string(), source }
}

impl SearchIndex {
    /// Opens the index in folder `path`, creating it empty if there is none.
    /// `writer_heap` bytes of indexing memory (at least 15 MB per thread).
    /// One process at a time may open an index folder.
    pub fn open(path: &Path, threads: usize, writer_heap: usize) -> Result<Self, SearchError> {
        let path = path.to_path_buf();
        std::fs::create_dir_all(&path).map_err(io(&path))?;
        let (schema, fields) = Fields::schema();
        let index = if path.join("meta.json").exists() {
            let index = Index::open_in_dir(&path)?;
            if index.schema() != schema {
                return Err(SearchError::Query(format!(
                    "the index in {} was built with another schema: run `govledger reindex`",
                    path.display()
                )));
            }
            index
        } else {
            Index::create_in_dir(&path, schema)?
        };
        let writer = index.writer_with_num_threads(threads, writer_heap).map_err(|e| match e {
            tantivy::TantivyError::LockFailure(..) => SearchError::Query(format!(
                "another govledger process is using the search index in {}: give each server its own \
                 --search-index-dir",
                path.display()
            )),
            other => other.into(),
        })?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let indexed = index.load_metas()?.payload.and_then(|p| p.parse().ok()).unwrap_or(0);
        Ok(Self {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            indexed_seq: AtomicU64::new(indexed),
            caught_up: tokio::sync::Notify::new(),
            path,
        })
    }

    /// The last seq the searchable index holds.
    pub fn indexed_seq(&self) -> u64 {
        self.indexed_seq.load(Ordering::Acquire)
    }

    /// The index folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds every event after the indexed seq, up to the head, committing
    /// every [`CHUNK`] events. `progress` is told the seq reached after each
    /// commit. Returns the number of events added.
    pub fn catch_up(&self, conn: &mut DbConn, mut progress: impl FnMut(u64, u64)) -> Result<u64, SearchError> {
        let head = events::head(conn)?.size;
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        // Re-read under the lock: another caller may have advanced it.
        let start = self.indexed_seq();
        let mut from = start + 1;
        while from <= head {
            let to = (from + CHUNK - 1).min(head);
            let mut failure = None;
            events::for_each_in_range(conn, from, to, |row| match row.into_event() {
                Ok(event) => match writer.add_document(self.fields.document(&event)) {
                    Ok(_) => std::ops::ControlFlow::Continue(()),
                    Err(e) => {
                        failure = Some(SearchError::from(e));
                        std::ops::ControlFlow::Break(())
                    }
                },
                Err(e) => {
                    failure = Some(SearchError::from(e));
                    std::ops::ControlFlow::Break(())
                }
            })?;
            if let Some(e) = failure {
                writer.rollback()?;
                return Err(e);
            }
            let mut commit = writer.prepare_commit()?;
            commit.set_payload(&to.to_string());
            commit.commit()?;
            self.reader.reload()?;
            self.indexed_seq.store(to, Ordering::Release);
            self.caught_up.notify_waiters();
            progress(to, head);
            from = to + 1;
        }
        Ok(head.saturating_sub(start))
    }

    /// Empties the index (the next [`catch_up`](Self::catch_up) rebuilds it).
    pub fn clear(&self) -> Result<(), SearchError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer.delete_all_documents()?;
        let mut commit = writer.prepare_commit()?;
        commit.set_payload("0");
        commit.commit()?;
        self.reader.reload()?;
        self.indexed_seq.store(0, Ordering::Release);
        Ok(())
    }

    /// Waits until the index holds `seq`, at most `timeout`.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> Result<(), SearchError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.caught_up.notified();
            if self.indexed_seq() >= seq {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(SearchError::Lagging { indexed: self.indexed_seq(), wanted: seq });
            }
        }
    }

    /// Size of the index files, in bytes.
    pub fn size_bytes(&self) -> u64 {
        std::fs::read_dir(&self.path)
            .map(|entries| entries.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    }
}

/// Follows the ledger: every [`FOLLOW_INTERVAL`], indexes what was appended
/// (by this process or another replica). Runs until aborted.
pub async fn follow(index: std::sync::Arc<SearchIndex>, store: Store) {
    let mut ticks = tokio::time::interval(FOLLOW_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (index, store) = (index.clone(), store.clone());
        let result = tokio::task::spawn_blocking(move || {
            let mut conn = store.conn()?;
            index.catch_up(&mut conn, |_, _| {})
        })
        .await;
        match result {
            Ok(Ok(n)) if n > 0 => tracing::debug!(events = n, "search index followed the ledger"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot update the search index"),
            Err(e) => tracing::warn!(error = %e, "search indexing task failed"),
        }
    }
}
