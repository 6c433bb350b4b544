//! Sending: the [`Mailer`] trait and its two senders, SMTP and a directory of `.eml` files.
//!
//! In: a composed `lettre::Message`. Out: accepted, refused temporarily (4xx, connection
//! trouble: retried here with exponential backoff, a bounded number of times) or refused
//! permanently (5xx: reported at once). The SMTP sender supports security none / STARTTLS /
//! implicit TLS and optional authentication with a password read from `password_file`. It must
//! never log or print the password, and never report success before the server accepted the
//! message.

use crate::config::{SmtpSecurity, SmtpSettings};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;

/// Why a digest was not handed over.
#[derive(Debug, Error)]
pub enum SendError {
    #[error("SMTP server {server} refused the digest to {to} temporarily ({attempts} attempts): {detail}")]
    Temporary {
        server: String,
        to: String,
        attempts: u32,
        detail: String,
    },
    #[error("SMTP server {server} refused the digest to {to} permanently: {detail}")]
    Permanent {
        server: String,
        to: String,
        detail: String,
    },
    #[error("cannot write digest file {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read smtp.password_file {path}: {source}")]
    PasswordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SMTP setup for {server}: {detail}")]
    Setup { server: String, detail: String },
}

impl SendError {
    /// True when trying again later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, SendError::Temporary { .. })
    }
}

/// Something that delivers a composed digest.
pub trait Mailer {
    /// Hands the message over; Ok only once the receiver accepted it.
    fn send(&self, message: &Message) -> impl Future<Output = Result<(), SendError>> + Send;
}

/// How temporary refusals are retried within one send.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub first_backoff: Duration,
    /// Upper bound of one wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 4,
            first_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.first_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Extra choices for the SMTP sender beyond the config.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    pub retry: RetryPolicy,
    /// A PEM certificate to trust in addition to the public roots (a private relay's CA).
    pub extra_root_pem: Option<Vec<u8>>,
}

/// Sends over SMTP with lettre. Plain and STARTTLS connections are opened here with
/// `TCP_NODELAY` and kept open between digests (lettre's own transport writes the end-of-data
/// marker as a separate small packet, which Nagle's algorithm holds back until the server's
/// delayed acknowledgement: about 40 ms per message); implicit TLS uses lettre's pooled
/// transport.
pub struct SmtpMailer {
    sender: Sender,
    server: String,
    retry: RetryPolicy,
}

enum Sender {
    Pooled(AsyncSmtpTransport<Tokio1Executor>),
    Direct(Box<DirectSmtp>),
}

/// One kept-open connection, reopened after any error.
struct DirectSmtp {
    host: String,
    port: u16,
    timeout: Duration,
    starttls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    connection: tokio::sync::Mutex<Option<AsyncSmtpConnection>>,
}

/// How one attempt failed.
enum AttemptError {
    Permanent(String),
    Temporary(String),
}

impl From<lettre::transport::smtp::Error> for AttemptError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        if e.is_permanent() {
            AttemptError::Permanent(one_line(&e))
        } else {
            AttemptError::Temporary(one_line(&e))
        }
    }
}

impl DirectSmtp {
    async fn connect(&self) -> Result<AsyncSmtpConnection, AttemptError> {
        let tcp = tokio::time::timeout(
            self.timeout,
            tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| AttemptError::Temporary("connection timed out".into()))?
        .map_err(|e| AttemptError::Temporary(format!("cannot connect: {e}")))?;
        tcp.set_nodelay(true)
            .map_err(|e| AttemptError::Temporary(format!("cannot set TCP_NODELAY: {e}")))?;
        let mut conn =
            AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello).await?;
        if let Some(tls) = &self.starttls {
            conn.starttls(tls.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(conn)
    }

    async fn send(&self, message: &Message) -> Result<(), AttemptError> {
        let mut slot = self.connection.lock().await;
        let attempt = async {
            if slot.as_ref().is_none_or(|c| c.has_broken()) {
                *slot = Some(self.connect().await?);
            }
            match slot.as_mut() {
                Some(conn) => conn
                    .send(message.envelope(), &message.formatted())
                    .await
                    .map(|_| ())
                    .map_err(AttemptError::from),
                None => Err(AttemptError::Temporary("no connection".into())),
            }
        };
        // A whole exchange is bounded by four command timeouts.
        let result = match tokio::time::timeout(self.timeout.saturating_mul(4), attempt).await {
            Ok(r) => r,
            Err(_) => Err(AttemptError::Temporary("SMTP exchange timed out".into())),
        };
        if result.is_err() {
            // Start the next attempt on a fresh connection.
            if let Some(mut conn) = slot.take() {
                conn.abort().await;
            }
        }
        result
    }
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The transport holds the credentials: never printed.
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// Builds the sender from `[smtp]`, reading the password file now. Call it inside a Tokio
    /// runtime: with implicit TLS the connection pool starts a background task.
    pub fn new(settings: &SmtpSettings, options: &SmtpOptions) -> Result<Self, SendError> {
        let server = format!("{}:{}", settings.host, settings.port);
        let setup = |detail: String| SendError::Setup {
            server: server.clone(),
            detail,
        };
        let tls_parameters = || -> Result<TlsParameters, SendError> {
            let mut b = TlsParameters::builder(settings.host.clone());
            if let Some(pem) = &options.extra_root_pem {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| setup(format!("extra root certificate: {e}")))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls().map_err(|e| setup(format!("TLS: {e}")))
        };
        let credentials = match &settings.username {
            Some(user) => {
                let password = match &settings.password_file {
                    Some(path) => read_password(path)?,
                    None => String::new(),
                };
                Some(Credentials::new(user.clone(), password))
            }
            None => None,
        };
        let sender = match settings.security {
            SmtpSecurity::None | SmtpSecurity::StartTls => Sender::Direct(Box::new(DirectSmtp {
                host: settings.host.clone(),
                port: settings.port,
                timeout: settings.timeout,
                starttls: match settings.security {
                    SmtpSecurity::StartTls => Some(tls_parameters()?),
                    _ => None,
                },
                credentials,
                hello: ClientId::default(),
                connection: tokio::sync::Mutex::new(None),
            })),
            SmtpSecurity::Tls => {
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
                        .port(settings.port)
                        .timeout(Some(settings.timeout))
                        .tls(Tls::Wrapper(tls_parameters()?));
                if let Some(c) = credentials {
                    builder = builder.credentials(c);
                }
                Sender::Pooled(builder.build())
            }
        };
        Ok(SmtpMailer {
            sender,
            server,
            retry: options.retry,
        })
    }
}

fn read_password(path: &Path) -> Result<String, SendError> {
    let text = std::fs::read_to_string(path).map_err(|source| SendError::PasswordFile {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

fn recipients(message: &Message) -> String {
    message
        .envelope()
        .to()
        .iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Mailer for SmtpMailer {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let to = recipients(message);
        let attempts = self.retry.attempts.max(1);
        let mut last = String::new();
        for attempt in 1..=attempts {
            let result = match &self.sender {
                Sender::Direct(direct) => direct.send(message).await,
                Sender::Pooled(transport) => transport
                    .send(message.clone())
                    .await
                    .map(|_| ())
                    .map_err(AttemptError::from),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(AttemptError::Permanent(detail)) => {
                    return Err(SendError::Permanent {
                        server: self.server.clone(),
                        to,
                        detail,
                    })
                }
                Err(AttemptError::Temporary(detail)) => {
                    last = detail;
                    tracing::warn!(server = %self.server, %to, attempt, error = %last, "digest refused temporarily");
                    if attempt < attempts {
                        tokio::time::sleep(self.retry.backoff(attempt)).await;
                    }
                }
            }
        }
        Err(SendError::Temporary {
            server: self.server.clone(),
            to,
            attempts,
            detail: last,
        })
    }
}

fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s.replace(['\r', '\n'], " ")
}

/// Writes each digest as an `.eml` file into a folder (`digest preview --out DIR`).
#[derive(Debug, Clone)]
pub struct DirMailer {
    dir: PathBuf,
}

impl DirMailer {
    /// Creates the folder if needed.
    pub fn new(dir: &Path) -> Result<Self, SendError> {
        std::fs::create_dir_all(dir).map_err(|source| SendError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(DirMailer {
            dir: dir.to_path_buf(),
        })
    }

    /// The file a message is written to: its Message-ID with unsafe characters replaced.
    pub fn path_for(&self, message: &Message) -> PathBuf {
        let id = message
            .headers()
            .get_raw("Message-ID")
            .unwrap_or("digest")
            .trim_matches(|c: char| c == '<' || c == '>' || c.is_whitespace());
        let name: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .take(200)
            .collect();
        self.dir.join(format!("{name}.eml"))
    }
}

impl Mailer for DirMailer {
    async fn send(&self, message: &Message) -> Result<(), SendError> {
        let path = self.path_for(message);
        let tmp = path.with_extension("eml.tmp");
        let bytes = message.formatted();
        let write = |p: &Path| std::fs::write(p, &bytes);
        write(&tmp)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|source| SendError::Write { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            attempts: 10,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(3), Duration::from_millis(400));
        assert_eq!(p.backoff(4), Duration::from_millis(500));
        assert_eq!(p.backoff(40), Duration::from_millis(500));
    }
}
