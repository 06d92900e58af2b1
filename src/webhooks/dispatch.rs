//! Delivery: one worker per subscription this replica holds the lease of,
//! following the ledger by seq from the subscription's cursor.
//!
//! A worker delivers its subscription's events one at a time, in seq order,
//! and moves on only once the receiver acknowledged one (2xx); so a
//! receiver that recovers gets everything in order, and one that is slow
//! delays itself only. Progress and attempts are kept in memory and written
//! by the dispatcher a few times a second in one short transaction, which
//! also renews the leases: a kill loses at most the progress since the last
//! flush, and those events are delivered again with the same `webhook-id`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ring::rand::SecureRandom;
use tokio::sync::watch;

use super::payload::{self, Reader};
use super::signing;
use super::subscription::{Status, Subscription, Subscriptions, KINDS};
use super::target::{self, CheckedResolver};
use super::{WebhookConfig, Webhooks, SERVER_ACTOR};
use crate::auth::Authorizer;
use crate::ledger::{timestamp, Event};
use crate::store::webhooks::{self as cursors, NewDelivery, Progress};
use crate::store::{events, StoreError};

/// How often the dispatcher looks at the head.
const HEAD_INTERVAL: Duration = Duration::from_millis(50);
/// How often it writes progress and renews leases.
const FLUSH_INTERVAL: Duration = Duration::from_millis(250);
/// How often it refolds subscriptions and tries to take free leases.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(1);
/// Events a worker reads at once.
const PAGE: u64 = 500;
/// Reads and writes the dispatcher may have at once, so that delivery
/// never holds more than two of the pool's connections.
const DB_SLOTS: usize = 2;

/// How a worker stopped on its own.
enum Ending {
    /// 410 Gone: the receiver asked for no more.
    Gone(String),
    /// The retry window passed on one event.
    Failing(String),
}

/// What a worker shares with the dispatcher.
struct Shared {
    progress: Progress,
    attempts: Vec<NewDelivery>,
    /// Seconds the event being delivered has waited since it was recorded.
    lag_seconds: f64,
    ending: Option<Ending>,
}

struct Worker {
    /// The subscription as the worker runs it; a change restarts it.
    subscription: Subscription,
    shared: Arc<Mutex<Shared>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// What every worker of a replica uses.
struct Context {
    webhooks: Arc<Webhooks>,
    authorizer: Authorizer,
    client: reqwest::Client,
    replica: String,
    head: watch::Receiver<u64>,
    db: tokio::sync::Semaphore,
    recent: Mutex<Recent>,
}

/// The newest events the workers read, shared: workers that keep up all
/// want the same few, and reading each once saves the database a read per
/// subscription.
#[derive(Default)]
struct Recent {
    /// Consecutive seqs, oldest first.
    events: std::collections::VecDeque<Arc<Held>>,
}

impl Recent {
    /// Events `from..=to`, if all are held.
    fn range(&self, from: u64, to: u64) -> Option<Vec<Arc<Held>>> {
        let first = self.events.front()?.seq;
        let last = self.events.back()?.seq;
        if from < first || to > last || from > to {
            return None;
        }
        let start = usize::try_from(from - first).ok()?;
        let len = usize::try_from(to - from + 1).ok()?;
        Some(self.events.range(start..start + len).cloned().collect())
    }

    /// Keeps `page` (consecutive seqs) and at most `RECENT` events in all.
    fn offer(&mut self, page: &[Arc<Held>]) {
        let (Some(first), Some(last)) = (page.first(), page.last()) else { return };
        let follows = self.events.back().is_some_and(|b| b.seq + 1 == first.seq);
        let within = self.events.front().is_some_and(|f| f.seq <= first.seq)
            && self.events.back().is_some_and(|b| b.seq >= last.seq);
        if within {
            return;
        }
        if follows {
            self.events.extend(page.iter().cloned());
        } else if self.events.back().is_none_or(|b| b.seq < last.seq) {
            // A worker far behind, or one ahead of what is held: hold its page.
            self.events = page.iter().cloned().collect();
        }
        while self.events.len() > RECENT {
            self.events.pop_front();
        }
    }
}

/// An event read for delivery, with its body, encoded once for every
/// subscription it goes to.
struct Held {
    event: Event,
    body: std::sync::OnceLock<Option<Vec<u8>>>,
}

impl Held {
    fn new(event: Event) -> Self {
        Self { event, body: std::sync::OnceLock::new() }
    }

    /// The body of its deliveries; `None` (logged) if it cannot be encoded.
    fn body(&self) -> Option<&[u8]> {
        self.body
            .get_or_init(|| match payload::body(&self.event) {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::error!(seq = self.event.seq, error = %e, "cannot encode an event for delivery; it is skipped");
                    None
                }
            })
            .as_deref()
    }
}

impl std::ops::Deref for Held {
    type Target = Event;

    fn deref(&self) -> &Event {
        &self.event
    }
}

/// How many of the newest events [`Recent`] holds.
const RECENT: usize = 4 * PAGE as usize;

/// The lag of each subscription, for `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct Lag {
    /// id → (events behind the head, seconds the oldest undelivered event waited).
    pub subscriptions: std::collections::BTreeMap<String, (u64, f64)>,
    pub failing: usize,
}

static LAG: Mutex<Option<Lag>> = Mutex::new(None);

/// The lag as last published by this process's dispatcher.
pub fn lag() -> Option<Lag> {
    LAG.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The HTTP client deliveries use: no redirects, bounded time, and a
/// resolver that refuses names pointing where deliveries may not go.
pub fn client(config: &WebhookConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(4)
        .user_agent(concat!("govledger-webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(CheckedResolver(Arc::new(config.addresses.clone()))))
        .build()
}

/// Starts delivery on a thread of its own at a lower scheduling priority:
/// on a busy machine the kernel gives the append path the CPU first, so
/// delivery falls behind rather than appends slowing down.
pub fn spawn(
    webhooks: Arc<Webhooks>,
    authorizer: Authorizer,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("webhook-delivery".into()).spawn(move || {
        lower_priority();
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(run(webhooks, authorizer, shutdown)),
            Err(e) => tracing::error!(error = %e, "cannot start webhook delivery"),
        }
    })
}

/// Nice 19 for the calling thread (and the threads it starts, which
/// inherit it): a tenth of a normal thread's share when the CPU is scarce.
fn lower_priority() {
    // On Linux a thread id names the thread alone for setpriority.
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %e, "cannot lower the priority of webhook delivery");
    }
}

/// Delivers until `shutdown` turns true; then writes where every worker
/// stands and lets the leases go, so another replica takes over at once.
pub async fn run(webhooks: Arc<Webhooks>, authorizer: Authorizer, mut shutdown: watch::Receiver<bool>) {
    let client = match client(webhooks.config()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; no webhooks are delivered");
            return;
        }
    };
    let (head_tx, head) = watch::channel(0u64);
    let context = Arc::new(Context {
        webhooks,
        authorizer,
        client,
        replica: format!("replica-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]),
        head,
        db: tokio::sync::Semaphore::new(DB_SLOTS),
        recent: Mutex::default(),
    });
    let mut dispatcher =
        Dispatcher { context, workers: HashMap::new(), last_reconcile: None, last_flush: Instant::now() };
    let mut ticks = tokio::time::interval(HEAD_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let changed = dispatcher.context.webhooks.changed.notified();
        tokio::select! {
            _ = ticks.tick() => {}
            _ = changed => dispatcher.last_reconcile = None,
            _ = shutdown.changed() => {
                if let Err(e) = dispatcher.shutdown().await {
                    tracing::warn!(error = %e, "webhook delivery: cannot write where it stopped");
                }
                return;
            }
        }
        if let Err(e) = dispatcher.turn(&head_tx).await {
            tracing::warn!(error = %e, "webhook delivery: cannot read or write its state");
        }
    }
}

struct Dispatcher {
    context: Arc<Context>,
    workers: HashMap<String, Worker>,
    last_reconcile: Option<Instant>,
    last_flush: Instant,
}

impl Dispatcher {
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Webhooks) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _slot = self.context.db.acquire().await.map_err(|e| StoreError::Thread(e.to_string()))?;
        let webhooks = self.context.webhooks.clone();
        tokio::task::spawn_blocking(move || work(&webhooks))
            .await
            .map_err(|e| StoreError::Thread(format!("a webhook task failed: {e}")))?
    }

    async fn turn(&mut self, head_tx: &watch::Sender<u64>) -> Result<(), StoreError> {
        let head = self.blocking(|w| Ok(w.store().head()?.size)).await?;
        head_tx.send_if_modified(|h| std::mem::replace(h, head) != head);
        // A worker that ended on its own is flushed first, which records
        // why (a 410, the retry window) before reconciling reads the status.
        if self.last_flush.elapsed() >= FLUSH_INTERVAL || self.workers.values().any(|w| w.task.is_finished()) {
            self.last_flush = Instant::now();
            self.flush().await?;
        }
        if self.last_reconcile.is_none_or(|at| at.elapsed() >= RECONCILE_INTERVAL) {
            self.last_reconcile = Some(Instant::now());
            let subscriptions = self.blocking(|w| w.refresh()).await?;
            self.reconcile(&subscriptions).await?;
            self.publish_lag(head, &subscriptions);
        }
        Ok(())
    }

    /// Starts, restarts and stops workers to match the subscriptions.
    async fn reconcile(&mut self, subscriptions: &Subscriptions) -> Result<(), StoreError> {
        // Workers whose subscription went away or changed stop first; their
        // progress is written before anything else happens to them.
        let mut stopping = Vec::new();
        for (id, worker) in &self.workers {
            match subscriptions.live.get(id) {
                // A worker that ended on its own and could not record why
                // is started again, and meets the same answer.
                Some(s) if s == &worker.subscription && s.status == Status::Active && !worker.task.is_finished() => {}
                _ => stopping.push(id.clone()),
            }
        }
        for id in stopping {
            let Some(worker) = self.workers.remove(&id) else { continue };
            let _ = worker.stop.send(true);
            let _ = worker.task.await;
            let shared = Arc::into_inner(worker.shared).map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()));
            let Some(shared) = shared else { continue };
            self.write(vec![shared.progress.clone()], shared.attempts).await?;
            match subscriptions.live.get(&id) {
                None => {
                    let gone = id.clone();
                    self.blocking(move |w| cursors::remove(&mut *w.store().conn()?, &gone)).await?;
                }
                Some(s) if s.status == Status::Active => self.start(s.clone(), Some(shared.progress)).await?,
                Some(_) => {
                    let (owner, released) = (self.context.replica.clone(), id.clone());
                    self.blocking(move |w| cursors::release(&mut *w.store().conn()?, &released, &owner)).await?;
                }
            }
        }
        for s in subscriptions.live.values() {
            if s.status == Status::Active && !self.workers.contains_key(&s.id) {
                self.start(s.clone(), None).await?;
            }
        }
        Ok(())
    }

    /// Takes the lease on `subscription` and starts its worker, from
    /// `progress` when this replica held it already.
    async fn start(&mut self, subscription: Subscription, progress: Option<Progress>) -> Result<(), StoreError> {
        let Some(master) = self.context.webhooks.master() else {
            tracing::warn!(webhook = %subscription.id, "no master key: the subscription's secret cannot be opened");
            return Ok(());
        };
        let context_id = Subscription::subject_of(&subscription.id);
        let mut secrets = Vec::new();
        let current = std::iter::once((&subscription.secret, None));
        let previous = subscription.previous_secret.iter().map(|(s, until)| (s, Some(until.clone())));
        for (sealed, until) in current.chain(previous) {
            match master.open_secret(&context_id, &sealed.sealed) {
                Ok(key) => secrets.push(Secret { key, until }),
                Err(e) => {
                    tracing::error!(webhook = %subscription.id, error = %e, "cannot open the subscription's secret");
                    return Ok(());
                }
            }
        }
        let lease = i64::try_from(self.context.webhooks.config().lease.as_millis()).unwrap_or(i64::MAX);
        let (id, owner, start) = (subscription.id.clone(), self.context.replica.clone(), subscription.created_seq);
        let row = self
            .blocking(move |w| {
                let mut conn = w.store().conn()?;
                cursors::ensure_cursor(&mut conn, &id, start, &timestamp::now())?;
                let now = chrono::Utc::now().timestamp_millis();
                cursors::take_lease(&mut conn, &id, &owner, now, now.saturating_add(lease))
            })
            .await?;
        let Some(row) = row else { return Ok(()) };
        let seq = |n: i64| u64::try_from(n).unwrap_or(0);
        let mut progress = progress.unwrap_or(Progress {
            webhook_id: row.webhook_id.clone(),
            delivered_through: seq(row.delivered_through),
            applied_change_seq: seq(row.applied_change_seq),
            retry_seq: row.retry_seq.map(seq),
            retry_since: row.retry_since.clone(),
            retry_attempts: u32::try_from(row.retry_attempts).unwrap_or(0),
            last_error: row.last_error.clone(),
            last_delivered_at: row.last_delivered_at.clone(),
        });
        if let Some((asked_at, from)) = subscription.replay {
            if asked_at > progress.applied_change_seq {
                progress.delivered_through = from.saturating_sub(1);
                progress.applied_change_seq = asked_at;
                clear_retry(&mut progress);
            }
        }
        let shared = Arc::new(Mutex::new(Shared { progress, attempts: Vec::new(), lag_seconds: 0.0, ending: None }));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(deliver(
            self.context.clone(),
            subscription.clone(),
            Arc::new(secrets),
            shared.clone(),
            stopped,
        ));
        self.workers.insert(subscription.id.clone(), Worker { subscription, shared, stop, task });
        Ok(())
    }

    /// Writes every worker's progress and new attempts, renewing leases;
    /// stops the workers whose lease another replica took, and records why
    /// a worker that ended on its own did.
    async fn flush(&mut self) -> Result<(), StoreError> {
        let mut progress = Vec::new();
        let mut attempts = Vec::new();
        let mut endings = Vec::new();
        for (id, worker) in &self.workers {
            let mut shared = worker.shared.lock().unwrap_or_else(|e| e.into_inner());
            progress.push(shared.progress.clone());
            attempts.append(&mut shared.attempts);
            if let Some(ending) = shared.ending.take() {
                endings.push((id.clone(), ending));
            }
        }
        let lost = self.write(progress, attempts).await?;
        for id in lost {
            if let Some(worker) = self.workers.remove(&id) {
                tracing::info!(webhook = %id, "another replica took over this subscription's delivery");
                let _ = worker.stop.send(true);
            }
        }
        for (id, ending) in endings {
            let (status, reason) = match ending {
                Ending::Gone(r) => (Status::Disabled, r),
                Ending::Failing(r) => (Status::Failing, r),
            };
            // The next reconcile sees the new status and lets the lease go.
            if let Err(e) = self.context.webhooks.mark(&id, status, reason).await {
                tracing::warn!(webhook = %id, error = %e, "cannot record the subscription's new status");
            }
            self.last_reconcile = None;
        }
        Ok(())
    }

    async fn write(&self, progress: Vec<Progress>, attempts: Vec<NewDelivery>) -> Result<Vec<String>, StoreError> {
        if progress.is_empty() && attempts.is_empty() {
            return Ok(Vec::new());
        }
        let config = self.context.webhooks.config();
        let lease = i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX);
        let keep = i64::from(config.keep_attempts);
        let owner = self.context.replica.clone();
        // Pruning only where attempts were added keeps the flush short.
        let mut prune: Vec<String> = attempts.iter().map(|a| a.webhook_id.clone()).collect();
        prune.sort();
        prune.dedup();
        let lost: Arc<Mutex<Vec<String>>> = Arc::default();
        let found = lost.clone();
        // Written by the ledger writer, in the transaction of its next group
        // commit: on SQLite a transaction of its own would take the one
        // write lock from the appends, which then sleep in SQLite's busy
        // handler; inside the batch it costs neither a lock nor an fsync.
        let build: crate::store::Builder = Box::new(move |conn| {
            let until = chrono::Utc::now().timestamp_millis().saturating_add(lease);
            let now = timestamp::now();
            let flush = cursors::Flush {
                owner: &owner,
                until,
                now: &now,
                progress: &progress,
                attempts: &attempts,
                prune: &prune,
                keep,
            };
            *found.lock().unwrap_or_else(|e| e.into_inner()) = cursors::flush_in(conn, &flush)?;
            Ok(Ok(Vec::new()))
        });
        let writer = self.context.webhooks.store().writer().clone();
        writer.append_built(SERVER_ACTOR.to_owned(), build).await.map_err(|e| StoreError::Thread(e.to_string()))?;
        let lost = std::mem::take(&mut *lost.lock().unwrap_or_else(|e| e.into_inner()));
        Ok(lost)
    }

    async fn shutdown(&mut self) -> Result<(), StoreError> {
        let mut progress = Vec::new();
        let mut attempts = Vec::new();
        for (_, worker) in self.workers.drain() {
            let _ = worker.stop.send(true);
            let _ = worker.task.await;
            let mut shared = worker.shared.lock().unwrap_or_else(|e| e.into_inner());
            progress.push(shared.progress.clone());
            attempts.append(&mut shared.attempts);
        }
        let ids: Vec<String> = progress.iter().map(|p| p.webhook_id.clone()).collect();
        self.write(progress, attempts).await?;
        let owner = self.context.replica.clone();
        self.blocking(move |w| {
            let mut conn = w.store().conn()?;
            ids.iter().try_for_each(|id| cursors::release(&mut conn, id, &owner))
        })
        .await
    }

    fn publish_lag(&self, head: u64, subscriptions: &Subscriptions) {
        let mut lag = Lag { failing: subscriptions.failing(), ..Default::default() };
        for (id, worker) in &self.workers {
            let shared = worker.shared.lock().unwrap_or_else(|e| e.into_inner());
            lag.subscriptions
                .insert(id.clone(), (head.saturating_sub(shared.progress.delivered_through), shared.lag_seconds));
        }
        *LAG.lock().unwrap_or_else(|e| e.into_inner()) = Some(lag);
    }
}

fn clear_retry(progress: &mut Progress) {
    progress.retry_seq = None;
    progress.retry_since = None;
    progress.retry_attempts = 0;
}

/// A signing secret, and until when it signs (a rotated one).
struct Secret {
    key: zeroize::Zeroizing<Vec<u8>>,
    until: Option<String>,
}

/// What one attempt came to.
enum Outcome {
    Delivered,
    Gone,
    Failed { retry_after: Option<Duration> },
}

/// The worker of one subscription: reads its events after the cursor and
/// delivers the matching ones, until stopped or ended.
async fn deliver(
    context: Arc<Context>,
    subscription: Subscription,
    secrets: Arc<Vec<Secret>>,
    shared: Arc<Mutex<Shared>>,
    mut stopped: watch::Receiver<bool>,
) {
    let reader = Reader::new(&subscription, context.authorizer.clone());
    let own_subject = Subscription::subject_of(&subscription.id);
    let url = match reqwest::Url::parse(&subscription.url) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(webhook = %subscription.id, error = %e, "the subscription's URL does not parse");
            return;
        }
    };
    let mut head = context.head.clone();
    let mut after = shared.lock().unwrap_or_else(|e| e.into_inner()).progress.delivered_through;
    loop {
        if *stopped.borrow() {
            return;
        }
        let known = *head.borrow_and_update();
        if after >= known {
            tokio::select! {
                _ = head.changed() => continue,
                _ = stopped.changed() => return,
            }
        }
        let to = known.min(after + PAGE);
        let held = context.recent.lock().unwrap_or_else(|e| e.into_inner()).range(after + 1, to);
        let page = match held {
            Some(page) => Ok(Ok(page)),
            None => {
                let Ok(_slot) = context.db.acquire().await else { return };
                let store = context.webhooks.store().clone();
                tokio::task::spawn_blocking(move || read_range(&store, after + 1, to)).await
            }
        };
        let page = match page {
            Ok(Ok(page)) => {
                context.recent.lock().unwrap_or_else(|e| e.into_inner()).offer(&page);
                page
            }
            other => {
                if let Ok(Err(e)) = other {
                    tracing::warn!(webhook = %subscription.id, error = %e, "cannot read events to deliver");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stopped.changed() => return,
                }
            }
        };
        for event in page {
            if payload::delivers(&subscription, &reader, &event) {
                yield_to_appends(&context).await;
                match deliver_one(&context, &subscription, &url, &secrets, &shared, &event, &mut stopped).await {
                    Some(Ok(())) => {}
                    Some(Err(ending)) => {
                        shared.lock().unwrap_or_else(|e| e.into_inner()).ending = Some(ending);
                        return;
                    }
                    None => return,
                }
            }
            after = event.seq;
            {
                let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
                shared.progress.delivered_through = event.seq;
                shared.lag_seconds = 0.0;
            }
            // Events after a change to this subscription (a rotated secret,
            // a new filter or URL) go out as changed: this worker waits for
            // the dispatcher to restart it with the subscription as it is now.
            if event.seq > subscription.changed_seq
                && event.subject == own_subject
                && KINDS.iter().any(|k| event.kind == *k)
            {
                let _ = stopped.changed().await;
                return;
            }
        }
        if after < to {
            // Rows up to a head read earlier are committed, so this is a
            // database that lost them; wait rather than spin.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stopped.changed() => return,
            }
        }
    }
}

/// Waits, a little, while appends wait for the ledger writer: under a
/// load of appends delivery falls behind (its lag is in the metrics) rather
/// than taking the CPU and the database from them, and it catches up when
/// the load eases. Never more than `APPEND_FIRST` per event, so delivery
/// goes on, slowly, under a load that never eases.
async fn yield_to_appends(context: &Context) {
    let writer = context.webhooks.store().writer();
    let started = Instant::now();
    while writer.backlog() > 0 && started.elapsed() < APPEND_FIRST {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The longest [`yield_to_appends`] waits before one delivery.
const APPEND_FIRST: Duration = Duration::from_millis(20);

fn read_range(store: &crate::store::Store, from: u64, to: u64) -> Result<Vec<Arc<Held>>, StoreError> {
    let mut rows = Vec::new();
    events::for_each_in_range(&mut *store.conn()?, from, to, |row| {
        rows.push(row);
        std::ops::ControlFlow::Continue(())
    })?;
    rows.into_iter().map(|r| r.into_event().map(|e| Arc::new(Held::new(e)))).collect()
}

/// Delivers `event` until the receiver takes it (`Some(Ok)`), the
/// subscription must end (`Some(Err)`), or the worker is stopped (`None`).
#[allow(clippy::too_many_arguments)]
async fn deliver_one(
    context: &Context,
    subscription: &Subscription,
    url: &reqwest::Url,
    secrets: &[Secret],
    shared: &Mutex<Shared>,
    held: &Held,
    stopped: &mut watch::Receiver<bool>,
) -> Option<Result<(), Ending>> {
    let config = context.webhooks.config();
    let event = &held.event;
    let Some(body) = held.body() else { return Some(Ok(())) };
    let message_id = signing::message_id(&subscription.id, event.seq);
    let recorded = chrono::DateTime::parse_from_rfc3339(&event.recorded_at).ok();
    let (mut attempt, since) = {
        let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
        let p = &mut shared.progress;
        if p.retry_seq != Some(event.seq) {
            p.retry_seq = None;
            p.retry_attempts = 0;
            p.retry_since = None;
        }
        let since = p
            .retry_since
            .as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
        (p.retry_attempts, since)
    };
    loop {
        attempt += 1;
        if let Some(recorded) = recorded {
            let waited = (chrono::Utc::now() - recorded.with_timezone(&chrono::Utc)).num_milliseconds();
            shared.lock().unwrap_or_else(|e| e.into_inner()).lag_seconds = waited.max(0) as f64 / 1000.0;
        }
        let started = Instant::now();
        let attempted_at = timestamp::now();
        let sent = tokio::select! {
            sent = send(context, url, secrets, &message_id, body) => sent,
            _ = stopped.changed() => return None,
        };
        let latency = started.elapsed();
        let (outcome, status_code, error) = sent;
        let now = chrono::Utc::now();
        let (result, next, ending) = match outcome {
            Outcome::Delivered => ("delivered", None, None),
            Outcome::Gone => ("gone", None, Some(Ending::Gone("the receiver answered 410 Gone".into()))),
            Outcome::Failed { retry_after } => {
                let wait = backoff(config, attempt, retry_after);
                let window = chrono::Duration::from_std(config.retry_window).unwrap_or(chrono::Duration::MAX);
                let wait_c = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
                if now + wait_c > since + window {
                    let why = format!(
                        "seq {} could not be delivered within the retry window ({} attempts since {}): {}",
                        event.seq,
                        attempt,
                        timestamp::format(since),
                        error.as_deref().unwrap_or("no answer")
                    );
                    ("failing", None, Some(Ending::Failing(why)))
                } else {
                    ("failed", Some((wait, timestamp::format(now + wait_c))), None)
                }
            }
        };
        crate::metrics::get().webhook_delivered(result);
        {
            let mut shared = shared.lock().unwrap_or_else(|e| e.into_inner());
            shared.attempts.push(NewDelivery {
                webhook_id: subscription.id.clone(),
                seq: i64::try_from(event.seq).unwrap_or(i64::MAX),
                message_id: message_id.clone(),
                kind: event.kind.clone(),
                attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
                attempted_at,
                result: result.to_owned(),
                status_code: status_code.map(i32::from),
                latency_micros: i64::try_from(latency.as_micros()).unwrap_or(i64::MAX),
                error: error.clone(),
                next_attempt_at: next.as_ref().map(|(_, at)| at.clone()),
                replica: context.replica.clone(),
            });
            let p = &mut shared.progress;
            match (&ending, &next) {
                (None, None) => {
                    clear_retry(p);
                    p.last_error = None;
                    p.last_delivered_at = Some(timestamp::format(now));
                }
                (None, Some(_)) => {
                    p.retry_seq = Some(event.seq);
                    p.retry_since = Some(timestamp::format(since));
                    p.retry_attempts = attempt;
                    p.last_error = error.clone();
                }
                // A resumed subscription starts a new retry window.
                (Some(_), _) => {
                    clear_retry(p);
                    p.last_error = error.clone();
                }
            }
        }
        if let Some(ending) = ending {
            return Some(Err(ending));
        }
        let Some((wait, _)) = next else { return Some(Ok(())) };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => return None,
        }
    }
}

/// One attempt: the outcome, the receiver's status and what went wrong.
async fn send(
    context: &Context,
    url: &reqwest::Url,
    secrets: &[Secret],
    message_id: &str,
    body: &[u8],
) -> (Outcome, Option<u16>, Option<String>) {
    let failed = |error: String| (Outcome::Failed { retry_after: None }, None, Some(error));
    // IP literals never reach the resolver, which checks names.
    if let Some(why) = target::literal_refused(url, &context.webhooks.config().addresses) {
        return failed(format!("refused: {why}"));
    }
    let timestamp = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let now = timestamp::now();
    let keys: Vec<&[u8]> = secrets
        .iter()
        .filter(|s| s.until.as_deref().is_none_or(|until| until > now.as_str()))
        .map(|s| s.key.as_slice())
        .collect();
    let signature = signing::signature_header(&keys, message_id, timestamp, body);
    let request = context
        .client
        .post(url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(body.to_vec());
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let retry_after = retry_after(response.headers());
            drain(response).await;
            let code = Some(status.as_u16());
            if status.is_success() {
                (Outcome::Delivered, code, None)
            } else if status == reqwest::StatusCode::GONE {
                (Outcome::Gone, code, Some("410 Gone".into()))
            } else {
                let honoured = matches!(status.as_u16(), 429 | 503).then_some(retry_after).flatten();
                let why = if status.is_redirection() {
                    format!("{status}: redirects are not followed; give the final URL")
                } else {
                    status.to_string()
                };
                (Outcome::Failed { retry_after: honoured }, code, Some(why))
            }
        }
        Err(e) => {
            // The resolver's refusal is the innermost cause.
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else {
                "failed"
            };
            failed(format!("{kind}: {cause}"))
        }
    }
}

/// Reads what the receiver sent back, so the connection can be reused, but
/// no more than 64 KiB of it: past that the connection is dropped instead.
async fn drain(mut response: reqwest::Response) {
    let mut read = 0;
    while let Ok(Some(chunk)) = response.chunk().await {
        read += chunk.len();
        if read > 64 * 1024 {
            return;
        }
    }
}

/// A number in [0, 1] from the system generator.
fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
}

/// The wait before attempt `attempt + 1`: the base doubled per attempt, at
/// most the maximum, between half and all of it at random so receivers
/// coming back are not hit by every sender at once; at least what the
/// receiver asked for with `Retry-After` (up to the maximum).
fn backoff(config: &WebhookConfig, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let doubled = config.retry_base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = doubled.min(config.retry_max_interval);
    let jittered = capped.mul_f64(0.5 + jitter() / 2.0);
    match retry_after {
        Some(asked) => jittered.max(asked.min(config.retry_max_interval)),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(from: u64, to: u64) -> Vec<Arc<Held>> {
        let event = |seq: u64| Event {
            seq,
            id: seq.to_string(),
            recorded_at: timestamp::now(),
            actor: "a".into(),
            kind: "run.started".into(),
            subject: "run:r".into(),
            project: None,
            inputs: vec![],
            outputs: vec![],
            attributes: "{}".into(),
            occurred_at: None,
            idempotency_key: None,
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        (from..=to).map(|seq| Arc::new(Held::new(event(seq)))).collect()
    }

    #[test]
    fn recent_events_are_shared_only_when_all_are_held() {
        let mut recent = Recent::default();
        recent.offer(&events(1, 10));
        recent.offer(&events(11, 20));
        let held = recent.range(5, 15).unwrap();
        assert_eq!(held.iter().map(|e| e.seq).collect::<Vec<_>>(), (5..=15).collect::<Vec<_>>());
        assert!(recent.range(15, 25).is_none(), "21 to 25 are not held");
        // A worker far behind reads from the database; its page replaces
        // nothing newer.
        recent.offer(&events(2, 4));
        assert!(recent.range(11, 20).is_some());
        recent.offer(&events(100, 110));
        assert!(recent.range(11, 20).is_none());
        recent.offer(&events(111, 111 + RECENT as u64));
        assert_eq!(recent.events.len(), RECENT);
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_and_honours_retry_after() {
        let config = WebhookConfig {
            retry_base: Duration::from_secs(2),
            retry_max_interval: Duration::from_secs(60),
            ..Default::default()
        };
        for _ in 0..50 {
            let first = backoff(&config, 1, None);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2), "{first:?}");
            let third = backoff(&config, 3, None);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8), "{third:?}");
            assert!(backoff(&config, 30, None) <= Duration::from_secs(60));
            assert!(backoff(&config, 1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
            assert!(backoff(&config, 1, Some(Duration::from_secs(3600))) <= Duration::from_secs(60));
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        headers.insert(reqwest::header::RETRY_AFTER, later.parse().unwrap());
        let read = retry_after(&headers).unwrap();
        assert!(read > Duration::from_secs(100) && read <= Duration::from_secs(120), "{read:?}");
    }
}
