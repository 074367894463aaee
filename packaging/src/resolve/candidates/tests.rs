use super::*;
use crate::constraints::BuildConstraints;
use std::path::Path;
use std::str::FromStr;

pub(crate) fn file(filename: &str) -> DistFile {
    DistFile {
        filename: filename.to_string(),
        url: format!("https://files.example/{filename}"),
        sha256: None,
        requires_python: None,
        yanked: None,
        core_metadata: false,
        metadata_sha256: None,
        size: None,
        upload_time: None,
        source: "https://index.example/simple/demo/".to_string(),
    }
}

fn v(s: &str) -> Version {
    Version::from_str(s).unwrap()
}

fn candidates(files: &[DistFile], constraints: &str, yanks: &[&str]) -> Candidates {
    let target = crate::target::tests::wasi_312();
    let constraints = BuildConstraints::parse(constraints, Path::new("c.txt"), false).unwrap();
    let name = PackageName::from_str("demo").unwrap();
    let applicable = constraints.for_package(&name, target.marker_environment());
    let yanks = yanks.iter().map(|s| v(s)).collect();
    let policy = Policy {
        target: &target,
        constraint: &applicable,
        allowed_yanks: &yanks,
        preferred_hashes: &HashSet::new(),
        exclude_newer: None,
        available: &|_| true,
    };
    Candidates::new(&name, files, &policy)
}

#[test]
fn sorts_files_into_usable_and_excluded() {
    let mut old_python = file("demo-3.0-py3-none-any.whl");
    old_python.requires_python = Some(">=3.13".into());
    let mut yanked = file("demo-2.5-py3-none-any.whl");
    yanked.yanked = Some("broken".into());
    let files = [
        file("demo-1.0.tar.gz"),
        file("demo-1.0-py2.py3-none-any.whl"),
        file("demo-1.0-py3-none-any.whl"),
        file("demo-2.0.tar.gz"),
        file("demo-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
        file("demo-2.5.tar.gz"),
        yanked,
        old_python,
        file("other-9.0-py3-none-any.whl"),
    ];
    let c = candidates(&files, "", &[]);
    assert_eq!(c.versions().collect::<Vec<_>>(), [&v("1.0")]);
    // py3-none-any ranks before py2.py3-none-any? Both carry py3; the first matching
    // tag in the target's list decides, so source order is kept.
    assert_eq!(c.files(&v("1.0")).len(), 2);
    let excluded: Vec<_> = c
        .exclusions()
        .map(|(v, why)| {
            let detailed = VersionExclusions {
                exclusions: why,
                detailed: true,
            };
            format!("{v}: {detailed}")
        })
        .collect();
    assert_eq!(
        excluded,
        [
            "3.0: only wheel for other Pythons demo-3.0-py3-none-any.whl requires Python >=3.13",
            "2.5: only sdist demo-2.5.tar.gz; yanked wheel demo-2.5-py3-none-any.whl (broken)",
            "2.0: only sdist demo-2.0.tar.gz; platform wheel demo-2.0-cp312-cp312-manylinux_2_17_x86_64.whl",
        ]
    );
}

#[test]
fn the_sdist_to_build_is_the_newest_allowed_one_without_a_wheel() {
    let mut yanked = file("demo-4.0.tar.gz");
    yanked.yanked = Some("broken".into());
    let mut other_python = file("demo-3.5.tar.gz");
    other_python.requires_python = Some(">=3.13".into());
    let files = [
        file("demo-1.0.tar.gz"),
        file("demo-1.0-py3-none-any.whl"),
        file("demo-2.0.tar.gz"),
        file("demo-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
        file("demo-3.0.zip"),
        other_python,
        yanked,
    ];
    let c = candidates(&files, "", &[]);
    let all = pubgrub::Ranges::full();
    let (version, sdist) = c.sdist_in(&all).unwrap();
    assert_eq!(
        (version, sdist.filename.as_str()),
        (&v("2.0"), "demo-2.0.tar.gz")
    );
    // 1.0 has a wheel: never built from its sdist.
    assert!(c.sdist_in(&pubgrub::Ranges::singleton(v("1.0"))).is_none());
    // A yanked sdist is allowed only when pinned.
    let pinned = candidates(&files, "", &["4.0"]);
    assert_eq!(pinned.sdist_in(&all).unwrap().0, &v("4.0"));
}

#[test]
fn the_highest_build_tag_wins_among_equal_tags() {
    let files = [
        file("demo-1.0-py3-none-any.whl"),
        file("demo-1.0-2-py3-none-any.whl"),
        file("demo-1.0-10-py3-none-any.whl"),
        file("demo-1.0-0.editable-py3-none-any.whl"),
    ];
    let c = candidates(&files, "", &[]);
    let order: Vec<&str> = c
        .files(&v("1.0"))
        .iter()
        .map(|f| f.filename.as_str())
        .collect();
    assert_eq!(
        order,
        [
            "demo-1.0-10-py3-none-any.whl",
            "demo-1.0-2-py3-none-any.whl",
            "demo-1.0-0.editable-py3-none-any.whl",
            "demo-1.0-py3-none-any.whl",
        ]
    );
}

#[test]
fn compact_summaries_count_files() {
    let files = [
        file("demo-2.0.tar.gz"),
        file("demo-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
        file("demo-2.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
    ];
    let c = candidates(&files, "", &[]);
    let (_, why) = c.exclusions().next().unwrap();
    let compact = VersionExclusions {
        exclusions: why,
        detailed: false,
    };
    assert_eq!(compact.to_string(), "only one sdist and 2 platform wheels");
}

#[test]
fn yanked_files_are_usable_when_pinned() {
    let mut yanked = file("demo-2.5-py3-none-any.whl");
    yanked.yanked = Some(String::new());
    let c = candidates(&[yanked.clone()], "", &["2.5"]);
    assert_eq!(c.files(&v("2.5")), [yanked]);
}

#[test]
fn constraints_exclude_versions() {
    let files = [
        file("demo-1.0-py3-none-any.whl"),
        file("demo-2.0-py3-none-any.whl"),
    ];
    let c = candidates(&files, "demo<2\n", &[]);
    assert_eq!(c.versions().collect::<Vec<_>>(), [&v("1.0")]);
    let (version, why) = c.exclusions().next().unwrap();
    assert_eq!(version, &v("2.0"));
    let compact = VersionExclusions {
        exclusions: why,
        detailed: false,
    };
    assert_eq!(
        compact.to_string(),
        "excluded by the build constraint `demo<2` (c.txt line 1)"
    );
}

#[test]
fn most_specific_tag_wins() {
    let files = [
        file("demo-1.0-py3-none-any.whl"),
        file("demo-1.0-cp312-none-any.whl"),
    ];
    let c = candidates(&files, "", &[]);
    assert_eq!(
        c.files(&v("1.0"))[0].filename,
        "demo-1.0-cp312-none-any.whl"
    );
}

#[test]
fn exclude_newer_and_offline_leave_files_out_with_a_reason() {
    let target = crate::target::tests::wasi_312();
    let constraints = BuildConstraints::none();
    let name = PackageName::from_str("demo").unwrap();
    let applicable = constraints.for_package(&name, target.marker_environment());
    let dated = |filename: &str, at: Option<&str>| {
        let mut f = file(filename);
        f.upload_time = at.map(|t| t.parse::<ExcludeNewer>().unwrap().unix_millis());
        f
    };
    let mut local = file("demo-4.0-py3-none-any.whl");
    local.url = "file:///wheels/demo-4.0-py3-none-any.whl".into();
    let files = [
        dated("demo-1.0-py3-none-any.whl", Some("2023-01-01T00:00:00Z")),
        dated("demo-2.0-py3-none-any.whl", None),
        dated("demo-3.0-py3-none-any.whl", Some("2024-06-01T00:00:00Z")),
        local,
    ];
    let cutoff: ExcludeNewer = "2024-01-01".parse().unwrap();
    let policy = Policy {
        target: &target,
        constraint: &applicable,
        allowed_yanks: &HashSet::new(),
        preferred_hashes: &HashSet::new(),
        exclude_newer: Some(cutoff),
        available: &|f| f.filename != "demo-1.0-py3-none-any.whl",
    };
    let c = Candidates::new(&name, &files, &policy);
    // 3.0 is too new and does not exist; 4.0 is local, so it counts without a date.
    assert_eq!(c.versions().collect::<Vec<_>>(), [&v("4.0")]);
    assert_eq!(c.uploaded_later, Some(cutoff));
    let excluded: Vec<String> = c
        .exclusions()
        .map(|(version, why)| {
            let why = VersionExclusions {
                exclusions: why,
                detailed: true,
            };
            format!("{version}: {why}")
        })
        .collect();
    assert_eq!(
        excluded,
        [
            "2.0: only undated wheel demo-2.0-py3-none-any.whl (from \
             https://index.example/simple/demo/)",
            "1.0: only uncached wheel demo-1.0-py3-none-any.whl",
        ]
    );
}
