//! Date parsing: the date strings feeds really contain → a UTC instant.
//!
//! In: RFC 822 and its broken variants, W3C/ISO 8601, and the other forms seen in the wild.
//! Out: `DateTime<Utc>` or `None` when the string is not a date. It must never panic on input.

use chrono::{DateTime, Utc};

/// Parses a feed date to UTC; `None` when it is not a recognisable date.
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    DateTime::parse_from_rfc2822(s)
        .or_else(|_| DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|d| d.with_timezone(&Utc))
}
