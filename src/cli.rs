//! The command line: clap definitions and one thin function per command.
//!
//! In: arguments and the environment. Out: an exit status (0 success, 1 runtime failure, 2 usage
//! or config error) and, on failure, one readable line on stderr. Each command calls into the
//! library; no pipeline logic lives here.

use crate::classify;
use crate::config::{self, Config};
use crate::parse::{self, FeedInput};
use anyhow::{Context, Result};
use base64::Engine;
use clap::{Parser, Subcommand};
use std::io::{BufRead, Read, Write};
use std::path::PathBuf;

/// newsrelay: fetch, classify and republish programme news.
#[derive(Debug, Parser)]
#[command(name = "newsrelay", version, about, long_about = None)]
pub struct Cli {
    /// Config file (else $NEWSRELAY_CONFIG, ./config/newsrelay.toml, /etc/newsrelay/newsrelay.toml)
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: scheduled fetches and digests, and the HTTP server
    Run,
    /// One fetch cycle now; stores results and prints a per-feed summary
    Fetch {
        /// Only this feed
        #[arg(long)]
        feed: Option<String>,
    },
    /// HTTP server only, over the store as it is
    Serve,
    /// Parse one feed and print the neutral JSON; stores nothing
    Parse {
        /// Feed file, or - for standard input
        file: Option<PathBuf>,
        /// The document's URL (base for relative links)
        #[arg(long)]
        url: Option<String>,
        /// The HTTP Content-Type it was served with
        #[arg(long)]
        content_type: Option<String>,
        /// JSON lines in, JSON lines out (the conformance harness protocol)
        #[arg(long)]
        batch: bool,
    },
    /// Classify items (JSON lines in, JSON lines out)
    Classify {
        /// Input file, or - for standard input
        file: Option<PathBuf>,
        /// The input is a feed document, not JSON lines
        #[arg(long)]
        feed: bool,
        /// Evaluate against a labelled JSON lines file: per-label precision, recall, F1
        #[arg(long)]
        eval: bool,
        /// With --eval: k-fold cross-validation on FILE (the model never sees its test fold)
        #[arg(long, value_name = "K", requires = "eval")]
        cv: Option<usize>,
        /// With --eval: cross-validate every (rule share, threshold) pair and print the table
        #[arg(long, requires = "eval")]
        tune: bool,
        /// Taxonomy file to use instead of the one the config names
        #[arg(long, value_name = "PATH")]
        taxonomy: Option<PathBuf>,
    },
    /// Reclassify stored items labelled by another taxonomy version (resumable, with progress)
    Reclassify {
        /// Items per durable batch (a killed run loses at most one batch of work)
        #[arg(long, value_name = "N", default_value_t = crate::reclassify::DEFAULT_BATCH)]
        batch: usize,
    },
    /// Email digests
    Digest {
        #[command(subcommand)]
        action: DigestAction,
    },
    /// Write the whole store as JSON lines to standard output
    Export,
    /// Restore a store from JSON lines
    Import { file: PathBuf },
    /// Feed list exchange
    Opml {
        #[command(subcommand)]
        action: OpmlAction,
    },
    /// Validate config and taxonomy
    CheckConfig,
    /// Print the fully commented example config
    PrintConfig {
        #[arg(long)]
        example: bool,
    },
    /// Feeds and their health, item counts, store size, next runs
    Status,
    /// Rewrite the store to reclaim disk space
    Compact,
}

#[derive(Debug, Subcommand)]
pub enum DigestAction {
    /// Render due digests to .eml files; sends nothing
    Preview {
        #[arg(long)]
        subscriber: Option<String>,
        #[arg(long, default_value = "digests")]
        out: PathBuf,
    },
    /// Send what is due (or everything pending with --now)
    Send {
        #[arg(long)]
        now: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OpmlAction {
    Import { file: PathBuf },
    Export,
}

/// The fully commented example configuration (`newsrelay print-config --example`).
pub const EXAMPLE_CONFIG: &str = include_str!("../config/newsrelay.example.toml");

/// A failure with the exit status it deserves.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let error = e.into();
        let code = if error.downcast_ref::<config::ConfigError>().is_some() {
            2
        } else {
            1
        };
        Failure { code, error }
    }
}

/// Formats an error chain as one line: `outer: inner: innermost`.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut s = String::new();
    for (i, c) in e.chain().enumerate() {
        let t = c.to_string();
        if i > 0 {
            if s.contains(&t) {
                continue;
            }
            s.push_str(": ");
        }
        s.push_str(&t);
    }
    s.replace('\n', " ")
}

pub fn load_config(cli: &Cli) -> Result<Config, Failure> {
    let path = config::locate(cli.config.as_deref());
    Ok(Config::load(&path)?)
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Parse {
            file,
            url,
            content_type,
            batch,
        } => {
            if *batch {
                parse_batch()?;
                Ok(())
            } else {
                parse_one(file.as_deref(), url.as_deref(), content_type.as_deref())
            }
        }
        Command::CheckConfig => check_config(&load_config(&cli)?),
        Command::PrintConfig { example } => {
            if !example {
                let c = load_config(&cli)?;
                println!("# {}", c.path.display());
                print!("{}", std::fs::read_to_string(&c.path)?);
                return Ok(());
            }
            print!("{}", EXAMPLE_CONFIG);
            Ok(())
        }
        Command::Run => run_daemon(&cli),
        Command::Fetch { feed } => fetch_once(&load_config(&cli)?, feed.as_deref()),
        Command::Digest { action } => digest_command(&load_config(&cli)?, action),
        Command::Export => export_store(&load_config(&cli)?),
        Command::Import { file } => import_store(&load_config(&cli)?, file),
        Command::Classify {
            file,
            feed,
            eval,
            cv,
            tune,
            taxonomy,
        } => classify_command(
            &cli,
            &ClassifyArgs {
                file: file.as_deref(),
                feed: *feed,
                eval: *eval,
                cv: *cv,
                tune: *tune,
                taxonomy: taxonomy.as_deref(),
            },
        ),
        Command::Serve => serve_http(&load_config(&cli)?),
        Command::Status => status_command(&load_config(&cli)?),
        Command::Opml { action } => match action {
            OpmlAction::Export => {
                print!(
                    "{}",
                    crate::feed_list::export_opml(&load_config(&cli)?.feeds)
                );
                Ok(())
            }
            OpmlAction::Import { file } => opml_import(&load_config(&cli)?, file),
        },
        Command::Compact => compact_store(&load_config(&cli)?),
        Command::Reclassify { batch } => reclassify_store(&load_config(&cli)?, *batch),
    }
}

/// `newsrelay check-config`: the config, and the taxonomy with the training set it names
/// (the same load the daemon does at start), exit 0 or one line naming the file and key.
fn check_config(c: &Config) -> Result<(), Failure> {
    let classifier =
        classify::Classifier::from_taxonomy_file(&c.taxonomy.file).map_err(taxonomy_failure)?;
    let t = classifier.taxonomy();
    // Feed defaults and subscriber filters must name labels the taxonomy has.
    let named = c
        .feeds
        .iter()
        .flat_map(|f| {
            f.programmes
                .iter()
                .map(move |p| (format!("feed {:?}", f.id), p))
        })
        .chain(c.subscribers.iter().flat_map(|s| {
            s.programmes
                .iter()
                .chain(&s.initiatives)
                .chain(&s.regions)
                .map(move |p| (format!("subscriber {:?}", s.email), p))
        }));
    for (owner, id) in named {
        if !t.labels.iter().any(|l| &l.id == id) {
            return Err(Failure {
                code: 2,
                error: anyhow::anyhow!(
                    "{}: {owner} names label {id:?}, which {} does not define (fix the id or add the label)",
                    c.path.display(),
                    c.taxonomy.file.display()
                ),
            });
        }
    }
    println!(
        "{}: ok ({} feeds, {} subscribers; taxonomy {}: {} programmes, {} initiatives, {} regions, version {:016x})",
        c.path.display(),
        c.feeds.len(),
        c.subscribers.len(),
        c.taxonomy.file.display(),
        t.ids(classify::LabelKind::Programme).count(),
        t.ids(classify::LabelKind::Initiative).count(),
        t.ids(classify::LabelKind::Region).count(),
        classifier.version(),
    );
    Ok(())
}

/// `newsrelay opml import FILE`: appends a `[[feeds]]` table per new subscription to the config
/// file, validated before it is written (atomically, by rename), and says what it added.
fn opml_import(config: &Config, file: &std::path::Path) -> Result<(), Failure> {
    use crate::feed_list::{append_feeds, read_opml};
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let subs = read_opml(&bytes).with_context(|| format!("{}", file.display()))?;
    let text = std::fs::read_to_string(&config.path)
        .with_context(|| format!("cannot read {}", config.path.display()))?;
    let r = append_feeds(&text, &config.feeds, &subs);
    for (url, reason) in &r.rejected {
        eprintln!("newsrelay: {}: skipped {url:?}: {reason}", file.display());
    }
    if !r.added.is_empty() {
        Config::from_str_at(&r.text, &config.path).map_err(|e| Failure {
            code: 1,
            error: anyhow::anyhow!(
                "the imported feeds would make {} invalid ({e}); nothing was written",
                config.path.display()
            ),
        })?;
        let tmp = config.path.with_extension("toml.opml-import");
        std::fs::write(&tmp, &r.text).with_context(|| format!("cannot write {}", tmp.display()))?;
        if let Ok(meta) = std::fs::metadata(&config.path) {
            // The config may hold a token; keep its permissions.
            let _ = std::fs::set_permissions(&tmp, meta.permissions());
        }
        std::fs::rename(&tmp, &config.path).with_context(|| {
            format!(
                "cannot replace {} with {}",
                config.path.display(),
                tmp.display()
            )
        })?;
    }
    for (id, url) in &r.added {
        println!("added {id} {url}");
    }
    println!(
        "{}: {} feeds added to {}, {} already configured, {} skipped",
        file.display(),
        r.added.len(),
        config.path.display(),
        r.present.len(),
        r.rejected.len()
    );
    Ok(())
}

/// `newsrelay status`: feeds and their health, item counts, store size, next digests. Reads
/// the store when it is free, else asks the running daemon at `server.listen`.
fn status_command(config: &Config) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let now = chrono::Utc::now();
    let (snapshot, source) = runtime.block_on(crate::status::collect(config, now))?;
    let subscribers = crate::status::subscribers(config, now);
    let text = crate::status::render(config, &snapshot, &subscribers, &source, now);
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    Ok(())
}

/// `newsrelay serve`: the HTTP server alone over the store as it is, until SIGTERM or SIGINT;
/// in-flight requests finish before it exits.
fn serve_http(config: &Config) -> Result<(), Failure> {
    use crate::server::{self, ServerState};
    crate::daemon::init_logging(&config.log);
    let store = std::sync::Arc::new(crate::store::Store::open(&config.store.path)?);
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
    let state = with_unsubscribe(
        ServerState::from_config(config, store.clone(), metrics)?,
        config,
    )?;
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = server::bind(&config.server.listen).await?;
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(listen = %addr, "HTTP server listening");
        }
        let (_control, mut shutdown) = crate::daemon::listen_for_signals()?;
        tracing::info!(listen = %config.server.listen, base_url = %config.server.base_url, "serving");
        crate::daemon::systemd::ready();
        server::serve(state, listener, async move { shutdown.stopped().await }).await?;
        anyhow::Ok(())
    })?;
    store.flush()?;
    Ok(())
}

/// `newsrelay compact`: rewrites the store into a fresh folder and swaps it in; prints the
/// size before and after. Refused while the daemon (or anything else) has the store open.
fn compact_store(config: &Config) -> Result<(), Failure> {
    let path = &config.store.path;
    let started = std::time::Instant::now();
    let r = crate::store::compact(path)?;
    let mb = |b: u64| b as f64 / 1_048_576.0;
    println!(
        "compacted {}: {:.1} MB -> {:.1} MB ({} items, {} records in {} trees, {:.1} s)",
        path.display(),
        mb(r.before_bytes),
        mb(r.after_bytes),
        r.items,
        r.records,
        r.trees,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `newsrelay export`: the whole store as JSON lines on standard output.
fn export_store(config: &Config) -> Result<(), Failure> {
    let store = crate::store::Store::open(&config.store.path)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let r = store.export(&mut out)?;
    eprintln!(
        "exported {} items, {} feed states, {} tombstones",
        r.items, r.feed_states, r.tombstones
    );
    Ok(())
}

/// `newsrelay import FILE`: restores JSON lines; prints a progress line after each durable
/// batch (`durable through line L, N items added`); bad lines are reported and skipped.
fn import_store(config: &Config, file: &std::path::Path) -> Result<(), Failure> {
    let store = crate::store::Store::open(&config.store.path)?;
    let f = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut input = std::io::BufReader::new(f);
    let mut stdout = std::io::stdout().lock();
    let r = store.import(&mut input, &mut |p| {
        // Progress is advisory: a closed stdout must not stop the import.
        let _ = writeln!(
            stdout,
            "durable through line {}, {} items added",
            p.durable_through_line, p.items_added
        );
        let _ = stdout.flush();
    })?;
    for e in &r.errors {
        eprintln!("newsrelay: {}: {e}", file.display());
    }
    println!(
        "imported {} items ({} already present), {} feed states, {} tombstones from {} lines",
        r.items_added, r.items_present, r.feed_states, r.tombstones, r.lines
    );
    if r.bad_lines > 0 {
        return Err(anyhow::anyhow!(
            "{}: {} bad lines skipped (see above)",
            file.display(),
            r.bad_lines
        )
        .into());
    }
    Ok(())
}

fn read_input(file: Option<&std::path::Path>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    match file {
        None => {
            std::io::stdin().read_to_end(&mut buf)?;
        }
        Some(p) if p.as_os_str() == "-" => {
            std::io::stdin().read_to_end(&mut buf)?;
        }
        Some(p) => {
            buf = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        }
    }
    Ok(buf)
}

fn parse_one(
    file: Option<&std::path::Path>,
    url: Option<&str>,
    content_type: Option<&str>,
) -> Result<(), Failure> {
    let body = read_input(file)?;
    let file_url;
    let url = match (url, file) {
        (Some(u), _) => Some(u),
        (None, Some(p)) if p.as_os_str() != "-" => {
            file_url = std::fs::canonicalize(p)
                .ok()
                .and_then(|p| url::Url::from_file_path(p).ok())
                .map(|u| u.to_string());
            file_url.as_deref()
        }
        _ => None,
    };
    let input = FeedInput {
        body: &body,
        url,
        content_type,
        headers: &[],
        limits: Default::default(),
    };
    let name = file.map_or("<stdin>".to_string(), |p| p.display().to_string());
    let feed = parse::parse_feed(&input).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let out = serde_json::to_string_pretty(&feed).context("cannot serialise result")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{out}")?;
    Ok(())
}

#[derive(serde::Deserialize)]
struct BatchRequest {
    id: serde_json::Value,
    body_b64: String,
    url: Option<String>,
    content_type: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
}

/// The conformance protocol: one JSON request per line in, one JSON answer per line out.
fn parse_batch() -> Result<()> {
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    for line in stdin.lines() {
        let line = line.context("cannot read standard input")?;
        if line.trim().is_empty() {
            continue;
        }
        let answer = match serde_json::from_str::<BatchRequest>(&line) {
            Err(e) => serde_json::json!({"id": null, "error": format!("bad request line: {e}")}),
            Ok(req) => {
                let id = req.id.clone();
                match batch_one(req) {
                    Ok(v) => serde_json::json!({"id": id, "result": v}),
                    Err(e) => serde_json::json!({"id": id, "error": e}),
                }
            }
        };
        serde_json::to_writer(&mut stdout, &answer)?;
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(())
}

fn batch_one(req: BatchRequest) -> Result<serde_json::Value, String> {
    let body = base64::engine::general_purpose::STANDARD
        .decode(req.body_b64.as_bytes())
        .map_err(|e| format!("body_b64: {e}"))?;
    let headers: Vec<(String, String)> = req
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let content_type = req.content_type.or_else(|| {
        headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.clone())
    });
    let input = FeedInput {
        body: &body,
        url: req.url.as_deref(),
        content_type: content_type.as_deref(),
        headers: &headers,
        limits: Default::default(),
    };
    let parsed = std::panic::catch_unwind(|| parse::parse_feed(&input))
        .map_err(|_| "parser panicked (a bug: please report it with this input)".to_string())?
        .map_err(|e| e.to_string())?;
    serde_json::to_value(&parsed).map_err(|e| e.to_string())
}

/// The labelling function the pipeline uses: the feed's default programmes.
pub fn feed_default_labeler() -> crate::fetch_cycle::Labeler {
    std::sync::Arc::new(|feed: &config::FeedSettings, _item: &crate::item::Item| {
        crate::item::Labels {
            programmes: feed
                .programmes
                .iter()
                .map(|p| crate::item::Label {
                    id: p.clone(),
                    score: 1.0,
                    why: vec![format!("feed default of {}", feed.id)],
                })
                .collect(),
            ..Default::default()
        }
    })
}

/// `newsrelay fetch [--feed ID]`: one cycle over every configured feed (or one), a line per
/// feed, a progress bar on a terminal. Exits 1 only when every feed failed.
fn fetch_once(config: &Config, only: Option<&str>) -> Result<(), Failure> {
    use crate::fetch_cycle::{run_cycle, CycleContext};
    use std::io::IsTerminal;
    let feeds: Vec<_> = match only {
        Some(id) => {
            let f = config
                .feeds
                .iter()
                .find(|f| f.id == id)
                .ok_or_else(|| Failure {
                    code: 2,
                    error: anyhow::anyhow!(
                        "no feed {id:?} in {} (known: {})",
                        config.path.display(),
                        config
                            .feeds
                            .iter()
                            .map(|f| f.id.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })?;
            vec![f.clone()]
        }
        None => config.feeds.clone(),
    };
    if feeds.is_empty() {
        println!("no feeds configured in {}", config.path.display());
        return Ok(());
    }
    // The summary below says everything per feed; logs only add errors unless RUST_LOG asks.
    crate::daemon::init_logging(&config::LogSettings {
        level: "error".into(),
        ..config.log.clone()
    });
    let store = std::sync::Arc::new(crate::store::Store::open(&config.store.path)?);
    let fetcher = std::sync::Arc::new(crate::fetch::Fetcher::new(&config.fetch)?);
    let cx = CycleContext {
        store,
        fetcher,
        labeler: classifier_labeler(config)?,
        metrics: Default::default(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let bar = if std::io::stderr().is_terminal() && feeds.len() > 1 {
        let bar = indicatif::ProgressBar::new(feeds.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} feeds {elapsed} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let total = feeds.len();
    let report = runtime.block_on(run_cycle(&cx, feeds, |r| {
        if let Some(bar) = &bar {
            bar.inc(1);
            bar.set_message(r.feed.clone());
        }
    }));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut stdout = std::io::stdout().lock();
    for line in &report.feeds {
        writeln!(stdout, "{line}")?;
    }
    writeln!(
        stdout,
        "{} feeds in {:.1} s: {} new, {} updated, {} failed",
        total,
        report.elapsed.as_secs_f64(),
        report.inserted(),
        report.updated(),
        report.failed()
    )?;
    if report.failed() == total {
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!("every feed failed (see the lines above)"),
        });
    }
    Ok(())
}

/// The labelling function the pipeline uses: the classifier over the item's text, with the
/// feed's default programmes folded in.
pub fn classifier_labeler(config: &Config) -> Result<crate::fetch_cycle::Labeler, Failure> {
    let classifier = crate::classify::Classifier::from_taxonomy_file(&config.taxonomy.file)
        .map_err(taxonomy_failure)?;
    Ok(crate::reclassify::Live::new(classifier, config.feeds.clone()).labeler())
}

/// `newsrelay reclassify`: every stored item whose labels came from another taxonomy version
/// is relabelled in durable batches; a progress bar on a terminal, else a line per tenth.
fn reclassify_store(config: &Config, batch: usize) -> Result<(), Failure> {
    use std::io::IsTerminal;
    let classifier = crate::classify::Classifier::from_taxonomy_file(&config.taxonomy.file)
        .map_err(taxonomy_failure)?;
    let store = crate::store::Store::open(&config.store.path)?;
    let started = std::time::Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} items {elapsed} ({per_sec}) {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_tenth = 0;
    let mut last_line = std::time::Instant::now();
    let report =
        crate::reclassify::reclassify(&store, &classifier, &config.feeds, batch, &mut |r| {
            let pos = r.done_before + r.examined;
            match &bar {
                Some(bar) => {
                    bar.set_length(r.total);
                    bar.set_position(pos);
                    bar.set_message(format!("{} relabelled", r.changed));
                }
                None => {
                    // Reported only once the batch is durable.
                    let tenth = pos * 10 / r.total.max(1);
                    if tenth > last_tenth || last_line.elapsed().as_secs() >= 10 {
                        last_tenth = tenth;
                        last_line = std::time::Instant::now();
                        eprintln!(
                            "reclassify: {pos}/{} items checked, {} relabelled",
                            r.total, r.changed
                        );
                    }
                }
            }
            true
        })?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "taxonomy version {:016x}: {} items checked, {} relabelled ({} with changed labels) in {:.2} s ({:.0} items/s)",
        classifier.version(),
        report.examined,
        report.changed,
        report.labels_changed,
        secs,
        report.examined as f64 / secs.max(1e-9),
    )?;
    if report.resumed {
        writeln!(
            out,
            "resumed an interrupted pass: {} items were already done",
            report.done_before
        )?;
    }
    // Per label, in taxonomy order (programmes first), then ids the taxonomy no longer has.
    let mut ids: Vec<&str> = classifier
        .taxonomy()
        .labels
        .iter()
        .map(|l| l.id.as_str())
        .collect();
    for id in report.gained.keys().chain(report.lost.keys()) {
        if !ids.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    for id in ids {
        let gained = report.gained.get(id).copied().unwrap_or(0);
        let lost = report.lost.get(id).copied().unwrap_or(0);
        if gained + lost > 0 {
            writeln!(out, "  {id:<36} +{gained} -{lost}")?;
        }
    }
    Ok(())
}

/// Unsubscribe tokens checked with the digest key; the ledger records the opt-out.
struct DigestUnsubscribe {
    key: crate::digest::DigestKey,
    subscribers: Vec<config::SubscriberSettings>,
    ledger: crate::digest::FileLedger,
}

impl crate::server::Unsubscribe for DigestUnsubscribe {
    fn subscriber_for_token(&self, token: &str) -> Option<String> {
        self.key
            .subscriber_for_token(token, &self.subscribers)
            .map(|s| s.email.clone())
    }
    fn unsubscribe(&self, email: &str) -> Result<(), String> {
        use crate::digest::LedgerStore;
        let mut ledger = self.ledger.load(email).map_err(|e| e.to_string())?;
        ledger.unsubscribe(chrono::Utc::now());
        self.ledger.save(email, &ledger).map_err(|e| e.to_string())
    }
}

/// Plugs the one-click unsubscribe into the server when subscribers are configured.
fn with_unsubscribe(
    state: crate::server::ServerState,
    config: &Config,
) -> Result<crate::server::ServerState, Failure> {
    if config.subscribers.is_empty() {
        return Ok(state);
    }
    let dir = crate::digest::state_dir(&config.store.path);
    let key = crate::digest::DigestKey::load_or_create(&dir.join("key"))?;
    let ledger = crate::digest::FileLedger::new(&dir.join("ledger"))?;
    Ok(
        state.with_unsubscribe(std::sync::Arc::new(DigestUnsubscribe {
            key,
            subscribers: config.subscribers.clone(),
            ledger,
        })),
    )
}

/// `newsrelay run`: the daemon until SIGTERM/SIGINT: fetch cycles, digests, HTTP server.
fn run_daemon(cli: &Cli) -> Result<(), Failure> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let path = config::locate(cli.config.as_deref());
    let config = Config::load(&path)?;
    // Before anything logs (the daemon's own call later is then a no-op).
    crate::daemon::init_logging(&config.log);
    let classifier = crate::classify::Classifier::from_taxonomy_file(&config.taxonomy.file)
        .map_err(taxonomy_failure)?;
    let live = crate::reclassify::Live::new(classifier, config.feeds.clone());
    let labeler = live.labeler();
    let store = Arc::new(crate::store::Store::open(&config.store.path)?);
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let _guard = runtime.enter();

    let state = with_unsubscribe(
        crate::server::ServerState::from_config(&config, store.clone(), metrics.clone())?,
        &config,
    )?;
    let listener = runtime.block_on(crate::server::bind(&config.server.listen))?;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listen = %addr, "HTTP server listening");
    }
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(crate::server::serve(state.clone(), listener, async move {
        let _ = server_stopped.await;
    }));

    // Digests: checked on the scheduler tick, at most every `digest.check_every`, never two
    // runs at once; they read the daemon's own open store.
    let digest_running = Arc::new(AtomicBool::new(false));
    let last_digest_check = Arc::new(Mutex::new(None::<std::time::Instant>));
    let digest_store = store.clone();
    let digest_metrics = metrics.clone();
    let on_tick = Box::new(move |cfg: &Config| {
        if cfg.smtp.is_none() || cfg.subscribers.is_empty() {
            return;
        }
        if let Ok(mut last) = last_digest_check.lock() {
            if last.is_some_and(|t| t.elapsed() < cfg.digest.check_every) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        if digest_running.swap(true, Ordering::SeqCst) {
            return;
        }
        let cfg = cfg.clone();
        let store = digest_store.clone();
        let running = digest_running.clone();
        let metrics = digest_metrics.clone();
        tokio::spawn(async move {
            use std::sync::atomic::Ordering::Relaxed;
            let mode = crate::digest::RunMode::Send { force: false };
            match crate::digest::run_with_store(&cfg, &store, &mode, chrono::Utc::now()).await {
                Ok(report) => {
                    let permanent = report
                        .subscribers
                        .iter()
                        .filter(|s| {
                            matches!(s.outcome, crate::digest::Outcome::PermanentFailure(_))
                        })
                        .count();
                    metrics
                        .digests_sent
                        .fetch_add(report.sent() as u64, Relaxed);
                    metrics.digests_failed.fetch_add(permanent as u64, Relaxed);
                    tracing::debug!(?report, "digest check done")
                }
                Err(e) => tracing::error!(error = %e, "digest run failed"),
            }
            running.store(false, Ordering::SeqCst);
        });
    });

    let cycle_state = state.clone();
    let on_cycle = Box::new(move |report: &crate::fetch_cycle::CycleReport| {
        if !report.changed() {
            return;
        }
        cycle_state.invalidate();
        if let Some(hub) = cycle_state.websub_hub().map(str::to_string) {
            let urls = cycle_state.feed_urls_for(&[]);
            tokio::spawn(async move {
                if let Ok(client) = crate::server::hub_client() {
                    let r = crate::server::ping_hub(&client, &hub, &urls).await;
                    tracing::info!(
                        accepted = r.accepted.len(),
                        failed = r.failed.len(),
                        "WebSub hub pinged"
                    );
                }
            });
        }
    });

    // Reclassification runs beside fetch cycles: now (items stored under an older taxonomy)
    // and after a reload that changed the taxonomy; a broken new taxonomy keeps the old one.
    let relabelled_state = state.clone();
    let reclassifier = Arc::new(crate::reclassify::Background::start(
        store.clone(),
        live.clone(),
        crate::reclassify::DEFAULT_BATCH,
        Box::new(move |_| relabelled_state.invalidate()),
    )?);
    let waker = reclassifier.clone();
    let on_reload = Box::new(move |cfg: &Config| {
        match crate::classify::Classifier::from_taxonomy_file(&cfg.taxonomy.file) {
            Ok(c) => {
                if live.replace(c, cfg.feeds.clone()) {
                    tracing::info!("taxonomy changed: reclassifying stored items");
                    waker.wake();
                }
            }
            Err(e) => tracing::error!("taxonomy rejected, keeping the running one: {e}"),
        }
    });

    let hooks = crate::daemon::Hooks {
        store: store.clone(),
        metrics,
        labeler,
        tick: std::time::Duration::from_secs(5),
        on_tick,
        on_cycle,
        on_reload,
    };
    let result = runtime.block_on(crate::daemon::run(path, hooks));
    reclassifier.stop();
    let _ = stop_server.send(());
    let _ = runtime.block_on(server);
    store.flush()?;
    result?;
    Ok(())
}

struct ClassifyArgs<'a> {
    file: Option<&'a std::path::Path>,
    feed: bool,
    eval: bool,
    cv: Option<usize>,
    tune: bool,
    taxonomy: Option<&'a std::path::Path>,
}

/// A taxonomy or labelled-set problem is a configuration error (exit 2).
fn taxonomy_failure(e: classify::ClassifyError) -> Failure {
    Failure {
        code: 2,
        error: e.into(),
    }
}

/// `newsrelay classify`: items or a feed in, labels out; or `--eval` a labelled file.
fn classify_command(cli: &Cli, args: &ClassifyArgs<'_>) -> Result<(), Failure> {
    let config = match args.taxonomy {
        Some(_) => None,
        None => Some(load_config(cli)?),
    };
    let taxonomy_path = match (args.taxonomy, &config) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(c)) => c.taxonomy.file.clone(),
        (None, None) => PathBuf::from("config/programmes.toml"),
    };
    let classifier =
        classify::Classifier::from_taxonomy_file(&taxonomy_path).map_err(taxonomy_failure)?;
    let name = args
        .file
        .filter(|p| p.as_os_str() != "-")
        .map_or("<stdin>".to_string(), |p| p.display().to_string());

    if args.eval {
        let text = String::from_utf8(read_input(args.file)?)
            .map_err(|_| anyhow::anyhow!("{name}: labelled file is not UTF-8 text"))?;
        let items = classify::parse_labelled(&text, std::path::Path::new(&name))
            .map_err(taxonomy_failure)?;
        classify::check_ids(classifier.taxonomy(), &items).map_err(taxonomy_failure)?;
        let mut stdout = std::io::stdout().lock();
        if args.tune {
            let k = args.cv.unwrap_or(5);
            let shares = [0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0];
            let thresholds: Vec<f32> = (4..=16).map(|t| t as f32 * 0.05).collect();
            let points = classify::tune(classifier.taxonomy(), &items, k, &shares, &thresholds);
            writeln!(
                stdout,
                "{k}-fold cross-validation, programmes, {} items (share 1.0 = rules alone, 0.0 = model alone)",
                items.len()
            )?;
            writeln!(
                stdout,
                "{:>10} {:>9} {:>9} {:>7} {:>8}",
                "rule_share", "threshold", "precision", "recall", "micro_f1"
            )?;
            for p in &points {
                writeln!(
                    stdout,
                    "{:>10.2} {:>9.2} {:>9.3} {:>7.3} {:>8.3}",
                    p.rule_share, p.threshold, p.precision, p.recall, p.micro_f1
                )?;
            }
            return Ok(());
        }
        let evaluation = match args.cv {
            Some(k) => {
                writeln!(
                    stdout,
                    "{k}-fold cross-validation on {name} (model trained on the other folds only)"
                )?;
                classify::cross_validate(classifier.taxonomy(), &items, k)
            }
            None => {
                writeln!(
                    stdout,
                    "evaluation on {name} with the configured model (use --cv K for held-out figures)"
                )?;
                classify::evaluate(&classifier, &items)
            }
        };
        write!(stdout, "{}", evaluation.table())?;
        writeln!(
            stdout,
            "programme micro-F1: {:.3}",
            evaluation.programme_micro_f1()
        )?;
        return Ok(());
    }

    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let report = if args.feed {
        let body = read_input(args.file)?;
        let input = FeedInput {
            body: &body,
            url: None,
            content_type: None,
            headers: &[],
            limits: Default::default(),
        };
        let feed = parse::parse_feed(&input).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        classify::jsonl::classify_feed(&classifier, &feed, &mut stdout, &[])?
    } else {
        let feeds = config.as_ref().map(|c| c.feeds.as_slice()).unwrap_or(&[]);
        let defaults = |id: &str| {
            feeds
                .iter()
                .find(|f| f.id == id)
                .map(|f| f.programmes.as_slice())
        };
        let reader: Box<dyn BufRead> = match args.file {
            Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufReader::new(
                std::fs::File::open(p).with_context(|| format!("cannot read {}", p.display()))?,
            )),
            _ => Box::new(std::io::stdin().lock()),
        };
        classify::jsonl::classify_json_lines(&classifier, reader, &mut stdout, &name, defaults)?
    };
    for e in &report.errors {
        eprintln!("{e}");
    }
    if report.errors.is_empty() {
        Ok(())
    } else {
        Err(Failure {
            code: 1,
            error: anyhow::anyhow!(
                "{} of {} input lines were not items and were skipped",
                report.errors.len(),
                report.errors.len() + report.classified
            ),
        })
    }
}

/// `newsrelay digest preview|send`: one line per subscriber; exit 1 when any digest failed.
fn digest_command(config: &Config, action: &DigestAction) -> Result<(), Failure> {
    use crate::digest::{run_configured, Outcome, RunMode};
    let mode = match action {
        DigestAction::Preview { subscriber, out } => RunMode::Preview {
            out: out.clone(),
            subscriber: subscriber.clone(),
        },
        DigestAction::Send { now } => RunMode::Send { force: *now },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let now = chrono::Utc::now();
    let report = runtime.block_on(run_configured(config, &mode, now))?;
    let verb = match mode {
        RunMode::Preview { ref out, .. } => format!("written to {}", out.display()),
        RunMode::Send { .. } => "sent".to_string(),
    };
    for s in &report.subscribers {
        let period = s.period.as_deref().unwrap_or("-");
        match &s.outcome {
            Outcome::Sent { items, resend, .. } => println!(
                "{}: {period}: {items} items {verb}{}",
                s.email,
                if *resend {
                    " (re-sent after an interrupted send)"
                } else {
                    ""
                }
            ),
            Outcome::NotDue => {
                let next = config
                    .subscribers
                    .iter()
                    .find(|c| c.email == s.email)
                    .and_then(|c| crate::schedule::DigestSchedule::from_subscriber(c).next_due(now))
                    .map_or("-".to_string(), |p| format!("{} at {}", p.key, p.due));
                println!("{}: nothing due (next: {next})", s.email)
            }
            Outcome::Unsubscribed => println!("{}: unsubscribed", s.email),
            Outcome::SkippedEmpty => println!("{}: {period}: no new items, not sent", s.email),
            Outcome::TemporaryFailure(e) => {
                eprintln!("newsrelay: {}: {period}: {e} (will retry)", s.email)
            }
            Outcome::PermanentFailure(e) | Outcome::Error(e) => {
                eprintln!("newsrelay: {}: {period}: {e}", s.email)
            }
        }
    }
    match report.failed() {
        0 => Ok(()),
        n => Err(Failure {
            code: 1,
            error: anyhow::anyhow!(
                "{n} of {} digests failed (see above)",
                report.subscribers.len()
            ),
        }),
    }
}
