//! Bad command lines (item 11) and bad input (item 12): each is refused with a message that
//! says what is wrong, before anything is prepared (the cache stays empty).

use super::*;

/// The intree project as an sdist made here (tar.gz), named `name` in `dir`.
fn intree_sdist(dir: &Path, name: &str) -> PathBuf {
    let project = fixtures().join("intree");
    let path = dir.join(name);
    let gz = flate2::write::GzEncoder::new(
        fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let top = "intree_demo-0.7.0";
    for file in [
        "pyproject.toml",
        "_build/backend.py",
        "intree_demo/__init__.py",
    ] {
        tar.append_path_with_name(project.join(file), format!("{top}/{file}"))
            .unwrap();
    }
    let pkg_info = b"Metadata-Version: 2.1\nName: intree-demo\nVersion: 0.7.0\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(pkg_info.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, format!("{top}/PKG-INFO"), &pkg_info[..])
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
    path
}

/// Runs `wasm-build ARGS` on an empty cache: exit `code`, a message holding each of
/// `expected`, nothing prepared.
fn refused(args: &[&std::ffi::OsStr], code: i32, expected: &[&str]) -> String {
    let cache = empty_cache();
    let stderr = exits(
        wasm_build()
            .env("WASM_BUILD_CACHE_DIR", cache.path())
            .args(args),
        code,
    );
    for text in expected {
        assert!(stderr.contains(text), "expected {text:?} in:\n{stderr}");
    }
    assert!(listing(cache.path()).is_empty(), "the cache was populated");
    stderr
}

fn os(args: &[&str]) -> Vec<std::ffi::OsString> {
    args.iter().map(Into::into).collect()
}

/// Item 11: values that cannot work are a bad command line (exit 2), said before anything
/// is prepared.
#[test]
fn bad_command_lines_exit_2_before_anything_is_prepared() {
    let project = intree_project(None);
    let dir = tempfile::tempdir().unwrap();
    let sdist = intree_sdist(dir.path(), "intree_demo-0.7.0.tar.gz");
    let p = project.path().to_str().unwrap();
    let s = sdist.to_str().unwrap();
    let missing = dir.path().join("nowhere");
    let missing = missing.to_str().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[p, "--index-url", "not-a-url"],
            &["--index-url", "not-a-url", "is not an index URL"],
        ),
        (&[s, "--sdist"], &["from an sdist, not sdist"]),
        (&[s, "--editable"], &["from an sdist, not editable wheel"]),
        (
            &[p, "--editable", "--wheel"],
            &["an editable wheel and a wheel"],
        ),
        (&["runtime", "info", "nope"], &["nope", "is not a runtime"]),
        (&[missing], &[missing, "does not exist"]),
        (&[p, "--timeout", "0"], &["--timeout", "at least 1"]),
        (
            &[p, "--memory-limit", "0"],
            &["--memory-limit", "at least 1"],
        ),
        (&[p, "-C", "=x"], &["--config-setting", "empty key"]),
        (&[p, "--config-json", "[1]"], &["not a JSON object"]),
        (
            &[p, "-C", "a=b", "--config-json", "{}"],
            &["--config-json", "cannot be used with"],
        ),
        (&[p, "-vv", "-q"], &["cannot be used with"]),
    ];
    for (args, expected) in cases {
        let args = os(args);
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        refused(&args, 2, expected);
    }
    assert!(!project.path().join("dist").exists());
    assert_eq!(listing(dir.path()), ["intree_demo-0.7.0.tar.gz"]);
}

/// Item 12: a wheel or a `.tar.xz` given as SOURCE is named for what it is, with what is
/// accepted; a truncated sdist says so once and names the file.
#[test]
fn sources_of_other_formats_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let wheel = dir.path().join("demo-1.0-py3-none-any.whl");
    fs::copy(
        wheel_dir("demo", "1.0", &[("demo.py", b"")])
            .path()
            .join("demo-1.0-py3-none-any.whl"),
        &wheel,
    )
    .unwrap();
    refused(
        &[wheel.as_os_str()],
        3,
        &[
            "is a wheel, not an sdist",
            "from project folders and sdists",
        ],
    );
    let xz = dir.path().join("demo-1.0.tar.xz");
    fs::write(
        &xz,
        b"\xfd7zXZ\x00\x00\x04\xe6\xd6\xb4\x46rest of an xz stream",
    )
    .unwrap();
    refused(
        &[xz.as_os_str()],
        3,
        &["is a .tar.xz archive", ".tar.gz", ".zip"],
    );

    let sdist = intree_sdist(dir.path(), "intree_demo-0.7.0.tar.gz");
    let bytes = fs::read(&sdist).unwrap();
    fs::write(&sdist, &bytes[..bytes.len() / 2]).unwrap();
    let out = tempfile::tempdir().unwrap();
    let stderr = exits(wasm_build().arg(&sdist).arg("-o").arg(out.path()), 3);
    assert!(stderr.contains("intree_demo-0.7.0.tar.gz"), "{stderr}");
    assert!(
        stderr.contains("truncated") || stderr.contains("incomplete"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("incomplete deflate stream: incomplete deflate stream"),
        "the cause said twice: {stderr}"
    );
    assert!(listing(out.path()).is_empty());
}

/// Item 12: a huge value on the command line is not echoed back in full.
#[test]
fn a_huge_bad_value_is_not_echoed_in_full() {
    let project = intree_project(None);
    let value = format!("={}", "x".repeat(100_000));
    let args = [project.path().as_os_str(), "-C".as_ref(), value.as_ref()];
    let stderr = refused(&args, 2, &["--config-setting", "xxxxxxxx"]);
    assert!(stderr.len() < 2_000, "{} bytes of error", stderr.len());
}
