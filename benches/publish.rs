//! Benchmark placeholder: filled in with the publish stage.
fn main() {}
