//! Benchmark placeholder: filled in with the classify stage.
fn main() {}
