//! Process metrics: counters, gauges and a latency histogram, rendered as Prometheus text.
//!
//! In: increments from fetch cycles, ingest, digests and the HTTP server. Out: the body of
//! `GET /metrics` (Prometheus text exposition format 0.0.4). Plain atomics: it must never
//! lock on a hot path, allocate per increment, or do I/O.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Upper bounds (seconds) of the fetch-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A cumulative histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds (integer, so it can be atomic).
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
    }
    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                self.buckets[i].load(Relaxed)
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Every metric the service exposes. One instance per process, shared by `Arc`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Items first stored.
    pub items_ingested: AtomicU64,
    /// Items whose content changed and were updated.
    pub items_updated: AtomicU64,
    /// Fetches by outcome.
    pub fetch_ok: AtomicU64,
    pub fetch_not_modified: AtomicU64,
    pub fetch_failed: AtomicU64,
    /// Feeds whose last fetch failed (gauge, set after each cycle).
    pub feeds_failing: AtomicU64,
    /// Completed fetch cycles.
    pub fetch_cycles: AtomicU64,
    pub fetch_latency: Histogram,
    /// HTTP responses by status class.
    pub http_2xx: AtomicU64,
    pub http_304: AtomicU64,
    pub http_4xx: AtomicU64,
    pub http_5xx: AtomicU64,
    /// Rendered-feed cache.
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    /// Digests accepted by the SMTP server, and failures.
    pub digests_sent: AtomicU64,
    pub digests_failed: AtomicU64,
    /// Requests by route, kept small: route templates only, never raw paths.
    routes: Mutex<Vec<(&'static str, u64)>>,
}

impl Metrics {
    /// Counts one HTTP response.
    pub fn record_response(&self, route: &'static str, status: u16) {
        match status {
            304 => &self.http_304,
            200..=299 => &self.http_2xx,
            400..=499 => &self.http_4xx,
            _ => &self.http_5xx,
        }
        .fetch_add(1, Relaxed);
        if let Ok(mut routes) = self.routes.lock() {
            match routes.iter_mut().find(|(r, _)| *r == route) {
                Some((_, n)) => *n += 1,
                None => routes.push((route, 1)),
            }
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        };
        counter(
            &mut out,
            "newsrelay_items_ingested_total",
            "Items first stored.",
            &self.items_ingested,
        );
        counter(
            &mut out,
            "newsrelay_items_updated_total",
            "Stored items updated after an edit.",
            &self.items_updated,
        );
        let _ = writeln!(out, "# HELP newsrelay_fetches_total Feed fetches by outcome.\n# TYPE newsrelay_fetches_total counter");
        let _ = writeln!(
            out,
            "newsrelay_fetches_total{{outcome=\"ok\"}} {}",
            self.fetch_ok.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "newsrelay_fetches_total{{outcome=\"not_modified\"}} {}",
            self.fetch_not_modified.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "newsrelay_fetches_total{{outcome=\"failed\"}} {}",
            self.fetch_failed.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP newsrelay_feeds_failing Feeds whose last fetch failed.\n# TYPE newsrelay_feeds_failing gauge\nnewsrelay_feeds_failing {}",
            self.feeds_failing.load(Relaxed)
        );
        counter(
            &mut out,
            "newsrelay_fetch_cycles_total",
            "Completed fetch cycles.",
            &self.fetch_cycles,
        );
        self.fetch_latency.render(
            &mut out,
            "newsrelay_fetch_duration_seconds",
            "Time to fetch one feed.",
        );
        let _ = writeln!(out, "# HELP newsrelay_http_responses_total HTTP responses by status class.\n# TYPE newsrelay_http_responses_total counter");
        for (class, v) in [
            ("2xx", &self.http_2xx),
            ("304", &self.http_304),
            ("4xx", &self.http_4xx),
            ("5xx", &self.http_5xx),
        ] {
            let _ = writeln!(
                out,
                "newsrelay_http_responses_total{{status=\"{class}\"}} {}",
                v.load(Relaxed)
            );
        }
        let _ = writeln!(out, "# HELP newsrelay_http_requests_total HTTP requests by route.\n# TYPE newsrelay_http_requests_total counter");
        if let Ok(routes) = self.routes.lock() {
            for (route, n) in routes.iter() {
                let _ = writeln!(
                    out,
                    "newsrelay_http_requests_total{{route=\"{route}\"}} {n}"
                );
            }
        }
        counter(
            &mut out,
            "newsrelay_feed_cache_hits_total",
            "Feed requests answered from the rendered cache.",
            &self.cache_hits,
        );
        counter(
            &mut out,
            "newsrelay_feed_cache_misses_total",
            "Feed requests that rendered.",
            &self.cache_misses,
        );
        counter(
            &mut out,
            "newsrelay_digests_sent_total",
            "Digests accepted by the SMTP server.",
            &self.digests_sent,
        );
        counter(
            &mut out,
            "newsrelay_digests_failed_total",
            "Digests that failed permanently.",
            &self.digests_failed,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.items_ingested.fetch_add(3, Relaxed);
        m.fetch_latency.observe(Duration::from_millis(30));
        m.fetch_latency.observe(Duration::from_secs(3));
        m.record_response("/feeds/{id}", 200);
        m.record_response("/feeds/{id}", 304);
        let t = m.render();
        assert!(t.contains("newsrelay_items_ingested_total 3\n"), "{t}");
        assert!(
            t.contains("newsrelay_fetch_duration_seconds_bucket{le=\"0.05\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("newsrelay_fetch_duration_seconds_bucket{le=\"5\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("newsrelay_fetch_duration_seconds_count 2\n"),
            "{t}"
        );
        assert!(
            t.contains("newsrelay_http_requests_total{route=\"/feeds/{id}\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("newsrelay_http_responses_total{status=\"304\"} 1\n"),
            "{t}"
        );
        // every sample line is `name{labels} value` or `name value`
        for line in t.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
        }
    }
}
