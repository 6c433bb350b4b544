//! # newsrelay
//!
//! A news aggregator and republisher. It fetches RSS, Atom and JSON feeds, normalises and
//! deduplicates their items into a sled store, classifies each item by programme, initiative
//! and region, and republishes filtered feeds (RSS 2.0, Atom 1.0, JSON Feed 1.1) and email
//! digests.
//!
//! ## Layout
//!
//! The modules are declared in pipeline order; a module imports only modules above it.
//! The pure stages (`item` to `publish`) do no I/O, which keeps them fast to test and bench.
//!
//! | module | job |
//! |---|---|
//! | [`item`] | `Item`, `ItemId`, `FeedId`, `ContentHash`, labels: plain data |
//! | [`config`] | TOML → raw → validated settings; each module receives only its own part |
//! | [`metrics`] | counters and histograms every stage feeds; Prometheus text |
//! | [`parse`] | bytes + URL + headers → [`parse::ParsedFeed`] (formats, encodings, leniency, sanitising) |
//! | [`normalize`] | parsed entry → [`item::Item`]: canonical URLs, UTC dates, plain text, ids, hashes |
//! | [`dedup`] | pure decisions: new items vs stored metadata → insert / update / skip / merge |
//! | [`classify`] | `Item` → programmes, initiatives, regions with scores and reasons |
//! | [`publish`] | items → RSS 2.0 / Atom 1.0 / JSON Feed / OPML / HTML bytes |
//! | [`fetch`] | HTTP with conditional GET, limits, redirects, politeness → body or not-modified |
//! | [`store`] | sled trees and key encodings; applies one feed's intents atomically |
//! | [`ingest`] | one feed end to end; a bad feed becomes a report, never a crash |
//! | [`fetch_cycle`] | every due feed: fetch, ingest, record state; concurrent within limits |
//! | [`reclassify`] | stored items relabelled after a taxonomy change: resumable batches, a background thread for the daemon |
//! | [`feed_list`] | OPML export of the configured feeds, import appended to the config |
//! | [`digest`] | who gets what, rendering, sending, the delivery ledger |
//! | [`status`] | `newsrelay status`: feed health, counts, store size, next digests, as a table |
//! | [`server`] | axum routes, read-only over the store |
//! | [`schedule`] | when fetches and digests run |
//! | [`daemon`] | wiring, signals, systemd readiness, graceful stop and flush |
//! | [`cli`] | clap commands, each a thin call into the above |
//! | [`allocator`] | the process's allocator: jemalloc with two arenas (not a stage; every binary that links the library uses it) |

pub mod allocator;
pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dedup;
pub mod digest;
pub mod feed_list;
pub mod fetch;
pub mod fetch_cycle;
pub mod ingest;
pub mod item;
pub mod metrics;
pub mod normalize;
pub mod parse;
pub mod publish;
pub mod reclassify;
pub mod schedule;
pub mod server;
pub mod status;
pub mod store;
