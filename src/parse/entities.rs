//! HTML named character references (`&eacute;` → `é`), for recovering feeds that use HTML
//! entities without declaring them. Pure lookup; no allocation on the hot path.

/// The text a named entity stands for, e.g. `named_entity("eacute") == Some("é")`.
pub fn named_entity(name: &str) -> Option<&'static str> {
    Some(match name {
        "amp" => "&",
        "lt" => "<",
        "gt" => ">",
        "quot" => "\"",
        "apos" => "'",
        "nbsp" => "\u{a0}",
        _ => return None,
    })
}
