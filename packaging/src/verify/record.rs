//! A wheel's RECORD: CSV rows `path,hash,size`, with hashes `algorithm=urlsafe-base64`.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use sha2::Digest as _;

/// One row of RECORD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordRow {
    pub path: String,
    pub hash: String,
    pub size: String,
    /// The row's first line in the file (1-based).
    pub line: usize,
}

/// A RECORD syntax error: the line and what is wrong.
pub(crate) type RecordSyntaxError = (usize, String);

/// Parses RECORD as Python's `csv` module writes it: comma-separated, fields optionally in
/// double quotes (a quote inside doubled), rows ended by `\n` or `\r\n`; quoted fields may
/// span lines. Empty lines are skipped. Every row must have exactly three fields.
pub(crate) fn parse_record(bytes: &[u8]) -> Result<Vec<RecordRow>, RecordSyntaxError> {
    let text = std::str::from_utf8(bytes).map_err(|e| (1, format!("not UTF-8: {e}")))?;
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    loop {
        let start_line = line;
        let mut fields: Vec<String> = Vec::new();
        let mut field = String::new();
        let mut quoted_field = false;
        let mut row_has_content = false;
        let end_of_input = loop {
            let Some(c) = chars.next() else {
                break true;
            };
            match c {
                '"' if field.is_empty() && !quoted_field => {
                    row_has_content = true;
                    quoted_field = true;
                    loop {
                        match chars.next() {
                            None => return Err((start_line, "unterminated quoted field".into())),
                            Some('"') if chars.peek() == Some(&'"') => {
                                chars.next();
                                field.push('"');
                            }
                            Some('"') => break,
                            Some(c) => {
                                if c == '\n' {
                                    line += 1;
                                }
                                field.push(c);
                            }
                        }
                    }
                    match chars.peek() {
                        None | Some(',') | Some('\n') | Some('\r') => {}
                        Some(_) => {
                            return Err((line, "text after a closing quote".into()));
                        }
                    }
                }
                ',' => {
                    row_has_content = true;
                    fields.push(std::mem::take(&mut field));
                    quoted_field = false;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    line += 1;
                    break false;
                }
                '\r' => return Err((line, "stray carriage return".into())),
                _ if quoted_field => {
                    return Err((line, "text after a closing quote".into()));
                }
                c => {
                    row_has_content = true;
                    field.push(c);
                }
            }
        };
        if row_has_content {
            fields.push(field);
            let [path, hash, size]: [String; 3] = fields.try_into().map_err(|f: Vec<String>| {
                (
                    start_line,
                    format!("{} fields, expected 3 (path,hash,size)", f.len()),
                )
            })?;
            rows.push(RecordRow {
                path,
                hash,
                size,
                line: start_line,
            });
        }
        if end_of_input {
            return Ok(rows);
        }
    }
}

/// A hash algorithm RECORD may use (PEP 376 / the binary distribution format: sha256 or
/// stronger; md5 and sha1 are refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

/// An expected digest from RECORD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpectedHash {
    pub algorithm: Algorithm,
    pub digest: Vec<u8>,
}

/// Why a RECORD hash field is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HashFieldError {
    Empty,
    Algorithm(String),
    Encoding,
}

/// Parses `sha256=<urlsafe base64, padding optional>`.
pub(crate) fn parse_hash(field: &str) -> Result<ExpectedHash, HashFieldError> {
    if field.is_empty() {
        return Err(HashFieldError::Empty);
    }
    let (name, encoded) = field
        .split_once('=')
        .ok_or_else(|| HashFieldError::Algorithm(field.to_string()))?;
    let (algorithm, length) = match name {
        "sha256" => (Algorithm::Sha256, 32),
        "sha384" => (Algorithm::Sha384, 48),
        "sha512" => (Algorithm::Sha512, 64),
        other => return Err(HashFieldError::Algorithm(other.to_string())),
    };
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let digest = ENGINE
        .decode(encoded)
        .map_err(|_| HashFieldError::Encoding)?;
    if digest.len() != length {
        return Err(HashFieldError::Encoding);
    }
    Ok(ExpectedHash { algorithm, digest })
}

/// A running digest of one of the allowed algorithms.
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(sha2::Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha384(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

/// `sha256=<urlsafe base64, no padding>` of `bytes`, as RECORD writes it.
#[cfg(test)]
pub(crate) fn record_hash(bytes: &[u8]) -> String {
    format!(
        "sha256={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(bytes))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rows_quotes_and_line_endings() {
        let rows = parse_record(
            b"a/__init__.py,sha256=x,3\r\n\"b,c.py\",sha256=y,4\n\n\"d\"\"e\nf\",,\na.dist-info/RECORD,,",
        )
        .unwrap();
        let paths: Vec<_> = rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            ["a/__init__.py", "b,c.py", "d\"e\nf", "a.dist-info/RECORD"]
        );
        assert_eq!(rows[1].hash, "sha256=y");
        assert_eq!(rows[1].size, "4");
        assert_eq!(rows[3].line, 6);
    }

    #[test]
    fn refuses_bad_rows() {
        assert_eq!(parse_record(b"a,b\n").unwrap_err().0, 1);
        assert_eq!(parse_record(b"x,y,z\na,b,c,d\n").unwrap_err().0, 2);
        assert!(parse_record(b"\"a,b,c\n").is_err());
        assert!(parse_record(b"\"a\"x,b,c\n").is_err());
        assert!(parse_record(b"a\rb,c,d\n").is_err());
        assert!(parse_record(b"\xff,b,c\n").is_err());
    }

    #[test]
    fn hashes_round_trip() {
        let field = record_hash(b"hello");
        assert_eq!(field, "sha256=LPJNul-wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ");
        let expected = parse_hash(&field).unwrap();
        let mut hasher = Hasher::new(expected.algorithm);
        hasher.update(b"hello");
        assert_eq!(hasher.finish(), expected.digest);
        // Padding is tolerated.
        assert!(parse_hash(&format!("{field}=")).is_ok());
        assert_eq!(parse_hash(""), Err(HashFieldError::Empty));
        assert_eq!(
            parse_hash("md5=abc"),
            Err(HashFieldError::Algorithm("md5".into()))
        );
        assert_eq!(parse_hash("sha256=abc"), Err(HashFieldError::Encoding));
        assert_eq!(parse_hash("sha256=!!!"), Err(HashFieldError::Encoding));
    }
}
