//! Benchmark placeholder: filled in with the ingest stage.
fn main() {}
