//! The properties the fuzz targets check, in one place.
//!
//! Included with `#[path]` by the cargo-fuzz targets in `fuzz_targets/` (nightly features, run
//! with `cargo fuzz`) and by `tests/fuzz_regressions.rs` (stable, part of `cargo test`), so a
//! saved input is replayed through exactly the checks that found it. Nothing here may depend on
//! anything but `actorftpd`, `bytes` and `tokio-util`.
//!
//! Input layouts (the first bytes steer, the rest is the payload):
//! - `parse_command`: the whole input is one control line.
//! - `codec`: byte 0 picks the line limit (0: the daemon's 8,192; n: n bytes), bytes 1-2 seed
//!   the chunk sizes, the rest is the byte stream from the client.
//! - `reply_encode`: byte 0 picks the reply code, the rest is the text; for the multi-line form
//!   it is split into lines at 0xFF (a byte that never occurs in UTF-8).
//!
//! Every check is strict. The one bug the fuzzer found (a middle reply line whose text starts
//! with a control character and then digits was sent starting with those digits) is fixed; its
//! inputs are in tests/fuzz/regressions/reply_encode.

// Each includer uses a different subset.
#![allow(dead_code)]

use actorftpd::error::FtpError;
use actorftpd::protocol::codec::DISCARD_REPORT;
use actorftpd::protocol::command::{self, Command, ParseError};
use actorftpd::protocol::{FtpCodec, Reply, ReplyCode, MAX_LINE_LEN};
use bytes::BytesMut;
use tokio_util::codec::Decoder;

type Item = Result<Command, ParseError>;

// ---------------------------------------------------------------------------------------------
// parse_command
// ---------------------------------------------------------------------------------------------

/// `protocol::command::parse` on arbitrary bytes: never panics, is deterministic, ignores the
/// case of an alphabetic verb, never shows a password, and every error becomes exactly one
/// clean reply line with a 5xx code.
pub fn check_parse(line: &[u8]) {
    let result = command::parse(line);
    assert_eq!(command::parse(line), result, "parse is not deterministic");

    // The verb (up to the first space) is case-insensitive when it is all letters. A word
    // longer than any verb is echoed as sent, so there only the echo's case may differ.
    let verb_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    if verb_len > 0 && line[..verb_len].iter().all(u8::is_ascii_alphabetic) {
        let mut flipped = line.to_vec();
        for b in &mut flipped[..verb_len] {
            *b ^= 0x20;
        }
        match (command::parse(&flipped), &result) {
            (Err(ParseError::UnknownCommand(a)), Err(ParseError::UnknownCommand(b)))
                if verb_len > 4 =>
            {
                assert!(a.eq_ignore_ascii_case(b), "echo {a:?} vs {b:?}")
            }
            (other, _) => assert_eq!(&other, &result, "verb case changed the result"),
        }
    }

    match &result {
        Ok(cmd) => {
            let shown = format!("{cmd}");
            let debug = format!("{cmd:?}");
            if let Command::Pass(_) = cmd {
                assert_eq!(shown, "PASS ****", "password shown by Display");
                assert_eq!(debug, "Pass(****)", "password shown by Debug");
            }
            assert!(
                shown.starts_with(cmd.verb()),
                "Display {shown:?} does not start with the verb"
            );
        }
        Err(e) => {
            if let ParseError::UnknownCommand(verb) = e {
                // SECURITY (parser): the echoed verb is short and printable.
                assert!(verb.chars().count() <= 16, "echoed verb too long: {verb:?}");
                assert!(
                    !verb.chars().any(char::is_control),
                    "control character in echoed verb: {verb:?}"
                );
            }
            assert_ne!(e, &ParseError::LineTooLong, "parse never reports length");
            let reply = FtpError::Parse(e.clone()).reply();
            assert!(
                matches!(reply.code.as_u16(), 500 | 501 | 504),
                "parse error {e:?} answered {}",
                reply.code
            );
            check_wire(&reply.to_bytes(), 1, reply.code.as_u16(), &[]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// codec
// ---------------------------------------------------------------------------------------------

/// Splits a `codec` input into (line limit, chunk seed, stream).
pub fn codec_input(data: &[u8]) -> (usize, u16, &[u8]) {
    let max_line = match data.first() {
        None | Some(0) => MAX_LINE_LEN,
        Some(&n) => usize::from(n),
    };
    let seed = match data.get(1..3) {
        Some(s) => u16::from_le_bytes([s[0], s[1]]),
        None => 0,
    };
    (max_line, seed, data.get(3..).unwrap_or(&[]))
}

/// `FtpCodec` on an arbitrary stream: never panics or errors, consumes everything it is given
/// (nothing piles up in the read buffer), keeps its line buffer within the limit, gives the
/// same items whether the stream arrives in one chunk, in random chunks or byte by byte, yields
/// at most one item at EOF, and, for streams without Telnet IAC, gives exactly the items a
/// plain line splitter predicts.
pub fn check_codec(data: &[u8]) {
    let (max_line, seed, stream) = codec_input(data);
    let whole = decode_chunks(max_line, &[stream], false);
    let chunks = random_chunks(stream, seed);
    // Reading the line buffer costs a `Debug` format per call: done for the small limits, where
    // lines actually reach the limit within a fuzz input.
    let pieces = decode_chunks(max_line, &chunks, max_line <= 255);
    assert_eq!(
        whole,
        pieces,
        "items differ between one chunk and chunks of sizes {:?}",
        chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
    );
    if stream.len() <= 1024 {
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(
            whole,
            decode_chunks(max_line, &bytes, false),
            "items differ between one chunk and byte by byte"
        );
    }
    if !stream.contains(&0xFF) {
        assert_eq!(
            whole,
            reference_items(max_line, stream),
            "items differ from the plain line splitter (max_line {max_line})"
        );
    }
}

/// Chunk sizes 0..=64 from a xorshift stream seeded by `seed`.
pub fn random_chunks(stream: &[u8], seed: u16) -> Vec<&[u8]> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 65) as usize;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// Feeds `chunks` as a `Framed` read loop does, then ends the stream as `Framed` does at EOF.
pub fn decode_chunks(max_line: usize, chunks: &[&[u8]], check_line: bool) -> Vec<Item> {
    let mut codec = FtpCodec::new(max_line);
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let next = codec.decode(&mut buf).expect("decode never fails");
            if check_line {
                assert_line_bounded(&codec, max_line);
            }
            match next {
                Some(item) => items.push(item),
                None => {
                    assert!(
                        buf.is_empty(),
                        "decode left {} bytes unconsumed with no item",
                        buf.len()
                    );
                    break;
                }
            }
        }
    }
    assert_line_bounded(&codec, max_line);
    let mut at_eof = 0;
    while let Some(item) = codec.decode_eof(&mut buf).expect("decode_eof never fails") {
        items.push(item);
        at_eof += 1;
        assert!(at_eof <= 1, "decode_eof keeps producing items");
    }
    items
}

/// The codec's pending line never holds more than `max_line` bytes. The field is private, so it
/// is read from the codec's `Debug` form (`FtpCodec { line: [..], ... }`).
pub fn assert_line_bounded(codec: &FtpCodec, max_line: usize) {
    let debug = format!("{codec:?}");
    let start = debug
        .find("line: [")
        .expect("FtpCodec's Debug no longer shows `line: [..]`; update tests/fuzz/checks.rs")
        + "line: [".len();
    let end = start + debug[start..].find(']').expect("end of line field");
    let body = debug[start..end].trim();
    let len = if body.is_empty() {
        0
    } else {
        body.split(',').count()
    };
    assert!(
        len <= max_line,
        "line buffer holds {len} bytes, over the limit {max_line}"
    );
}

/// The documented rules for a stream without IAC: a line ends at CR, LF or CRLF (a LF right
/// after a CR belongs to that ending); a line of at most `max_line` bytes is parsed; a longer
/// one gives one `LineTooLong` when it crosses the limit and one `LineTooLongContinues` for
/// every further `DISCARD_REPORT` bytes dropped, and its end is silent; at EOF an unfinished
/// non-empty line is parsed. A limit of 0 counts as 1.
pub fn reference_items(max_line: usize, stream: &[u8]) -> Vec<Item> {
    let max_line = max_line.max(1);
    let mut items = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    let mut len = 0usize; // bytes in the current line, kept or dropped
    let mut after_cr = false;
    let over = |len: usize, items: &mut Vec<Item>| {
        // Byte number `len` of the line (1-based) is being added.
        if len == max_line + 1 {
            items.push(Err(ParseError::LineTooLong));
        } else if len > max_line + 1 && (len - max_line).is_multiple_of(DISCARD_REPORT) {
            items.push(Err(ParseError::LineTooLongContinues));
        }
    };
    for &b in stream {
        let was_cr = std::mem::replace(&mut after_cr, false);
        match b {
            b'\n' if was_cr => {}
            b'\r' | b'\n' => {
                after_cr = b == b'\r';
                if len <= max_line {
                    items.push(command::parse(&line));
                }
                line.clear();
                len = 0;
            }
            _ => {
                len += 1;
                over(len, &mut items);
                if len <= max_line {
                    line.push(b);
                }
            }
        }
    }
    if len > 0 && len <= max_line {
        items.push(command::parse(&line));
    }
    items
}

// ---------------------------------------------------------------------------------------------
// reply_encode
// ---------------------------------------------------------------------------------------------

const CODES: [ReplyCode; 16] = [
    ReplyCode::RestartMarker,
    ReplyCode::OpeningDataConnection,
    ReplyCode::CommandOk,
    ReplyCode::SystemStatus,
    ReplyCode::FileStatus,
    ReplyCode::HelpMessage,
    ReplyCode::ServiceReady,
    ReplyCode::ClosingDataConnection,
    ReplyCode::FileActionOk,
    ReplyCode::PathCreated,
    ReplyCode::NeedPassword,
    ReplyCode::ServiceNotAvailable,
    ReplyCode::SyntaxError,
    ReplyCode::ArgumentSyntaxError,
    ReplyCode::FileUnavailable,
    ReplyCode::BadFileName,
];

/// What the encoder promises to make of one line of text: CR, LF and TAB become spaces, other
/// control characters are dropped.
pub fn sanitised(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\r' | '\n' | '\t' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

/// `Reply::new(code, text)` encodes to exactly one CRLF-terminated line `ddd text`, and
/// `Reply::multi(code, lines)` to exactly one line per entry with RFC 959 multi-line framing
/// that no text can end early.
pub fn check_reply(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let code = CODES[usize::from(pick) % CODES.len()];
    let n = code.as_u16();

    let text = String::from_utf8_lossy(rest).into_owned();
    let mut wire = BytesMut::new();
    Reply::new(code, text.clone()).encode(&mut wire);
    let lines = check_wire(&wire, 1, n, &[]);
    assert_eq!(lines[0][4..], sanitised(&text), "single-line text");

    let texts: Vec<String> = rest
        .split(|&b| b == 0xFF)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    let mut wire = BytesMut::new();
    Reply::multi(code, texts.clone()).encode(&mut wire);
    let lines = check_wire(&wire, texts.len(), n, &[]);
    for (i, (line, text)) in lines.iter().zip(&texts).enumerate() {
        let want = sanitised(text);
        let ok = if i == 0 || i + 1 == texts.len() {
            line[4..] == want
        } else {
            // A middle line is sent as given, or behind one guard space when it starts with a
            // digit.
            *line == want || (want.starts_with(|c: char| c.is_ascii_digit()) && line[1..] == want)
        };
        assert!(ok, "line {i}: sent {line:?} for text {text:?}");
    }
}

/// Checks the wire form of a reply of `n` lines with `code` and returns its lines. Lines listed
/// in `known_bug` are not checked for a leading digit.
pub fn check_wire(wire: &[u8], n: usize, code: u16, known_bug: &[usize]) -> Vec<String> {
    let text = std::str::from_utf8(wire).expect("a reply is UTF-8");
    assert!(!wire.contains(&0xFF), "IAC byte in a reply");
    assert!(text.ends_with("\r\n"), "reply does not end with CRLF");
    let lines: Vec<String> = text[..text.len() - 2]
        .split("\r\n")
        .map(str::to_owned)
        .collect();
    assert_eq!(
        lines.len(),
        n,
        "{} CRLF-terminated lines for {n} lines of text: {text:?}",
        lines.len()
    );
    for line in &lines {
        assert!(
            !line.chars().any(char::is_control),
            "control character inside a reply line: {line:?}"
        );
    }
    let last = n - 1;
    for (i, line) in lines.iter().enumerate() {
        if i == 0 || i == last {
            let sep = if i == last { ' ' } else { '-' };
            assert!(
                line.starts_with(&format!("{code}{sep}")),
                "line {i} of {n} should start with {code}{sep:?}: {line:?}"
            );
        } else if !known_bug.contains(&i) {
            // RFC 959 §4.2: a middle line that starts with digits could end the reply early.
            assert!(
                !line.starts_with(|c: char| c.is_ascii_digit()),
                "middle line {i} of {n} starts with a digit and could end the reply: {line:?}"
            );
        }
    }
    lines
}
