//! PEP 440 specifiers as pubgrub version ranges.
//!
//! The resolver only ever chooses among a project's known installable versions, so a range
//! needs to be right on those versions only. For each requirement the set of allowed
//! versions is computed with `VersionSpecifiers::contains` — which gets every PEP 440 rule
//! right (wildcards, local versions, `!=`, `~=`, `===`, pre-release exclusions of `<`/`>`)
//! — and the pre-release policy is applied on top. The range handed to pubgrub is the
//! natural conversion of the specifiers when it agrees with that set (it reads best in
//! messages), else an exact union of intervals over the known versions.

use pep440_rs::{Version, VersionSpecifiers};
use pubgrub::Ranges;
use std::ops::Bound;

/// Why a requirement's range admits pre-releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prereleases {
    /// Only final releases are in the range.
    Excluded,
    /// The specifiers or a top-level requirement/constraint name a pre-release.
    Explicit,
    /// No final release satisfies the requirement, so its pre-releases are admitted.
    OnlyOption,
}

/// The range of `specifiers` over `versions` (ascending, installable). Pre-releases are
/// admitted when `explicit` (a top-level requirement or constraint names one), when the
/// specifiers name one themselves, or when nothing else satisfies them.
pub(crate) fn requirement_range(
    specifiers: &VersionSpecifiers,
    versions: &[&Version],
    explicit: bool,
) -> (Ranges<Version>, Prereleases) {
    let matching: Vec<bool> = versions.iter().map(|v| specifiers.contains(v)).collect();
    let explicit = explicit || specifiers.iter().any(|s| s.any_prerelease());
    let (allowed, prereleases) = if explicit {
        (matching, Prereleases::Explicit)
    } else {
        let finals: Vec<bool> = versions
            .iter()
            .zip(&matching)
            .map(|(v, &m)| m && v.is_stable())
            .collect();
        let any_prerelease = versions
            .iter()
            .zip(&matching)
            .any(|(v, &m)| m && !v.is_stable());
        if finals.iter().any(|&m| m) || !any_prerelease {
            (finals, Prereleases::Excluded)
        } else {
            (matching, Prereleases::OnlyOption)
        }
    };
    let natural = Ranges::from(specifiers.clone());
    let agrees = versions
        .iter()
        .zip(&allowed)
        .all(|(v, &a)| natural.contains(*v) == a);
    let range = if agrees {
        natural
    } else {
        union_of_runs(versions, &allowed)
    };
    (range, prereleases)
}

/// The union of intervals covering exactly the `allowed` versions among `versions`: each
/// run of allowed versions becomes `[first, next not allowed)`, unbounded at either end
/// of the list.
fn union_of_runs(versions: &[&Version], allowed: &[bool]) -> Ranges<Version> {
    let mut range = Ranges::empty();
    let mut i = 0;
    while i < versions.len() {
        if !allowed[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < versions.len() && allowed[i] {
            i += 1;
        }
        let lower = if start == 0 {
            Bound::Unbounded
        } else {
            Bound::Included(versions[start].clone())
        };
        let upper = match versions.get(i) {
            Some(next) => Bound::Excluded((*next).clone()),
            None => Bound::Unbounded,
        };
        range = range.union(&Ranges::from_range_bounds((lower, upper)));
    }
    range
}

/// A range written for people: `==1.0`, `>=1.2, <2`, `<1.0 or >=1.2`, or `*` for any
/// version. A `.dev0` bound that only marks "before every pre-release of" is shown as the
/// release itself (`~=1.2` reads `>=1.2, <2`).
pub(crate) fn describe(range: &Ranges<Version>) -> String {
    if range.is_empty() {
        return "(no version)".to_string();
    }
    if let Some(version) = range.as_singleton() {
        return format!("=={version}");
    }
    let show = |v: &Version| {
        if v.dev() == Some(0) && v.pre().is_none() && v.post().is_none() && !v.is_local() {
            v.clone().with_dev(None).to_string()
        } else {
            v.to_string()
        }
    };
    let segments: Vec<String> = range
        .iter()
        .map(|bounds| match bounds {
            (Bound::Unbounded, Bound::Unbounded) => "*".to_string(),
            (Bound::Unbounded, Bound::Included(b)) => format!("<={}", show(b)),
            (Bound::Unbounded, Bound::Excluded(b)) => format!("<{}", show(b)),
            (Bound::Included(a), Bound::Unbounded) => format!(">={}", show(a)),
            (Bound::Excluded(a), Bound::Unbounded) => format!(">{}", show(a)),
            (Bound::Included(a), Bound::Included(b)) if a == b => format!("=={a}"),
            (Bound::Included(a), Bound::Included(b)) => format!(">={}, <={}", show(a), show(b)),
            (Bound::Included(a), Bound::Excluded(b)) => format!(">={}, <{}", show(a), show(b)),
            (Bound::Excluded(a), Bound::Included(b)) => format!(">{}, <={}", show(a), show(b)),
            (Bound::Excluded(a), Bound::Excluded(b)) => format!(">{}, <{}", show(a), show(b)),
        })
        .collect();
    segments.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn versions(list: &[&str]) -> Vec<Version> {
        list.iter().map(|s| Version::from_str(s).unwrap()).collect()
    }

    /// The versions of `list` the range for `spec` allows, and the pre-release decision.
    fn allowed(spec: &str, list: &[&str], explicit: bool) -> (Vec<String>, Prereleases) {
        let all = versions(list);
        let refs: Vec<&Version> = all.iter().collect();
        let specifiers = VersionSpecifiers::from_str(spec).unwrap();
        let (range, pre) = requirement_range(&specifiers, &refs, explicit);
        let chosen = all
            .iter()
            .filter(|v| range.contains(*v))
            .map(ToString::to_string)
            .collect();
        (chosen, pre)
    }

    const RELEASES: &[&str] = &[
        "0.9",
        "1.0.dev1",
        "1.0a1",
        "1.0",
        "1.0+local",
        "1.0.post1",
        "1.1",
        "1.2rc1",
        "1.2",
        "2.0b1",
    ];

    #[test]
    fn comparison_operators() {
        assert_eq!(
            allowed(">=1.0", RELEASES, false).0,
            ["1.0", "1.0+local", "1.0.post1", "1.1", "1.2"]
        );
        assert_eq!(
            allowed(">1.0", RELEASES, false).0,
            ["1.1", "1.2"],
            "> excludes post-releases of V"
        );
        assert_eq!(
            allowed("<1.2", RELEASES, false).0,
            ["0.9", "1.0", "1.0+local", "1.0.post1", "1.1"]
        );
        assert_eq!(
            allowed("<=1.0", RELEASES, false).0,
            ["0.9", "1.0", "1.0+local"]
        );
    }

    #[test]
    fn equality_wildcards_and_locals() {
        assert_eq!(
            allowed("==1.0", RELEASES, false).0,
            ["1.0", "1.0+local"],
            "locals match ==V"
        );
        assert_eq!(allowed("==1.0+local", RELEASES, false).0, ["1.0+local"]);
        assert_eq!(allowed("===1.0", RELEASES, false).0, ["1.0"]);
        assert_eq!(
            allowed("==1.*", RELEASES, false).0,
            ["1.0", "1.0+local", "1.0.post1", "1.1", "1.2"]
        );
        assert_eq!(
            allowed("!=1.0", RELEASES, false).0,
            ["0.9", "1.0.post1", "1.1", "1.2"]
        );
        assert_eq!(allowed("!=1.*", RELEASES, false).0, ["0.9"]);
        assert_eq!(
            allowed("~=1.0", RELEASES, false).0,
            ["1.0", "1.0+local", "1.0.post1", "1.1", "1.2"]
        );
        assert_eq!(
            allowed("~=1.0.0", RELEASES, false).0,
            ["1.0", "1.0+local", "1.0.post1"]
        );
        assert_eq!(
            allowed(">=1.0, !=1.1, <2", RELEASES, false).0,
            ["1.0", "1.0+local", "1.0.post1", "1.2"]
        );
    }

    #[test]
    fn prereleases_only_when_asked_or_needed() {
        let (chosen, pre) = allowed(">=1.0a1", RELEASES, false);
        assert_eq!(pre, Prereleases::Explicit);
        assert!(chosen.contains(&"1.2rc1".to_string()) && chosen.contains(&"2.0b1".to_string()));
        let (chosen, pre) = allowed(">=1.0", RELEASES, true);
        assert_eq!(pre, Prereleases::Explicit);
        assert!(chosen.contains(&"2.0b1".to_string()));
        // 2.0b1 sorts below 2.0, so `>=2` excludes it; `>=1.3` matches it alone.
        assert_eq!(allowed(">=2", RELEASES, false).0, Vec::<String>::new());
        let (chosen, pre) = allowed(">=1.3", RELEASES, false);
        assert_eq!(
            (chosen, pre),
            (vec!["2.0b1".to_string()], Prereleases::OnlyOption)
        );
        let (chosen, pre) = allowed(">=3", RELEASES, false);
        assert_eq!((chosen, pre), (vec![], Prereleases::Excluded));
        // `<1.0` does not admit pre-releases of 1.0 even though they sort below it.
        assert_eq!(allowed("<1.0", RELEASES, false).0, ["0.9"]);
    }

    #[test]
    fn exact_ranges_exclude_unlisted_prereleases() {
        let all = versions(RELEASES);
        let refs: Vec<&Version> = all.iter().collect();
        let specifiers = VersionSpecifiers::from_str(">=1.0").unwrap();
        let (range, _) = requirement_range(&specifiers, &refs, false);
        // 1.2rc1 sits between allowed versions, so the range has a hole for it.
        assert!(!range.contains(&Version::from_str("1.2rc1").unwrap()));
        assert_eq!(describe(&range), ">=1.0, <1.2rc1 or >=1.2, <2.0b1");
    }

    #[test]
    fn natural_ranges_read_like_the_specifiers() {
        let all = versions(&["1.0", "1.5", "2.0", "3.0"]);
        let refs: Vec<&Version> = all.iter().collect();
        let describe_spec = |spec: &str| {
            let specifiers = VersionSpecifiers::from_str(spec).unwrap();
            describe(&requirement_range(&specifiers, &refs, false).0)
        };
        assert_eq!(describe_spec(">=1.5"), ">=1.5");
        assert_eq!(describe_spec("~=1.2"), ">=1.2, <2");
        assert_eq!(describe_spec("==2.0"), "==2.0");
        assert_eq!(describe_spec("==1.*"), ">=1, <2");
        assert_eq!(describe_spec(""), "*");
        assert_eq!(describe_spec("!=2.0"), "<2.0 or >2.0");
    }
}
