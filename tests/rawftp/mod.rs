//! A tiny raw-socket FTP control client for exact reply checks.
//!
//! suppaftp hides multi-line framing and some codes; these tests need every byte of a reply.
//! Every socket has read and write timeouts ([`SOCKET_TIMEOUT`]), and every failure panics with
//! the whole control-connection transcript so a failing test shows what was said.
//!
//! Every reply line is checked as it arrives: CRLF-terminated, UTF-8, and free of control bytes,
//! so client text can never be seen to forge or break a reply. Each test binary that uses it
//! declares `mod common;` first, then `mod rawftp;`.

// Each test binary uses a different subset of the client.
#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};

use crate::common::{Daemon, SOCKET_TIMEOUT};

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

/// A TCP connection to `to` from `local` (any port), e.g. from 127.0.0.2: another client, as far
/// as the daemon knows. Timeouts are set.
pub fn connect_from(local: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(local, 0).into())?;
    socket.connect_timeout(&to.into(), SOCKET_TIMEOUT)?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    Ok(stream)
}

/// Closes `stream` with a TCP RST instead of a FIN (SO_LINGER 0).
pub fn reset(stream: TcpStream) {
    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Whether `e` says the peer reset or aborted the connection.
pub fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

/// Reads until EOF or an error: what arrived, and how it ended (`Ok` for EOF).
pub fn drain(stream: &mut impl Read) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return (got, Err(e)),
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg)
}

impl Ctrl {
    /// Connects and reads the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Ctrl {
        Ctrl::greeted(tcp_connect(addr))
    }

    /// Connects from `local` (e.g. 127.0.0.2) and reads the 220 greeting.
    pub fn connect_from(local: IpAddr, addr: SocketAddr) -> Ctrl {
        let stream =
            connect_from(local, addr).unwrap_or_else(|e| panic!("connect {local} -> {addr}: {e}"));
        Ctrl::greeted(stream)
    }

    /// Connects without reading the greeting: for tests whose first reply may be a 421.
    pub fn ungreeted(addr: SocketAddr) -> Ctrl {
        Ctrl::wrap(tcp_connect(addr))
    }

    fn greeted(stream: TcpStream) -> Ctrl {
        let mut c = Ctrl::wrap(stream);
        c.expect_reply(220);
        c
    }

    fn wrap(stream: TcpStream) -> Ctrl {
        stream.set_nodelay(true).expect("nodelay");
        let writer = stream.try_clone().expect("clone control socket");
        Ctrl {
            reader: BufReader::new(stream),
            writer,
            transcript: Vec::new(),
        }
    }

    /// Connects, logs in with USER/PASS and switches to TYPE I.
    pub fn login(addr: SocketAddr, user: &str, pass: &str) -> Ctrl {
        let mut c = Ctrl::connect(addr);
        c.log_in(user, pass);
        c
    }

    /// [`Ctrl::login`] from `local` (e.g. 127.0.0.2): another client, as far as the daemon knows.
    pub fn login_from(local: IpAddr, addr: SocketAddr, user: &str, pass: &str) -> Ctrl {
        let mut c = Ctrl::connect_from(local, addr);
        c.log_in(user, pass);
        c
    }

    /// USER, PASS and TYPE I on a connected session.
    #[track_caller]
    pub fn log_in(&mut self, user: &str, pass: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {pass}"), 230);
        self.expect("TYPE I", 200);
    }

    /// Closes the control connection with a TCP RST (both descriptors go at once).
    pub fn reset(self) {
        let Ctrl { reader, writer, .. } = self;
        drop(reader);
        reset(writer);
    }

    /// True when the server has closed the connection (EOF, or a reset) instead of sending
    /// more; a byte that does arrive is lost.
    pub fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }

    /// Everything the server still sends until it closes the connection, and how it ended.
    pub fn drain(&mut self) -> (Vec<u8>, io::Result<()>) {
        drain(&mut self.reader)
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

    /// One reply line without its CRLF. Malformed framing or control bytes in a reply line are
    /// `InvalidData`: the server must never let client text forge or break a reply.
    fn try_read_line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        if self.reader.read_until(b'\n', &mut buf)? == 0 {
            return Err(io::Error::new(
                ErrorKind::UnexpectedEof,
                "control connection closed while a reply was expected",
            ));
        }
        let Some(body) = buf.strip_suffix(b"\r\n") else {
            return Err(invalid(format!(
                "reply line not terminated by CRLF: {:?}",
                String::from_utf8_lossy(&buf)
            )));
        };
        if let Some(b) = body.iter().find(|&&b| b < 0x20 || b == 0x7f) {
            return Err(invalid(format!(
                "control byte {b:#04x} inside a reply line: {:?}",
                String::from_utf8_lossy(body)
            )));
        }
        let line = String::from_utf8(body.to_vec())
            .map_err(|e| invalid(format!("reply line is not UTF-8: {e}")))?;
        self.transcript.push(format!("S: {line}"));
        Ok(line)
    }

    /// Reads one complete reply (RFC 959 §4.2 multi-line framing); a closed connection or a
    /// malformed reply is an error.
    pub fn try_reply(&mut self) -> io::Result<Resp> {
        let first = self.try_read_line()?;
        let code = match first.get(..3).and_then(|c| c.parse::<u16>().ok()) {
            Some(c) if (100..600).contains(&c) => c,
            _ => return Err(invalid(format!("reply line without a code: {first:?}"))),
        };
        let mut lines = vec![first.clone()];
        match first.as_bytes().get(3) {
            Some(b' ') => {}
            Some(b'-') => {
                let end = format!("{code} ");
                loop {
                    let line = self.try_read_line()?;
                    let done = line.starts_with(&end);
                    lines.push(line);
                    if done {
                        break;
                    }
                }
            }
            // "200" alone is legal but this server always sends text.
            _ => return Err(invalid(format!("bad separator after the code: {first:?}"))),
        }
        Ok(Resp { code, lines })
    }

    /// Reads one complete reply, failing the test if there is none or it is malformed.
    #[track_caller]
    pub fn reply(&mut self) -> Resp {
        match self.try_reply() {
            Ok(r) => r,
            Err(e) => self.fail(&format!("no well-formed reply: {e}")),
        }
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

impl Ctrl {
    /// PASV, then `command`; if the server opens the transfer (150) the data connection is made
    /// and `upload` is sent, or everything is read. Any reply is accepted: see [`Transfer::code`].
    #[track_caller]
    pub fn transfer(&mut self, command: &str, upload: Option<&[u8]>) -> Transfer {
        let data_addr = self.pasv_addr();
        let first = self.cmd(command);
        if first.code != 150 {
            return Transfer {
                first,
                data: Vec::new(),
                last: None,
            };
        }
        let mut data = tcp_connect(data_addr);
        let mut received = Vec::new();
        match upload {
            Some(bytes) => {
                data.write_all(bytes)
                    .unwrap_or_else(|e| self.fail(&format!("{command}: upload: {e}")));
                data.shutdown(Shutdown::Write).expect("shutdown data");
                // Wait for the server's close so the final reply is about a finished file.
                let _ = data.read_to_end(&mut received);
            }
            None => {
                data.read_to_end(&mut received)
                    .unwrap_or_else(|e| self.fail(&format!("{command}: download: {e}")));
            }
        }
        let last = self.reply();
        Transfer {
            first,
            data: received,
            last: Some(last),
        }
    }
}

/// A daemon with one user, and a session logged in as that user (TYPE I).
pub fn daemon_and_login(user: &str, pass: &str) -> (Daemon, Ctrl) {
    let d = Daemon::start(&[(user, pass)]);
    let c = Ctrl::login(d.addr(), user, pass);
    (d, c)
}

/// What [`Ctrl::transfer`] saw: the first reply, the data, and the final reply after a 150.
pub struct Transfer {
    pub first: Resp,
    pub data: Vec<u8>,
    pub last: Option<Resp>,
}

impl Transfer {
    /// The code that decides the outcome: the final reply after a 150, else the first.
    pub fn code(&self) -> u16 {
        self.last.as_ref().unwrap_or(&self.first).code
    }

    /// Every byte the client received: replies and data.
    pub fn everything(&self) -> Vec<u8> {
        let mut all = self.first.wire().into_bytes();
        all.extend_from_slice(&self.data);
        if let Some(l) = &self.last {
            all.extend_from_slice(l.wire().as_bytes());
        }
        all
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
