//! The storage floor (issue 29): the rows govledger's append benchmark
//! wrote, written again into a fresh ledger of the same schema, with the
//! writer's connection settings and durability, in transactions of as many
//! events as govledger's writer committed together, and nothing else: no
//! HTTP, no JSON, no authentication, no hashing, no search index.
//!
//! The rows are copied from the ledger the benchmark just filled (`INSERT
//! ... SELECT` from an attached SQLite file, or from the same PostgreSQL
//! database's default schema into a second one), so they are exactly the
//! events, entities and lineage edges govledger wrote, with all their
//! indexes maintained. Entities are copied in their final state, so an
//! update govledger made to an existing entity is not repeated: if
//! anything, the floor writes less than govledger did.

use std::time::Instant;

use diesel::RunQueryDsl;
use govledger::store::{ConnectionManager, DbConn, StorageTarget, Store, WriterConfig};

/// What was written per event, and how fast.
pub struct Floor {
    pub events: u64,
    pub per_commit: u64,
    pub events_per_s: f64,
    /// What the storage wrote per event while the rows went in: SQLite the
    /// process's `wchar`, PostgreSQL `pg_stat_wal`'s WAL bytes.
    pub bytes_per_event: f64,
}

fn sql(conn: &mut DbConn, statement: &str) {
    govledger::with_conn!(conn, |c| diesel::sql_query(statement).execute(c)).unwrap();
}

fn copy_batch(conn: &mut DbConn, source: &str, first: u64, last: u64) {
    conn.begin_append().unwrap();
    sql(conn, &format!("INSERT INTO events SELECT * FROM {source}.events WHERE seq BETWEEN {first} AND {last}"));
    sql(
        conn,
        &format!("INSERT INTO entities SELECT * FROM {source}.entities WHERE created_seq BETWEEN {first} AND {last}"),
    );
    sql(
        conn,
        &format!(
            "INSERT INTO lineage_edges SELECT * FROM {source}.lineage_edges WHERE created_seq BETWEEN {first} AND {last}"
        ),
    );
    conn.commit().unwrap();
}

fn count(conn: &mut DbConn, source: &str) -> u64 {
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let statement = format!("SELECT COUNT(*) AS n FROM {source}.events");
    let counted: Count = govledger::with_conn!(conn, |c| diesel::sql_query(&statement).get_result(c)).unwrap();
    counted.n as u64
}

/// `indexes`: statements giving the source's entities and edges an index
/// on `created_seq`, so that reading a batch's rows (not timed as such, but
/// inside the timed transactions) is a range lookup, not a scan.
fn write_all(
    conn: &mut DbConn,
    source: &str,
    per_commit: u64,
    indexes: [&str; 2],
    bytes_so_far: impl Fn(&mut DbConn) -> u64,
) -> Floor {
    for statement in indexes {
        sql(conn, statement);
    }
    let events = count(conn, source);
    let bytes_before = bytes_so_far(conn);
    let started = Instant::now();
    let mut first = 1;
    while first <= events {
        let last = (first + per_commit - 1).min(events);
        copy_batch(conn, source, first, last);
        first = last + 1;
    }
    let events_per_s = events as f64 / started.elapsed().as_secs_f64();
    let bytes_per_event = (bytes_so_far(conn) - bytes_before) as f64 / events as f64;
    Floor { events, per_commit, events_per_s, bytes_per_event }
}

/// The floor of the SQLite ledger in `filled` (a data directory).
pub fn sqlite(filled: &std::path::Path, per_commit: u64) -> Floor {
    let dir = tempfile::tempdir().unwrap();
    let target = StorageTarget::resolve(dir.path(), None).unwrap();
    drop(Store::open(target.clone(), 1, WriterConfig::default()).unwrap());
    let mut conn = govledger::store::writer::writer_connection(&ConnectionManager::new(target).unwrap()).unwrap();
    let source = StorageTarget::resolve(filled, None).unwrap();
    let StorageTarget::Sqlite { path } = source else { panic!("a SQLite ledger") };
    sql(&mut conn, &format!("ATTACH DATABASE '{}' AS source", path.display()));
    let indexes = [
        "CREATE INDEX source.floor_entities ON entities (created_seq)",
        "CREATE INDEX source.floor_edges ON lineage_edges (created_seq)",
    ];
    write_all(&mut conn, "source", per_commit, indexes, |_| super::bytes_written_so_far())
}

/// The floor of the PostgreSQL ledger at `url`: a second schema of the same
/// database, created by the same migrations.
pub fn postgres(url: &str, per_commit: u64) -> Floor {
    let mut admin = DbConn::establish(&StorageTarget::Postgres { url: url.to_owned() }).unwrap();
    sql(&mut admin, "DROP SCHEMA IF EXISTS floor CASCADE");
    sql(&mut admin, "CREATE SCHEMA floor");
    let separator = if url.contains('?') { '&' } else { '?' };
    let floor = StorageTarget::Postgres { url: format!("{url}{separator}options=-csearch_path%3Dfloor") };
    drop(Store::open(floor.clone(), 1, WriterConfig::default()).unwrap());
    let mut conn = govledger::store::writer::writer_connection(&ConnectionManager::new(floor).unwrap()).unwrap();
    let indexes = [
        "CREATE INDEX floor_entities ON public.entities (created_seq)",
        "CREATE INDEX floor_edges ON public.lineage_edges (created_seq)",
    ];
    write_all(&mut conn, "public", per_commit, indexes, |_| super::pg_wal_bytes(url))
}
