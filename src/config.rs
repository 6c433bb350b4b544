//! Configuration: TOML text → raw structs (unknown keys rejected) → validated settings.
//!
//! In: the config file's text and path. Out: a [`Config`] whose parts are handed to each module
//! (fetch gets [`FetchSettings`], the store gets [`StoreSettings`], ...). Durations (`"30m"`),
//! sizes (`"10MB"`) and relative paths (against the config file's folder) are resolved here.
//! It must never do network I/O or touch the store, and every error it returns names the file,
//! the line and the key.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use toml::Spanned;

/// A configuration error, already formatted as one readable line.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source} (pass --config PATH or set NEWSRELAY_CONFIG)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
}

/// Where the config file is looked for, in order: `--config`, `NEWSRELAY_CONFIG`,
/// `config/newsrelay.toml` in the working directory, `/etc/newsrelay/newsrelay.toml`.
pub fn locate(cli: Option<&Path>) -> PathBuf {
    if let Some(p) = cli {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("NEWSRELAY_CONFIG") {
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let local = PathBuf::from("config/newsrelay.toml");
    if local.exists() {
        return local;
    }
    PathBuf::from("/etc/newsrelay/newsrelay.toml")
}

// ---------------------------------------------------------------------------------------------
// Raw: exactly the TOML shape, unknown keys rejected.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    store: RawStore,
    #[serde(default)]
    server: Option<RawServer>,
    #[serde(default)]
    fetch: Option<RawFetch>,
    #[serde(default)]
    feeds: Vec<RawFeed>,
    #[serde(default)]
    taxonomy: Option<RawTaxonomy>,
    #[serde(default)]
    smtp: Option<RawSmtp>,
    #[serde(default)]
    digest: Option<RawDigest>,
    #[serde(default)]
    subscribers: Vec<RawSubscriber>,
    #[serde(default)]
    log: Option<RawLog>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Spanned<String>,
    retention: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    admin_token_file: Option<Spanned<String>>,
    websub_hub: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    interval: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
    per_host: Option<Spanned<i64>>,
    timeout: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    max_body: Option<Spanned<String>>,
    max_redirects: Option<Spanned<i64>>,
    contact_url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    id: Spanned<String>,
    url: Spanned<String>,
    title: Option<String>,
    interval: Option<Spanned<String>>,
    #[serde(default)]
    programmes: Vec<Spanned<String>>,
    retention: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaxonomy {
    file: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Spanned<String>,
    port: Option<Spanned<i64>>,
    security: Option<Spanned<String>>,
    from: Spanned<String>,
    username: Option<String>,
    password_file: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    send_empty: Option<bool>,
    max_items: Option<Spanned<i64>>,
    check_every: Option<Spanned<String>>,
    plain_text: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubscriber {
    email: Spanned<String>,
    name: Option<String>,
    #[serde(default)]
    programmes: Vec<Spanned<String>>,
    #[serde(default)]
    initiatives: Vec<Spanned<String>>,
    #[serde(default)]
    regions: Vec<Spanned<String>>,
    frequency: Option<Spanned<String>>,
    at: Option<Spanned<String>>,
    weekday: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    level: Option<String>,
    format: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------
// Validated settings.

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from (relative paths were resolved against its folder).
    pub path: PathBuf,
    pub store: StoreSettings,
    pub server: ServerSettings,
    pub fetch: FetchSettings,
    pub feeds: Vec<FeedSettings>,
    pub taxonomy: TaxonomySettings,
    /// Absent means digests are disabled.
    pub smtp: Option<SmtpSettings>,
    pub digest: DigestSettings,
    pub subscribers: Vec<SubscriberSettings>,
    pub log: LogSettings,
}

#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// The sled directory.
    pub path: PathBuf,
    /// Default age after which items are purged (leaving tombstones); None keeps everything.
    pub retention: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: String,
    /// Public base URL, without a trailing slash; used for self links, OPML, unsubscribe links.
    pub base_url: String,
    /// Token that state-changing admin routes require; None disables them.
    pub admin_token: Option<String>,
    /// WebSub hub advertised in published feeds and pinged when they change.
    pub websub_hub: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FetchSettings {
    pub interval: Duration,
    pub concurrency: usize,
    pub per_host: usize,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_body: u64,
    pub max_redirects: usize,
    /// Operator contact URL put in the User-Agent.
    pub contact_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub id: String,
    pub url: String,
    pub title: Option<String>,
    pub interval: Duration,
    /// Default programme labels for everything from this feed.
    pub programmes: Vec<String>,
    pub retention: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct TaxonomySettings {
    /// The taxonomy file (programmes.toml).
    pub file: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    None,
    StartTls,
    Tls,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub from: String,
    pub username: Option<String>,
    /// Path of the file holding the password; read when sending, never logged.
    pub password_file: Option<PathBuf>,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct DigestSettings {
    pub send_empty: bool,
    pub max_items: usize,
    /// How often the daemon checks whether a digest is due.
    pub check_every: Duration,
    /// How the plain-text part is made.
    pub plain_text: PlainText,
}

/// How a digest's plain-text part is made (`digest.plain_text`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlainText {
    /// html2text over the HTML part (about 7x slower for a whole message: below the
    /// 500 digests/s target on one core).
    Html2Text,
    /// Written directly from the items (the default: meets the rendering target, links whole).
    #[default]
    Direct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Daily,
    Weekly,
}

#[derive(Debug, Clone)]
pub struct SubscriberSettings {
    pub email: String,
    pub name: Option<String>,
    pub programmes: Vec<String>,
    pub initiatives: Vec<String>,
    pub regions: Vec<String>,
    pub frequency: Frequency,
    /// Local time of day (hour, minute).
    pub at: (u32, u32),
    /// For weekly digests.
    pub weekday: chrono::Weekday,
    pub timezone: chrono_tz::Tz,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub level: String,
    pub format: LogFormat,
}

// ---------------------------------------------------------------------------------------------

/// Parses a duration such as `"30m"`, `"20s"`, `"1h30m"`, `"500ms"`, `"7d"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("duration {s:?} needs a unit (ms, s, m, h, d, w)"))?;
        if digits == 0 {
            return Err(format!(
                "duration {s:?} is not a number with a unit such as 30m"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {s:?} is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let secs = match unit {
            "ms" => {
                total += Duration::from_millis(n);
                continue;
            }
            "s" | "sec" => 1,
            "m" | "min" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 604_800,
            _ => {
                return Err(format!(
                    "unknown unit {unit:?} in duration {s:?} (use ms, s, m, h, d, w)"
                ))
            }
        };
        total += Duration::from_secs(n.saturating_mul(secs));
    }
    Ok(total)
}

/// Parses a size such as `"10MB"`, `"512KB"`, `"1GiB"`, `"2048"` (bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if split == 0 {
        return Err(format!(
            "size {s:?} is not a number with a unit such as 10MB"
        ));
    }
    let n: u64 = t[..split]
        .parse()
        .map_err(|_| format!("size {s:?} is too large"))?;
    let mult: u64 = match t[split..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" | "k" => 1_000,
        "kib" => 1 << 10,
        "mb" | "m" => 1_000_000,
        "mib" => 1 << 20,
        "gb" | "g" => 1_000_000_000,
        "gib" => 1 << 30,
        u => {
            return Err(format!(
                "unknown unit {u:?} in size {s:?} (use B, KB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn err_at(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, offset);
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
    fn err<T>(&self, v: &Spanned<T>, message: impl Into<String>) -> ConfigError {
        self.err_at(v.span().start, message)
    }
    fn duration(&self, key: &str, v: &Spanned<String>) -> Result<Duration, ConfigError> {
        parse_duration(v.get_ref()).map_err(|e| self.err(v, format!("{key}: {e}")))
    }
    fn size(&self, key: &str, v: &Spanned<String>) -> Result<u64, ConfigError> {
        parse_size(v.get_ref()).map_err(|e| self.err(v, format!("{key}: {e}")))
    }
    fn positive(&self, key: &str, v: &Spanned<i64>, max: i64) -> Result<usize, ConfigError> {
        let n = *v.get_ref();
        if n < 1 || n > max {
            return Err(self.err(v, format!("{key} must be between 1 and {max}, not {n}")));
        }
        Ok(n as usize)
    }
    fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or_else(|| Path::new(".")).join(p)
        }
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_str_at(&text, path)
    }

    /// Validates config text as if it were read from `path` (relative paths resolve against
    /// `path`'s folder).
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cx = Ctx { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            cx.err_at(offset, e.message().trim().replace('\n', " "))
        })?;
        validate(&cx, raw)
    }
}

fn validate(cx: &Ctx<'_>, raw: RawConfig) -> Result<Config, ConfigError> {
    let store = StoreSettings {
        path: cx.resolve(raw.store.path.get_ref()),
        retention: raw
            .store
            .retention
            .as_ref()
            .map(|v| cx.duration("store.retention", v))
            .transpose()?,
    };

    let server = match raw.server {
        None => ServerSettings {
            listen: "127.0.0.1:8080".into(),
            base_url: "http://127.0.0.1:8080".into(),
            admin_token: None,
            websub_hub: None,
        },
        Some(s) => {
            let listen = s
                .listen
                .as_ref()
                .map(|l| l.get_ref().clone())
                .unwrap_or_else(|| "127.0.0.1:8080".into());
            if let Some(l) = &s.listen {
                if l.get_ref().parse::<std::net::SocketAddr>().is_err() {
                    return Err(cx.err(
                        l,
                        format!(
                            "server.listen {:?} is not an address such as 127.0.0.1:8080",
                            l.get_ref()
                        ),
                    ));
                }
            }
            let base_url = match &s.base_url {
                Some(b) => {
                    let u = url::Url::parse(b.get_ref()).map_err(|e| {
                        cx.err(
                            b,
                            format!("server.base_url {:?} is not a URL: {e}", b.get_ref()),
                        )
                    })?;
                    if !matches!(u.scheme(), "http" | "https") {
                        return Err(cx.err(b, "server.base_url must be http:// or https://"));
                    }
                    b.get_ref().trim_end_matches('/').to_string()
                }
                None => format!("http://{listen}"),
            };
            let admin_token = match &s.admin_token_file {
                Some(f) => {
                    let p = cx.resolve(f.get_ref());
                    let t = std::fs::read_to_string(&p).map_err(|e| {
                        cx.err(f, format!("server.admin_token_file {}: {e}", p.display()))
                    })?;
                    let t = t.trim().to_string();
                    if t.len() < 16 {
                        return Err(cx.err(
                            f,
                            "server.admin_token_file must hold a token of at least 16 characters",
                        ));
                    }
                    Some(t)
                }
                None => None,
            };
            let websub_hub = match &s.websub_hub {
                Some(h) => {
                    url::Url::parse(h.get_ref()).map_err(|e| {
                        cx.err(
                            h,
                            format!("server.websub_hub {:?} is not a URL: {e}", h.get_ref()),
                        )
                    })?;
                    Some(h.get_ref().clone())
                }
                None => None,
            };
            ServerSettings {
                listen,
                base_url,
                admin_token,
                websub_hub,
            }
        }
    };

    let rf = raw.fetch;
    let fetch = FetchSettings {
        interval: match rf.as_ref().and_then(|f| f.interval.as_ref()) {
            Some(v) => cx.duration("fetch.interval", v)?,
            None => Duration::from_secs(30 * 60),
        },
        concurrency: match rf.as_ref().and_then(|f| f.concurrency.as_ref()) {
            Some(v) => cx.positive("fetch.concurrency", v, 1024)?,
            None => 16,
        },
        per_host: match rf.as_ref().and_then(|f| f.per_host.as_ref()) {
            Some(v) => cx.positive("fetch.per_host", v, 256)?,
            None => 2,
        },
        timeout: match rf.as_ref().and_then(|f| f.timeout.as_ref()) {
            Some(v) => cx.duration("fetch.timeout", v)?,
            None => Duration::from_secs(20),
        },
        connect_timeout: match rf.as_ref().and_then(|f| f.connect_timeout.as_ref()) {
            Some(v) => cx.duration("fetch.connect_timeout", v)?,
            None => Duration::from_secs(10),
        },
        max_body: match rf.as_ref().and_then(|f| f.max_body.as_ref()) {
            Some(v) => cx.size("fetch.max_body", v)?,
            None => 10_000_000,
        },
        max_redirects: match rf.as_ref().and_then(|f| f.max_redirects.as_ref()) {
            Some(v) => cx.positive("fetch.max_redirects", v, 50)?,
            None => 5,
        },
        contact_url: rf
            .as_ref()
            .and_then(|f| f.contact_url.as_ref())
            .map(|c| c.get_ref().clone()),
    };
    if fetch.timeout.is_zero() {
        return Err(cx.err_at(0, "fetch.timeout must be more than zero"));
    }

    let mut feeds = Vec::with_capacity(raw.feeds.len());
    let mut seen = std::collections::HashSet::new();
    for f in raw.feeds {
        let id = f.id.get_ref().clone();
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(cx.err(
                &f.id,
                format!("feeds.id {id:?} must be letters, digits, '-' or '_'"),
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(cx.err(&f.id, format!("feeds.id {id:?} is used twice")));
        }
        let url_text = f.url.get_ref().trim();
        let url = if let Some(rest) = url_text.strip_prefix("file:") {
            // file:///abs/path, or a path relative to the config folder: file://fixtures/x.xml
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let p = cx.resolve(rest);
            let p = p.canonicalize().unwrap_or(p);
            url::Url::from_file_path(&p)
                .map_err(|_| {
                    cx.err(
                        &f.url,
                        format!("feeds.url {url_text:?}: cannot make a file URL"),
                    )
                })?
                .to_string()
        } else {
            let url = url::Url::parse(url_text)
                .map_err(|e| cx.err(&f.url, format!("feeds.url {url_text:?} is not a URL: {e}")))?;
            match url.scheme() {
                "http" | "https" => url.to_string(),
                s => {
                    return Err(cx.err(
                        &f.url,
                        format!(
                            "feeds.url scheme {s:?} is not supported (use http, https or file)"
                        ),
                    ))
                }
            }
        };
        let interval = match &f.interval {
            Some(v) => cx.duration("feeds.interval", v)?,
            None => fetch.interval,
        };
        let retention = f
            .retention
            .as_ref()
            .map(|v| cx.duration("feeds.retention", v))
            .transpose()?
            .or(store.retention);
        feeds.push(FeedSettings {
            id,
            url,
            title: f.title,
            interval,
            programmes: f.programmes.into_iter().map(Spanned::into_inner).collect(),
            retention,
        });
    }

    let taxonomy = TaxonomySettings {
        file: match &raw.taxonomy {
            Some(t) => cx.resolve(t.file.get_ref()),
            None => cx.resolve("programmes.toml"),
        },
    };

    let smtp = match raw.smtp {
        None => None,
        Some(s) => {
            let security = match s.security.as_ref().map(|v| v.get_ref().as_str()) {
                None | Some("none") => SmtpSecurity::None,
                Some("starttls") => SmtpSecurity::StartTls,
                Some("tls") => SmtpSecurity::Tls,
                Some(other) => {
                    return Err(cx.err(
                        s.security.as_ref().expect("checked above"),
                        format!("smtp.security {other:?} must be none, starttls or tls"),
                    ))
                }
            };
            let port = match &s.port {
                Some(p) => cx.positive("smtp.port", p, 65535)? as u16,
                None => match security {
                    SmtpSecurity::None => 25,
                    SmtpSecurity::StartTls => 587,
                    SmtpSecurity::Tls => 465,
                },
            };
            if s.from
                .get_ref()
                .parse::<lettre::message::Mailbox>()
                .is_err()
            {
                return Err(cx.err(
                    &s.from,
                    format!(
                        "smtp.from {:?} is not a mailbox such as \"News <news@example.org>\"",
                        s.from.get_ref()
                    ),
                ));
            }
            Some(SmtpSettings {
                host: s.host.into_inner(),
                port,
                security,
                from: s.from.into_inner(),
                username: s.username,
                password_file: s.password_file.map(|p| cx.resolve(p.get_ref())),
                timeout: match &s.timeout {
                    Some(v) => cx.duration("smtp.timeout", v)?,
                    None => Duration::from_secs(30),
                },
            })
        }
    };

    let digest = DigestSettings {
        send_empty: raw
            .digest
            .as_ref()
            .and_then(|d| d.send_empty)
            .unwrap_or(false),
        max_items: match raw.digest.as_ref().and_then(|d| d.max_items.as_ref()) {
            Some(v) => cx.positive("digest.max_items", v, 10_000)?,
            None => 200,
        },
        check_every: match raw.digest.as_ref().and_then(|d| d.check_every.as_ref()) {
            Some(v) => cx.duration("digest.check_every", v)?,
            None => Duration::from_secs(60),
        },
        plain_text: match raw.digest.as_ref().and_then(|d| d.plain_text.as_ref()) {
            None => PlainText::default(),
            Some(v) => match v.get_ref().as_str() {
                "html2text" => PlainText::Html2Text,
                "direct" => PlainText::Direct,
                o => {
                    return Err(cx.err(
                        v,
                        format!("digest.plain_text {o:?} must be html2text or direct"),
                    ))
                }
            },
        },
    };

    let mut subscribers = Vec::with_capacity(raw.subscribers.len());
    let mut seen_emails = std::collections::HashSet::new();
    for s in raw.subscribers {
        let email = s.email.get_ref().trim().to_string();
        if email.parse::<lettre::Address>().is_err() {
            return Err(cx.err(
                &s.email,
                format!("subscribers.email {email:?} is not an email address"),
            ));
        }
        if !seen_emails.insert(email.to_ascii_lowercase()) {
            return Err(cx.err(
                &s.email,
                format!("subscribers.email {email:?} is listed twice"),
            ));
        }
        let frequency = match s.frequency.as_ref().map(|v| v.get_ref().as_str()) {
            None | Some("daily") => Frequency::Daily,
            Some("weekly") => Frequency::Weekly,
            Some(o) => {
                return Err(cx.err(
                    s.frequency.as_ref().expect("checked above"),
                    format!("subscribers.frequency {o:?} must be daily or weekly"),
                ))
            }
        };
        let at = match &s.at {
            None => (8, 0),
            Some(v) => parse_time_of_day(v.get_ref()).ok_or_else(|| {
                cx.err(v, format!("subscribers.at {:?} must be HH:MM", v.get_ref()))
            })?,
        };
        let weekday = match &s.weekday {
            None => chrono::Weekday::Mon,
            Some(v) => v.get_ref().parse::<chrono::Weekday>().map_err(|_| {
                cx.err(
                    v,
                    format!("subscribers.weekday {:?} is not a weekday", v.get_ref()),
                )
            })?,
        };
        let timezone = match &s.timezone {
            None => chrono_tz::UTC,
            Some(v) => v.get_ref().parse::<chrono_tz::Tz>().map_err(|_| {
                cx.err(
                    v,
                    format!(
                        "subscribers.timezone {:?} is not an IANA time zone such as Europe/Vienna",
                        v.get_ref()
                    ),
                )
            })?,
        };
        subscribers.push(SubscriberSettings {
            email,
            name: s.name,
            programmes: s.programmes.into_iter().map(Spanned::into_inner).collect(),
            initiatives: s.initiatives.into_iter().map(Spanned::into_inner).collect(),
            regions: s.regions.into_iter().map(Spanned::into_inner).collect(),
            frequency,
            at,
            weekday,
            timezone,
        });
    }

    let log = LogSettings {
        level: raw
            .log
            .as_ref()
            .and_then(|l| l.level.clone())
            .unwrap_or_else(|| "info".into()),
        format: match raw.log.as_ref().and_then(|l| l.format.as_ref()) {
            None => LogFormat::Human,
            Some(v) => match v.get_ref().as_str() {
                "human" => LogFormat::Human,
                "json" => LogFormat::Json,
                o => return Err(cx.err(v, format!("log.format {o:?} must be human or json"))),
            },
        },
    };

    Ok(Config {
        path: cx.path.to_path_buf(),
        store,
        server,
        fetch,
        feeds,
        taxonomy,
        smtp,
        digest,
        subscribers,
        log,
    })
}

fn parse_time_of_day(s: &str) -> Option<(u32, u32)> {
    let (h, m) = s.trim().split_once(':')?;
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    (h < 24 && m < 60).then_some((h, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_str_at(text, Path::new("/etc/newsrelay/newsrelay.toml"))
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert_eq!(parse_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert!(parse_size("ten").is_err());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = load("[store]\npath = \"x\"\n\n[fetch]\nintervall = \"30m\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(":5:"), "{msg}");
        assert!(msg.contains("intervall"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn bad_duration_names_line() {
        let e = load("[store]\npath = \"x\"\n[fetch]\ntimeout = \"20 parsecs\"\n").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(":4:") && msg.contains("fetch.timeout"),
            "{msg}"
        );
    }

    #[test]
    fn relative_paths_resolve_against_config_folder() {
        let c =
            load("[store]\npath = \"data/db\"\n[taxonomy]\nfile = \"programmes.toml\"\n").unwrap();
        assert_eq!(c.store.path, PathBuf::from("/etc/newsrelay/data/db"));
        assert_eq!(
            c.taxonomy.file,
            PathBuf::from("/etc/newsrelay/programmes.toml")
        );
    }

    #[test]
    fn digest_plain_text_choice() {
        let d = load("[store]\npath=\"d\"\n").unwrap();
        assert_eq!(d.digest.plain_text, PlainText::Direct);
        let c = load("[store]\npath=\"d\"\n[digest]\nplain_text=\"html2text\"\n").unwrap();
        assert_eq!(c.digest.plain_text, PlainText::Html2Text);
        let e = load("[store]\npath=\"d\"\n[digest]\nplain_text=\"rich\"\n").unwrap_err();
        let e = e.to_string();
        assert!(e.contains("digest.plain_text") && e.contains(":4"), "{e}");
    }

    #[test]
    fn subscriber_validation() {
        let ok = load("[store]\npath=\"d\"\n[[subscribers]]\nemail=\"a@example.org\"\nprogrammes=[\"asylum\"]\nfrequency=\"weekly\"\nweekday=\"Fri\"\nat=\"07:30\"\ntimezone=\"Europe/Vienna\"\n").unwrap();
        let s = &ok.subscribers[0];
        assert_eq!(s.frequency, Frequency::Weekly);
        assert_eq!(s.at, (7, 30));
        assert_eq!(s.timezone, chrono_tz::Europe::Vienna);
        let e = load("[store]\npath=\"d\"\n[[subscribers]]\nemail=\"a@example.org\"\ntimezone=\"Mars/Olympus\"\n").unwrap_err();
        assert!(e.to_string().contains(":5:"), "{e}");
    }

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../config/newsrelay.example.toml");
        let c = Config::from_str_at(text, Path::new("/etc/newsrelay/newsrelay.toml")).unwrap();
        assert_eq!(c.feeds.len(), 1);
        assert!(c.smtp.is_some());
        assert_eq!(c.subscribers[0].timezone, chrono_tz::Europe::Vienna);
    }

    #[test]
    fn bundled_config_is_valid() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/newsrelay.toml"
        ));
        let c = Config::load(path).unwrap();
        assert!(c.feeds.iter().any(|f| f.url.starts_with("file://")));
        assert!(c.feeds.iter().any(|f| f.url.starts_with("https://")));
    }

    #[test]
    fn duplicate_feed_ids_rejected() {
        let e = load("[store]\npath=\"d\"\n[[feeds]]\nid=\"a\"\nurl=\"http://x/\"\n[[feeds]]\nid=\"a\"\nurl=\"http://y/\"\n").unwrap_err();
        assert!(e.to_string().contains("used twice"), "{e}");
    }
}
