//! A one-line progress bar on stderr, for commands that walk the whole ledger
//! or a whole registry.

use std::io::Write as _;
use std::time::Instant;

/// Redraws `[####    ] done/total unit, rate/s` in place.
pub fn draw(done: u64, total: u64, unit: &str, started: Instant) {
    let width: usize = 40;
    let filled = (done * 40).checked_div(total).map_or(width, |f| usize::try_from(f).unwrap_or(width).min(width));
    let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
    eprint!("\r[{}{}] {done}/{total} {unit}, {rate:.0}/s", "#".repeat(filled), " ".repeat(width - filled));
    std::io::stderr().flush().ok();
}
