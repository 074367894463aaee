use super::*;
use serde_json::json;

/// Inputs and what `packaging.metadata.parse_email` (packaging 26.4) made of them, written by
/// `make_cases.py`: the JSON here must be the same value.
#[test]
fn same_value_as_packaging_parse_email() {
    let cases: Map<String, Value> =
        serde_json::from_str(include_str!("parse_email_cases.json")).unwrap();
    assert!(cases.len() >= 20);
    for (name, case) in &cases {
        let input: Vec<u8> = case["input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| u8::try_from(b.as_u64().unwrap()).unwrap())
            .collect();
        let ours = metadata_json(&input).unwrap();
        assert_eq!(
            Value::Object(ours),
            case["json"],
            "case {name}: {:?}",
            String::from_utf8_lossy(&input)
        );
    }
}

#[test]
fn mime_fields_are_refused() {
    for field in ["Content-Type", "content-transfer-encoding"] {
        let text = format!("Metadata-Version: 2.1\nName: a\nVersion: 1\n{field}: x\n\nbody\n");
        assert_eq!(
            metadata_json(text.as_bytes()),
            Err(MetadataJsonError::MimeField {
                field: field.to_ascii_lowercase()
            })
        );
    }
}

#[test]
fn lines_split_like_the_feed_parser() {
    assert_eq!(
        split_lines(b"a\r\nb\rc\nd"),
        [&b"a\r\n"[..], b"b\r", b"c\n", b"d"]
    );
    assert_eq!(split_lines(b"\r\r\n"), [&b"\r"[..], b"\r\n"]);
    assert!(split_lines(b"").is_empty());
}

#[test]
fn keys_are_sorted() {
    let json = metadata_json(b"Version: 1\nName: a\nMetadata-Version: 2.1\n").unwrap();
    let keys: Vec<&String> = json.keys().collect();
    assert_eq!(keys, ["metadata_version", "name", "version"]);
    assert_eq!(
        Value::Object(json),
        json!({"metadata_version": "2.1", "name": "a", "version": "1"})
    );
}
