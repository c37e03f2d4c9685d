//! Users, permissions, limits and shutdown, against the real daemon: each test tries to get
//! past one rule and checks the reply and what happened on disk.

mod common;
mod rawftp;

use common::{assert_file_holds, assert_refused_in_one_line, dir_names, sha256_hex, Daemon};
use rawftp::{read_all, Ctrl};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(15);

fn one_user(extra: &[&str]) -> Daemon {
    Daemon::start_with_args(&[("alice", "pw", "srv")], extra)
}

/// Another loopback address: another client, as far as the daemon knows.
fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// EPSV, then a data socket from `local` to the port it names.
fn epsv_from(c: &mut Ctrl, local: IpAddr) -> TcpStream {
    let target = SocketAddr::new(c.server_addr().ip(), c.epsv_port());
    rawftp::connect_from(local, target).expect("data connect")
}

/// EPSV, then a data socket with a tiny receive buffer (the kernel's minimum), so the
/// server's writes stall until the test reads.
fn epsv_narrow(c: &mut Ctrl) -> TcpStream {
    let target = SocketAddr::new(c.server_addr().ip(), c.epsv_port());
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_recv_buffer_size(1024).expect("SO_RCVBUF");
    s.connect_timeout(&target.into(), common::SOCKET_TIMEOUT)
        .expect("data connect");
    let sock: TcpStream = s.into();
    rawftp::set_timeouts(&sock);
    sock
}

fn sigterm(d: &Daemon) {
    let status = Command::new("kill")
        .args(["-TERM", &d.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -TERM failed");
}

#[test]
fn connections_over_the_session_limit_get_421() {
    let d = one_user(&["--max-sessions", "3", "--max-sessions-per-ip", "100"]);
    let mut held: Vec<Ctrl> = (0..3).map(|_| Ctrl::connect(d.addr())).collect();
    let mut extra = Ctrl::ungreeted(d.addr());
    let reply = extra.expect_reply(421);
    assert!(reply.text().contains("Too many users"), "{reply}");
    assert!(extra.closed());
    // A slot freed is a slot usable again (the Listener hears of it by message).
    held[0].expect("QUIT", 221);
    assert!(held[0].closed());
    let mut served = false;
    for _ in 0..100 {
        let mut c = Ctrl::ungreeted(d.addr());
        if c.try_reply().is_ok_and(|r| r.code == 220) {
            served = true;
            break;
        }
    }
    assert!(served, "a freed slot was never reused");
}

#[test]
fn connections_over_the_per_ip_limit_get_421() {
    let d = one_user(&["--max-sessions-per-ip", "2"]);
    let mut a = Ctrl::connect(d.addr());
    let _b = Ctrl::connect(d.addr());
    let mut c = Ctrl::ungreeted(d.addr());
    let reply = c.expect_reply(421);
    assert!(reply.text().contains("from your address"), "{reply}");
    a.expect("NOOP", 200);
}

#[test]
fn failed_logins_close_the_connection_after_three() {
    let d = one_user(&["--login-failure-delay-ms", "0"]);
    let mut c = Ctrl::connect(d.addr());
    for _ in 0..3 {
        c.expect("USER alice", 331);
        c.expect("PASS wrong", 530);
    }
    c.expect_reply(421);
    assert!(c.closed());
}

#[test]
fn failed_login_delay_does_not_hold_up_other_sessions() {
    let d = one_user(&["--login-failure-delay-ms", "3000"]);
    let mut slow = Ctrl::connect(d.addr());
    slow.expect("USER alice", 331);
    slow.send("PASS wrong");
    // While the failed login waits out its delay, another client logs in and works.
    let mut other = Ctrl::login(d.addr(), "alice", "pw");
    other.expect("NOOP", 200);
    slow.socket().set_nonblocking(true).expect("nonblocking");
    let mut peek = [0u8; 1];
    let waiting = matches!(slow.socket().peek(&mut peek), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    slow.socket().set_nonblocking(false).expect("blocking");
    assert!(
        waiting,
        "the 530 came before the delay, or the other session waited for it"
    );
    slow.expect_reply(530);
}

#[test]
fn repeated_failures_ban_the_source_address() {
    let d = one_user(&["--login-failure-delay-ms", "0", "--ban-failures", "2"]);
    let mut c = Ctrl::connect(d.addr());
    c.expect("USER alice", 331);
    c.expect("PASS wrong", 530);
    c.expect("USER nobody", 331);
    c.expect("PASS wrong", 530);
    // The ban is recorded by message; a new connection sees it once the Listener has it.
    let mut banned = false;
    for _ in 0..100 {
        let mut n = Ctrl::ungreeted(d.addr());
        match n.reply() {
            r if r.code == 421 => {
                assert!(r.text().contains("failed logins"), "{r}");
                banned = true;
                break;
            }
            r if r.code == 220 => continue,
            other => panic!("unexpected {other}"),
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
        let mut c = Ctrl::connect(d.addr());
        c.send(first);
        assert!(c.closed(), "{first:?} got a reply instead of a close");
    }
    // An unknown FTP-looking first word is only a 500, and the connection stays.
    let mut c = Ctrl::connect(d.addr());
    c.expect("FOO", 500);
    c.expect("NOOP", 200);
    // GET later in a session is an ordinary unknown command.
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    c.expect("GET /", 500);
    c.expect("NOOP", 200);
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
        assert_refused_in_one_line(out.status, &out.stderr, want, file);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(file), "{file}: {stderr}");
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
    let toml = format!(
        "[[user]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nroot = \"{}\"\n",
        root.display()
    );
    let d = Daemon::start_with_users_file(tmp, &toml, &[], vec![]);
    Ctrl::login(d.addr(), "bob", "correct horse").expect("PWD", 257);
    let mut c = Ctrl::connect(d.addr());
    c.expect("USER bob", 331);
    c.expect("PASS correct horsE", 530);
}

/// A users file with one normal user and extra TOML, served from `tmp`.
fn daemon_with_file(extra_toml: &str) -> Daemon {
    let tmp = tempfile::tempdir().expect("tmp");
    for dir in ["alice", "pub"] {
        std::fs::create_dir(tmp.path().join(dir)).expect("root");
    }
    let hash = actorftpd::auth::hash_password("pw").expect("hash");
    let toml = format!(
        "[[user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\nroot = \"alice\"\n\n{extra_toml}"
    );
    let root = tmp.path().join("alice");
    let table = vec![("alice".into(), "pw".into(), root)];
    Daemon::start_with_users_file(tmp, &toml, &["--login-failure-delay-ms", "0"], table)
}

#[test]
fn anonymous_is_off_unless_configured() {
    let d = daemon_with_file("");
    let mut c = Ctrl::connect(d.addr());
    c.expect("USER anonymous", 331);
    c.expect("PASS guest@example.org", 530);
}

#[test]
fn anonymous_is_read_only_and_jailed() {
    let d = daemon_with_file("[anonymous]\nroot = \"pub\"\n");
    let pub_root = d.tmp().join("pub");
    let data = common::random_bytes(100_000);
    std::fs::write(pub_root.join("file.bin"), &data).expect("fixture");
    let mut c = Ctrl::connect(d.addr());
    let prompt = c.expect("USER anonymous", 331);
    assert!(prompt.text().contains("e-mail"), "{prompt}");
    c.expect("PASS guest@example.org", 230);
    c.expect("TYPE I", 200);
    let data_sock = c.epsv();
    c.expect("RETR file.bin", 150);
    assert_eq!(sha256_hex(&read_all(data_sock)), sha256_hex(&data));
    c.expect_reply(226);
    let _data = c.epsv();
    c.expect("STOR new.bin", 550);
    c.expect("DELE file.bin", 550);
    c.expect("MKD d", 550);
    c.expect("RNFR file.bin", 550);
    c.expect("CWD ../alice", 550);
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
        let mut c = Ctrl::connect(d.addr());
        c.expect(&format!("USER {user}"), 331);
        texts.push(c.expect("PASS pw", 530));
    }
    let mut c = Ctrl::connect(d.addr());
    c.expect("USER alice", 331);
    texts.push(c.expect("PASS wrong", 530));
    assert!(
        texts.windows(2).all(|w| w[0] == w[1]),
        "replies differ: {texts:?}"
    );
    Ctrl::login(d.addr(), "near", "pw").expect("NOOP", 200);
}

#[test]
fn shutdown_tells_idle_sessions_421_and_lets_transfers_finish() {
    let mut d = one_user(&["--shutdown-grace", "30"]);
    let mut idle = Ctrl::login(d.addr(), "alice", "pw");
    let mut busy = Ctrl::login(d.addr(), "alice", "pw");
    let mut data = busy.epsv();
    busy.expect("STOR up.bin", 150);
    let payload = common::random_bytes(3 * 1024 * 1024);
    data.write_all(&payload[..1024 * 1024]).expect("first part");
    sigterm(&d);
    idle.expect_reply(421);
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
    busy.expect_reply(226);
    busy.expect_reply(421);
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
    let mut busy = Ctrl::login(d.addr(), "alice", "pw");
    let mut data = busy.epsv();
    busy.expect("STOR old.bin", 150);
    data.write_all(&[7u8; 100_000]).expect("part");
    sigterm(&d);
    busy.expect_reply(426);
    busy.expect_reply(421);
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
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    let sock = epsv_from(&mut c, loopback(2));
    c.expect("RETR f", 150);
    assert_eq!(sha256_hex(&read_all(sock)), sha256_hex(&data));
    c.expect_reply(226);
}

#[test]
fn nat_address_is_not_given_to_local_peers() {
    let d = one_user(&["--passive-address", "203.0.113.7"]);
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    let reply = c.expect("PASV", 227);
    assert!(reply.text().contains("(127,0,0,1,"), "{reply}");
}

#[test]
fn idle_and_login_timeouts_close_with_421() {
    let d = one_user(&["--idle-timeout", "1", "--login-timeout", "1"]);
    let mut logged_in = Ctrl::login(d.addr(), "alice", "pw");
    let reply = logged_in.expect_reply(421);
    assert!(reply.text().contains("Idle timeout"), "{reply}");
    assert!(logged_in.closed());
    let mut anonymous = Ctrl::connect(d.addr());
    let reply = anonymous.expect_reply(421);
    assert!(reply.text().contains("Login timeout"), "{reply}");
}

#[test]
fn a_transfer_that_stalls_is_ended_with_426() {
    let d = one_user(&["--stall-timeout", "1"]);
    std::fs::write(
        d.root("alice").join("big.bin"),
        common::random_bytes(64 * 1024 * 1024),
    )
    .expect("fixture");
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    // The client connects and never reads: the server's writes stop making progress.
    let data = c.epsv();
    c.expect("RETR big.bin", 150);
    let reply = c.expect_reply(426);
    assert!(reply.text().contains("stalled"), "{reply}");
    drop(data);
    c.expect("NOOP", 200);
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
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    // More attempts than the FileStore has threads: a blocking open would exhaust the pool.
    for _ in 0..6 {
        let _data = c.epsv();
        c.expect("RETR pipe", 550);
    }
    c.expect("SIZE pipe", 550);
    let data = c.epsv();
    c.expect("RETR after.txt", 150);
    assert_eq!(read_all(data), b"still served\n");
    c.expect_reply(226);
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
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    for _ in 0..2 {
        // Twice: the second RETR finds the file in the page cache (read on the Session's thread).
        let data = epsv_narrow(&mut c);
        c.expect("RETR small.bin", 150);
        assert_eq!(sha256_hex(&read_all(data)), sha256_hex(&small));
        c.expect_reply(226);
    }
    let data = epsv_narrow(&mut c);
    c.expect("NLST many", 150);
    let listing = String::from_utf8(read_all(data)).expect("UTF-8 listing");
    c.expect_reply(226);
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

    let left = dir_names(&root);
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
    let mut sessions: Vec<Ctrl> = [1, 2, 3]
        .into_iter()
        .map(|last| Ctrl::login_from(loopback(last), d.addr(), "alice", "pw"))
        .collect();
    let mut ports: Vec<u16> = sessions.iter_mut().map(|c| c.epsv_port()).collect();
    ports.sort_unstable();
    assert_eq!(
        ports,
        vec![lo, lo + 1, hi],
        "each session got its own port of the range"
    );

    let mut extra = Ctrl::login_from(loopback(4), d.addr(), "alice", "pw");
    let reply = extra.expect("EPSV", 425);
    assert!(
        reply.text().contains("Cannot open a passive port"),
        "425 says why: {reply}"
    );
    extra.expect("PASV", 425);

    // One session uses its port: a transfer through it, then the port is free again.
    let first = &mut sessions[0];
    let port = first.epsv_port();
    assert!((lo..=hi).contains(&port));
    let data = rawftp::tcp_connect(SocketAddr::new(first.server_addr().ip(), port));
    first.expect("RETR f.bin", 150);
    assert_eq!(read_all(data), common::random_bytes(5000));
    first.expect_reply(226);
    let pasv_port = extra.pasv_addr().port();
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
    let mut first = Ctrl::login(d.addr(), "alice", "pw");
    let port = first.epsv_port();
    assert!((lo..=hi).contains(&port));
    // Its share of three ports is one: a second session of the same address is refused.
    let mut second = Ctrl::login(d.addr(), "alice", "pw");
    let reply = second.expect("EPSV", 425);
    assert!(
        reply.text().contains("from your address"),
        "425 says why: {reply}"
    );
    second.expect("PASV", 425);
    // Another address still gets a port.
    let mut other = Ctrl::login_from(loopback(2), d.addr(), "alice", "pw");
    assert!((lo..=hi).contains(&other.epsv_port()));
    // A new PASV of the same session replaces its port rather than taking another.
    let port = first.epsv_port();
    // The transfer ends, the port is given back, and the second session can have one.
    let data = rawftp::tcp_connect(SocketAddr::new(first.server_addr().ip(), port));
    first.expect("RETR f.bin", 150);
    assert_eq!(read_all(data), common::random_bytes(3000));
    first.expect_reply(226);
    first.expect("NOOP", 200);
    let mut given = false;
    for _ in 0..50 {
        // The lease is given back by message: the first tries may still find it held.
        let code = second.cmd("EPSV").code;
        if code == 229 {
            given = true;
            break;
        }
        assert_eq!(code, 425);
    }
    assert!(given, "the port given back was never available again");
}
