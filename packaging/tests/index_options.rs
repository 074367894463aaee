//! The index options beyond the index URL, against indexes on 127.0.0.1: offline mode with
//! find-links beside cached pages, `no_index`, `exclude_newer` (PEP 700 upload times), and
//! the errors (with their hints) of an index that cannot be reached or whose certificate is
//! not trusted.

mod support;

use support::{Format, TestIndex, TinyWheel, pins, run, tls, write_wheels};
use wasm_build_packaging::cache::Cache;
use wasm_build_packaging::index::{Hint, IndexClient, IndexError, IndexOptions};
use wasm_build_packaging::resolve::ResolveError;

fn options(index: &TestIndex) -> IndexOptions {
    IndexOptions {
        index_url: Some(index.url()),
        ..IndexOptions::default()
    }
}

/// An index with `pkg` 1.0 and 2.0, and a find-links folder with the same `pkg` 1.0 wheel.
fn index_and_folder() -> (TestIndex, tempfile::TempDir) {
    let index = TestIndex::start(Format::Json);
    index
        .add_tiny(&TinyWheel::new("pkg", "1.0"))
        .add_tiny(&TinyWheel::new("pkg", "2.0"));
    let folder = tempfile::tempdir().unwrap();
    write_wheels(folder.path(), &[TinyWheel::new("pkg", "1.0")]);
    (index, folder)
}

#[test]
fn offline_a_find_links_wheel_wins_over_a_cached_page() {
    let (index, folder) = index_and_folder();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    // An earlier online run cached the page of `pkg` without downloading anything.
    let online = IndexClient::new(options(&index), &cache).unwrap();
    assert_eq!(
        online.project_files(&"pkg".parse().unwrap()).unwrap().len(),
        2
    );
    index.clear_log();

    let offline = IndexClient::new(
        IndexOptions {
            offline: true,
            find_links: vec![folder.path().display().to_string()],
            ..options(&index)
        },
        &cache,
    )
    .unwrap();
    let resolution = run(&offline, &["pkg"]).unwrap();
    assert_eq!(pins(&resolution), ["pkg==1.0"]);
    let chosen = &resolution.packages[0].file;
    assert_eq!(
        chosen.local_path().unwrap(),
        folder.path().join("pkg-1.0-py3-none-any.whl"),
        "the find-links copy of the file both sources list"
    );
    assert!(index.log().is_empty(), "{:?}", index.log());
}

#[test]
fn offline_cached_downloads_of_a_page_stay_usable() {
    let (index, folder) = index_and_folder();
    let dir = tempfile::tempdir().unwrap();
    let cache = Cache::at(dir.path()).unwrap();
    let online = IndexClient::new(options(&index), &cache).unwrap();
    assert_eq!(pins(&run(&online, &["pkg==2.0"]).unwrap()), ["pkg==2.0"]);
    index.clear_log();
    let offline = IndexOptions {
        offline: true,
        find_links: vec![folder.path().display().to_string()],
        ..options(&index)
    };
    let client = IndexClient::new(offline.clone(), &cache).unwrap();
    // 2.0 was downloaded before: it is the newest usable version offline.
    let resolution = run(&client, &["pkg"]).unwrap();
    assert_eq!(pins(&resolution), ["pkg==2.0"]);
    assert!(resolution.packages[0].file.local_path().is_none());
    assert!(index.log().is_empty(), "{:?}", index.log());

    // Without the folder and with nothing else cached, the message says what is missing.
    let fresh = tempfile::tempdir().unwrap();
    let cache = Cache::at(fresh.path()).unwrap();
    IndexClient::new(options(&index), &cache)
        .unwrap()
        .project_files(&"pkg".parse().unwrap())
        .unwrap();
    let client = IndexClient::new(
        IndexOptions {
            find_links: Vec::new(),
            ..offline
        },
        &cache,
    )
    .unwrap();
    let message = run(&client, &["pkg"]).unwrap_err().to_string();
    for expected in [
        "no version of `pkg` that the build needs can be used",
        "pkg 2.0: only uncached wheel pkg-2.0-py3-none-any.whl",
        "Offline, only wheels in the cache",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
}

#[test]
fn no_index_uses_find_links_only() {
    let (index, folder) = index_and_folder();
    let cache = Cache::temporary().unwrap();
    let client = IndexClient::new(
        IndexOptions {
            no_index: true,
            find_links: vec![folder.path().display().to_string()],
            ..options(&index)
        },
        &cache,
    )
    .unwrap();
    assert_eq!(client.sources(), [folder.path().display().to_string()]);
    assert_eq!(pins(&run(&client, &["pkg"]).unwrap()), ["pkg==1.0"]);
    let message = run(&client, &["other"]).unwrap_err().to_string();
    assert!(
        message.contains(&format!(
            "other was not found (searched {})",
            folder.path().display()
        )),
        "{message}"
    );
    assert!(index.log().is_empty(), "{:?}", index.log());

    let nothing = IndexClient::new(
        IndexOptions {
            no_index: true,
            ..options(&index)
        },
        &cache,
    )
    .unwrap();
    let message = run(&nothing, &["pkg"]).unwrap_err().to_string();
    assert!(
        message.contains("no index is searched and no find-links location was given"),
        "{message}"
    );
}

/// `lib` 1.0 (2023), 2.0 (mid-2024) and `app` 1.0 (2023) needing `lib`, on a JSON index
/// with upload times.
fn dated_index(format: Format) -> TestIndex {
    let index = TestIndex::start(format);
    index
        .add_tiny(&TinyWheel::new("app", "1.0").requires("lib>=1"))
        .add_tiny(&TinyWheel::new("lib", "1.0"))
        .add_tiny(&TinyWheel::new("lib", "2.0"));
    index.uploaded("app-1.0-py3-none-any.whl", "2023-05-01T08:00:00Z");
    index.uploaded("lib-1.0-py3-none-any.whl", "2023-01-01T00:00:00.123456Z");
    index.uploaded("lib-2.0-py3-none-any.whl", "2024-06-01T12:00:00Z");
    index
}

fn as_of(index: &TestIndex, date: &str) -> IndexOptions {
    IndexOptions {
        exclude_newer: Some(date.parse().unwrap()),
        ..options(index)
    }
}

#[test]
fn exclude_newer_resolves_as_of_a_date() {
    let index = dated_index(Format::Json);
    let cache = Cache::temporary().unwrap();
    let today = IndexClient::new(options(&index), &cache).unwrap();
    assert_eq!(
        pins(&run(&today, &["app"]).unwrap()),
        ["app==1.0", "lib==2.0"]
    );
    let then = IndexClient::new(as_of(&index, "2024-01-01"), &cache).unwrap();
    let resolution = run(&then, &["app"]).unwrap();
    assert_eq!(pins(&resolution), ["app==1.0", "lib==1.0"]);
    assert!(resolution.notes.is_empty(), "{:?}", resolution.notes);
    // The day of the upload itself is included; the moment of the upload is not.
    let that_day = IndexClient::new(as_of(&index, "2024-06-01"), &cache).unwrap();
    assert_eq!(pins(&run(&that_day, &["lib"]).unwrap()), ["lib==2.0"]);
    let that_moment = IndexClient::new(as_of(&index, "2024-06-01T14:00:00+02:00"), &cache).unwrap();
    assert_eq!(pins(&run(&that_moment, &["lib"]).unwrap()), ["lib==1.0"]);

    // Before anything was uploaded, the message says that the files are too new.
    let before = IndexClient::new(as_of(&index, "2022-01-01"), &cache).unwrap();
    let message = run(&before, &["lib"]).unwrap_err().to_string();
    assert!(
        message.contains(
            "the build requirements ask for lib, but every file of lib was uploaded after \
             2022-01-02T00:00:00Z (exclude-newer)"
        ),
        "{message}"
    );
    let message = run(&then, &["lib>=2"]).unwrap_err().to_string();
    assert!(
        message.contains("files uploaded after 2024-01-02T00:00:00Z are ignored"),
        "{message}"
    );
}

#[test]
fn exclude_newer_leaves_out_files_of_indexes_without_upload_times() {
    let index = dated_index(Format::Html);
    let folder = tempfile::tempdir().unwrap();
    write_wheels(folder.path(), &[TinyWheel::new("lib", "3.0")]);
    let cache = Cache::temporary().unwrap();
    let client = IndexClient::new(as_of(&index, "2024-01-01"), &cache).unwrap();
    let message = run(&client, &["app"]).unwrap_err().to_string();
    for expected in [
        "no version of `app` that the build needs can be used",
        &format!(
            "app 1.0: only undated wheel app-1.0-py3-none-any.whl (from {}app/)",
            index.url()
        ),
        "exclude-newer needs the upload time of every file",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
    // Files on this machine are always used, and the notes say what was left out.
    let client = IndexClient::new(
        IndexOptions {
            find_links: vec![folder.path().display().to_string()],
            ..as_of(&index, "2024-01-01")
        },
        &cache,
    )
    .unwrap();
    let resolution = run(&client, &["lib"]).unwrap();
    assert_eq!(pins(&resolution), ["lib==3.0"]);
    let note = format!(
        "{}lib/ gives no upload times (PEP 700), so exclude-newer left its files out",
        index.url()
    );
    assert!(resolution.notes.contains(&note), "{:?}", resolution.notes);
}

/// The index error inside a resolution error.
fn index_error(error: &ResolveError) -> &IndexError {
    match error {
        ResolveError::Index { error, .. } => error,
        other => panic!("not an index error: {other}"),
    }
}

#[test]
fn an_unreachable_index_suggests_offline_mode() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for url in [
        format!("http://127.0.0.1:{port}/simple/"),
        // `.invalid` never resolves (RFC 2606).
        "http://wasm-build-test.invalid/simple/".to_string(),
    ] {
        let cache = Cache::temporary().unwrap();
        let client = IndexClient::new(
            IndexOptions {
                index_url: Some(url.clone()),
                ..IndexOptions::default()
            },
            &cache,
        )
        .unwrap();
        let error = run(&client, &["pkg"]).unwrap_err();
        assert_eq!(error.hint(), Some(Hint::Offline), "{error}");
        assert_eq!(index_error(&error).hint(), Some(Hint::Offline));
        let message = error.to_string();
        assert!(message.contains(&format!("{url}pkg/")), "{message}");
        assert!(message.contains("gave up after 4 attempts"), "{message}");
        if url.contains(".invalid") {
            assert!(
                message.contains("cannot resolve the host name wasm-build-test.invalid"),
                "{message}"
            );
        }
        assert!(error.hint().unwrap().to_string().contains("--offline"));
    }
}

/// Runs `tls_child` in a child process with only the trust settings given (the client reads
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` when it is made, and this machine may have its own).
fn tls_child_output(index: &TestIndex, cert_file: Option<&std::path::Path>) -> String {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "tls_child", "--nocapture", "--test-threads=1"])
        .env("WASM_BUILD_TEST_TLS_INDEX", index.url())
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    if let Some(path) = cert_file {
        command.env("SSL_CERT_FILE", path);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}");
    stdout
}

#[test]
fn an_untrusted_certificate_suggests_the_system_trust_store() {
    let index = TestIndex::start_tls(Format::Json);
    index.add_tiny(&TinyWheel::new("pkg", "1.0"));
    assert!(index.url().starts_with("https://127.0.0.1:"));
    let untrusted = tls_child_output(&index, None);
    assert!(untrusted.contains("CHECKED untrusted"), "{untrusted}");
    assert!(index.log().is_empty(), "no request got past the handshake");

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, tls::CA_PEM).unwrap();
    let trusted = tls_child_output(&index, Some(&ca));
    assert!(trusted.contains("RESOLVED pkg==1.0"), "{trusted}");
    assert!(index.count("/simple/pkg/") >= 1);
}

/// Run by `an_untrusted_certificate_suggests_the_system_trust_store` in a child process;
/// does nothing otherwise. Without `SSL_CERT_FILE`, the test authority is trusted by
/// neither Mozilla's roots nor the system's store, and each refusal gets its hint; with
/// `SSL_CERT_FILE` naming it, the index works.
#[test]
fn tls_child() {
    let Ok(url) = std::env::var("WASM_BUILD_TEST_TLS_INDEX") else {
        return;
    };
    let cache = Cache::temporary().unwrap();
    let client = |native_tls| {
        let options = IndexOptions {
            index_url: Some(url.clone()),
            native_tls,
            ..IndexOptions::default()
        };
        IndexClient::new(options, &cache).unwrap()
    };
    if std::env::var_os("SSL_CERT_FILE").is_some() {
        let resolution = run(&client(false), &["pkg"]).unwrap();
        for pin in pins(&resolution) {
            println!("RESOLVED {pin}");
        }
        return;
    }
    let error = run(&client(false), &["pkg"]).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("invalid peer certificate"), "{message}");
    assert!(
        !message.contains("gave up"),
        "a refused certificate is not retried: {message}"
    );
    assert_eq!(error.hint(), Some(Hint::NativeTls), "{message}");
    assert!(error.hint().unwrap().to_string().contains("--native-tls"));
    // The system's store does not know the test authority either: the hint then names
    // SSL_CERT_FILE.
    let error = run(&client(true), &["pkg"]).unwrap_err();
    assert_eq!(error.hint(), Some(Hint::CertFile), "{error}");
    assert!(error.hint().unwrap().to_string().contains("SSL_CERT_FILE"));
    println!("CHECKED untrusted");
}
