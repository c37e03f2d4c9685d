//! The control-channel codec: bytes to parsed commands, replies to bytes.
//!
//! Lines end with CRLF, LF or a bare CR (a LF right after a CR is part of the same ending).
//! Telnet IAC sequences are removed (RFC 959 §4.1.3 and RFC 854), so an ABOR preceded by
//! `IAC IP IAC DM` (the urgent form) reads as a plain ABOR. A protocol error is an *item*
//! (`Err(ParseError)`), never a decoder error: a tokio-util `Framed` stream ends after its
//! decoder fails, and the session must answer 500 and carry on. Only I/O failure ends it.

use super::command::{self, Command, ParseError};
use super::reply::Reply;
use bytes::{Buf, BytesMut};
use std::io;
use tokio_util::codec::{Decoder, Encoder};

/// Longest command line accepted, without its line ending. A path can be 4096 bytes on Linux;
/// this leaves room for the verb and for clients that quote generously.
pub const MAX_LINE_LEN: usize = 8192;

/// While an over-long line is being dropped, one more report per this many bytes: a 1 MB line
/// gets a single 500, an endless one keeps reporting until the session closes it.
pub const DISCARD_REPORT: usize = 1024 * 1024;

const IAC: u8 = 255;
const SB: u8 = 250;
const SE: u8 = 240;
const WILL: u8 = 251;
const DONT: u8 = 254;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Telnet {
    /// Ordinary line bytes.
    Data,
    /// After IAC.
    Iac,
    /// After IAC WILL/WONT/DO/DONT: one option byte to skip.
    Option,
    /// Inside IAC SB ... IAC SE.
    Sub,
    /// Inside a subnegotiation, after IAC.
    SubIac,
}

/// Decodes control lines into `Result<Command, ParseError>` and encodes `Reply`s.
#[derive(Debug)]
pub struct FtpCodec {
    line: Vec<u8>,
    max_line: usize,
    telnet: Telnet,
    /// The previous line ended in CR: a LF right now belongs to that ending.
    after_cr: bool,
    /// The current line went over the limit: its bytes are being dropped.
    discarding: usize,
}

impl Default for FtpCodec {
    fn default() -> Self {
        FtpCodec::new(MAX_LINE_LEN)
    }
}

impl FtpCodec {
    pub fn new(max_line: usize) -> FtpCodec {
        FtpCodec {
            line: Vec::with_capacity(64),
            max_line: max_line.max(1),
            telnet: Telnet::Data,
            after_cr: false,
            discarding: 0,
        }
    }

    /// Runs the byte state machine until one item is ready; consumes what it read.
    fn next_item(&mut self, src: &mut BytesMut) -> Option<Result<Command, ParseError>> {
        let mut used = 0;
        let mut item = None;
        for &b in src.iter() {
            used += 1;
            let after_cr = std::mem::replace(&mut self.after_cr, false);
            match self.telnet {
                Telnet::Data => {
                    item = self.data_byte(b, after_cr);
                    if item.is_some() {
                        break;
                    }
                }
                Telnet::Iac => {
                    self.telnet = match b {
                        IAC => {
                            // IAC IAC is a literal 0xFF data byte.
                            if let Some(too_long) = self.push(IAC) {
                                item = Some(too_long);
                            }
                            Telnet::Data
                        }
                        WILL..=DONT => Telnet::Option,
                        SB => Telnet::Sub,
                        // Not a Telnet command: a client that does not double IAC sent a
                        // literal 0xFF (a file name from a listing, RFC 2640 §3.2). Both
                        // bytes are data.
                        0..SE => {
                            item = self.push(IAC).or_else(|| self.data_byte(b, false));
                            Telnet::Data
                        }
                        // IP, DM (Synch), AYT, NOP...: a two-byte command, dropped.
                        _ => Telnet::Data,
                    };
                    if item.is_some() {
                        break;
                    }
                }
                Telnet::Option => self.telnet = Telnet::Data,
                Telnet::Sub => {
                    if b == IAC {
                        self.telnet = Telnet::SubIac;
                    }
                }
                Telnet::SubIac => self.telnet = if b == SE { Telnet::Data } else { Telnet::Sub },
            }
        }
        src.advance(used);
        item
    }

    /// One byte outside Telnet sequences: a line ending, IAC, or a byte of the line.
    fn data_byte(&mut self, b: u8, after_cr: bool) -> Option<Result<Command, ParseError>> {
        match b {
            IAC => {
                self.telnet = Telnet::Iac;
                None
            }
            b'\n' if after_cr => None,
            b'\r' | b'\n' => {
                self.after_cr = b == b'\r';
                self.finish_line()
            }
            _ => self.push(b),
        }
    }

    /// Adds a byte to the line. SECURITY: past the limit, bytes are dropped: the line is
    /// reported once as `LineTooLong` when it crosses the limit (one 500), then as
    /// `LineTooLongContinues` for every further `DISCARD_REPORT` bytes dropped, so an endless
    /// line cannot grow memory and the session can count it and close the connection.
    fn push(&mut self, b: u8) -> Option<Result<Command, ParseError>> {
        if self.discarding > 0 {
            self.discarding += 1;
            if self.discarding.is_multiple_of(DISCARD_REPORT) {
                return Some(Err(ParseError::LineTooLongContinues));
            }
            return None;
        }
        if self.line.len() >= self.max_line {
            self.line.clear();
            self.discarding = 1;
            return Some(Err(ParseError::LineTooLong));
        }
        self.line.push(b);
        None
    }

    /// Ends the current line: its parsed command, or nothing for the tail of an over-long line
    /// (that was reported when it crossed the limit).
    fn finish_line(&mut self) -> Option<Result<Command, ParseError>> {
        if self.discarding > 0 {
            self.discarding = 0;
            self.line.clear();
            return None;
        }
        let result = command::parse(&self.line);
        self.line.clear();
        if self.line.capacity() > 1024 {
            // Keep idle sessions small after one long path.
            self.line.shrink_to(64);
        }
        Some(result)
    }
}

impl Decoder for FtpCodec {
    type Item = Result<Command, ParseError>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        loop {
            if src.is_empty() {
                return Ok(None);
            }
            if let Some(item) = self.next_item(src) {
                return Ok(Some(item));
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        // A last line without its ending is still a command (some scripts forget the newline).
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        if self.line.is_empty() {
            return Ok(None);
        }
        Ok(self.finish_line())
    }
}

impl Encoder<Reply> for FtpCodec {
    type Error = io::Error;

    fn encode(&mut self, reply: Reply, dst: &mut BytesMut) -> Result<(), io::Error> {
        reply.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::reply::ReplyCode;

    type Item = Result<Command, ParseError>;

    /// Feeds `chunks` one after another and collects every item.
    fn decode_all(codec: &mut FtpCodec, chunks: &[&[u8]]) -> Vec<Item> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(item) = codec.decode(&mut buf).expect("decode never fails") {
                out.push(item);
            }
        }
        out
    }

    #[test]
    fn line_endings_and_telnet_sequences() {
        let noop = || Ok(Command::Noop);
        let cases: Vec<(Vec<&[u8]>, Vec<Item>)> = vec![
            (vec![b"NOOP\r\n"], vec![noop()]),
            (vec![b"NOOP\n"], vec![noop()]),
            (vec![b"NOOP\r"], vec![noop()]),
            (vec![b"NOOP\rNOOP\r\n"], vec![noop(), noop()]),
            (vec![b"NOOP\r", b"\nNOOP\n"], vec![noop(), noop()]),
            (vec![b"NO", b"OP", b"\r", b"\n"], vec![noop()]),
            (
                vec![b"NOOP\r\n\r\n"],
                vec![noop(), Err(ParseError::UnknownCommand(String::new()))],
            ),
            // Urgent ABOR as ftplib sends it: IAC IP, IAC DM, then the command.
            (vec![b"\xff\xf4\xff\xf2ABOR\r\n"], vec![Ok(Command::Abor)]),
            (
                vec![b"\xff\xf4", b"\xff", b"\xf2ABOR\r\n"],
                vec![Ok(Command::Abor)],
            ),
            // Option negotiation and subnegotiation are dropped.
            (
                vec![b"\xff\xfb\x01NO\xff\xfa\x18\x01\xff\xf0OP\r\n"],
                vec![noop()],
            ),
            // IAC IAC is a data byte 0xFF: part of a file name (not UTF-8, carried losslessly).
            (
                vec![b"RETR \xff\xff\r\n"],
                vec![Ok(Command::Retr(crate::protocol::rawname::decode(b"\xff")))],
            ),
            // A client that does not double IAC: 0xFF before a byte that is no Telnet command
            // is data, also right before the line ending.
            (
                vec![b"RETR x\xff.bin\r\n", b"RETR x\xff", b"\r\n"],
                vec![
                    Ok(Command::Retr(crate::protocol::rawname::decode(
                        b"x\xff.bin",
                    ))),
                    Ok(Command::Retr(crate::protocol::rawname::decode(b"x\xff"))),
                ],
            ),
            // Where a name must be UTF-8, the same byte is 501.
            (vec![b"USER \xff\xff\r\n"], vec![Err(ParseError::NotUtf8)]),
        ];
        for (chunks, want) in cases {
            let mut codec = FtpCodec::default();
            assert_eq!(decode_all(&mut codec, &chunks), want, "chunks {chunks:?}");
        }
    }

    #[test]
    fn over_long_line_is_reported_and_skipped() {
        let mut codec = FtpCodec::new(16);
        let long = [b'A'; 40];
        let items = decode_all(&mut codec, &[b"RETR ", &long, b"\r\nNOOP\r\n"]);
        // One report when the limit is crossed; the line's end is silent and the next line is
        // read normally.
        assert_eq!(items, vec![Err(ParseError::LineTooLong), Ok(Command::Noop)]);
        assert!(codec.line.capacity() <= 64);
    }

    #[test]
    fn endless_line_keeps_memory_bounded_and_keeps_reporting() {
        let mut codec = FtpCodec::new(100);
        let chunk = [b'x'; 64 * 1024];
        let mut buf = BytesMut::new();
        let mut items = Vec::new();
        // 4 MiB of one line: one LineTooLong, then one report per DISCARD_REPORT dropped.
        for _ in 0..64 {
            buf.extend_from_slice(&chunk);
            while let Some(item) = codec.decode(&mut buf).expect("decode") {
                items.push(item);
            }
            assert!(buf.is_empty());
            assert!(codec.line.len() <= 100);
        }
        let dropped = 64 * chunk.len() - 100;
        assert_eq!(items.first(), Some(&Err(ParseError::LineTooLong)));
        assert_eq!(items.len(), 1 + dropped / DISCARD_REPORT);
        assert!(items[1..]
            .iter()
            .all(|i| *i == Err(ParseError::LineTooLongContinues)));
    }

    #[test]
    fn a_one_megabyte_line_is_reported_once() {
        let mut codec = FtpCodec::default();
        let mut line = vec![b'A'; 1_000_000];
        line.extend_from_slice(b"\r\nNOOP\r\n");
        let items = decode_all(&mut codec, &[&line]);
        assert_eq!(items, vec![Err(ParseError::LineTooLong), Ok(Command::Noop)]);
    }

    #[test]
    fn a_zero_limit_is_treated_as_one() {
        let mut codec = FtpCodec::new(0);
        let items = decode_all(&mut codec, &[b"AB\r\nN\r\n"]);
        assert_eq!(items[0], Err(ParseError::LineTooLong));
    }

    #[test]
    fn last_line_without_ending_is_read_at_eof() {
        let mut codec = FtpCodec::default();
        let mut buf = BytesMut::from(&b"QUIT"[..]);
        assert_eq!(codec.decode(&mut buf).expect("decode"), None);
        assert_eq!(
            codec.decode_eof(&mut buf).expect("eof"),
            Some(Ok(Command::Quit))
        );
        assert_eq!(codec.decode_eof(&mut buf).expect("eof"), None);
    }

    #[test]
    fn encoder_writes_reply_framing() {
        let mut codec = FtpCodec::default();
        let mut dst = BytesMut::new();
        codec
            .encode(Reply::new(ReplyCode::CommandOk, "fine"), &mut dst)
            .expect("encode");
        assert_eq!(&dst[..], b"200 fine\r\n");
    }
}
