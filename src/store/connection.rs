//! Connections for both backends, their per-connection settings, migrations,
//! and an r2d2 manager over them.

use std::path::{Path, PathBuf};

use diesel::connection::SimpleConnection;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::pg::PgConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::StoreError;
use crate::with_conn;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Advisory lock key that serialises appends across every process sharing a
/// PostgreSQL database ("govledgr" in ASCII).
pub const PG_APPEND_LOCK: i64 = 0x676f_766c_6564_6772;
/// Advisory lock key held while migrations run, so replicas starting together
/// do not race.
const PG_MIGRATION_LOCK: i64 = PG_APPEND_LOCK + 1;

/// The file name of the SQLite database inside the data directory.
pub const SQLITE_FILE: &str = "govledger.db";

/// Which database holds the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageTarget {
    /// An SQLite file in the data directory.
    Sqlite { path: PathBuf },
    /// A PostgreSQL database.
    Postgres { url: String },
}

impl StorageTarget {
    /// The embedded default: `DATA_DIR/govledger.db`, or PostgreSQL when a URL is given.
    pub fn resolve(data_dir: &Path, database_url: Option<&str>) -> Result<Self, StoreError> {
        match database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Self::Postgres { url: url.to_owned() })
            }
            Some(other) => Err(StoreError::UnsupportedUrl(other.to_owned())),
            None => Ok(Self::Sqlite { path: data_dir.join(SQLITE_FILE) }),
        }
    }

    /// A description without credentials, for logs.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite { path } => format!("sqlite {}", path.display()),
            Self::Postgres { url } => {
                let host = url.rsplit('@').next().unwrap_or(url);
                format!("postgresql {}", host.trim_start_matches("postgres://").trim_start_matches("postgresql://"))
            }
        }
    }
}

/// A connection to either backend.
pub enum DbConn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

impl DbConn {
    /// Opens a connection with the ledger's per-connection settings.
    pub fn establish(target: &StorageTarget) -> Result<Self, StoreError> {
        match target {
            StorageTarget::Sqlite { path } => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .map_err(|source| StoreError::DataDir { path: dir.display().to_string(), source })?;
                }
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // WAL lets readers run beside the writer; synchronous=FULL makes
                // every commit durable before it is acknowledged (NORMAL can
                // lose the last commits on power loss). busy_timeout covers
                // other processes (verify, backups) holding the lock briefly.
                for pragma in [
                    "PRAGMA busy_timeout = 10000",
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = FULL",
                    "PRAGMA foreign_keys = ON",
                    // Deleted rows (erased subjects' keys) are overwritten, not left
                    // in free space where a file scan would find them.
                    "PRAGMA secure_delete = ON",
                    // 4 MiB of page cache per reader: lookups and range scans
                    // are served by the OS page cache as well, and ten
                    // connections with 32 MiB each held most of the server's
                    // memory (docs/BENCHMARKS.md). The writer takes more.
                    "PRAGMA cache_size = -4096",
                    // Whichever connection commits past this many WAL pages
                    // checkpoints, on its own thread. At the default of 1,000 a
                    // full batch (about 400 frames) made every third commit copy
                    // its pages to the database file and sync it, and the pages
                    // every batch changes (the ends of the event table and its
                    // indexes) were copied again each time. Every 10,000 pages
                    // (a WAL of about 40 MB) wrote a fifth fewer bytes per
                    // append (docs/BENCHMARKS.md).
                    "PRAGMA wal_autocheckpoint = 10000",
                ] {
                    diesel::sql_query(pragma).execute(&mut conn)?;
                }
                Ok(Self::Sqlite(conn))
            }
            StorageTarget::Postgres { url } => {
                let mut conn = PgConnection::establish(url)?;
                // diesel keeps its statements prepared; PostgreSQL would soon
                // switch them to a generic plan chosen while a projection table
                // was nearly empty (a sequential scan), and keep it as the table
                // grows. Planning each execution costs far less than that.
                conn.batch_execute("SET plan_cache_mode = force_custom_plan")?;
                Ok(Self::Pg(conn))
            }
        }
    }

    /// Starts the append transaction and takes the chain lock: SQLite's
    /// `BEGIN IMMEDIATE` (a deferred transaction could fail to upgrade to a
    /// write without the busy handler running), PostgreSQL's advisory lock
    /// (held until commit, so the next writer reads the head after ours).
    pub fn begin_append(&mut self) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(c) => AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?,
            Self::Pg(c) => {
                AnsiTransactionManager::begin_transaction(c)?;
                // batch_execute: one round trip for the lock, on the writer's hot path.
                if let Err(e) = c.batch_execute(&format!("SELECT pg_advisory_xact_lock({PG_APPEND_LOCK})")) {
                    AnsiTransactionManager::rollback_transaction(c).ok();
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Runs `read` as one read-only snapshot whose plans stay on the
    /// indexes. The lineage readers look edges and entities up by key, a
    /// frontier at a time; on tables autovacuum has not analyzed yet (a new
    /// deployment, a bulk import in its first minute) PostgreSQL guesses
    /// that `target = ANY(...)` matches a large part of the table and scans
    /// all of it, as the writer once did (docs/BENCHMARKS.md). `SET LOCAL`
    /// keeps the setting to this transaction; the snapshot makes the walk's
    /// successive reads agree with each other. Inside a transaction already
    /// open (an append deciding a gate, on the writer's connection, which
    /// pins its plans for the session), `read` simply joins it.
    pub fn read_on_indexes<T>(
        &mut self,
        read: impl FnOnce(&mut DbConn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let own_transaction = match self {
            Self::Sqlite(_) => false,
            Self::Pg(c) => AnsiTransactionManager::transaction_manager_status_mut(c).transaction_depth()?.is_none(),
        };
        if !own_transaction {
            return read(self);
        }
        if let Self::Pg(c) = self {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
            if let Err(e) = c.batch_execute("SET LOCAL enable_seqscan = off") {
                AnsiTransactionManager::rollback_transaction(c).ok();
                return Err(e.into());
            }
        }
        match read(self) {
            Ok(value) => {
                self.commit()?;
                Ok(value)
            }
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    /// Refreshes PostgreSQL's statistics of the projection tables, which
    /// the readers' plans rest on: after a migration changed them, and after
    /// a rebuild rewrote them. SQLite plans from its indexes without them.
    pub fn analyze_projections(&mut self) -> Result<(), StoreError> {
        if let Self::Pg(c) = self {
            c.batch_execute("ANALYZE entities, lineage_edges, approvals, approval_decisions, events")?;
        }
        Ok(())
    }

    /// Commits the append transaction.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        with_conn!(self, |c| AnsiTransactionManager::commit_transaction(c))?;
        Ok(())
    }

    /// Rolls back; errors are ignored because the writer drops the connection
    /// after any failure anyway.
    pub fn rollback(&mut self) {
        with_conn!(self, |c| AnsiTransactionManager::rollback_transaction(c)).ok();
    }

    /// Whether the connection still answers.
    pub fn ping(&mut self) -> Result<(), StoreError> {
        with_conn!(self, |c| diesel::sql_query("SELECT 1").execute(c))?;
        Ok(())
    }
}

/// Opens connections for the pool and the writer.
#[derive(Clone)]
pub struct ConnectionManager {
    target: StorageTarget,
}

impl ConnectionManager {
    /// A manager for `target`; checks that a connection can be made.
    pub fn new(target: StorageTarget) -> Result<Self, StoreError> {
        let manager = Self { target };
        manager.connect()?;
        Ok(manager)
    }

    /// A fresh connection.
    pub fn connect(&self) -> Result<DbConn, StoreError> {
        DbConn::establish(&self.target)
    }

    /// Brings the schema up to date.
    pub fn run_migrations(&self) -> Result<(), StoreError> {
        let migration_error = |e: Box<dyn std::error::Error + Send + Sync>| StoreError::Migration(e.to_string());
        match self.connect()? {
            DbConn::Sqlite(mut c) => {
                c.run_pending_migrations(SQLITE_MIGRATIONS).map_err(migration_error)?;
            }
            DbConn::Pg(mut c) => {
                diesel::sql_query(format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})")).execute(&mut c)?;
                let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|applied| !applied.is_empty());
                diesel::sql_query(format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})")).execute(&mut c)?;
                if result.map_err(migration_error)? {
                    DbConn::Pg(c).analyze_projections()?;
                }
            }
        }
        Ok(())
    }
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConn;
    type Error = StoreError;

    fn connect(&self) -> Result<DbConn, StoreError> {
        DbConn::establish(&self.target)
    }

    fn is_valid(&self, conn: &mut DbConn) -> Result<(), StoreError> {
        conn.ping()
    }

    fn has_broken(&self, _conn: &mut DbConn) -> bool {
        false
    }
}
