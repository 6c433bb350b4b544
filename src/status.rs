//! `newsrelay status`: what the service is doing, as a table a person reads at a glance.
//!
//! In: the validated config, and a [`StoreSnapshot`] read either from the store itself or, while
//! a running daemon holds the store's lock, from that daemon's `GET /api/status`; the digest
//! ledger files (read only). Out: a summary line, one aligned row per feed (health, items, last
//! success, next check, errors, last error), and one row per subscriber with the next digest.
//! It never writes: not to the store, not to the ledger, not to the digest folder.

use crate::config::{Config, Frequency};
use crate::digest::{LedgerStore, SubscriberLedger};
use crate::item::FeedId;
use crate::schedule::DigestSchedule;
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;
use thiserror::Error;

/// Longest last-error text shown in the table (the full text is in the logs and in
/// `GET /api/status`).
const MAX_ERROR_CHARS: usize = 70;

/// How long `status` waits for a running daemon's answer.
pub const DAEMON_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum StatusError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("the store is in use by a running newsrelay and its server at {url} did not answer ({message}); run status on the machine where the daemon runs with the same config, or stop the daemon (systemctl stop newsrelay) and run it again")]
    Daemon { url: String, message: String },
}

/// What the store holds, as `GET /api/status` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreSnapshot {
    pub generated_at: DateTime<Utc>,
    /// Bytes of the store's folder on disk.
    pub store_bytes: u64,
    pub total_items: u64,
    /// Every feed with a stored state or stored items, by id.
    pub feeds: Vec<FeedSnapshot>,
}

/// One feed's stored state and item count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedSnapshot {
    pub id: String,
    /// Items that came through this feed (first or merged source).
    pub items: u64,
    pub last_fetch: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub next_check: Option<DateTime<Utc>>,
    /// Consecutive failures; 0 when healthy.
    pub error_count: u32,
    pub last_error: Option<String>,
}

impl StoreSnapshot {
    /// Reads the snapshot from an open store whose folder is `path`.
    pub fn read(store: &Store, path: &Path, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let mut counts = store.items_per_feed()?;
        let mut feeds = Vec::new();
        for (FeedId(id), s) in store.feed_states()? {
            feeds.push(FeedSnapshot {
                items: counts.remove(&id).unwrap_or(0),
                id,
                last_fetch: s.last_fetch,
                last_success: s.last_success,
                next_check: s.next_check,
                error_count: s.error_count,
                last_error: s.last_error,
            });
        }
        // Items from a feed whose state is gone (an import of items alone, say).
        for (id, items) in counts {
            feeds.push(FeedSnapshot {
                id,
                items,
                last_fetch: None,
                last_success: None,
                next_check: None,
                error_count: 0,
                last_error: None,
            });
        }
        feeds.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(StoreSnapshot {
            generated_at: now,
            store_bytes: crate::store::disk_size(path),
            total_items: store.item_count() as u64,
            feeds,
        })
    }
}

/// Where the snapshot came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The store, opened read-only for the moment (no daemon holds it).
    Store,
    /// A running daemon's `GET /api/status` at this URL.
    Daemon(String),
}

/// Opens the store and reads the snapshot; when a running daemon holds the store, asks that
/// daemon's server (at `server.listen`) instead.
pub async fn collect(
    config: &Config,
    now: DateTime<Utc>,
) -> Result<(StoreSnapshot, Source), StatusError> {
    if !config.store.path.exists() {
        // Nothing stored yet; opening would create the store, and status never writes.
        let empty = StoreSnapshot {
            generated_at: now,
            store_bytes: 0,
            total_items: 0,
            feeds: Vec::new(),
        };
        return Ok((empty, Source::Store));
    }
    match Store::open(&config.store.path) {
        Ok(store) => Ok((
            StoreSnapshot::read(&store, &config.store.path, now)?,
            Source::Store,
        )),
        Err(e) if e.is_locked() => {
            let url = status_url(&config.server.listen);
            let snapshot = from_daemon(&url)
                .await
                .map_err(|message| StatusError::Daemon {
                    url: url.clone(),
                    message,
                })?;
            Ok((snapshot, Source::Daemon(url)))
        }
        Err(e) => Err(e.into()),
    }
}

/// `http://ADDR/api/status` for a listen address; a wildcard address is asked on loopback.
pub fn status_url(listen: &str) -> String {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(mut a) => {
            if a.ip().is_unspecified() {
                a.set_ip(match a {
                    std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            format!("http://{a}/api/status")
        }
        Err(_) => format!("http://{listen}/api/status"),
    }
}

async fn from_daemon(url: &str) -> Result<StoreSnapshot, String> {
    let client = reqwest::Client::builder()
        .timeout(DAEMON_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(|e| e.to_string())?;
    let response = client.get(url).send().await.map_err(|e| {
        if e.is_connect() {
            "connection refused".to_string()
        } else if e.is_timeout() {
            format!("no answer in {} s", DAEMON_TIMEOUT.as_secs())
        } else {
            e.to_string()
        }
    })?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    serde_json::from_slice::<StoreSnapshot>(&body).map_err(|e| format!("unexpected answer: {e}"))
}

/// One subscriber's digest situation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberStatus {
    pub email: String,
    /// `daily 08:00 Europe/Vienna`, `weekly Mon 08:00 UTC`.
    pub schedule: String,
    /// The last digest the SMTP server accepted: its period.
    pub last_sent: Option<String>,
    /// `Mon 2026-03-30 08:00 CEST (in 17h 5m)`, `2026-03-30 due now`, `unsubscribed 2d 1h ago`...
    pub next: String,
}

/// Each configured subscriber's next digest, from the schedule and the ledger files (read
/// only; a ledger that cannot be read is shown as such).
pub fn subscribers(config: &Config, now: DateTime<Utc>) -> Vec<SubscriberStatus> {
    let dir = crate::digest::state_dir(&config.store.path).join("ledger");
    // FileLedger::new creates its folder: only use it when the folder is already there.
    let ledger = dir
        .is_dir()
        .then(|| crate::digest::FileLedger::new(&dir).ok())
        .flatten();
    config
        .subscribers
        .iter()
        .map(|s| {
            let schedule = DigestSchedule::from_subscriber(s);
            let when = format!("{:02}:{:02} {}", s.at.0, s.at.1, s.timezone);
            let schedule_text = match s.frequency {
                Frequency::Daily => format!("daily {when}"),
                Frequency::Weekly => format!("weekly {} {when}", s.weekday),
            };
            let loaded: Result<SubscriberLedger, String> = match &ledger {
                Some(l) => l.load(&s.email).map_err(|e| e.to_string()),
                None => Ok(SubscriberLedger::default()),
            };
            let (last_sent, next) = match loaded {
                Err(e) => (None, format!("cannot read ledger: {e}")),
                Ok(l) => (
                    l.last_sent.as_ref().map(|d| d.period.clone()),
                    next_digest(&l, &schedule, now),
                ),
            };
            SubscriberStatus {
                email: s.email.clone(),
                schedule: schedule_text,
                last_sent,
                next,
            }
        })
        .collect()
}

fn next_digest(l: &SubscriberLedger, schedule: &DigestSchedule, now: DateTime<Utc>) -> String {
    use crate::digest::DeliveryState;
    if let Some(at) = l.unsubscribed {
        return format!("unsubscribed {}", ago(at, now));
    }
    if let Some(d) = l.open_digest() {
        return match d.state {
            DeliveryState::Sending => format!("{} being sent", d.period),
            _ if d.attempts > 0 => format!(
                "{} retrying after {} attempts ({})",
                d.period,
                d.attempts,
                clip(d.last_error.as_deref().unwrap_or("temporary failure"), 40)
            ),
            _ => format!("{} due now", d.period),
        };
    }
    if let Some(p) = schedule.pending(now, l.handled_due) {
        return format!("{} due now", p.key);
    }
    match schedule.next_due(now) {
        Some(p) => {
            let local = p.due.with_timezone(&schedule.timezone);
            let when = format!(
                "{} ({})",
                local.format("%a %Y-%m-%d %H:%M %Z"),
                until(p.due, now)
            );
            match p.frequency {
                Frequency::Daily => when,
                Frequency::Weekly => format!("{} {when}", p.key),
            }
        }
        None => "no digest time in the next days (check at and timezone)".to_string(),
    }
}

/// A feed's health word.
fn health(f: Option<&FeedSnapshot>, configured: bool) -> String {
    match f {
        _ if !configured => "not configured".into(),
        None => "never fetched".into(),
        Some(f) if f.error_count > 0 => format!("FAILING x{}", f.error_count),
        Some(f) if f.last_success.is_none() => "never fetched".into(),
        Some(_) => "ok".into(),
    }
}

/// The whole report: a summary line, the feed table, the subscriber table.
pub fn render(
    config: &Config,
    snapshot: &StoreSnapshot,
    subscribers: &[SubscriberStatus],
    source: &Source,
    now: DateTime<Utc>,
) -> String {
    let stored: BTreeMap<&str, &FeedSnapshot> =
        snapshot.feeds.iter().map(|f| (f.id.as_str(), f)).collect();
    let mut rows: Vec<(String, Option<&FeedSnapshot>, bool)> = config
        .feeds
        .iter()
        .map(|f| (f.id.clone(), stored.get(f.id.as_str()).copied(), true))
        .collect();
    for f in &snapshot.feeds {
        if !config.feeds.iter().any(|c| c.id == f.id) {
            rows.push((f.id.clone(), Some(f), false));
        }
    }
    let failing = rows
        .iter()
        .filter(|(_, f, c)| *c && f.is_some_and(|f| f.error_count > 0))
        .count();
    let never = rows
        .iter()
        .filter(|(_, f, c)| *c && f.is_none_or(|f| f.last_success.is_none() && f.error_count == 0))
        .count();
    let ok = config.feeds.len() - failing - never;

    let mut out = String::new();
    let _ = write!(
        out,
        "newsrelay: {} feeds ({ok} ok, {failing} failing, {never} never fetched), {} items, store {} on disk",
        config.feeds.len(),
        thousands(snapshot.total_items),
        bytes(snapshot.store_bytes),
    );
    if let Some(next) = next_check(&rows) {
        let _ = write!(out, ", next check {}", until(next, now));
    }
    out.push('\n');
    let _ = writeln!(out, "store: {}", config.store.path.display());
    if let Source::Daemon(url) = source {
        let _ = writeln!(out, "read from the running daemon at {url}");
    }
    out.push('\n');

    let mut table = Table::new(&[
        "FEED",
        "HEALTH",
        "ITEMS",
        "LAST SUCCESS",
        "NEXT CHECK",
        "ERRORS",
        "LAST ERROR",
    ]);
    for (id, f, configured) in &rows {
        table.row(vec![
            id.clone(),
            health(*f, *configured),
            f.map_or("0".into(), |f| thousands(f.items)),
            f.and_then(|f| f.last_success)
                .map_or("never".into(), |t| ago(t, now)),
            match f.and_then(|f| f.next_check) {
                _ if !configured => "-".into(),
                Some(t) if t > now => until(t, now),
                _ => "due now".into(),
            },
            f.map_or("0".into(), |f| f.error_count.to_string()),
            f.and_then(|f| f.last_error.as_deref())
                .filter(|_| f.is_some_and(|f| f.error_count > 0))
                .map_or(String::new(), |e| clip(e, MAX_ERROR_CHARS)),
        ]);
    }
    table.right_align(2);
    table.right_align(5);
    out.push_str(&table.render());

    if subscribers.is_empty() {
        out.push_str("\nno subscribers: digests are off\n");
    } else {
        out.push('\n');
        if config.smtp.is_none() {
            out.push_str("no [smtp] table: digests are not sent\n");
        }
        let mut t = Table::new(&["SUBSCRIBER", "SCHEDULE", "LAST SENT", "NEXT DIGEST"]);
        for s in subscribers {
            t.row(vec![
                s.email.clone(),
                s.schedule.clone(),
                s.last_sent.clone().unwrap_or_else(|| "never".into()),
                s.next.clone(),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}

fn next_check(rows: &[(String, Option<&FeedSnapshot>, bool)]) -> Option<DateTime<Utc>> {
    rows.iter()
        .filter(|(_, _, c)| *c)
        .filter_map(|(_, f, _)| f.and_then(|f| f.next_check))
        .min()
}

/// Columns padded to their widest cell, two spaces apart; no trailing spaces.
struct Table {
    rows: Vec<Vec<String>>,
    right: Vec<usize>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
            right: Vec::new(),
        }
    }
    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
    fn right_align(&mut self, column: usize) {
        self.right.push(column);
    }
    fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                let pad = widths[c].saturating_sub(cell.chars().count());
                if c > 0 {
                    line.push_str("  ");
                }
                if self.right.contains(&c) {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `512 B`, `12.3 KB`, `4.0 MB`, `1.2 GB` (powers of 1000, as `max_body` sizes are written).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `45s`, `12m`, `3h 5m`, `2d 4h`.
fn span(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if t > now {
        return format!("in {}", span(t - now));
    }
    format!("{} ago", span(now - t))
}

fn until(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if t <= now {
        return "due now".into();
    }
    format!("in {}", span(t - now))
}

/// At most `max` characters, on one line, with `...` when cut.
fn clip(s: &str, max: usize) -> String {
    let one_line = s.replace(['\r', '\n'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut out: String = one_line.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_spans_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(12_345), "12.3 KB");
        assert_eq!(bytes(4_000_000), "4.0 MB");
        assert_eq!(span(chrono::Duration::seconds(3 * 3600 + 5 * 60)), "3h 5m");
        assert_eq!(
            span(chrono::Duration::seconds(2 * 86400 + 4 * 3600)),
            "2d 4h"
        );
        assert_eq!(clip("a\nb", 10), "a b");
        assert_eq!(clip("abcdefghijk", 8), "abcde...");
    }

    #[test]
    fn table_columns_line_up() {
        let mut t = Table::new(&["A", "NUM", "C"]);
        t.row(vec!["long-name".into(), "7".into(), "x".into()]);
        t.row(vec!["b".into(), "1,234".into(), String::new()]);
        t.right_align(1);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "A            NUM  C");
        assert_eq!(lines[1], "long-name      7  x");
        assert_eq!(lines[2], "b          1,234");
    }

    #[test]
    fn wildcard_listen_is_asked_on_loopback() {
        assert_eq!(
            status_url("0.0.0.0:8080"),
            "http://127.0.0.1:8080/api/status"
        );
        assert_eq!(status_url("[::]:80"), "http://[::1]:80/api/status");
        assert_eq!(status_url("127.0.0.1:9"), "http://127.0.0.1:9/api/status");
    }
}
