//! HTML pages: the index page (`GET /`) and the unsubscribe confirm and done pages.
//!
//! In: an [`IndexPage`] (counts per programme, initiative and region, the latest items, the
//! weekly counts for the chart) or an unsubscribe token. Out: one complete HTML5 document with
//! inline CSS, readable on a phone (fluid layout, tables that scroll sideways), subscribe links
//! to every feed in RSS, Atom and JSON on the deployment's own base URL, the chart as inline SVG
//! with a title, a text description and a data table. Item text is escaped and item links are
//! kept only when absolute `http(s)`. It must never reference an external asset (no `src`, no
//! remote stylesheet, font or script) or emit item markup unescaped.

use super::chart::{describe, render_chart_svg, render_chart_table, WeeklyCounts};
use super::escape::{push_attr, push_text};
use super::{
    feed_url, is_absolute_http, item_link, primary_source, FeedFormat, PublishError,
    SourceDirectory, TaxonKind,
};
use crate::item::Item;
use chrono::{DateTime, SecondsFormat, Utc};

/// Item count of one published label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxonCount {
    /// Taxonomy id, used in the feed URLs.
    pub id: String,
    pub title: String,
    pub kind: TaxonKind,
    pub count: u64,
}

/// Everything the index page shows.
#[derive(Debug, Clone, Copy)]
pub struct IndexPage<'a> {
    pub site_title: &'a str,
    /// Public base URL of this deployment (absolute `http(s)`).
    pub base_url: &'a str,
    /// Items in the store, all labels.
    pub total_items: u64,
    /// Every programme, initiative and region with its count, in display order.
    pub taxa: &'a [TaxonCount],
    /// Newest items first.
    pub latest: &'a [Item],
    pub sources: &'a SourceDirectory,
    /// Items per programme per week, last 12 weeks.
    pub chart: &'a WeeklyCounts,
    /// When the page data was read (shown in the footer).
    pub generated: DateTime<Utc>,
}

const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1b1b1b;--bg:#fff;--muted:#555;--line:#ddd;--link:#0b57d0}\
@media (prefers-color-scheme:dark){:root{--fg:#eee;--bg:#161616;--muted:#aaa;--line:#444;--link:#8ab4f8}\
.chart{background:#fff;border-radius:4px}}\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
header,main,footer{max-width:60rem;margin:0 auto;padding:0 1rem}\
h1{font-size:1.6rem;margin:1rem 0 .25rem}h2{font-size:1.25rem;margin:1.75rem 0 .5rem}\
a{color:var(--link)}a:focus{outline:2px solid var(--link);outline-offset:2px}\
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:var(--bg);padding:.25rem}\
.meta{color:var(--muted);font-size:.875rem}\
.latest{padding-left:1.25rem}.latest li{margin:.5rem 0}.latest p{margin:.15rem 0}\
.scroll{overflow-x:auto}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line)}\
td.n{text-align:right;font-variant-numeric:tabular-nums}\
.subscribe a{display:inline-block;margin-right:.5rem;padding:.1rem .4rem;border:1px solid var(--line);border-radius:4px;text-decoration:none}\
figure{margin:0}svg.chart{width:100%;height:auto;max-width:100%}\
form button{font:inherit;padding:.5rem 1rem;margin-top:.5rem}\
@media (max-width:30rem){h1{font-size:1.3rem}th,td{padding:.3rem .25rem}.subscribe a{margin:.1rem .2rem .1rem 0}}";

fn open_document(out: &mut String, title: &str) {
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
    );
    push_text(out, title);
    out.push_str("</title>\n");
}

fn close_head(out: &mut String) {
    out.push_str("<style>");
    out.push_str(STYLE);
    out.push_str(
        "</style>\n</head>\n<body>\n<a class=\"skip\" href=\"#main\">Skip to content</a>\n",
    );
}

fn require_base(base_url: &str) -> Result<&str, PublishError> {
    if is_absolute_http(base_url) {
        Ok(base_url.trim_end_matches('/'))
    } else {
        Err(PublishError::NotAbsolute {
            field: "base_url",
            value: base_url.to_string(),
        })
    }
}

/// Renders the index page.
pub fn render_index(page: &IndexPage<'_>) -> Result<String, PublishError> {
    let base = require_base(page.base_url)?;
    let mut out = String::with_capacity(16 * 1024 + page.latest.len() * 600);
    open_document(&mut out, page.site_title);
    // Feed autodiscovery for the "all" feed, on our own base URL.
    for format in FeedFormat::ALL {
        out.push_str("<link rel=\"alternate\" type=\"");
        out.push_str(format.content_type().split(';').next().unwrap_or(""));
        out.push_str("\" title=\"");
        push_attr(
            &mut out,
            &format!("{}: all news ({})", page.site_title, format.label()),
        );
        out.push_str("\" href=\"");
        push_attr(&mut out, &feed_url(base, "all", format));
        out.push_str("\">\n");
    }
    close_head(&mut out);

    out.push_str("<header>\n<h1>");
    push_text(&mut out, page.site_title);
    out.push_str("</h1>\n<p class=\"meta\">");
    out.push_str(&page.total_items.to_string());
    out.push_str(" items. All news: ");
    subscribe_links(&mut out, base, "all", "all news");
    out.push_str(" <a href=\"");
    push_attr(&mut out, base);
    out.push_str("/opml\">OPML list of every feed</a></p>\n</header>\n<main id=\"main\">\n");

    latest_section(&mut out, page);
    chart_section(&mut out, page.chart);
    for kind in [
        TaxonKind::Programme,
        TaxonKind::Initiative,
        TaxonKind::Region,
    ] {
        taxa_section(&mut out, base, kind, page.taxa);
    }

    out.push_str("</main>\n<footer><p class=\"meta\">Updated <time datetime=\"");
    out.push_str(&page.generated.to_rfc3339_opts(SecondsFormat::Secs, true));
    out.push_str("\">");
    out.push_str(&page.generated.format("%-d %B %Y, %H:%M UTC").to_string());
    out.push_str("</time>.</p></footer>\n</body>\n</html>\n");
    Ok(out)
}

fn subscribe_links(out: &mut String, base: &str, id: &str, what: &str) {
    out.push_str("<span class=\"subscribe\">");
    for format in FeedFormat::ALL {
        out.push_str("<a href=\"");
        push_attr(out, &feed_url(base, id, format));
        out.push_str("\" aria-label=\"");
        push_attr(out, &format!("{what}: {} feed", format.label()));
        out.push_str("\">");
        out.push_str(format.label());
        out.push_str("</a>");
    }
    out.push_str("</span>");
}

fn latest_section(out: &mut String, page: &IndexPage<'_>) {
    out.push_str("<section aria-labelledby=\"latest-heading\">\n<h2 id=\"latest-heading\">Latest news</h2>\n");
    if page.latest.is_empty() {
        out.push_str("<p>No items yet.</p>\n</section>\n");
        return;
    }
    out.push_str("<ol class=\"latest\">\n");
    for item in page.latest {
        out.push_str("<li>");
        let title = if item.title.trim().is_empty() {
            "Untitled"
        } else {
            item.title.as_str()
        };
        match item_link(item) {
            Some(link) => {
                out.push_str("<a rel=\"noopener noreferrer\" href=\"");
                push_attr(out, link);
                out.push_str("\">");
                push_text(out, title);
                out.push_str("</a>");
            }
            None => push_text(out, title),
        }
        let date = item.display_date();
        out.push_str("<br><span class=\"meta\"><time datetime=\"");
        out.push_str(&date.to_rfc3339_opts(SecondsFormat::Secs, true));
        out.push_str("\">");
        out.push_str(&date.format("%-d %b %Y").to_string());
        out.push_str("</time> · ");
        push_text(out, page.sources.title_of(primary_source(item)));
        let labels: Vec<&str> = item.labels.all_ids().collect();
        if !labels.is_empty() {
            out.push_str(" · ");
            push_text(out, &labels.join(", "));
        }
        out.push_str("</span>");
        if !item.summary_text.is_empty() {
            out.push_str("<p>");
            push_text(out, &shorten(&item.summary_text, 280));
            out.push_str("</p>");
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ol>\n</section>\n");
}

/// At most `max` characters of `text`, cut at a word boundary with an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((cut, _)) => {
            let head = text.get(..cut).unwrap_or(text);
            let head = head.rfind(' ').and_then(|p| head.get(..p)).unwrap_or(head);
            format!("{}…", head.trim_end())
        }
    }
}

fn chart_section(out: &mut String, chart: &WeeklyCounts) {
    out.push_str("<section aria-labelledby=\"chart-heading\">\n<h2 id=\"chart-heading\">Items per programme, last ");
    out.push_str(&chart.week_starts.len().to_string());
    out.push_str(" weeks</h2>\n<figure>\n");
    out.push_str(&render_chart_svg(chart, "chart"));
    out.push_str("\n<figcaption class=\"meta\">");
    push_text(out, &describe(chart));
    out.push_str("</figcaption>\n</figure>\n<details><summary>The numbers as a table</summary><div class=\"scroll\">");
    out.push_str(&render_chart_table(chart));
    out.push_str("</div></details>\n</section>\n");
}

fn taxa_section(out: &mut String, base: &str, kind: TaxonKind, taxa: &[TaxonCount]) {
    let mut rows = taxa.iter().filter(|t| t.kind == kind).peekable();
    if rows.peek().is_none() {
        return;
    }
    let heading_id = format!("{}-heading", kind.scheme_path());
    out.push_str("<section aria-labelledby=\"");
    out.push_str(&heading_id);
    out.push_str("\">\n<h2 id=\"");
    out.push_str(&heading_id);
    out.push_str("\">");
    out.push_str(kind.heading());
    out.push_str("</h2>\n<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Name</th>\
                  <th scope=\"col\">Items</th><th scope=\"col\">Subscribe</th></tr></thead><tbody>\n");
    for taxon in rows {
        out.push_str("<tr><th scope=\"row\">");
        push_text(out, &taxon.title);
        out.push_str("</th><td class=\"n\">");
        out.push_str(&taxon.count.to_string());
        out.push_str("</td><td>");
        subscribe_links(out, base, &taxon.id, &taxon.title);
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody></table></div>\n</section>\n");
}

/// The unsubscribe confirmation page (`GET /unsubscribe/{token}`): one button that POSTs back
/// to the same URL, so a link scanner fetching the URL unsubscribes nobody.
pub fn render_unsubscribe_confirm(
    site_title: &str,
    base_url: &str,
    token: &str,
    email: Option<&str>,
) -> Result<String, PublishError> {
    let base = require_base(base_url)?;
    let mut out = String::with_capacity(4096);
    open_document(&mut out, &format!("Unsubscribe: {site_title}"));
    close_head(&mut out);
    out.push_str("<main id=\"main\">\n<h1>Unsubscribe</h1>\n<p>");
    match email {
        Some(email) => {
            out.push_str("Stop sending <strong>");
            push_text(&mut out, site_title);
            out.push_str("</strong> digests to <strong>");
            push_text(&mut out, email);
            out.push_str("</strong>?");
        }
        None => {
            out.push_str("Stop sending <strong>");
            push_text(&mut out, site_title);
            out.push_str("</strong> digests to this address?");
        }
    }
    out.push_str("</p>\n<form method=\"post\" action=\"");
    push_attr(&mut out, base);
    out.push_str("/unsubscribe/");
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    push_attr(&mut out, &encoded);
    out.push_str(
        "\">\n<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\n\
                  <button type=\"submit\">Unsubscribe</button>\n</form>\n<p><a href=\"",
    );
    push_attr(&mut out, base);
    out.push_str(
        "/\">Keep my subscription and go to the news page</a></p>\n</main>\n</body>\n</html>\n",
    );
    Ok(out)
}

/// The page shown after the unsubscribe POST succeeded.
pub fn render_unsubscribe_done(
    site_title: &str,
    base_url: &str,
    email: Option<&str>,
) -> Result<String, PublishError> {
    let base = require_base(base_url)?;
    let mut out = String::with_capacity(4096);
    open_document(&mut out, &format!("Unsubscribed: {site_title}"));
    close_head(&mut out);
    out.push_str("<main id=\"main\">\n<h1>You are unsubscribed</h1>\n<p role=\"status\">");
    match email {
        Some(email) => {
            push_text(&mut out, email);
            out.push_str(" will get no more ");
        }
        None => out.push_str("This address will get no more "),
    }
    out.push_str("<strong>");
    push_text(&mut out, site_title);
    out.push_str("</strong> digests.</p>\n<p>You can still follow the news through the <a href=\"");
    push_attr(&mut out, base);
    out.push_str("/\">feeds</a>.</p>\n</main>\n</body>\n</html>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_cuts_at_words() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("one two three four", 9), "one two…");
        assert_eq!(shorten("ééééé", 3), "ééé…");
    }
}
