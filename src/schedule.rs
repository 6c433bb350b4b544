//! Scheduling: when each subscriber's digest is due, and which digest period that is.
//!
//! In: a subscriber's schedule (daily or weekly, local time of day, weekday, IANA zone), the
//! current instant from an injected clock, and the due instant of the last digest delivered.
//! Out: [`DigestPeriod`]s (a key such as `2026-03-29` or `2026-W13` plus the UTC instant it is
//! due). Pure arithmetic: the local time is resolved in the subscriber's zone with chrono-tz on
//! every call, never through a fixed UTC offset, so digests keep their local hour across
//! daylight-saving changes. A local time that does not exist on a day (spring change) falls to
//! the first valid instant after it; one that happens twice (autumn change) is due at its first
//! occurrence only. It must never do I/O, never read the system clock, and never loop without a
//! bound: every search here walks a fixed, small number of days or minutes.

use crate::config::{Frequency, SubscriberSettings};
use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;

/// The longest stretch of local time a zone change can skip (Pacific/Apia skipped a whole
/// day in 2011); the forward search for a valid instant stops there.
const MAX_GAP_MINUTES: u32 = 26 * 60;

/// When one subscriber's digest goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DigestSchedule {
    pub frequency: Frequency,
    /// Local time of day (hour, minute).
    pub at: (u32, u32),
    /// The day of a weekly digest; ignored for daily digests.
    pub weekday: Weekday,
    pub timezone: Tz,
}

/// One digest's period: which digest it is and when it is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestPeriod {
    /// `2026-03-29` for a daily digest, `2026-W13` (ISO week) for a weekly one.
    pub key: String,
    /// The local date the digest is due on.
    pub local_date: NaiveDate,
    /// The instant it is due: the local time resolved in the subscriber's zone on that date.
    pub due: DateTime<Utc>,
    pub frequency: Frequency,
}

impl DigestPeriod {
    /// A short human label: `week 13` or `29 Mar 2026`.
    pub fn label(&self) -> String {
        match self.frequency {
            Frequency::Weekly => format!("week {}", self.local_date.iso_week().week()),
            Frequency::Daily => self.local_date.format("%-d %b %Y").to_string(),
        }
    }
}

impl DigestSchedule {
    pub fn from_subscriber(s: &SubscriberSettings) -> Self {
        DigestSchedule {
            frequency: s.frequency,
            at: s.at,
            weekday: s.weekday,
            timezone: s.timezone,
        }
    }

    /// The instant the digest is due on `local_date`: `at` on that date in the zone. A local
    /// time skipped by a change resolves to the first valid minute after it; a repeated one to
    /// its earlier occurrence. None only if the zone has no valid minute for 26 hours after.
    pub fn due_on(&self, local_date: NaiveDate) -> Option<DateTime<Utc>> {
        let time = NaiveTime::from_hms_opt(self.at.0, self.at.1, 0)?;
        resolve_local(self.timezone, local_date.and_time(time))
    }

    /// The period due on `local_date`, if a digest is due on that date at all (weekly digests
    /// only on their weekday).
    pub fn period_on(&self, local_date: NaiveDate) -> Option<DigestPeriod> {
        if self.frequency == Frequency::Weekly && local_date.weekday() != self.weekday {
            return None;
        }
        let due = self.due_on(local_date)?;
        let key = match self.frequency {
            Frequency::Daily => local_date.format("%Y-%m-%d").to_string(),
            Frequency::Weekly => {
                let w = local_date.iso_week();
                format!("{}-W{:02}", w.year(), w.week())
            }
        };
        Some(DigestPeriod {
            key,
            local_date,
            due,
            frequency: self.frequency,
        })
    }

    /// The most recent period whose due instant is at or before `now`.
    pub fn latest_due(&self, now: DateTime<Utc>) -> Option<DigestPeriod> {
        let today = now.with_timezone(&self.timezone).date_naive();
        // A weekly digest is due at most 7 days back; two more cover a due instant pushed
        // past `now` by a gap and zones that skipped a day.
        (0..10)
            .filter_map(|back| today.checked_sub_signed(Duration::days(back)))
            .filter_map(|d| self.period_on(d))
            .find(|p| p.due <= now)
    }

    /// The first period whose due instant is after `now`: when the daemon next needs to look.
    pub fn next_due(&self, now: DateTime<Utc>) -> Option<DigestPeriod> {
        let today = now.with_timezone(&self.timezone).date_naive();
        (-1..10)
            .filter_map(|ahead| today.checked_add_signed(Duration::days(ahead)))
            .filter_map(|d| self.period_on(d))
            .find(|p| p.due > now)
    }

    /// The period before `period` (the one whose items a first digest starts from).
    pub fn previous(&self, period: &DigestPeriod) -> Option<DigestPeriod> {
        self.latest_due(period.due - Duration::seconds(1))
    }

    /// What to send now: the latest due period, unless the last delivered digest was due at or
    /// after it. After downtime this is one digest (the latest), not one per missed period.
    /// `last_delivered_due` is the due instant of the last digest the SMTP server accepted;
    /// comparing instants (not keys) stays right when a subscriber switches frequency.
    pub fn pending(
        &self,
        now: DateTime<Utc>,
        last_delivered_due: Option<DateTime<Utc>>,
    ) -> Option<DigestPeriod> {
        let latest = self.latest_due(now)?;
        match last_delivered_due {
            Some(last) if last >= latest.due => None,
            _ => Some(latest),
        }
    }
}

/// The next instant after `now` at which any subscriber's digest becomes due: when a daemon
/// needs to wake up for digests (it may also wake every `digest.check_every` to retry).
/// Computed afresh on every call, so a daylight-saving change never shifts it.
pub fn next_digest_due(
    subscribers: &[SubscriberSettings],
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    subscribers
        .iter()
        .filter_map(|s| DigestSchedule::from_subscriber(s).next_due(now))
        .map(|p| p.due)
        .min()
}

/// Resolves a local wall-clock time in `tz` to an instant, as [`DigestSchedule::due_on`] says.
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut t = local;
    for _ in 0..=MAX_GAP_MINUTES {
        match tz.from_local_datetime(&t) {
            LocalResult::Single(x) => return Some(x.with_timezone(&Utc)),
            LocalResult::Ambiguous(a, b) => {
                return Some(a.min(b).with_timezone(&Utc));
            }
            LocalResult::None => t = t.checked_add_signed(Duration::minutes(1))?,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vienna(frequency: Frequency, at: (u32, u32)) -> DigestSchedule {
        DigestSchedule {
            frequency,
            at,
            weekday: Weekday::Mon,
            timezone: chrono_tz::Europe::Vienna,
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn ordinary_day_uses_zone_offset_of_that_day() {
        let s = vienna(Frequency::Daily, (8, 0));
        let winter = s
            .due_on(NaiveDate::from_ymd_opt(2026, 1, 15).unwrap())
            .unwrap();
        let summer = s
            .due_on(NaiveDate::from_ymd_opt(2026, 7, 15).unwrap())
            .unwrap();
        assert_eq!(winter, utc("2026-01-15T07:00:00Z"));
        assert_eq!(summer, utc("2026-07-15T06:00:00Z"));
    }

    #[test]
    fn skipped_and_repeated_local_times() {
        let s = vienna(Frequency::Daily, (2, 30));
        let spring = s
            .due_on(NaiveDate::from_ymd_opt(2026, 3, 29).unwrap())
            .unwrap();
        assert_eq!(spring, utc("2026-03-29T01:00:00Z"), "03:00 CEST");
        let autumn = s
            .due_on(NaiveDate::from_ymd_opt(2026, 10, 25).unwrap())
            .unwrap();
        assert_eq!(autumn, utc("2026-10-25T00:30:00Z"), "first 02:30, CEST");
    }

    #[test]
    fn weekly_key_is_iso_week() {
        let mut s = vienna(Frequency::Weekly, (9, 0));
        s.weekday = Weekday::Fri;
        let p = s.latest_due(utc("2026-03-29T12:00:00Z")).unwrap();
        assert_eq!(p.key, "2026-W13");
        assert_eq!(p.local_date, NaiveDate::from_ymd_opt(2026, 3, 27).unwrap());
        assert_eq!(p.due, utc("2026-03-27T08:00:00Z"));
        assert_eq!(p.label(), "week 13");
    }

    #[test]
    fn earliest_next_due_over_subscribers() {
        let sub = |tz: Tz, at: (u32, u32)| SubscriberSettings {
            email: "a@example.org".into(),
            name: None,
            programmes: Vec::new(),
            initiatives: Vec::new(),
            regions: Vec::new(),
            frequency: Frequency::Daily,
            at,
            weekday: Weekday::Mon,
            timezone: tz,
        };
        let subs = [
            sub(chrono_tz::Europe::Vienna, (8, 0)),
            sub(chrono_tz::America::New_York, (6, 0)),
        ];
        // On 8 March 2026 New York has changed to EDT (06:00 = 10:00 UTC), Vienna has not.
        let now = utc("2026-03-08T08:00:00Z");
        assert_eq!(
            next_digest_due(&subs, now),
            Some(utc("2026-03-08T10:00:00Z"))
        );
        assert_eq!(next_digest_due(&[], now), None);
    }

    #[test]
    fn next_due_is_after_now() {
        let s = vienna(Frequency::Daily, (8, 0));
        let n = s.next_due(utc("2026-03-28T07:00:00Z")).unwrap();
        assert_eq!(n.key, "2026-03-29");
        assert_eq!(n.due, utc("2026-03-29T06:00:00Z"));
    }
}
