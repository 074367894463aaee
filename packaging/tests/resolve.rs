//! End-to-end resolution against a package index served on 127.0.0.1, built from real
//! PyPI wheels and tiny wheels made by the tests.

mod support;

use std::path::Path;
use std::sync::Arc;
use support::{Format, TestIndex, TinyWheel, pins, reqs, run, sha256_hex, tree, wasi_312};
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::constraints::BuildConstraints;
use wasm_build_packaging::index::{HashSource, IndexClient, IndexError, IndexOptions};
use wasm_build_packaging::resolve::{RequireHashesError, Resolution, ResolveError, resolve};

fn options(index: &TestIndex) -> IndexOptions {
    IndexOptions {
        index_url: Some(index.url()),
        ..IndexOptions::default()
    }
}

fn client(index: &TestIndex, cache: &Cache) -> IndexClient {
    IndexClient::new(options(index), cache).unwrap()
}

/// hatchling 1.25.0 and its dependencies as PyPI has them (tomli only below Python 3.11).
fn hatchling_index(format: Format) -> TestIndex {
    let index = TestIndex::start(format);
    index
        .add_pypi("hatchling", "hatchling-1.25.0-py3-none-any.whl")
        .add_pypi("packaging", "packaging-24.1-py3-none-any.whl")
        .add_pypi("pathspec", "pathspec-0.12.1-py3-none-any.whl")
        .add_pypi("pluggy", "pluggy-1.5.0-py3-none-any.whl")
        .add_pypi(
            "trove-classifiers",
            "trove_classifiers-2024.7.2-py3-none-any.whl",
        )
        .add_pypi("tomli", "tomli-2.0.1-py3-none-any.whl");
    index
}

const HATCHLING_SET: [&str; 5] = [
    "hatchling==1.25.0",
    "packaging==24.1",
    "pathspec==0.12.1",
    "pluggy==1.5.0",
    "trove-classifiers==2024.7.2",
];

#[test]
fn transitive_dependencies_with_markers_from_a_json_index() {
    let index = hatchling_index(Format::Json);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    let resolution = run(&client(&index, &cache), &["hatchling>=1.20"]).unwrap();
    // tomli is required only for python_version < "3.11": not for the 3.12 guest.
    assert_eq!(pins(&resolution), HATCHLING_SET);
    for package in &resolution.packages {
        assert_eq!(package.hash_source, HashSource::Index);
        let bytes = std::fs::read(&package.path).unwrap();
        assert_eq!(sha256_hex(&bytes), package.sha256);
        assert!(
            package
                .path
                .starts_with(dir.path().join("wheels-v1/sha256"))
        );
        assert!(package.path.ends_with(&package.file.filename));
    }
    assert!(resolution.notes.is_empty(), "{:?}", resolution.notes);
    // Pages came as JSON and every request named wasm-build.
    assert!(
        index
            .log()
            .iter()
            .all(|l| l.user_agent.starts_with("wasm-build/"))
    );
    assert_eq!(index.count("/simple/tomli/"), 0, "tomli was never needed");
}

#[test]
fn html_index_with_pep_658_metadata() {
    let index = hatchling_index(Format::Html);
    index.with_metadata_files();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    let resolution = run(&client(&index, &cache), &["hatchling"]).unwrap();
    assert_eq!(pins(&resolution), HATCHLING_SET);
    assert_eq!(
        index.count("/files/hatchling-1.25.0-py3-none-any.whl.metadata"),
        1
    );
    assert_eq!(index.count("/files/hatchling-1.25.0-py3-none-any.whl"), 2);
}

#[test]
fn second_round_with_the_same_client_makes_no_requests() {
    let index = hatchling_index(Format::Json);
    index.add_pypi("flit-core", "flit_core-3.9.0-py3-none-any.whl");
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    let client = client(&index, &cache);
    run(&client, &["hatchling"]).unwrap();
    index.clear_log();
    let started = std::time::Instant::now();
    let again = run(&client, &["hatchling"]).unwrap();
    assert_eq!(pins(&again), HATCHLING_SET);
    assert!(index.log().is_empty(), "{:?}", index.log());
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
    // A second round with a new requirement fetches only what is new.
    let union = run(&client, &["hatchling", "flit_core"]).unwrap();
    assert_eq!(union.packages.len(), 6);
    assert!(
        index.log().iter().all(|l| l.path.contains("flit")),
        "{:?}",
        index.log()
    );
}

#[test]
fn extras_add_their_requirements_and_markers_use_the_active_extra() {
    let index = TestIndex::start(Format::Json);
    index
        .add_tiny(
            &TinyWheel::new("app", "1.0")
                .extra("cli")
                .extra("all")
                .requires("base>=1")
                .requires("click>=8; extra == 'cli'")
                .requires("pywin; extra == 'cli' and sys_platform == 'win32'")
                .requires("app[cli]; extra == 'all'"),
        )
        .add_tiny(&TinyWheel::new("base", "1.0"))
        .add_tiny(&TinyWheel::new("click", "8.1"))
        .add_tiny(&TinyWheel::new("pywin", "1.0"));
    let cache = Cache::temporary().unwrap();
    let client = client(&index, &cache);
    assert_eq!(
        pins(&run(&client, &["app"]).unwrap()),
        ["app==1.0", "base==1.0"]
    );
    assert_eq!(
        pins(&run(&client, &["app[cli]"]).unwrap()),
        ["app==1.0", "base==1.0", "click==8.1"]
    );
    // An extra that pulls in another extra of the same package.
    assert_eq!(
        pins(&run(&client, &["app[all]"]).unwrap()),
        ["app==1.0", "base==1.0", "click==8.1"]
    );
    let unknown = run(&client, &["app[nope]"]).unwrap();
    assert_eq!(pins(&unknown), ["app==1.0", "base==1.0"]);
    assert!(
        unknown
            .notes
            .iter()
            .any(|n| n.contains("does not provide the extra `nope`")),
        "{:?}",
        unknown.notes
    );
}

#[test]
fn pure_wheel_is_chosen_beside_platform_wheels() {
    let index = TestIndex::start(Format::Json);
    index
        .add_pypi(
            "charset-normalizer",
            "charset_normalizer-3.3.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .add_pypi(
            "charset-normalizer",
            "charset_normalizer-3.3.2-py3-none-any.whl",
        );
    let cache = Cache::temporary().unwrap();
    let resolution = run(&client(&index, &cache), &["charset-normalizer"]).unwrap();
    assert_eq!(
        resolution.packages[0].file.filename,
        "charset_normalizer-3.3.2-py3-none-any.whl"
    );
    assert_eq!(
        index.count("/files/charset_normalizer-3.3.2-cp312"),
        0,
        "the platform wheel is never downloaded"
    );
}

#[test]
fn sdist_only_requirement_names_the_chain_and_what_exists() {
    let index = TestIndex::start(Format::Json);
    index
        .add_tiny(&TinyWheel::new("templating", "1.0").requires("markupsafe>=2.0"))
        .add_pypi("markupsafe", "MarkupSafe-2.1.5.tar.gz")
        .add_pypi(
            "markupsafe",
            "MarkupSafe-2.1.5-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        );
    let cache = Cache::temporary().unwrap();
    let err = run(&client(&index, &cache), &["templating>=1"]).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, ResolveError::NoWheel { ref package, .. } if package == "markupsafe"));
    for expected in [
        "no version of `markupsafe` that the build needs has a wheel CPython 3.12.0 on wasi can use",
        "the build requirements: templating>=1",
        "→ templating 1.0 requires markupsafe>=2.0",
        "→ markupsafe>=2.0 has no pure-Python wheel for CPython 3.12.0 on wasi",
        "markupsafe 2.1.5: only sdist MarkupSafe-2.1.5.tar.gz; platform wheel \
         MarkupSafe-2.1.5-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
}

#[test]
fn yanked_files_are_skipped_unless_pinned() {
    let index = TestIndex::start(Format::Json);
    index
        .add_tiny(&TinyWheel::new("lib", "1.0"))
        .add_tiny(&TinyWheel::new("lib", "2.0"));
    index.yank("lib-2.0-py3-none-any.whl", "broken release");
    let cache = Cache::temporary().unwrap();
    let client = client(&index, &cache);
    assert_eq!(pins(&run(&client, &["lib"]).unwrap()), ["lib==1.0"]);
    let pinned = run(&client, &["lib==2.0"]).unwrap();
    assert_eq!(pins(&pinned), ["lib==2.0"]);
    assert!(
        pinned
            .notes
            .iter()
            .any(|n| n.contains("using yanked lib-2.0-py3-none-any.whl")
                && n.contains("broken release")),
        "{:?}",
        pinned.notes
    );
    // `>=2` is not a pin: the yanked release stays out and the message says why.
    let message = run(&client, &["lib>=2"]).unwrap_err().to_string();
    assert!(
        message.contains("only yanked wheel lib-2.0-py3-none-any.whl (broken release)"),
        "{message}"
    );
}

#[test]
fn requires_python_is_honoured_from_the_index_and_the_metadata() {
    let index = TestIndex::start(Format::Html);
    index
        .add_tiny(&TinyWheel::new("modern", "1.0"))
        .add_tiny(&TinyWheel::new("modern", "2.0").requires_python(">=3.13"))
        .add_tiny(&TinyWheel::new("modern", "3.0"));
    // The index tells for 3.0; 2.0's limit is only in its METADATA.
    index.update("modern-3.0-py3-none-any.whl", |s| {
        s.requires_python = Some(">=3.14".into())
    });
    let cache = Cache::temporary().unwrap();
    let resolution = run(&client(&index, &cache), &["modern"]).unwrap();
    assert_eq!(pins(&resolution), ["modern==1.0"]);
    assert_eq!(
        index.count("/files/modern-3.0"),
        0,
        "excluded by data-requires-python"
    );
}

#[test]
fn prereleases_only_when_nothing_else_fits_or_asked() {
    let index = TestIndex::start(Format::Json);
    index
        .add_tiny(&TinyWheel::new("tool", "1.0"))
        .add_tiny(&TinyWheel::new("tool", "2.0b1"));
    let cache = Cache::temporary().unwrap();
    let client = client(&index, &cache);
    assert_eq!(pins(&run(&client, &["tool"]).unwrap()), ["tool==1.0"]);
    let explicit = run(&client, &["tool>=2.0b1"]).unwrap();
    assert_eq!(pins(&explicit), ["tool==2.0b1"]);
    let needed = run(&client, &["tool>1.0"]).unwrap();
    assert_eq!(pins(&needed), ["tool==2.0b1"]);
    assert!(
        needed
            .notes
            .iter()
            .any(|n| n.contains("using pre-release tool 2.0b1") && n.contains("tool>1.0")),
        "{:?}",
        needed.notes
    );
}

#[test]
fn hash_mismatch_is_refused_and_nothing_is_cached() {
    let index = TestIndex::start(Format::Json);
    index.add_tiny(&TinyWheel::new("victim", "1.0"));
    index.tamper("victim-1.0-py3-none-any.whl");
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    let err = run(&client(&index, &cache), &["victim"]).unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            ResolveError::Index { ref error, .. }
                if matches!(**error, IndexError::HashMismatch { .. })
        ),
        "{message}"
    );
    assert!(message.contains("victim-1.0-py3-none-any.whl"), "{message}");
    assert!(message.contains("sha256 mismatch"), "{message}");
    let cached = tree(&dir.path().join("wheels-v1"));
    assert!(
        cached
            .iter()
            .all(|p| !p.to_string_lossy().contains("victim")
                && !p.to_string_lossy().contains(".download-")),
        "{cached:?}"
    );
}

#[test]
fn metadata_file_with_a_wrong_hash_is_refused() {
    let index = TestIndex::start(Format::Json);
    index.with_metadata_files();
    index.add_tiny(&TinyWheel::new("meta", "1.0"));
    index.tamper("meta-1.0-py3-none-any.whl.metadata");
    let cache = Cache::temporary().unwrap();
    let err = run(&client(&index, &cache), &["meta"]).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("sha256 mismatch for the core metadata of `meta-1.0-py3-none-any.whl`"),
        "{message}"
    );
    let wheel_downloads = index
        .log()
        .iter()
        .filter(|l| l.path == "/files/meta-1.0-py3-none-any.whl")
        .count();
    assert_eq!(
        wheel_downloads,
        0,
        "the wheel is never fetched: {:?}",
        index.log()
    );
}

#[test]
fn local_find_links_page_with_relative_links() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = TinyWheel::new("paged", "1.0");
    std::fs::write(dir.path().join(wheel.filename()), wheel.build()).unwrap();
    let page = dir.path().join("links.html");
    std::fs::write(&page, format!("<a href=\"{0}\">{0}</a>", wheel.filename())).unwrap();
    let index = TestIndex::start(Format::Json);
    let cache = Cache::temporary().unwrap();
    let client = IndexClient::new(
        IndexOptions {
            find_links: vec![page.display().to_string()],
            ..options(&index)
        },
        &cache,
    )
    .unwrap();
    let resolution = run(&client, &["paged"]).unwrap();
    assert_eq!(pins(&resolution), ["paged==1.0"]);
    assert_eq!(resolution.packages[0].hash_source, HashSource::Computed);
}

#[test]
fn require_hashes_refuses_missing_pins_and_hashes() {
    let index = TestIndex::start(Format::Json);
    index.add_pypi("six", "six-1.16.0-py2.py3-none-any.whl");
    index.add_tiny(&TinyWheel::new("needs-six", "1.0").requires("six"));
    let six_hash = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254";
    let needs_six_hash = sha256_hex(&TinyWheel::new("needs-six", "1.0").requires("six").build());
    let cache = Cache::temporary().unwrap();
    let client = client(&index, &cache);
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let path = dir.path().join("constraints.txt");
        std::fs::write(&path, text).unwrap();
        let constraints = BuildConstraints::from_file(&path, true).unwrap();
        resolve(&client, &wasi_312(), &reqs(&["needs-six"]), &constraints)
    };

    let missing_hash = check(&format!(
        "needs-six==1.0 --hash=sha256:{needs_six_hash}\nsix==1.16.0\n"
    ))
    .unwrap_err();
    assert!(
        matches!(missing_hash, ResolveError::RequireHashes(ref e) if matches!(**e, RequireHashesError::MissingHash { ref package, .. } if package == "six")),
        "{missing_hash}"
    );
    assert!(
        missing_hash
            .to_string()
            .contains("`six 1.16.0` has no hash"),
        "{missing_hash}"
    );

    let not_pinned =
        check(&format!("needs-six==1.0 --hash=sha256:{needs_six_hash}\n")).unwrap_err();
    assert!(
        matches!(not_pinned, ResolveError::RequireHashes(ref e) if matches!(**e, RequireHashesError::NotPinned { ref package, .. } if package == "six"))
    );
    assert!(
        not_pinned.to_string().contains("required by needs-six 1.0"),
        "{not_pinned}"
    );

    let wrong = check(&format!(
        "needs-six==1.0 --hash=sha256:{needs_six_hash}\nsix==1.16.0 --hash=sha256:{}\n",
        "0".repeat(64)
    ))
    .unwrap_err();
    assert!(
        matches!(wrong, ResolveError::RequireHashes(ref e) if matches!(**e, RequireHashesError::HashNotAllowed { ref package, .. } if package == "six"))
    );
    assert!(wrong.to_string().contains(six_hash), "{wrong}");

    let ok = check(&format!(
        "needs-six==1.0 --hash=sha256:{needs_six_hash}\n\
         six==1.16.0 \\\n  --hash=sha256:{} \\\n  --hash=sha256:{six_hash}\n",
        "1".repeat(64)
    ))
    .unwrap();
    assert_eq!(pins(&ok), ["needs-six==1.0", "six==1.16.0"]);
}

#[test]
fn require_hashes_checks_computed_hashes_when_the_index_gives_none() {
    let index = TestIndex::start(Format::Html);
    index.without_hashes();
    index.add_tiny(&TinyWheel::new("nohash", "1.0"));
    let real = sha256_hex(&TinyWheel::new("nohash", "1.0").build());
    let cache = Cache::temporary().unwrap();
    let client = client(&index, &cache);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.txt");
    std::fs::write(
        &path,
        format!("nohash==1.0 --hash=sha256:{}\n", "2".repeat(64)),
    )
    .unwrap();
    let constraints = BuildConstraints::from_file(&path, true).unwrap();
    let err = resolve(&client, &wasi_312(), &reqs(&["nohash"]), &constraints).unwrap_err();
    assert!(
        matches!(err, ResolveError::RequireHashes(ref e) if matches!(**e, RequireHashesError::HashNotAllowed { .. })),
        "{err}"
    );
    std::fs::write(&path, format!("nohash==1.0 --hash=sha256:{real}\n")).unwrap();
    let constraints = BuildConstraints::from_file(&path, true).unwrap();
    let ok = resolve(&client, &wasi_312(), &reqs(&["nohash"]), &constraints).unwrap();
    assert_eq!(ok.packages[0].sha256, real);
    assert_eq!(ok.packages[0].hash_source, HashSource::Computed);
    assert!(
        ok.notes
            .iter()
            .any(|n| n.contains("without a sha256; its bytes hash to")),
        "{:?}",
        ok.notes
    );
}

#[test]
fn constraints_restrict_versions_without_adding_packages() {
    let index = TestIndex::start(Format::Json);
    index
        .add_tiny(&TinyWheel::new("lib", "1.0"))
        .add_tiny(&TinyWheel::new("lib", "1.5"))
        .add_tiny(&TinyWheel::new("lib", "2.0"))
        .add_tiny(&TinyWheel::new("unrelated", "1.0"));
    let cache = Cache::temporary().unwrap();
    let client = client(&index, &cache);
    let constraints =
        BuildConstraints::parse("lib<2\nunrelated==1.0\n", Path::new("c.txt"), false).unwrap();
    let resolution = resolve(&client, &wasi_312(), &reqs(&["lib"]), &constraints).unwrap();
    assert_eq!(pins(&resolution), ["lib==1.5"]);
    let err = resolve(&client, &wasi_312(), &reqs(&["lib>=2"]), &constraints).unwrap_err();
    assert!(
        err.to_string()
            .contains("excluded by the build constraint `lib<2` (c.txt line 1)"),
        "{err}"
    );
}

#[test]
fn offline_without_and_with_a_warm_cache() {
    let index = hatchling_index(Format::Json);
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    let offline = IndexOptions {
        offline: true,
        ..options(&index)
    };
    let cold = IndexClient::new(offline.clone(), &cache).unwrap();
    let err = run(&cold, &["hatchling"]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("cannot get `hatchling`"), "{message}");
    assert!(message.contains("offline"), "{message}");
    assert!(index.log().is_empty());

    let online = run(&client(&index, &cache), &["hatchling"]).unwrap();
    index.clear_log();
    let warm = IndexClient::new(offline, &cache).unwrap();
    let again = run(&warm, &["hatchling"]).unwrap();
    assert_eq!(pins(&again), HATCHLING_SET);
    for (a, b) in online.packages.iter().zip(&again.packages) {
        assert_eq!((&a.sha256, &a.path), (&b.sha256, &b.path));
    }
    assert!(
        index.log().is_empty(),
        "offline made requests: {:?}",
        index.log()
    );

    // Something never cached is named.
    let err = run(&warm, &["hatchling", "flit-core"]).unwrap_err();
    assert!(err.to_string().contains("`flit-core` offline"), "{err}");
}

#[test]
fn damaged_cache_entries_are_replaced() {
    let index = TestIndex::start(Format::Json);
    index.add_tiny(&TinyWheel::new("fragile", "1.0"));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    let first = run(&client(&index, &cache), &["fragile"]).unwrap();
    let path = first.packages[0].path.clone();
    std::fs::write(&path, b"bit rot").unwrap();
    let second = run(&client(&index, &cache), &["fragile"]).unwrap();
    assert_eq!(second.packages[0].path, path);
    assert_eq!(
        sha256_hex(&std::fs::read(&path).unwrap()),
        first.packages[0].sha256
    );
    assert_eq!(index.count("/files/fragile-1.0-py3-none-any.whl"), 2);
}

#[test]
fn racing_resolutions_on_a_cold_cache_both_succeed() {
    let index = hatchling_index(Format::Json);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let results: Vec<Resolution> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (index, root) = (&index, &root);
                scope.spawn(move || {
                    let cache = Cache::at(root).unwrap();
                    run(&client(index, &cache), &["hatchling"]).unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(pins(&results[0]), HATCHLING_SET);
    assert_eq!(pins(&results[1]), HATCHLING_SET);
    for (a, b) in results[0].packages.iter().zip(&results[1].packages) {
        assert_eq!(a.path, b.path);
        assert_eq!(sha256_hex(&std::fs::read(&a.path).unwrap()), a.sha256);
    }
    // The cache holds exactly the five wheels and no leftovers.
    let wheels: Vec<_> = tree(&root.join("wheels-v1/sha256"));
    assert_eq!(wheels.len(), 5, "{wheels:?}");
    let leftovers: Vec<_> = tree(&root)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The lock made the two clients fetch each page once.
    assert_eq!(index.count("/simple/hatchling/"), 1, "{:?}", index.log());
}

/// Run by `racing_processes_on_a_cold_cache` in child processes; does nothing otherwise.
#[test]
fn race_child() {
    let (Ok(url), Ok(root)) = (
        std::env::var("WASM_BUILD_TEST_RACE_INDEX"),
        std::env::var("WASM_BUILD_TEST_RACE_CACHE"),
    ) else {
        return;
    };
    let cache = Cache::at(root).unwrap();
    let client = IndexClient::new(
        IndexOptions {
            index_url: Some(url),
            ..IndexOptions::default()
        },
        &cache,
    )
    .unwrap();
    let resolution = run(&client, &["hatchling"]).unwrap();
    for package in &resolution.packages {
        println!("RESOLVED {} {}", package.name, package.sha256);
    }
}

#[test]
fn racing_processes_on_a_cold_cache() {
    let index = hatchling_index(Format::Json);
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "race_child", "--nocapture", "--test-threads=1"])
                .env("WASM_BUILD_TEST_RACE_INDEX", index.url())
                .env("WASM_BUILD_TEST_RACE_CACHE", dir.path())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Vec<String>> = children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success());
            String::from_utf8_lossy(&output.stdout)
                .lines()
                // libtest may print its "test race_child ... " prefix on the same line.
                .filter_map(|l| l.find("RESOLVED ").map(|i| l[i..].to_string()))
                .collect()
        })
        .collect();
    assert_eq!(outputs[0].len(), 5, "{outputs:?}");
    assert!(outputs.iter().all(|o| o == &outputs[0]), "{outputs:?}");
    let wheels = tree(&dir.path().join("wheels-v1/sha256"));
    assert_eq!(wheels.len(), 5, "{wheels:?}");
    for wheel in &wheels {
        let bytes = std::fs::read(dir.path().join("wheels-v1/sha256").join(wheel)).unwrap();
        let hash = sha256_hex(&bytes);
        assert!(
            wheel.to_string_lossy().contains(&hash),
            "{wheel:?} holds other bytes"
        );
    }
}

#[test]
fn pages_are_revalidated_with_etags_and_fresh_pages_are_reused() {
    let index = TestIndex::start(Format::Json);
    index.add_tiny(&TinyWheel::new("cached", "1.0"));
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    run(&client(&index, &cache), &["cached"]).unwrap();
    // No Cache-Control: a new client revalidates with If-None-Match and gets a 304.
    index.clear_log();
    run(&client(&index, &cache), &["cached"]).unwrap();
    let page = index
        .log()
        .into_iter()
        .find(|l| l.path == "/simple/cached/")
        .unwrap();
    assert!(page.conditional);
    assert_eq!(page.status, 304);

    // With max-age, a fresh page is not requested at all, unless refresh is asked for.
    index.cache_control("max-age=600");
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    run(&client(&index, &cache), &["cached"]).unwrap();
    index.clear_log();
    run(&client(&index, &cache), &["cached"]).unwrap();
    assert_eq!(index.count("/simple/"), 0, "{:?}", index.log());
    let refresh = IndexClient::new(
        IndexOptions {
            refresh: true,
            ..options(&index)
        },
        &cache,
    )
    .unwrap();
    run(&refresh, &["cached"]).unwrap();
    assert_eq!(index.count("/simple/cached/"), 1);
}

#[test]
fn transient_failures_are_retried() {
    let index = TestIndex::start(Format::Json);
    index.add_tiny(&TinyWheel::new("flaky", "1.0"));
    index.fail("/simple/flaky/", &[503, 429]);
    index.fail("/files/flaky-1.0-py3-none-any.whl", &[500]);
    let cache = Cache::temporary().unwrap();
    let resolution = run(&client(&index, &cache), &["flaky"]).unwrap();
    assert_eq!(pins(&resolution), ["flaky==1.0"]);
    assert_eq!(index.count("/simple/flaky/"), 3);

    index.fail("/simple/down/", &[503; 10]);
    let err = run(&client(&index, &Cache::temporary().unwrap()), &["down"]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("HTTP 503"), "{message}");
    assert!(message.contains("gave up after 4 attempts"), "{message}");
}

#[test]
fn unknown_project_is_named_with_the_sources_searched() {
    let index = TestIndex::start(Format::Json);
    let cache = Cache::temporary().unwrap();
    let message = run(&client(&index, &cache), &["does-not-exist>=1"])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("does-not-exist was not found"),
        "{message}"
    );
    assert!(message.contains(&index.url()), "{message}");
}

#[test]
fn several_indexes_and_find_links_are_merged() {
    let main = TestIndex::start(Format::Json);
    main.add_tiny(&TinyWheel::new("spread", "1.0"));
    let extra = TestIndex::start(Format::Html);
    extra
        .add_tiny(&TinyWheel::new("spread", "2.0"))
        .add_tiny(&TinyWheel::new("spread", "1.0").tag("py2.py3-none-any"));
    let local = tempfile::tempdir().unwrap();
    let wheel = TinyWheel::new("spread", "3.0").requires("helper");
    std::fs::write(local.path().join(wheel.filename()), wheel.build()).unwrap();
    let flat = TestIndex::start(Format::Html);
    flat.add_tiny(&TinyWheel::new("helper", "0.1"));
    let cache = Cache::temporary().unwrap();
    let client = IndexClient::new(
        IndexOptions {
            index_url: Some(main.url()),
            extra_index_urls: vec![extra.url()],
            find_links: vec![local.path().display().to_string(), flat.flat_url()],
            ..IndexOptions::default()
        },
        &cache,
    )
    .unwrap();
    let files = client.project_files(&"spread".parse().unwrap()).unwrap();
    let names: Vec<_> = files.iter().map(|f| f.filename.as_str()).collect();
    assert_eq!(
        names,
        [
            "spread-1.0-py3-none-any.whl",
            "spread-2.0-py3-none-any.whl",
            "spread-1.0-py2.py3-none-any.whl",
            "spread-3.0-py3-none-any.whl"
        ]
    );
    let resolution = run(&client, &["spread"]).unwrap();
    assert_eq!(pins(&resolution), ["helper==0.1", "spread==3.0"]);
    let spread = &resolution.packages[1];
    assert_eq!(spread.hash_source, HashSource::Computed);
    assert!(spread.path.exists());
}

#[test]
fn identical_file_names_take_the_first_index() {
    let first = TestIndex::start(Format::Json);
    first.add_tiny(&TinyWheel::new("dup", "1.0"));
    let second = TestIndex::start(Format::Json);
    second.add(
        "dup",
        "dup-1.0-py3-none-any.whl",
        Arc::new(b"other bytes".to_vec()),
    );
    let cache = Cache::temporary().unwrap();
    let client = IndexClient::new(
        IndexOptions {
            index_url: Some(first.url()),
            extra_index_urls: vec![second.url()],
            ..IndexOptions::default()
        },
        &cache,
    )
    .unwrap();
    let files = client.project_files(&"dup".parse().unwrap()).unwrap();
    assert_eq!(files.len(), 1);
    assert!(files[0].source.starts_with(&first.url()));
    run(&client, &["dup"]).unwrap();
    assert_eq!(second.count("/files/"), 0);
}

#[test]
fn no_requirements_resolve_to_nothing() {
    let index = TestIndex::start(Format::Json);
    let cache = Cache::temporary().unwrap();
    let client = client(&index, &cache);
    assert!(run(&client, &[]).unwrap().packages.is_empty());
    // Requirements whose markers exclude the guest are dropped before resolution.
    let resolution = run(&client, &["pywin32; sys_platform == 'win32'"]).unwrap();
    assert!(resolution.packages.is_empty());
    assert!(index.log().is_empty());
}

#[test]
fn direct_url_requirements_are_refused() {
    let index = TestIndex::start(Format::Json);
    let cache = Cache::temporary().unwrap();
    let err = run(
        &client(&index, &cache),
        &["tool @ https://example.org/tool-1.0-py3-none-any.whl"],
    )
    .unwrap_err();
    assert!(
        matches!(err, ResolveError::UnsupportedRequirement { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("tool @ https://example.org/"),
        "{err}"
    );
}
