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
    // The scheduler logs every job creation at info; keep it to warnings unless asked.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(format!("tokio_cron_scheduler=warn,{}", settings.level)))
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

/// Runs the daemon until SIGTERM/SIGINT: a tokio-cron-scheduler tick drives fetch cycles over
/// the feeds that are due; SIGHUP reloads the config (a bad one is rejected and the running
/// one kept). On stop: no new cycle starts, the running one finishes (each feed's write is
/// atomic and flushed), the store is flushed, and the function returns.
pub async fn run(config_path: std::path::PathBuf, hooks: Hooks) -> Result<(), DaemonError> {
    use crate::config::Config;
    use crate::fetch_cycle::{due_feeds, run_cycle, CycleContext};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio_cron_scheduler::{Job, JobScheduler};

    let mut config = Config::load(&config_path).map_err(|e| DaemonError::Other(e.to_string()))?;
    init_logging(&config.log);
    let (_control, mut shutdown) = listen_for_signals()?;
    let metrics = hooks.metrics.clone();
    let store = hooks.store.clone();
    let fetcher =
        crate::fetch::Fetcher::new(&config.fetch).map_err(|e| DaemonError::Other(e.to_string()))?;
    let mut cx = CycleContext {
        store: store.clone(),
        fetcher: Arc::new(fetcher),
        labeler: hooks.labeler.clone(),
        metrics: metrics.clone(),
    };

    // The scheduler only ticks; which feeds and digests are due is decided here on each tick
    // from the stored state, so nothing depends on the scheduler's own clock arithmetic.
    let (tick_tx, mut tick_rx) = tokio::sync::mpsc::channel::<()>(1);
    let scheduler = JobScheduler::new()
        .await
        .map_err(|e| DaemonError::Scheduler(e.to_string()))?;
    let job = Job::new_repeated_async(hooks.tick, move |_id, _sched| {
        let tx = tick_tx.clone();
        Box::pin(async move {
            // A full channel means a tick is already waiting: dropping this one is right.
            let _ = tx.try_send(());
        })
    })
    .map_err(|e| DaemonError::Scheduler(e.to_string()))?;
    scheduler
        .add(job)
        .await
        .map_err(|e| DaemonError::Scheduler(e.to_string()))?;
    let mut scheduler = scheduler;
    scheduler
        .start()
        .await
        .map_err(|e| DaemonError::Scheduler(e.to_string()))?;

    if let Some(every) = systemd::watchdog_interval() {
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                t.tick().await;
                systemd::watchdog_ping();
            }
        });
    }
    systemd::ready();
    tracing::info!(feeds = config.feeds.len(), config = %config_path.display(), "newsrelay started");

    let mut cycle: Option<tokio::task::JoinHandle<crate::fetch_cycle::CycleReport>> = None;
    // First cycle right away rather than one tick later.
    let mut start_now = true;
    loop {
        if start_now && cycle.is_none() && !shutdown.is_stopping() {
            let due = due_feeds(&store, &config.feeds, chrono::Utc::now());
            if !due.is_empty() {
                let cx2 = cx.clone();
                cycle = Some(tokio::spawn(
                    async move { run_cycle(&cx2, due, |_| {}).await },
                ));
            }
            (hooks.on_tick)(&config);
        }
        start_now = false;
        tokio::select! {
            _ = tick_rx.recv() => { start_now = true; }
            finished = async { match cycle.as_mut() { Some(h) => h.await, None => std::future::pending().await } } => {
                cycle = None;
                match finished {
                    Ok(report) => {
                        tracing::info!(
                            feeds = report.feeds.len(), new = report.inserted(),
                            updated = report.updated(), failed = report.failed(),
                            ms = report.elapsed.as_millis() as u64, "fetch cycle done");
                        systemd::status(&format!("last cycle: {} feeds, {} new, {} failed",
                            report.feeds.len(), report.inserted(), report.failed()));
                        (hooks.on_cycle)(&report);
                    }
                    Err(e) => tracing::error!(error = %e, "fetch cycle task failed"),
                }
            }
            control = shutdown.changed() => match control {
                Control::Stop => break,
                Control::Reload(_) => {
                    systemd::reloading();
                    match Config::load(&config_path) {
                        Ok(new) => {
                            if new.store.path != config.store.path || new.server.listen != config.server.listen {
                                tracing::warn!("store.path and server.listen changes take effect on restart");
                            }
                            match crate::fetch::Fetcher::new(&new.fetch) {
                                Ok(f) => cx.fetcher = Arc::new(f),
                                Err(e) => tracing::error!(error = %e, "fetch settings rejected; keeping the old ones"),
                            }
                            (hooks.on_reload)(&new);
                            tracing::info!(feeds = new.feeds.len(), "config reloaded");
                            config = new;
                        }
                        Err(e) => tracing::error!("config reload rejected, keeping the running config: {e}"),
                    }
                    systemd::ready();
                }
                Control::Run => {}
            }
        }
    }

    systemd::stopping();
    tracing::info!("stopping: finishing the running cycle");
    if let Some(h) = cycle.take() {
        let limit = config.fetch.timeout + Duration::from_secs(10);
        if tokio::time::timeout(limit, h).await.is_err() {
            tracing::warn!(
                "the running cycle did not finish in time; every stored feed was already flushed"
            );
        }
    }
    let _ = scheduler.shutdown().await;
    store
        .flush()
        .map_err(|e| DaemonError::Other(format!("final flush failed: {e}")))?;
    tracing::info!("stopped cleanly");
    Ok(())
}

/// What the daemon calls into besides fetch cycles; the binary plugs in the server, digests
/// and the classifier.
pub struct Hooks {
    pub store: std::sync::Arc<crate::store::Store>,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    pub labeler: crate::fetch_cycle::Labeler,
    /// How often the scheduler ticks.
    pub tick: std::time::Duration,
    /// Every tick (digests check what is due here).
    pub on_tick: Box<dyn Fn(&crate::config::Config) + Send + Sync>,
    /// After each cycle (the server invalidates its cache, WebSub hubs are pinged).
    pub on_cycle: Box<dyn Fn(&crate::fetch_cycle::CycleReport) + Send + Sync>,
    /// After a config reload was accepted.
    pub on_reload: Box<dyn Fn(&crate::config::Config) + Send + Sync>,
}
