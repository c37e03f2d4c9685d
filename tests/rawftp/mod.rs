//! A tiny raw-socket FTP control client for exact reply checks.
//!
//! suppaftp hides multi-line framing and some codes; these tests need every byte of a reply.
//! Every socket has read and write timeouts ([`SOCKET_TIMEOUT`]), and every failure panics with
//! the whole control-connection transcript so a failing test shows what was said.
//!
//! Used by the protocol, active-mode, ASCII and abort test binaries (each declares `mod common;`
//! first, then `mod rawftp;`).

// Each test binary uses a different subset of the client.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::common::SOCKET_TIMEOUT;

/// One reply: its code and every line as received (without CRLF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resp {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Resp {
    /// Text of the first line after `ddd ` / `ddd-`.
    pub fn text(&self) -> &str {
        self.lines[0].get(4..).unwrap_or("")
    }

    /// Text of the last line after `ddd `.
    pub fn last_text(&self) -> &str {
        self.lines[self.lines.len() - 1].get(4..).unwrap_or("")
    }

    /// The lines between the first and the last of a multi-line reply.
    pub fn middle(&self) -> &[String] {
        if self.lines.len() <= 2 {
            &[]
        } else {
            &self.lines[1..self.lines.len() - 1]
        }
    }

    pub fn is_multi(&self) -> bool {
        self.lines.len() > 1
    }

    /// The reply as it was on the wire (CRLF after every line).
    pub fn wire(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\r\n")).collect()
    }
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.lines.join(" | "))
    }
}

/// A control connection.
pub struct Ctrl {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    transcript: Vec<String>,
}

pub fn set_timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(SOCKET_TIMEOUT))
        .expect("set read timeout");
    s.set_write_timeout(Some(SOCKET_TIMEOUT))
        .expect("set write timeout");
}

pub fn tcp_connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    set_timeouts(&s);
    s
}

impl Ctrl {
    /// Connects and reads the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Ctrl {
        let stream = tcp_connect(addr);
        stream.set_nodelay(true).expect("nodelay");
        let writer = stream.try_clone().expect("clone control socket");
        let mut c = Ctrl {
            reader: BufReader::new(stream),
            writer,
            transcript: Vec::new(),
        };
        c.expect_reply(220);
        c
    }

    /// Connects, logs in with USER/PASS and switches to TYPE I.
    pub fn login(addr: SocketAddr, user: &str, pass: &str) -> Ctrl {
        let mut c = Ctrl::connect(addr);
        c.expect(&format!("USER {user}"), 331);
        c.expect(&format!("PASS {pass}"), 230);
        c.expect("TYPE I", 200);
        c
    }

    /// The control socket (for socket options or urgent data).
    pub fn socket(&self) -> &TcpStream {
        &self.writer
    }

    pub fn local_ip(&self) -> IpAddr {
        self.writer.local_addr().expect("local addr").ip()
    }

    pub fn server_addr(&self) -> SocketAddr {
        self.writer.peer_addr().expect("peer addr")
    }

    /// Everything sent and received so far.
    pub fn transcript(&self) -> String {
        self.transcript.join("\n")
    }

    #[track_caller]
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n--- control transcript ---\n{}\n--- end ---",
            self.transcript()
        )
    }

    /// Sends one command line (CRLF added).
    pub fn send(&mut self, line: &str) {
        self.transcript.push(format!("C: {line}"));
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        if let Err(e) = self.writer.write_all(&bytes) {
            self.fail(&format!("send {line:?}: {e}"));
        }
    }

    /// Sends bytes as they are (for Telnet sequences or odd line endings).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.transcript
            .push(format!("C (raw): {:?}", String::from_utf8_lossy(bytes)));
        if let Err(e) = self.writer.write_all(bytes) {
            self.fail(&format!("send raw bytes: {e}"));
        }
    }

    fn read_line(&mut self) -> String {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => self.fail("control connection closed while a reply was expected"),
            Ok(_) => {}
            Err(e) => self.fail(&format!("reading a reply: {e}")),
        }
        if !buf.ends_with(b"\r\n") {
            self.fail(&format!(
                "reply line not terminated by CRLF: {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.truncate(buf.len() - 2);
        match String::from_utf8(buf) {
            Ok(s) => {
                self.transcript.push(format!("S: {s}"));
                s
            }
            Err(e) => self.fail(&format!("reply line is not UTF-8: {e}")),
        }
    }

    /// Reads one complete reply (RFC 959 §4.2 multi-line framing).
    pub fn reply(&mut self) -> Resp {
        let first = self.read_line();
        let code = match first.get(..3).and_then(|c| c.parse::<u16>().ok()) {
            Some(c) if (100..600).contains(&c) => c,
            _ => self.fail(&format!("reply line without a code: {first:?}")),
        };
        let sep = first.as_bytes().get(3).copied();
        let mut lines = vec![first.clone()];
        match sep {
            Some(b' ') => {}
            Some(b'-') => {
                let end = format!("{code} ");
                loop {
                    let line = self.read_line();
                    let done = line.starts_with(&end);
                    lines.push(line);
                    if done {
                        break;
                    }
                }
            }
            // "200" alone is legal but this server always sends text.
            _ => self.fail(&format!("bad separator after the code: {first:?}")),
        }
        Resp { code, lines }
    }

    /// Sends `line` and returns its reply, whatever the code.
    pub fn cmd(&mut self, line: &str) -> Resp {
        self.send(line);
        self.reply()
    }

    /// Reads the next reply and checks its code.
    #[track_caller]
    pub fn expect_reply(&mut self, code: u16) -> Resp {
        let r = self.reply();
        if r.code != code {
            self.fail(&format!("expected a {code} reply, got {r}"));
        }
        r
    }

    /// Sends `line` and checks the reply's code.
    #[track_caller]
    pub fn expect(&mut self, line: &str, code: u16) -> Resp {
        self.send(line);
        let r = self.reply();
        if r.code != code {
            self.fail(&format!("{line}: expected {code}, got {r}"));
        }
        r
    }

    /// EPSV; returns the port the server named.
    #[track_caller]
    pub fn epsv_port(&mut self) -> u16 {
        let r = self.expect("EPSV", 229);
        match parse_epsv(r.text()) {
            Some(p) => p,
            None => self.fail(&format!("EPSV reply without (|||port|): {r}")),
        }
    }

    /// EPSV and a data connection to the port it names (same IP as the control connection).
    #[track_caller]
    pub fn epsv(&mut self) -> TcpStream {
        let port = self.epsv_port();
        let ip = self.server_addr().ip();
        tcp_connect(SocketAddr::new(ip, port))
    }

    /// PASV; returns the address the server named.
    #[track_caller]
    pub fn pasv_addr(&mut self) -> SocketAddr {
        let r = self.expect("PASV", 227);
        match parse_pasv(r.text()) {
            Some(a) => a,
            None => self.fail(&format!("PASV reply without (h1,h2,h3,h4,p1,p2): {r}")),
        }
    }

    /// Downloads over EPSV with `command` (e.g. `RETR x`), checking 150 and 226.
    #[track_caller]
    pub fn download(&mut self, command: &str) -> Vec<u8> {
        let data = self.epsv();
        self.expect(command, 150);
        let got = read_all(data);
        self.expect_reply(226);
        got
    }

    /// Uploads over EPSV with `command` (e.g. `STOR x`), checking 150 and 226; returns the 150.
    #[track_caller]
    pub fn upload(&mut self, command: &str, bytes: &[u8]) -> Resp {
        let data = self.epsv();
        let opening = self.expect(command, 150);
        write_all_close(data, bytes);
        self.expect_reply(226);
        opening
    }

    /// LIST/NLST/MLSD over EPSV, as text.
    #[track_caller]
    pub fn listing(&mut self, command: &str) -> String {
        let bytes = self.download(command);
        match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => self.fail(&format!("{command} listing is not UTF-8: {e}")),
        }
    }
}

/// Reads a data connection to EOF.
#[track_caller]
pub fn read_all(mut data: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    data.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("read data connection to EOF: {e}"));
    got
}

/// Writes `bytes` and closes the data connection (EOF ends a STREAM-mode upload).
#[track_caller]
pub fn write_all_close(mut data: TcpStream, bytes: &[u8]) {
    data.write_all(bytes)
        .unwrap_or_else(|e| panic!("write {} bytes to the data connection: {e}", bytes.len()));
    data.shutdown(std::net::Shutdown::Write)
        .unwrap_or_else(|e| panic!("shutdown data connection: {e}"));
    // Wait for the server's FIN so the upload is complete on its side before 226 is read.
    let mut rest = Vec::new();
    let _ = data.read_to_end(&mut rest);
}

/// Port from `Entering Extended Passive Mode (|||port|)`.
pub fn parse_epsv(text: &str) -> Option<u16> {
    let start = text.find("(|||")? + 4;
    let end = start + text[start..].find("|)")?;
    text[start..end].parse().ok()
}

/// Address from `Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
pub fn parse_pasv(text: &str) -> Option<SocketAddr> {
    let start = text.find('(')? + 1;
    let end = start + text[start..].find(')')?;
    let nums: Vec<u8> = text[start..end]
        .split(',')
        .map(|n| n.trim().parse().ok())
        .collect::<Option<Vec<u8>>>()?;
    if nums.len() != 6 {
        return None;
    }
    let ip = Ipv4Addr::new(nums[0], nums[1], nums[2], nums[3]);
    let port = u16::from(nums[4]) << 8 | u16::from(nums[5]);
    Some(SocketAddr::new(IpAddr::V4(ip), port))
}

/// `PORT h1,h2,h3,h4,p1,p2` for an IPv4 address.
pub fn port_command(addr: SocketAddr) -> String {
    let IpAddr::V4(ip) = addr.ip() else {
        panic!("test bug: PORT needs an IPv4 address, got {addr}")
    };
    let o = ip.octets();
    format!(
        "PORT {},{},{},{},{},{}",
        o[0],
        o[1],
        o[2],
        o[3],
        addr.port() >> 8,
        addr.port() & 0xff
    )
}

/// `EPRT |1|a.b.c.d|port|` or `EPRT |2|v6|port|`.
pub fn eprt_command(addr: SocketAddr) -> String {
    let proto = if addr.is_ipv4() { 1 } else { 2 };
    format!("EPRT |{proto}|{}|{}|", addr.ip(), addr.port())
}

/// Accepts one connection on `listener` within `timeout` (the accept runs on its own thread,
/// the caller waits on a channel with a deadline).
#[track_caller]
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> TcpStream {
    let l = listener.try_clone().expect("clone listener");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(l.accept());
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok((s, _))) => {
            set_timeouts(&s);
            s
        }
        Ok(Err(e)) => panic!("accept on the active-mode listener: {e}"),
        Err(_) => {
            panic!("the server did not connect to the active-mode listener within {timeout:?}")
        }
    }
}

/// One MLSx entry split into its facts and its name, with strict checks of RFC 3659 §7.2
/// framing: every fact is `name=value;`, then exactly one space, then the name.
pub fn parse_mlsx(line: &str) -> Result<(Vec<(String, String)>, String), String> {
    let space = line
        .find(' ')
        .ok_or_else(|| format!("no space before the name in {line:?}"))?;
    let (facts_part, rest) = line.split_at(space);
    let name = &rest[1..];
    if name.is_empty() {
        return Err(format!("empty name in {line:?}"));
    }
    let mut facts = Vec::new();
    if !facts_part.is_empty() {
        if !facts_part.ends_with(';') {
            return Err(format!("last fact not terminated by ';' in {line:?}"));
        }
        for fact in facts_part[..facts_part.len() - 1].split(';') {
            let (k, v) = fact
                .split_once('=')
                .ok_or_else(|| format!("fact {fact:?} without '=' in {line:?}"))?;
            if k.is_empty() || v.is_empty() {
                return Err(format!("empty fact name or value {fact:?} in {line:?}"));
            }
            facts.push((k.to_string(), v.to_string()));
        }
    }
    Ok((facts, name.to_string()))
}
