//! WebSub publishing: tells the configured hub that published feeds changed.
//!
//! In: the hub URL and the feed URLs that changed. Out: one `POST hub.mode=publish&hub.url=...`
//! per URL (the form every hub accepts) and a [`HubPingReport`]. Called by the daemon after an
//! ingest changed a feed. It must never block the caller past its timeout, follow the hub to
//! another host, or give up on the remaining URLs because one ping failed.

use std::time::Duration;

/// Most URLs pinged in one call; the rest are reported as skipped.
const MAX_URLS: usize = 256;

/// What pinging the hub did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubPingReport {
    /// URLs the hub accepted (2xx).
    pub accepted: Vec<String>,
    /// URLs that failed, with a one-line reason.
    pub failed: Vec<(String, String)>,
}

/// A client suitable for hub pings: bounded time, no redirects.
pub fn hub_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!(
            "newsrelay/",
            env!("CARGO_PKG_VERSION"),
            " (WebSub publisher)"
        ))
        .build()
}

/// POSTs `hub.mode=publish` for each of `urls` to `hub`.
pub async fn ping_hub(client: &reqwest::Client, hub: &str, urls: &[String]) -> HubPingReport {
    let mut report = HubPingReport::default();
    for (i, url) in urls.iter().enumerate() {
        if i >= MAX_URLS {
            report.failed.push((
                url.clone(),
                format!("skipped: more than {MAX_URLS} URLs in one ping"),
            ));
            continue;
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("hub.mode", "publish")
            .append_pair("hub.url", url)
            .finish();
        let result = client
            .post(hub)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => report.accepted.push(url.clone()),
            Ok(r) => report
                .failed
                .push((url.clone(), format!("hub {hub} answered {}", r.status()))),
            Err(e) => report
                .failed
                .push((url.clone(), format!("cannot reach hub {hub}: {e}"))),
        }
    }
    report
}
