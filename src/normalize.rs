//! Normalisation: one parsed entry → one [`crate::item::Item`].
//!
//! In: a [`crate::parse::Entry`] and its feed's context. Out: an `Item` with a canonical
//! absolute link, UTC dates, sanitised HTML, a plain-text title and summary, a deterministic id,
//! a content hash and a SimHash fingerprint. This is the only place an `Item` is built. It must
//! never do I/O and never invent a random id.
