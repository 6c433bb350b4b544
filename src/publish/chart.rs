//! Server-side chart: items per programme per week as inline SVG, plus the same numbers as an
//! HTML table.
//!
//! In: [`WeeklyCounts`]: the start date of each week (oldest first) and one series of counts
//! per programme. Out: an `<svg>` element (well-formed XML, no scripts, no external references)
//! with a `<title>`, a `<desc>` giving a text summary, axes, one line per programme distinguished
//! by colour, dash pattern and marker, and a legend; and a `<table>` with the data for readers
//! who cannot see the chart. It must never read the clock or fail on uneven input: a short
//! series counts missing weeks as zero, extra values are ignored.

use super::escape::{push_attr, push_text};
use chrono::NaiveDate;
use std::fmt::Write;

/// Weekly item counts per programme.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeeklyCounts {
    /// Monday of each week shown, oldest first (12 on the index page).
    pub week_starts: Vec<NaiveDate>,
    pub series: Vec<WeeklySeries>,
}

/// One programme's counts, aligned with [`WeeklyCounts::week_starts`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeeklySeries {
    pub id: String,
    pub title: String,
    pub counts: Vec<u32>,
}

impl WeeklySeries {
    fn count(&self, week: usize) -> u32 {
        self.counts.get(week).copied().unwrap_or(0)
    }
}

/// Okabe–Ito colours: distinguishable with the common colour-vision deficiencies.
const COLOURS: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];
const DASHES: [&str; 4] = ["", "6 3", "2 3", "8 3 2 3"];

const WIDTH: f64 = 640.0;
const PLOT_LEFT: f64 = 44.0;
const PLOT_RIGHT: f64 = 628.0;
const PLOT_TOP: f64 = 12.0;
const PLOT_BOTTOM: f64 = 232.0;
const LEGEND_TOP: f64 = 262.0;
const LEGEND_ROW: f64 = 20.0;
const LEGEND_COLUMNS: usize = 2;

/// The smallest 1, 2 or 5 × 10ⁿ at or above `max` (at least 1), for the y axis.
fn nice_ceiling(max: u32) -> u32 {
    let mut step: u32 = 1;
    loop {
        for m in [1u32, 2, 5] {
            let candidate = step.saturating_mul(m);
            if candidate >= max || candidate == u32::MAX {
                return candidate.max(1);
            }
        }
        step = step.saturating_mul(10);
    }
}

fn week_label(date: NaiveDate) -> String {
    date.format("%d %b").to_string()
}

/// Renders the chart as an inline `<svg>` element. `id_prefix` keeps the ids of its title and
/// description unique on the page.
pub fn render_chart_svg(counts: &WeeklyCounts, id_prefix: &str) -> String {
    let weeks = counts.week_starts.len();
    let max = counts
        .series
        .iter()
        .flat_map(|s| (0..weeks).map(move |w| s.count(w)))
        .max()
        .unwrap_or(0);
    let y_max = nice_ceiling(max);
    let legend_rows = counts.series.len().div_ceil(LEGEND_COLUMNS);
    let height = LEGEND_TOP + legend_rows as f64 * LEGEND_ROW + 8.0;
    let x_of = |week: usize| -> f64 {
        if weeks <= 1 {
            (PLOT_LEFT + PLOT_RIGHT) / 2.0
        } else {
            PLOT_LEFT + week as f64 * (PLOT_RIGHT - PLOT_LEFT) / (weeks - 1) as f64
        }
    };
    let y_of = |value: u32| -> f64 {
        PLOT_BOTTOM - f64::from(value) / f64::from(y_max) * (PLOT_BOTTOM - PLOT_TOP)
    };

    let mut out = String::with_capacity(4096 + counts.series.len() * weeks * 48);
    let title_id = format!("{id_prefix}-title");
    let desc_id = format!("{id_prefix}-desc");
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {height}\" \
         role=\"img\" aria-labelledby=\"{} {}\" class=\"chart\" \
         font-family=\"system-ui, sans-serif\" font-size=\"11\">",
        attr_string(&title_id),
        attr_string(&desc_id)
    );
    out.push_str("<title id=\"");
    push_attr(&mut out, &title_id);
    out.push_str("\">Items per programme per week</title><desc id=\"");
    push_attr(&mut out, &desc_id);
    out.push_str("\">");
    push_text(&mut out, &describe(counts));
    out.push_str("</desc>");

    // Grid and y axis labels.
    // y_max is 1, 2 or 5 × 10ⁿ, so one of these divides it evenly.
    let ticks: u32 = [5u32, 4, 2, 1]
        .into_iter()
        .find(|t| y_max % t == 0)
        .unwrap_or(1);
    for t in 0..=ticks {
        let value = y_max / ticks * t;
        let y = y_of(value);
        let _ = write!(
            out,
            "<line x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{PLOT_RIGHT}\" y2=\"{y:.1}\" stroke=\"#ccc\" stroke-width=\"1\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#333\">{value}</text>",
            PLOT_LEFT - 6.0,
            y + 4.0
        );
    }
    // X axis labels: every other week when there are many.
    let label_every = if weeks > 8 { 2 } else { 1 };
    for (week, date) in counts.week_starts.iter().enumerate() {
        if week % label_every == 0 || week + 1 == weeks {
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\">",
                x_of(week),
                PLOT_BOTTOM + 18.0
            );
            push_text(&mut out, &week_label(*date));
            out.push_str("</text>");
        }
    }
    // One line per series.
    for (index, series) in counts.series.iter().enumerate() {
        let colour = COLOURS
            .get(index % COLOURS.len())
            .copied()
            .unwrap_or("#000");
        let dash = DASHES.get(index % DASHES.len()).copied().unwrap_or("");
        out.push_str("<g><title>");
        push_text(&mut out, &series.title);
        out.push_str("</title><polyline fill=\"none\" stroke-width=\"2\" stroke=\"");
        out.push_str(colour);
        out.push('"');
        if !dash.is_empty() {
            out.push_str(" stroke-dasharray=\"");
            out.push_str(dash);
            out.push('"');
        }
        out.push_str(" points=\"");
        for week in 0..weeks {
            let _ = write!(out, "{:.1},{:.1} ", x_of(week), y_of(series.count(week)));
        }
        out.push_str("\"/>");
        for week in 0..weeks {
            let _ = write!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"{colour}\"/>",
                x_of(week),
                y_of(series.count(week))
            );
        }
        out.push_str("</g>");
        // Legend entry.
        let row = index / LEGEND_COLUMNS;
        let column = index % LEGEND_COLUMNS;
        let lx = PLOT_LEFT + column as f64 * (PLOT_RIGHT - PLOT_LEFT) / LEGEND_COLUMNS as f64;
        let ly = LEGEND_TOP + row as f64 * LEGEND_ROW;
        let _ = write!(
            out,
            "<line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" stroke-width=\"3\"",
            lx + 24.0
        );
        if !dash.is_empty() {
            let _ = write!(out, " stroke-dasharray=\"{dash}\"");
        }
        let _ = write!(
            out,
            "/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#111\">",
            lx + 30.0,
            ly + 4.0
        );
        push_text(&mut out, &series.title);
        out.push_str("</text>");
    }
    out.push_str("</svg>");
    out
}

fn attr_string(s: &str) -> String {
    super::escape::attr(s)
}

/// A one-paragraph text alternative: the period, the total per programme and the busiest week.
pub fn describe(counts: &WeeklyCounts) -> String {
    let weeks = counts.week_starts.len();
    let (Some(first), Some(last)) = (counts.week_starts.first(), counts.week_starts.last()) else {
        return "No weeks to show.".to_string();
    };
    let mut text = format!(
        "Items per programme per week, {} weeks from the week of {} to the week of {}.",
        weeks,
        first.format("%-d %B %Y"),
        last.format("%-d %B %Y")
    );
    for series in &counts.series {
        let total: u64 = (0..weeks).map(|w| u64::from(series.count(w))).sum();
        let _ = write!(text, " {}: {} items", series.title, total);
        let busiest = (0..weeks).max_by_key(|w| (series.count(*w), std::cmp::Reverse(*w)));
        if let Some(week) = busiest.filter(|w| series.count(*w) > 0) {
            if let Some(date) = counts.week_starts.get(week) {
                let _ = write!(
                    text,
                    ", most ({}) in the week of {}",
                    series.count(week),
                    date.format("%-d %B")
                );
            }
        }
        text.push('.');
    }
    text
}

/// The chart's data as an accessible HTML table (weeks as rows, programmes as columns).
pub fn render_chart_table(counts: &WeeklyCounts) -> String {
    let mut out = String::with_capacity(1024 + counts.series.len() * counts.week_starts.len() * 16);
    out.push_str("<table class=\"chart-data\"><caption>Items per programme per week</caption><thead><tr><th scope=\"col\">Week of</th>");
    for series in &counts.series {
        out.push_str("<th scope=\"col\">");
        push_text(&mut out, &series.title);
        out.push_str("</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for (week, date) in counts.week_starts.iter().enumerate() {
        out.push_str("<tr><th scope=\"row\"><time datetime=\"");
        out.push_str(&date.format("%Y-%m-%d").to_string());
        out.push_str("\">");
        push_text(&mut out, &date.format("%-d %b %Y").to_string());
        out.push_str("</time></th>");
        for series in &counts.series {
            let _ = write!(out, "<td>{}</td>", series.count(week));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(3), 5);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(11), 20);
        assert_eq!(nice_ceiling(u32::MAX), u32::MAX);
    }
}
