//! How a failed resolution reads: a headline naming the requirements at odds, the reason of
//! the one package at fault, and pubgrub's derivation apart (for `-v`) with ranges shown
//! over the versions that exist.

mod support;

use std::sync::Arc;
use support::{Format, TestIndex, TinyWheel, run};
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::index::{IndexClient, IndexOptions};
use wasm_build_packaging::resolve::ResolveError;

fn client(index: &TestIndex, cache: &Cache) -> IndexClient {
    IndexClient::new(
        IndexOptions {
            index_url: Some(index.url()),
            ..IndexOptions::default()
        },
        cache,
    )
    .unwrap()
}

/// hatchling as PyPI has it, in small: the real 1.25.0 wheel (packaging>=23.2), 1.27.0
/// needing packaging>=24.2, a yanked 1.26.2 and an sdist-only 0.8.0; packaging 19.2, 24.1
/// (real) and 24.2.
fn hatchling_history() -> TestIndex {
    let index = TestIndex::start(Format::Json);
    let hatchling_deps = [
        "packaging>=24.2",
        "pathspec>=0.10.1",
        "pluggy>=1.0.0",
        "tomli>=1.2.2; python_version < '3.11'",
        "trove-classifiers",
    ];
    let newest = hatchling_deps
        .iter()
        .fold(TinyWheel::new("hatchling", "1.27.0"), |w, r| w.requires(r));
    index
        .add(
            "hatchling",
            "hatchling-0.8.0.tar.gz",
            Arc::new(b"sdist".to_vec()),
        )
        .add_pypi("hatchling", "hatchling-1.25.0-py3-none-any.whl")
        .add(
            "hatchling",
            "hatchling-1.26.2.tar.gz",
            Arc::new(b"sdist".to_vec()),
        )
        .add_tiny(&TinyWheel::new("hatchling", "1.26.2").requires("packaging>=24.2"))
        .add_tiny(&newest)
        .add_tiny(&TinyWheel::new("packaging", "19.2"))
        .add_pypi("packaging", "packaging-24.1-py3-none-any.whl")
        .add_tiny(&TinyWheel::new("packaging", "24.2"))
        .add_pypi("pathspec", "pathspec-0.12.1-py3-none-any.whl")
        .add_pypi("pluggy", "pluggy-1.5.0-py3-none-any.whl")
        .add_pypi(
            "trove-classifiers",
            "trove_classifiers-2024.7.2-py3-none-any.whl",
        );
    index.yank(
        "hatchling-1.26.2-py3-none-any.whl",
        "Broken by change to types",
    );
    index
}

#[test]
fn the_headline_names_the_two_requirements_at_odds() {
    let index = hatchling_history();
    let cache = Cache::temporary().unwrap();
    let error = run(&client(&index, &cache), &["hatchling", "packaging<20"]).unwrap_err();
    assert!(matches!(error, ResolveError::NoSolution { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "cannot resolve the build requirements for CPython 3.12.0 on wasi: hatchling 1.27.0 \
         needs packaging>=24.2, but the build requirements ask for packaging<20; the other \
         versions of hatchling need packaging>=23.2, are yanked, or have no pure-Python wheel \
         for CPython 3.12.0 on wasi"
    );
    let derivation = error.derivation().unwrap();
    for expected in [
        "hatchling==1.27.0 depends on packaging>=24.2",
        "hatchling==1.25.0 depends on packaging>=23.2",
        "no other version of hatchling can be used (hatchling 1.26.2 has only sdist \
         hatchling-1.26.2.tar.gz; yanked wheel hatchling-1.26.2-py3-none-any.whl (Broken by \
         change to types); hatchling 0.8.0 has only one sdist)",
        "the build requirements need packaging<20",
    ] {
        assert!(
            derivation.contains(expected),
            "missing {expected:?} in:\n{derivation}"
        );
    }
    // Ranges are shown over the versions that exist, without a hole per excluded version.
    assert!(!derivation.contains(" or >"), "{derivation}");
}

#[test]
fn two_dependencies_at_odds() {
    let index = TestIndex::start(Format::Json);
    index
        .add_tiny(&TinyWheel::new("alpha", "1.0").requires("common<2"))
        .add_tiny(&TinyWheel::new("beta", "1.0").requires("common>=2"))
        .add_tiny(&TinyWheel::new("beta", "0.9").requires("common>=2.1"))
        .add_tiny(&TinyWheel::new("common", "1.0"))
        .add_tiny(&TinyWheel::new("common", "2.0"))
        .add_tiny(&TinyWheel::new("common", "2.1"));
    let cache = Cache::temporary().unwrap();
    let error = run(&client(&index, &cache), &["alpha", "beta"]).unwrap_err();
    assert!(matches!(error, ResolveError::NoSolution { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "cannot resolve the build requirements for CPython 3.12.0 on wasi: beta 1.0 needs \
         common>=2, but alpha 1.0 needs common<2; the other versions of beta need common>=2.1"
    );
    let derivation = error.derivation().unwrap();
    for expected in [
        "alpha==1.0 depends on common<2",
        "beta==1.0 depends on common>=2",
        "the build requirements cannot be met",
    ] {
        assert!(
            derivation.contains(expected),
            "missing {expected:?} in:\n{derivation}"
        );
    }
}

#[test]
fn a_package_whose_versions_are_all_excluded_gets_its_own_reason() {
    let index = TestIndex::start(Format::Html);
    index
        .add_tiny(&TinyWheel::new("tool", "1.0").requires("modern>=1"))
        .add_tiny(&TinyWheel::new("modern", "1.0"))
        .add_tiny(&TinyWheel::new("modern", "2.0"));
    for file in ["modern-1.0-py3-none-any.whl", "modern-2.0-py3-none-any.whl"] {
        index.update(file, |served| {
            served.requires_python = Some(">=3.13".into())
        });
    }
    let cache = Cache::temporary().unwrap();
    let error = run(&client(&index, &cache), &["tool"]).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, ResolveError::NoWheel { ref package, .. } if package == "modern"),
        "{message}"
    );
    for expected in [
        "no version of `modern` that the build needs has a wheel CPython 3.12.0 on wasi can use",
        "→ tool 1.0 requires modern>=1",
        "modern 2.0: only wheel for other Pythons modern-2.0-py3-none-any.whl requires \
         Python >=3.13",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
    assert!(!message.contains("tool 1.0 cannot"), "{message}");
    assert!(error.derivation().is_some());
}

#[test]
fn a_version_the_constraint_excludes_reads_as_a_sentence() {
    let index = TestIndex::start(Format::Json);
    index
        .add_tiny(&TinyWheel::new("lib", "1.0"))
        .add_tiny(&TinyWheel::new("lib", "2.0"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.txt");
    std::fs::write(&path, "lib<2\n").unwrap();
    let constraints =
        wasm_build_packaging::constraints::BuildConstraints::from_file(&path, false).unwrap();
    let cache = Cache::temporary().unwrap();
    let error = wasm_build_packaging::resolve::resolve(
        &client(&index, &cache),
        &support::wasi_312(),
        &support::reqs(&["lib>=1.5"]),
        &constraints,
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(&format!(
            "lib 2.0: excluded by the build constraint `lib<2` ({} line 1)",
            path.display()
        )),
        "{message}"
    );
    let derivation = error.derivation().unwrap();
    assert!(
        derivation.contains("lib 2.0 is excluded by the build constraint"),
        "{derivation}"
    );
    assert!(!derivation.contains("has excluded"), "{derivation}");
}
