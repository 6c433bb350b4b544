//! Publishing: stored items → RSS 2.0, Atom 1.0, JSON Feed 1.1, OPML and HTML bytes.
//!
//! In: a list of items and the feed's identity (taxonomy id, filters, base URL). Out: bytes of
//! one document, valid against its specification, with item HTML sanitised and text escaped. It
//! must never do I/O.
