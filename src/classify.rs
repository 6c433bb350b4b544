//! Classification: an item's text → programmes, initiatives and regions, each with a score and
//! the reasons a person can read.
//!
//! In: a taxonomy (from `programmes.toml`) and an item's title, summary and content. Out:
//! [`crate::item::Labels`]. It must never do I/O during classification (loading the taxonomy
//! file is separate) and must stay fast: it runs on every ingested item.
