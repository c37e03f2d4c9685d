//! Names that are not UTF-8, carried losslessly inside a Rust `String`.
//!
//! RFC 2640 §3.2 asks servers to send a name that is not valid UTF-8 as the bytes it is, and a
//! client that got such a name from a listing sends the same bytes back (`mget`, `RETR`). The
//! daemon keeps paths as `String`s, so each byte that is not part of a valid UTF-8 sequence is
//! carried as one private-use character, `U+F780 + (byte - 0x80)` (bytes 0x80-0xFF only: ASCII is
//! always valid). A *valid* character that happens to lie in that range is escaped too, byte by
//! byte, so the mapping is a bijection: `encode(decode(b)) == b` for every byte string, and a
//! genuine U+F7xx name stays reachable. The escapes never contain `/`, NUL or ASCII at all, so
//! they cannot change how a path is split or resolved.
//!
//! `decode` is used on the way in (control-line arguments, directory entries), `encode` on the
//! way out to the disk (`VirtualPath::to_relative`) and to data connections (listings).
//! Replies on the control connection stay UTF-8: there an escape is shown as U+FFFD (`shown`).

use std::borrow::Cow;

/// The escape of byte `b` (0x80..=0xFF) is `ESCAPE_BASE + b`.
const ESCAPE_BASE: u32 = 0xF700;
const FIRST_ESCAPE: char = '\u{F780}';
const LAST_ESCAPE: char = '\u{F7FF}';

fn is_escape(c: char) -> bool {
    (FIRST_ESCAPE..=LAST_ESCAPE).contains(&c)
}

fn escape(out: &mut String, byte: u8) {
    // Every byte 0x80..=0xFF maps into the escape range, which holds only valid scalar values.
    if let Some(c) = char::from_u32(ESCAPE_BASE + u32::from(byte)).filter(|_| byte >= 0x80) {
        out.push(c);
    } else {
        out.push(char::from(byte));
    }
}

/// Bytes (a control-line argument, a directory entry's name) to a `String`, losslessly.
pub fn decode(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.chars().any(is_escape) {
            return s.to_owned();
        }
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_escape(c) {
                let mut buf = [0u8; 4];
                for &b in c.encode_utf8(&mut buf).as_bytes() {
                    escape(&mut out, b);
                }
            } else {
                out.push(c);
            }
        }
        for &b in chunk.invalid() {
            escape(&mut out, b);
        }
    }
    out
}

/// A `String` from `decode` back to the bytes it came from.
pub fn encode(s: &str) -> Cow<'_, [u8]> {
    if !s.chars().any(is_escape) {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        if is_escape(c) {
            // In range: the difference is 0x80..=0xFF.
            out.push((u32::from(c) - ESCAPE_BASE) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Cow::Owned(out)
}

/// Whether `s` carries bytes that are not UTF-8 (or a genuine U+F780..U+F7FF character).
pub fn has_raw_bytes(s: &str) -> bool {
    s.chars().any(is_escape)
}

/// `s` for a reply on the control connection, which stays UTF-8: each escaped byte is U+FFFD,
/// as a lossy UTF-8 decoder would show it.
pub fn shown(s: &str) -> Cow<'_, str> {
    if has_raw_bytes(s) {
        Cow::Owned(
            s.chars()
                .map(|c| if is_escape(c) { '\u{FFFD}' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_string_round_trips() {
        let cases: &[&[u8]] = &[
            b"plain.txt",
            "üñíçødé".as_bytes(),
            b"latin1-\xe9t\xe9.txt",
            b"\xff\xfe\x80",
            b"overlong \xc0\xaf slash",
            b"truncated \xe2\x82",
            // A genuine U+F780 and U+F7FF: escaped byte by byte, still round-trips.
            "pua-\u{F780}-\u{F7FF}".as_bytes(),
            b"",
        ];
        for &bytes in cases {
            let s = decode(bytes);
            assert_eq!(&*encode(&s), bytes, "{bytes:?} via {s:?}");
        }
        // Exhaustive over all two-byte strings: decode is injective, encode its inverse.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let bytes = [a, b];
                assert_eq!(&*encode(&decode(&bytes)), &bytes[..]);
            }
        }
    }

    #[test]
    fn escapes_never_introduce_separators_and_valid_names_are_untouched() {
        let s = decode(b"a\xc0\xafb/\xff");
        assert_eq!(s.matches('/').count(), 1, "only the real slash: {s:?}");
        assert!(!s.contains('\0'));
        assert_eq!(decode("ü/x".as_bytes()), "ü/x");
        assert!(matches!(encode("ü/x"), Cow::Borrowed(_)));
        assert!(has_raw_bytes(&decode(b"\xe9")));
        assert!(!has_raw_bytes("été"));
        assert_eq!(shown(&decode(b"caf\xe9")), "caf\u{FFFD}");
    }
}
