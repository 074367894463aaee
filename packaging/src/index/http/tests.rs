use super::*;
use ureq::http::HeaderValue;

#[test]
fn reads_cache_control() {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=600"),
    );
    headers.insert(header::ETAG, HeaderValue::from_static("\"abc\""));
    let cache = CacheHeaders::from_headers(&headers);
    assert_eq!(cache.max_age, Some(600));
    assert_eq!(cache.etag.as_deref(), Some("\"abc\""));
    assert!(!cache.no_cache);

    let mut headers = HeaderMap::new();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, max-age=\"60\""),
    );
    let cache = CacheHeaders::from_headers(&headers);
    assert!(cache.no_cache);
    assert_eq!(cache.max_age, Some(60));
}

#[test]
fn failures_are_sorted_by_what_the_user_can_do() {
    use std::io::{Error, ErrorKind};
    let refused_certificate = || {
        ureq::Error::Io(Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        ))
    };
    assert_eq!(
        failure_kind(&refused_certificate(), Roots::System),
        NetworkFailure::Certificate(Roots::System)
    );
    let url = Url::parse("https://index.example/simple/").unwrap();
    assert!(matches!(
        classify_error(&url, refused_certificate(), Roots::Mozilla),
        Attempt::Fatal(IndexError::Transfer {
            failure: NetworkFailure::Certificate(Roots::Mozilla),
            ..
        })
    ));
    let lookup = ureq::Error::Io(Error::other(NameResolution {
        host: "index.example".into(),
        source: Error::other("Temporary failure in name resolution"),
    }));
    for unreachable in [
        lookup,
        ureq::Error::HostNotFound,
        ureq::Error::Io(ErrorKind::ConnectionRefused.into()),
        ureq::Error::Timeout(ureq::Timeout::Connect),
    ] {
        assert_eq!(
            failure_kind(&unreachable, Roots::Mozilla),
            NetworkFailure::Unreachable,
            "{unreachable}"
        );
        assert!(matches!(
            classify_error(&url, unreachable, Roots::Mozilla),
            Attempt::Transient(..)
        ));
    }
    for other in [
        ureq::Error::Io(ErrorKind::ConnectionReset.into()),
        ureq::Error::Timeout(ureq::Timeout::RecvBody),
    ] {
        assert_eq!(failure_kind(&other, Roots::Mozilla), NetworkFailure::Other);
    }
}

#[test]
fn user_agent_names_wasm_build() {
    assert!(USER_AGENT.starts_with("wasm-build/"));
}
