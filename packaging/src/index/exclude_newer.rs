//! `exclude-newer`: resolving as of a moment in time, from the upload times of PEP 700.
//!
//! Indexes give upload times as RFC 3339 timestamps in UTC (`2024-03-01T12:34:56.789Z`);
//! users give a timestamp or a date. Only the few shapes RFC 3339 allows are read, by hand:
//! no time-zone database is needed because every offset is explicit.

use crate::civil::{civil_from_days, days_from_civil};
use std::fmt;
use std::str::FromStr;

/// The cutoff of `exclude-newer`: files an index says were uploaded at or after it are
/// ignored. Parsed from an RFC 3339 timestamp (`2024-03-01T00:00:00Z`, any offset) or a
/// date (`2024-03-01`), which means the end of that day in UTC so that the day itself is
/// included (uv reads a date in the local time zone; UTC gives the same answer on every
/// machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExcludeNewer {
    /// Milliseconds since the Unix epoch.
    millis: i64,
}

impl ExcludeNewer {
    /// A cutoff at `millis` milliseconds since the Unix epoch.
    pub fn from_unix_millis(millis: i64) -> Self {
        Self { millis }
    }

    /// The cutoff in milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.millis
    }

    /// Whether a file uploaded at `upload_millis` is too new.
    pub fn excludes(self, upload_millis: i64) -> bool {
        upload_millis >= self.millis
    }
}

impl FromStr for ExcludeNewer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some((days, rest)) = parse_date(text)
            && rest.is_empty()
        {
            // The whole day is included: the cutoff is the next midnight.
            return Ok(Self {
                millis: (days + 1) * DAY_MILLIS,
            });
        }
        parse_timestamp(text)
            .map(Self::from_unix_millis)
            .ok_or_else(|| {
                format!(
                    "`{text}` is neither a date (2024-03-01) nor an RFC 3339 timestamp \
                     (2024-03-01T12:00:00Z)"
                )
            })
    }
}

impl fmt::Display for ExcludeNewer {
    /// RFC 3339 in UTC, with milliseconds only when there are some.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.millis.div_euclid(DAY_MILLIS);
        let in_day = self.millis.rem_euclid(DAY_MILLIS);
        let (year, month, day) = civil_from_days(days);
        let (seconds, millis) = (in_day / 1000, in_day % 1000);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        )?;
        if millis != 0 {
            write!(f, ".{millis:03}")?;
        }
        f.write_str("Z")
    }
}

const DAY_MILLIS: i64 = 86_400_000;

/// An RFC 3339 timestamp as milliseconds since the Unix epoch: `YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction, then `Z` or `±HH:MM` (`t`, `z` and a space for `T` are accepted, as
/// RFC 3339 allows). `None` for anything else, including invalid dates and times.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    let (days, rest) = parse_date(text)?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hour, rest) = two_digits(rest)?;
    let (minute, rest) = two_digits(rest.strip_prefix(':')?)?;
    let (second, mut rest) = two_digits(rest.strip_prefix(':')?)?;
    // 60 is a leap second; it counts as the last second of the minute.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        for (i, digit) in fraction.bytes().take(digits).enumerate().take(3) {
            millis += i64::from(digit - b'0') * [100, 10, 1][i];
        }
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (hours, rest) = two_digits(&rest[1..])?;
            let (minutes, rest) = two_digits(rest.strip_prefix(':')?)?;
            if !rest.is_empty() || hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
    };
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

/// `YYYY-MM-DD` at the start of `text`: days since the Unix epoch and the rest.
fn parse_date(text: &str) -> Option<(i64, &str)> {
    let year_text = text.get(..4)?;
    if !year_text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i64 = year_text.parse().ok()?;
    let (month, rest) = two_digits(text[4..].strip_prefix('-')?)?;
    let (day, rest) = two_digits(rest.strip_prefix('-')?)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    Some((days_from_civil(year, month, day), rest))
}

fn two_digits(text: &str) -> Option<(i64, &str)> {
    let digits = text.get(..2)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, &text[2..]))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        text.parse::<ExcludeNewer>().unwrap().unix_millis()
    }

    #[test]
    fn timestamps_in_every_allowed_shape() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_timestamp("2024-03-01T12:34:56.789123Z"),
            Some(1_709_296_496_789)
        );
        assert_eq!(
            parse_timestamp("2024-03-01T14:34:56.789+02:00"),
            parse_timestamp("2024-03-01T12:34:56.789Z")
        );
        assert_eq!(
            parse_timestamp("2024-02-29 23:00:00-01:30"),
            parse_timestamp("2024-03-01T00:30:00Z")
        );
        assert_eq!(parse_timestamp("1969-12-31T23:59:59.5Z"), Some(-500));
        for bad in [
            "",
            "2024-03-01",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-03-01T24:00:00Z",
            "2024-03-01T00:00:00",
            "2024-03-01T00:00:00.Z",
            "2024-03-01T00:00:00+0100",
            "24-03-01T00:00:00Z",
            "+024-03-01T00:00:00Z",
            "2024-03-01T00:00:00Zjunk",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_date_includes_its_whole_day() {
        assert_eq!(at("2024-03-01"), at("2024-03-02T00:00:00Z"));
        let cutoff: ExcludeNewer = "2024-03-01".parse().unwrap();
        assert!(!cutoff.excludes(parse_timestamp("2024-03-01T23:59:59.999Z").unwrap()));
        assert!(cutoff.excludes(parse_timestamp("2024-03-02T00:00:00Z").unwrap()));
        let err = "yesterday".parse::<ExcludeNewer>().unwrap_err();
        assert!(err.contains("`yesterday`"), "{err}");
    }

    #[test]
    fn displays_as_utc_rfc_3339() {
        assert_eq!(
            "2024-03-01".parse::<ExcludeNewer>().unwrap().to_string(),
            "2024-03-02T00:00:00Z"
        );
        assert_eq!(
            ExcludeNewer::from_unix_millis(1_709_296_496_789).to_string(),
            "2024-03-01T12:34:56.789Z"
        );
        assert_eq!(
            ExcludeNewer::from_unix_millis(-1).to_string(),
            "1969-12-31T23:59:59.999Z"
        );
    }
}
