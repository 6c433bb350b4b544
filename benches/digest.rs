//! Benchmark placeholder: filled in with the digest stage.
fn main() {}
