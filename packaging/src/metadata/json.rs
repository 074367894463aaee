//! Core metadata as JSON, the way `python -m build --metadata` prints it: the fields that
//! `packaging.metadata.parse_email` recognises, under its `RawMetadata` keys (PEP 566's JSON
//! form: lower case, `_` for `-`, plural names for fields that repeat; `keywords` split at
//! commas, `project_urls` a mapping, the body as `description`).
//!
//! The bytes are read as Python's `email` parser reads them (policy `compat32`), so that the
//! same file gives the same JSON value:
//!
//! - lines end at `\r\n`, `\r` or `\n`; the header block ends at an empty line, or at the
//!   first line that is neither `Name: value` (a name of printable ASCII without `:` or
//!   space), a continuation (leading space or tab) nor `From …` (which then starts the body);
//! - a value is the rest of its first line with leading spaces and tabs removed, followed by
//!   its continuation lines as they are, without the final line break (trailing spaces stay);
//! - a field whose value is not UTF-8, a single-use field given more than once, keywords
//!   given more than once and project URLs with a repeated label are left out, as
//!   `parse_email` leaves them out (in its "unparsed" part); a description given both as a
//!   field and as the body is left out too;
//! - unknown fields are left out.
//!
//! One difference, on purpose: metadata with a `Content-Type` or `Content-Transfer-Encoding`
//! field is refused. Python would read its body as MIME (decoding or splitting it); no
//! backend writes these fields, and a stranger's file that has them is not worth guessing
//! about.
//!
//! Key order: `parse_email` iterates a `frozenset`, so Python's key order changes from run
//! to run; the JSON here has its keys sorted. Compare the values, not the bytes.

use serde_json::{Map, Value};

/// Core metadata that cannot be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataJsonError {
    #[error(
        "core metadata has a `{field}` field, which would make its body MIME; refusing to \
         guess what it means"
    )]
    MimeField { field: String },
}

/// Single-value fields: kept as a string when given once.
const STRING_FIELDS: &[&str] = &[
    "author",
    "author_email",
    "description",
    "description_content_type",
    "download_url",
    "home_page",
    "license",
    "license_expression",
    "maintainer",
    "maintainer_email",
    "metadata_version",
    "name",
    "requires_python",
    "summary",
    "version",
];

/// Fields kept as a list of strings.
const LIST_FIELDS: &[&str] = &[
    "classifiers",
    "dynamic",
    "license_files",
    "obsoletes",
    "obsoletes_dist",
    "platforms",
    "provides",
    "provides_dist",
    "provides_extra",
    "requires",
    "requires_dist",
    "requires_external",
    "supported_platforms",
    "import_names",
    "import_namespaces",
];

/// The `RawMetadata` key of a field (lower-cased name), as `packaging.metadata` maps them.
fn raw_name(field: &str) -> Option<&'static str> {
    Some(match field {
        "author" => "author",
        "author-email" => "author_email",
        "classifier" => "classifiers",
        "description" => "description",
        "description-content-type" => "description_content_type",
        "download-url" => "download_url",
        "dynamic" => "dynamic",
        "home-page" => "home_page",
        "import-name" => "import_names",
        "import-namespace" => "import_namespaces",
        "keywords" => "keywords",
        "license" => "license",
        "license-expression" => "license_expression",
        "license-file" => "license_files",
        "maintainer" => "maintainer",
        "maintainer-email" => "maintainer_email",
        "metadata-version" => "metadata_version",
        "name" => "name",
        "obsoletes" => "obsoletes",
        "obsoletes-dist" => "obsoletes_dist",
        "platform" => "platforms",
        "project-url" => "project_urls",
        "provides" => "provides",
        "provides-dist" => "provides_dist",
        "provides-extra" => "provides_extra",
        "requires" => "requires",
        "requires-dist" => "requires_dist",
        "requires-external" => "requires_external",
        "requires-python" => "requires_python",
        "summary" => "summary",
        "supported-platform" => "supported_platforms",
        "version" => "version",
        _ => return None,
    })
}

/// The JSON object `python -m build --metadata` prints for these core metadata bytes
/// (`METADATA` or `PKG-INFO`), keys sorted.
pub fn metadata_json(bytes: &[u8]) -> Result<Map<String, Value>, MetadataJsonError> {
    let message = Message::parse(bytes);
    let mut raw = Map::new();
    let mut left_out: Vec<&'static str> = Vec::new();
    // Field names in order of first appearance, each once (the `frozenset` of Python).
    let mut names: Vec<String> = Vec::new();
    for (name, _) in &message.headers {
        let lower = name.to_ascii_lowercase();
        if !names.contains(&lower) {
            names.push(lower);
        }
    }
    for name in &names {
        if name == "content-type" || name == "content-transfer-encoding" {
            return Err(MetadataJsonError::MimeField {
                field: name.clone(),
            });
        }
        let Some(key) = raw_name(name) else {
            continue;
        };
        let values: Option<Vec<String>> = message
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| String::from_utf8(value.clone()).ok())
            .collect();
        let Some(values) = values else {
            left_out.push(key);
            continue;
        };
        let value = if STRING_FIELDS.contains(&key) && values.len() == 1 {
            Value::String(values.into_iter().next().unwrap_or_default())
        } else if key == "import_names" && values == [""] {
            Value::Array(Vec::new())
        } else if LIST_FIELDS.contains(&key) {
            Value::Array(values.into_iter().map(Value::String).collect())
        } else if key == "keywords" && values.len() == 1 {
            Value::Array(
                values[0]
                    .split(',')
                    .map(|k| Value::String(py_strip(k).to_string()))
                    .collect(),
            )
        } else if key == "project_urls" {
            match project_urls(&values) {
                Some(urls) => Value::Object(urls),
                None => {
                    left_out.push(key);
                    continue;
                }
            }
        } else {
            left_out.push(key);
            continue;
        };
        raw.insert(key.to_string(), value);
    }
    // The body is the description, unless the field gave one too (then neither is kept).
    match String::from_utf8(message.body) {
        Ok(body) if body.is_empty() => {}
        Ok(body) => {
            if raw.remove("description").is_none() && !left_out.contains(&"description") {
                raw.insert("description".into(), Value::String(body));
            }
        }
        // Python keeps a description field when the body is not UTF-8.
        Err(_) => {}
    }
    Ok(raw)
}

/// `Project-URL: label, url` fields as a mapping; `None` when a label repeats.
fn project_urls(values: &[String]) -> Option<Map<String, Value>> {
    let mut urls = Map::new();
    for pair in values {
        let (label, url) = pair.split_once(',').unwrap_or((pair, ""));
        let label = py_strip(label).to_string();
        if urls.contains_key(&label) {
            return None;
        }
        urls.insert(label, Value::String(py_strip(url).to_string()));
    }
    Some(urls)
}

/// Python's `str.strip()`: its whitespace is Unicode's, plus the separators U+001C–U+001F.
fn py_strip(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// The fields (name as written, value bytes) and the body of core metadata, split as
/// Python's `email` parser splits them (see the module's documentation).
pub(crate) fn fields_and_body(bytes: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
    let message = Message::parse(bytes);
    (message.headers, message.body)
}

/// A message as `email.parser.BytesParser(policy=compat32)` splits it.
struct Message {
    /// Fields in order: name as written, value bytes.
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Message {
    fn parse(bytes: &[u8]) -> Self {
        let lines = split_lines(bytes);
        let mut header_lines: Vec<&[u8]> = Vec::new();
        let mut body_start = lines.len();
        for (index, line) in lines.iter().enumerate() {
            if !is_header_line(line) {
                // An empty line separates headers and body and is dropped; any other line
                // is the body's first.
                body_start = if line_content(line).is_empty() {
                    index + 1
                } else {
                    index
                };
                break;
            }
            header_lines.push(line);
        }
        let mut body: Vec<u8> = lines[body_start.min(lines.len())..].concat();
        let headers = match parse_header_lines(&header_lines) {
            HeaderParse::Done(headers) => headers,
            // A `From ` line last in the header block is the body's first line.
            HeaderParse::PushBack(headers, line) => {
                let mut pushed = line.to_vec();
                pushed.extend_from_slice(&body);
                body = pushed;
                headers
            }
        };
        Self { headers, body }
    }
}

enum HeaderParse<'a> {
    Done(Vec<(String, Vec<u8>)>),
    PushBack(Vec<(String, Vec<u8>)>, &'a [u8]),
}

/// `FeedParser._parse_headers` with `compat32`'s `header_source_parse`.
fn parse_header_lines<'a>(lines: &[&'a [u8]]) -> HeaderParse<'a> {
    let mut headers = Vec::new();
    let mut current: Vec<&[u8]> = Vec::new();
    let flush = |current: &mut Vec<&[u8]>, headers: &mut Vec<(String, Vec<u8>)>| {
        if let Some(header) = source_parse(current) {
            headers.push(header);
        }
        current.clear();
    };
    for (index, line) in lines.iter().enumerate() {
        if line.starts_with(b" ") || line.starts_with(b"\t") {
            // A continuation; one with no field before it is dropped.
            if !current.is_empty() {
                current.push(line);
            }
            continue;
        }
        flush(&mut current, &mut headers);
        if line.starts_with(b"From ") {
            if index == 0 {
                continue; // the envelope line
            }
            if index == lines.len() - 1 {
                return HeaderParse::PushBack(headers, line);
            }
            continue; // a misplaced envelope line, dropped
        }
        match line.iter().position(|&b| b == b':') {
            Some(0) | None => {} // no field name: dropped
            Some(_) => current.push(line),
        }
    }
    flush(&mut current, &mut headers);
    HeaderParse::Done(headers)
}

/// `compat32.header_source_parse`: the name before the first `:`; the value is the rest of
/// the first line without leading spaces and tabs, then the continuation lines as they
/// are, without trailing `\r` and `\n`.
fn source_parse(lines: &[&[u8]]) -> Option<(String, Vec<u8>)> {
    let (first, rest) = lines.split_first()?;
    let colon = first.iter().position(|&b| b == b':')?;
    let name = String::from_utf8(first[..colon].to_vec()).ok()?;
    let mut value: Vec<u8> = first[colon + 1..]
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == b'\t')
        .collect();
    for line in rest {
        value.extend_from_slice(line);
    }
    while value.last().is_some_and(|b| *b == b'\r' || *b == b'\n') {
        value.pop();
    }
    Some((name, value))
}

/// The feed parser's header pattern: `From `, a field name of printable ASCII without `:`
/// (possibly empty) followed by `:`, or a leading space or tab.
fn is_header_line(line: &[u8]) -> bool {
    if line.starts_with(b"From ") || line.starts_with(b" ") || line.starts_with(b"\t") {
        return true;
    }
    let name_len = line
        .iter()
        .take_while(|&&b| (0x21..=0x7e).contains(&b) && b != b':')
        .count();
    line.get(name_len) == Some(&b':')
}

/// Lines with their endings (`\r\n`, `\r` or `\n`), as the feed parser splits them.
fn split_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'\n' => {
                lines.push(&bytes[start..=index]);
                start = index + 1;
            }
            b'\r' => {
                let end = if bytes.get(index + 1) == Some(&b'\n') {
                    index + 1
                } else {
                    index
                };
                lines.push(&bytes[start..=end]);
                start = end + 1;
                index = end;
            }
            _ => {}
        }
        index += 1;
    }
    if start < bytes.len() {
        lines.push(&bytes[start..]);
    }
    lines
}

/// A line without its ending.
fn line_content(line: &[u8]) -> &[u8] {
    let end = line
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |i| i + 1);
    &line[..end]
}

#[cfg(test)]
mod tests;
