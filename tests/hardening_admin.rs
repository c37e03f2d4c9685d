//! Attacks on the operator's side of the daemon: terminal escapes smuggled in through client
//! text (user names, commands, paths) to `actorftpd who` and the log, and requests to the admin
//! endpoint from a browser (DNS rebinding) or from any local user (no token).

mod common;
mod rawftp;

use common::*;
use rawftp::*;

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

/// A USER argument that, printed raw, retitles the window, clears the screen, sends a one-byte
/// CSI (C1), reverses the text and moves to the next line to draw a forged one. (CR and LF end
/// the FTP command line, so they cannot be sent; the unit tests of `printable` cover them.)
const HOSTILE: &str = "\x1b]0;pwned\x07\x1b[2J\u{9b}H\x7f\u{202e}\x1b[1E     9  forged";

/// Control characters a terminal acts on (newline aside): C0, DEL, C1, bidi overrides.
fn raw_controls(text: &str) -> Vec<char> {
    text.chars()
        .filter(|&c| c != '\n' && actorftpd::printable::needs_escape(c))
        .collect()
}

/// The token the daemon wrote to its token file.
fn read_token(token: &TokenFile) -> String {
    actorftpd::observability::token::AdminToken::read(token.path().as_ref())
        .expect("the daemon wrote its token")
        .as_str()
        .to_owned()
}

/// A daemon with the admin endpoint, its address and its token file.
fn admin_daemon(extra: &[&str]) -> (Daemon, SocketAddr, TokenFile) {
    let token = TokenFile::new();
    let mut args = vec!["--login-failure-delay-ms", "0"];
    args.extend_from_slice(extra);
    let (d, admin) = common::admin_daemon(&token, &args);
    (d, admin, token)
}

/// One raw HTTP/1.1 request; the status line and body.
fn http(addr: SocketAddr, path: &str, headers: &str) -> (String, String) {
    http_get(addr, "HTTP/1.1", path, headers)
}

fn who(admin: SocketAddr, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_actorftpd"))
        .arg("who")
        .args(["--admin", &admin.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run who")
}

/// Waits (polling, with a deadline) until `f` returns `Some`.
fn until<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for(DEADLINE, what, f)
}

#[test]
fn who_shows_a_user_name_full_of_terminal_escapes_escaped() {
    let (d, admin, token) = admin_daemon(&[]);
    let mut c = Ctrl::connect(d.addr());
    c.expect(&format!("USER {HOSTILE}"), 331);
    let path = token.path();
    let out = who(admin, &["--once", "--admin-token-file", &path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(raw_controls(&text), Vec::<char>::new(), "{text:?}");
    assert!(
        text.contains(
            "USER \\x1b]0;pwned\\x07\\x1b[2J\\u{9b}H\\x7f\\u{202e}\\x1b[1E     9  forged"
        ),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("9  forged")),
        "a forged table line: {text}"
    );

    let out = who(admin, &["--once", "--json", "--admin-token-file", &path]);
    assert!(out.status.success());
    let json = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(raw_controls(&json), Vec::<char>::new(), "{json:?}");
    // Still the same data, only written safely.
    let sessions: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(sessions[0]["command"], format!("USER {HOSTILE}"));
}

#[test]
fn log_lines_escape_client_text() {
    let (d, _, _) = admin_daemon(&[]);
    let mut c = Ctrl::connect(d.addr());
    c.expect(&format!("USER {HOSTILE}"), 331);
    c.expect("PASS wrong", 530);
    let line = until("the failed login in the log", || {
        d.stderr_lines()
            .into_iter()
            .find(|l| l.contains("login failed for"))
    });
    assert!(
        line.contains("login failed for \\x1b]0;pwned\\x07\\x1b[2J\\u{9b}H\\x7f\\u{202e}\\x1b[1E     9  forged ("),
        "{line}"
    );
    for l in d.stderr_lines() {
        assert_eq!(raw_controls(&l), Vec::<char>::new(), "{l:?}");
        assert!(
            !l.trim_start().starts_with("9  forged"),
            "forged line {l:?}"
        );
    }
}

#[test]
fn admin_endpoint_refuses_a_rebound_host_name() {
    let (_d, admin, token) = admin_daemon(&["--metrics-listen", "127.0.0.1:0"]);
    let auth = format!("Authorization: Bearer {}\r\n", read_token(&token));
    let port = admin.port();
    // A page on http://evil.example:PORT whose name now resolves to 127.0.0.1.
    for host in [
        format!("evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        "evil.example".to_owned(),
    ] {
        let (status, body) = http(admin, "/sessions", &format!("Host: {host}\r\n{auth}"));
        assert!(status.contains("421"), "{host}: {status}");
        assert!(!body.contains('['), "{host}: {body}");
    }
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        // An ssh -L tunnel from another port.
        "localhost:9000".to_owned(),
    ] {
        let (status, body) = http(admin, "/sessions", &format!("Host: {host}\r\n{auth}"));
        assert!(
            status.contains("200") && body.starts_with('['),
            "{host}: {status}"
        );
    }
    let (status, _) = http(
        admin,
        "/sessions",
        &format!("Host: localhost:{port}\r\nHost: evil.example\r\n{auth}"),
    );
    assert!(status.contains("400"), "two Host headers: {status}");
}

#[test]
fn metrics_endpoint_checks_host_but_needs_no_token() {
    let mut d = Daemon::start_with_args(
        &[("alice", "pw", "srv")],
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = d.announced("actorftpd metrics on ");
    let (status, body) = http(metrics, "/metrics", &format!("Host: {metrics}\r\n"));
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("actorftpd_sessions_total"), "{body}");
    let (status, _) = http(metrics, "/metrics", "Host: evil.example\r\n");
    assert!(status.contains("421"), "{status}");
}

#[test]
fn admin_endpoint_requires_the_token_on_every_path() {
    let (d, admin, token) = admin_daemon(&[]);
    let _c = Ctrl::login(d.addr(), "alice", "pw");
    let good = read_token(&token);
    let mut wrong = good.clone().into_bytes();
    wrong[0] = if wrong[0] == b'a' { b'b' } else { b'a' };
    let wrong = String::from_utf8(wrong).expect("ascii");
    for path in ["/sessions", "/metrics", "/nothing"] {
        for headers in [
            String::new(),
            format!("Authorization: Bearer {wrong}\r\n"),
            format!("Authorization: Bearer {}\r\n", &good[..good.len() - 1]),
            format!("Authorization: Basic {good}\r\n"),
        ] {
            let (status, body) = http(admin, path, &headers);
            assert!(status.contains("401"), "{path} {headers:?}: {status}");
            assert!(!body.contains("alice"), "{body}");
        }
    }
    let auth = format!("Authorization: Bearer {good}\r\n");
    let (status, body) = http(admin, "/sessions", &auth);
    assert!(
        status.contains("200") && body.contains("alice"),
        "{status} {body}"
    );
    let (status, _) = http(admin, "/metrics", &auth);
    assert!(status.contains("200"), "{status}");

    // `who` without the token file is refused and says what to pass.
    let out = who(admin, &["--once"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("401") && err.contains("--admin-token-file"),
        "{err}"
    );
    let out = who(admin, &["--once", "--admin-token-file", &token.path()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("alice"));
}

#[test]
fn admin_endpoint_without_a_token_file_or_with_a_readable_one_does_not_start() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_actorftpd"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run daemon")
    };
    let out = run(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--admin-token-file"), "{err}");

    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("token");
    std::fs::write(&file, "0123456789abcdef0123456789\n").expect("write");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = run(&["--admin-token-file", file.to_str().expect("utf8")]);
    assert_refused_in_one_line(out.status, &out.stderr, "chmod 600", "world-readable token");
}

#[test]
fn a_token_file_that_is_a_symlink_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tmp");
    // A private file the daemon's user owns, and a link to it planted where the token goes.
    let target = dir.path().join("some-private-file");
    std::fs::write(&target, "0123456789abcdef0123456789\n").expect("write");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let link = dir.path().join("admin-token");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    // A daemon that accepted the link would run on: the deadline ends it, and the test fails.
    let out = run_with_timeout(
        Command::new(env!("CARGO_BIN_EXE_actorftpd"))
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--admin-token-file", link.to_str().expect("utf8")]),
        DEADLINE,
    );
    assert_refused_in_one_line(
        out.status,
        &out.stderr,
        "symlink",
        "token through a symlink",
    );
}

#[test]
fn idle_connections_to_the_admin_endpoint_cannot_pile_up() {
    let (d, admin, token) = admin_daemon(&[]);
    // Idle connections up to the cap are held; the next ones are closed at once, unanswered.
    let held: Vec<_> = (0..actorftpd::fdlimit::ENDPOINT_REQUESTS_AT_ONCE)
        .map(|_| std::net::TcpStream::connect(admin).expect("connect"))
        .collect();
    let mut refused = 0;
    for _ in 0..20 {
        let mut extra = std::net::TcpStream::connect(admin).expect("connect");
        extra.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut buf = [0u8; 1];
        // Closed without a byte (EOF), rather than held open for the request timeout.
        if matches!(std::io::Read::read(&mut extra, &mut buf), Ok(0) | Err(_)) {
            refused += 1;
        }
    }
    assert_eq!(refused, 20);
    // The FTP side is unaffected, and once the idle ones go, requests are served again.
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    c.expect("NOOP", 200);
    drop(held);
    let auth = format!("Authorization: Bearer {}\r\n", read_token(&token));
    let status = until("the endpoint to serve again", || {
        let (status, _) = http(admin, "/sessions", &auth);
        status.contains("200").then_some(status)
    });
    assert!(status.contains("200"), "{status}");
}
