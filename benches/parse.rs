//! Benchmark placeholder: filled in with the parse stage.
fn main() {}
