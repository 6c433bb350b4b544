//! The HTTP server: axum routes over the store (feeds, OPML, API, web page, health, metrics,
//! unsubscribe).
//!
//! In: HTTP requests. Out: responses with validators and caching. Public routes are read-only;
//! it must never change the store except through the unsubscribe and token-protected routes.
