//! Digests: which items each subscriber gets, rendering them, sending, and the delivery ledger.
//!
//! In: subscribers, the store, a clock, a mailer. Out: digests delivered exactly once per
//! (subscriber, period). It must never mark an item delivered before the SMTP server accepted
//! the message.
