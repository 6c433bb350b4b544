//! The delivery ledger: one subscriber's digests as a small state machine.
//!
//! In: the subscriber's schedule, the current instant, and what the mailer reported. Out: the
//! next digest to send (new, retried, or re-sent after a crash) and the record to persist after
//! each step. Each (subscriber, period) moves pending → sending → sent (or failed on a permanent
//! refusal). Items count as delivered only when a digest reaches `sent`, that is after the SMTP
//! server accepted it; a digest found in `sending` at start is re-sent with the same
//! Message-ID, so duplicates are possible only within that crash window. Pure data: it must
//! never do I/O; [`super::FileLedger`] persists [`SubscriberLedger`] as one synced JSON file per
//! subscriber in the `digest/ledger/` folder beside the store.

use crate::item::ItemId;
use crate::schedule::{DigestPeriod, DigestSchedule};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Where one digest is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryState {
    /// Decided, not yet handed to the SMTP server (or refused temporarily and waiting).
    Pending,
    /// Being handed over; if the process stops here the digest is re-sent unchanged.
    Sending,
    /// Accepted by the SMTP server: its items are delivered.
    Sent,
    /// Refused permanently; its items stay undelivered and go in the next digest.
    Failed,
}

/// One digest for one subscriber.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// `2026-03-29` or `2026-W13`.
    pub period: String,
    /// The period's due instant (what the schedule compares with).
    pub due: DateTime<Utc>,
    /// Items first stored after this instant are in this digest (None: from the beginning).
    pub since: Option<DateTime<Utc>>,
    /// ... up to and including this one. Fixed when the digest is opened, so a re-send
    /// renders the same items.
    pub until: DateTime<Utc>,
    /// Deterministic per (subscriber, period).
    pub message_id: String,
    /// The items rendered, recorded when sending starts.
    pub item_ids: Vec<ItemId>,
    pub state: DeliveryState,
    /// Times the SMTP server refused it temporarily.
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Everything remembered about one subscriber's digests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscriberLedger {
    /// The last digest the SMTP server accepted.
    pub last_sent: Option<Delivery>,
    /// A digest not yet sent: pending, sending, or failed.
    pub current: Option<Delivery>,
    /// Due instant of the last period dealt with (sent, skipped as empty, or failed).
    pub handled_due: Option<DateTime<Utc>>,
    /// When the subscriber used the one-click unsubscribe link; no digest goes out after.
    #[serde(default)]
    pub unsubscribed: Option<DateTime<Utc>>,
}

/// What to do next for a subscriber.
#[derive(Debug, Clone, PartialEq)]
pub enum NextDigest {
    /// Nothing is due.
    Nothing,
    /// Render and send this digest (it is already in the ledger as pending or sending).
    Send {
        /// True when a previous attempt may have reached the server (crash in `sending`).
        resend: bool,
    },
}

/// A transition the state machine does not allow.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LedgerError {
    #[error("digest ledger: no open digest to move to {to}")]
    NoOpenDigest { to: &'static str },
    #[error("digest ledger: digest {period} is {from:?}, cannot move to {to}")]
    BadTransition {
        period: String,
        from: DeliveryState,
        to: &'static str,
    },
}

impl SubscriberLedger {
    /// Items first stored after this instant have not been delivered yet.
    pub fn delivered_until(&self) -> Option<DateTime<Utc>> {
        self.last_sent.as_ref().map(|d| d.until)
    }

    /// Decides what to do at `now` and opens the digest in the ledger when one is due.
    ///
    /// A digest in `sending` is re-sent as it is (same period, window, Message-ID). A pending
    /// digest is retried, or replaced by a newer period with the same start when one became
    /// due meanwhile. Otherwise the latest due period not yet handled is opened, from where the
    /// last accepted digest ended (a first digest starts one period back). With `force`
    /// the next period is opened now, ending at `now`.
    pub fn next(
        &mut self,
        schedule: &DigestSchedule,
        now: DateTime<Utc>,
        force: bool,
        message_id: impl Fn(&str) -> String,
    ) -> NextDigest {
        if self.unsubscribed.is_some() {
            return NextDigest::Nothing;
        }
        if let Some(cur) = &self.current {
            match cur.state {
                DeliveryState::Sending => return NextDigest::Send { resend: true },
                DeliveryState::Pending => {
                    let newer = schedule
                        .latest_due(now)
                        .filter(|p| p.due > cur.due)
                        .or_else(|| force.then(|| schedule.next_due(now)).flatten());
                    if let Some(p) = newer {
                        let since = cur.since;
                        let until = if force && p.due > now { now } else { p.due };
                        self.current = Some(open(&p, since, until, &message_id));
                    }
                    return NextDigest::Send { resend: false };
                }
                DeliveryState::Sent | DeliveryState::Failed => {}
            }
        }
        let period = if force {
            schedule
                .pending(now, self.handled_due)
                .or_else(|| schedule.next_due(now))
        } else {
            schedule.pending(now, self.handled_due)
        };
        let Some(p) = period else {
            return NextDigest::Nothing;
        };
        // A failed digest's items were never delivered: the next one starts where it did.
        let failed_since = self
            .current
            .as_ref()
            .filter(|d| d.state == DeliveryState::Failed)
            .map(|d| d.since);
        let since = match failed_since {
            Some(s) => s,
            None => self
                .delivered_until()
                .or_else(|| schedule.previous(&p).map(|prev| prev.due)),
        };
        let until = if p.due > now { now } else { p.due };
        self.current = Some(open(&p, since, until, &message_id));
        NextDigest::Send { resend: false }
    }

    /// Records a one-click unsubscribe (idempotent: the first instant is kept). A digest in
    /// `sending` stays as it is; nothing new is opened.
    pub fn unsubscribe(&mut self, now: DateTime<Utc>) {
        if self.unsubscribed.is_none() {
            self.unsubscribed = Some(now);
        }
        if self
            .current
            .as_ref()
            .is_some_and(|d| d.state == DeliveryState::Pending)
        {
            self.current = None;
        }
    }

    /// The open digest, if any.
    pub fn open_digest(&self) -> Option<&Delivery> {
        self.current
            .as_ref()
            .filter(|d| matches!(d.state, DeliveryState::Pending | DeliveryState::Sending))
    }

    /// pending → sending, recording the items rendered. Persist before talking to SMTP.
    pub fn mark_sending(&mut self, item_ids: Vec<ItemId>) -> Result<(), LedgerError> {
        let cur = self.expect_state(DeliveryState::Pending, "sending", true)?;
        cur.state = DeliveryState::Sending;
        cur.item_ids = item_ids;
        Ok(())
    }

    /// sending → sent: the SMTP server accepted the digest; its items are now delivered.
    pub fn mark_sent(&mut self) -> Result<(), LedgerError> {
        let cur = self.expect_state(DeliveryState::Sending, "sent", false)?;
        cur.state = DeliveryState::Sent;
        cur.last_error = None;
        let done = self.current.take();
        self.handled_due = done.as_ref().map(|d| d.due);
        self.last_sent = done;
        Ok(())
    }

    /// sending → pending: refused temporarily; tried again on a later check.
    pub fn mark_temporary_failure(&mut self, error: &str) -> Result<(), LedgerError> {
        let cur = self.expect_state(DeliveryState::Sending, "pending", false)?;
        cur.state = DeliveryState::Pending;
        cur.attempts = cur.attempts.saturating_add(1);
        cur.last_error = Some(error.to_string());
        Ok(())
    }

    /// sending → failed: refused permanently. The period is handled; its items stay
    /// undelivered and go in the next digest.
    pub fn mark_permanent_failure(&mut self, error: &str) -> Result<(), LedgerError> {
        let cur = self.expect_state(DeliveryState::Sending, "failed", false)?;
        cur.state = DeliveryState::Failed;
        cur.last_error = Some(error.to_string());
        self.handled_due = Some(cur.due);
        Ok(())
    }

    /// pending → handled without sending: the digest had no items and empty digests are off.
    /// The start of the next digest stays where it was.
    pub fn mark_skipped_empty(&mut self) -> Result<(), LedgerError> {
        let cur = self.expect_state(DeliveryState::Pending, "skipped", false)?;
        let due = cur.due;
        self.current = None;
        self.handled_due = Some(due);
        Ok(())
    }

    fn expect_state(
        &mut self,
        from: DeliveryState,
        to: &'static str,
        also_sending: bool,
    ) -> Result<&mut Delivery, LedgerError> {
        let cur = self
            .current
            .as_mut()
            .ok_or(LedgerError::NoOpenDigest { to })?;
        let ok = cur.state == from || (also_sending && cur.state == DeliveryState::Sending);
        if ok {
            Ok(cur)
        } else {
            Err(LedgerError::BadTransition {
                period: cur.period.clone(),
                from: cur.state,
                to,
            })
        }
    }
}

fn open(
    p: &DigestPeriod,
    since: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
    message_id: &impl Fn(&str) -> String,
) -> Delivery {
    Delivery {
        period: p.key.clone(),
        due: p.due,
        since,
        until,
        message_id: message_id(&p.key),
        item_ids: Vec::new(),
        state: DeliveryState::Pending,
        attempts: 0,
        last_error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Frequency;
    use chrono::Weekday;

    fn sched() -> DigestSchedule {
        DigestSchedule {
            frequency: Frequency::Daily,
            at: (8, 0),
            weekday: Weekday::Mon,
            timezone: chrono_tz::UTC,
        }
    }
    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }
    fn mid(k: &str) -> String {
        format!("<{k}@x>")
    }

    #[test]
    fn pending_sending_sent() {
        let mut l = SubscriberLedger::default();
        let now = t("2026-03-10T09:00:00Z");
        assert_eq!(
            l.next(&sched(), now, false, mid),
            NextDigest::Send { resend: false }
        );
        let d = l.open_digest().unwrap().clone();
        assert_eq!(d.period, "2026-03-10");
        assert_eq!(d.since, Some(t("2026-03-09T08:00:00Z")));
        assert_eq!(d.until, t("2026-03-10T08:00:00Z"));
        l.mark_sending(vec![ItemId("a".into())]).unwrap();
        l.mark_sent().unwrap();
        assert_eq!(l.delivered_until(), Some(t("2026-03-10T08:00:00Z")));
        assert_eq!(l.next(&sched(), now, false, mid), NextDigest::Nothing);
        // Next day starts where the last one ended.
        l.next(&sched(), t("2026-03-11T08:00:00Z"), false, mid);
        assert_eq!(
            l.open_digest().unwrap().since,
            Some(t("2026-03-10T08:00:00Z"))
        );
    }

    #[test]
    fn crash_in_sending_resends_same_message_id() {
        let mut l = SubscriberLedger::default();
        l.next(&sched(), t("2026-03-10T09:00:00Z"), false, mid);
        l.mark_sending(vec![]).unwrap();
        let before = l.clone();
        // Restart a day later: the same digest goes again, not the newer period.
        let mut restarted = before.clone();
        assert_eq!(
            restarted.next(&sched(), t("2026-03-11T09:00:00Z"), false, mid),
            NextDigest::Send { resend: true }
        );
        assert_eq!(restarted.open_digest(), before.open_digest());
        assert_eq!(
            restarted.open_digest().unwrap().message_id,
            "<2026-03-10@x>"
        );
    }

    #[test]
    fn temporary_failure_then_newer_period_supersedes_with_same_start() {
        let mut l = SubscriberLedger::default();
        l.next(&sched(), t("2026-03-10T09:00:00Z"), false, mid);
        let since = l.open_digest().unwrap().since;
        l.mark_sending(vec![]).unwrap();
        l.mark_temporary_failure("451 try later").unwrap();
        l.next(&sched(), t("2026-03-12T09:00:00Z"), false, mid);
        let d = l.open_digest().unwrap();
        assert_eq!(d.period, "2026-03-12");
        assert_eq!(d.since, since);
        assert!(l.mark_sent().is_err(), "pending cannot jump to sent");
    }

    #[test]
    fn permanent_failure_keeps_items_for_next_digest() {
        let mut l = SubscriberLedger::default();
        l.next(&sched(), t("2026-03-10T09:00:00Z"), false, mid);
        let since = l.open_digest().unwrap().since;
        l.mark_sending(vec![]).unwrap();
        l.mark_permanent_failure("550 no such user").unwrap();
        assert_eq!(
            l.next(&sched(), t("2026-03-10T10:00:00Z"), false, mid),
            NextDigest::Nothing
        );
        l.next(&sched(), t("2026-03-11T09:00:00Z"), false, mid);
        assert_eq!(l.open_digest().unwrap().since, since);
    }

    #[test]
    fn unsubscribed_gets_nothing() {
        let mut l = SubscriberLedger::default();
        l.next(&sched(), t("2026-03-10T09:00:00Z"), false, mid);
        l.unsubscribe(t("2026-03-10T09:30:00Z"));
        l.unsubscribe(t("2026-03-10T10:00:00Z"));
        assert_eq!(l.unsubscribed, Some(t("2026-03-10T09:30:00Z")));
        assert!(l.open_digest().is_none(), "pending digest dropped");
        assert_eq!(
            l.next(&sched(), t("2026-03-12T09:00:00Z"), true, mid),
            NextDigest::Nothing
        );
        // An older record without the field still reads.
        let old: SubscriberLedger =
            serde_json::from_str(r#"{"last_sent":null,"current":null,"handled_due":null}"#)
                .unwrap();
        assert_eq!(old.unsubscribed, None);
    }

    #[test]
    fn force_opens_next_period_ending_now() {
        let mut l = SubscriberLedger::default();
        l.next(&sched(), t("2026-03-10T09:00:00Z"), false, mid);
        l.mark_sending(vec![]).unwrap();
        l.mark_sent().unwrap();
        let now = t("2026-03-10T15:00:00Z");
        assert_eq!(
            l.next(&sched(), now, true, mid),
            NextDigest::Send { resend: false }
        );
        let d = l.open_digest().unwrap();
        assert_eq!(d.period, "2026-03-11");
        assert_eq!(d.until, now);
        l.mark_sending(vec![]).unwrap();
        l.mark_sent().unwrap();
        // The scheduled 2026-03-11 digest is then already handled.
        assert_eq!(
            l.next(&sched(), t("2026-03-11T09:00:00Z"), false, mid),
            NextDigest::Nothing
        );
    }
}
