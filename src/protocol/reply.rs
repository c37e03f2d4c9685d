//! Typed replies and their wire encoding.
//!
//! A `Reply` is a code plus one or more lines of text. Encoding applies the RFC 959 §4.2
//! multi-line framing and sanitises the text so nothing a client sent can forge a reply.

use bytes::{BufMut, BytesMut};
use std::fmt;

/// Reply codes by meaning (RFC 959 §4.2.1, RFC 2228, RFC 2428, RFC 3659).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ReplyCode {
    RestartMarker = 110,
    OpeningDataConnection = 150,
    CommandOk = 200,
    NotImplementedSuperfluous = 202,
    SystemStatus = 211,
    DirectoryStatus = 212,
    FileStatus = 213,
    HelpMessage = 214,
    SystemType = 215,
    ServiceReady = 220,
    ClosingControl = 221,
    DataConnectionOpenNoTransfer = 225,
    ClosingDataConnection = 226,
    EnteringPassiveMode = 227,
    EnteringExtendedPassiveMode = 229,
    LoggedIn = 230,
    AuthOk = 234,
    FileActionOk = 250,
    PathCreated = 257,
    NeedPassword = 331,
    NeedAccount = 332,
    FileActionPending = 350,
    ServiceNotAvailable = 421,
    CantOpenDataConnection = 425,
    TransferAborted = 426,
    FileUnavailableBusy = 450,
    LocalError = 451,
    InsufficientStorage = 452,
    SyntaxError = 500,
    ArgumentSyntaxError = 501,
    NotImplemented = 502,
    BadSequence = 503,
    ParameterNotImplemented = 504,
    /// RFC 4217 §9: the data connection needs a protection level the client did not set.
    DataProtectionRequired = 521,
    /// RFC 2428 §2-3: EPRT/EPSV named a network protocol we do not offer.
    NetworkProtocolNotSupported = 522,
    NotLoggedIn = 530,
    PolicyRequiresTls = 534,
    ProtLevelNotSupported = 536,
    FileUnavailable = 550,
    PageTypeUnknown = 551,
    ExceededStorage = 552,
    BadFileName = 553,
    InvalidRestParameter = 554,
}

impl ReplyCode {
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// 1yz replies are preliminary: another reply follows for the same command.
    pub fn is_preliminary(self) -> bool {
        self.as_u16() < 200
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

/// One reply: a code and at least one line of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: ReplyCode,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: ReplyCode, text: impl Into<String>) -> Reply {
        Reply {
            code,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply. The first and last lines carry the code; lines in between are sent
    /// as given (FEAT's one-space indent) unless they could be mistaken for a final line.
    pub fn multi(code: ReplyCode, lines: Vec<String>) -> Reply {
        let lines = if lines.is_empty() {
            vec![String::new()]
        } else {
            lines
        };
        Reply { code, lines }
    }

    /// The text of all lines joined with newlines (tests and logs).
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// Appends the wire form of this reply to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        let code = self.code.as_u16();
        let n = self.lines.len();
        for (i, line) in self.lines.iter().enumerate() {
            let last = i + 1 == n;
            if i == 0 || last {
                put_code(dst, code);
                dst.put_u8(if last { b' ' } else { b'-' });
                put_sanitised(dst, line);
                dst.put_slice(b"\r\n");
                continue;
            }
            // RFC 959 §4.2: a middle line starting with a digit could end the reply early. The
            // test looks at the first character that will be sent, after sanitising.
            if first_sent(line).is_some_and(|c| c.is_ascii_digit()) {
                dst.put_u8(b' ');
            }
            put_sanitised(dst, line);
            dst.put_slice(b"\r\n");
        }
    }

    pub fn to_bytes(&self) -> BytesMut {
        let mut b = BytesMut::with_capacity(64);
        self.encode(&mut b);
        b
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.code, self.lines.join(" | "))
    }
}

/// The first character `put_sanitised` will write (CR, LF and tab become spaces; other control
/// characters are dropped).
fn first_sent(line: &str) -> Option<char> {
    line.chars()
        .find(|c| !c.is_control() || matches!(c, '\r' | '\n' | '\t'))
}

fn put_code(dst: &mut BytesMut, code: u16) {
    dst.put_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
    ]);
}

/// SECURITY: reply text can contain client-chosen names. CR and LF would let a name start a
/// forged reply line, so they become spaces; other control bytes are dropped; IAC (0xFF) cannot
/// occur in UTF-8 text, so Telnet framing is never broken by a `String`.
fn put_sanitised(dst: &mut BytesMut, line: &str) {
    // Nearly every reply is printable ASCII: one check, one copy.
    if line.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        dst.put_slice(line.as_bytes());
        return;
    }
    for ch in line.chars() {
        match ch {
            '\r' | '\n' => dst.put_u8(b' '),
            '\t' => dst.put_u8(b' '),
            c if c.is_control() => {}
            c => {
                let mut buf = [0u8; 4];
                dst.put_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// RFC 959 Appendix II: a path in a 257 reply is quoted, and a `"` inside it is doubled.
pub fn quote_path(path: &str) -> String {
    let mut s = String::with_capacity(path.len() + 2);
    s.push('"');
    for ch in path.chars() {
        if ch == '"' {
            s.push('"');
        }
        s.push(ch);
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        String::from_utf8(r.to_bytes().to_vec()).expect("utf8")
    }

    #[test]
    fn single_and_multi_line_framing() {
        let cases: Vec<(Reply, &str)> = vec![
            (Reply::new(ReplyCode::CommandOk, "OK"), "200 OK\r\n"),
            (Reply::new(ReplyCode::ServiceReady, ""), "220 \r\n"),
            (
                Reply::multi(
                    ReplyCode::SystemStatus,
                    vec![
                        "Features:".into(),
                        " UTF8".into(),
                        " EPSV".into(),
                        "End".into(),
                    ],
                ),
                "211-Features:\r\n UTF8\r\n EPSV\r\n211 End\r\n",
            ),
            (
                Reply::multi(
                    ReplyCode::HelpMessage,
                    vec!["a".into(), "226 fake".into(), "b".into()],
                ),
                "214-a\r\n 226 fake\r\n214 b\r\n",
            ),
            (Reply::multi(ReplyCode::CommandOk, vec![]), "200 \r\n"),
        ];
        for (reply, want) in cases {
            assert_eq!(wire(&reply), want);
        }
    }

    #[test]
    fn a_control_character_cannot_hide_a_leading_digit() {
        let r = Reply::multi(
            ReplyCode::FileStatus,
            vec!["Status:".into(), "\u{1}213 forged".into(), "End".into()],
        );
        assert_eq!(wire(&r), "213-Status:\r\n 213 forged\r\n213 End\r\n");
    }

    #[test]
    fn reply_text_cannot_inject_lines() {
        let r = Reply::new(
            ReplyCode::FileUnavailable,
            "no such file: a\r\n230 Logged in\x00\x1b",
        );
        assert_eq!(wire(&r), "550 no such file: a  230 Logged in\r\n");
    }

    #[test]
    fn quote_path_doubles_quotes() {
        let cases = [
            ("/", "\"/\""),
            ("/a\"b", "\"/a\"\"b\""),
            ("/\"\"", "\"/\"\"\"\"\""),
            ("/ü x", "\"/ü x\""),
        ];
        for (path, want) in cases {
            assert_eq!(quote_path(path), want);
        }
    }
}
