//! Lineage, impact and gate latency on a large ledger (issue 5).
//!
//! Builds (or reuses, with GOVLEDGER_BENCH_DIR) an SQLite ledger of
//! GOVLEDGER_BENCH_EVENTS events (default 1,000,000) with about 50,000
//! entities shaped like a real registry: dataset derivation chains, training
//! runs, model versions with approvals, deployments that switched versions;
//! the rest are evaluations and run updates on those entities. Then measures
//! the three queries in-process and over HTTP, sequentially, and prints
//! p50/p99.
//!
//! `cargo bench --bench governance [-- lineage search]`
//!
//! `search` (issue 6): reindexes the ledger from scratch and times a typical
//! query (free text + one filter, newest first, first page) against the same
//! query done with SQL `LIKE` on the database.
//!
//! `console` (issue 22): every console page over HTTP with a signed-in
//! session, p50/p99 and the heaviest answer; and the lineage drawing
//! (layout and SVG) of a 200-node graph, in-process.

use std::time::{Duration, Instant};

use govledger::config::Config;
use govledger::governance::approvals::gate_in;
use govledger::governance::lineage::{self, Walk};
use govledger::governance::ApprovalRules;
use govledger::ledger::{timestamp, EventDraft, EventRequest};
use govledger::startup::Application;
use govledger::store::{StorageTarget, Store, WriterConfig};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Dataset derivation chains, each LEVELS versions deep (raw data, cleaned,
/// joined, features, ...), so that a model's upstream lineage is about ten
/// hops deep: model <- run <- LEVELS datasets.
const CHAINS: u64 = 2_000;
const LEVELS: u64 = 8;
const RUNS: u64 = 10_000;
const MODELS: u64 = 2_000;
const QUERIES: usize = 2_000;

fn main() {
    let events: u64 = std::env::var("GOVLEDGER_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = match std::env::var("GOVLEDGER_BENCH_DIR") {
        Ok(dir) => std::path::PathBuf::from(dir),
        Err(_) => tempfile::tempdir().unwrap().keep(),
    };
    let target = StorageTarget::resolve(&dir, None).unwrap();
    load(&target, events);
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| args.is_empty() || args.iter().any(|a| a == name);
    // First, so that the server below finds its search index caught up
    // instead of indexing a million events while being measured.
    if wants("search") {
        search(&target, &dir, events);
    }
    if wants("lineage") {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        in_process(&target);
        runtime.block_on(over_http(&target, &dir));
    }
    if wants("console") {
        pending_approvals(&target, 500);
        drawing();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(console(&target, &dir));
    }
    if std::env::var("GOVLEDGER_BENCH_DIR").is_err() {
        std::fs::remove_dir_all(&dir).ok();
    }
}

fn draft(value: Value) -> EventDraft {
    let request: EventRequest = serde_json::from_value(value).unwrap();
    EventDraft::from_request(request).unwrap()
}

/// The structural events, in an order that respects causality.
fn structure() -> Vec<(String, EventDraft)> {
    let mut out = Vec::new();
    let scientist = |d| ("alice".to_owned(), d);
    for c in 0..CHAINS {
        out.push(scientist(draft(
            json!({"kind": "dataset.version_created", "subject": level(c, 0), "project": "bench"}),
        )));
        for l in 1..LEVELS {
            out.push(scientist(draft(json!({"kind": "dataset.version_created", "subject": level(c, l),
                "inputs": [level(c, l - 1)], "project": "bench"}))));
        }
    }
    for r in 0..RUNS {
        let model = format!("model:m{}@{}", r % MODELS, r / MODELS + 1);
        let run = format!("run:train{r}");
        let inputs = [level(r % CHAINS, LEVELS - 1), level((r * 7 + 3) % CHAINS, LEVELS - 1)];
        out.push((
            "ci".into(),
            draft(json!({"kind": "run.started", "subject": run, "inputs": inputs, "project": "bench"})),
        ));
        out.push((
            "ci".into(),
            draft(json!({"kind": "run.completed", "subject": run, "outputs": [model], "project": "bench"})),
        ));
        out.push((
            "ci".into(),
            draft(json!({"kind": "model.registered", "subject": model, "inputs": [run], "project": "bench"})),
        ));
        let id = format!("approval:a{r}");
        out.push((
            "ci".into(),
            draft(json!({"kind": "approval.requested", "subject": id, "project": "bench",
            "attributes": {"model": model, "environment": "production", "evidence": [], "note": "",
                           "required_approvals": 2, "valid_for_seconds": 7_776_000}})),
        ));
        out.push((
            "rita".into(),
            draft(
                json!({"kind": "approval.granted", "subject": id, "project": "bench", "attributes": {"reason": "ok"}}),
            ),
        ));
        out.push((
            "raj".into(),
            draft(
                json!({"kind": "approval.granted", "subject": id, "project": "bench", "attributes": {"reason": "ok"}}),
            ),
        ));
        // Each version in turn goes live in staging and production.
        for env in ["staging", "production"] {
            out.push(("ci".into(), draft(json!({"kind": "deployment.succeeded",
                "subject": format!("deployment:{env}/m{}", r % MODELS), "attributes": {"model": model}, "project": "bench"}))));
        }
    }
    out
}

/// Level `l` of derivation chain `c`; level 0 is the raw data.
fn level(c: u64, l: u64) -> String {
    format!("dataset:c{c}-l{l}@1")
}

fn load(target: &StorageTarget, events: u64) {
    let store = Store::open(target.clone(), 2, WriterConfig::default()).unwrap();
    let have = store.head().unwrap().size;
    if have >= events {
        println!("== reusing a ledger of {have} events");
        store.close();
        return;
    }
    assert_eq!(have, 0, "GOVLEDGER_BENCH_DIR holds a partial ledger; remove it");
    let started = Instant::now();
    let structure = structure();
    let structural = structure.len() as u64;
    for chunk in structure.chunks(2000) {
        // One actor per append call: group by consecutive actor.
        let mut i = 0;
        while i < chunk.len() {
            let actor = &chunk[i].0;
            let j = chunk[i..].iter().position(|(a, _)| a != actor).map_or(chunk.len(), |p| i + p);
            store
                .writer()
                .append_blocking(actor.clone(), chunk[i..j].iter().map(|(_, d)| d.clone()).collect())
                .unwrap();
            i = j;
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut n = structural;
    while n < events {
        let batch: Vec<EventDraft> = (0..2000.min(events - n))
            .map(|k| {
                let r = rng.gen_range(0..RUNS);
                if k % 2 == 0 {
                    draft(json!({"kind": "model.evaluated", "subject": format!("model:m{}@{}", r % MODELS, r / MODELS + 1),
                        "project": "bench", "inputs": ["dataset:holdout@1"],
                        "attributes": {"metrics": {"auc": 0.95, "n": n + k}, "passed": true}}))
                } else {
                    draft(json!({"kind": "run.updated", "subject": format!("run:train{r}"), "project": "bench",
                        "attributes": {"parameters": {"step": n + k}}}))
                }
            })
            .collect();
        n += batch.len() as u64;
        store.writer().append_blocking("ci".into(), batch).unwrap();
    }
    let mut conn = store.conn().unwrap();
    let entities: i64 = {
        use diesel::prelude::*;
        match &mut *conn {
            govledger::store::DbConn::Sqlite(c) => {
                govledger::store::schema::entities::table.count().get_result(c).unwrap()
            }
            govledger::store::DbConn::Pg(c) => govledger::store::schema::entities::table.count().get_result(c).unwrap(),
        }
    };
    println!(
        "== loaded {events} events ({structural} structural), {entities} entities, in {:.1}s ({:.0} events/s with projections)",
        started.elapsed().as_secs_f64(),
        events as f64 / started.elapsed().as_secs_f64()
    );
    drop(conn);
    store.close();
}

fn percentiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1000.0;
    format!("p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} queries)", at(0.5), at(0.99), at(1.0), samples.len())
}

fn time<F: FnMut(usize)>(mut f: F) -> Vec<Duration> {
    (0..QUERIES)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect()
}

fn in_process(target: &StorageTarget) {
    let store = Store::open(target.clone(), 2, WriterConfig::default()).unwrap();
    let rules = ApprovalRules::default_rules();
    // The gate reads the version's evaluations and open breaches too.
    let monitor = govledger::governance::monitoring::Monitor::new(
        std::sync::Arc::new(rules.clone()),
        govledger::governance::monitoring_rules::DEFAULT_MONITORING_RULES.to_owned(),
    )
    .unwrap();
    let mut conn = store.conn().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut sizes = Vec::new();
    let lineage_times = time(|_| {
        let r = rng.gen_range(0..RUNS);
        let node = format!("model:m{}@{}", r % MODELS, r / MODELS + 1);
        let g =
            lineage::lineage(&mut conn, &node, Walk::Both, 10, None, None, lineage::DEFAULT_NODES).unwrap().unwrap();
        sizes.push((g.nodes.len(), g.edges.len()));
    });
    println!("== in-process, sqlite");
    println!(
        "lineage depth 10, both directions, from a model version (mean {:.1} nodes, {:.1} edges): {}",
        sizes.iter().map(|s| s.0).sum::<usize>() as f64 / sizes.len() as f64,
        sizes.iter().map(|s| s.1).sum::<usize>() as f64 / sizes.len() as f64,
        percentiles(lineage_times)
    );
    let mut sizes = Vec::new();
    let impact_times = time(|_| {
        let node = level(rng.gen_range(0..CHAINS), 0);
        let i = lineage::impact(&mut conn, &node, None, lineage::DEFAULT_NODES).unwrap().unwrap();
        sizes.push(i.model_versions.len() + i.live_deployments.len());
    });
    println!(
        "impact of a raw dataset (mean {:.1} model versions + live deployments): {}",
        sizes.iter().sum::<usize>() as f64 / sizes.len() as f64,
        percentiles(impact_times)
    );
    let mut allowed = 0;
    let gate_times = time(|_| {
        let r = rng.gen_range(0..RUNS);
        let model = format!("model:m{}@{}", r % MODELS, r / MODELS + 1);
        allowed +=
            usize::from(gate_in(&mut conn, &rules, &monitor, &model, "production", &timestamp::now()).unwrap().allowed);
    });
    assert!(allowed > QUERIES / 2);
    println!("gate decision, production: {}", percentiles(gate_times));
    drop(conn);
    store.close();
}

/// A server on the bench ledger with an auditor's token: its base URL,
/// the token, and what stops it.
struct BenchServer {
    base: String,
    /// An auditor's token; then a risk officer's and an administrator's.
    token: String,
    officer: String,
    admin: String,
    handle: actix_web::dev::ServerHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl BenchServer {
    async fn start(target: &StorageTarget, dir: &std::path::Path) -> Self {
        let mut config = Config::new("127.0.0.1:0", target.clone(), dir);
        config.workers = 2;
        config.checkpoint_interval = None;
        // One client asks thousands of questions back to back, faster than
        // the shipped per-token rate (500/s): the figure is latency, not the
        // rate limiter.
        config.limits.rate_limit_per_second = 0;
        // The data-protection pages need one (the ledger holds no personal data).
        config.writer.master_key = Some(std::sync::Arc::new(govledger::ledger::personal::MasterKey::new(&[1u8; 32])));
        let (issuer, _) = govledger::auth::TokenIssuer::load_or_create(&config.tokens).unwrap();
        let token = issuer.issue("audrey", &["auditor".into()], &["*".into()], 3600).unwrap().0;
        let officer = issuer.issue("rosa", &["risk_officer".into()], &["*".into()], 3600).unwrap().0;
        let admin = issuer.issue("ada", &["admin".into()], &["*".into()], 3600).unwrap().0;
        let app = Application::build(config).await.unwrap();
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        Self { base, token, officer, admin, handle, server }
    }

    async fn stop(self) {
        self.handle.stop(true).await;
        self.server.await.ok();
    }
}

async fn over_http(target: &StorageTarget, dir: &std::path::Path) {
    let bench = BenchServer::start(target, dir).await;
    let (base, token) = (bench.base.clone(), bench.token.clone());
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(13);
    let mut run = |kind: usize| {
        let r = rng.gen_range(0..RUNS);
        match kind {
            0 => format!("/api/v1/lineage?node=model:m{}@{}&direction=both&depth=10", r % MODELS, r / MODELS + 1),
            1 => format!("/api/v1/impact?node={}", level(r % CHAINS, 0)),
            _ => format!("/api/v1/gate?model=model:m{}@{}&environment=production", r % MODELS, r / MODELS + 1),
        }
    };
    println!("== over HTTP (auditor token, one keep-alive connection, sequential)");
    for (kind, name) in [(0, "lineage depth 10"), (1, "impact"), (2, "gate decision")] {
        let mut samples = Vec::with_capacity(QUERIES);
        for _ in 0..QUERIES {
            let path = run(kind);
            let t = Instant::now();
            let response = client.get(format!("{base}{path}")).bearer_auth(&token).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.bytes().await.unwrap();
            samples.push(t.elapsed());
        }
        println!("{name}: {}", percentiles(samples));
    }
    bench.stop().await;
}

fn search(target: &StorageTarget, dir: &std::path::Path, events: u64) {
    use diesel::prelude::*;
    use govledger::search::query::Sort;
    use govledger::search::{SearchIndex, SearchRequest};

    let index_dir = dir.join(govledger::search::INDEX_DIR);
    std::fs::remove_dir_all(&index_dir).ok();
    let index = SearchIndex::open(&index_dir, 2, 256 * 1024 * 1024).unwrap();
    let mut conn = govledger::store::DbConn::establish(target).unwrap();
    let started = Instant::now();
    let indexed = index.catch_up(&mut conn, |_, _| {}).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(indexed, events);
    let db_bytes: u64 = ["govledger.db", "govledger.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!("== search, sqlite ledger of {events} events");
    println!(
        "reindex: {:.0} events/s ({:.1}s); index {:.0} MB, database {:.0} MB ({:.0}% of it)",
        events as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        index.size_bytes() as f64 / 1e6,
        db_bytes as f64 / 1e6,
        100.0 * index.size_bytes() as f64 / db_bytes as f64
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let models: Vec<u64> = (0..QUERIES).map(|_| rng.gen_range(0..MODELS)).collect();
    let mut found = 0;
    let tantivy_times = time(|i| {
        let request = SearchRequest {
            q: format!("m{}", models[i]),
            kind: Some("model.evaluated".into()),
            entity_type: None,
            actor: None,
            project: None,
            from: None,
            to: None,
            sort: Sort::Time,
            limit: 20,
            cursor: None,
            projects: Some(vec!["bench".into()]),
        };
        found += index.search(&request).unwrap().hits.len();
    });
    assert!(found > QUERIES * 10);
    println!(
        "query `m<N>` + kind filter, newest first, first page of 20 (tantivy): {}",
        percentiles(tantivy_times.clone())
    );
    #[derive(QueryableByName)]
    struct Seq {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        #[allow(dead_code)]
        seq: i64,
    }
    let govledger::store::DbConn::Sqlite(c) = &mut conn else { unreachable!() };
    let like_times = time(|i| {
        let m = models[i];
        let rows: Vec<Seq> = diesel::sql_query(
            "SELECT seq FROM events WHERE kind = 'model.evaluated' AND project = 'bench' \
             AND (subject LIKE ?1 OR attributes LIKE ?2) ORDER BY seq DESC LIMIT 20",
        )
        .bind::<diesel::sql_types::Text, _>(format!("%:m{m}@%"))
        .bind::<diesel::sql_types::Text, _>(format!("%m{m}%"))
        .load(c)
        .unwrap();
        assert!(!rows.is_empty());
    });
    println!("the same with SQL LIKE on the events table: {}", percentiles(like_times.clone()));
    let p99 = |mut v: Vec<Duration>| {
        v.sort();
        v[(v.len() - 1) * 99 / 100]
    };
    println!("p99 ratio LIKE / tantivy: {:.1}x", p99(like_times).as_secs_f64() / p99(tantivy_times).as_secs_f64());
}

/// A graph of 200 nodes shaped like a wide lineage: 120 datasets in
/// derivation chains, 50 runs reading them, 30 models trained by the runs.
fn wide_graph() -> lineage::Graph {
    let node = |r: String| {
        let (t, rest) = r.split_once(':').unwrap();
        lineage::Node {
            entity_type: t.into(),
            name: rest.into(),
            version: None,
            project: Some("bench".into()),
            status: "active".into(),
            seq: 1,
            ref_: r,
        }
    };
    let edge = |s: &str, t: &str, kind: &str, seq: i64| lineage::Edge {
        source: s.into(),
        target: t.into(),
        seq,
        ended_seq: None,
        kind: kind.into(),
    };
    let datasets: Vec<String> = (0..120).map(|i| format!("dataset:c{}-l{}@1", i / 6, i % 6)).collect();
    let runs: Vec<String> = (0..50).map(|i| format!("run:train{i}")).collect();
    let models: Vec<String> = (0..30).map(|i| format!("model:m{i}@1")).collect();
    let mut edges = Vec::new();
    for (i, d) in datasets.iter().enumerate() {
        if i % 6 > 0 {
            edges.push(edge(&datasets[i - 1], d, "dataset.version_created", i as i64));
        }
    }
    for (i, r) in runs.iter().enumerate() {
        edges.push(edge(&datasets[(i * 7) % 120], r, "run.started", 1000 + i as i64));
        edges.push(edge(&datasets[(i * 13 + 5) % 120], r, "run.started", 2000 + i as i64));
        edges.push(edge(r, &models[i % 30], "model.registered", 3000 + i as i64));
    }
    for (i, m) in models.iter().enumerate() {
        edges.push(edge(&datasets[(i * 11) % 120], m, "model.evaluated", 4000 + i as i64));
    }
    let nodes: Vec<lineage::Node> = datasets.into_iter().chain(runs).chain(models).map(node).collect();
    lineage::Graph {
        node: nodes[0].ref_.clone(),
        direction: "both",
        depth: 10,
        as_of_seq: None,
        nodes,
        edges,
        truncated: false,
        node_limit: 200,
        omitted_nodes: 0,
        hidden_nodes: 0,
    }
}

/// Adds production approval requests until `n` are pending (the loaded
/// ledger's are all granted): what a risk officer's inbox holds.
fn pending_approvals(target: &StorageTarget, n: usize) {
    use govledger::store::projections::{self, ApprovalFilter};
    let store = Store::open(target.clone(), 1, WriterConfig::default()).unwrap();
    let filter = ApprovalFilter { state: Some("pending".into()), limit: n as i64, ..Default::default() };
    let have = projections::list_approvals(&mut store.conn().unwrap(), &filter).unwrap().len();
    let drafts: Vec<EventDraft> = (have..n)
        .map(|i| {
            draft(json!({"kind": "approval.requested", "subject": format!("approval:pending{i}"), "project": "bench",
                "attributes": {"model": format!("model:m{}@1", i % MODELS as usize), "environment": "production",
                               "evidence": [], "note": "", "required_approvals": 2, "valid_for_seconds": 7_776_000}}))
        })
        .collect();
    if !drafts.is_empty() {
        store.writer().append_blocking("ci".into(), drafts).unwrap();
        println!("== added {} pending production approvals", n - have);
    }
    store.close();
}

/// The console's lineage drawing of a 200-node graph: layout, then SVG.
fn drawing() {
    use govledger::http::console::svg;
    let graph = wide_graph();
    let layout_times: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(svg::layout_of(&graph));
            t.elapsed()
        })
        .collect();
    let mut bytes = 0;
    let draw_times: Vec<Duration> = (0..200)
        .map(|_| {
            let t = Instant::now();
            bytes = std::hint::black_box(svg::lineage(&graph)).len();
            t.elapsed()
        })
        .collect();
    println!("== console drawing, {} nodes and {} edges", graph.nodes.len(), graph.edges.len());
    println!("layout only: {}", percentiles(layout_times));
    println!("layout and SVG ({} KB): {}", bytes / 1024, percentiles(draw_times));
}

/// Signs in to the console at `base` with `token`, through the form.
async fn console_session(client: &reqwest::Client, base: &str, token: &str) -> String {
    let form = client.get(format!("{base}/ui/login")).send().await.unwrap();
    let cookie_value = |response: &reqwest::Response, name: &str| -> String {
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix(&format!("{name}=")).map(|rest| rest.split(';').next().unwrap().to_owned()))
            .unwrap()
    };
    let login = cookie_value(&form, "govledger_login");
    let html = form.text().await.unwrap();
    let marker = "name=\"csrf\" value=\"";
    let at = html.find(marker).unwrap() + marker.len();
    let csrf = html[at..at + 64].to_owned();
    let answer = client
        .post(format!("{base}/ui/login"))
        .header("Cookie", format!("govledger_login={login}"))
        .form(&[("token", token), ("csrf", &csrf), ("next", "/ui/")])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    format!("govledger_session={}", cookie_value(&answer, "govledger_session"))
}

/// Every console page over HTTP on the large ledger, one signed-in
/// session, sequential: p50/p99 and the heaviest answer per page.
async fn console(target: &StorageTarget, dir: &std::path::Path) {
    const PAGES: usize = 300;
    let bench = BenchServer::start(target, dir).await;
    let (base, token) = (bench.base.clone(), bench.token.clone());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = console_session(&client, &base, &token).await;
    let officer = console_session(&client, &base, &bench.officer).await;
    let admin = console_session(&client, &base, &bench.admin).await;
    let size = {
        let store = Store::open(target.clone(), 1, WriterConfig::default()).unwrap();
        let size = store.head().unwrap().size;
        store.close();
        size
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let mut page = |kind: usize| -> String {
        let r = rng.gen_range(0..RUNS);
        let model = format!("model:m{}@{}", r % MODELS, r / MODELS + 1);
        match kind {
            0 => "/ui/".to_owned(),
            1 => format!("/ui/search?q=m{}&kind=model.evaluated", r % MODELS),
            2 => "/ui/search?q=auc".to_owned(),
            3 => format!("/ui/events/{}", rng.gen_range(1..=size)),
            4 => format!("/ui/entities/{}?direction=both&depth=3", level(r % CHAINS, LEVELS / 2)),
            5 => format!("/ui/entities/{}?direction=downstream&depth=10", level(r % CHAINS, 0)),
            6 => format!("/ui/models/{model}"),
            7 => "/ui/reports".to_owned(),
            8 | 9 => "/ui/approvals".to_owned(),
            10 => format!("/ui/approvals/pending{}", r % 500),
            11 => "/ui/deployments".to_owned(),
            12 => format!("/ui/subjects/customer-{r}"),
            13 => "/ui/admin/tokens".to_owned(),
            _ => "/ui/admin/policy".to_owned(),
        }
    };
    println!("== console over HTTP (auditor session, one keep-alive connection, sequential), {size} events");
    for (kind, name) in [
        (0, "overview"),
        (1, "search `m<N>` + kind filter"),
        (2, "search `auc` (every evaluation matches)"),
        (3, "event with its proof"),
        (4, "entity, lineage both ways, depth 3"),
        (5, "entity, raw dataset, downstream depth 10"),
        (6, "model version (dossier, gates, training, graph)"),
        (7, "reports"),
        (8, "approval inbox, risk officer: pending and decidable by me (500 pending), first page of 20"),
        (9, "approval inbox, auditor: what is pending (read-only), first page of 20"),
        (10, "approval page, risk officer"),
        (11, "deployments (2,000 live per environment, 25 shown with the gate's answer)"),
        (12, "data subject, admin (no events name them)"),
        (13, "tokens, admin"),
        (14, "policy, admin"),
    ] {
        let cookie = match kind {
            8 | 10 => &officer,
            12..=14 => &admin,
            _ => &cookie,
        };
        let mut samples = Vec::with_capacity(PAGES);
        let mut heaviest = 0;
        for _ in 0..PAGES {
            let path = page(kind);
            let t = Instant::now();
            let response = client.get(format!("{base}{path}")).header("Cookie", cookie).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let body = response.bytes().await.unwrap();
            samples.push(t.elapsed());
            heaviest = heaviest.max(body.len());
        }
        println!("{name}: {}; heaviest {:.0} KB", percentiles(samples), heaviest as f64 / 1024.0);
    }
    bench.stop().await;
}
