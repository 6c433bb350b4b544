//! All integration tests, in one test binary (one link instead of one per file).
//! Each module is one area; tests start real servers on 127.0.0.1:0 and real stores in
//! temporary folders.

mod classify;
mod cli;
mod daemon;
mod digest;
mod fetch;
mod ingest;
mod parse;
mod publish;
mod reclassify;
mod server;
