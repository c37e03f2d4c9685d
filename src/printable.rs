//! Making text that came from a client safe to show on a terminal or in a log.
//!
//! User names, paths and command lines are chosen by whoever connects. Printed raw, an ESC
//! sequence in them can retitle the operator's window, clear the screen or draw fake lines, and a
//! CR or LF can forge a log line. Everything that prints such text (the log format in `main.rs`,
//! `actorftpd who`, the admin endpoint's JSON) passes it through this module first. Pure: no I/O.
//!
//! Escape style (for display, not meant to be reversed; a backslash is left as it is):
//! - `\t`, `\n`, `\r` for tab, line feed and carriage return;
//! - `\xHH` (two lower-case hex digits) for the other C0 controls (U+0000 to U+001F) and DEL
//!   (U+007F): ESC is `\x1b`;
//! - `\u{HH}` for the C1 controls (U+0080 to U+009F): the one-character CSI is `\u{9b}`;
//! - `\u{HHHH}` for the characters that reorder or break lines without being controls: the
//!   bidirectional embeddings, overrides and isolates (U+200E, U+200F, U+202A to U+202E, U+2066
//!   to U+2069), and the line and paragraph separators (U+2028, U+2029).
//!
//! Everything else, including every other non-ASCII character, is shown as it is.

use std::borrow::Cow;
use std::fmt::Write;

/// True for the characters [`escape_controls`] rewrites.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `s` with every control character escaped as the module documentation describes; borrowed
/// when there was nothing to escape (the common case costs no allocation).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    let Some(first) = s.find(needs_escape) else {
        return Cow::Borrowed(s);
    };
    let mut out = String::with_capacity(s.len() + 8);
    out.push_str(&s[..first]);
    for c in s[first..].chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// JSON text with every character [`needs_escape`] flags written as a JSON `\uXXXX` escape.
///
/// serde_json escapes C0 controls inside strings but writes DEL, C1 controls and bidi marks as
/// they are. Outside strings JSON text has only ASCII punctuation, digits and letters, so this
/// rewrite keeps the document's meaning while making it safe to print.
pub fn escape_json_controls(json: &str) -> Cow<'_, str> {
    let Some(first) = json.find(needs_escape) else {
        return Cow::Borrowed(json);
    };
    let mut out = String::with_capacity(json.len() + 12);
    out.push_str(&json[..first]);
    for c in json[first..].chars() {
        if needs_escape(c) {
            // Every character needs_escape flags is in the Basic Multilingual Plane.
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_keeps_the_rest() {
        let cases: &[(&str, &str)] = &[
            ("alice", "alice"),
            ("", ""),
            ("/dir/file name.txt", "/dir/file name.txt"),
            ("café/日本語", "café/日本語"),
            ("back\\slash", "back\\slash"),
            // A window title, a screen clear, a fake log line.
            ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
            ("\x1b[2J\x1b[H", "\\x1b[2J\\x1b[H"),
            ("x\r\n[INFO] forged", "x\\r\\n[INFO] forged"),
            ("tab\there", "tab\\there"),
            ("\0nul", "\\x00nul"),
            ("del\x7f", "del\\x7f"),
            ("\x1f", "\\x1f"),
            // C1: the one-character CSI and NEL.
            ("\u{9b}2J", "\\u{9b}2J"),
            ("\u{85}", "\\u{85}"),
            ("\u{80}\u{9f}", "\\u{80}\\u{9f}"),
            // Not C1: the first printable Latin-1 character.
            ("\u{a0}\u{a9}", "\u{a0}\u{a9}"),
            // Bidi overrides and line separators.
            ("evil\u{202e}txt.exe", "evil\\u{202e}txt.exe"),
            (
                "\u{2028}\u{2029}\u{2066}\u{2069}\u{200e}",
                "\\u{2028}\\u{2029}\\u{2066}\\u{2069}\\u{200e}",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(escape_controls(input), *want, "{input:?}");
            assert!(
                !escape_controls(input).chars().any(needs_escape),
                "{input:?}"
            );
        }
    }

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(escape_controls("RETR /big.bin"), Cow::Borrowed(_)));
        assert!(matches!(escape_controls("a\x1b"), Cow::Owned(_)));
    }

    #[test]
    fn json_escaping_keeps_the_meaning() {
        let original = vec!["\x1b[2J\u{9b}2J\u{7f}\u{202e}é".to_owned()];
        let json = serde_json::to_string(&original).expect("json");
        let safe = escape_json_controls(&json);
        assert!(!safe.chars().any(needs_escape), "{safe}");
        assert!(safe.contains("\\u009b") && safe.contains("\\u007f") && safe.contains("é"));
        let back: Vec<String> = serde_json::from_str(&safe).expect("still JSON");
        assert_eq!(back, original);
        assert!(matches!(escape_json_controls("[1,2]"), Cow::Borrowed(_)));
    }
}
