//! Resolutions against the real PyPI for a CPython 3.12 WASI guest. They depend on the
//! network and on what PyPI serves today, so they are ignored by default:
//! `cargo test -p wasm-build-packaging --test pypi -- --ignored`.

mod support;

use support::{reqs, sha256_hex, wasi_312};
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::constraints::BuildConstraints;
use wasm_build_packaging::index::{IndexClient, IndexOptions};
use wasm_build_packaging::resolve::{Resolution, ResolveError, resolve};

fn resolve_on_pypi(cache: &Cache, requirements: &[&str]) -> Result<Resolution, ResolveError> {
    let client = IndexClient::new(IndexOptions::default(), cache).unwrap();
    resolve(
        &client,
        &wasi_312(),
        &reqs(requirements),
        &BuildConstraints::none(),
    )
}

fn names(resolution: &Resolution) -> Vec<String> {
    resolution
        .packages
        .iter()
        .map(|p| p.name.to_string())
        .collect()
}

#[test]
#[ignore = "needs network access to pypi.org"]
fn popular_build_backends_resolve_to_pure_wheels() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    let hatchling = resolve_on_pypi(&cache, &["hatchling"]).unwrap();
    for dependency in [
        "hatchling",
        "packaging",
        "pathspec",
        "pluggy",
        "trove-classifiers",
    ] {
        assert!(
            names(&hatchling).contains(&dependency.to_string()),
            "{:?}",
            names(&hatchling)
        );
    }
    let setuptools = resolve_on_pypi(&cache, &["setuptools>=61"]).unwrap();
    assert!(names(&setuptools).contains(&"setuptools".to_string()));
    for backend in ["poetry-core", "pdm-backend", "flit-core"] {
        let resolution = resolve_on_pypi(&cache, &[backend]).unwrap();
        assert_eq!(names(&resolution), [backend]);
    }
    for package in hatchling.packages.iter().chain(&setuptools.packages) {
        assert!(package.file.filename.ends_with("-none-any.whl"));
        assert_eq!(
            sha256_hex(&std::fs::read(&package.path).unwrap()),
            package.sha256
        );
    }
    // Warm and offline: the same answer from the cache alone.
    let offline = IndexClient::new(
        IndexOptions {
            offline: true,
            ..IndexOptions::default()
        },
        &cache,
    )
    .unwrap();
    let again = resolve(
        &offline,
        &wasi_312(),
        &reqs(&["hatchling"]),
        &BuildConstraints::none(),
    )
    .unwrap();
    assert_eq!(names(&again), names(&hatchling));
}

#[test]
#[ignore = "needs network access to pypi.org"]
fn native_only_packages_are_explained() {
    let cache = Cache::temporary().unwrap();
    let err = resolve_on_pypi(&cache, &["markupsafe"]).unwrap_err();
    assert!(matches!(err, ResolveError::NoWheel { .. }), "{err}");
    assert!(err.to_string().contains("only sdist markupsafe-"), "{err}");
}

#[test]
#[ignore = "needs network access to pypi.org"]
fn a_conflict_with_the_real_hatchling_history_reads_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    let error = resolve_on_pypi(&cache, &["hatchling", "packaging<20"]).unwrap_err();
    let message = error.to_string();
    // What PyPI serves changes; the shape of the message does not.
    assert!(
        message.starts_with(
            "cannot resolve the build requirements for CPython 3.12.0 on wasi: hatchling "
        ),
        "{message}"
    );
    assert!(message.contains(" need"), "{message}");
    assert!(
        message.contains(", but the build requirements ask for packaging<20; the other versions of hatchling need packaging"),
        "{message}"
    );
    assert!(!message.contains('\n') && message.len() < 400, "{message}");
    let derivation = error.derivation().unwrap();
    assert!(!derivation.contains(" or >"), "{derivation}");
}
