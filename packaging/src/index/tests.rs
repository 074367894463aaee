use super::*;
use pep440_rs::Version;
use std::str::FromStr;

fn name(s: &str) -> PackageName {
    PackageName::from_str(s).unwrap()
}

#[test]
fn classifies_file_names_for_a_project() {
    let project = name("python-dateutil");
    assert!(matches!(
        classify("python_dateutil-2.9.0-py2.py3-none-any.whl", &project),
        Some(DistKind::Wheel(_))
    ));
    assert_eq!(
        classify("python-dateutil-2.8.2.tar.gz", &project),
        Some(DistKind::Sdist(Version::from_str("2.8.2").unwrap()))
    );
    assert_eq!(
        classify("python-dateutil-1.0.zip", &project),
        Some(DistKind::Sdist(Version::from_str("1.0").unwrap()))
    );
    assert_eq!(classify("six-1.16.0-py2.py3-none-any.whl", &project), None);
    assert_eq!(classify("python-dateutil-1.0.exe", &project), None);
    assert_eq!(classify("python-dateutil-1.0.egg", &project), None);
}

#[test]
fn client_rejects_bad_options() {
    let cache = Cache::temporary().unwrap();
    let bad_scheme = IndexOptions {
        index_url: Some("ftp://example.org/simple".into()),
        ..IndexOptions::default()
    };
    let err = IndexClient::new(bad_scheme, &cache).unwrap_err();
    assert!(
        err.to_string().contains("ftp://example.org/simple"),
        "{err}"
    );
    let missing = IndexOptions {
        find_links: vec!["/no/such/folder".into()],
        ..IndexOptions::default()
    };
    assert!(IndexClient::new(missing, &cache).is_err());
}

#[test]
fn index_urls_get_a_trailing_slash() {
    let cache = Cache::temporary().unwrap();
    let client = IndexClient::new(
        IndexOptions {
            index_url: Some("https://example.org/simple".into()),
            extra_index_urls: vec!["https://example.org/simple/".into()],
            ..IndexOptions::default()
        },
        &cache,
    )
    .unwrap();
    assert_eq!(client.sources(), ["https://example.org/simple/"]);
}

#[test]
fn client_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<IndexClient>();
}

#[test]
fn offline_without_cache_names_the_project() {
    let cache = Cache::temporary().unwrap();
    let client = IndexClient::new(
        IndexOptions {
            offline: true,
            ..IndexOptions::default()
        },
        &cache,
    )
    .unwrap();
    let err = client.project_files(&name("hatchling")).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("`hatchling` offline"), "{message}");
    assert!(
        message.contains("https://pypi.org/simple/hatchling/"),
        "{message}"
    );
}
