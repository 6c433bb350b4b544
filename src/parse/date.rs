//! Date parsing: the date strings feeds really contain → a UTC instant.
//!
//! In: one date string as found in a feed. Understood: W3C-DTF / RFC 3339 and the MSSQL-style
//! `2004-07-08 23:56:58`; ISO 8601 basic and extended forms (`20031231`, `2003-12-31`, ordinal
//! `2003-335`, two-digit years, `-0312`); RFC 822/2822 with its broken variants (no weekday, a
//! wrong weekday, missing seconds, two-digit years, single-digit days, full month names, day and
//! month swapped, named and `GMT+hh:mm` zones, a comma after the month); asctime; Perforce
//! `2006/09/15`; and the Greek, Hungarian and Korean forms feedparser knows. Out:
//! `DateTime<Utc>` (fractions of seconds dropped), or `None` when the string is not a date or
//! names an impossible instant. Every form must match the whole string: a date followed by junk
//! is refused rather than guessed at. It never panics, allocates at most one lower-cased copy
//! of a short string, and gives up on strings longer than [`MAX_DATE_LEN`].

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Utc};

/// Longest string examined; longer ones are not dates.
pub const MAX_DATE_LEN: usize = 128;

/// Parses a feed date to UTC; `None` when it is not a recognisable date.
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() || s.len() > MAX_DATE_LEN {
        return None;
    }
    // Dates are nearly always ASCII: lower-case those on the stack.
    let mut ascii = [0u8; MAX_DATE_LEN];
    let unicode;
    let lower: &str = match ascii.get_mut(..s.len()) {
        Some(buf) if s.is_ascii() => {
            buf.copy_from_slice(s.as_bytes());
            buf.make_ascii_lowercase();
            std::str::from_utf8(buf).ok()?
        }
        _ => {
            unicode = s.to_lowercase();
            &unicode
        }
    };
    let fields = parse_w3dtf(lower)
        .or_else(|| parse_rfc822(lower))
        .or_else(|| parse_iso8601(s))
        .or_else(|| parse_asctime(lower))
        .or_else(|| parse_slashed(lower))
        .or_else(|| parse_korean(s))?;
    fields.to_utc()
}

/// A local date and time plus its offset from UTC, before validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// Minutes east of UTC.
    offset_minutes: i32,
}

impl Fields {
    fn date(year: i32, month: u32, day: u32) -> Self {
        Fields {
            year,
            month,
            day,
            hour: 0,
            minute: 0,
            second: 0,
            offset_minutes: 0,
        }
    }

    fn to_utc(self) -> Option<DateTime<Utc>> {
        // A leap second is read as the second before it.
        let second = if self.second == 60 { 59 } else { self.second };
        let local: NaiveDateTime = NaiveDate::from_ymd_opt(self.year, self.month, self.day)?
            .and_hms_opt(self.hour, self.minute, second)?;
        let utc = local.checked_sub_signed(Duration::minutes(i64::from(self.offset_minutes)))?;
        (0..=9999).contains(&utc.year()).then(|| utc.and_utc())
    }
}

/// Byte cursor over an ASCII-lower-cased date string.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor {
            bytes: s.as_bytes(),
            pos: 0,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Between `min` and `max` ASCII digits as a number.
    fn digits(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.pos;
        let mut value: u32 = 0;
        while self.pos - start < max {
            match self.peek() {
                Some(b) if b.is_ascii_digit() => {
                    value = value.saturating_mul(10).saturating_add(u32::from(b - b'0'));
                    self.pos += 1;
                }
                _ => break,
            }
        }
        if self.pos - start < min {
            self.pos = start;
            return None;
        }
        Some(value)
    }

    /// Exactly `n` digits.
    fn fixed(&mut self, n: usize) -> Option<u32> {
        self.digits(n, n)
    }

    fn skip_fraction(&mut self) {
        if self.peek() == Some(b'.') || self.peek() == Some(b',') {
            let save = self.pos;
            self.pos += 1;
            if self.digits(1, usize::MAX).is_none() {
                self.pos = save;
            }
        }
    }

    fn rest(&self) -> &'a [u8] {
        self.bytes.get(self.pos..).unwrap_or(&[])
    }
}

/// `[+-]hh[:mm]`, `[+-]hhmm` or `z` at the cursor: minutes east of UTC.
fn numeric_offset(cursor: &mut Cursor<'_>) -> Option<i32> {
    if cursor.eat(b'z') {
        return Some(0);
    }
    let sign = match cursor.peek()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    cursor.pos += 1;
    let hours = cursor.fixed(2)?;
    let minutes = if cursor.eat(b':') {
        cursor.fixed(2)?
    } else {
        cursor.fixed(2).unwrap_or(0)
    };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 60 + minutes) as i32)
}

/// Named zones feedparser knows (RFC 822 and the US abbreviations), plus common European and
/// Asian ones. `None` for an unknown name.
fn named_zone_minutes(name: &str) -> Option<i32> {
    let hours = match name {
        "ut" | "utc" | "gmt" | "z" | "wet" | "uct" => 0,
        "adt" => -3,
        "ast" | "at" | "edt" => -4,
        "est" | "et" | "cdt" => -5,
        "cst" | "ct" | "mdt" => -6,
        "mst" | "mt" | "pdt" => -7,
        "pst" | "pt" | "akdt" => -8,
        "akst" => -9,
        "hst" => -10,
        "a" => -1,
        "n" => 1,
        "m" => -12,
        "y" => 12,
        "met" | "cet" | "bst" | "west" => 1,
        "mest" | "cest" | "eet" | "sast" => 2,
        "eest" | "msk" => 3,
        "jst" | "kst" => 9,
        "aest" => 10,
        "aedt" => 11,
        "nzst" => 12,
        "nzdt" => 13,
        _ => return None,
    };
    Some(hours * 60)
}

/// A zone token as RFC 822 feeds write it: numeric, named, `GMT+hh:mm`, `Etc/GMT`. Unknown
/// names read as UTC, as feedparser reads them.
fn zone_token(token: &str) -> Option<i32> {
    let token = token.strip_prefix("etc/").unwrap_or(token);
    let token = token.trim_matches(|c| c == '(' || c == ')');
    if let Some(rest) = token
        .strip_prefix("gmt")
        .or_else(|| token.strip_prefix("utc"))
    {
        if rest.is_empty() {
            return Some(0);
        }
        let mut cursor = Cursor::new(rest);
        let offset = numeric_offset(&mut cursor)?;
        return cursor.at_end().then_some(offset);
    }
    if token.starts_with(['+', '-']) {
        let mut cursor = Cursor::new(token);
        let offset = numeric_offset(&mut cursor)?;
        return cursor.at_end().then_some(offset);
    }
    if token.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Some(named_zone_minutes(token).unwrap_or(0));
    }
    None
}

// ---------------------------------------------------------------------------------------------
// W3C-DTF

/// `YYYY[-MM[-DD]]` then optionally `T` or spaces, `h[h]:mm[:ss[.f]]`, and a zone (`Z`,
/// `±hh:mm`, or after a space a numeric or named zone). Months may be Hungarian names.
fn parse_w3dtf(s: &str) -> Option<Fields> {
    let mut c = Cursor::new(s);
    let year = c.fixed(4)? as i32;
    let mut fields = Fields::date(year, 1, 1);
    if c.eat(b'-') {
        fields.month = match c.digits(1, 2) {
            Some(month) => month,
            None => hungarian_month(&mut c)?,
        };
        if c.eat(b'-') {
            fields.day = c.digits(1, 2)?;
        }
    }
    if c.at_end() {
        return Some(fields);
    }
    if !c.eat(b't') && c.skip_spaces() == 0 {
        return None;
    }
    fields.hour = c.digits(1, 2)?;
    if !c.eat(b':') {
        return None;
    }
    fields.minute = c.fixed(2)?;
    if c.eat(b':') {
        fields.second = c.fixed(2)?;
        c.skip_fraction();
    }
    let spaced = c.skip_spaces() > 0;
    if c.at_end() {
        return Some(fields);
    }
    fields.offset_minutes = match numeric_offset(&mut c) {
        Some(offset) => offset,
        None if spaced => {
            let name = std::str::from_utf8(c.rest()).ok()?;
            c.pos = c.bytes.len();
            named_zone_minutes(name)?
        }
        None => return None,
    };
    c.at_end().then_some(fields)
}

const HUNGARIAN_MONTHS: [&str; 12] = [
    "január",
    "február",
    "március",
    "április",
    "május",
    "június",
    "július",
    "augusztus",
    "szeptember",
    "október",
    "november",
    "december",
];

fn hungarian_month(c: &mut Cursor<'_>) -> Option<u32> {
    let rest = std::str::from_utf8(c.rest()).ok()?;
    let (index, name) = HUNGARIAN_MONTHS
        .iter()
        .enumerate()
        .find(|(_, name)| rest.starts_with(**name))?;
    c.pos += name.len();
    Some(index as u32 + 1)
}

// ---------------------------------------------------------------------------------------------
// RFC 822 and relatives

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Greek month abbreviations (lower-cased) → month number.
const GREEK_MONTHS: [(&str, u32); 19] = [
    ("ιαν", 1),
    ("φεβ", 2),
    ("μάώ", 3),
    ("μαώ", 3),
    ("απρ", 4),
    ("μάι", 5),
    ("μαϊ", 5),
    ("μαι", 5),
    ("ιούν", 6),
    ("ιον", 6),
    ("ιούλ", 7),
    ("ιολ", 7),
    ("αύγ", 8),
    ("αυγ", 8),
    ("σεπ", 9),
    ("οκτ", 10),
    ("νοέ", 11),
    ("νοε", 11),
    ("δεκ", 12),
];
const GREEK_WEEKDAYS: [&str; 7] = ["κυρ", "δευ", "τρι", "τετ", "πεμ", "παρ", "σαβ"];

/// Month number of an English name or abbreviation (`jan`, `January`, `sept`) or a Greek one.
fn month_number(token: &str) -> Option<u32> {
    let token = token.trim_end_matches('.');
    if token.len() >= 3 && token.is_char_boundary(3) {
        let prefix = token.get(..3)?;
        if let Some(index) = MONTHS.iter().position(|m| *m == prefix) {
            return token
                .bytes()
                .all(|b| b.is_ascii_alphabetic())
                .then_some(index as u32 + 1);
        }
    }
    GREEK_MONTHS
        .iter()
        .find(|(name, _)| *name == token)
        .map(|(_, month)| *month)
}

fn is_weekday(token: &str) -> bool {
    let token = token.trim_end_matches(['.', ',']);
    let english = token.len() >= 3
        && token.is_char_boundary(3)
        && token.bytes().all(|b| b.is_ascii_alphabetic())
        && token.get(..3).is_some_and(|p| WEEKDAYS.contains(&p));
    english || GREEK_WEEKDAYS.contains(&token)
}

fn all_digits(token: &str) -> Option<u32> {
    if token.is_empty() || token.len() > 9 || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

/// `h[:m[:s]]`, each part 1–2 digits, seconds optionally with a fraction.
fn clock(token: &str) -> Option<(u32, u32, u32)> {
    let mut parts = token.split(':');
    let hour = all_digits(parts.next()?)?;
    let minute = parts.next().map_or(Some(0), all_digits)?;
    let second = match parts.next() {
        Some(s) => all_digits(s.split(['.', ',']).next().unwrap_or(s))?,
        None => 0,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some((hour, minute, second))
}

/// Two-digit years as RFC 822 readers take them: 90–99 → 1990s, 00–89 → 2000s.
fn rfc822_year(token: &str) -> Option<i32> {
    let year = all_digits(token)? as i32;
    Some(if token.len() <= 2 {
        year + if year < 90 { 2000 } else { 1900 }
    } else {
        year
    })
}

/// `[weekday,] day month year [time [am|pm] [zone]]`, also `month day year` and RFC 850's
/// `day-month-year`; commas anywhere.
fn parse_rfc822(s: &str) -> Option<Fields> {
    // Commas count as spaces; at most eight tokens are read, a leading weekday dropped.
    let mut words = s
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .take(8)
        .peekable();
    if words.peek().is_some_and(|t| is_weekday(t)) {
        words.next();
    }
    // Seven tokens at most, the first of which may split in three: no allocation needed.
    let mut buf: [&str; 10] = [""; 10];
    let mut len = 0;
    for (index, word) in words.enumerate() {
        // RFC 850: `23-Nov-26`.
        let mut parts = word.split('-');
        let pieces = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(day), Some(month), Some(year), None) if index == 0 => {
                [Some(day), Some(month), Some(year)]
            }
            _ => [Some(word), None, None],
        };
        for piece in pieces.into_iter().flatten() {
            if let Some(slot) = buf.get_mut(len) {
                *slot = piece;
                len += 1;
            }
        }
    }
    let tokens = buf.get(..len).unwrap_or(&[]);
    let [first, second, year, rest @ ..] = tokens else {
        return None;
    };
    let (day, month) = match (all_digits(first), month_number(second)) {
        (Some(day), Some(month)) => (day, month),
        _ => (all_digits(second)?, month_number(first)?),
    };
    let mut fields = Fields::date(rfc822_year(year)?, month, day);
    let mut rest = rest;
    if let [time, after @ ..] = rest {
        (fields.hour, fields.minute, fields.second) = clock(time)?;
        rest = after;
        if let [meridiem @ ("am" | "pm" | "a.m." | "p.m."), after @ ..] = rest {
            fields.hour = twelve_hour_clock(fields.hour, meridiem.starts_with('p'))?;
            rest = after;
        }
    }
    if let Some(zone) = rest.first() {
        fields.offset_minutes = zone_token(zone)?;
    }
    Some(fields)
}

/// 24-hour hour of a 12-hour clock reading (`12 am` → 0, `1 pm` → 13).
fn twelve_hour_clock(hour: u32, pm: bool) -> Option<u32> {
    match (hour, pm) {
        (1..=11, false) => Some(hour),
        (12, false) => Some(0),
        (1..=11, true) => Some(hour + 12),
        (12, true) => Some(12),
        _ => None,
    }
}

/// asctime: `Sun Jan  4 16:29:06 2004`, also with a zone before the year.
fn parse_asctime(s: &str) -> Option<Fields> {
    let tokens: Vec<&str> = s.split_whitespace().take(7).collect();
    let (weekday, month, day, time, zone, year) = match tokens.as_slice() {
        [w, m, d, t, y] => (w, m, d, t, None, y),
        [w, m, d, t, z, y] => (w, m, d, t, Some(z), y),
        _ => return None,
    };
    if !is_weekday(weekday) {
        return None;
    }
    let mut fields = Fields::date(rfc822_year(year)?, month_number(month)?, all_digits(day)?);
    (fields.hour, fields.minute, fields.second) = clock(time)?;
    if let Some(zone) = zone {
        fields.offset_minutes = zone_token(zone)?;
    }
    Some(fields)
}

/// `[weekday,] yyyy/mm/dd [hh:mm[:ss] [zone]]` (Perforce and others).
fn parse_slashed(s: &str) -> Option<Fields> {
    let cleaned = s.replace(',', " ");
    let mut tokens: Vec<&str> = cleaned.split_whitespace().take(6).collect();
    if tokens.first().is_some_and(|t| is_weekday(t)) {
        tokens.remove(0);
    }
    let [date, rest @ ..] = tokens.as_slice() else {
        return None;
    };
    let mut parts = date.split('/');
    let (Some(year), Some(month), Some(day), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if year.len() != 4 {
        return None;
    }
    let mut fields = Fields::date(
        all_digits(year)? as i32,
        all_digits(month)?,
        all_digits(day)?,
    );
    if let Some(time) = rest.first() {
        (fields.hour, fields.minute, fields.second) = clock(time)?;
    }
    if let Some(zone) = rest.get(1) {
        fields.offset_minutes = zone_token(zone)?;
    }
    (rest.len() <= 2).then_some(fields)
}

// ---------------------------------------------------------------------------------------------
// ISO 8601 compact and truncated forms

/// Years written with two digits in ISO 8601 forms are in the current century.
fn iso_two_digit_year(yy: u32) -> i32 {
    Utc::now().year() / 100 * 100 + yy as i32
}

/// One ISO 8601 date form: reads the date at the cursor or fails.
type DateForm = fn(&mut Cursor<'_>) -> Option<Fields>;

fn ordinal_date(year: i32, ordinal: u32) -> Option<Fields> {
    let date = NaiveDate::from_yo_opt(year, ordinal)?;
    Some(Fields::date(year, date.month(), date.day()))
}

/// The date forms feedparser's ISO 8601 reader tries, in its order (those that need today's
/// date to fill in a missing year are left out).
const ISO_DATE_FORMS: [DateForm; 7] = [
    // YYYY-?MM-?DD
    |c| {
        let year = c.fixed(4)? as i32;
        c.eat(b'-');
        let month = c.fixed(2)?;
        c.eat(b'-');
        Some(Fields::date(year, month, c.fixed(2)?))
    },
    // YYYY-0MM-?DD (a three-digit month: 2003-012-31)
    |c| {
        let year = c.fixed(4)? as i32;
        if !(c.eat(b'-') && c.eat(b'0')) {
            return None;
        }
        let month = c.fixed(2)?;
        c.eat(b'-');
        Some(Fields::date(year, month, c.fixed(2)?))
    },
    // YYYY-MM
    |c| {
        let year = c.fixed(4)? as i32;
        if !c.eat(b'-') {
            return None;
        }
        Some(Fields::date(year, c.fixed(2)?, 1))
    },
    // YYYY-?DDD
    |c| {
        let year = c.fixed(4)? as i32;
        c.eat(b'-');
        ordinal_date(year, c.fixed(3)?)
    },
    // YY-?MM-?DD
    |c| {
        let year = iso_two_digit_year(c.fixed(2)?);
        c.eat(b'-');
        let month = c.fixed(2)?;
        c.eat(b'-');
        Some(Fields::date(year, month, c.fixed(2)?))
    },
    // YY-?DDD
    |c| {
        let year = iso_two_digit_year(c.fixed(2)?);
        c.eat(b'-');
        ordinal_date(year, c.fixed(3)?)
    },
    // -YY-?MM
    |c| {
        if !c.eat(b'-') {
            return None;
        }
        let year = iso_two_digit_year(c.fixed(2)?);
        c.eat(b'-');
        Some(Fields::date(year, c.fixed(2)?, 1))
    },
];

/// An ISO 8601 time after the date: `T?hh:mm[:ss[.f]]` or basic `Thhmm[ss]`, then `Z` or
/// `±hh[:mm]`. Must reach the end of the string.
fn iso_time(c: &mut Cursor<'_>, fields: &mut Fields) -> Option<()> {
    if c.at_end() {
        return Some(());
    }
    let explicit_t = c.eat(b'T') || c.eat(b't');
    fields.hour = c.fixed(2)?;
    if c.eat(b':') {
        fields.minute = c.fixed(2)?;
        if c.eat(b':') {
            fields.second = c.fixed(2)?;
        }
    } else if explicit_t {
        fields.minute = c.fixed(2)?;
        fields.second = c.fixed(2).unwrap_or(0);
    } else {
        return None;
    }
    c.skip_fraction();
    if !c.at_end() {
        if c.peek() == Some(b'Z') {
            c.pos += 1;
        } else {
            fields.offset_minutes = numeric_offset(c)?;
        }
    }
    c.at_end().then_some(())
}

fn parse_iso8601(s: &str) -> Option<Fields> {
    ISO_DATE_FORMS.iter().find_map(|form| {
        let mut c = Cursor::new(s);
        let mut fields = form(&mut c)?;
        iso_time(&mut c, &mut fields)?;
        Some(fields)
    })
}

// ---------------------------------------------------------------------------------------------
// Korean

/// OnBlog `2004년 05월 28일 01:31:15` and Nate `2004-05-25 오후 11:23:17`, both in KST.
fn parse_korean(s: &str) -> Option<Fields> {
    let tokens: Vec<&str> = s.split_whitespace().take(5).collect();
    let mut fields = match tokens.as_slice() {
        [year, month, day, time] => {
            let mut fields = Fields::date(
                all_digits(year.strip_suffix('년')?)? as i32,
                all_digits(month.strip_suffix('월')?)?,
                all_digits(day.strip_suffix('일')?)?,
            );
            (fields.hour, fields.minute, fields.second) = clock(time)?;
            fields
        }
        [date, meridiem, time] => {
            let mut c = Cursor::new(date);
            let year = c.fixed(4)? as i32;
            let month = c.eat(b'-').then(|| c.fixed(2))??;
            let day = c.eat(b'-').then(|| c.fixed(2))??;
            if !c.at_end() {
                return None;
            }
            let mut fields = Fields::date(year, month, day);
            let (hour, minute, second) = clock(time)?;
            fields.hour = match *meridiem {
                "오전" => twelve_hour_clock(hour, false)?,
                "오후" => twelve_hour_clock(hour, true)?,
                _ => return None,
            };
            (fields.minute, fields.second) = (minute, second);
            fields
        }
        _ => return None,
    };
    fields.offset_minutes = 9 * 60;
    Some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn rfc3339(s: &str) -> Option<String> {
        parse_date(s).map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    }

    #[test]
    fn common_forms() {
        assert_eq!(
            rfc3339("Mon, 23 Nov 2026 09:15:13 +0000").as_deref(),
            Some("2026-11-23T09:15:13Z")
        );
        assert_eq!(
            rfc3339("2026-11-23T10:15:13+01:00").as_deref(),
            Some("2026-11-23T09:15:13Z")
        );
        assert_eq!(
            rfc3339("20261123T091513Z").as_deref(),
            Some("2026-11-23T09:15:13Z")
        );
        assert_eq!(
            rfc3339("23 November 2026").as_deref(),
            Some("2026-11-23T00:00:00Z")
        );
        assert_eq!(
            rfc3339("Tue, 23 Nov 2026 9:15 CET").as_deref(),
            Some("2026-11-23T08:15:00Z")
        );
        assert_eq!(rfc3339("2026-11-23 12:00 am"), None);
        assert_eq!(
            rfc3339("Monday, 23-Nov-26 09:15:13 GMT").as_deref(),
            Some("2026-11-23T09:15:13Z")
        );
        assert_eq!(
            rfc3339("November 23, 2026 9:15 pm EST").as_deref(),
            Some("2026-11-24T02:15:00Z")
        );
        assert_eq!(
            rfc3339("Nov 23, 2026 12:05 AM").as_deref(),
            Some("2026-11-23T00:05:00Z")
        );
        assert_eq!(rfc3339("Nov 23, 2026 13:05 PM"), None);
        assert_eq!(rfc3339("not a date"), None);
        assert_eq!(rfc3339("Today"), None);
    }

    #[test]
    fn never_panics_on_odd_input() {
        let samples = [
            "",
            " ",
            "-",
            "+",
            ":",
            "T",
            "9999999999",
            "0000-00-00",
            "2003-02-30",
            "-99:99",
            "Mon, 32 Foo 99999999999 99:99:99 +9999",
            "ﾟ",
            "2004年",
            "년 월 일",
            "Κυρ,",
            "Thu, 01 Jan 04 19:48:21 GMT+",
            "2003-12-31T10:14:55+",
            "\u{0}\u{ffff}",
        ];
        for sample in samples {
            let _ = parse_date(sample);
        }
        let long_fraction = format!("2003-12-31T10:14:55.{}Z", "9".repeat(100));
        assert!(parse_date(&long_fraction).is_some());
        let long = "1".repeat(10_000);
        assert_eq!(parse_date(&long), None);
    }

    #[test]
    fn generated_strings_never_panic() {
        const PIECES: &[&str] = &[
            "2004", "-", ":", "T", "Z", "+", " ", ",", "12", "31", "99", "0", "Mon", "Jan", "GMT",
            "EST", "+0000", "-99:99", "년", "오후", "Ιούλ", "július", "/", ".", "am", "9999", "60",
            "Etc/GMT", "x",
        ];
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = 1 + state % 12;
            let input: String = (0..length)
                .map(|i| {
                    let index = ((state >> (i * 5)) % PIECES.len() as u64) as usize;
                    PIECES.get(index).copied().unwrap_or("")
                })
                .collect();
            if let Some(date) = parse_date(&input) {
                assert!((0..=9999).contains(&date.year()), "{input:?}");
            }
        }
    }

    fn shared_dir() -> std::path::PathBuf {
        if let Some(dir) = std::env::var_os("NEWSRELAY_SHARED_DIR") {
            return dir.into();
        }
        let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        manifest
            .ancestors()
            .skip(1)
            .map(|dir| dir.join("shared"))
            .find(|dir| {
                dir.join("conformance/cases/feedparser_dates.jsonl")
                    .is_file()
            })
            .unwrap_or_else(|| manifest.join("../shared"))
    }

    /// Rows of the table that contradict another row for a parser that does not know which
    /// feedparser function the string was meant for: `22013` (w3dtf: not a date) has the same
    /// shape as `03335` (iso8601: year 03, day 335), and the ISO reading is kept.
    const CONTRADICTORY_ROWS: [&str; 1] = ["22013"];

    /// The whole date table of the conformance cases.
    #[test]
    fn feedparser_date_table() {
        let path = shared_dir().join("conformance/cases/feedparser_dates.jsonl");
        let table = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("date table at {}: {e}", path.display()));
        let (mut total, mut passed, mut unexpected) = (0, 0, 0);
        for line in table.lines() {
            let row: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            let input = row.get("input").and_then(Value::as_str).unwrap_or("");
            let expected = row.get("expected_rfc3339").and_then(Value::as_str);
            let actual = rfc3339(input);
            total += 1;
            if actual.as_deref() == expected {
                passed += 1;
            } else {
                eprintln!("FAIL {input:?}: expected {expected:?}, got {actual:?}");
                if !CONTRADICTORY_ROWS.contains(&input) {
                    unexpected += 1;
                }
            }
        }
        eprintln!("date table: {passed} of {total} pass");
        assert!(total >= 70, "only {total} rows");
        assert_eq!(
            unexpected, 0,
            "{unexpected} rows fail besides the contradictory ones"
        );
    }
}
