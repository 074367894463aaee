//! Text from the guest on its way to the user's terminal.
//!
//! What the backend prints, its tracebacks and exception messages are shown to the user.
//! Terminals act on control characters: escape sequences can clear the screen, retitle the
//! window, write the clipboard (OSC 52), and a carriage return can overwrite a line with a
//! forged one. Everything here passes newlines and tabs and shows every other control
//! character escaped (`\x1b`, `\u{9b}`), so the text arrives inert but readable.

use std::fmt::Write;

/// `text` with its control characters escaped (but newlines and tabs).
pub fn inert(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_char(&mut out, c);
    }
    out
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\n' | '\t' => out.push(c),
        c if (c as u32) < 0x80 && c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if c.is_control() => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// [`inert`] for output that arrives in pieces (the `-v` stream): an incomplete UTF-8
/// sequence at the end of a piece is kept until the next one, so that a control
/// character split across two writes is still caught.
#[derive(Debug, Default)]
pub struct InertStream {
    pending: Vec<u8>,
}

impl InertStream {
    /// The printable form of `bytes`, following what came before.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(&inert(text));
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(&inert(std::str::from_utf8(valid).unwrap_or_default()));
                    match e.error_len() {
                        // Not UTF-8: shown as the replacement character.
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        // Incomplete at the end: wait for the next piece.
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            inert("a\x1b[2Jb\r\x07\u{9b}c\n\td"),
            "a\\x1b[2Jb\\x0d\\x07\\u{9b}c\n\td"
        );
        assert_eq!(inert("héllo ✓"), "héllo ✓");
    }

    #[test]
    fn a_control_character_split_across_pieces_is_caught() {
        let mut stream = InertStream::default();
        // U+009B (CSI) is C2 9B in UTF-8.
        assert_eq!(stream.push(b"x\xc2"), "x");
        assert_eq!(stream.push(b"\x9b2J\xff"), "\\u{9b}2J\u{fffd}");
    }
}
