//! Hostile clients on loopback, against the real daemon.
//!
//! Every scenario starts its own `actorftpd` on a fresh temporary tree laid out like this:
//!
//! ```text
//! <base>/CANARY-parent.txt                       canaries in the parent area
//! <base>/UNSEEN-parent-marker
//! <base>/tree/users.toml                         (holds a canary comment too)
//! <base>/tree/CANARY-next-to-root.txt            canaries next to the root
//! <base>/tree/UNSEEN-tree-marker
//! <base>/tree/outside-dir/{CANARY-in-outside-dir.txt, UNSEEN-outside-dir-marker}
//! <base>/tree/outside-empty/
//! <base>/tree/srv/                               alice's root: decoys, and symlinks leading out
//! <base>/tree/srv2/{CANARY-sibling.txt, UNSEEN-sibling-marker}   bob's root, the sibling `srv2`
//! ```
//!
//! and ends with the same checks ([`Fixture::finish`]): a normal client still logs in and moves a
//! file byte-exact, and nothing outside alice's root changed. "Changed" is judged from metadata
//! that the test itself never disturbs (entries, kinds, sizes, inodes, link counts, modes, mtimes,
//! ctimes, and the atime of every file outside the root where the file system records reads),
//! then from the files' contents.
//!
//! Canary *contents* hold the token `CANARY SECRET`, and `UNSEEN-` names are never mentioned by
//! any client: finding either in a reply or in data received means something outside the root
//! was read or listed. No test sleeps: waits are for the server's answer with a deadline, or a
//! poll of an observable condition with a deadline.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, FileTimes};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use socket2::{Domain, SockRef, Socket, Type};
use tempfile::TempDir;

const ALICE: (&str, &str) = ("alice", "alice-pass");
const BOB: (&str, &str) = ("bob", "bob-pass");

/// How long any one reply, connect or data read may take before the test fails.
const IO_DEADLINE: Duration = Duration::from_secs(10);

/// Found in every canary's content; must never reach a client.
const SECRET: &str = "CANARY SECRET";
/// Prefix of names that exist outside the root and that no client ever mentions.
const UNSEEN: &str = "UNSEEN-";
/// Canary sizes (all distinct, below the ephemeral port range so no port number looks like one).
const CANARY_SIZES: [usize; 4] = [13_331, 17_171, 23_232, 29_292];
/// Canary atime (2001-01-01) and mtime (2002-02-02), UTC. atime < mtime makes a `relatime`
/// mount record the next read.
const CANARY_ATIME: u64 = 978_307_200;
const CANARY_MTIME: u64 = 1_012_608_000;
/// How the canary mtime shows in MDTM/MLSx and in LIST.
const CANARY_DATE_TOKENS: [&str; 2] = ["20020202", "Feb  2  2002"];
/// A line of the real /etc/passwd.
const PASSWD_TOKEN: &str = "root:x:0:0";

// ---------------------------------------------------------------------------------------------
// A raw control connection: bytes in, parsed replies out, every reply checked for framing.
// ---------------------------------------------------------------------------------------------

/// One reply: its code and its lines (without CRLF).
#[derive(Debug, Clone)]
struct Reply {
    code: u32,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        self.lines.join("\n")
    }
}

struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    /// Connects and reads the 220 greeting.
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect_timeout(&addr, IO_DEADLINE)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Raw::greeted(stream)
    }

    /// Connects from `local` (any port) and reads the 220 greeting.
    fn connect_from(local: IpAddr, addr: SocketAddr) -> Raw {
        let stream =
            connect_from(local, addr).unwrap_or_else(|e| panic!("connect {local} -> {addr}: {e}"));
        Raw::greeted(stream)
    }

    fn greeted(stream: TcpStream) -> Raw {
        let mut raw = Raw::new(stream);
        let hello = raw.reply();
        assert_eq!(hello.code, 220, "greeting: {hello:?}");
        raw
    }

    fn new(stream: TcpStream) -> Raw {
        stream.set_read_timeout(Some(IO_DEADLINE)).expect("timeout");
        stream
            .set_write_timeout(Some(IO_DEADLINE))
            .expect("timeout");
        let writer = stream.try_clone().expect("clone control socket");
        Raw {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// Closes the control connection with a TCP RST (both descriptors go at once).
    fn reset(self) {
        let Raw { reader, writer } = self;
        drop(reader);
        reset(writer);
    }

    fn login(addr: SocketAddr, (user, pass): (&str, &str)) -> Raw {
        let mut c = Raw::connect(addr);
        c.log_in(user, pass);
        c
    }

    fn log_in(&mut self, user: &str, pass: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {pass}"), 230);
        self.expect("TYPE I", 200);
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write {} bytes to control: {e}", bytes.len()));
    }

    fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\r\n").as_bytes());
    }

    /// Reads one reply. Malformed framing or control bytes in a reply are `InvalidData`: the
    /// server must never let client text forge or break a reply.
    fn try_reply(&mut self) -> io::Result<Reply> {
        let first = self.read_line()?;
        let code = reply_code_of(&first)?;
        let mut lines = vec![first[4..].to_owned()];
        if first.as_bytes()[3] == b'-' {
            loop {
                let line = self.read_line()?;
                let end = line.len() >= 4
                    && line.as_bytes()[3] == b' '
                    && reply_code_of(&line).ok() == Some(code);
                lines.push(if end { line[4..].to_owned() } else { line });
                if end {
                    break;
                }
            }
        }
        Ok(Reply { code, lines })
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut buf = Vec::new();
        let n = self.reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "control closed"));
        }
        let Some(body) = buf.strip_suffix(b"\r\n") else {
            return Err(invalid(format!("reply line not ended by CRLF: {buf:?}")));
        };
        if let Some(b) = body.iter().find(|&&b| b < 0x20 || b == 0x7f) {
            return Err(invalid(format!(
                "control byte {b:#04x} inside a reply line: {body:?}"
            )));
        }
        String::from_utf8(body.to_vec()).map_err(|_| invalid(format!("reply not UTF-8: {body:?}")))
    }

    #[track_caller]
    fn reply(&mut self) -> Reply {
        self.try_reply()
            .unwrap_or_else(|e| panic!("no well-formed reply: {e}"))
    }

    #[track_caller]
    fn cmd(&mut self, line: &str) -> Reply {
        self.send_line(line);
        self.try_reply()
            .unwrap_or_else(|e| panic!("{line:?}: no well-formed reply: {e}"))
    }

    #[track_caller]
    fn expect(&mut self, line: &str, code: u32) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} answered {r:?}");
        r
    }

    /// PASV; the address from the 227 reply.
    #[track_caller]
    fn pasv(&mut self) -> SocketAddr {
        let r = self.expect("PASV", 227);
        parse_227(&r.text()).unwrap_or_else(|| panic!("unparsable 227: {r:?}"))
    }

    /// PASV, then `command`; if the server opens the transfer (150) the data connection is made
    /// from 127.0.0.1 and `upload` is sent, or everything is read.
    #[track_caller]
    fn transfer(&mut self, command: &str, upload: Option<&[u8]>) -> Transfer {
        let data_addr = self.pasv();
        let first = self.cmd(command);
        if first.code != 150 {
            return Transfer {
                first,
                data: Vec::new(),
                last: None,
            };
        }
        let mut data = TcpStream::connect_timeout(&data_addr, IO_DEADLINE)
            .unwrap_or_else(|e| panic!("{command}: data connect to {data_addr}: {e}"));
        data.set_read_timeout(Some(IO_DEADLINE)).expect("timeout");
        data.set_write_timeout(Some(IO_DEADLINE)).expect("timeout");
        let mut received = Vec::new();
        match upload {
            Some(bytes) => {
                data.write_all(bytes)
                    .unwrap_or_else(|e| panic!("{command}: upload: {e}"));
                data.shutdown(Shutdown::Write).expect("shutdown data");
                // Wait for the server's close so the 226 is about a finished file.
                let _ = data.read_to_end(&mut received);
            }
            None => {
                data.read_to_end(&mut received)
                    .unwrap_or_else(|e| panic!("{command}: download: {e}"));
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

struct Transfer {
    first: Reply,
    data: Vec<u8>,
    last: Option<Reply>,
}

impl Transfer {
    /// The code that decides the outcome: the final reply after a 150, else the first.
    fn code(&self) -> u32 {
        self.last.as_ref().unwrap_or(&self.first).code
    }

    fn everything(&self) -> Vec<u8> {
        let mut all = self.first.text().into_bytes();
        all.extend_from_slice(&self.data);
        if let Some(l) = &self.last {
            all.extend_from_slice(l.text().as_bytes());
        }
        all
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg)
}

fn reply_code_of(line: &str) -> io::Result<u32> {
    let b = line.as_bytes();
    if b.len() < 4 || !b[..3].iter().all(u8::is_ascii_digit) || !matches!(b[3], b' ' | b'-') {
        return Err(invalid(format!("not a reply line: {line:?}")));
    }
    Ok(line[..3].parse().expect("three digits"))
}

/// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`.
fn parse_227(text: &str) -> Option<SocketAddr> {
    let inner = text.split('(').nth(1)?.split(')').next()?;
    let n: Vec<u8> = inner
        .split(',')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    if n.len() != 6 {
        return None;
    }
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    Some(SocketAddr::from((
        ip,
        u16::from(n[4]) << 8 | u16::from(n[5]),
    )))
}

/// A TCP connection to `to` from `local` (any port), e.g. 127.0.0.2.
fn connect_from(local: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(local, 0).into())?;
    socket.connect_timeout(&to.into(), IO_DEADLINE)?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(IO_DEADLINE))?;
    stream.set_write_timeout(Some(IO_DEADLINE))?;
    Ok(stream)
}

/// Closes `stream` with a TCP RST instead of a FIN (SO_LINGER 0).
fn reset(stream: TcpStream) {
    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// Whether a connection to `addr` is refused (nothing listens there any more).
fn refused(addr: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr, IO_DEADLINE),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

/// Polls `cond` until it holds, failing the test after `timeout`. The short pause between
/// polls only leaves the CPU to the daemon; no outcome depends on its length.
#[track_caller]
fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting until {what}"
        );
        thread::park_timeout(Duration::from_millis(10));
    }
}

/// Reads until EOF or an error; what arrived and whether it ended by reset/EOF (not timeout).
fn drain(stream: &mut impl Read) -> (Vec<u8>, io::Result<()>) {
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

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe
    )
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

// ---------------------------------------------------------------------------------------------
// The fixture: the tree, the daemon, and the "still serves, nothing outside touched" checks.
// ---------------------------------------------------------------------------------------------

/// Metadata of one entry outside the root, as far as the test can read it without changing it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Meta {
    kind: &'static str,
    len: u64,
    ino: u64,
    nlink: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// Regular files only (reading a directory to walk it updates its own atime).
    atime: Option<(i64, i64)>,
    link: Option<PathBuf>,
}

struct Fixture {
    daemon: Daemon,
    base: PathBuf,
    tree: PathBuf,
    root: PathBuf,
    users_file: PathBuf,
    /// Every regular file outside the root and its content.
    contents: BTreeMap<PathBuf, Vec<u8>>,
    links: Vec<(&'static str, PathBuf)>,
    before: BTreeMap<PathBuf, Meta>,
    atime_recorded: bool,
    health_runs: AtomicUsize,
}

fn canary_bytes(tag: &str, size: usize) -> Vec<u8> {
    format!("{SECRET} {tag} ")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(size)
        .collect()
}

fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn epoch(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Fixture {
    /// Builds the tree and starts the daemon with `extra` options.
    fn start(extra: &[&str]) -> Fixture {
        let tmp = TempDir::new().expect("temporary directory");
        let base = tmp.path().to_path_buf();
        let tree = base.join("tree");
        let root = tree.join("srv");
        let sibling = tree.join("srv2");
        for dir in [&root, &sibling, &tree.join("outside-empty")] {
            fs::create_dir_all(dir).expect("create directory");
        }
        let mut contents = BTreeMap::new();
        let mut put_file = |rel: &str, data: Vec<u8>| {
            write_file(&base.join(rel), &data);
            contents.insert(base.join(rel), data);
        };
        put_file("CANARY-parent.txt", canary_bytes("parent", CANARY_SIZES[0]));
        put_file("UNSEEN-parent-marker", canary_bytes("parent marker", 77));
        put_file(
            "tree/CANARY-next-to-root.txt",
            canary_bytes("next to root", CANARY_SIZES[1]),
        );
        put_file("tree/UNSEEN-tree-marker", canary_bytes("tree marker", 78));
        put_file(
            "tree/outside-dir/CANARY-in-outside-dir.txt",
            canary_bytes("outside dir", CANARY_SIZES[2]),
        );
        put_file(
            "tree/outside-dir/UNSEEN-outside-dir-marker",
            canary_bytes("outside dir marker", 79),
        );
        put_file(
            "tree/srv2/CANARY-sibling.txt",
            canary_bytes("sibling root", CANARY_SIZES[3]),
        );
        put_file(
            "tree/srv2/UNSEEN-sibling-marker",
            canary_bytes("sibling marker", 80),
        );
        let users = format!(
            "# {SECRET} users file, {UNSEEN}users-file-marker\n\
             [[user]]\nname = \"{}\"\npassword_hash = \"{}\"\nroot = {}\n\n\
             [[user]]\nname = \"{}\"\npassword_hash = \"{}\"\nroot = {}\n",
            ALICE.0,
            actorftpd::auth::hash_password(ALICE.1).expect("hash"),
            toml_str(root.to_str().expect("UTF-8 temp path")),
            BOB.0,
            actorftpd::auth::hash_password(BOB.1).expect("hash"),
            toml_str(sibling.to_str().expect("UTF-8 temp path")),
        );
        put_file("tree/users.toml", users.into_bytes());
        let users_file = tree.join("users.toml");

        let links: Vec<(&'static str, PathBuf)> = vec![
            ("link-file", "../CANARY-next-to-root.txt".into()),
            ("link-file-abs", tree.join("CANARY-next-to-root.txt")),
            ("link-dir", "../outside-dir".into()),
            ("link-dir-abs", tree.join("outside-dir")),
            ("link-sibling", "../srv2".into()),
            ("link-parent", "../..".into()),
            ("link-empty", "../outside-empty".into()),
            // Dangling: following them with O_CREAT would create a file outside.
            ("link-dangling", "../created-through-dangling-link".into()),
            ("link-dangling-abs", tree.join("created-through-abs-link")),
        ];

        let mut args: Vec<OsString> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--users".into(),
            users_file.clone().into(),
        ];
        if std::env::var_os("ACTORFTPD_TEST_LOG").is_none() {
            args.push("-q".into());
        }
        args.extend(extra.iter().map(OsString::from));
        let table = vec![
            (ALICE.0.to_owned(), ALICE.1.to_owned(), root.clone()),
            (BOB.0.to_owned(), BOB.1.to_owned(), sibling.clone()),
        ];
        let daemon = Daemon::start_custom(tmp, &args, table);

        // The daemon has read its users file: from now on nothing outside the root may be read.
        let times = FileTimes::new()
            .set_accessed(epoch(CANARY_ATIME))
            .set_modified(epoch(CANARY_MTIME));
        for path in contents.keys() {
            fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_times(times))
                .unwrap_or_else(|e| panic!("set times of {}: {e}", path.display()));
        }
        let atime_recorded = atime_is_recorded(&base);

        let mut fx = Fixture {
            daemon,
            base,
            tree,
            root,
            users_file,
            contents,
            links,
            before: BTreeMap::new(),
            atime_recorded,
            health_runs: AtomicUsize::new(0),
        };
        fx.prepare_root();
        fx.before = fx.snapshot();
        fx
    }

    fn addr(&self) -> SocketAddr {
        self.daemon.addr()
    }

    fn root(&self) -> &Path {
        &self.root
    }

    /// (Re)creates the root's decoys and symlinks, whatever a previous command did to them.
    fn prepare_root(&self) {
        for dir in ["sub", "etc"] {
            ensure_real_dir(&self.root.join(dir));
        }
        ensure_file(
            &self.root.join("hello.txt"),
            b"hello from inside the root\n",
        );
        ensure_file(
            &self.root.join("etc/passwd"),
            b"decoy: <root>/etc/passwd, inside the jail\n",
        );
        for (name, target) in &self.links {
            let path = self.root.join(name);
            let ok = fs::read_link(&path).is_ok_and(|t| &t == target);
            if !ok {
                remove_any(&path);
                symlink(target, &path)
                    .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
            }
        }
    }

    /// Metadata of everything under `base` except the inside of alice's root.
    fn snapshot(&self) -> BTreeMap<PathBuf, Meta> {
        let mut out = BTreeMap::new();
        self.walk(&self.base, &mut out);
        out
    }

    fn walk(&self, dir: &Path, out: &mut BTreeMap<PathBuf, Meta>) {
        let m = fs::symlink_metadata(dir).expect("stat directory");
        out.insert(dir.to_path_buf(), meta_of(&m, None));
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            let m = fs::symlink_metadata(&path).expect("stat entry");
            if path == self.root {
                // Only its identity: the root's own times change with everything inside it.
                let mut id = meta_of(&m, None);
                (id.len, id.nlink, id.mtime, id.ctime) = (0, 0, (0, 0), (0, 0));
                out.insert(path, id);
            } else if m.is_dir() {
                self.walk(&path, out);
            } else {
                let link = m.is_symlink().then(|| fs::read_link(&path).expect("link"));
                out.insert(path, meta_of(&m, link));
            }
        }
    }

    /// Nothing outside the root was created, removed, renamed, written or (where the file
    /// system records atime) read.
    #[track_caller]
    fn assert_outside_untouched(&self, what: &str) {
        let now = self.snapshot();
        if now == self.before {
            return;
        }
        let mut diff = Vec::new();
        for (path, old) in &self.before {
            match now.get(path) {
                None => diff.push(format!("removed: {}", path.display())),
                Some(new) if new != old => diff.push(format!(
                    "changed: {}\n  was {old:?}\n  now {new:?}",
                    path.display()
                )),
                Some(_) => {}
            }
        }
        for path in now.keys().filter(|p| !self.before.contains_key(*p)) {
            diff.push(format!("created: {}", path.display()));
        }
        panic!(
            "{what}: something outside the user's root changed:\n{}",
            diff.join("\n")
        );
    }

    /// A normal client logs in, uploads and downloads a file byte-exact (sha256), and deletes it.
    #[track_caller]
    fn assert_serves_normal_client(&self, what: &str) {
        let n = self.health_runs.fetch_add(1, Ordering::SeqCst);
        let data = random_bytes_seeded(0xA11CE + n as u64, 300 * KIB + n);
        let name = format!("health-check-{n}.bin");
        let mut ftp = self.daemon.login(ALICE.0);
        put(&mut ftp, &name, &data);
        assert_eq!(
            file_sha256(&self.root.join(&name)),
            sha256_hex(&data),
            "{what}: upload stored wrongly"
        );
        let back = get(&mut ftp, &name);
        assert_eq!(
            sha256_hex(&back),
            sha256_hex(&data),
            "{what}: download differs"
        );
        ftp.rm(&name)
            .unwrap_or_else(|e| panic!("{what}: DELE {name}: {e}"));
        ftp.quit().unwrap_or_else(|e| panic!("{what}: QUIT: {e}"));
    }

    /// The end of every scenario: still serving, nothing outside touched, canary bytes intact.
    #[track_caller]
    fn finish(self, what: &str) {
        self.assert_serves_normal_client(what);
        self.assert_outside_untouched(what);
        // Reading the canaries updates their atime, so this comes last.
        for (path, want) in &self.contents {
            let got = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            assert!(
                &got == want,
                "{what}: content of {} changed",
                path.display()
            );
        }
        if !self.atime_recorded {
            let _ = writeln!(
                io::stderr(),
                "note: this file system does not record atime; reads outside the root were \
                 checked through the data and replies only"
            );
        }
    }

    /// Finds anything from outside the root in bytes a client received.
    #[track_caller]
    fn assert_no_leak(&self, what: &str, seen: &[u8]) {
        for token in [SECRET, UNSEEN, PASSWD_TOKEN]
            .into_iter()
            .chain(CANARY_DATE_TOKENS)
        {
            assert!(
                !contains(seen, token),
                "{what}: the client received {token:?} from outside the root:\n{}",
                String::from_utf8_lossy(seen)
            );
        }
        for size in CANARY_SIZES {
            for shape in [format!(" {size} "), format!("size={size};")] {
                assert!(
                    !contains(seen, &shape),
                    "{what}: a canary's size {size} was shown:\n{}",
                    String::from_utf8_lossy(seen)
                );
            }
        }
    }

    /// The daemon's process id (found by its unique users-file argument).
    fn daemon_pid(&self) -> u32 {
        let needle = self.users_file.to_str().expect("UTF-8 path").as_bytes();
        for entry in fs::read_dir("/proc").expect("/proc") {
            let entry = entry.expect("proc entry");
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let is_daemon = cmdline.split(|&b| b == 0).any(|arg| arg == needle)
                && cmdline
                    .split(|&b| b == 0)
                    .next()
                    .is_some_and(|exe| exe.ends_with(b"actorftpd"));
            if is_daemon {
                return pid;
            }
        }
        panic!("daemon process not found in /proc");
    }
}

fn meta_of(m: &fs::Metadata, link: Option<PathBuf>) -> Meta {
    let kind = if m.is_symlink() {
        "symlink"
    } else if m.is_dir() {
        "dir"
    } else if m.is_file() {
        "file"
    } else {
        "other"
    };
    Meta {
        kind,
        len: m.len(),
        ino: m.ino(),
        nlink: m.nlink(),
        mode: m.mode(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        atime: m.is_file().then(|| (m.atime(), m.atime_nsec())),
        link,
    }
}

/// Whether reading a file whose atime is older than its mtime updates the atime here.
fn atime_is_recorded(base: &Path) -> bool {
    let probe = base.join("atime-probe");
    fs::write(&probe, b"probe").expect("write probe");
    let f = fs::File::options().write(true).open(&probe).expect("probe");
    f.set_times(
        FileTimes::new()
            .set_accessed(epoch(CANARY_ATIME))
            .set_modified(epoch(CANARY_MTIME)),
    )
    .expect("set probe times");
    drop(f);
    let _ = fs::read(&probe).expect("read probe");
    let atime = fs::metadata(&probe).expect("stat probe").atime();
    fs::remove_file(&probe).expect("remove probe");
    atime != CANARY_ATIME as i64
}

fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).expect("remove dir"),
        Ok(_) => fs::remove_file(path).expect("remove file"),
        Err(_) => {}
    }
}

fn ensure_real_dir(path: &Path) {
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        remove_any(path);
        fs::create_dir(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    }
}

fn ensure_file(path: &Path, data: &[u8]) {
    let ok = fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && fs::read(path).is_ok_and(|d| d == data);
    if !ok {
        remove_any(path);
        fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Connection churn.
// ---------------------------------------------------------------------------------------------

const CHURN_CONNECTIONS: usize = 2000;
const CHURN_IN_FLIGHT: usize = 64;

/// One abrupt client; `i` picks how it leaves.
fn abrupt_client(addr: SocketAddr, i: usize) -> io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, IO_DEADLINE)?;
    s.set_read_timeout(Some(IO_DEADLINE))?;
    s.set_write_timeout(Some(IO_DEADLINE))?;
    let mut greeting = [0u8; 64];
    match i % 7 {
        // Gone right after connect: FIN, or RST.
        0 => drop(s),
        1 => reset(s),
        // After the 220.
        2 | 3 => {
            let _ = s.read(&mut greeting)?;
            if i % 7 == 2 {
                drop(s)
            } else {
                reset(s)
            }
        }
        // Mid-line (the server sees a last line without its ending), FIN.
        4 => {
            let _ = s.read(&mut greeting)?;
            s.write_all(b"USER ali")?;
            drop(s);
        }
        // Pipelined commands and half a line, then RST with the replies unread.
        5 => {
            let _ = s.read(&mut greeting)?;
            s.write_all(b"NOOP\r\nSYST\r\nFEAT\r\nUSER alice\r\nPASS alice-p")?;
            reset(s);
        }
        // Logged in with a passive port open, then RST.
        _ => {
            s.write_all(b"USER alice\r\nPASS alice-pass\r\nPASV\r\n")?;
            let mut seen = Vec::new();
            while !contains(&seen, "\r\n227 ") {
                let n = s.read(&mut greeting)?;
                if n == 0 {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "closed before 227",
                    ));
                }
                seen.extend_from_slice(&greeting[..n]);
            }
            reset(s);
        }
    }
    Ok(())
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(usize::MAX)
}

#[test]
fn two_thousand_abruptly_dropped_connections_leave_the_daemon_serving_without_leaks() {
    // 64 clients in flight from one address: above the default per-IP cap (50), which has its
    // own test in tests/hardening.rs.
    let fx = Fixture::start(&["--max-sessions-per-ip", "1000"]);
    fx.assert_serves_normal_client("before the churn");
    let pid = fx.daemon_pid();
    let baseline = open_fds(pid);
    let addr = fx.addr();

    let next = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..CHURN_IN_FLIGHT {
        let next = Arc::clone(&next);
        let done_tx = done_tx.clone();
        thread::spawn(move || {
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= CHURN_CONNECTIONS {
                    break;
                }
                match std::panic::catch_unwind(|| abrupt_client(addr, i)) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failures.push(format!("client {i}: {e}")),
                    Err(_) => failures.push(format!("client {i}: panicked")),
                }
            }
            let _ = done_tx.send(failures);
        });
    }
    drop(done_tx);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut failures = Vec::new();
    for _ in 0..CHURN_IN_FLIGHT {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = done_rx
            .recv_timeout(left)
            .expect("2,000 abrupt connections did not finish within 40 s");
        failures.extend(f);
    }
    // Connects and greetings must all work: an abrupt client is never allowed to hurt the next.
    assert!(
        failures.is_empty(),
        "{} of {CHURN_CONNECTIONS} churn clients failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );

    // Every session has let go of its sockets and passive listeners.
    wait_until(
        Duration::from_secs(15),
        "the daemon's open descriptors are back near the baseline",
        || open_fds(pid) <= baseline + 4,
    );
    fx.finish("after 2,000 abrupt connections");
}

// ---------------------------------------------------------------------------------------------
// 2. Garbage on the control connection.
// ---------------------------------------------------------------------------------------------

/// Sends the pieces of `junk` (one write each), then a NOOP, and reads up to the NOOP's 200:
/// every reply before it must have a code in `allowed`, and the connection must stay open.
#[track_caller]
fn garbage_then_noop(c: &mut Raw, what: &str, junk: &[Vec<u8>], allowed: &[u32]) -> usize {
    for piece in junk {
        c.send(piece);
    }
    c.send(b"NOOP\r\n");
    let mut answered = 0;
    loop {
        let r = c
            .try_reply()
            .unwrap_or_else(|e| panic!("{what}: connection lost or reply broken: {e}"));
        if r.code == 200 && r.text() == "NOOP ok" {
            return answered;
        }
        assert!(
            allowed.contains(&r.code),
            "{what}: reply {r:?}, expected one of {allowed:?}"
        );
        answered += 1;
    }
}

/// A garbage case: what it is, the writes that make it up, and the reply codes allowed for it.
type Garbage = (&'static str, Vec<Vec<u8>>, &'static [u32]);

fn garbage_cases() -> Vec<Garbage> {
    const SYNTAX: &[u32] = &[500, 501];
    let mut random = random_bytes_seeded(0xBAD_5EED, 16 * KIB);
    // IAC (0xFF) has its own cases; in random data it could open a subnegotiation that swallows
    // the NOOP that ends the case.
    random.retain(|&b| b != 0xFF);
    random.extend_from_slice(b"\r\n");
    let high: Vec<u8> = (0x80..0xFFu8).chain(*b"\r\n").collect();
    let one = |b: &[u8]| vec![b.to_vec()];
    vec![
        ("random bytes", vec![random], SYNTAX),
        ("NUL line", one(b"\0\0\0\r\n"), SYNTAX),
        ("NUL inside the verb", one(b"NO\0OP\r\n"), SYNTAX),
        ("NUL verb with argument", one(b"\0 x\r\n"), SYNTAX),
        ("lone CRs", one(b"\r\r\r"), SYNTAX),
        ("CR inside the verb", one(b"NO\rOP x\r\n"), SYNTAX),
        // "RETR a" is a valid command: 425 (no PASV) logged in, 530 before login.
        (
            "CR inside an argument",
            one(b"RETR a\rb\r\n"),
            &[425, 500, 501, 530],
        ),
        ("LF CR order", one(b"\n\r\n\rXX\n\r"), SYNTAX),
        ("control bytes", one(b"\x01\x02\x1b[31m\x7f\r\n"), SYNTAX),
        ("long verb", one(b"ABCDEFGHIJKLMNOP qrs\r\n"), SYNTAX),
        ("spaces only", one(b"      \r\n"), SYNTAX),
        ("tab before verb", one(b"\tNOOP\r\n"), SYNTAX),
        ("high bytes", vec![high], SYNTAX),
        (
            "IAC IP IAC DM then junk",
            one(b"\xff\xf4\xff\xf2ZZZZ\r\n"),
            SYNTAX,
        ),
        (
            "IAC WILL/DO",
            one(b"\xff\xfb\x01\xff\xfd\x03QQQ\r\n"),
            SYNTAX,
        ),
        (
            "IAC SB ... IAC SE across a line end",
            one(b"\xff\xfa\x18junk\r\njunk\xff\xf0XYZ\r\n"),
            SYNTAX,
        ),
        ("IAC IAC in argument", one(b"RETR \xff\xff\r\n"), SYNTAX),
        ("IAC NOP inside the verb", one(b"QW\xff\xf1ER\r\n"), SYNTAX),
        (
            "IAC split across writes",
            vec![b"AB\xff".to_vec(), b"\xf4CD\r\n".to_vec()],
            SYNTAX,
        ),
        (
            "IAC SB split across writes",
            vec![
                b"GH\xff\xfa".to_vec(),
                b"\x18x\xff".to_vec(),
                b"\xf0IJ\r\n".to_vec(),
            ],
            SYNTAX,
        ),
        (
            "CR at the end of a write, LF in the next",
            vec![b"EFGH\r".to_vec(), b"\nIJ\r\n".to_vec()],
            SYNTAX,
        ),
        (
            "UTF-8 split across writes",
            vec![b"RETR \xc3".to_vec(), b"\x28\r\n".to_vec()],
            SYNTAX,
        ),
        ("invalid UTF-8 argument", one(b"RETR \xc3\x28\r\n"), SYNTAX),
        (
            "overlong UTF-8 slash",
            one(b"CWD \xc0\xaf\xc0\xae\r\n"),
            SYNTAX,
        ),
        ("UTF-8 surrogate", one(b"MKD \xed\xa0\x80\r\n"), SYNTAX),
        ("lone continuation byte", one(b"USER \x80\r\n"), SYNTAX),
        ("invalid UTF-8 verb", one(b"\xc3\xa9TR x\r\n"), SYNTAX),
        (
            "truncated UTF-8 at end",
            one(b"DELE abc\xe2\x82\r\n"),
            SYNTAX,
        ),
        ("bad PORT", one(b"PORT 1,2,3\r\n"), SYNTAX),
        ("bad REST", one(b"REST -5\r\n"), SYNTAX),
        ("bad TYPE", one(b"TYPE Z\r\n"), SYNTAX),
    ]
}

#[test]
fn garbage_lines_get_500_or_501_and_never_cost_the_connection() {
    let fx = Fixture::start(&[]);
    // One client logged in, one not: parse errors are answered the same way before login.
    let mut logged_in = Raw::login(fx.addr(), ALICE);
    let mut anonymous = Raw::connect(fx.addr());
    for (what, junk, allowed) in garbage_cases() {
        let answered = garbage_then_noop(&mut logged_in, what, &junk, allowed);
        assert!(answered > 0, "{what}: no reply at all to the garbage");
        garbage_then_noop(
            &mut anonymous,
            &format!("{what} (before login)"),
            &junk,
            allowed,
        );
    }
    // An argument with a NUL byte is valid syntax (RFC 959 <string> is any char but CR/LF); as
    // a file name it is refused.
    let r = logged_in.cmd("CWD a\0b");
    assert!(matches!(r.code, 501 | 553), "CWD with NUL: {r:?}");
    let r = logged_in.cmd("MKD x\0y");
    assert!(matches!(r.code, 501 | 553), "MKD with NUL: {r:?}");

    // Both sessions still work in full after all of it.
    let data = random_bytes(70_001);
    let up = logged_in.transfer("STOR after-garbage.bin", Some(&data));
    assert_eq!(up.code(), 226, "STOR after garbage");
    let down = logged_in.transfer("RETR after-garbage.bin", None);
    assert_eq!(down.code(), 226, "RETR after garbage");
    assert_eq!(sha256_hex(&down.data), sha256_hex(&data));
    anonymous.log_in(ALICE.0, ALICE.1);
    anonymous.expect("PWD", 257);
    logged_in.expect("QUIT", 221);
    anonymous.expect("QUIT", 221);
    fx.finish("after garbage lines");
}

// ---------------------------------------------------------------------------------------------
// 3. Over-long lines.
// ---------------------------------------------------------------------------------------------

/// Sends one over-long line, 9,000 bytes: over the 8,192-byte limit, under twice it.
fn send_long_line(c: &mut Raw) {
    let mut line = b"RETR ".to_vec();
    line.resize(9_000, b'A');
    line.extend_from_slice(b"\r\n");
    c.send(&line);
}

#[test]
fn repeated_over_long_lines_close_only_that_connection_after_the_limit() {
    let fx = Fixture::start(&[]);
    let mut hog = Raw::login(fx.addr(), ALICE);
    let mut other = Raw::login(fx.addr(), BOB);
    // The default limit tolerates three over-long lines, each answered 500; the next one ends
    // the connection with 421. The other client is served between every step.
    for i in 1..=3 {
        send_long_line(&mut hog);
        let r = hog.reply();
        assert_eq!(r.code, 500, "over-long line {i}: {r:?}");
        hog.expect("NOOP", 200);
        other.expect("NOOP", 200);
    }
    let listing = other.transfer("LIST", None);
    assert_eq!(listing.code(), 226, "the other client lists meanwhile");
    send_long_line(&mut hog);
    match hog.try_reply() {
        Ok(r) => {
            assert_eq!(r.code, 421, "fourth over-long line: {r:?}");
            let (rest, end) = drain(&mut hog.reader);
            assert!(rest.is_empty(), "bytes after 421: {rest:?}");
            assert!(
                end.as_ref().map_or_else(is_reset, |_| true),
                "connection not closed after 421: {end:?}"
            );
        }
        Err(e) => assert!(is_reset(&e), "fourth over-long line: {e}"),
    }
    other.expect("NOOP", 200);
    other.expect("QUIT", 221);
    fx.finish("after repeated over-long lines");
}

#[test]
fn an_endless_line_is_cut_off_with_memory_bounded_while_others_are_served() {
    let fx = Fixture::start(&[]);
    let mut hog = Raw::login(fx.addr(), ALICE);
    let mut writer = hog.writer.try_clone().expect("clone");
    // 64 MiB without a line ending: the server must drop the bytes and close the connection,
    // not buffer the line or keep reading forever.
    const ENDLESS: usize = 64 * MIB;
    let pump = thread::spawn(move || {
        let chunk = vec![b'x'; 64 * KIB];
        let mut sent = 0;
        while sent < ENDLESS {
            match writer.write(&chunk) {
                Ok(n) => sent += n,
                Err(e) => return (sent, Some(e)),
            }
        }
        (sent, None)
    });
    let mut other = Raw::login(fx.addr(), BOB);
    other.expect("NOOP", 200);
    let mut codes = Vec::new();
    loop {
        match hog.try_reply() {
            Ok(r) => codes.push(r.code),
            Err(e) => {
                assert!(
                    is_reset(&e) || e.kind() == ErrorKind::UnexpectedEof,
                    "endless line: the connection was not closed ({e}); replies {codes:?}"
                );
                break;
            }
        }
    }
    assert!(
        codes.iter().all(|&c| c == 500 || c == 421) && codes.len() <= 4,
        "endless line: replies {codes:?}"
    );
    let (sent, err) = pump.join().expect("writer thread");
    assert!(
        sent < ENDLESS && err.is_some(),
        "the server kept reading an endless line: {sent} bytes accepted, error {err:?}"
    );
    other.expect("NOOP", 200);
    let listing = other.transfer("LIST", None);
    assert_eq!(listing.code(), 226);
    fx.finish("after an endless line");
}

/// The brief's rule: a 1 MB line is one over-long line, answered 500, and the session carries
/// on with the next command; only "long lines that keep coming" close it.
#[test]
fn one_megabyte_line_is_answered_500_and_the_next_command_is_served() {
    let fx = Fixture::start(&[]);
    let mut c = Raw::login(fx.addr(), ALICE);
    let mut writer = c.writer.try_clone().expect("clone");
    let pump = thread::spawn(move || {
        let mut line = b"RETR ".to_vec();
        line.resize(MIB, b'A');
        let r = writer.write_all(&line);
        let r2 = writer.write_all(b"\r\nNOOP\r\n");
        r.and(r2)
    });
    let first = c.reply();
    assert_eq!(first.code, 500, "the 1 MB line: {first:?}");
    let next = c
        .try_reply()
        .unwrap_or_else(|e| panic!("after one 1 MB line the connection is gone: {e}"));
    assert_eq!(
        (next.code, next.text().as_str()),
        (200, "NOOP ok"),
        "after one 1 MB line the NOOP is answered"
    );
    pump.join()
        .expect("writer")
        .expect("the whole 1 MB line and the NOOP were accepted");
    fx.finish("after one 1 MB line");
}

// ---------------------------------------------------------------------------------------------
// 4. A client vanishing in the middle of an upload.
// ---------------------------------------------------------------------------------------------

fn temp_uploads(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .expect("read root")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".actorftpd-upload-") && n.ends_with(".part"))
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Vanish {
    /// Control RST, then data RST.
    ResetBoth,
    /// Control FIN; the client keeps pushing data until the server cuts the data connection.
    ControlGoneDataFlowing,
    /// Data RST; control FIN after the server's 426.
    DataResetFirst,
    /// Control RST after the 150, before any data connection.
    BeforeDataConnection,
}

#[test]
fn client_vanishing_mid_upload_leaves_no_partial_file_and_no_temp_file() {
    let fx = Fixture::start(&[]);
    let old = random_bytes_seeded(41, 200 * KIB + 3);
    write_file(&fx.root().join("victim.bin"), &old);
    let variants = [
        Vanish::ResetBoth,
        Vanish::ControlGoneDataFlowing,
        Vanish::DataResetFirst,
        Vanish::BeforeDataConnection,
    ];
    let chunk = random_bytes_seeded(42, 256 * KIB);
    for (i, variant) in variants.into_iter().enumerate() {
        for name in ["victim.bin".to_owned(), format!("fresh-{i}.bin")] {
            let what = format!("{variant:?} during STOR {name}");
            let mut c = Raw::login(fx.addr(), ALICE);
            let data_addr = c.pasv();
            let r = c.cmd(&format!("STOR {name}"));
            assert_eq!(r.code, 150, "{what}: {r:?}");
            // The upload is under way, under a temporary name.
            assert_eq!(temp_uploads(fx.root()).len(), 1, "{what}: no temp file");
            if let Vanish::BeforeDataConnection = variant {
                c.reset();
            } else {
                let mut data =
                    TcpStream::connect_timeout(&data_addr, IO_DEADLINE).expect("data connect");
                data.set_write_timeout(Some(IO_DEADLINE)).expect("timeout");
                // 4 MiB: more than the server's 1 MiB copy buffer, so bytes reach the temp file.
                for _ in 0..16 {
                    data.write_all(&chunk).expect("upload chunk");
                }
                match variant {
                    Vanish::ResetBoth => {
                        c.reset();
                        reset(data);
                    }
                    Vanish::ControlGoneDataFlowing => {
                        c.writer.shutdown(Shutdown::Both).expect("close control");
                        drop(c);
                        // Only the server can end this: it must abort the transfer itself.
                        let deadline = Instant::now() + IO_DEADLINE;
                        let cut = loop {
                            if let Err(e) = data.write_all(&chunk) {
                                break e;
                            }
                            assert!(
                                Instant::now() < deadline,
                                "{what}: the server kept receiving after the client left"
                            );
                        };
                        assert!(is_reset(&cut), "{what}: data write failed with {cut}");
                        reset(data);
                    }
                    Vanish::DataResetFirst => {
                        reset(data);
                        let r = c.reply();
                        assert_eq!(r.code, 426, "{what}: after the data reset: {r:?}");
                        drop(c);
                    }
                    Vanish::BeforeDataConnection => unreachable!(),
                }
            }
            wait_until(
                IO_DEADLINE,
                &format!("{what}: the server removed its temp file"),
                || temp_uploads(fx.root()).is_empty(),
            );
            assert_eq!(
                fs::read(fx.root().join("victim.bin")).expect("victim.bin is still there"),
                old,
                "{what}: the older victim.bin was touched"
            );
            assert!(
                !fx.root().join(format!("fresh-{i}.bin")).exists(),
                "{what}: a partial upload appeared under its final name"
            );
        }
    }
    fx.finish("after clients vanished mid-upload");
}

// ---------------------------------------------------------------------------------------------
// 5. A passive port nobody connects to.
// ---------------------------------------------------------------------------------------------

#[test]
fn passive_port_never_connected_expires_and_the_session_carries_on() {
    let fx = Fixture::start(&["--data-timeout", "1"]);
    let mut c = Raw::login(fx.addr(), ALICE);
    let p1 = c.pasv();
    c.expect("NOOP", 200);
    c.expect("PWD", 257);
    // A second PASV replaces the first, whose port is closed at once.
    let p2 = c.pasv();
    if p2 != p1 {
        assert!(refused(p1), "the replaced passive port {p1} still accepts");
    }
    // A transfer on a port nobody connects to: 150, then 425 after the data timeout.
    let r = c.cmd("LIST");
    assert_eq!(r.code, 150, "LIST: {r:?}");
    let r = c.reply();
    assert_eq!(r.code, 425, "LIST without a data connection: {r:?}");
    c.expect("NOOP", 200);

    // An unused passive port expires after the data timeout. The clock is the server's own
    // answer: a second session's LIST on an unconnected port gets its 425 one data timeout
    // after it started, which is after `p3` was opened.
    let p3 = c.pasv();
    let mut timer = Raw::login(fx.addr(), BOB);
    let _ = timer.pasv();
    assert_eq!(timer.cmd("LIST").code, 150);
    assert_eq!(timer.reply().code, 425, "the timer session's LIST");
    assert!(refused(p3), "the unused passive port {p3} was not closed");
    let r = c.cmd("LIST");
    assert_eq!(r.code, 425, "LIST after the passive port expired: {r:?}");
    assert!(r.text().contains("PASV"), "425 names the cause: {r:?}");

    // The same session then transfers normally.
    let data = random_bytes(123_457);
    assert_eq!(c.transfer("STOR after-pasv.bin", Some(&data)).code(), 226);
    let back = c.transfer("RETR after-pasv.bin", None);
    assert_eq!(back.code(), 226);
    assert_eq!(sha256_hex(&back.data), sha256_hex(&data));
    c.expect("QUIT", 221);
    timer.expect("QUIT", 221);
    fx.finish("after an unused passive port");
}

// ---------------------------------------------------------------------------------------------
// 6. A data connection from another local address.
// ---------------------------------------------------------------------------------------------

const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[test]
fn data_connection_from_another_address_is_closed_and_the_real_one_completes() {
    let fx = Fixture::start(&[]);
    let payload = random_bytes_seeded(77, 3 * MIB + 5);
    write_file(&fx.root().join("payload.bin"), &payload);
    let mut c = Raw::login(fx.addr(), ALICE);

    // RETR: the intruder connects first and must get nothing.
    let p = c.pasv();
    let mut intruder = connect_from(OTHER_IP, p).expect("intruder connects (kernel backlog)");
    let r = c.cmd("RETR payload.bin");
    assert_eq!(r.code, 150, "RETR: {r:?}");
    let (stolen, end) = drain(&mut intruder);
    assert!(
        stolen.is_empty(),
        "the intruder from {OTHER_IP} received {} bytes",
        stolen.len()
    );
    assert!(
        end.as_ref().map_or_else(is_reset, |_| true),
        "the intruder's connection was not closed by the server: {end:?}"
    );
    let mut real = TcpStream::connect_timeout(&p, IO_DEADLINE).expect("real data connection");
    real.set_read_timeout(Some(IO_DEADLINE)).expect("timeout");
    let mut got = Vec::new();
    real.read_to_end(&mut got).expect("download");
    assert_eq!(c.reply().code, 226, "RETR completes");
    assert_eq!(got.len(), payload.len());
    assert_eq!(sha256_hex(&got), sha256_hex(&payload), "RETR byte-exact");

    // STOR: the intruder's bytes must not end up in the file.
    let upload = random_bytes_seeded(78, MIB + 9);
    let p = c.pasv();
    let mut intruder = connect_from(OTHER_IP, p).expect("intruder connects");
    intruder
        .write_all(b"INTRUDER BYTES MUST NOT BE STORED\n")
        .expect("intruder writes into the backlog");
    let r = c.cmd("STOR uploaded.bin");
    assert_eq!(r.code, 150, "STOR: {r:?}");
    let (_, end) = drain(&mut intruder);
    assert!(
        end.as_ref().map_or_else(is_reset, |_| true),
        "the intruder's connection was not closed: {end:?}"
    );
    let mut real = TcpStream::connect_timeout(&p, IO_DEADLINE).expect("real data connection");
    real.write_all(&upload).expect("upload");
    real.shutdown(Shutdown::Write).expect("shutdown");
    assert_eq!(c.reply().code, 226, "STOR completes");
    assert_eq!(
        file_sha256(&fx.root().join("uploaded.bin")),
        sha256_hex(&upload),
        "STOR byte-exact, nothing from the intruder"
    );
    c.expect("QUIT", 221);
    fx.finish("after a data connection from another address");
}

// ---------------------------------------------------------------------------------------------
// 7. Path traversal in every path-taking command.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Op {
    Cwd,
    Retr,
    Stor,
    RestStor,
    Appe,
    Dele,
    Mkd,
    Rmd,
    /// RNFR the hostile path, RNTO a plain name.
    RnfrHostile,
    /// RNFR a plain file, RNTO the hostile path.
    RntoHostile,
    Size,
    Mdtm,
    List,
    Nlst,
    Mlsd,
    Mlst,
    StatPath,
}

const OPS: [Op; 17] = [
    Op::Cwd,
    Op::Retr,
    Op::Stor,
    Op::RestStor,
    Op::Appe,
    Op::Dele,
    Op::Mkd,
    Op::Rmd,
    Op::RnfrHostile,
    Op::RntoHostile,
    Op::Size,
    Op::Mdtm,
    Op::List,
    Op::Nlst,
    Op::Mlsd,
    Op::Mlst,
    Op::StatPath,
];

fn hostile_paths(fx: &Fixture) -> Vec<String> {
    let mut paths: Vec<String> = [
        "..",
        "../..",
        "../../../../../../../../..",
        "../CANARY-next-to-root.txt",
        "../../CANARY-parent.txt",
        "../srv2",
        "../srv2/CANARY-sibling.txt",
        "../outside-dir/CANARY-in-outside-dir.txt",
        "../outside-empty",
        "/etc/passwd",
        "../../../../../../../../etc/passwd",
        "/../../CANARY-next-to-root.txt",
        "/../../x",
        "/../srv2/CANARY-sibling.txt",
        "sub/../../CANARY-next-to-root.txt",
        "./../srv2",
        "%2e%2e%2fCANARY-next-to-root.txt",
        "%2e%2e%2f%2e%2e%2fCANARY-parent.txt",
        "%2e%2e/%2e%2e/CANARY-parent.txt",
        "..%2f..%2fCANARY-parent.txt",
        "..\\CANARY-next-to-root.txt",
        "..\\..\\CANARY-parent.txt",
        "..\\..\\",
        "link-file",
        "link-file-abs",
        "link-dir",
        "link-dir/CANARY-in-outside-dir.txt",
        "link-dir/new-entry",
        "link-dir-abs",
        "link-dir-abs/CANARY-in-outside-dir.txt",
        "link-sibling",
        "link-sibling/CANARY-sibling.txt",
        "link-parent",
        "link-parent/CANARY-parent.txt",
        "link-parent/tree/srv2",
        "link-empty",
        "link-empty/new-entry",
        "link-dangling",
        "link-dangling-abs",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // The host's absolute paths mean nothing inside the jail.
    for p in [
        fx.tree.join("CANARY-next-to-root.txt"),
        fx.tree.join("srv2/CANARY-sibling.txt"),
        fx.tree.join("outside-empty"),
    ] {
        paths.push(p.to_str().expect("UTF-8").to_owned());
    }
    paths
}

/// The path's components after lexical resolution from `/` (`..` stops at the root).
fn lexical(path: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    parts
}

/// `root/comps...` if every component but the last is a real directory inside the root (no
/// symlink on the way), else `None`.
fn real_path(root: &Path, comps: &[&str]) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        p.push(c);
        if i + 1 < comps.len() && !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            return None;
        }
    }
    Some(p)
}

fn real_kind(root: &Path, comps: &[&str]) -> Option<&'static str> {
    let p = real_path(root, comps)?;
    let m = fs::symlink_metadata(p).ok()?;
    Some(if m.is_symlink() {
        "symlink"
    } else if m.is_dir() {
        "dir"
    } else {
        "file"
    })
}

const PAYLOAD: &[u8] = b"HOSTILE PAYLOAD\n";

/// Runs `op` on `path` and checks that it failed or acted only inside the root. Returns
/// everything the client received, for the leak check.
fn traversal_op(c: &mut Raw, fx: &Fixture, op: Op, path: &str) -> Vec<u8> {
    let what = format!("{op:?} {path:?}");
    let comps = lexical(path);
    let root = fx.root();
    let fail = |code: u32, extra: &[u32]| {
        assert!(
            code == 550 || code == 553 || extra.contains(&code),
            "{what}: unexpected reply {code}"
        );
    };
    match op {
        Op::Cwd => {
            let r = c.cmd(&format!("CWD {path}"));
            let mut seen = r.text().into_bytes();
            if r.code == 250 {
                assert_eq!(
                    real_kind(root, &comps),
                    Some("dir"),
                    "{what}: CWD succeeded into something that is not a real directory inside"
                );
                let pwd = c.expect("PWD", 257);
                let want = format!("\"/{}\"", comps.join("/"));
                assert!(
                    pwd.text().starts_with(&want),
                    "{what}: PWD {pwd:?}, want {want}"
                );
                let listing = c.transfer("LIST -a", None);
                assert_eq!(listing.code(), 226, "{what}: LIST after CWD");
                seen.extend(listing.everything());
                c.expect("CWD /", 250);
            } else {
                fail(r.code, &[]);
            }
            seen
        }
        Op::Retr => {
            let t = c.transfer(&format!("RETR {path}"), None);
            if t.code() == 226 {
                let p = real_path(root, &comps).expect("RETR succeeded through a symlink");
                assert!(
                    fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()),
                    "{what}: RETR succeeded on something that is not a real file inside"
                );
                assert_eq!(t.data, fs::read(&p).expect("read"), "{what}: RETR data");
            } else {
                fail(t.code(), &[]);
            }
            t.everything()
        }
        Op::Stor | Op::RestStor | Op::Appe => {
            let verb = if matches!(op, Op::Appe) {
                "APPE"
            } else {
                "STOR"
            };
            if matches!(op, Op::RestStor) {
                c.expect("REST 1", 350);
            }
            let t = c.transfer(&format!("{verb} {path}"), Some(PAYLOAD));
            if t.code() == 226 {
                let p = real_path(root, &comps)
                    .unwrap_or_else(|| panic!("{what}: stored through a symlink"));
                let m = fs::symlink_metadata(&p)
                    .unwrap_or_else(|e| panic!("{what}: 226 but nothing at {}: {e}", p.display()));
                assert!(m.is_file(), "{what}: 226 but {} is not a file", p.display());
                let stored = fs::read(&p).expect("read");
                let ok = match op {
                    Op::Stor => stored == PAYLOAD,
                    Op::Appe => stored.ends_with(PAYLOAD),
                    _ => stored.get(1..=PAYLOAD.len()) == Some(PAYLOAD),
                };
                assert!(ok, "{what}: stored {stored:?}");
            } else {
                fail(t.code(), &[554]);
            }
            t.everything()
        }
        Op::Dele | Op::Rmd => {
            let verb = if matches!(op, Op::Dele) {
                "DELE"
            } else {
                "RMD"
            };
            let existed = real_kind(root, &comps);
            let r = c.cmd(&format!("{verb} {path}"));
            if r.code == 250 {
                assert!(
                    existed.is_some() && real_kind(root, &comps).is_none(),
                    "{what}: 250 but it did not remove an entry inside the root"
                );
            } else {
                fail(r.code, &[]);
            }
            r.text().into_bytes()
        }
        Op::Mkd => {
            let r = c.cmd(&format!("MKD {path}"));
            if r.code == 257 {
                assert_eq!(
                    real_kind(root, &comps),
                    Some("dir"),
                    "{what}: 257 but no real directory inside the root"
                );
            } else {
                fail(r.code, &[]);
            }
            r.text().into_bytes()
        }
        Op::RnfrHostile => {
            let r = c.cmd(&format!("RNFR {path}"));
            let mut seen = r.text().into_bytes();
            if r.code == 350 {
                assert!(
                    real_kind(root, &comps).is_some(),
                    "{what}: 350 for something not inside the root"
                );
                let r = c.cmd("RNTO renamed-by-hostile-test");
                if r.code == 250 {
                    assert!(
                        real_kind(root, &comps).is_none()
                            && root.join("renamed-by-hostile-test").exists(),
                        "{what}: RNTO 250 but nothing moved inside the root"
                    );
                    remove_any(&root.join("renamed-by-hostile-test"));
                } else {
                    // RNFR of the root itself is accepted; RNTO then refuses to move it.
                    fail(r.code, &[]);
                }
                seen.extend(r.text().into_bytes());
            } else {
                fail(r.code, &[]);
            }
            seen
        }
        Op::RntoHostile => {
            c.expect("RNFR hello.txt", 350);
            let r = c.cmd(&format!("RNTO {path}"));
            if r.code == 250 {
                assert!(
                    real_kind(root, &comps).is_some() && !root.join("hello.txt").exists(),
                    "{what}: 250 but hello.txt did not move inside the root"
                );
            } else {
                fail(r.code, &[]);
                assert!(
                    root.join("hello.txt").exists(),
                    "{what}: hello.txt vanished"
                );
            }
            r.text().into_bytes()
        }
        Op::Size | Op::Mdtm => {
            let verb = if matches!(op, Op::Size) {
                "SIZE"
            } else {
                "MDTM"
            };
            let r = c.cmd(&format!("{verb} {path}"));
            if r.code == 213 {
                let p = real_path(root, &comps).expect("213 through a symlink");
                let m = fs::symlink_metadata(&p).expect("213 for a missing file");
                assert!(m.is_file(), "{what}: 213 for a non-file");
                if matches!(op, Op::Size) {
                    assert_eq!(r.text(), m.len().to_string(), "{what}");
                }
            } else {
                fail(r.code, &[]);
            }
            r.text().into_bytes()
        }
        Op::List | Op::Nlst | Op::Mlsd => {
            let verb = match op {
                Op::List => "LIST",
                Op::Nlst => "NLST",
                _ => "MLSD",
            };
            let t = c.transfer(&format!("{verb} {path}"), None);
            if t.code() == 226 {
                assert!(
                    matches!(real_kind(root, &comps), Some("dir" | "file")),
                    "{what}: listed something that is not a real entry inside the root"
                );
            } else {
                fail(t.code(), &[501]);
            }
            t.everything()
        }
        Op::Mlst | Op::StatPath => {
            let verb = if matches!(op, Op::Mlst) {
                "MLST"
            } else {
                "STAT"
            };
            let r = c.cmd(&format!("{verb} {path}"));
            if r.code == 250 || r.code == 213 {
                assert!(
                    matches!(real_kind(root, &comps), Some("dir" | "file")),
                    "{what}: described something that is not a real entry inside the root"
                );
            } else {
                fail(r.code, &[]);
            }
            r.text().into_bytes()
        }
    }
}

#[test]
fn path_traversal_in_every_path_command_never_leaves_the_root() {
    let fx = Fixture::start(&[]);
    let mut c = Raw::login(fx.addr(), ALICE);
    let paths = hostile_paths(&fx);
    let mut tried = 0;
    for op in OPS {
        for path in &paths {
            fx.prepare_root();
            let seen = traversal_op(&mut c, &fx, op, path);
            let what = format!("{op:?} {path:?}");
            fx.assert_no_leak(&what, &seen);
            fx.assert_outside_untouched(&what);
            tried += 1;
        }
    }
    assert_eq!(tried, OPS.len() * paths.len());
    c.expect("QUIT", 221);
    fx.finish("after path traversal attempts");
}

// ---------------------------------------------------------------------------------------------
// 8. PORT/EPRT bounce attempts.
// ---------------------------------------------------------------------------------------------

#[test]
fn port_and_eprt_refuse_other_hosts_and_low_ports_and_never_connect() {
    let fx = Fixture::start(&["--data-timeout", "2"]);
    // A listener on another local address: the target of the bounce attempts.
    let trap = TcpListener::bind((OTHER_IP, 0)).expect("bind 127.0.0.2");
    trap.set_nonblocking(true).expect("nonblocking");
    let tp = trap.local_addr().expect("addr").port();
    let (hi, lo) = (tp >> 8, tp & 0xff);

    let refused_cases: Vec<String> = vec![
        // Another host (127.0.0.2 is not the client's address).
        format!("PORT 127,0,0,2,{hi},{lo}"),
        format!("EPRT |1|127.0.0.2|{tp}|"),
        format!("EPRT |2|::ffff:127.0.0.2|{tp}|"),
        format!("EPRT |2|::1|{tp}|"),
        format!("PORT 10,0,0,1,{hi},{lo}"),
        format!("PORT 0,0,0,0,{hi},{lo}"),
        format!("PORT 255,255,255,255,{hi},{lo}"),
        "EPRT |1|192.0.2.1|8080|".into(),
        // Privileged ports on the client's own address.
        "PORT 127,0,0,1,0,21".into(),
        "PORT 127,0,0,1,0,80".into(),
        "PORT 127,0,0,1,0,0".into(),
        "PORT 127,0,0,1,3,255".into(),
        "EPRT |1|127.0.0.1|21|".into(),
        "EPRT |1|127.0.0.1|80|".into(),
        "EPRT |2|::ffff:127.0.0.1|21|".into(),
        // Malformed.
        "PORT".into(),
        "PORT 127,0,0,2".into(),
        format!("PORT 127,0,0,2,{hi}"),
        format!("PORT 127,0,0,2,{hi},{lo},7"),
        format!("PORT 256,0,0,1,{hi},{lo}"),
        "PORT 127,0,0,1,256,1".into(),
        format!("PORT -1,0,0,1,{hi},{lo}"),
        "PORT a,b,c,d,e,f".into(),
        format!("PORT 127.0.0.2:{tp}"),
        "PORT 127,0,0,2,,".into(),
        "PORT 127,0,0,1,4,1 extra".into(),
        "EPRT".into(),
        "EPRT |1|127.0.0.2|".into(),
        format!("EPRT |3|127.0.0.2|{tp}|"),
        "EPRT |1|127.0.0.1|99999|".into(),
        format!("EPRT |1|not-an-ip|{tp}|"),
        format!("EPRT |2|127.0.0.2|{tp}|"),
        format!("EPRT |1|::1|{tp}|"),
        // No leading delimiter: the '1' is taken as the delimiter. A fixed port without a '1'
        // in it: with the trap's random port, a '1' among its digits could split the field
        // list into a different (unknown protocol: 522) shape and make this case flaky.
        "EPRT 1|127.0.0.2|2020".into(),
        format!("EPRT |1|127.0.0.2|{tp}|x"),
        format!("EPRT \u{1}1\u{1}127.0.0.2\u{1}{tp}\u{1}"),
        "EPRT ||||".into(),
    ];
    let mut c = Raw::login(fx.addr(), ALICE);
    for cmd in &refused_cases {
        let r = c.cmd(cmd);
        // RFC 2428 §2: an unknown network protocol is 522; everything else here is 501.
        let want = if cmd.starts_with("EPRT |3|") {
            522
        } else {
            501
        };
        assert_eq!(
            r.code, want,
            "{cmd:?} must be refused with {want}, got {r:?}"
        );
        // Nothing was remembered as a data target: a transfer command has no endpoint at all.
        let r = c.cmd("LIST");
        assert_eq!(
            r.code, 425,
            "after {cmd:?}, LIST must find no data target: {r:?}"
        );
        assert!(r.text().contains("PASV"), "after {cmd:?}: {r:?}");
    }
    assert!(
        matches!(trap.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the server connected to the bounce target"
    );

    // A client connected from 127.0.0.2 may not point the server at 127.0.0.1 either.
    let own = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    own.set_nonblocking(true).expect("nonblocking");
    let op = own.local_addr().expect("addr").port();
    let mut from_other = Raw::connect_from(OTHER_IP, fx.addr());
    from_other.log_in(ALICE.0, ALICE.1);
    for cmd in [
        format!("PORT 127,0,0,1,{},{}", op >> 8, op & 0xff),
        format!("EPRT |1|127.0.0.1|{op}|"),
    ] {
        let r = from_other.cmd(&cmd);
        assert_eq!(r.code, 501, "{cmd:?} from 127.0.0.2: {r:?}");
        assert_eq!(from_other.cmd("LIST").code, 425);
    }
    assert!(
        matches!(own.accept(), Err(e) if e.kind() == ErrorKind::WouldBlock),
        "the server connected to 127.0.0.1 for a client on 127.0.0.2"
    );

    // The trap is real: the client's own address is accepted and connected to.
    let r = from_other.cmd(&format!("EPRT |1|127.0.0.2|{tp}|"));
    assert_eq!(r.code, 200, "EPRT to the client's own address: {r:?}");
    assert_eq!(from_other.cmd("NLST").code, 150);
    let mut accepted = None;
    wait_until(
        IO_DEADLINE,
        "the server connects for an allowed EPRT",
        || {
            match trap.accept() {
                Ok((stream, _)) => accepted = Some(stream),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("accept on the trap: {e}"),
            }
            accepted.is_some()
        },
    );
    let mut data = accepted.expect("accepted");
    data.set_read_timeout(Some(IO_DEADLINE)).expect("timeout");
    let mut names = Vec::new();
    data.read_to_end(&mut names).expect("NLST data");
    assert_eq!(from_other.reply().code, 226);
    assert!(contains(&names, "hello.txt"), "NLST over active mode");
    from_other.expect("QUIT", 221);
    c.expect("QUIT", 221);
    fx.finish("after bounce attempts");
}

// ---------------------------------------------------------------------------------------------
// 9. Reply framing with hostile file names (the reply_encode fuzz finding, end to end).
// ---------------------------------------------------------------------------------------------

/// STAT of a directory answers with a multi-line 213 reply built from the listing. A file
/// name cannot contain LF over FTP, but one created on disk can; a name line that starts with
/// digits must not end the reply early.
fn stat_listing_keeps_its_framing(name: &str) {
    let fx = Fixture::start(&[]);
    fs::create_dir(fx.root().join("d")).expect("mkdir");
    write_file(&fx.root().join("d").join(name), b"x");
    let mut c = Raw::login(fx.addr(), ALICE);
    let r = c.cmd("STAT d");
    assert_eq!(r.code, 213, "STAT d: {r:?}");
    assert_eq!(
        r.lines.last().map(String::as_str),
        Some("End of status"),
        "the 213 reply ended early, at a line made from the file name {name:?}: {r:?}"
    );
    let r = c.cmd("NOOP");
    assert_eq!(
        (r.code, r.text().as_str()),
        (200, "NOOP ok"),
        "the session is out of step with its replies"
    );
    c.expect("QUIT", 221);
    fx.finish("after STAT of a hostile file name");
}

#[test]
fn stat_listing_of_a_name_with_lf_and_digits_keeps_its_framing() {
    stat_listing_keeps_its_framing("evil\n213 forged end of reply");
}

#[test]
fn stat_listing_of_a_name_with_lf_control_and_digits_keeps_its_framing() {
    stat_listing_keeps_its_framing("evil\n\u{1}213 forged end of reply");
}
