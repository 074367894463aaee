//! PAX extended headers: read strictly, so that every reader sees the same names.

use super::super::MemberRule;
use super::super::fs::Mtime;
use super::super::path::display_name;
use std::collections::HashMap;
use std::io::Read;

/// PAX keys that a global header may not set: they would rename, resize or re-target every
/// later member for readers that honour global headers (Python's tarfile does; the `tar`
/// crate does not), so the archive would mean different things to different tools.
const FORBIDDEN_GLOBAL_PAX_KEYS: &[&str] = &["path", "linkpath", "size"];

/// The member's own PAX records, refusing malformed records and repeated keys (readers
/// disagree on which of two `path` records wins).
pub(super) fn local_pax<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<HashMap<String, Vec<u8>>, MemberRule> {
    let mut records = HashMap::new();
    let Some(extensions) = entry
        .pax_extensions()
        .map_err(|_| MemberRule::MalformedPax)?
    else {
        return Ok(records);
    };
    for extension in extensions {
        let extension = extension.map_err(|_| MemberRule::MalformedPax)?;
        let key = extension.key().map_err(|_| MemberRule::MalformedPax)?;
        if records
            .insert(key.to_string(), extension.value_bytes().to_vec())
            .is_some()
        {
            return Err(MemberRule::DuplicatePaxKey {
                key: display_name(key.as_bytes()),
            });
        }
    }
    Ok(records)
}

pub(super) fn check_global_pax<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<(), MemberRule> {
    let Some(extensions) = entry
        .pax_extensions()
        .map_err(|_| MemberRule::MalformedPax)?
    else {
        return Ok(());
    };
    for extension in extensions {
        let extension = extension.map_err(|_| MemberRule::MalformedPax)?;
        let key = extension.key().map_err(|_| MemberRule::MalformedPax)?;
        if FORBIDDEN_GLOBAL_PAX_KEYS.contains(&key) || key.starts_with("GNU.sparse") {
            return Err(MemberRule::GlobalPaxKey {
                key: display_name(key.as_bytes()),
            });
        }
    }
    Ok(())
}

/// Parses a PAX time (`1700000000` or `1700000000.123456789`, possibly negative).
pub(super) fn parse_pax_time(raw: &[u8]) -> Option<Mtime> {
    let text = std::str::from_utf8(raw).ok()?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let mut nanoseconds: u32 = 0;
    for (i, digit) in fraction.bytes().take(9).enumerate() {
        nanoseconds += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
    }
    Some(if negative && nanoseconds > 0 {
        Mtime {
            seconds: -seconds - 1,
            nanoseconds: 1_000_000_000 - nanoseconds,
        }
    } else if negative {
        Mtime {
            seconds: -seconds,
            nanoseconds: 0,
        }
    } else {
        Mtime {
            seconds,
            nanoseconds,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        assert_eq!(
            parse_pax_time(b"1700000000.5"),
            Some(Mtime {
                seconds: 1_700_000_000,
                nanoseconds: 500_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"-1.25"),
            Some(Mtime {
                seconds: -2,
                nanoseconds: 750_000_000
            })
        );
        assert_eq!(
            parse_pax_time(b"12"),
            Some(Mtime {
                seconds: 12,
                nanoseconds: 0
            })
        );
        assert_eq!(parse_pax_time(b"x"), None);
        assert_eq!(parse_pax_time(b"1.2.3"), None);
        assert_eq!(parse_pax_time(b"99999999999999999999"), None);
    }
}
