//! Users, permissions, limits and shutdown, against the real daemon: each test tries to get
//! past one rule and checks the reply and what happened on disk.

mod common;

use common::{assert_file_holds, sha256_hex, Daemon};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(15);

/// A control connection that shows exactly what the server sends.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect control");
        s.set_read_timeout(Some(DEADLINE)).expect("timeout");
        Raw {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
        }
    }

    /// One complete reply (multi-line aware), or `None` at EOF.
    fn reply(&mut self) -> Option<(u16, String)> {
        let mut first = String::new();
        if self.reader.read_line(&mut first).expect("read reply") == 0 {
            return None;
        }
        let code: u16 = first
            .get(..3)
            .and_then(|c| c.parse().ok())
            .expect("reply code");
        let mut text = first.clone();
        if first.as_bytes().get(3) == Some(&b'-') {
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line).expect("read") == 0 {
                    break;
                }
                text.push_str(&line);
                if line.starts_with(&format!("{code} ")) {
                    break;
                }
            }
        }
        Some((code, text))
    }

    fn expect(&mut self, code: u16) -> String {
        match self.reply() {
            Some((c, text)) => {
                assert_eq!(c, code, "unexpected reply {text:?}");
                text
            }
            None => panic!("connection closed, expected {code}"),
        }
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send command");
    }

    fn cmd(&mut self, line: &str, code: u16) -> String {
        self.send(line);
        self.expect(code)
    }

    fn login(addr: SocketAddr, user: &str, pass: &str) -> Raw {
        Raw::login_from("127.0.0.1", addr, user, pass)
    }

    /// `login` from another loopback address (another client, as far as the daemon knows).
    fn login_from(from: &str, addr: SocketAddr, user: &str, pass: &str) -> Raw {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        let src: SocketAddr = format!("{from}:0").parse().expect("addr");
        s.bind(&src.into()).expect("bind source");
        s.connect(&addr.into()).expect("connect control");
        let s: TcpStream = s.into();
        s.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut c = Raw {
            reader: BufReader::new(s.try_clone().expect("clone")),
            writer: s,
        };
        c.expect(220);
        c.cmd(&format!("USER {user}"), 331);
        c.cmd(&format!("PASS {pass}"), 230);
        c
    }

    /// True when the server has closed the connection (EOF, or a reset).
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(self.reader.read(&mut buf), Ok(0) | Err(_))
    }

    /// EPSV, and the port it names.
    fn epsv_port(&mut self) -> u16 {
        let text = self.cmd("EPSV", 229);
        text.split("|||")
            .nth(1)
            .and_then(|p| p.split('|').next())
            .and_then(|p| p.parse().ok())
            .expect("port in 229")
    }

    /// EPSV, and the address of the port it names.
    fn epsv_target(&mut self) -> SocketAddr {
        ([127, 0, 0, 1], self.epsv_port()).into()
    }

    /// EPSV, then a data socket to the port it names.
    fn passive(&mut self, from: Option<&str>) -> TcpStream {
        let target = self.epsv_target();
        let sock = match from {
            None => TcpStream::connect(target).expect("data connect"),
            Some(ip) => {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .expect("socket");
                let src: SocketAddr = format!("{ip}:0").parse().expect("addr");
                s.bind(&src.into()).expect("bind source");
                s.connect(&target.into()).expect("data connect");
                s.into()
            }
        };
        sock.set_read_timeout(Some(DEADLINE)).expect("timeout");
        sock
    }

    /// EPSV, then a data socket with a tiny receive buffer (the kernel's minimum), so the
    /// server's writes stall until the test reads.
    fn passive_narrow(&mut self) -> TcpStream {
        let target = self.epsv_target();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.set_recv_buffer_size(1024).expect("SO_RCVBUF");
        s.connect(&target.into()).expect("data connect");
        let sock: TcpStream = s.into();
        sock.set_read_timeout(Some(DEADLINE)).expect("timeout");
        sock
    }
}

fn one_user(extra: &[&str]) -> Daemon {
    Daemon::start_with_args(&[("alice", "pw", "srv")], extra)
}

fn read_to_end(mut s: TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read data");
    buf
}

fn sigterm(d: &Daemon) {
    let status = Command::new("kill")
        .args(["-TERM", &d.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn connections_over_the_session_limit_get_421() {
    let d = one_user(&["--max-sessions", "3", "--max-sessions-per-ip", "100"]);
    let mut held: Vec<Raw> = (0..3)
        .map(|_| {
            let mut c = Raw::connect(d.addr());
            c.expect(220);
            c
        })
        .collect();
    let mut extra = Raw::connect(d.addr());
    let text = extra.expect(421);
    assert!(text.contains("Too many users"), "{text:?}");
    assert!(extra.closed());
    // A slot freed is a slot usable again (the Listener hears of it by message).
    held[0].cmd("QUIT", 221);
    assert!(held[0].closed());
    let mut served = false;
    for _ in 0..100 {
        let mut c = Raw::connect(d.addr());
        if c.reply().is_some_and(|(code, _)| code == 220) {
            served = true;
            break;
        }
    }
    assert!(served, "a freed slot was never reused");
}

#[test]
fn connections_over_the_per_ip_limit_get_421() {
    let d = one_user(&["--max-sessions-per-ip", "2"]);
    let mut a = Raw::connect(d.addr());
    a.expect(220);
    let mut b = Raw::connect(d.addr());
    b.expect(220);
    let mut c = Raw::connect(d.addr());
    let text = c.expect(421);
    assert!(text.contains("from your address"), "{text:?}");
    a.cmd("NOOP", 200);
}

#[test]
fn failed_logins_close_the_connection_after_three() {
    let d = one_user(&["--login-failure-delay-ms", "0"]);
    let mut c = Raw::connect(d.addr());
    c.expect(220);
    for _ in 0..3 {
        c.cmd("USER alice", 331);
        c.cmd("PASS wrong", 530);
    }
    c.expect(421);
    assert!(c.closed());
}

#[test]
fn failed_login_delay_does_not_hold_up_other_sessions() {
    let d = one_user(&["--login-failure-delay-ms", "3000"]);
    let mut slow = Raw::connect(d.addr());
    slow.expect(220);
    slow.cmd("USER alice", 331);
    slow.send("PASS wrong");
    // While the failed login waits out its delay, another client logs in and works.
    let mut other = Raw::login(d.addr(), "alice", "pw");
    other.cmd("NOOP", 200);
    slow.writer.set_nonblocking(true).expect("nonblocking");
    let mut peek = [0u8; 1];
    let waiting =
        matches!(slow.writer.peek(&mut peek), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    slow.writer.set_nonblocking(false).expect("blocking");
    assert!(
        waiting,
        "the 530 came before the delay, or the other session waited for it"
    );
    slow.expect(530);
}

#[test]
fn repeated_failures_ban_the_source_address() {
    let d = one_user(&["--login-failure-delay-ms", "0", "--ban-failures", "2"]);
    let mut c = Raw::connect(d.addr());
    c.expect(220);
    c.cmd("USER alice", 331);
    c.cmd("PASS wrong", 530);
    c.cmd("USER nobody", 331);
    c.cmd("PASS wrong", 530);
    // The ban is recorded by message; a new connection sees it once the Listener has it.
    let mut banned = false;
    for _ in 0..100 {
        let mut n = Raw::connect(d.addr());
        match n.reply() {
            Some((421, text)) => {
                assert!(text.contains("failed logins"), "{text:?}");
                banned = true;
                break;
            }
            Some((220, _)) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(banned, "source was never banned");
}

#[test]
fn http_and_smtp_clients_are_disconnected_silently() {
    let d = one_user(&[]);
    for first in [
        "GET / HTTP/1.1",
        "POST /x HTTP/1.0",
        "HELO mail.example",
        "EHLO x",
    ] {
        let mut c = Raw::connect(d.addr());
        c.expect(220);
        c.send(first);
        assert!(
            c.reply().is_none(),
            "{first:?} got a reply instead of a close"
        );
    }
    // An unknown FTP-looking first word is only a 500, and the connection stays.
    let mut c = Raw::connect(d.addr());
    c.expect(220);
    c.cmd("FOO", 500);
    c.cmd("NOOP", 200);
    // GET later in a session is an ordinary unknown command.
    let mut c = Raw::login(d.addr(), "alice", "pw");
    c.cmd("GET /", 500);
    c.cmd("NOOP", 200);
}

#[test]
fn bad_users_files_stop_the_daemon_with_one_clear_line() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("r");
    std::fs::create_dir(&root).expect("root");
    let hash = actorftpd::auth::hash_password("pw").expect("hash");
    let r = root.display();
    let cases = [
        ("broken.toml", "[[user]\nname=1\n".to_owned(), "line 1"),
        (
            "plain.toml",
            format!("[[user]]\nname = \"a\"\npassword = \"pw\"\nroot = \"{r}\"\n"),
            "line 2: user \"a\": plain-text password refused",
        ),
        (
            "noroot.toml",
            format!("[[user]]\nname = \"a\"\npassword_hash = \"{hash}\"\nroot = \"/no/such\"\n"),
            "not a directory",
        ),
        (
            "perm.toml",
            format!("[[user]]\nname = \"a\"\npassword_hash = \"{hash}\"\nroot = \"{r}\"\npermissions = [\"admin\"]\n"),
            "unknown permission \"admin\"",
        ),
    ];
    for (file, text, want) in cases {
        let path = tmp.path().join(file);
        std::fs::write(&path, text).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
            .args(["--listen", "127.0.0.1:0", "--users"])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("run daemon");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file}: daemon started");
        assert_eq!(stderr.trim().lines().count(), 1, "{file}: {stderr}");
        assert!(
            stderr.contains(file) && stderr.contains(want),
            "{file}: {stderr}"
        );
    }
    let missing = tmp.path().join("missing.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
        .args(["--listen", "127.0.0.1:0", "--users"])
        .arg(&missing)
        .output()
        .expect("run daemon");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn hash_password_output_logs_in() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn hash-password");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"correct horse\n")
        .expect("write password");
    let out = child.wait_with_output().expect("hash-password output");
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");

    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("r");
    std::fs::create_dir(&root).expect("root");
    let users = tmp.path().join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[[user]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nroot = \"{}\"\n",
            root.display()
        ),
    )
    .expect("users");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--users",
        users.to_str().expect("utf8"),
        "-q",
    ];
    let d = Daemon::start_custom(tmp, &args, vec![]);
    Raw::login(d.addr(), "bob", "correct horse").cmd("PWD", 257);
    let mut c = Raw::connect(d.addr());
    c.expect(220);
    c.cmd("USER bob", 331);
    c.cmd("PASS correct horsE", 530);
}

/// A users file with one normal user and extra TOML, served from `tmp`.
fn daemon_with_file(extra_toml: &str) -> Daemon {
    let tmp = tempfile::tempdir().expect("tmp");
    for dir in ["alice", "pub"] {
        std::fs::create_dir(tmp.path().join(dir)).expect("root");
    }
    let hash = actorftpd::auth::hash_password("pw").expect("hash");
    let users = tmp.path().join("users.toml");
    std::fs::write(
        &users,
        format!("[[user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\nroot = \"alice\"\n\n{extra_toml}"),
    )
    .expect("users");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--users",
        users.to_str().expect("utf8"),
        "--login-failure-delay-ms",
        "0",
        "-q",
    ];
    let root = tmp.path().join("alice");
    Daemon::start_custom(tmp, &args, vec![("alice".into(), "pw".into(), root)])
}

#[test]
fn anonymous_is_off_unless_configured() {
    let d = daemon_with_file("");
    let mut c = Raw::connect(d.addr());
    c.expect(220);
    c.cmd("USER anonymous", 331);
    c.cmd("PASS guest@example.org", 530);
}

#[test]
fn anonymous_is_read_only_and_jailed() {
    let d = daemon_with_file("[anonymous]\nroot = \"pub\"\n");
    let pub_root = d.tmp().join("pub");
    let data = common::random_bytes(100_000);
    std::fs::write(pub_root.join("file.bin"), &data).expect("fixture");
    let mut c = Raw::connect(d.addr());
    c.expect(220);
    let prompt = c.cmd("USER anonymous", 331);
    assert!(prompt.contains("e-mail"), "{prompt:?}");
    c.cmd("PASS guest@example.org", 230);
    c.cmd("TYPE I", 200);
    let data_sock = c.passive(None);
    c.cmd("RETR file.bin", 150);
    assert_eq!(sha256_hex(&read_to_end(data_sock)), sha256_hex(&data));
    c.expect(226);
    let _data = c.passive(None);
    c.cmd("STOR new.bin", 550);
    c.cmd("DELE file.bin", 550);
    c.cmd("MKD d", 550);
    c.cmd("RNFR file.bin", 550);
    c.cmd("CWD ../alice", 550);
    assert_eq!(dir_names(&pub_root), vec!["file.bin".to_owned()]);
}

#[test]
fn disabled_users_and_other_networks_get_the_same_530() {
    let hash = actorftpd::auth::hash_password("pw").expect("hash");
    let d = daemon_with_file(&format!(
        "[[user]]\nname = \"off\"\npassword_hash = \"{hash}\"\nroot = \"pub\"\nenabled = false\n\n\
         [[user]]\nname = \"far\"\npassword_hash = \"{hash}\"\nroot = \"pub\"\nallowed_networks = [\"10.0.0.0/8\"]\n\n\
         [[user]]\nname = \"near\"\npassword_hash = \"{hash}\"\nroot = \"pub\"\nallowed_networks = [\"127.0.0.0/8\"]\n"
    ));
    let mut texts = Vec::new();
    for user in ["off", "far", "alice-typo"] {
        let mut c = Raw::connect(d.addr());
        c.expect(220);
        c.cmd(&format!("USER {user}"), 331);
        texts.push(c.cmd("PASS pw", 530));
    }
    let mut c = Raw::connect(d.addr());
    c.expect(220);
    c.cmd("USER alice", 331);
    texts.push(c.cmd("PASS wrong", 530));
    assert!(
        texts.windows(2).all(|w| w[0] == w[1]),
        "replies differ: {texts:?}"
    );
    Raw::login(d.addr(), "near", "pw").cmd("NOOP", 200);
}

#[test]
fn shutdown_tells_idle_sessions_421_and_lets_transfers_finish() {
    let mut d = one_user(&["--shutdown-grace", "30"]);
    let mut idle = Raw::login(d.addr(), "alice", "pw");
    let mut busy = Raw::login(d.addr(), "alice", "pw");
    busy.cmd("TYPE I", 200);
    let mut data = busy.passive(None);
    busy.cmd("STOR up.bin", 150);
    let payload = common::random_bytes(3 * 1024 * 1024);
    data.write_all(&payload[..1024 * 1024]).expect("first part");
    sigterm(&d);
    idle.expect(421);
    assert!(idle.closed());
    // New connections are no longer accepted.
    assert!(TcpStream::connect(d.addr())
        .map(|mut s| {
            let mut b = [0u8; 1];
            s.set_read_timeout(Some(DEADLINE)).ok();
            matches!(s.read(&mut b), Ok(0) | Err(_))
        })
        .unwrap_or(true));
    data.write_all(&payload[1024 * 1024..]).expect("rest");
    drop(data);
    busy.expect(226);
    busy.expect(421);
    let root = d.root("alice");
    assert_file_holds(&root.join("up.bin"), &payload, "");
    let status = d
        .wait_exit(DEADLINE)
        .expect("daemon exits after its sessions");
    assert!(status.success(), "{status:?}");
}

#[test]
fn shutdown_aborts_unfinished_uploads_after_the_grace_period() {
    let mut d = one_user(&["--shutdown-grace", "1"]);
    let root = d.root("alice");
    std::fs::write(root.join("old.bin"), b"old").expect("fixture");
    let mut busy = Raw::login(d.addr(), "alice", "pw");
    busy.cmd("TYPE I", 200);
    let mut data = busy.passive(None);
    busy.cmd("STOR old.bin", 150);
    data.write_all(&[7u8; 100_000]).expect("part");
    sigterm(&d);
    busy.expect(426);
    busy.expect(421);
    assert_eq!(
        std::fs::read(root.join("old.bin")).expect("old file"),
        b"old"
    );
    assert!(d.wait_exit(DEADLINE).is_some_and(|s| s.success()));
    assert_eq!(
        dir_names(&root),
        vec!["old.bin".to_owned()],
        "temp file left behind"
    );
}

#[test]
fn fxp_switch_allows_data_connections_from_elsewhere() {
    let d = one_user(&["--allow-fxp"]);
    let data = common::random_bytes(50_000);
    std::fs::write(d.root("alice").join("f"), &data).expect("fixture");
    let mut c = Raw::login(d.addr(), "alice", "pw");
    c.cmd("TYPE I", 200);
    let sock = c.passive(Some("127.0.0.2"));
    c.cmd("RETR f", 150);
    assert_eq!(sha256_hex(&read_to_end(sock)), sha256_hex(&data));
    c.expect(226);
}

#[test]
fn nat_address_is_not_given_to_local_peers() {
    let d = one_user(&["--passive-address", "203.0.113.7"]);
    let mut c = Raw::login(d.addr(), "alice", "pw");
    let text = c.cmd("PASV", 227);
    assert!(text.contains("(127,0,0,1,"), "{text:?}");
}

#[test]
fn idle_and_login_timeouts_close_with_421() {
    let d = one_user(&["--idle-timeout", "1", "--login-timeout", "1"]);
    let mut logged_in = Raw::login(d.addr(), "alice", "pw");
    let text = logged_in.expect(421);
    assert!(text.contains("Idle timeout"), "{text:?}");
    assert!(logged_in.closed());
    let mut anonymous = Raw::connect(d.addr());
    anonymous.expect(220);
    let text = anonymous.expect(421);
    assert!(text.contains("Login timeout"), "{text:?}");
}

#[test]
fn a_transfer_that_stalls_is_ended_with_426() {
    let d = one_user(&["--stall-timeout", "1"]);
    std::fs::write(
        d.root("alice").join("big.bin"),
        common::random_bytes(64 * 1024 * 1024),
    )
    .expect("fixture");
    let mut c = Raw::login(d.addr(), "alice", "pw");
    c.cmd("TYPE I", 200);
    // The client connects and never reads: the server's writes stop making progress.
    let data = c.passive(None);
    c.cmd("RETR big.bin", 150);
    let text = c.expect(426);
    assert!(text.contains("stalled"), "{text:?}");
    drop(data);
    c.cmd("NOOP", 200);
}

/// A FIFO (or device file) placed in a user's root is never opened for sending: RETR gets 550
/// at once instead of parking a FileStore thread until some writer comes, and the session and
/// the pool stay usable.
#[test]
fn retr_of_a_fifo_in_the_root_gets_550_and_nothing_hangs() {
    let d = one_user(&[]);
    let root = d.root("alice");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo in the root");
    std::fs::write(root.join("after.txt"), b"still served\n").expect("write file");
    let mut c = Raw::login(d.addr(), "alice", "pw");
    c.cmd("TYPE I", 200);
    // More attempts than the FileStore has threads: a blocking open would exhaust the pool.
    for _ in 0..6 {
        let _data = c.passive(None);
        c.cmd("RETR pipe", 550);
    }
    c.cmd("SIZE pipe", 550);
    let data = c.passive(None);
    c.cmd("RETR after.txt", 150);
    assert_eq!(read_to_end(data), b"still served\n");
    c.expect(226);
}

/// Small files and listings are written straight into the data socket, and only a write that
/// would block waits on the reactor. A client that reads nothing until it has the 150 (with a
/// receive buffer of the kernel's minimum) makes the listing's write block part-way: every
/// byte must still arrive, in order, before the 226. (A small file fits the socket buffer and
/// goes in one write; it is checked here with the same slow reader.)
#[test]
fn small_file_and_big_listing_reach_a_client_that_reads_only_after_the_150() {
    let d = one_user(&[]);
    let root = d.root("alice");
    let small = common::random_bytes(60 * 1024);
    std::fs::write(root.join("small.bin"), &small).expect("write small file");
    let dir = root.join("many");
    std::fs::create_dir(&dir).expect("mkdir");
    let mut names = std::collections::BTreeSet::new();
    // About 2.5 MB of names: more than the server's socket buffer, which on loopback starts
    // near 1.3 MB (ten segments of the 64 KiB loopback MSS, twice).
    for i in 0..10_000 {
        let name = format!("{i:05}-{}", "n".repeat(240));
        std::fs::write(dir.join(&name), b"").expect("create entry");
        names.insert(name);
    }
    let mut c = Raw::login(d.addr(), "alice", "pw");
    c.cmd("TYPE I", 200);
    for _ in 0..2 {
        // Twice: the second RETR finds the file in the page cache (read on the Session's thread).
        let data = c.passive_narrow();
        c.cmd("RETR small.bin", 150);
        assert_eq!(sha256_hex(&read_to_end(data)), sha256_hex(&small));
        c.expect(226);
    }
    let data = c.passive_narrow();
    c.cmd("NLST many", 150);
    let listing = String::from_utf8(read_to_end(data)).expect("UTF-8 listing");
    c.expect(226);
    let got: std::collections::BTreeSet<String> = listing
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.rsplit('/').next().unwrap_or(l).to_owned())
        .collect();
    assert_eq!(got.len(), names.len(), "NLST lost or doubled entries");
    assert_eq!(got, names);
}

/// Large files that lose their last name (replaced by an upload or RNTO, or deleted) are kept
/// open across the rename or unlink and freed after the reply. What the client sees must not
/// change: the new content, no old bytes, no leftovers, and a second hard link left intact.
#[test]
fn replacing_and_deleting_large_files_leaves_exactly_the_new_state() {
    use suppaftp::Status;
    let d = one_user(&[]);
    let root = d.root("alice");
    let mut ftp = d.login("alice");
    let old = common::random_bytes_seeded(1, 20 * 1024 * 1024);
    let new = common::random_bytes_seeded(2, 17 * 1024 * 1024 + 3);
    common::put(&mut ftp, "big.bin", &old);
    common::put(&mut ftp, "big.bin", &new);
    assert_eq!(
        sha256_hex(&common::get(&mut ftp, "big.bin")),
        sha256_hex(&new)
    );

    // RNTO over a large file.
    common::put(&mut ftp, "other.bin", &old);
    common::expect_code(&mut ftp, "RNFR big.bin", Status::RequestFilePending);
    common::expect_code(&mut ftp, "RNTO other.bin", Status::RequestedFileActionOk);
    assert_eq!(
        sha256_hex(&common::get(&mut ftp, "other.bin")),
        sha256_hex(&new)
    );

    // A large file with a second hard link: deleting one name leaves the data to the other.
    std::fs::hard_link(root.join("other.bin"), root.join("link.bin")).expect("hard link");
    common::expect_code(&mut ftp, "DELE other.bin", Status::RequestedFileActionOk);
    assert_eq!(
        sha256_hex(&common::get(&mut ftp, "link.bin")),
        sha256_hex(&new)
    );
    common::expect_code(&mut ftp, "DELE link.bin", Status::RequestedFileActionOk);

    let mut left: Vec<String> = std::fs::read_dir(&root)
        .expect("read root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert!(left.is_empty(), "left in the root: {left:?}");
    // The session still works after the background closes.
    common::put(&mut ftp, "after.bin", b"ok");
    assert_eq!(common::get(&mut ftp, "after.bin"), b"ok");
}

/// Three consecutive loopback ports that are free right now (for `--passive-ports`), below the
/// kernel's ephemeral range (32768 and up), so that no other test's outgoing connection or
/// port-0 listener can take one of them meanwhile (the benchmark scripts use 30021-32699).
fn free_port_range() -> (u16, u16) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id();
    for i in 0..200u32 {
        let base = 20_000 + (seed.wrapping_add(i.wrapping_mul(7919)) % 9_000) as u16;
        let held: Vec<_> = (base..base + 3)
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == 3 {
            return (base, base + 2);
        }
    }
    panic!("no three consecutive free ports found in 20000-29002");
}

/// `--passive-ports`: every passive port comes from the range, and when all of them are held
/// by waiting listeners the next PASV/EPSV gets 425 at once; a port comes back when its
/// transfer is done.
#[test]
fn passive_ports_stay_in_the_range_and_an_exhausted_range_gets_425() {
    let (lo, hi) = free_port_range();
    let range = format!("{lo}-{hi}");
    let d = one_user(&["--passive-ports", &range]);
    std::fs::write(d.root("alice").join("f.bin"), common::random_bytes(5000)).expect("write");
    // Three clients (one address may hold only an eighth of the range: the next test).
    let mut sessions: Vec<Raw> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        .iter()
        .map(|from| Raw::login_from(from, d.addr(), "alice", "pw"))
        .collect();
    let mut ports: Vec<u16> = sessions.iter_mut().map(|c| c.epsv_port()).collect();
    ports.sort_unstable();
    assert_eq!(
        ports,
        vec![lo, lo + 1, hi],
        "each session got its own port of the range"
    );

    let mut extra = Raw::login_from("127.0.0.4", d.addr(), "alice", "pw");
    let text = extra.cmd("EPSV", 425);
    assert!(
        text.contains("Cannot open a passive port"),
        "425 says why: {text:?}"
    );
    extra.cmd("PASV", 425);

    // One session uses its port: a transfer through it, then the port is free again.
    let first = &mut sessions[0];
    let port = first.epsv_port();
    assert!((lo..=hi).contains(&port));
    let data = TcpStream::connect(("127.0.0.1", port)).expect("data connect");
    first.cmd("TYPE I", 200);
    first.cmd("RETR f.bin", 150);
    assert_eq!(read_to_end(data), common::random_bytes(5000));
    first.expect(226);
    let text = extra.cmd("PASV", 227);
    let nums: Vec<u16> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let n = nums.len();
    assert!(n >= 6, "227 has h1..p2: {text:?}");
    let pasv_port = nums[n - 2] * 256 + nums[n - 1];
    assert!(
        (lo..=hi).contains(&pasv_port),
        "PASV port {pasv_port} outside {range}"
    );
}

/// One address, with all its sessions, holds at most an eighth of a configured passive range
/// (at least one port), so it cannot leave other clients without a data port; a port it gives
/// back is its own again.
#[test]
fn one_address_holds_at_most_its_share_of_the_passive_range() {
    let (lo, hi) = free_port_range();
    let d = one_user(&["--passive-ports", &format!("{lo}-{hi}")]);
    std::fs::write(d.root("alice").join("f.bin"), common::random_bytes(3000)).expect("write");
    let mut first = Raw::login(d.addr(), "alice", "pw");
    let port = first.epsv_port();
    assert!((lo..=hi).contains(&port));
    // Its share of three ports is one: a second session of the same address is refused.
    let mut second = Raw::login(d.addr(), "alice", "pw");
    let text = second.cmd("EPSV", 425);
    assert!(text.contains("from your address"), "425 says why: {text:?}");
    second.cmd("PASV", 425);
    // Another address still gets a port.
    let mut other = Raw::login_from("127.0.0.2", d.addr(), "alice", "pw");
    assert!((lo..=hi).contains(&other.epsv_port()));
    // A new PASV of the same session replaces its port rather than taking another.
    let port = first.epsv_port();
    // The transfer ends, the port is given back, and the second session can have one.
    let data = TcpStream::connect(("127.0.0.1", port)).expect("data connect");
    first.cmd("TYPE I", 200);
    first.cmd("RETR f.bin", 150);
    assert_eq!(read_to_end(data), common::random_bytes(3000));
    first.expect(226);
    first.cmd("NOOP", 200);
    let mut given = false;
    for _ in 0..50 {
        // The lease is given back by message: the first tries may still find it held.
        let (code, _) = {
            second.send("EPSV");
            second.reply().expect("a reply")
        };
        if code == 229 {
            given = true;
            break;
        }
        assert_eq!(code, 425);
    }
    assert!(given, "the port given back was never available again");
}
