//! The daemon: wires the scheduler, fetch cycles, digests and the server; handles signals
//! (SIGTERM/SIGINT stop cleanly with a flush, SIGHUP reloads config) and systemd readiness.
//!
//! In: a validated config. Out: a running service until a stop signal; exit 0 after in-flight
//! writes finished and the store was flushed. It must never exit without flushing (no
//! `process::exit` in a signal path) and never let a bad reloaded config replace a good one.

use crate::config::{LogFormat, LogSettings};
use thiserror::Error;
use tokio::sync::watch;

#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("cannot install signal handler: {0}")]
    Signals(std::io::Error),
    #[error("cannot start the scheduler: {0}")]
    Scheduler(String),
    #[error(
        "cannot listen on {addr}: {source} (is another newsrelay running? change server.listen)"
    )]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// Sets up tracing: `RUST_LOG` if set, else the config's level; human or JSON lines on stderr.
/// Safe to call twice (the second call does nothing).
pub fn init_logging(settings: &LogSettings) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.compact().try_init(),
    };
}

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Keep running.
    Run,
    /// Reload the config (SIGHUP); the counter distinguishes successive requests.
    Reload(u64),
    /// Finish in-flight work, flush, exit 0 (SIGTERM, SIGINT).
    Stop,
}

/// A cloneable view of the control state; tasks `await` changes on it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<Control>,
}

impl Shutdown {
    /// True once a stop was requested.
    pub fn is_stopping(&self) -> bool {
        *self.rx.borrow() == Control::Stop
    }
    /// Resolves when a stop is requested.
    pub async fn stopped(&mut self) {
        while !self.is_stopping() {
            if self.rx.changed().await.is_err() {
                return;
            }
        }
    }
    /// Resolves with the next control change.
    pub async fn changed(&mut self) -> Control {
        if self.rx.changed().await.is_err() {
            return Control::Stop;
        }
        *self.rx.borrow()
    }
}

/// Installs SIGTERM, SIGINT and SIGHUP handlers that drive a [`Shutdown`].
pub fn listen_for_signals() -> Result<(watch::Sender<Control>, Shutdown), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = watch::channel(Control::Run);
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let sender = tx.clone();
    tokio::spawn(async move {
        let mut reloads = 0u64;
        loop {
            tokio::select! {
                _ = term.recv() => { let _ = sender.send(Control::Stop); break; }
                _ = int.recv() => { let _ = sender.send(Control::Stop); break; }
                _ = hup.recv() => {
                    reloads += 1;
                    let _ = sender.send(Control::Reload(reloads));
                }
            }
        }
    });
    Ok((tx, Shutdown { rx }))
}

/// systemd notifications; every call is a no-op when not started by systemd.
pub mod systemd {
    use sd_notify::NotifyState;
    use std::time::Duration;

    pub fn ready() {
        let _ = sd_notify::notify(false, &[NotifyState::Ready]);
    }
    pub fn reloading() {
        let _ = sd_notify::notify(false, &[NotifyState::Reloading]);
    }
    pub fn stopping() {
        let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
    }
    pub fn status(text: &str) {
        let _ = sd_notify::notify(false, &[NotifyState::Status(text)]);
    }
    /// The interval at which to ping the watchdog (half of WatchdogSec), if enabled.
    pub fn watchdog_interval() -> Option<Duration> {
        let mut usec = 0u64;
        if sd_notify::watchdog_enabled(false, &mut usec) && usec > 0 {
            Some(Duration::from_micros(usec / 2))
        } else {
            None
        }
    }
    pub fn watchdog_ping() {
        let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
    }
}
