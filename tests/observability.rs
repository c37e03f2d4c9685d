//! Transfer progress and observability against the real daemon: the xferlog record of known
//! transfers, `actorftpd who --once --json` during a running transfer, the metrics counters
//! after a scripted session, and the loopback-only rule for the admin and metrics endpoints.

mod common;
mod rawftp;

use common::*;
use rawftp::*;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

/// `GET path` on an HTTP endpoint; the status line and body.
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    http_get_with(addr, path, "")
}

/// `GET path` with extra header lines (each ending in CRLF); the status line and body.
fn http_get_with(addr: SocketAddr, path: &str, headers: &str) -> (String, String) {
    common::http_get(addr, "HTTP/1.0", path, headers)
}

/// The `Authorization` header line the daemon wants.
fn auth_header(token: &TokenFile) -> String {
    let token = actorftpd::observability::token::AdminToken::read(token.path().as_ref())
        .expect("daemon wrote it");
    format!("Authorization: Bearer {}\r\n", token.as_str())
}

/// Waits (polling the server's own answers, with a deadline) until `f` returns `Some`.
fn until<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for(DEADLINE, what, f)
}

#[test]
fn xferlog_records_known_transfers_field_by_field() {
    let tmp_log = tempfile::tempdir().expect("tmp");
    let log = tmp_log.path().join("xferlog");
    let log_arg = log.to_str().expect("utf8");
    let d = Daemon::start_with_args(&[("alice", "pw", "srv")], &["--xferlog", log_arg]);
    let root = d.root("alice");
    let data = random_bytes(123_457);
    write_file(&root.join("down load.bin"), &data);
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    c.expect("TYPE I", 200);
    assert_eq!(c.download("RETR down load.bin").len(), data.len());
    c.upload("STOR up.bin", &data[..1000]);
    c.expect("TYPE A", 200);
    c.upload("STOR text.txt", b"a\r\nb\r\n");
    let lines = until("three xferlog lines", || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        (lines.len() >= 3).then_some(lines)
    });
    let fields: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for f in &fields {
        assert_eq!(f.len(), 18, "xferlog(5) has 18 fields: {f:?}");
        assert!(
            ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&f[0]),
            "{f:?}"
        );
        assert_eq!(f[4].len(), 4, "year: {f:?}");
        assert!(f[5].parse::<u64>().is_ok(), "transfer time: {f:?}");
        assert_eq!(f[6], "127.0.0.1");
        assert_eq!(&f[10..], ["_", f[11], "r", "alice", "ftp", "0", "*", "c"]);
    }
    // RETR: outgoing, binary, the real path with its space written as `_`.
    let expected_down = root.join("down_load.bin");
    assert_eq!(fields[0][7], data.len().to_string());
    assert_eq!(fields[0][8], expected_down.to_str().expect("utf8"));
    assert_eq!((fields[0][9], fields[0][11]), ("b", "o"));
    assert_eq!(
        (fields[1][7], fields[1][9], fields[1][11]),
        ("1000", "b", "i")
    );
    // TYPE A upload: ascii, and the size is the bytes stored (LF line ends).
    assert_eq!((fields[2][7], fields[2][9], fields[2][11]), ("4", "a", "i"));
}

#[test]
fn xferlog_marks_an_aborted_transfer_incomplete() {
    let tmp_log = tempfile::tempdir().expect("tmp");
    let log = tmp_log.path().join("xferlog");
    let d = Daemon::start_with_args(
        &[("alice", "pw", "srv")],
        &["--xferlog", log.to_str().expect("utf8")],
    );
    write_file(&d.root("alice").join("big.bin"), &random_bytes(32 * MIB));
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    c.expect("TYPE I", 200);
    let conn = c.epsv();
    c.expect("RETR big.bin", 150);
    c.send("ABOR");
    c.expect_reply(426);
    c.expect_reply(226);
    drop(conn);
    let line = until("the xferlog line", || {
        std::fs::read_to_string(&log).ok().filter(|t| !t.is_empty())
    });
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.last(), Some(&"i"), "{line}");
    assert!(
        f[7].parse::<u64>().expect("bytes") < 32 * MIB as u64,
        "{line}"
    );
}

#[test]
fn who_once_json_shows_a_session_and_its_running_transfer() {
    let token = TokenFile::new();
    let (d, admin) = admin_daemon(&token, &[]);
    write_file(&d.root("alice").join("big.bin"), &random_bytes(64 * MIB));
    let mut idle = Ctrl::login(d.addr(), "alice", "pw");
    idle.expect("NOOP", 200);
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    c.expect("TYPE I", 200);
    let mut conn = c.epsv();
    c.expect("RETR big.bin", 150);
    // Read a little so bytes move; the rest waits in full socket buffers.
    let mut buf = vec![0u8; 4 * MIB];
    std::io::Read::read_exact(&mut conn, &mut buf).expect("some data");
    let who = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
            .arg("who")
            .args(["--admin", &admin.to_string()])
            .args(["--admin-token-file", &token.path()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run who");
        assert!(
            out.status.success(),
            "who failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let snapshot = until("a transfer with bytes in the snapshot", || {
        let json: serde_json::Value = serde_json::from_str(&who(&["--once", "--json"])).ok()?;
        let sessions = json.as_array()?.clone();
        let busy = sessions.iter().find(|s| s["transfer"].is_object())?.clone();
        (busy["transfer"]["bytes"].as_u64()? > 0).then_some((sessions, busy))
    });
    let (sessions, busy) = snapshot;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert!(
        sessions.iter().all(|s| s["user"] == "alice"),
        "{sessions:?}"
    );
    assert_eq!(busy["transfer"]["verb"], "RETR");
    assert_eq!(busy["transfer"]["path"], "/big.bin");
    assert_eq!(busy["transfer"]["direction"], "download");
    assert_eq!(busy["transfer"]["size"], 64 * MIB as u64);
    assert_eq!(busy["command"], "RETR big.bin");
    let text = who(&["--once"]);
    assert!(
        text.starts_with("actorftpd: 2 sessions, 1 transfer"),
        "{text}"
    );
    assert!(
        text.contains("download /big.bin [") && text.contains("ETA"),
        "{text}"
    );
    c.send("ABOR");
}

#[test]
fn metrics_counters_move_by_the_right_amounts() {
    let mut d = Daemon::start_with_args(
        &[("alice", "pw", "srv")],
        &[
            "--metrics-listen",
            "127.0.0.1:0",
            "--login-failure-delay-ms",
            "0",
        ],
    );
    let metrics = d.announced("actorftpd metrics on ");
    let data = random_bytes(54_321);
    write_file(&d.root("alice").join("f.bin"), &data);
    let value = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    };
    let (status, before) = http_get(metrics, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert_eq!(value(&before, "actorftpd_sessions_total"), 0);

    let mut bad = Ctrl::connect(d.addr());
    bad.expect("USER alice", 331);
    bad.expect("PASS nope", 530);
    bad.expect("QUIT", 221);
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    for _ in 0..3 {
        c.expect("NOOP", 200);
    }
    c.expect("TYPE I", 200);
    assert_eq!(c.download("RETR f.bin").len(), data.len());
    c.upload("STOR g.bin", &data[..100]);
    c.expect("QUIT", 221);

    let after = until("both sessions closed in the metrics", || {
        let (_, text) = http_get(metrics, "/metrics");
        (value(&text, "actorftpd_sessions_total") == 2
            && value(&text, "actorftpd_sessions_open") == 0)
            .then_some(text)
    });
    for (name, want) in [
        ("actorftpd_logins_total{result=\"success\"}", 1),
        ("actorftpd_logins_total{result=\"failure\"}", 1),
        ("actorftpd_commands_total{verb=\"NOOP\"}", 3),
        ("actorftpd_commands_total{verb=\"RETR\"}", 1),
        ("actorftpd_commands_total{verb=\"QUIT\"}", 2),
        ("actorftpd_replies_total{code=\"530\"}", 1),
        ("actorftpd_replies_total{code=\"226\"}", 2),
        (
            "actorftpd_transfer_bytes_total{direction=\"out\"}",
            data.len() as u64,
        ),
        ("actorftpd_transfer_bytes_total{direction=\"in\"}", 100),
        ("actorftpd_transfers_total{result=\"complete\"}", 2),
        ("actorftpd_transfers_active", 0),
    ] {
        assert_eq!(value(&after, name), want, "{name} in\n{after}");
    }
    let (status, _) = http_get(metrics, "/sessions");
    assert!(
        status.contains("404"),
        "the metrics endpoint does not list sessions: {status}"
    );
}

#[test]
fn admin_and_metrics_endpoints_refuse_non_loopback_unless_forced() {
    for args in [
        vec!["--admin-listen", "0.0.0.0:0"],
        vec!["--metrics-listen", "0.0.0.0:0"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run daemon");
        assert!(!out.status.success(), "{args:?} started");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("allow-remote"),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = TokenFile::new();
    let mut d = Daemon::start_with_args(
        &[("alice", "pw", "srv")],
        &[
            "--admin-listen",
            "0.0.0.0:0",
            "--admin-allow-remote",
            "--admin-token-file",
            &token.path(),
        ],
    );
    let admin = d.announced("actorftpd admin endpoint on ");
    let local: SocketAddr = ([127, 0, 0, 1], admin.port()).into();
    let (status, body) = http_get_with(local, "/sessions", &auth_header(&token));
    assert!(
        status.contains("200") && body.starts_with('['),
        "{status} {body}"
    );
    let (status, _) = http_get_with(local, "/../../etc/passwd", &auth_header(&token));
    assert!(status.contains("404"), "{status}");
    // `who` with the address as announced (0.0.0.0:PORT) goes to loopback and names it in Host.
    let out = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
        .args(["who", "--once", "--admin", &admin.to_string()])
        .args(["--admin-token-file", &token.path()])
        .stdin(Stdio::null())
        .output()
        .expect("run who");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn admin_endpoint_refuses_oversized_and_non_get_requests() {
    let token = TokenFile::new();
    let (_d, admin) = admin_daemon(&token, &[]);
    let ask = |request: &[u8]| -> String {
        http_exchange(admin, request)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    };
    let mut huge = b"GET /sessions HTTP/1.1\r\nX: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    assert!(
        ask(&huge).contains("431"),
        "oversized request head accepted"
    );
    assert!(ask(b"POST /sessions HTTP/1.1\r\n\r\n").contains("405"));
    let good = format!("GET /sessions HTTP/1.1\r\n{}\r\n", auth_header(&token));
    assert!(ask(good.as_bytes()).contains("200"));
}
