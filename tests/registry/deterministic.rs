//! `--deterministic` end to end: the same sdists built twice, with another time zone, the
//! host's SOURCE_DATE_EPOCH absent then present, and another cache (build environments and
//! prepared backends made again), give byte-identical wheels.

use super::common::*;
use super::support::*;
use std::fs;
use std::path::Path;

/// A new cache holding only the shared cache's interpreter and wheels: everything else
/// (index pages, build environments, prepared backends) is made again.
fn fresh_cache(at: &Path) {
    for bucket in ["runtimes-v1", "compiled-v1", "wheels-v1"] {
        let from = shared_cache().join(bucket);
        if from.exists() {
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(&from)
                .arg(at.join(bucket))
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
}

#[test]
fn deterministic_wheels_do_not_depend_on_the_host() {
    let work = tempfile::tempdir().unwrap();
    let sdists = fixture_sdists(work.path(), &["flit", "hatchling", "setuptools"]);
    let cache = work.path().join("cache");
    fs::create_dir(&cache).unwrap();
    fresh_cache(&cache);

    let first = work.path().join("first");
    let report = work.path().join("first.json");
    let built_first = build_ok(
        wasm_build()
            .args(&sdists)
            .args(["--wheel", "--deterministic", "-j", "2", "-o"])
            .arg(&first)
            .arg("--report")
            .arg(&report)
            .env("TZ", "UTC"),
    );
    let second = work.path().join("second");
    let built_second = build_ok(
        wasm_build()
            .args(&sdists)
            .args(["--wheel", "--deterministic", "-o"])
            .arg(&second)
            .env("WASM_BUILD_CACHE_DIR", &cache)
            .env("TZ", "Pacific/Chatham")
            .env("SOURCE_DATE_EPOCH", "1234567890"),
    );
    assert_eq!(built_first.len(), 3);
    for (a, b) in built_first.iter().zip(&built_second) {
        assert_eq!(a.file_name(), b.file_name());
        assert!(
            fs::read(a).unwrap() == fs::read(b).unwrap(),
            "{} differs between the two builds",
            a.display()
        );
    }
    // The clock started at each sdist's newest member, not at the host's time.
    let report = read_json(&report);
    for source in report["sources"].as_array().unwrap() {
        let deterministic = &source["deterministic"];
        assert_eq!(deterministic["clock_from"], "newest_member", "{source}");
        assert!(deterministic["clock_start"].as_u64().unwrap() < 2_000_000_000);
    }
}

/// In a deterministic build of a folder, the file times the backend reads are clamped to
/// the folder's newest file, not to 1980: setuptools skips copying a module whose copy in
/// `build/lib` is not older than it, so with every time clamped to one value a stale copy
/// left by an earlier native build would end up in the wheel.
#[test]
fn a_deterministic_folder_build_keeps_which_file_is_newer() {
    let project = fixture("setuptools");
    let module = project.path().join("src/st_demo/__init__.py");
    let fresh = fs::read(&module).unwrap();
    let stale = project.path().join("build/lib/st_demo/__init__.py");
    fs::create_dir_all(stale.parent().unwrap()).unwrap();
    fs::write(&stale, b"STALE = True\n").unwrap();
    let at = |seconds: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    let set = |path: &Path, when| {
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap()
    };
    set(&stale, at(1_000_000_000)); // 2001: the stale copy is older than its source
    set(&module, at(1_100_000_000));
    let out = tempfile::tempdir().unwrap();
    let built = build_ok(
        wasm_build()
            .arg(project.path())
            .args(["--wheel", "--deterministic", "-o"])
            .arg(out.path()),
    );
    assert_eq!(zip_member(&built[0], "st_demo/__init__.py"), fresh);
}
