//! Digests: which items each subscriber gets, rendering them, sending, and the delivery ledger.
//!
//! In: subscribers from config, items first stored in a window (through [`DigestItems`]), each
//! subscriber's [`SubscriberLedger`] (through [`LedgerStore`]), a clock value and a
//! [`Mailer`]. Out: digests delivered once per (subscriber, period) and a [`RunReport`] line
//! per subscriber. Submodules: `render` (content and message), `mailer` (SMTP and `.eml`
//! senders), `ledger` (the pending → sending → sent state machine); the due arithmetic is in
//! [`crate::schedule`]. It must never mark an item delivered before the SMTP server accepted
//! the message, and one subscriber's failure never stops the others.

pub mod ledger;
pub mod mailer;
pub mod render;

pub use ledger::{Delivery, DeliveryState, LedgerError, NextDigest, SubscriberLedger};
pub use mailer::{DirMailer, Mailer, RetryPolicy, SendError, SmtpMailer, SmtpOptions};
pub use render::{
    build_content, compose, matches, render_html, render_parts, render_text, subject,
    DigestContent, DigestEntry, DigestFrame, DigestGroup, DisplayNames, MessageFacts,
    PreparedEntry, PreparedWindow, RenderedParts, Selection, TextStyle, WindowBuilder,
};

use crate::config::{DigestSettings, SubscriberSettings};
use crate::item::{Item, ItemId};
use crate::schedule::DigestSchedule;
use base64::Engine;
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use thiserror::Error;

/// A digest error, one readable line naming the subscriber or file concerned.
#[derive(Debug, Error)]
pub enum DigestError {
    #[error("digest for {to}: cannot compose message: {detail}")]
    Compose { to: String, detail: String },
    #[error("digest for {to}: {detail} is not a valid mailbox")]
    Address { to: String, detail: String },
    #[error("digest for {subscriber}: no period is due or next for this schedule")]
    NoPeriod { subscriber: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("digest key file {path}: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    #[error("digest store: {0}")]
    Store(String),
}

// ---------------------------------------------------------------------------------------------
// Keys: unsubscribe tokens and Message-IDs.

/// The secret behind unsubscribe tokens and Message-IDs: HMAC-SHA256 over the subscriber's
/// lower-cased email, so a token is verifiable without storing it and reveals nothing.
pub struct DigestKey {
    key: ring::hmac::Key,
}

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

/// Length of a generated secret in bytes.
const SECRET_LEN: usize = 32;

impl DigestKey {
    pub fn new(secret: &[u8]) -> Self {
        DigestKey {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        }
    }

    /// Reads the secret from `path`, creating it (32 random bytes, mode 0600) when missing.
    ///
    /// Creation is atomic and durable: the secret is written and synced under a temporary
    /// name, then linked into place (which fails if another process got there first, whose key
    /// is then read and used) and the folder synced. A process killed at any point leaves
    /// either no key or the whole key, never a short file, so Message-IDs and unsubscribe
    /// tokens stay what they were.
    pub fn load_or_create(path: &Path) -> Result<Self, DigestError> {
        let err = |detail: String| DigestError::KeyFile {
            path: path.to_path_buf(),
            detail,
        };
        let read = || match std::fs::read(path) {
            Ok(bytes) if bytes.len() >= 16 => Ok(Some(DigestKey::new(&bytes))),
            Ok(_) => Err(err(
                "shorter than 16 bytes; delete it to make a new one".into()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(e.to_string())),
        };
        if let Some(key) = read()? {
            return Ok(key);
        }
        let mut secret = [0u8; SECRET_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| err("no system randomness to create it".into()))?;
        let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| err(e.to_string()))?;
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        static ATTEMPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tmp_name.push(format!(".{}-{attempt}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        let _ = std::fs::remove_file(&tmp);
        write_private(&tmp, &secret).map_err(|e| err(e.to_string()))?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                std::fs::File::open(&dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| err(format!("cannot sync its folder: {e}")))?;
                Ok(DigestKey::new(&secret))
            }
            // Another process created it meanwhile: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                read()?.ok_or_else(|| err("vanished while being created".into()))
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    fn mac(&self, purpose: &str, email: &str) -> ring::hmac::Tag {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(purpose.as_bytes());
        ctx.update(b"\0");
        ctx.update(email.trim().to_ascii_lowercase().as_bytes());
        ctx.sign()
    }

    /// The subscriber's unsubscribe token (43 URL-safe characters).
    pub fn unsubscribe_token(&self, email: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.mac("unsubscribe", email))
    }

    /// True when `token` is this subscriber's token (constant-time comparison).
    pub fn verify_unsubscribe(&self, token: &str, email: &str) -> bool {
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.trim()) else {
            return false;
        };
        let mut ctx_msg = Vec::with_capacity(email.len() + 13);
        ctx_msg.extend_from_slice(b"unsubscribe\0");
        ctx_msg.extend_from_slice(email.trim().to_ascii_lowercase().as_bytes());
        ring::hmac::verify(&self.key, &ctx_msg, &tag).is_ok()
    }

    /// The subscriber a token belongs to, if any (for `GET/POST /unsubscribe/{token}`).
    pub fn subscriber_for_token<'a>(
        &self,
        token: &str,
        subscribers: &'a [SubscriberSettings],
    ) -> Option<&'a SubscriberSettings> {
        subscribers
            .iter()
            .find(|s| self.verify_unsubscribe(token, &s.email))
    }

    /// `{base_url}/unsubscribe/{token}`.
    pub fn unsubscribe_url(&self, base_url: &str, email: &str) -> String {
        format!(
            "{}/unsubscribe/{}",
            base_url.trim_end_matches('/'),
            self.unsubscribe_token(email)
        )
    }

    /// `<digest.{period}.{keyed hash of the email}@{sender domain}>`: the same for every
    /// (re-)send of one subscriber's digest for one period.
    pub fn message_id(&self, email: &str, period: &str, from: &Mailbox) -> String {
        let tag = self.mac("message-id", email);
        let mut hex = String::with_capacity(32);
        for b in tag.as_ref().iter().take(16) {
            hex.push_str(&format!("{b:02x}"));
        }
        let period: String = period
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        format!("<digest.{period}.{hex}@{}>", from.email.domain())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

// ---------------------------------------------------------------------------------------------
// Seams to the store.

/// Where a digest's items come from: the store's items by first-stored time.
pub trait DigestItems {
    /// Hands `visit` each item first stored after `after` (None: from the beginning) and at
    /// or before `until`, one at a time, so a caller keeps only what it needs.
    fn visit_first_stored_between(
        &self,
        after: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        visit: &mut dyn FnMut(Item),
    ) -> Result<(), DigestError>;

    /// The same items collected (tests, tools; a digest run reads windows through
    /// [`DigestItems::visit_first_stored_between`]).
    fn first_stored_between(
        &self,
        after: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Item>, DigestError> {
        let mut out = Vec::new();
        self.visit_first_stored_between(after, until, &mut |i| out.push(i))?;
        Ok(out)
    }
}

/// Where ledgers are kept, keyed by lower-cased email ([`FileLedger`] in the `digest/ledger/`
/// folder beside the store). `save` must be durable when it returns (the crash guarantees
/// rest on it).
pub trait LedgerStore {
    fn load(&self, email: &str) -> Result<SubscriberLedger, DigestError>;
    fn save(&self, email: &str, ledger: &SubscriberLedger) -> Result<(), DigestError>;
}

/// The most items one digest window reads from the store: the newest first stored (a digest
/// shows at most `digest.max_items` of them anyway).
pub const MAX_WINDOW_ITEMS: usize = 20_000;

impl DigestItems for crate::store::Store {
    /// Walks the store's time index newest first from `until`, page by page with an exact
    /// cursor, and stops at `after` or at [`MAX_WINDOW_ITEMS`]. One page of items is in
    /// memory at a time.
    fn visit_first_stored_between(
        &self,
        after: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        visit: &mut dyn FnMut(Item),
    ) -> Result<(), DigestError> {
        use crate::store::{Cursor, Scope, MAX_PAGE};
        let mut visited = 0usize;
        // The index has microsecond keys: start just past `until`, compare exactly below.
        let mut cursor = Cursor {
            first_seen: until + chrono::Duration::microseconds(1),
            id: ItemId(String::new()),
        };
        for _ in 0..=(MAX_WINDOW_ITEMS / MAX_PAGE + 1) {
            let page = self
                .latest(&Scope::All, Some(&cursor), MAX_PAGE)
                .map_err(|e| DigestError::Store(e.to_string()))?;
            let oldest = page.items.last().map(|i| i.first_seen);
            for item in page.items {
                if visited >= MAX_WINDOW_ITEMS {
                    break;
                }
                if item.first_seen <= until && after.is_none_or(|a| item.first_seen > a) {
                    visit(without_body(item));
                    visited += 1;
                }
            }
            let past_start = match (after, oldest) {
                (Some(a), Some(o)) => o < a,
                _ => false,
            };
            match page.next {
                Some(next) if !past_start && visited < MAX_WINDOW_ITEMS => cursor = next,
                _ => break,
            }
        }
        Ok(())
    }
}

/// A digest shows an item's title, summary, link, source, date and labels, never its full
/// content, so the content is dropped as each item is read. One preview over a 20,000-item
/// window peaked at 265 MB resident with it and 229 MB without; with windows built a page at
/// a time for their subscribers, 127 MB, nearly all of it sled's cache of the nodes read
/// (docs/fetch.md).
fn without_body(mut item: Item) -> Item {
    item.content_html = String::new();
    item.authors = Vec::new();
    item.enclosures = Vec::new();
    item
}

/// Items held in memory (previews, tests).
#[derive(Debug, Clone, Default)]
pub struct MemoryItems(pub Vec<Item>);

impl DigestItems for MemoryItems {
    fn visit_first_stored_between(
        &self,
        after: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        visit: &mut dyn FnMut(Item),
    ) -> Result<(), DigestError> {
        self.0
            .iter()
            .filter(|i| after.is_none_or(|a| i.first_seen > a) && i.first_seen <= until)
            .for_each(|i| visit(i.clone()));
        Ok(())
    }
}

/// Ledgers held in memory (previews, tests).
#[derive(Debug, Default)]
pub struct MemoryLedger(Mutex<HashMap<String, SubscriberLedger>>);

impl LedgerStore for MemoryLedger {
    fn load(&self, email: &str) -> Result<SubscriberLedger, DigestError> {
        let map = self
            .0
            .lock()
            .map_err(|_| DigestError::Store("ledger lock poisoned".into()))?;
        Ok(map
            .get(&email.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default())
    }
    fn save(&self, email: &str, ledger: &SubscriberLedger) -> Result<(), DigestError> {
        let mut map = self
            .0
            .lock()
            .map_err(|_| DigestError::Store("ledger lock poisoned".into()))?;
        map.insert(email.to_ascii_lowercase(), ledger.clone());
        Ok(())
    }
}

/// Ledgers as one JSON file per subscriber in a folder, each replaced atomically and synced
/// before `save` returns. For setups without the store's ledger tree (previews, tools).
#[derive(Debug, Clone)]
pub struct FileLedger {
    dir: PathBuf,
}

impl FileLedger {
    pub fn new(dir: &Path) -> Result<Self, DigestError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            DigestError::Store(format!(
                "cannot create ledger folder {}: {e}",
                dir.display()
            ))
        })?;
        Ok(FileLedger {
            dir: dir.to_path_buf(),
        })
    }

    /// The file for one subscriber: a hash of the lower-cased email (no address on disk names).
    fn path(&self, email: &str) -> PathBuf {
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            email.trim().to_ascii_lowercase().as_bytes(),
        );
        let mut name = String::with_capacity(70);
        for b in d.as_ref().iter().take(16) {
            name.push_str(&format!("{b:02x}"));
        }
        name.push_str(".json");
        self.dir.join(name)
    }
}

impl LedgerStore for FileLedger {
    fn load(&self, email: &str) -> Result<SubscriberLedger, DigestError> {
        let path = self.path(email);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                DigestError::Store(format!("ledger {} for {email}: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(SubscriberLedger::default()),
            Err(e) => Err(DigestError::Store(format!(
                "cannot read ledger {}: {e}",
                path.display()
            ))),
        }
    }

    /// Replaces the record atomically and durably (written and synced under a temporary name,
    /// renamed, folder synced) before returning. An unsubscribe already on disk is kept even
    /// when `ledger` was loaded before it happened: a digest run holds its copy across the
    /// SMTP exchange while the server may record a one-click unsubscribe. Saves within one
    /// process are serialised so that this read-merge-write cannot interleave.
    fn save(&self, email: &str, ledger: &SubscriberLedger) -> Result<(), DigestError> {
        use std::io::Write;
        static SAVING: Mutex<()> = Mutex::new(());
        let _one_at_a_time = SAVING.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.path(email);
        let tmp = path.with_extension("json.tmp");
        let err = |e: std::io::Error| {
            DigestError::Store(format!("cannot write ledger {}: {e}", path.display()))
        };
        let mut merged;
        let mut ledger = ledger;
        if ledger.unsubscribed.is_none() {
            if let Ok(on_disk) = self.load(email) {
                if let Some(when) = on_disk.unsubscribed {
                    merged = ledger.clone();
                    merged.unsubscribe(when);
                    ledger = &merged;
                }
            }
        }
        let bytes = serde_json::to_vec(ledger)
            .map_err(|e| DigestError::Store(format!("cannot encode ledger for {email}: {e}")))?;
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        // Make the rename itself durable before the caller reports anything.
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

/// Handles `GET/POST /unsubscribe/{token}`: finds the subscriber the token belongs to and
/// records the unsubscribe in its ledger. None when the token matches no subscriber.
pub fn unsubscribe<'a, L: LedgerStore>(
    key: &DigestKey,
    subscribers: &'a [SubscriberSettings],
    ledgers: &L,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<&'a SubscriberSettings>, DigestError> {
    let Some(sub) = key.subscriber_for_token(token, subscribers) else {
        return Ok(None);
    };
    let mut ledger = ledgers.load(&sub.email)?;
    if ledger.unsubscribed.is_none() {
        ledger.unsubscribe(now);
        ledgers.save(&sub.email, &ledger)?;
    }
    Ok(Some(sub))
}

// ---------------------------------------------------------------------------------------------
// One run over all subscribers.

/// Everything a digest run needs besides the seams.
#[derive(Debug)]
pub struct DigestContext<'a> {
    pub settings: &'a DigestSettings,
    /// The server's public base URL (unsubscribe links, "more items" link).
    pub base_url: &'a str,
    pub from: Mailbox,
    pub key: &'a DigestKey,
    pub names: &'a DisplayNames,
    pub text_style: TextStyle,
}

impl DigestContext<'_> {
    /// Subject prefix and heading: the sender's display name, else "News digest".
    pub fn title(&self) -> &str {
        match self.from.name.as_deref() {
            Some(n) if !n.trim().is_empty() => n,
            _ => "News digest",
        }
    }
}

/// What happened for one subscriber in a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    NotDue,
    /// The subscriber used the unsubscribe link.
    Unsubscribed,
    /// Accepted by the server (or written): the items are delivered.
    Sent {
        items: usize,
        message_id: String,
        resend: bool,
    },
    /// No matching items and `digest.send_empty` is off.
    SkippedEmpty,
    /// Will be tried again on a later check.
    TemporaryFailure(String),
    /// Given up for this period; the items go in the next digest.
    PermanentFailure(String),
    /// Something else went wrong (store, message); nothing was marked.
    Error(String),
}

/// One line of a run's report.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriberOutcome {
    pub email: String,
    pub period: Option<String>,
    pub outcome: Outcome,
}

/// The result of a run: one line per subscriber.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    pub subscribers: Vec<SubscriberOutcome>,
}

impl RunReport {
    pub fn sent(&self) -> usize {
        self.subscribers
            .iter()
            .filter(|s| matches!(s.outcome, Outcome::Sent { .. }))
            .count()
    }
    pub fn failed(&self) -> usize {
        self.subscribers
            .iter()
            .filter(|s| {
                matches!(
                    s.outcome,
                    Outcome::TemporaryFailure(_) | Outcome::PermanentFailure(_) | Outcome::Error(_)
                )
            })
            .count()
    }
}

/// Renders `delivery` for `sub` from the window's prepared items into a message.
pub fn render_open_digest<'w>(
    ctx: &DigestContext<'_>,
    sub: &SubscriberSettings,
    delivery: &Delivery,
    window: &'w PreparedWindow,
    now: DateTime<Utc>,
) -> Result<(lettre::Message, DigestContent<'w>), DigestError> {
    let schedule = DigestSchedule::from_subscriber(sub);
    let period = schedule
        .period_on(delivery.due.with_timezone(&sub.timezone).date_naive())
        .or_else(|| schedule.latest_due(delivery.due))
        .ok_or_else(|| DigestError::NoPeriod {
            subscriber: sub.email.clone(),
        })?;
    let content = build_content(sub, window, ctx.names, ctx.settings.max_items);
    let unsubscribe_url = ctx.key.unsubscribe_url(ctx.base_url, &sub.email);
    let frame = DigestFrame {
        title: ctx.title(),
        period: &period,
        unsubscribe_url: &unsubscribe_url,
        base_url: ctx.base_url.trim_end_matches('/'),
    };
    let parts = render_parts(&frame, &content, ctx.text_style);
    let to = mailbox_for(sub)?;
    let facts = MessageFacts {
        from: &ctx.from,
        to,
        message_id: &delivery.message_id,
        unsubscribe_url: &unsubscribe_url,
        date: now,
    };
    Ok((compose(&facts, parts)?, content))
}

/// A digest window: items first stored after `since` (None: from the beginning) up to and
/// including `until`.
type WindowKey = (Option<DateTime<Utc>>, DateTime<Utc>);

/// Most prepared entries the window cache of one run holds, over all its windows. A window is
/// built for a group of selections small enough that `selections × max_items` stays within
/// it, so one window never holds more; older windows are dropped to make room.
pub const WINDOW_ENTRY_BUDGET: usize = 20_000;

/// Prepared windows of one run. Before the run, [`WindowCache::plan`] notes which selections
/// (subscriber filters) each window will serve; a window is then read once, a page at a time,
/// keeping only the entries those selections can show, and shared by their subscribers. It is
/// dropped when no subscriber planned for it is left to come, or to stay within the budget.
struct WindowCache<'a, I> {
    items: &'a I,
    names: &'a DisplayNames,
    max_items: usize,
    budget: usize,
    /// Per window, the selections planned for it and how many of their subscribers are still
    /// to come.
    plan: HashMap<WindowKey, Vec<(Selection, usize)>>,
    /// Oldest first.
    cached: Vec<CachedWindow>,
}

struct CachedWindow {
    key: WindowKey,
    selections: Vec<Selection>,
    window: Arc<PreparedWindow>,
}

impl<'a, I: DigestItems> WindowCache<'a, I> {
    fn new(items: &'a I, names: &'a DisplayNames, max_items: usize, budget: usize) -> Self {
        WindowCache {
            items,
            names,
            max_items,
            budget,
            plan: HashMap::new(),
            cached: Vec::new(),
        }
    }

    /// Notes that `sub` will ask for the window (since, until).
    fn plan(&mut self, key: WindowKey, sub: &SubscriberSettings) {
        let selection = Selection::of(sub);
        let planned = self.plan.entry(key).or_default();
        match planned.iter_mut().find(|(s, _)| *s == selection) {
            Some((_, n)) => *n += 1,
            None => planned.push((selection, 1)),
        }
    }

    /// Entries held by the cached windows.
    fn held(&self) -> usize {
        self.cached.iter().map(|c| c.window.len()).sum()
    }

    /// True while a subscriber planned for `key` with one of `selections` is still to come.
    fn wanted(&self, key: &WindowKey, selections: &[Selection]) -> bool {
        self.plan.get(key).is_some_and(|planned| {
            planned
                .iter()
                .any(|(s, n)| *n > 0 && selections.contains(s))
        })
    }

    /// The window (since, until) prepared for `sub`'s selection.
    fn get(
        &mut self,
        since: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        sub: &SubscriberSettings,
    ) -> Result<Arc<PreparedWindow>, DigestError> {
        let key = (since, until);
        let selection = Selection::of(sub);
        if let Some((_, n)) = self
            .plan
            .get_mut(&key)
            .and_then(|p| p.iter_mut().find(|(s, _)| *s == selection))
        {
            *n = n.saturating_sub(1);
        }
        if let Some(pos) = self
            .cached
            .iter()
            .position(|c| c.key == key && c.window.covers(sub, self.max_items))
        {
            let window = Arc::clone(&self.cached[pos].window);
            if !self.wanted(&key, &self.cached[pos].selections) {
                self.cached.remove(pos);
            }
            return Ok(window);
        }
        // This selection and others still to come for the window, as many as fit the
        // budget with `max_items` entries each.
        let per_window = (self.budget / self.max_items.max(1)).max(1);
        let others: Vec<Selection> = self
            .plan
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|(s, n)| *n > 0 && *s != selection)
            .take(per_window - 1)
            .map(|(s, _)| s.clone())
            .collect();
        let mut selections = vec![selection];
        selections.extend(others);
        // Make room before reading, for as much as the new window can hold: oldest first.
        let most = selections
            .len()
            .saturating_mul(self.max_items)
            .min(MAX_WINDOW_ITEMS);
        while !self.cached.is_empty() && self.held() + most > self.budget {
            self.cached.remove(0);
        }
        let mut builder = WindowBuilder::new(selections.clone(), self.max_items, self.names);
        self.items
            .visit_first_stored_between(since, until, &mut |item| builder.offer(item))?;
        let window = Arc::new(builder.finish());
        if self.wanted(&key, &selections) {
            self.cached.push(CachedWindow {
                key,
                selections,
                window: Arc::clone(&window),
            });
        }
        Ok(window)
    }
}

fn mailbox_for(sub: &SubscriberSettings) -> Result<Mailbox, DigestError> {
    let addr = sub
        .email
        .parse::<lettre::Address>()
        .map_err(|e| DigestError::Address {
            to: sub.email.clone(),
            detail: e.to_string(),
        })?;
    Ok(Mailbox::new(sub.name.clone(), addr))
}

/// One pass over every subscriber at `now`: open what is due (or, with `force`, the next
/// period early), render it, persist `sending`, hand it to the mailer, persist the result.
/// Each subscriber is independent: a failure is reported in its line and the run goes on.
pub async fn run_digests<I, L, M>(
    ctx: &DigestContext<'_>,
    subscribers: &[SubscriberSettings],
    items: &I,
    ledgers: &L,
    mailer: &M,
    now: DateTime<Utc>,
    force: bool,
) -> RunReport
where
    I: DigestItems,
    L: LedgerStore,
    M: Mailer,
{
    let mut report = RunReport::default();
    let mut windows = WindowCache::new(
        items,
        ctx.names,
        ctx.settings.max_items,
        WINDOW_ENTRY_BUDGET,
    );
    // Which subscribers need which window, from a copy of each ledger: nothing is saved.
    // A ledger that changes before its subscriber's turn only costs a window read for it.
    for sub in subscribers {
        let Ok(mut ledger) = ledgers.load(&sub.email) else {
            continue;
        };
        let schedule = DigestSchedule::from_subscriber(sub);
        if let NextDigest::Send { .. } = ledger.next(&schedule, now, force, |_| String::new()) {
            if let Some(d) = ledger.open_digest() {
                windows.plan((d.since, d.until), sub);
            }
        }
    }
    for sub in subscribers {
        let (period, outcome) =
            match deliver_one(ctx, sub, &mut windows, ledgers, mailer, now, force).await {
                Ok(x) => x,
                Err(e) => (None, Outcome::Error(e.to_string())),
            };
        match &outcome {
            Outcome::NotDue | Outcome::Unsubscribed => {}
            Outcome::Sent { items, .. } => {
                tracing::info!(subscriber = %sub.email, period = ?period, items, "digest sent")
            }
            // Nothing new for this subscriber: expected, not a problem to warn about.
            Outcome::SkippedEmpty => {
                tracing::info!(subscriber = %sub.email, period = ?period, "digest empty, not sent")
            }
            other => {
                tracing::warn!(subscriber = %sub.email, period = ?period, outcome = ?other, "digest not sent")
            }
        }
        report.subscribers.push(SubscriberOutcome {
            email: sub.email.clone(),
            period,
            outcome,
        });
    }
    report
}

async fn deliver_one<I, L, M>(
    ctx: &DigestContext<'_>,
    sub: &SubscriberSettings,
    windows: &mut WindowCache<'_, I>,
    ledgers: &L,
    mailer: &M,
    now: DateTime<Utc>,
    force: bool,
) -> Result<(Option<String>, Outcome), DigestError>
where
    I: DigestItems,
    L: LedgerStore,
    M: Mailer,
{
    let schedule = DigestSchedule::from_subscriber(sub);
    let mut ledger = ledgers.load(&sub.email)?;
    if ledger.unsubscribed.is_some() {
        return Ok((None, Outcome::Unsubscribed));
    }
    let resend = match ledger.next(&schedule, now, force, |period| {
        ctx.key.message_id(&sub.email, period, &ctx.from)
    }) {
        NextDigest::Nothing => return Ok((None, Outcome::NotDue)),
        NextDigest::Send { resend } => resend,
    };
    let Some(delivery) = ledger.open_digest().cloned() else {
        return Ok((None, Outcome::NotDue));
    };
    let period = Some(delivery.period.clone());
    let window = windows.get(delivery.since, delivery.until, sub)?;
    let (message, content) = render_open_digest(ctx, sub, &delivery, &window, now)?;
    if content.is_empty() && !ctx.settings.send_empty && !resend {
        ledger.mark_skipped_empty()?;
        ledgers.save(&sub.email, &ledger)?;
        return Ok((period, Outcome::SkippedEmpty));
    }
    let ids: Vec<ItemId> = content.item_ids().map(|i| ItemId(i.to_string())).collect();
    ledger.mark_sending(ids)?;
    ledgers.save(&sub.email, &ledger)?;
    let outcome = match mailer.send(&message).await {
        Ok(()) => {
            ledger.mark_sent()?;
            Outcome::Sent {
                items: content.item_count(),
                message_id: delivery.message_id.clone(),
                resend,
            }
        }
        Err(e @ SendError::Permanent { .. }) => {
            ledger.mark_permanent_failure(&e.to_string())?;
            Outcome::PermanentFailure(e.to_string())
        }
        // Temporary refusals and local trouble (files, setup): the digest stays pending.
        Err(e) => {
            ledger.mark_temporary_failure(&e.to_string())?;
            Outcome::TemporaryFailure(e.to_string())
        }
    };
    ledgers.save(&sub.email, &ledger)?;
    Ok((period, outcome))
}

// ---------------------------------------------------------------------------------------------
// From the validated config (the `digest` commands and the daemon).

/// Where digest state lives: a `digest` folder beside the store's folder, holding the key
/// (`key`) and the ledger (`ledger/`).
pub fn state_dir(store_path: &Path) -> PathBuf {
    match store_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join("digest"),
        _ => PathBuf::from("digest"),
    }
}

/// What a configured run does.
#[derive(Debug, Clone)]
pub enum RunMode {
    /// Render due digests into `.eml` files in `out`; records nothing, sends nothing.
    Preview {
        out: PathBuf,
        subscriber: Option<String>,
    },
    /// Send what is due over SMTP; with `force`, each subscriber's next digest now.
    Send { force: bool },
}

/// Sender used for previews when `[smtp]` is absent.
const PREVIEW_FROM: &str = "News digest <digest@localhost>";

/// One digest run from the validated config: opens the store (read only use), the key and
/// the ledger in [`state_dir`], and runs [`run_digests`] at `now`.
pub async fn run_configured(
    config: &crate::config::Config,
    mode: &RunMode,
    now: DateTime<Utc>,
) -> Result<RunReport, DigestError> {
    let from_text = match (&config.smtp, mode) {
        (Some(smtp), _) => smtp.from.clone(),
        (None, RunMode::Preview { .. }) => PREVIEW_FROM.to_string(),
        (None, RunMode::Send { .. }) => {
            return Err(DigestError::Store(format!(
                "{}: digests are disabled: add an [smtp] section to send them",
                config.path.display()
            )))
        }
    };
    let from: Mailbox = from_text.parse().map_err(|e| DigestError::Address {
        to: from_text.clone(),
        detail: format!("smtp.from: {e}"),
    })?;
    let dir = state_dir(&config.store.path);
    let key = DigestKey::load_or_create(&dir.join("key"))?;
    let mut names = DisplayNames::default();
    for f in &config.feeds {
        if let Some(t) = &f.title {
            names.set_feed(&f.id, t);
        }
    }
    let store = crate::store::Store::open(&config.store.path)
        .map_err(|e| DigestError::Store(e.to_string()))?;
    run_configured_with(config, &store, mode, now, from, key, names).await
}

/// [`run_configured`] over a store the caller already holds open (the daemon's).
pub async fn run_with_store(
    config: &crate::config::Config,
    store: &crate::store::Store,
    mode: &RunMode,
    now: DateTime<Utc>,
) -> Result<RunReport, DigestError> {
    let from_text = config
        .smtp
        .as_ref()
        .map(|s| s.from.clone())
        .unwrap_or_else(|| PREVIEW_FROM.to_string());
    let from: Mailbox = from_text.parse().map_err(|e| DigestError::Address {
        to: from_text.clone(),
        detail: format!("smtp.from: {e}"),
    })?;
    let key = DigestKey::load_or_create(&state_dir(&config.store.path).join("key"))?;
    let mut names = DisplayNames::default();
    for f in &config.feeds {
        if let Some(t) = &f.title {
            names.set_feed(&f.id, t);
        }
    }
    run_configured_with(config, store, mode, now, from, key, names).await
}

async fn run_configured_with(
    config: &crate::config::Config,
    store: &crate::store::Store,
    mode: &RunMode,
    now: DateTime<Utc>,
    from: Mailbox,
    key: DigestKey,
    names: DisplayNames,
) -> Result<RunReport, DigestError> {
    let dir = state_dir(&config.store.path);
    let file_ledger = FileLedger::new(&dir.join("ledger"))?;
    let ctx = DigestContext {
        settings: &config.digest,
        base_url: &config.server.base_url,
        from,
        key: &key,
        names: &names,
        text_style: match config.digest.plain_text {
            crate::config::PlainText::Html2Text => TextStyle::Html2Text,
            crate::config::PlainText::Direct => TextStyle::Direct,
        },
    };
    match mode {
        RunMode::Preview { out, subscriber } => {
            let subs: Vec<SubscriberSettings> = config
                .subscribers
                .iter()
                .filter(|s| {
                    subscriber
                        .as_deref()
                        .is_none_or(|w| w.eq_ignore_ascii_case(&s.email))
                })
                .cloned()
                .collect();
            if subs.is_empty() {
                return Err(DigestError::Store(match subscriber {
                    Some(w) => format!("no subscriber {w} in {}", config.path.display()),
                    None => format!("no [[subscribers]] in {}", config.path.display()),
                }));
            }
            // A copy of the ledger: the preview sees the real state and changes nothing.
            let scratch = MemoryLedger::default();
            for s in &subs {
                scratch.save(&s.email, &file_ledger.load(&s.email)?)?;
            }
            let mailer = DirMailer::new(out)?;
            Ok(run_digests(&ctx, &subs, store, &scratch, &mailer, now, false).await)
        }
        RunMode::Send { force } => {
            let smtp = config.smtp.as_ref().ok_or_else(|| {
                DigestError::Store("digests are disabled: no [smtp] section".into())
            })?;
            let mailer = SmtpMailer::new(smtp, &SmtpOptions::default())?;
            Ok(run_digests(
                &ctx,
                &config.subscribers,
                store,
                &file_ledger,
                &mailer,
                now,
                *force,
            )
            .await)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Frequency;
    use crate::item::{ContentHash, FeedId, IdBasis, Label, Labels};
    use chrono::Duration;

    const PROGRAMMES: [&str; 4] = ["asylum", "mtm", "mieux", "eu"];

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn item(n: usize, first_seen: DateTime<Utc>) -> Item {
        let label = |id: &str| Label {
            id: id.to_string(),
            score: 0.9,
            why: Vec::new(),
        };
        Item {
            id: ItemId(format!("i{n:05}")),
            id_basis: IdBasis::Guid,
            feed: FeedId("f".into()),
            sources: Vec::new(),
            link: Some(format!("https://example.org/{n}")),
            title: format!("Story {n}"),
            summary_text: format!("Summary {n}"),
            content_html: "<p>body</p>".repeat(50),
            // Display dates out of first-stored order, some equal, some without a date.
            published: (n % 7 != 0).then(|| first_seen - Duration::minutes((n % 13) as i64 * 97)),
            updated: None,
            first_seen,
            authors: Vec::new(),
            categories: Vec::new(),
            enclosures: Vec::new(),
            content_hash: ContentHash(n as u64),
            fingerprint: n as u64,
            revision: 0,
            labels: Labels {
                programmes: vec![label(PROGRAMMES[n % 4])],
                initiatives: Vec::new(),
                regions: if n % 3 == 0 {
                    vec![label("turkey")]
                } else {
                    Vec::new()
                },
                taxonomy_version: 1,
            },
        }
    }

    fn sub(n: usize, programmes: &[&str], regions: &[&str]) -> SubscriberSettings {
        SubscriberSettings {
            email: format!("s{n}@example.org"),
            name: None,
            programmes: programmes.iter().map(|s| s.to_string()).collect(),
            initiatives: Vec::new(),
            regions: regions.iter().map(|s| s.to_string()).collect(),
            frequency: Frequency::Daily,
            at: (8, 0),
            weekday: chrono::Weekday::Mon,
            timezone: chrono_tz::Europe::Vienna,
        }
    }

    fn store_with(dir: &Path, items: &[Item]) -> crate::store::Store {
        let store = crate::store::Store::open(&dir.join("db")).unwrap();
        let intents: Vec<crate::dedup::Intent> = items
            .iter()
            .map(|i| crate::dedup::Intent::Insert(Box::new(i.clone())))
            .collect();
        for chunk in intents.chunks(500) {
            store.apply(&FeedId("f".into()), chunk, None).unwrap();
        }
        store
    }

    /// (group ids, item ids, omitted) of a subscriber's digest.
    fn digest_of(
        s: &SubscriberSettings,
        w: &PreparedWindow,
        max_items: usize,
    ) -> (Vec<String>, Vec<String>, usize) {
        let c = build_content(s, w, &DisplayNames::default(), max_items);
        (
            c.groups.iter().map(|g| g.id.clone()).collect(),
            c.item_ids().map(str::to_string).collect(),
            c.omitted,
        )
    }

    #[test]
    fn window_cache_stays_within_budget_and_gives_what_the_whole_window_would() {
        let dir = tempfile::tempdir().unwrap();
        let start = t("2026-03-08T00:00:00Z");
        // 1,500 items over a day, three on each instant.
        let items: Vec<Item> = (0..1500)
            .map(|n| item(n, start + Duration::seconds(180 * (n / 3) as i64)))
            .collect();
        let store = store_with(dir.path(), &items);
        let names = DisplayNames::default();
        let (max_items, budget) = (7, 30);
        let mut cache = WindowCache::new(&store, &names, max_items, budget);
        // 24 windows (distinct starts, as for subscribers in many zones or at many times),
        // each for six selections: the budget fits four selections of 7 entries per window.
        let selections: Vec<SubscriberSettings> = vec![
            sub(0, &[], &[]),
            sub(1, &["asylum"], &[]),
            sub(2, &["mtm", "eu"], &[]),
            sub(3, &["eu", "mtm"], &["turkey"]),
            sub(4, &[], &["turkey"]),
            sub(5, &["mieux"], &[]),
        ];
        let until = t("2026-03-09T01:00:00Z");
        let windows: Vec<WindowKey> = (0..24)
            .map(|h| {
                let since = (h > 0).then(|| start + Duration::minutes(37 * h));
                (since, until)
            })
            .collect();
        let mut plan = Vec::new();
        for (w, key) in windows.iter().enumerate() {
            for (k, s) in selections.iter().enumerate() {
                // Two subscribers of each selection in each window.
                for copy in 0..2 {
                    let mut s = s.clone();
                    s.email = format!("w{w}-s{k}-{copy}@example.org");
                    cache.plan(*key, &s);
                    plan.push((*key, s));
                }
            }
        }
        // Ask in an order that interleaves windows.
        plan.sort_by_key(|(k, s)| (s.email.ends_with("-1@example.org"), *k));
        let mut whole_windows: HashMap<WindowKey, PreparedWindow> = HashMap::new();
        let mut reads_checked = 0;
        for (key, s) in &plan {
            let w = cache.get(key.0, key.1, s).unwrap();
            assert!(w.covers(s, max_items));
            assert!(
                w.len() <= 4 * max_items,
                "window holds {} entries for at most four selections",
                w.len()
            );
            assert!(
                cache.held() <= budget,
                "cache holds {} > {budget}",
                cache.held()
            );
            let whole = whole_windows.entry(*key).or_insert_with(|| {
                PreparedWindow::new(&store.first_stored_between(key.0, key.1).unwrap(), &names)
            });
            assert!(
                whole.len() > 10 * w.len(),
                "the whole window is much larger: {} against {}",
                whole.len(),
                w.len()
            );
            assert_eq!(
                digest_of(s, &w, max_items),
                digest_of(s, whole, max_items),
                "{} over {key:?}",
                s.email
            );
            reads_checked += 1;
        }
        assert_eq!(reads_checked, 24 * 6 * 2);
        assert_eq!(
            cache.held(),
            0,
            "every window dropped after its last subscriber"
        );
    }

    #[test]
    fn window_builder_keeps_each_selections_first_items_and_counts_the_rest() {
        let start = t("2026-03-08T00:00:00Z");
        let mut items: Vec<Item> = (0..400)
            .map(|n| item(n, start + Duration::seconds(60 * n as i64)))
            .collect();
        // The same entry twice (equal date and id) counts once, as in a whole window.
        items.push(items[10].clone());
        let names = DisplayNames::default();
        let subs = [
            sub(0, &[], &[]),
            sub(1, &["asylum"], &["turkey"]),
            sub(2, &["nothing-matches"], &[]),
        ];
        let whole = PreparedWindow::new(&items, &names);
        for max_items in [0, 1, 5, 200, 1000] {
            let mut b = WindowBuilder::new(subs.iter().map(Selection::of), max_items, &names);
            for i in items.iter().rev() {
                b.offer(i.clone());
                assert!(b.held() <= 2 * max_items);
            }
            let w = b.finish();
            for s in &subs {
                assert!(w.covers(s, max_items));
                assert_eq!(digest_of(s, &w, max_items), digest_of(s, &whole, max_items));
            }
            assert!(!w.covers(&sub(3, &["mtm"], &[]), max_items));
            assert!(!w.covers(&subs[0], max_items + 1));
        }
    }

    #[test]
    fn store_window_visits_the_same_items_as_it_collects() {
        let dir = tempfile::tempdir().unwrap();
        let start = t("2026-03-08T00:00:00Z");
        let items: Vec<Item> = (0..2100)
            .map(|n| item(n, start + Duration::seconds(30 * (n / 2) as i64)))
            .collect();
        let store = store_with(dir.path(), &items);
        let after = start + Duration::minutes(100);
        let until = start + Duration::minutes(900);
        let mut seen = Vec::new();
        store
            .visit_first_stored_between(Some(after), until, &mut |i| {
                assert!(i.content_html.is_empty(), "content dropped as read");
                seen.push(i.id.0);
            })
            .unwrap();
        let mut want: Vec<String> = items
            .iter()
            .filter(|i| i.first_seen > after && i.first_seen <= until)
            .map(|i| i.id.0.clone())
            .collect();
        want.sort();
        let mut got = seen.clone();
        got.sort();
        assert_eq!(got, want);
        assert!(want.len() > crate::store::MAX_PAGE);
    }
}
