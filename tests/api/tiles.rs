//! The Merkle tree stored as C2SP tiles (issue 29, part 3): written with the
//! events, built for a ledger that predates them (resumably, with a
//! progress bar), checked by `verify`, and read at start instead of every
//! event hash.

use std::process::Command;

use diesel::{Connection, QueryableByName, RunQueryDsl};
use govledger::ledger::{EventDraft, EventRequest};
use govledger::store::{DbConn, Store, WriterConfig};
use serde_json::json;

use crate::helpers::{Backend, TestDatabase};

/// `n` events appended through the real writer, in batches of `per_batch`.
fn ledger(backend: Backend, n: usize, per_batch: usize) -> Option<TestDatabase> {
    let db = TestDatabase::create(backend)?;
    let store = Store::open(db.target.clone(), 2, WriterConfig::default()).unwrap();
    let all: Vec<usize> = (1..=n).collect();
    for batch in all.chunks(per_batch) {
        let drafts = batch
            .iter()
            .map(|i| {
                let request: EventRequest = serde_json::from_value(
                    json!({"kind": "pipeline.checked", "subject": format!("model:fraud@{i}"), "attributes": {"rows": i}}),
                )
                .unwrap();
                EventDraft::from_request(request).unwrap()
            })
            .collect();
        store.writer().append_blocking("tester".into(), drafts).unwrap();
    }
    store.close();
    Some(db)
}

fn run_sql(db: &TestDatabase, statements: &[&str]) {
    let mut conn = DbConn::establish(&db.target).unwrap();
    for statement in statements {
        govledger::with_conn!(&mut conn, |c| diesel::sql_query(*statement).execute(c)).unwrap();
    }
}

#[derive(QueryableByName, Debug, PartialEq, Eq)]
struct TileRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    level: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    idx: i64,
    #[diesel(sql_type = diesel::sql_types::Binary)]
    hashes: Vec<u8>,
}

fn stored_tiles(db: &TestDatabase) -> Vec<TileRow> {
    let mut conn = DbConn::establish(&db.target).unwrap();
    let query = "SELECT CAST(level AS BIGINT) AS level, idx, hashes FROM merkle_tiles ORDER BY level, idx";
    govledger::with_conn!(&mut conn, |c| diesel::sql_query(query).load(c)).unwrap()
}

fn govledger(args: &[&str], db: &TestDatabase) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_govledger")).args(args).args(db.cli_args()).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (output.status.code().unwrap_or(-1), text(&output.stdout), text(&output.stderr))
}

/// The tiles the writer stores are the tree's, whatever the batch sizes:
/// the same rows as one batch of everything gives, and every tile the
/// reference recomputes from the event hashes.
async fn the_writer_stores_each_full_tile_with_its_events(backend: Backend) {
    tokio::task::block_in_place(|| the_writer_stores_each_full_tile_with_its_events_now(backend));
}

fn the_writer_stores_each_full_tile_with_its_events_now(backend: Backend) {
    let Some(one_by_one) = ledger(backend, 1100, 7) else { return };
    let whole = ledger(backend, 1100, 1100).unwrap();
    let tiles = stored_tiles(&one_by_one);
    assert_eq!(
        tiles.len(),
        4,
        "1,100 events fill four level-0 tiles: {:?}",
        tiles.iter().map(|t| t.idx).collect::<Vec<_>>()
    );
    let mut conn = DbConn::establish(&one_by_one.target).unwrap();
    let hashes = govledger::store::events::hashes(&mut conn, 1, 1024).unwrap();
    for tile in &tiles {
        let leaves: Vec<u8> = hashes[tile.idx as usize * 256..][..256]
            .iter()
            .flat_map(|h| govledger::ledger::merkle::leaf_hash(h))
            .collect();
        assert_eq!((tile.level, &tile.hashes), (0, &leaves), "tile 0/{}", tile.idx);
    }
    // Same subjects, different ids and times: different hashes, same layout.
    let other = stored_tiles(&whole);
    assert_eq!(
        other.iter().map(|t| (t.level, t.idx)).collect::<Vec<_>>(),
        tiles.iter().map(|t| (t.level, t.idx)).collect::<Vec<_>>()
    );
}
crate::on_both_backends!(
    the_writer_stores_each_full_tile_with_its_events,
    the_writer_stores_each_full_tile_with_its_events
);

/// A ledger from before the tiles (or with an interrupted build): `migrate`
/// builds exactly the tiles the writer would have, resuming after the last
/// one stored, drawing a progress bar; then proofs and `verify` agree.
async fn migrate_builds_the_tiles_of_an_existing_ledger_resumably(backend: Backend) {
    tokio::task::block_in_place(|| migrate_builds_the_tiles_of_an_existing_ledger_resumably_now(backend));
}

fn migrate_builds_the_tiles_of_an_existing_ledger_resumably_now(backend: Backend) {
    let Some(db) = ledger(backend, 3000, 500) else { return };
    let written = stored_tiles(&db);
    assert_eq!(written.len(), 11);
    // An interrupted build: the first five tiles stored, the rest not.
    run_sql(&db, &["DELETE FROM merkle_tiles WHERE idx >= 5"]);
    let (code, out, err) = govledger(&["migrate"], &db);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("built the Merkle tiles of events 1281..2816") && out.contains("resumed at event 1280"),
        "{out}"
    );
    assert!(err.contains("] 2816/3000 events in tiles"), "a progress bar: {err}");
    assert_eq!(stored_tiles(&db), written, "the built tiles are the ones the writer stored");
    let (code, out, _) = govledger(&["migrate"], &db);
    assert_eq!(code, 0);
    assert!(out.contains("the Merkle tiles were up to date (2816 events in full tiles)"), "{out}");

    // None at all: the server builds them on start, then serves proofs the
    // events' own tree gives.
    run_sql(&db, &["DELETE FROM merkle_tiles"]);
    let store = Store::open(db.target.clone(), 2, WriterConfig::default()).unwrap();
    assert_eq!(stored_tiles(&db), written, "opening the store built them");
    let signer = govledger::proofs::keys::load_or_create(&govledger::proofs::keys::SigningKeyConfig {
        path: db.dir.path().join("signing.key"),
        origin: "govledger".into(),
    })
    .unwrap();
    let proofs = govledger::proofs::Proofs::new(store.clone(), signer, "govledger".into()).unwrap();
    let mut conn = DbConn::establish(&db.target).unwrap();
    let all = govledger::store::events::hashes(&mut conn, 1, 3000).unwrap();
    let index = govledger::ledger::merkle::MerkleIndex::from_event_hashes(&all, 1);
    let mut read = |first: u64, count: u64| Ok::<_, ()>(all[first as usize..][..count as usize].to_vec());
    let mut reference = govledger::ledger::merkle::IndexSource::new(&index, &mut read);
    for (seq, size) in [(1, 3000), (300, 2816), (2900, 3000), (2816, 2817), (1000, 1024)] {
        let proof = proofs.inclusion(seq, Some(size)).unwrap();
        let expected = govledger::ledger::merkle::inclusion_proof(&mut reference, seq - 1, size).unwrap();
        assert_eq!(proof.audit_path, expected.iter().map(hex::encode).collect::<Vec<_>>(), "{seq} in {size}");
        let root = govledger::ledger::merkle::root(&mut reference, size).unwrap();
        assert_eq!(proof.root_hash, hex::encode(root));
    }
    proofs.publish().unwrap();
    store.close();
    let (code, out, err) = govledger(&["verify"], &db);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3000 events verified, 1 checkpoints consistent"), "{out}");
}
crate::on_both_backends!(
    migrate_builds_the_tiles_of_an_existing_ledger_resumably,
    migrate_builds_the_tiles_of_an_existing_ledger_resumably
);

/// Proofs are served from the tiles, so `verify` recomputes every one and
/// names the first that is not the events': changed, missing, or left
/// behind by removed events.
async fn verify_names_a_tile_that_is_not_the_events(backend: Backend) {
    tokio::task::block_in_place(|| verify_names_a_tile_that_is_not_the_events_now(backend));
}

fn verify_names_a_tile_that_is_not_the_events_now(backend: Backend) {
    let Some(db) = ledger(backend, 1100, 100) else { return };
    let (code, out, err) = govledger(&["verify"], &db);
    assert_eq!(code, 0, "{out}{err}");
    let forged = match backend {
        Backend::Sqlite => "UPDATE merkle_tiles SET hashes = randomblob(8192) WHERE idx = 2",
        Backend::Postgres => "UPDATE merkle_tiles SET hashes = decode(repeat('ab', 8192), 'hex') WHERE idx = 2",
    };
    run_sql(&db, &[forged]);
    let (code, out, _) = govledger(&["verify"], &db);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("projection_mismatch") && out.contains("merkle_tiles row 0/2: differs"), "{out}");

    run_sql(&db, &["DELETE FROM merkle_tiles WHERE idx >= 2"]);
    let (code, out, _) = govledger(&["verify"], &db);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("merkle_tiles row 0/2: missing (govledger migrate builds it)"), "{out}");

    let (code, out, err) = govledger(&["migrate"], &db);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = govledger(&["verify"], &db);
    assert_eq!(code, 0, "{out}");
    // Events removed from the end (append-only triggers out of the way) leave their tile.
    let disable = match backend {
        Backend::Sqlite => "DROP TRIGGER events_no_delete",
        Backend::Postgres => "ALTER TABLE events DISABLE TRIGGER USER",
    };
    run_sql(&db, &[disable, "DELETE FROM events WHERE seq > 1000"]);
    let (code, out, _) = govledger(&["verify"], &db);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tiles cover 1024 events but the ledger holds 1000: events were removed"), "{out}");
    // `rebuild` derives the tiles from the events again, with the other projections.
    let (code, out, err) = govledger(&["rebuild"], &db);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(stored_tiles(&db).len(), 3);
    let (code, out, _) = govledger(&["verify"], &db);
    assert_eq!(code, 0, "{out}");
}
crate::on_both_backends!(verify_names_a_tile_that_is_not_the_events, verify_names_a_tile_that_is_not_the_events);

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Start-up reads the stored tiles' right edge and the events after the
/// last full tile, not the ledger: PostgreSQL's own counters show how many
/// event rows opening the store and the proof service fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_reads_no_more_than_the_last_tile_of_events() {
    let Some(db) = tokio::task::block_in_place(|| ledger(Backend::Postgres, 5000, 1000)) else { return };
    // The pseudonym index trails the last appends (by up to 10,000 events or
    // five seconds) and the next start catches it up: done once here, as any
    // earlier run of a server would have.
    let target = db.target.clone();
    tokio::task::spawn_blocking(move || Store::open(target, 2, WriterConfig::default()).unwrap().close())
        .await
        .unwrap();
    let (base, name) = db.pg_admin().unwrap();
    let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
    let mut pg = diesel::pg::PgConnection::establish(&url).unwrap();
    let stats_delay = std::time::Duration::from_secs(11);
    tokio::time::sleep(stats_delay).await;
    diesel::sql_query("SELECT pg_stat_reset()").execute(&mut pg).unwrap();
    let target = db.target.clone();
    let dir = db.dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        let store = Store::open(target, 2, WriterConfig::default()).unwrap();
        let signer = govledger::proofs::keys::load_or_create(&govledger::proofs::keys::SigningKeyConfig {
            path: dir.join("signing.key"),
            origin: "govledger".into(),
        })
        .unwrap();
        let proofs = govledger::proofs::Proofs::new(store.clone(), signer, "govledger".into()).unwrap();
        assert_eq!(proofs.sync().unwrap(), 5000);
        store.close();
    })
    .await
    .unwrap();
    tokio::time::sleep(stats_delay).await;
    let read: Vec<Count> = diesel::sql_query(
        "SELECT (COALESCE(SUM(seq_tup_read), 0) + COALESCE(SUM(idx_tup_fetch), 0))::bigint AS n \
         FROM pg_stat_user_tables WHERE relname = 'events'",
    )
    .load(&mut pg)
    .unwrap();
    let scans: Vec<Count> = diesel::sql_query(
        "SELECT COALESCE(SUM(seq_scan), 0)::bigint AS n FROM pg_stat_user_tables WHERE relname = 'events'",
    )
    .load(&mut pg)
    .unwrap();
    // 5,000 events: 19 full tiles end at 4,864, then 136 events (read twice: the
    // tiles' catch-up check and the proof service), and the heads.
    assert_eq!(scans[0].n, 0, "a sequential scan of the events at start");
    assert!(read[0].n < 2 * 256 + 64, "{} event rows read at start of a 5,000-event ledger", read[0].n);
    assert!(read[0].n >= 136, "the statistics were published ({} rows)", read[0].n);
}
