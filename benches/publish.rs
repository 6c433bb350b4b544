//! Publish bench: 500 items rendered to RSS 2.0, Atom 1.0, JSON Feed 1.1 and the index page,
//! beside comparisons in the same process: the `rss` crate writing the same items
//! (`Channel::to_string`, with and without building its `Channel` from our items) and
//! `serde_json::to_string` of the same items. After the criterion runs it measures each pair
//! back to back and prints renders per second and the ratios.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use criterion::{criterion_group, Criterion, Throughput};
use newsrelay::item::{
    ContentHash, Enclosure, FeedId, IdBasis, Item, ItemId, Label, Labels, Source,
};
use newsrelay::publish::{
    feed_url, render_atom, render_index, render_json_feed, render_rss, FeedDescriptor, FeedFormat,
    IndexPage, Paging, SourceDirectory, SourceFeed, TaxonCount, TaxonKind, WeeklyCounts,
    WeeklySeries,
};
use std::hint::black_box;
use std::time::Instant;

const ITEMS: usize = 500;
const BASE: &str = "http://127.0.0.1:8080";

fn at(n: usize) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0)
        .single()
        .unwrap_or_default()
        - Duration::minutes(n as i64 * 37)
}

fn label(id: &str) -> Label {
    Label {
        id: id.into(),
        score: 0.8,
        why: vec!["phrase".into()],
    }
}

/// Items shaped like the ICMPD news feed: a title, a two-sentence summary and ~1.5 KB of HTML.
fn items() -> Vec<Item> {
    let programmes = [
        "asylum",
        "border-management-visa",
        "migration-development",
        "trafficking-in-human-beings",
    ];
    (0..ITEMS)
        .map(|n| {
            let programme = programmes
                .get(n % programmes.len())
                .copied()
                .unwrap_or("asylum");
            let paragraph = format!(
                "<p>The International Centre for Migration Policy Development and its partners \
                 met in <a href=\"https://www.icmpd.org/events/{n}\">Vienna</a> to discuss \
                 cooperation on {programme} &amp; regional dialogue. <strong>Officials</strong> \
                 agreed on next steps for 2027.</p>"
            );
            Item {
                id: ItemId(format!(
                    "{:016x}",
                    0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(n as u64 + 1)
                )),
                id_basis: IdBasis::Guid,
                feed: FeedId("icmpd-news".into()),
                sources: vec![Source {
                    feed: FeedId("icmpd-news".into()),
                    guid: Some(format!("https://www.icmpd.org/news/{n}")),
                    link: Some(format!("https://www.icmpd.org/news/{n}")),
                }],
                link: Some(format!("https://www.icmpd.org/news/item-{n}")),
                title: format!("ICMPD and partners meet on {programme}: round {n}"),
                summary_text: format!(
                    "Officials met in Vienna to discuss cooperation on {programme}. Round {n} \
                     of the dialogue ended with an agreed work plan."
                ),
                content_html: paragraph.repeat(5),
                published: Some(at(n)),
                updated: None,
                first_seen: at(n),
                authors: vec!["ICMPD Press Office".into()],
                categories: vec!["News".into()],
                enclosures: if n % 10 == 0 {
                    vec![Enclosure {
                        url: format!("https://www.icmpd.org/files/report-{n}.pdf"),
                        mime_type: Some("application/pdf".into()),
                        length: Some(123_456),
                    }]
                } else {
                    Vec::new()
                },
                content_hash: ContentHash(n as u64),
                fingerprint: n as u64,
                revision: 0,
                labels: Labels {
                    programmes: vec![label(programme)],
                    initiatives: vec![label("prague-process")],
                    regions: vec![label("western-balkans")],
                    taxonomy_version: 1,
                },
            }
        })
        .collect()
}

fn sources() -> SourceDirectory {
    [(
        FeedId("icmpd-news".into()),
        SourceFeed {
            title: "ICMPD News Centre".into(),
            url: "https://www.icmpd.org/news-centre/rss/".into(),
        },
    )]
    .into_iter()
    .collect()
}

fn descriptor(format: FeedFormat) -> FeedDescriptor {
    FeedDescriptor {
        id: "all".into(),
        kind: TaxonKind::All,
        title: "ICMPD news".into(),
        description: "Every item".into(),
        self_url: feed_url(BASE, "all", format),
        html_url: format!("{BASE}/"),
        base_url: BASE.into(),
        hub: None,
        updated: at(0),
        author: "newsrelay".into(),
        paging: Paging {
            next: Some(format!("{}?before=x", feed_url(BASE, "all", format))),
            ..Paging::default()
        },
        filters: Vec::new(),
        language: Some("en".into()),
    }
}

/// The comparison: the same items through the `rss` crate's own model and writer.
fn rss_crate_channel(items: &[Item]) -> rss::Channel {
    let base = BASE;
    rss::Channel {
        title: "ICMPD news".into(),
        link: format!("{base}/"),
        description: "Every item".into(),
        language: Some("en".into()),
        last_build_date: Some(at(0).to_rfc2822()),
        items: items
            .iter()
            .map(|it| rss::Item {
                title: Some(it.title.clone()),
                link: it.link.clone(),
                description: Some(it.summary_text.clone()),
                guid: Some(rss::Guid {
                    value: format!("urn:newsrelay:item:{}", it.id),
                    permalink: false,
                }),
                pub_date: Some(it.display_date().to_rfc2822()),
                content: Some(it.content_html.clone()),
                categories: it
                    .labels
                    .programmes
                    .iter()
                    .map(|l| rss::Category {
                        name: l.id.clone(),
                        domain: Some(format!("{base}/programmes")),
                    })
                    .chain(it.categories.iter().map(|c| rss::Category {
                        name: c.clone(),
                        domain: None,
                    }))
                    .collect(),
                enclosure: it.enclosures.first().map(|e| rss::Enclosure {
                    url: e.url.clone(),
                    length: e.length.unwrap_or(0).to_string(),
                    mime_type: e.mime_type.clone().unwrap_or_default(),
                }),
                source: Some(rss::Source {
                    url: "https://www.icmpd.org/news-centre/rss/".into(),
                    title: Some("ICMPD News Centre".into()),
                }),
                ..rss::Item::default()
            })
            .collect(),
        ..rss::Channel::default()
    }
}

fn page_inputs() -> (Vec<TaxonCount>, WeeklyCounts) {
    let ids = [
        "irregular-migration-return",
        "trafficking-in-human-beings",
        "border-management-visa",
        "asylum",
        "migration-development",
        "legal-migration-integration",
    ];
    let taxa = ids
        .iter()
        .enumerate()
        .map(|(i, id)| TaxonCount {
            id: (*id).into(),
            title: id.replace('-', " "),
            kind: TaxonKind::Programme,
            count: 10 * i as u64,
        })
        .collect();
    let first = NaiveDate::from_ymd_opt(2026, 8, 31).unwrap_or_default();
    let chart = WeeklyCounts {
        week_starts: (0..12).map(|w| first + Duration::weeks(w)).collect(),
        series: ids
            .iter()
            .enumerate()
            .map(|(i, id)| WeeklySeries {
                id: (*id).into(),
                title: id.replace('-', " "),
                counts: (0..12).map(|w| (w * (i as u32 + 1)) % 17).collect(),
            })
            .collect(),
    };
    (taxa, chart)
}

fn benches(c: &mut Criterion) {
    let items = items();
    let sources = sources();
    let rss_d = descriptor(FeedFormat::Rss);
    let atom_d = descriptor(FeedFormat::Atom);
    let json_d = descriptor(FeedFormat::Json);
    let channel = rss_crate_channel(&items);
    let (taxa, chart) = page_inputs();
    let latest = items.get(..30).unwrap_or(&items);

    let mut group = c.benchmark_group("publish_500_items");
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.bench_function("newsrelay_rss", |b| {
        b.iter(|| render_rss(&rss_d, &sources, black_box(&items)))
    });
    group.bench_function("rss_crate_build_and_to_string", |b| {
        b.iter(|| rss_crate_channel(black_box(&items)).to_string())
    });
    group.bench_function("rss_crate_to_string_only", |b| {
        b.iter(|| black_box(&channel).to_string())
    });
    group.bench_function("newsrelay_atom", |b| {
        b.iter(|| render_atom(&atom_d, &sources, black_box(&items)))
    });
    group.bench_function("newsrelay_json_feed", |b| {
        b.iter(|| render_json_feed(&json_d, &sources, black_box(&items)))
    });
    group.bench_function("serde_json_items", |b| {
        b.iter(|| serde_json::to_string(black_box(&items)))
    });
    group.finish();
    c.bench_function("index_page_30_latest", |b| {
        b.iter(|| {
            render_index(&IndexPage {
                site_title: "ICMPD news",
                base_url: BASE,
                total_items: 500,
                taxa: &taxa,
                latest: black_box(latest),
                sources: &sources,
                chart: &chart,
                generated: at(0),
            })
        })
    });
}

/// Seconds per call: the median of 7 rounds, each at least 150 ms long.
fn seconds_per_call(mut f: impl FnMut()) -> f64 {
    let mut per_call = Vec::with_capacity(7);
    for _ in 0..7 {
        let start = Instant::now();
        let mut calls = 0u32;
        while start.elapsed().as_secs_f64() < 0.15 && calls < 100_000 {
            f();
            calls += 1;
        }
        per_call.push(start.elapsed().as_secs_f64() / f64::from(calls.max(1)));
    }
    per_call.sort_by(f64::total_cmp);
    per_call.get(3).copied().unwrap_or(f64::NAN)
}

fn print_comparison() {
    let items = items();
    let sources = sources();
    let channel = rss_crate_channel(&items);
    let rss_d = descriptor(FeedFormat::Rss);
    let atom_d = descriptor(FeedFormat::Atom);
    let json_d = descriptor(FeedFormat::Json);
    let sizes = [
        render_rss(&rss_d, &sources, &items)
            .map(|s| s.len())
            .unwrap_or(0),
        render_atom(&atom_d, &sources, &items)
            .map(|s| s.len())
            .unwrap_or(0),
        render_json_feed(&json_d, &sources, &items)
            .map(|s| s.len())
            .unwrap_or(0),
        channel.to_string().len(),
    ];
    let ours_rss = seconds_per_call(|| {
        black_box(render_rss(&rss_d, &sources, black_box(&items)).ok());
    });
    let crate_full = seconds_per_call(|| {
        black_box(rss_crate_channel(black_box(&items)).to_string());
    });
    let crate_write = seconds_per_call(|| {
        black_box(black_box(&channel).to_string());
    });
    let ours_atom = seconds_per_call(|| {
        black_box(render_atom(&atom_d, &sources, black_box(&items)).ok());
    });
    let ours_json = seconds_per_call(|| {
        black_box(render_json_feed(&json_d, &sources, black_box(&items)).ok());
    });
    let plain_json = seconds_per_call(|| {
        black_box(serde_json::to_string(black_box(&items)).ok());
    });
    let rate = |s: f64| 1.0 / s;
    println!("\npublish: {ITEMS} items per render (renders per second, median of 7 rounds)");
    println!(
        "  newsrelay RSS 2.0        {:>9.1}/s  ({} bytes)",
        rate(ours_rss),
        sizes[0]
    );
    println!(
        "  rss crate build+write    {:>9.1}/s  ({} bytes)  newsrelay is {:.2}x",
        rate(crate_full),
        sizes[3],
        crate_full / ours_rss
    );
    println!(
        "  rss crate write only     {:>9.1}/s               newsrelay is {:.2}x",
        rate(crate_write),
        crate_write / ours_rss
    );
    println!(
        "  newsrelay Atom 1.0       {:>9.1}/s  ({} bytes)  vs rss crate build+write {:.2}x",
        rate(ours_atom),
        sizes[1],
        crate_full / ours_atom
    );
    println!(
        "  newsrelay JSON Feed 1.1  {:>9.1}/s  ({} bytes)",
        rate(ours_json),
        sizes[2]
    );
    println!(
        "  serde_json of the items  {:>9.1}/s               newsrelay JSON Feed is {:.2}x",
        rate(plain_json),
        plain_json / ours_json
    );
}

criterion_group!(publish, benches);

fn main() {
    publish();
    Criterion::default().configure_from_args().final_summary();
    print_comparison();
}
