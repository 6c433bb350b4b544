//! The pure fetch policy: what one fetch result changes in a feed's [`FeedState`] and when the
//! feed is next due.
//!
//! In: the stored state, the fetch result, the feed's own hints (RSS `ttl`, `skipHours`,
//! `skipDays`), the configured interval, the current time and a seed. Out: the updated state
//! (validators, error count, last error, redirect tracking, `next_check`). It must never do I/O,
//! read the clock or a global random source (the same inputs always give the same state), or
//! schedule a feed sooner than its server asked.

use super::{FetchError, FetchOutcome, ResponseMeta};
use crate::item::FeedState;
use crate::parse::FeedMeta;
use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use std::time::Duration;

/// A permanent redirect is adopted after it was seen on this many consecutive fetches.
pub const REDIRECT_ADOPT_AFTER: u32 = 3;
/// The longest backoff: a failing feed is still probed at least this often.
pub const BACKOFF_CAP: Duration = Duration::from_secs(24 * 3600);
/// The smallest backoff step, for feeds configured with a very short interval.
pub const BACKOFF_MIN: Duration = Duration::from_secs(60);
/// Backoff delays are spread over `[(1 - BACKOFF_JITTER) * d, d]`.
pub const BACKOFF_JITTER: f64 = 0.2;
/// Feed and cache hints (ttl, max-age) are honoured up to this long; longer ones are clamped
/// so a feed with an absurd hint is still polled daily.
pub const HINT_CAP: Duration = Duration::from_secs(24 * 3600);
/// `Retry-After` is honoured up to this long.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(7 * 24 * 3600);
/// The last error is stored up to this many bytes.
const LAST_ERROR_MAX: usize = 500;

/// Polling hints a feed gives about itself, taken from the last parsed document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedHints {
    /// RSS `ttl`: minutes the feed may be cached before it is fetched again.
    pub ttl_minutes: Option<u32>,
    /// RSS `skipHours`: UTC hours (0..=23) during which the feed should not be fetched.
    pub skip_hours: Vec<u8>,
    /// RSS `skipDays`: weekdays (UTC) on which the feed should not be fetched.
    pub skip_days: Vec<Weekday>,
}

impl FeedHints {
    /// The hints of a parsed feed. Unknown day names and hours over 23 are ignored.
    pub fn from_meta(meta: &FeedMeta) -> FeedHints {
        FeedHints {
            ttl_minutes: meta.ttl_minutes,
            skip_hours: meta
                .skip_hours
                .iter()
                .copied()
                .filter(|h| *h < 24)
                .collect(),
            skip_days: meta
                .skip_days
                .iter()
                .filter_map(|d| d.trim().parse::<Weekday>().ok())
                .collect(),
        }
    }
}

/// Folds one fetch result into the feed's state and sets `next_check`.
///
/// - Success (a body or not-modified): the error count is cleared, validators are updated
///   (a 304 without new validators keeps the stored ones), permanent redirects are tracked and
///   adopted into `moved_to` after [`REDIRECT_ADOPT_AFTER`] consecutive sightings, and the next
///   check is `now + max(feed_interval, ttl, Cache-Control max-age)`.
/// - Failure: `error_count` grows, `last_error` records the one-line error, and the next check
///   is an exponential backoff with deterministic jitter ([`backoff_delay`]), never sooner than
///   a `Retry-After` the server sent. A failure neither confirms nor breaks a redirect streak.
///
/// Either way the next check is then moved out of the feed's `skipHours` and `skipDays`.
pub fn apply_outcome(
    state: &mut FeedState,
    result: &Result<FetchOutcome, FetchError>,
    hints: &FeedHints,
    feed_interval: Duration,
    now: DateTime<Utc>,
    rng_seed: u64,
) {
    state.last_fetch = Some(now);
    let delay = match result {
        Ok(outcome) => {
            let meta = match outcome {
                FetchOutcome::Modified(feed) => {
                    state.etag = feed.meta.etag.clone();
                    state.last_modified = feed.meta.last_modified.clone();
                    &feed.meta
                }
                FetchOutcome::NotModified(meta) => {
                    if meta.etag.is_some() {
                        state.etag = meta.etag.clone();
                    }
                    if meta.last_modified.is_some() {
                        state.last_modified = meta.last_modified.clone();
                    }
                    meta
                }
            };
            state.last_success = Some(now);
            state.error_count = 0;
            state.last_error = None;
            track_permanent_redirect(state, meta);
            success_delay(feed_interval, hints, meta.cache_max_age)
        }
        Err(error) => {
            state.error_count = state.error_count.saturating_add(1);
            state.last_error = Some(one_line_truncated(&error.to_string(), LAST_ERROR_MAX));
            let backoff = backoff_delay(state.error_count, feed_interval, rng_seed);
            match error.retry_after() {
                Some(ra) => backoff.max(ra.delay_from(now).min(RETRY_AFTER_CAP)),
                None => backoff,
            }
        }
    };
    let due = add_duration(now, delay);
    state.next_check = Some(skip_closed_windows(due, hints));
}

/// The delay after a successful fetch: the feed interval, raised to the feed's `ttl` and the
/// response's `Cache-Control: max-age` (each clamped to [`HINT_CAP`]).
pub fn success_delay(
    feed_interval: Duration,
    hints: &FeedHints,
    cache_max_age: Option<Duration>,
) -> Duration {
    let ttl = hints
        .ttl_minutes
        .map(|m| Duration::from_secs(u64::from(m) * 60).min(HINT_CAP))
        .unwrap_or(Duration::ZERO);
    let max_age = cache_max_age.unwrap_or(Duration::ZERO).min(HINT_CAP);
    feed_interval.max(ttl).max(max_age)
}

/// The backoff after `error_count` consecutive failures (1 = first failure).
///
/// The step is `max(feed_interval, BACKOFF_MIN) * 2^(error_count - 1)`, capped at
/// [`BACKOFF_CAP`], then reduced by a jitter fraction in `[0, BACKOFF_JITTER)` drawn from
/// `rng_seed` and `error_count`: the same seed and count always give the same delay, and feeds
/// with different seeds spread out instead of retrying together.
pub fn backoff_delay(error_count: u32, feed_interval: Duration, rng_seed: u64) -> Duration {
    let base = feed_interval.max(BACKOFF_MIN);
    let exponent = error_count.saturating_sub(1).min(32);
    let step = base
        .checked_mul(1u32 << exponent.min(31))
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP);
    let fraction = unit_fraction(splitmix64(rng_seed ^ u64::from(error_count)));
    step.mul_f64(1.0 - BACKOFF_JITTER * fraction)
}

/// Moves `due` forward, hour by hour, until it is outside the feed's `skipHours` and
/// `skipDays` (UTC). A list that closes every hour or every day is ignored (the feed could
/// never be fetched otherwise). At most eight days of hours are examined.
pub fn skip_closed_windows(due: DateTime<Utc>, hints: &FeedHints) -> DateTime<Utc> {
    let hour_closed = |h: u32| hints.skip_hours.iter().any(|s| u32::from(*s) == h);
    let day_closed = |d: Weekday| hints.skip_days.contains(&d);
    let honour_hours = (0..24).any(|h| !hour_closed(h));
    let honour_days = [
        Weekday::Mon,
        Weekday::Tue,
        Weekday::Wed,
        Weekday::Thu,
        Weekday::Fri,
        Weekday::Sat,
        Weekday::Sun,
    ]
    .iter()
    .any(|d| !day_closed(*d));
    let closed = |t: DateTime<Utc>| {
        (honour_hours && hour_closed(t.hour())) || (honour_days && day_closed(t.weekday()))
    };
    if !closed(due) {
        return due;
    }
    // Start of the next hour, then whole hours until an open one.
    let mut t = start_of_hour(due);
    for _ in 0..(24 * 8) {
        t += chrono::Duration::hours(1);
        if !closed(t) {
            return t;
        }
    }
    due
}

fn start_of_hour(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

fn track_permanent_redirect(state: &mut FeedState, meta: &ResponseMeta) {
    match &meta.permanent_redirect {
        Some(target) => {
            let seen = match &state.redirect_candidate {
                Some((candidate, n)) if candidate == target => n.saturating_add(1),
                _ => 1,
            };
            if seen >= REDIRECT_ADOPT_AFTER {
                state.moved_to = Some(target.clone());
                state.redirect_candidate = None;
            } else {
                state.redirect_candidate = Some((target.clone(), seen));
            }
        }
        None => state.redirect_candidate = None,
    }
}

fn add_duration(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
}

fn one_line_truncated(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// SplitMix64: a tiny, well-mixed, deterministic hash of a seed.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Maps 64 random bits to `[0, 1)`.
fn unit_fraction(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_fraction_in_unit_interval() {
        for seed in 0..1000u64 {
            let f = unit_fraction(splitmix64(seed));
            assert!((0.0..1.0).contains(&f), "{f}");
        }
        assert!(unit_fraction(u64::MAX) < 1.0);
    }

    #[test]
    fn last_error_is_one_bounded_line() {
        let long = format!("a\nb{}", "é".repeat(600));
        let t = one_line_truncated(&long, LAST_ERROR_MAX);
        assert!(!t.contains('\n'));
        assert!(t.len() <= LAST_ERROR_MAX + '…'.len_utf8());
    }
}
