//! Parsing PEP 508 requirements and PEP 440 specifiers from strangers (a `pyproject.toml`,
//! what a backend's `get_requires_*` returns, an index's `Requires-Dist` and
//! `Requires-Python`) without letting a parser bug end the process.
//!
//! `pep508_rs` 0.9 panics on some invalid names instead of returning an error (a name that
//! ends in `-`, `.` or `_` followed by a character that is not part of a name, such as
//! `foo-'`: its own check and `PackageName`'s disagree; found by the `pyproject` fuzz
//! target). That case is refused here before the parser sees it; any other panic of the
//! parsers is caught and becomes an error, so a hostile string is an invalid requirement,
//! never a crash.

use pep440_rs::VersionSpecifiers;
use pep508_rs::{Requirement, VerbatimUrl};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;

/// Why a requirement or specifier string was not parsed.
#[derive(Debug, thiserror::Error)]
pub enum Pep508Error {
    #[error(transparent)]
    Requirement(#[from] Box<pep508_rs::Pep508Error<VerbatimUrl>>),
    #[error(transparent)]
    Specifiers(#[from] Box<pep440_rs::VersionSpecifiersParseError>),
    #[error("the package name `{0}` does not end with a letter or digit")]
    NameEnd(String),
    #[error("the parser failed on it")]
    ParserFailed,
}

/// Parses a PEP 508 requirement.
pub fn requirement(raw: &str) -> Result<Requirement<VerbatimUrl>, Pep508Error> {
    check_name_end(raw)?;
    guarded(|| Requirement::<VerbatimUrl>::from_str(raw).map_err(|e| Box::new(e).into()))
}

/// Parses PEP 440 version specifiers (`>=3.8,<4`).
pub fn specifiers(raw: &str) -> Result<VersionSpecifiers, Pep508Error> {
    guarded(|| VersionSpecifiers::from_str(raw).map_err(|e| Box::new(e).into()))
}

/// The leading name, as the parser reads it, must not end in a separator unless it ends
/// the string (which the parser reports itself).
fn check_name_end(raw: &str) -> Result<(), Pep508Error> {
    let trimmed = raw.trim_start();
    if !trimmed.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Ok(());
    }
    let end = trimmed
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .unwrap_or(trimmed.len());
    let name = &trimmed[..end];
    if end < trimmed.len() && name.ends_with(['.', '-', '_']) {
        return Err(Pep508Error::NameEnd(name.to_string()));
    }
    Ok(())
}

/// Runs a parser, turning a panic into an error.
fn guarded<T>(parse: impl FnOnce() -> Result<T, Pep508Error>) -> Result<T, Pep508Error> {
    catch_unwind(AssertUnwindSafe(parse)).unwrap_or(Err(Pep508Error::ParserFailed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_ending_in_a_separator_is_an_error_not_a_panic() {
        for raw in ["foo-'", "a_ (", "x.;", "  setuptrrr---1---'---ooata/*.txt"] {
            assert!(
                matches!(requirement(raw), Err(Pep508Error::NameEnd(_))),
                "{raw}"
            );
        }
        // What the parser handles itself is still its error.
        assert!(matches!(
            requirement("foo-"),
            Err(Pep508Error::Requirement(_))
        ));
        assert!(requirement("foo-bar >= 1 ; python_version > '3'").is_ok());
        assert!(requirement("foo_bar[x]").is_ok());
        assert!(specifiers(">=3.8,<4").is_ok());
        assert!(specifiers(">=3.8,<").is_err());
    }
}
