//! The one writer for everything that reaches the user's terminal.
//!
//! Much of what wasm-build shows comes from strangers: the backend's output, its
//! tracebacks and exception messages, file names of the source tree, index pages.
//! Terminals act on control characters: escape sequences clear the screen, retitle the
//! window, write the clipboard (OSC 52), and a carriage return overwrites a line with a
//! forged one; Unicode format characters (bidi overrides, zero-width characters) make text
//! read differently from what it is. Everything written here is escaped at this sink:
//! control and format characters are shown as `\x1b` or `\u{202e}`. Line breaks inside one
//! message are kept but the continuation is indented, and the backend's own lines carry a
//! prefix, so that no text from elsewhere can pose as one of wasm-build's own lines
//! (`* Built …`, `error: …`, `hint: …`), which always start at the left margin.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// How continuation lines of a message are indented.
const CONTINUATION: &str = "  ";

/// `text` with every control and format character escaped except newlines and tabs.
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
        c if c.is_control() || is_invisible_format(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Unicode's format characters (category Cf: bidi controls, zero-width characters, tags)
/// and the line and paragraph separators: they change how text reads without showing.
fn is_invisible_format(c: char) -> bool {
    const RANGES: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x2028, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let c = c as u32;
    RANGES.iter().any(|&(low, high)| (low..=high).contains(&c))
}

/// Whether wasm-build's own leads (`error:`, `warning:`, …) are coloured.
static COLOR: AtomicBool = AtomicBool::new(false);

/// `--color`: when to colour what wasm-build writes to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (to anything but an empty string) or
    /// `TERM=dumb`.
    #[default]
    Auto,
    Always,
    Never,
}

/// Sets whether leads are coloured, once, before anything is written.
pub fn set_color(choice: ColorChoice) {
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
        }
    };
    COLOR.store(on, Ordering::Relaxed);
}

/// Whether stderr is a terminal (a spinner can be drawn there).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The SGR sequence that colours one of wasm-build's own leads, if any. Only these fixed
/// strings are coloured: nothing from elsewhere ever carries a sequence to the terminal.
fn paint(lead: &str) -> Option<&'static str> {
    match lead.trim() {
        "error:" => Some("\x1b[1;31m"),
        "warning:" => Some("\x1b[1;33m"),
        "hint:" => Some("\x1b[1;36m"),
        "*" => Some("\x1b[1m"),
        "caused by:" => Some("\x1b[2m"),
        _ => None,
    }
}

/// `lead`, coloured when `color`.
fn painted(lead: &str, color: bool) -> String {
    match paint(lead).filter(|_| color) {
        Some(sgr) => format!("{sgr}{lead}\x1b[0m"),
        None => lead.to_string(),
    }
}

/// A line of success (`Successfully built …`): green on a colour terminal.
pub fn success(text: &str) -> String {
    let escaped = inert(text.trim_end_matches('\n')).replace('\n', " ");
    if COLOR.load(Ordering::Relaxed) {
        format!("\x1b[1;32m{escaped}\x1b[0m\n")
    } else {
        format!("{escaped}\n")
    }
}

/// `text` with every line longer than `max_chars` cut short, saying how much was left out,
/// and at most `max_lines` lines (the last ones are kept): for text that quotes what the
/// user or the backend gave (a 500 KB `-C` value the backend echoes in its error).
pub fn clip(text: &str, max_chars: usize, max_lines: usize) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let skipped = lines.len().saturating_sub(max_lines);
    let mut out = String::with_capacity(text.len().min(max_chars * max_lines));
    if skipped > 0 {
        let _ = writeln!(out, "[{skipped} lines left out]");
    }
    for (i, line) in lines[skipped..].iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let count = line.chars().count();
        if count > max_chars {
            out.extend(line.chars().take(max_chars));
            let _ = write!(out, "… [{} more characters]", count - max_chars);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// A value the user gave, for a message: quoted, and cut short past 60 characters.
pub fn quote(value: &str) -> String {
    const SHOWN: usize = 60;
    let count = value.chars().count();
    if count > SHOWN {
        let head: String = value.chars().take(SHOWN).collect();
        format!("`{head}…` ({count} characters)")
    } else {
        format!("`{value}`")
    }
}

/// One message that starts with `lead` (`"error: "`, `"* "`): escaped, its own line
/// breaks kept as indented continuation lines.
pub fn message(lead: &str, text: &str) -> String {
    message_in(lead, text, COLOR.load(Ordering::Relaxed))
}

fn message_in(lead: &str, text: &str, color: bool) -> String {
    let escaped = inert(text.trim_end_matches('\n'));
    let mut out = String::with_capacity(lead.len() + escaped.len() + 16);
    out.push_str(&painted(lead, color));
    for (i, line) in escaped.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
            out.push_str(CONTINUATION);
        }
        out.push_str(line);
    }
    out.push('\n');
    out
}

/// clap's message about a bad command line (`error: …`, a tip, the usage), escaped, its
/// layout kept, its lead coloured like wasm-build's own.
pub fn usage_error(text: &str) -> String {
    let body = text.strip_prefix("error: ").unwrap_or(text);
    format!(
        "{}{}\n",
        painted("error: ", COLOR.load(Ordering::Relaxed)),
        inert(body.trim_end_matches('\n'))
    )
}

/// A block of text from elsewhere (the backend's output, a traceback), each line escaped
/// and prefixed with `prefix`.
pub fn block(prefix: &str, text: &str) -> String {
    let escaped = inert(text.trim_end_matches('\n'));
    let mut out = String::with_capacity(escaped.len() + 16);
    for line in escaped.split('\n') {
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Writes to stderr, ignoring failures (a closed stderr must not end the build).
pub fn to_stderr(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

/// [`inert`] for output that arrives in pieces (the `-v` stream): an incomplete UTF-8
/// sequence at the end of a piece is kept until the next one, so that a control
/// character split across two writes is still caught; lines are handed out whole, each
/// prefixed, once their newline arrives (or on [`InertStream::flush`]).
#[derive(Debug, Default)]
pub struct InertStream {
    pending: Vec<u8>,
    line: String,
}

impl InertStream {
    /// The complete lines of what arrived so far, each escaped and prefixed with `prefix`.
    pub fn push(&mut self, bytes: &[u8], prefix: &str) -> String {
        self.pending.extend_from_slice(bytes);
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    self.line.push_str(text);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    self.line
                        .push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        // Not UTF-8: shown as the replacement character.
                        Some(bad) => {
                            self.line.push(char::REPLACEMENT_CHARACTER);
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
        let mut out = String::new();
        while let Some(end) = self.line.find('\n') {
            let line: String = self.line.drain(..=end).collect();
            out.push_str(&block(prefix, &line));
        }
        out
    }

    /// What is left of an unfinished last line.
    pub fn flush(&mut self, prefix: &str) -> String {
        if !self.pending.is_empty() {
            self.line.push(char::REPLACEMENT_CHARACTER);
            self.pending.clear();
        }
        if self.line.is_empty() {
            return String::new();
        }
        block(prefix, &std::mem::take(&mut self.line))
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
    fn format_characters_are_escaped() {
        // A right-to-left override, a zero-width space, a line separator, a tag character.
        assert_eq!(
            inert("a\u{202e}b\u{200b}c\u{2028}d\u{e0041}"),
            "a\\u{202e}b\\u{200b}c\\u{2028}d\\u{e0041}"
        );
    }

    #[test]
    fn a_message_cannot_start_a_line_of_its_own() {
        assert_eq!(
            message("warning: ", "skipped `x\n* Built evil.whl`\nhint: y"),
            "warning: skipped `x\n  * Built evil.whl`\n  hint: y\n"
        );
        assert_eq!(message("* ", "a\rb"), "* a\\x0db\n");
    }

    #[test]
    fn long_lines_and_many_lines_are_clipped() {
        assert_eq!(
            clip("short\nabcdef", 4, 10),
            "shor… [1 more characters]\nabcd… [2 more characters]"
        );
        assert_eq!(clip("1\n2\n3\n4", 10, 2), "[2 lines left out]\n3\n4");
        assert_eq!(quote("abc"), "`abc`");
        let long = "x".repeat(500_000);
        let quoted = quote(&long);
        assert!(
            quoted.len() < 100 && quoted.ends_with("(500000 characters)"),
            "{quoted}"
        );
    }

    #[test]
    fn only_wasm_builds_leads_are_painted() {
        assert_eq!(
            message_in("error: ", "bad \x1b[31m", true),
            "\x1b[1;31merror: \x1b[0mbad \\x1b[31m\n"
        );
        assert_eq!(message_in("│ ", "x", true), "│ x\n");
        assert_eq!(message_in("error: ", "x", false), "error: x\n");
    }

    #[test]
    fn a_block_is_prefixed_line_by_line() {
        assert_eq!(block("| ", "one\n* Built x\n"), "| one\n| * Built x\n");
    }

    #[test]
    fn a_control_character_split_across_pieces_is_caught() {
        let mut stream = InertStream::default();
        // U+009B (CSI) is C2 9B in UTF-8.
        assert_eq!(stream.push(b"x\xc2", "> "), "");
        assert_eq!(
            stream.push(b"\x9b2J\xff\nnext", "> "),
            "> x\\u{9b}2J\u{fffd}\n"
        );
        assert_eq!(stream.flush("> "), "> next\n");
        assert_eq!(stream.flush("> "), "");
    }
}
