//! The simple repository API: PEP 691 JSON and PEP 503 HTML project pages (with the PEP 592
//! `yanked`, PEP 658/714 `core-metadata` and `requires-python` additions), and flat
//! find-links pages, all turned into [`DistFile`]s.

use super::DistFile;
use super::exclude_newer::parse_timestamp;
use super::html;
use serde::Deserialize;
use std::collections::HashMap;
use url::Url;

/// The `Accept` header for project pages: PEP 691 JSON preferred, PEP 503 HTML accepted.
pub(crate) const ACCEPT_SIMPLE: &str = "application/vnd.pypi.simple.v1+json, \
     application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// The `Accept` header for flat find-links pages.
pub(crate) const ACCEPT_HTML: &str = "text/html, */*;q=0.1";

/// Parses a project page, choosing the format by the response's `Content-Type`.
pub(crate) fn parse_page(
    body: &[u8],
    content_type: Option<&str>,
    page_url: &Url,
) -> Result<Vec<DistFile>, String> {
    let is_json = content_type.is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim();
        essence.ends_with("+json") || essence == "application/json"
    });
    if is_json {
        parse_json(body, page_url)
    } else {
        let text = std::str::from_utf8(body).map_err(|e| format!("the page is not UTF-8: {e}"))?;
        Ok(parse_html(text, page_url))
    }
}

#[derive(Deserialize)]
struct JsonPage {
    meta: JsonMeta,
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonMeta {
    #[serde(rename = "api-version")]
    api_version: String,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: HashMap<String, String>,
    #[serde(rename = "requires-python", default)]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: Option<JsonYanked>,
    #[serde(rename = "core-metadata", default)]
    core_metadata: Option<JsonMetadataFlag>,
    #[serde(rename = "dist-info-metadata", default)]
    dist_info_metadata: Option<JsonMetadataFlag>,
    #[serde(default)]
    size: Option<u64>,
    /// PEP 700 (API version 1.1): an RFC 3339 timestamp in UTC.
    #[serde(rename = "upload-time", default)]
    upload_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonYanked {
    Flag(bool),
    Reason(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonMetadataFlag {
    Flag(bool),
    Hashes(HashMap<String, String>),
}

/// Parses a PEP 691 JSON project page. Only major API version 1 is understood.
pub(crate) fn parse_json(body: &[u8], page_url: &Url) -> Result<Vec<DistFile>, String> {
    let page: JsonPage =
        serde_json::from_slice(body).map_err(|e| format!("invalid PEP 691 JSON: {e}"))?;
    let major = page.meta.api_version.split('.').next().unwrap_or("");
    if major != "1" {
        return Err(format!(
            "unsupported simple API version {} (wasm-build understands 1.x)",
            page.meta.api_version
        ));
    }
    let mut files = Vec::with_capacity(page.files.len());
    for file in page.files {
        let Some(url) = resolve_url(page_url, &file.url) else {
            continue;
        };
        let Some(sha256) = checked_sha256(file.hashes.get("sha256").map(String::as_str)) else {
            continue;
        };
        let metadata = file.core_metadata.or(file.dist_info_metadata);
        let (core_metadata, metadata_sha256) = match metadata {
            None | Some(JsonMetadataFlag::Flag(false)) => (false, None),
            Some(JsonMetadataFlag::Flag(true)) => (true, None),
            Some(JsonMetadataFlag::Hashes(hashes)) => {
                match checked_sha256(hashes.get("sha256").map(String::as_str)) {
                    Some(hash) => (true, hash),
                    // A malformed metadata hash: do not use the metadata file.
                    None => (false, None),
                }
            }
        };
        let yanked = match file.yanked {
            None | Some(JsonYanked::Flag(false)) => None,
            Some(JsonYanked::Flag(true)) => Some(String::new()),
            Some(JsonYanked::Reason(reason)) => Some(reason),
        };
        if !is_plain_filename(&file.filename) {
            continue;
        }
        files.push(DistFile {
            filename: file.filename,
            url,
            sha256,
            requires_python: file.requires_python.filter(|s| !s.trim().is_empty()),
            yanked,
            core_metadata,
            metadata_sha256,
            size: file.size,
            // An unreadable time counts as none: exclude-newer then leaves the file out.
            upload_time: file.upload_time.as_deref().and_then(parse_timestamp),
            source: page_url.to_string(),
        });
    }
    Ok(files)
}

/// Parses a PEP 503 HTML project page or a flat find-links page.
pub(crate) fn parse_html(text: &str, page_url: &Url) -> Vec<DistFile> {
    let links = html::scan(text);
    let base = links
        .base
        .as_deref()
        .and_then(|href| page_url.join(href).ok())
        .unwrap_or_else(|| page_url.clone());
    let mut files = Vec::new();
    for anchor in &links.anchors {
        let Some(href) = anchor.attribute("href") else {
            continue;
        };
        let Ok(mut link) = base.join(href) else {
            continue;
        };
        if !is_allowed_link(page_url, &link) {
            continue;
        }
        let fragment = link.fragment().map(str::to_string);
        link.set_fragment(None);
        let Some(filename) = link
            .path_segments()
            .and_then(|mut segments| segments.next_back())
            .and_then(|last| {
                percent_encoding::percent_decode_str(last)
                    .decode_utf8()
                    .ok()
            })
            .map(|name| name.into_owned())
            .filter(|name| is_plain_filename(name))
        else {
            continue;
        };
        let fragment_hash = fragment.as_deref().and_then(|f| f.strip_prefix("sha256="));
        let Some(sha256) = checked_sha256(fragment_hash) else {
            continue;
        };
        let metadata = anchor
            .attribute("data-core-metadata")
            .or_else(|| anchor.attribute("data-dist-info-metadata"));
        let (core_metadata, metadata_sha256) = match metadata {
            None => (false, None),
            Some(value) if value.eq_ignore_ascii_case("true") => (true, None),
            Some(value) => match value.split_once('=') {
                Some(("sha256", hash)) => match checked_sha256(Some(hash)) {
                    Some(hash) => (true, hash),
                    None => (false, None),
                },
                // Another hash algorithm: the file exists, but only sha256 is checked.
                Some(_) => (true, None),
                None => (false, None),
            },
        };
        files.push(DistFile {
            filename,
            url: link.to_string(),
            sha256,
            requires_python: anchor
                .attribute("data-requires-python")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            yanked: anchor.attribute("data-yanked").map(str::to_string),
            core_metadata,
            metadata_sha256,
            size: None,
            // PEP 700 gives HTML pages no upload times.
            upload_time: None,
            source: page_url.to_string(),
        });
    }
    files
}

/// Resolves a link against the page it appeared on (see [`is_allowed_link`]).
fn resolve_url(page_url: &Url, href: &str) -> Option<String> {
    let mut url = page_url.join(href).ok()?;
    if !is_allowed_link(page_url, &url) {
        return None;
    }
    url.set_fragment(None);
    Some(url.to_string())
}

/// Links may point to http(s) URLs; `file:` links are only followed from local pages, so a
/// remote index can never make the client read a file of this machine.
fn is_allowed_link(page_url: &Url, link: &Url) -> bool {
    match link.scheme() {
        "http" | "https" => true,
        "file" => page_url.scheme() == "file",
        _ => false,
    }
}

/// Validates an optional sha256: `Some(None)` when absent, `Some(Some(hex))` (lower case) when
/// well-formed, `None` when present but malformed (the file cannot be checked and is dropped).
fn checked_sha256(hash: Option<&str>) -> Option<Option<String>> {
    match hash {
        None => Some(None),
        Some(hash) if is_sha256_hex(hash) => Some(Some(hash.to_ascii_lowercase())),
        Some(_) => None,
    }
}

/// Whether `hash` is 64 hexadecimal digits.
pub(crate) fn is_sha256_hex(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A file name that is safe to use as one path component in the cache.
pub(crate) fn is_plain_filename(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HASH_B: &str = "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    fn page_url() -> Url {
        Url::parse("https://index.example/simple/demo/").unwrap()
    }

    #[test]
    fn parses_pep_691_json() {
        let body = format!(
            r#"{{"meta": {{"api-version": "1.1"}}, "name": "demo", "files": [
                {{"filename": "demo-1.0-py3-none-any.whl", "url": "../../files/demo-1.0-py3-none-any.whl",
                  "hashes": {{"sha256": "{HASH_A}", "md5": "x"}}, "requires-python": ">=3.8",
                  "core-metadata": {{"sha256": "{HASH_B}"}}, "size": 1234,
                  "upload-time": "2024-03-01T12:34:56.789123Z"}},
                {{"filename": "demo-0.9.tar.gz", "url": "https://files.example/demo-0.9.tar.gz",
                  "hashes": {{}}, "yanked": "broken build", "dist-info-metadata": true}},
                {{"filename": "demo-0.8.tar.gz", "url": "https://files.example/demo-0.8.tar.gz",
                  "hashes": {{}}, "yanked": true, "requires-python": ""}},
                {{"filename": "demo-0.7.tar.gz", "url": "https://files.example/d.tgz",
                  "hashes": {{"sha256": "not-a-hash"}}}},
                {{"filename": "../evil.whl", "url": "https://files.example/evil.whl", "hashes": {{}}}},
                {{"filename": "demo-0.6.tar.gz", "url": "javascript:alert(1)", "hashes": {{}}}}
            ]}}"#
        );
        let files = parse_page(
            body.as_bytes(),
            Some("application/vnd.pypi.simple.v1+json"),
            &page_url(),
        )
        .unwrap();
        assert_eq!(files.len(), 3, "{files:#?}");
        let wheel = &files[0];
        assert_eq!(
            wheel.url,
            "https://index.example/files/demo-1.0-py3-none-any.whl"
        );
        assert_eq!(wheel.sha256.as_deref(), Some(HASH_A));
        assert_eq!(wheel.requires_python.as_deref(), Some(">=3.8"));
        assert!(wheel.core_metadata);
        assert_eq!(
            wheel.metadata_sha256.as_deref(),
            Some(HASH_B.to_ascii_lowercase().as_str())
        );
        assert_eq!(wheel.size, Some(1234));
        assert_eq!(wheel.upload_time, Some(1_709_296_496_789));
        assert_eq!(files[1].upload_time, None);
        assert_eq!(wheel.yanked, None);
        assert_eq!(files[1].yanked.as_deref(), Some("broken build"));
        assert!(files[1].core_metadata);
        assert_eq!(files[1].metadata_sha256, None);
        assert_eq!(files[2].yanked.as_deref(), Some(""));
        assert_eq!(files[2].requires_python, None);
    }

    #[test]
    fn rejects_unknown_json_major_version() {
        let body = br#"{"meta": {"api-version": "2.0"}, "name": "demo", "files": []}"#;
        let err = parse_json(body, &page_url()).unwrap_err();
        assert!(err.contains("unsupported simple API version 2.0"), "{err}");
        assert!(parse_json(b"{not json", &page_url()).is_err());
    }

    #[test]
    fn parses_pep_503_html() {
        let html = format!(
            r#"<html><head><meta name="pypi:repository-version" content="1.1"></head><body>
            <a href="/files/demo-1.0-py3-none-any.whl#sha256={HASH_A}"
               data-requires-python="&gt;=3.8,&lt;4" data-core-metadata="sha256={HASH_B}">demo-1.0-py3-none-any.whl</a>
            <a href="https://other.example/p/demo%2Bx-0.9.tar.gz#md5=abc" data-yanked="">x</a>
            <a href="demo-0.8.tar.gz" data-yanked="do &quot;not&quot; use" data-dist-info-metadata="true">demo-0.8.tar.gz</a>
            <a href="demo-0.7.tar.gz#sha256=zz">bad hash</a>
            <a name="no-href">nothing</a>
            </body></html>"#
        );
        let files = parse_page(html.as_bytes(), Some("text/html"), &page_url()).unwrap();
        assert_eq!(files.len(), 3, "{files:#?}");
        assert_eq!(
            files[0].url,
            "https://index.example/files/demo-1.0-py3-none-any.whl"
        );
        assert_eq!(files[0].filename, "demo-1.0-py3-none-any.whl");
        assert_eq!(files[0].sha256.as_deref(), Some(HASH_A));
        assert_eq!(files[0].requires_python.as_deref(), Some(">=3.8,<4"));
        assert!(files[0].core_metadata);
        assert!(files[0].metadata_sha256.is_some());
        assert_eq!(files[1].filename, "demo+x-0.9.tar.gz");
        assert_eq!(files[1].sha256, None);
        assert_eq!(files[1].yanked.as_deref(), Some(""));
        assert_eq!(
            files[2].url,
            "https://index.example/simple/demo/demo-0.8.tar.gz"
        );
        assert_eq!(files[2].yanked.as_deref(), Some("do \"not\" use"));
        assert!(files[2].core_metadata);
    }

    #[test]
    fn html_base_tag_changes_the_link_base() {
        let html =
            r#"<base href="https://mirror.example/packages/"><a href="demo-1.0.tar.gz">d</a>"#;
        let files = parse_html(html, &page_url());
        assert_eq!(
            files[0].url,
            "https://mirror.example/packages/demo-1.0.tar.gz"
        );
    }

    #[test]
    fn json_is_chosen_by_content_type_only() {
        let body = br#"{"meta": {"api-version": "1.0"}, "name": "demo", "files": []}"#;
        assert!(
            parse_page(
                body,
                Some("application/vnd.pypi.simple.v1+json; charset=utf-8"),
                &page_url()
            )
            .unwrap()
            .is_empty()
        );
        // Served as HTML, the same bytes hold no anchors.
        assert!(
            parse_page(body, Some("text/html"), &page_url())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn remote_pages_cannot_point_at_local_files() {
        let html = r#"<a href="file:///etc/passwd">passwd</a><a href="https://x.example/a-1.tar.gz">a</a>"#;
        let files = parse_html(html, &page_url());
        assert_eq!(files.len(), 1);
        let local = Url::parse("file:///srv/wheels/index.html").unwrap();
        assert_eq!(parse_html(html, &local).len(), 2);
    }

    #[test]
    fn plain_filenames() {
        assert!(is_plain_filename("demo-1.0.tar.gz"));
        for bad in ["", ".", "..", "a/b", "a\\b", ".hidden", "a\0b"] {
            assert!(!is_plain_filename(bad), "{bad:?}");
        }
    }
}
