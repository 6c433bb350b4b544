//! Server hints read from response headers: `Retry-After`, `Cache-Control: max-age` and HTTP
//! dates.
//!
//! In: header values as text. Out: typed hints ([`RetryAfter`], a max-age `Duration`) or
//! `None` when a value is absent or malformed. It must never do I/O or panic on any input; a
//! malformed hint is ignored, never an error, because a bad hint must not fail a good fetch.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use std::time::Duration;

/// What a `Retry-After` header asked for: a delay, or a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: 120`.
    Seconds(u64),
    /// `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`.
    At(DateTime<Utc>),
}

impl RetryAfter {
    /// Parses a `Retry-After` value (delay-seconds or HTTP-date).
    pub fn parse(value: &str) -> Option<RetryAfter> {
        let v = value.trim();
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            // Absurdly long digit strings saturate instead of failing.
            return Some(RetryAfter::Seconds(v.parse().unwrap_or(u64::MAX)));
        }
        parse_http_date(v).map(RetryAfter::At)
    }

    /// The delay from `now` this hint asks for (zero when the moment has passed).
    pub fn delay_from(&self, now: DateTime<Utc>) -> Duration {
        match *self {
            RetryAfter::Seconds(s) => Duration::from_secs(s),
            RetryAfter::At(at) => (at - now).to_std().unwrap_or(Duration::ZERO),
        }
    }
}

impl std::fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RetryAfter::Seconds(s) => write!(f, "{s}s"),
            RetryAfter::At(at) => f.write_str(&format_http_date(*at)),
        }
    }
}

/// The `max-age` of a `Cache-Control` value, if there is one and caching is not refused.
/// `no-store` and `no-cache` give `None`: the server asked for no floor.
pub fn cache_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',') {
        let d = directive.trim();
        let (name, arg) = match d.split_once('=') {
            Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
            None => (d, None),
        };
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return None;
        }
        if name.eq_ignore_ascii_case("max-age") {
            let secs = arg?;
            if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            max_age = Some(Duration::from_secs(secs.parse().unwrap_or(u64::MAX)));
        }
    }
    max_age
}

/// Parses an HTTP date in any of the three forms RFC 9110 requires recipients to accept:
/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`)
/// and asctime (`Sun Nov  6 08:49:37 1994`).
pub fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    let v = value.trim();
    if let Ok(d) = DateTime::parse_from_rfc2822(v) {
        return Some(d.with_timezone(&Utc));
    }
    if let Some((_, rest)) = v.split_once(", ") {
        if let Ok(n) = NaiveDateTime::parse_from_str(rest, "%d-%b-%y %H:%M:%S GMT") {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    let squeezed: String = v.split_whitespace().collect::<Vec<_>>().join(" ");
    NaiveDateTime::parse_from_str(&squeezed, "%a %b %e %H:%M:%S %Y")
        .ok()
        .map(|n| Utc.from_utc_datetime(&n))
}

/// Formats a moment as an IMF-fixdate, the form servers expect in `If-Modified-Since`.
pub fn format_http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(RetryAfter::parse(" 120 "), Some(RetryAfter::Seconds(120)));
        assert_eq!(
            RetryAfter::parse("99999999999999999999999"),
            Some(RetryAfter::Seconds(u64::MAX))
        );
        let at = utc(1994, 11, 6, 8, 49, 37);
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(RetryAfter::parse(form), Some(RetryAfter::At(at)), "{form}");
        }
        assert_eq!(RetryAfter::parse("soon"), None);
        assert_eq!(RetryAfter::parse(""), None);
        assert_eq!(RetryAfter::parse("-5"), None);
    }

    #[test]
    fn retry_after_delay_is_never_negative() {
        let now = utc(2026, 1, 1, 12, 0, 0);
        let past = RetryAfter::At(utc(2026, 1, 1, 11, 0, 0));
        assert_eq!(past.delay_from(now), Duration::ZERO);
        let future = RetryAfter::At(utc(2026, 1, 1, 12, 5, 0));
        assert_eq!(future.delay_from(now), Duration::from_secs(300));
    }

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            cache_max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            cache_max_age("MAX-AGE=\"60\""),
            Some(Duration::from_secs(60))
        );
        assert_eq!(cache_max_age("max-age=600, no-cache"), None);
        assert_eq!(cache_max_age("no-store"), None);
        assert_eq!(cache_max_age("max-age=ten"), None);
        assert_eq!(cache_max_age("public"), None);
    }

    #[test]
    fn http_date_round_trip() {
        let at = utc(2026, 3, 9, 7, 5, 3);
        let text = format_http_date(at);
        assert_eq!(text, "Mon, 09 Mar 2026 07:05:03 GMT");
        assert_eq!(parse_http_date(&text), Some(at));
    }
}
