//! A small, careful scanner for the only HTML that package indexes serve: PEP 503 pages
//! of `<a>` tags, optionally with a `<base href>`.
//!
//! It is not an HTML parser and does not try to be one. It finds start tags, reads their
//! attributes (quoted with `"` or `'`, or unquoted), skips comments, and decodes character
//! references in attribute values and anchor text.

use std::borrow::Cow;

/// One `<a>` element: its attributes (names lower-cased, values decoded) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub attributes: Vec<(String, String)>,
    pub text: String,
}

impl Anchor {
    /// The decoded value of the attribute `name` (lower case), if present.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// What a page holds for an index client.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Links {
    /// The `href` of the first `<base>` tag, which relative links resolve against.
    pub base: Option<String>,
    pub anchors: Vec<Anchor>,
}

/// Scans `html` for `<base>` and `<a>` start tags.
pub(crate) fn scan(html: &str) -> Links {
    let mut links = Links::default();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let after_lt = &rest[1..];
        let name_len = after_lt
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after_lt.len());
        let name = &after_lt[..name_len];
        let (attributes, consumed) = read_attributes(&after_lt[name_len..]);
        rest = &after_lt[name_len + consumed..];
        if name.eq_ignore_ascii_case("a") {
            let end = find_ignore_case(rest, "</a").unwrap_or(rest.len());
            let text = strip_tags(&rest[..end]);
            links.anchors.push(Anchor {
                attributes,
                text: unescape(text.trim()).into_owned(),
            });
            rest = &rest[end..];
        } else if name.eq_ignore_ascii_case("base") && links.base.is_none() {
            links.base = attributes
                .into_iter()
                .find(|(key, _)| key == "href")
                .map(|(_, value)| value);
        }
    }
    links
}

/// Reads attributes up to and including the closing `>` of a start tag. Returns them and
/// the number of bytes consumed.
fn read_attributes(input: &str) -> (Vec<(String, String)>, usize) {
    let bytes = input.as_bytes();
    let mut attributes = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() {
            return (attributes, i);
        }
        if bytes[i] == b'>' {
            return (attributes, i + 1);
        }
        let name_start = i;
        while i < bytes.len()
            && !bytes[i].is_ascii_whitespace()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
        {
            i += 1;
        }
        let name = input[name_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < bytes.len() && matches!(bytes[i], b'"' | b'\'') {
                let quote = bytes[i];
                let start = i + 1;
                let end = bytes[start..]
                    .iter()
                    .position(|&b| b == quote)
                    .map_or(bytes.len(), |p| start + p);
                value = unescape(&input[start..end]).into_owned();
                i = (end + 1).min(bytes.len());
            } else {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                value = unescape(&input[start..i]).into_owned();
            }
        }
        if !name.is_empty() {
            attributes.push((name, value));
        }
    }
}

/// Removes any markup nested inside an anchor's text (`<a><b>x</b></a>` gives `x`).
fn strip_tags(text: &str) -> Cow<'_, str> {
    if !text.contains('<') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    Cow::Owned(out)
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Decodes HTML character references: the named ones index pages use (`&amp;`, `&lt;`,
/// `&gt;`, `&quot;`, `&apos;`, `&nbsp;`) and numeric ones (`&#62;`, `&#x3E;`). Anything
/// else is left as written.
pub(crate) fn unescape(input: &str) -> Cow<'_, str> {
    if !input.contains('&') {
        return Cow::Borrowed(input);
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest[1..].find(';').filter(|&n| n <= 10).and_then(|n| {
            let entity = &rest[1..1 + n];
            decode_entity(entity).map(|c| (c, n + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn decode_entity(entity: &str) -> Option<char> {
    let code = if let Some(hex) = entity
        .strip_prefix("#x")
        .or_else(|| entity.strip_prefix("#X"))
    {
        u32::from_str_radix(hex, 16).ok()?
    } else if let Some(dec) = entity.strip_prefix('#') {
        dec.parse::<u32>().ok()?
    } else {
        return match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some('\u{a0}'),
            _ => None,
        };
    };
    char::from_u32(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_anchors_with_all_quoting_styles() {
        let links = scan(
            "<!DOCTYPE html><html><body>\n\
             <a href=\"a-1.0.tar.gz#sha256=ab\" data-requires-python=\"&gt;=3.8\">a-1.0.tar.gz</a>\n\
             <A HREF='b.whl' data-yanked>b.whl</A>\
             <a href=c.whl data-core-metadata=sha256=00>c<b>.whl</b></a>\
             </body></html>",
        );
        assert_eq!(links.anchors.len(), 3);
        let a = &links.anchors[0];
        assert_eq!(a.attribute("href"), Some("a-1.0.tar.gz#sha256=ab"));
        assert_eq!(a.attribute("data-requires-python"), Some(">=3.8"));
        assert_eq!(a.text, "a-1.0.tar.gz");
        let b = &links.anchors[1];
        assert_eq!(b.attribute("href"), Some("b.whl"));
        assert_eq!(b.attribute("data-yanked"), Some(""));
        let c = &links.anchors[2];
        assert_eq!(c.attribute("href"), Some("c.whl"));
        assert_eq!(c.attribute("data-core-metadata"), Some("sha256=00"));
        assert_eq!(c.text, "c.whl");
    }

    #[test]
    fn skips_comments_and_reads_base() {
        let links = scan(
            "<head><base href=\"https://files.example/x/\"></head>\
             <!-- <a href=\"hidden.whl\">hidden</a> -->\
             <a title='a > b' href='shown.whl'>shown</a>",
        );
        assert_eq!(links.base.as_deref(), Some("https://files.example/x/"));
        assert_eq!(links.anchors.len(), 1);
        assert_eq!(links.anchors[0].attribute("title"), Some("a > b"));
        assert_eq!(links.anchors[0].attribute("href"), Some("shown.whl"));
    }

    #[test]
    fn truncated_markup_does_not_panic() {
        for input in [
            "<a",
            "<a href=",
            "<a href='x",
            "<a href=x>",
            "<!-- never closed",
            "&",
            "<",
        ] {
            let _ = scan(input);
        }
        assert_eq!(scan("<a href='x.whl'>x").anchors[0].text, "x");
    }

    #[test]
    fn unescapes_character_references() {
        assert_eq!(unescape("&gt;=3.8, &lt;4"), ">=3.8, <4");
        assert_eq!(unescape("a&amp;b&#39;c&#x27;d&quot;"), "a&b'c'd\"");
        assert_eq!(unescape("&unknown; & &#xZZ;"), "&unknown; & &#xZZ;");
        assert_eq!(unescape("plain"), "plain");
        assert_eq!(unescape("&#1114112;"), "&#1114112;");
    }
}
