//! Process-wide counters and histograms for `GET /metrics` (Prometheus text
//! format 0.0.4). One set per process, like a Prometheus client's default
//! registry: the writer thread, the auth extractor and the search handler
//! record into it without being handed a registry.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    /// One counter per bound, plus the overflow (`+Inf`).
    buckets: Vec<AtomicU64>,
    /// Sum of the observations, in millionths of the unit.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        let slot = self.bounds.iter().position(|b| value <= *b).unwrap_or(self.bounds.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    pub fn observe_duration(&self, elapsed: Duration) {
        self.observe(elapsed.as_secs_f64());
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[self.bounds.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Relaxed) as f64 / 1e6);
        // The count is the +Inf bucket: read once, they cannot disagree.
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// Why a request was not authenticated or not allowed.
#[derive(Debug, Clone, Copy)]
pub enum AuthFailure {
    MissingToken,
    InvalidToken,
    Revoked,
    Forbidden,
}

const AUTH_REASONS: [(AuthFailure, &str); 4] = [
    (AuthFailure::MissingToken, "missing_token"),
    (AuthFailure::InvalidToken, "invalid_token"),
    (AuthFailure::Revoked, "revoked"),
    (AuthFailure::Forbidden, "forbidden"),
];

/// The results of webhook delivery attempts, as `result` labels.
pub const WEBHOOK_RESULTS: [&str; 4] = ["delivered", "failed", "gone", "failing"];

const LATENCY_BOUNDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

pub struct Metrics {
    pub appended_events: AtomicU64,
    /// Requests answered 429 because no place to read the store came free
    /// in time (`Limits::queue_wait`).
    pub shed_requests: AtomicU64,
    pub append_seconds: Histogram,
    pub commit_batch_events: Histogram,
    auth_failures: [AtomicU64; 4],
    pub search_seconds: Histogram,
    webhook_deliveries: [AtomicU64; 4],
}

static METRICS: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();

/// The process's metrics.
pub fn get() -> &'static Metrics {
    METRICS.get_or_init(|| Metrics {
        appended_events: AtomicU64::new(0),
        shed_requests: AtomicU64::new(0),
        append_seconds: Histogram::new(LATENCY_BOUNDS),
        commit_batch_events: Histogram::new(BATCH_BOUNDS),
        auth_failures: Default::default(),
        search_seconds: Histogram::new(LATENCY_BOUNDS),
        webhook_deliveries: Default::default(),
    })
}

impl Metrics {
    pub fn auth_failed(&self, reason: AuthFailure) {
        self.auth_failures[reason as usize].fetch_add(1, Relaxed);
    }

    /// Counts a webhook delivery attempt by its result (one of [`WEBHOOK_RESULTS`]).
    pub fn webhook_delivered(&self, result: &str) {
        if let Some(i) = WEBHOOK_RESULTS.iter().position(|r| *r == result) {
            self.webhook_deliveries[i].fetch_add(1, Relaxed);
        }
    }

    /// The text exposition, with the gauges read at scrape time.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let mut gauge = |name: &str, help: &str, kind: &str, value: Option<f64>| {
            if let Some(v) = value {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
            }
        };
        gauge(
            "govledger_appended_events_total",
            "Events appended to the ledger by this process.",
            "counter",
            Some(self.appended_events.load(Relaxed) as f64),
        );
        gauge(
            "govledger_shed_requests_total",
            "Requests answered 429 because the server had no place to read the store within the queue wait.",
            "counter",
            Some(self.shed_requests.load(Relaxed) as f64),
        );
        gauge("govledger_ledger_events", "Events in the ledger (all replicas).", "gauge", gauges.ledger_events);
        gauge(
            "govledger_search_index_lag_events",
            "Events in the ledger not yet in this process's search index.",
            "gauge",
            gauges.index_lag_events,
        );
        gauge(
            "govledger_checkpoint_age_seconds",
            "Seconds since the newest stored checkpoint was published.",
            "gauge",
            gauges.checkpoint_age_seconds,
        );
        gauge(
            "govledger_checkpoint_behind_events",
            "Events appended after the newest stored checkpoint.",
            "gauge",
            gauges.checkpoint_behind_events,
        );
        self.append_seconds.render(
            &mut out,
            "govledger_append_duration_seconds",
            "Time from handing an append to the writer until it is committed.",
        );
        self.commit_batch_events.render(
            &mut out,
            "govledger_group_commit_events",
            "Events committed per group-commit transaction.",
        );
        let _ = writeln!(
            out,
            "# HELP govledger_auth_failures_total Requests refused by authentication (401) or authorization (403).\n\
             # TYPE govledger_auth_failures_total counter"
        );
        for (reason, label) in AUTH_REASONS {
            let n = self.auth_failures[reason as usize].load(Relaxed);
            let _ = writeln!(out, "govledger_auth_failures_total{{reason=\"{label}\"}} {n}");
        }
        self.search_seconds.render(&mut out, "govledger_search_duration_seconds", "Time to answer a search request.");
        let _ = writeln!(
            out,
            "# HELP govledger_webhook_deliveries_total Webhook delivery attempts by this process, by result.\n\
             # TYPE govledger_webhook_deliveries_total counter"
        );
        for (i, result) in WEBHOOK_RESULTS.iter().enumerate() {
            let n = self.webhook_deliveries[i].load(Relaxed);
            let _ = writeln!(out, "govledger_webhook_deliveries_total{{result=\"{result}\"}} {n}");
        }
        if let Some(failing) = gauges.webhooks_failing {
            let _ = writeln!(
                out,
                "# HELP govledger_webhooks_failing Subscriptions stopped because an event could not be delivered \
                 within the retry window.\n# TYPE govledger_webhooks_failing gauge\ngovledger_webhooks_failing {failing}"
            );
        }
        for (name, help, seconds) in [
            (
                "govledger_webhook_lag_events",
                "Events after the last one this process delivered to the subscription.",
                false,
            ),
            (
                "govledger_webhook_lag_seconds",
                "How long the event being delivered to the subscription has waited.",
                true,
            ),
        ] {
            if gauges.webhook_lag.is_empty() {
                break;
            }
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (id, events, waited) in &gauges.webhook_lag {
                let value = if seconds { *waited } else { *events as f64 };
                let _ = writeln!(out, "{name}{{webhook=\"{id}\"}} {value}");
            }
        }
        out
    }
}

/// Values read from the database and the index when scraped; `None` leaves
/// the series out (an empty ledger has no checkpoint age).
#[derive(Debug, Default)]
pub struct Gauges {
    pub ledger_events: Option<f64>,
    pub index_lag_events: Option<f64>,
    pub checkpoint_age_seconds: Option<f64>,
    pub checkpoint_behind_events: Option<f64>,
    /// Per subscription this process delivers: id, events behind, seconds waited.
    pub webhook_lag: Vec<(String, u64, f64)>,
    pub webhooks_failing: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_every_observation() {
        let h = Histogram::new(&[1.0, 10.0]);
        for v in [0.5, 1.0, 3.0, 50.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "help");
        assert!(out.contains("x_bucket{le=\"1\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"10\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4\n"), "{out}");
        assert!(out.contains("x_sum 54.5\n"), "{out}");
        assert!(out.contains("x_count 4\n"), "{out}");
    }
}
