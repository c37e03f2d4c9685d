//! The daemon as an operator runs it: a configuration file and `check-config`, refused starts
//! (one line each), signals (SIGHUP during an upload, a second SIGTERM), log files and their
//! reopening, `--run-as` and `--umask` (as root), and the packaging files in src/dist/.
//!
//! Every test starts the real binary; nothing waits on a clock, only on observable state with a
//! deadline.

mod common;

use common::{cannot_run, sha256_hex, Daemon};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_actorftpd");
const DEADLINE: Duration = Duration::from_secs(20);

/// A users file with `users` (name, password), each with its root `<dir>/roots/<name>`.
fn users_file(dir: &Path, users: &[(&str, &str)]) -> (PathBuf, Vec<(String, String, PathBuf)>) {
    let mut toml = String::new();
    let mut table = Vec::new();
    for (name, pass) in users {
        let root = dir.join("roots").join(name);
        std::fs::create_dir_all(&root).expect("root");
        let hash = actorftpd::auth::hash_password(pass).expect("hash");
        toml.push_str(&format!(
            "[[user]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nroot = \"{}\"\n\n",
            root.display()
        ));
        table.push((name.to_string(), pass.to_string(), root));
    }
    let path = dir.join("users.toml");
    std::fs::write(&path, toml).expect("users file");
    (path, table)
}

/// Runs the binary to completion (it must stop by itself: a refused start or check-config).
fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run actorftpd")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Waits until `path` holds a line containing `needle`; returns the file's text.
fn wait_for_line(path: &Path, needle: &str) -> String {
    let end = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| l.contains(needle)) {
            return text;
        }
        assert!(
            Instant::now() < end,
            "no line with {needle:?} in {} within {DEADLINE:?}:\n{text}",
            path.display()
        );
        std::thread::yield_now();
    }
}

fn signal(d: &Daemon, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &d.pid().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig}");
}

/// A daemon with a users file and a log file (info level), plus `extra` arguments.
fn logged_daemon(extra: &[&str]) -> (Daemon, PathBuf) {
    let tmp = TempDir::new().expect("tmp");
    let (users, table) = users_file(tmp.path(), &[("alice", "pw")]);
    let log = tmp.path().join("actorftpd.log");
    let mut args: Vec<String> = vec![
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--users".into(),
        users.display().to_string(),
        "--log-file".into(),
        log.display().to_string(),
        "--log-level".into(),
        "info".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    (Daemon::start_custom(tmp, &args, table), log)
}

#[test]
fn config_file_sets_options_and_the_command_line_wins() {
    let tmp = TempDir::new().expect("tmp");
    let (users, table) = users_file(tmp.path(), &[("alice", "pw")]);
    let config = tmp.path().join("actorftpd.toml");
    // `listen` here would fail (port 1 needs privilege): the command line's must win.
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:1\"\nusers = \"{}\"\nmax_sessions_per_ip = 1\nlog_level = \"warn\"\n",
            users.file_name().and_then(|n| n.to_str()).expect("name")
        ),
    )
    .expect("config");
    let args = [
        "--config",
        config.to_str().expect("utf-8"),
        "--listen",
        "127.0.0.1:0",
    ];
    let d = Daemon::start_custom(tmp, &args, table);
    // The users file named relative to the config file, and its per-IP limit, are in force.
    let _first = d.login("alice");
    let mut second = std::net::TcpStream::connect(d.addr()).expect("connect");
    second
        .set_read_timeout(Some(DEADLINE))
        .expect("read timeout");
    let mut reply = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&mut second), &mut reply)
        .expect("reply");
    assert!(reply.starts_with("421"), "{reply:?}");
}

#[test]
fn check_config_accepts_a_good_file_and_names_the_line_of_a_bad_one() {
    let tmp = TempDir::new().expect("tmp");
    let (users, _) = users_file(tmp.path(), &[("alice", "pw")]);
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, format!("users = \"{}\"\n", users.display())).expect("write");
    let out = run(&["check-config", good.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok; 1 account(s)"));

    let cases: Vec<(String, &str)> = vec![
        (
            "listen = \"127.0.0.1:0\"\n\nmax_sesions = 3\n".into(),
            "line 3: unknown field `max_sesions`",
        ),
        ("idle_timeout = \"soon\"\n".into(), "line 1"),
        (
            "tls_key = \"k.pem\"\n".into(),
            "line 1: tls_key: needs --tls-cert",
        ),
        // The users file it names is checked too, with its own line.
        (
            format!(
                "users = \"{}\"\n",
                tmp.path().join("bad-users.toml").display()
            ),
            "bad-users.toml: line 2",
        ),
    ];
    std::fs::write(
        tmp.path().join("bad-users.toml"),
        "[[user]]\nnome = \"x\"\n",
    )
    .expect("write");
    for (text, want) in cases {
        let bad = tmp.path().join("bad.toml");
        std::fs::write(&bad, &text).expect("write");
        let out = run(&["check-config", bad.to_str().expect("utf-8")]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{text:?}: {err}");
        assert!(err.contains(want), "{text:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
}

#[test]
fn contradictions_stop_the_start_with_one_line() {
    let tmp = TempDir::new().expect("tmp");
    let (users, _) = users_file(tmp.path(), &[("alice", "pw")]);
    let tls_users = tmp.path().join("tls-users.toml");
    let text = std::fs::read_to_string(&users).expect("read");
    std::fs::write(
        &tls_users,
        text.replace("root =", "require_tls = true\nroot ="),
    )
    .expect("w");
    let u = users.to_str().expect("utf-8");
    let t = tls_users.to_str().expect("utf-8");
    let cases: &[(&[&str], &str)] = &[
        (&["--tls-cert", "c.pem"], "--tls-cert: needs --tls-key"),
        (&["--tls-key", "k.pem"], "--tls-key: needs --tls-cert"),
        (&["--require-tls-data"], "--require-tls-data: needs TLS"),
        (
            &["--implicit-tls-listen", "127.0.0.1:0"],
            "--implicit-tls-listen: needs TLS",
        ),
        (
            &["--users", t],
            "has require_tls = true, but no TLS is configured",
        ),
        (
            &["--users", u, "--passive-ports", "40000-40000"],
            "one port",
        ),
        (&["--users", u, "--umask", "888"], "--umask"),
        (&["--users", u, "--log-format", "xml"], "--log-format"),
        (&["--listen", "nowhere"], "--listen"),
        (&["--run-as", "ftp:"], "--run-as"),
    ];
    for (args, want) in cases {
        let mut all: Vec<&str> = args.to_vec();
        if !all.contains(&"--listen") {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        let out = run(&all);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    }
    // clap's usage line no longer lists the options that have defaults as required.
    let out = run(&["--bogus"]);
    assert!(!stderr(&out).contains("--idle-timeout"), "{}", stderr(&out));
}

#[test]
fn listen_takes_a_host_name() {
    let tmp = TempDir::new().expect("tmp");
    let (users, table) = users_file(tmp.path(), &[("alice", "pw")]);
    let args = [
        "--listen",
        "localhost:0",
        "--users",
        users.to_str().expect("utf-8"),
        "-q",
    ];
    let d = Daemon::start_custom(tmp, &args, table);
    assert!(d.addr().ip().is_loopback(), "{}", d.addr());
    let _ftp = d.login("alice");
}

#[test]
fn sighup_during_an_upload_reopens_the_logs_and_the_upload_completes() {
    let logs = TempDir::new().expect("tmp");
    let xferlog = logs.path().join("xfer.log");
    let (mut d, log) = logged_daemon(&["--xferlog", xferlog.to_str().expect("utf-8")]);
    let data = common::random_bytes(3 * common::MIB);
    let mut ftp = d.login("alice");
    let mut upload = ftp.put_with_stream("big.bin").expect("STOR opens");
    upload
        .write_all(&data[..data.len() / 2])
        .expect("first half");
    // Logrotate: move both logs away, then SIGHUP.
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).expect("rotate log");
    std::fs::rename(&xferlog, xferlog.with_extension("log.1")).ok();
    signal(&d, "HUP");
    let text = wait_for_line(&log, "SIGHUP:");
    assert!(
        text.contains("log file") && text.contains("reopened"),
        "{text}"
    );
    upload
        .write_all(&data[data.len() / 2..])
        .expect("second half");
    upload.finish().expect("226 after SIGHUP");
    let on_disk = std::fs::read(d.root("alice").join("big.bin")).expect("uploaded file");
    assert_eq!(sha256_hex(&on_disk), sha256_hex(&data));
    // Still serving, and the transfer went to the new transfer log.
    let mut again = d.login("alice");
    assert_eq!(common::get(&mut again, "big.bin").len(), data.len());
    wait_for_line(&xferlog, "big.bin");
    assert!(d.wait_exit(Duration::ZERO).is_none(), "daemon stopped");
}

#[test]
fn sighup_applies_a_new_users_file_to_new_logins_and_keeps_a_bad_one_out() {
    let (d, log) = logged_daemon(&["--login-failure-delay-ms", "0"]);
    let mut before = d.login("alice");
    // The operator changes alice's password and adds bob, then sends SIGHUP.
    users_file(d.tmp(), &[("alice", "new-pw"), ("bob", "bob-pw")]);
    signal(&d, "HUP");
    let text = wait_for_line(&log, "reloaded: 2 account(s)");
    assert!(text.contains("users file"), "{text}");
    // New logins use the new file; the session logged in before goes on.
    let mut bob = d.connect();
    bob.login("bob", "bob-pw")
        .expect("bob, added by the reload");
    assert!(
        d.connect().login("alice", "pw").is_err(),
        "old password still works"
    );
    d.connect()
        .login("alice", "new-pw")
        .expect("alice with her new password");
    before.noop().expect("the earlier session still works");
    // A users file with a mistake is refused, with its line, and the one in force stays.
    std::fs::write(d.tmp().join("users.toml"), "[[user]]\nname = 1\n").expect("write");
    signal(&d, "HUP");
    let text = wait_for_line(&log, "refused, the previous one stays");
    assert!(text.contains("line"), "{text}");
    d.connect()
        .login("bob", "bob-pw")
        .expect("bob still logs in after the bad file");
}

#[test]
fn sighup_applies_a_new_certificate_to_new_tls_connections() {
    use common::tls::{client_config, make_cert, tls_client};
    use std::io::Read;
    let (old, new) = (make_cert(), make_cert());
    let files = TempDir::new().expect("tmp");
    let (cert, key) = (files.path().join("cert.pem"), files.path().join("key.pem"));
    let install = |c: &common::tls::Cert| {
        std::fs::copy(&c.cert, &cert).expect("cert");
        std::fs::copy(&c.key, &key).expect("key");
    };
    install(&old);
    let (mut d, log) = logged_daemon(&[
        "--tls-cert",
        cert.to_str().expect("utf-8"),
        "--tls-key",
        key.to_str().expect("utf-8"),
        "--implicit-tls-listen",
        "127.0.0.1:0",
    ]);
    let prefix = "actorftpd implicit TLS on ";
    let line = d
        .wait_for_stdout_line(|l| l.starts_with(prefix), DEADLINE)
        .expect("implicit address");
    let implicit: std::net::SocketAddr = line[prefix.len()..].trim().parse().expect("address");
    // Whether a client that trusts only `c` completes a handshake and reads the 220.
    let greets = |c: &common::tls::Cert| {
        let sock = std::net::TcpStream::connect(implicit).expect("connect");
        sock.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut tls = tls_client(sock, client_config(c));
        let mut greeting = [0u8; 4];
        tls.read_exact(&mut greeting).is_ok() && &greeting == b"220 "
    };
    assert!(greets(&old) && !greets(&new));
    install(&new);
    signal(&d, "HUP");
    let text = wait_for_line(&log, "reloaded for new connections");
    assert!(text.contains("TLS certificate"), "{text}");
    assert!(greets(&new), "the new certificate is not served");
    assert!(!greets(&old), "the old certificate is still served");
}

#[test]
fn a_second_sigterm_stops_at_once() {
    let (mut d, log) = logged_daemon(&["--shutdown-grace", "600"]);
    let mut ftp = d.login("alice");
    let mut upload = ftp.put_with_stream("slow.bin").expect("STOR opens");
    upload.write_all(b"some bytes").expect("write");
    signal(&d, "TERM");
    wait_for_line(&log, "stopping");
    // The upload holds the graceful shutdown open (600 s grace).
    assert!(
        d.wait_exit(Duration::ZERO).is_none(),
        "stopped before its grace"
    );
    signal(&d, "TERM");
    let status = d
        .wait_exit(DEADLINE)
        .expect("exits promptly on the second SIGTERM");
    assert_eq!(status.code(), Some(1), "{status:?}");
    wait_for_line(&log, "second stop signal");
    drop(upload);
}

#[test]
fn json_logs_escape_control_characters() {
    let (d, log) = logged_daemon(&["--log-format", "json"]);
    let mut ftp = d.connect();
    let _ = ftp.login("evil\u{1b}[31m", "x");
    let text = wait_for_line(&log, "evil");
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON object per line");
        assert!(v["time"].is_string() && v["level"].is_string(), "{line}");
    }
    assert!(!text.contains('\u{1b}'), "raw escape in the log");
    assert!(text.contains("\\\\x1b"), "{text}");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}

#[test]
fn run_as_switches_every_thread_and_uploads_belong_to_that_account() {
    if !is_root() {
        cannot_run(
            "root is required by this test (CI runs as root)",
            "not root",
        );
        return;
    }
    let tmp = TempDir::new().expect("tmp");
    // The account's uid and gid: nobody (65534) everywhere this runs.
    let (users, table) = users_file(tmp.path(), &[("alice", "pw")]);
    let root = &table[0].2;
    // The root must let the account write; the tree above it must let it in.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(
        tmp.path().join("roots"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::os::unix::fs::chown(root, Some(65534), Some(65534)).expect("chown root");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--users",
        users.to_str().expect("utf-8"),
        "--run-as",
        "65534:65534",
        "--umask",
        "027",
        "-q",
    ];
    let d = Daemon::start_custom(tmp, &args, table.clone());
    // Every thread of the daemon, now running, reports the new ids.
    let tasks = std::fs::read_dir(format!("/proc/{}/task", d.pid())).expect("tasks");
    let mut threads = 0;
    for t in tasks.flatten() {
        let status = std::fs::read_to_string(t.path().join("status")).expect("status");
        for key in ["Uid:", "Gid:"] {
            let line = status.lines().find(|l| l.starts_with(key)).expect("ids");
            let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
            assert_eq!(ids, ["65534"; 4], "{t:?}: {line}");
        }
        let groups = status
            .lines()
            .find(|l| l.starts_with("Groups:"))
            .expect("groups");
        assert_eq!(
            groups.split_whitespace().skip(1).collect::<Vec<_>>(),
            ["65534"]
        );
        threads += 1;
    }
    assert!(threads > 1, "the daemon runs threads");
    let mut ftp = d.login("alice");
    common::put(&mut ftp, "owned.bin", b"whose?");
    ftp.mkdir("made").expect("MKD");
    let file = std::fs::metadata(root.join("owned.bin")).expect("uploaded");
    assert_eq!((file.uid(), file.gid()), (65534, 65534));
    assert_eq!(file.mode() & 0o777, 0o640, "0644 minus umask 027");
    let dir = std::fs::metadata(root.join("made")).expect("made");
    assert_eq!(dir.mode() & 0o777, 0o750, "0755 minus umask 027");
}

#[test]
fn a_low_port_refusal_names_both_ways() {
    if is_root() {
        // Root may bind it; the message is checked where the test runs unprivileged.
        return;
    }
    let out = run(&["--listen", "127.0.0.1:21", "--root", "/tmp"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--run-as") && err.contains("cap_net_bind_service"),
        "{err}"
    );
}

#[test]
fn the_dist_configuration_passes_check_config() {
    let tmp = TempDir::new().expect("tmp");
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dist");
    let config = tmp.path().join("actorftpd.toml");
    std::fs::copy(dist.join("actorftpd.toml"), &config).expect("copy");
    users_file(tmp.path(), &[("alice", "pw")]);
    let out = run(&["check-config", config.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = std::fs::read_to_string(dist.join("actorftpd.service")).expect("unit");
    for line in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ExecStart=/usr/bin/actorftpd --config /etc/actorftpd/actorftpd.toml",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line}");
    }
}

#[test]
fn the_man_page_is_the_help_text() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dist/actorftpd.1");
    let page = actorftpd::cli::man_page();
    if std::env::var_os("ACTORFTPD_WRITE_MAN").is_some() {
        std::fs::write(&path, &page).expect("write man page");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == page,
        "src/dist/actorftpd.1 differs from --help; regenerate it with \
         ACTORFTPD_WRITE_MAN=1 cargo test --test running_as_a_service the_man_page"
    );
}

/// The daemon's log lines, read from `log` until `done` holds for its text.
fn log_until(log: &Path, what: &str, done: impl Fn(&str) -> bool) -> String {
    common::wait_for(DEADLINE, what, || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        done(&text).then_some(text)
    })
}

/// One PASS on a fresh connection; the reply's text as sent.
fn pass_reply(addr: std::net::SocketAddr, user: &str, pass: &str) -> String {
    use std::io::{BufRead, BufReader};
    let s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    let mut w = s;
    let mut line = String::new();
    r.read_line(&mut line).expect("220");
    write!(w, "USER {user}\r\n").expect("USER");
    line.clear();
    r.read_line(&mut line).expect("331");
    assert!(line.starts_with("331 "), "{user}: {line}");
    write!(w, "PASS {pass}\r\n").expect("PASS");
    line.clear();
    r.read_line(&mut line).expect("PASS reply");
    line
}

#[test]
fn the_log_says_why_a_login_failed_and_the_client_sees_one_answer() {
    let tmp = TempDir::new().expect("tmp");
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).expect("root");
    let hash = actorftpd::auth::hash_password("pw").expect("hash");
    let user = |name: &str, extra: &str| {
        format!(
            "[[user]]\nname = \"{name}\"\npassword_hash = \"{hash}\"\nroot = \"root\"\n{extra}\n"
        )
    };
    let users = [
        user("alice", ""),
        user("bob", "allowed_networks = [\"10.0.0.0/8\"]"),
        user("carol", "enabled = false"),
        user("dave", "require_tls = true"),
    ]
    .concat();
    std::fs::write(tmp.path().join("users.toml"), users).expect("users");
    let cert = common::tls::make_cert();
    let log = tmp.path().join("actorftpd.log");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--users",
        tmp.path().join("users.toml").to_str().expect("utf-8"),
        "--tls-cert",
        cert.cert_arg(),
        "--tls-key",
        cert.key_arg(),
        "--log-file",
        log.to_str().expect("utf-8"),
        "--log-level",
        "info",
        "--login-failure-delay-ms",
        "0",
        "--ban-failures",
        "100",
    ]
    .map(String::from);
    let d = Daemon::start_custom(tmp, &args, vec![]);
    let cases = [
        ("alice", "wrong", "wrong password"),
        ("nobody", "pw", "unknown user"),
        ("bob", "pw", "source network not allowed"),
        ("carol", "pw", "account disabled"),
        ("dave", "pw", "TLS required"),
    ];
    let replies: Vec<String> = cases
        .iter()
        .map(|(name, pass, _)| pass_reply(d.addr(), name, pass))
        .collect();
    assert!(replies[0].starts_with("530 "), "{replies:?}");
    assert!(
        replies.iter().all(|r| r == &replies[0]),
        "every refusal must read the same: {replies:?}"
    );
    let text = log_until(&log, "five failure lines", |t| {
        t.matches("login failed for").count() >= 5
    });
    for (name, _, why) in cases {
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("login failed for {name} (")) && l.contains(why)),
            "no {why:?} line for {name}:\n{text}"
        );
    }
    // The right password still logs in.
    assert!(pass_reply(d.addr(), "alice", "pw").starts_with("230 "));
}

#[test]
fn log_lines_carry_no_debug_formatted_errors() {
    let (d, log) = logged_daemon(&[]);
    let root = d.root("alice");
    std::fs::create_dir(root.join("d")).expect("mkdir");
    let mut ftp = d.login("alice");
    // An upload whose folder disappears under it cannot be moved into place.
    let mut upload = ftp.put_with_stream("d/x.bin").expect("STOR opens");
    upload.write_all(&[7u8; 100_000]).expect("write");
    std::fs::remove_dir_all(root.join("d")).expect("remove the folder");
    assert!(upload.finish().is_err(), "the upload cannot succeed");
    // A transfer whose data connection goes away.
    common::write_file(
        &root.join("big.bin"),
        &common::random_bytes(16 * common::MIB),
    );
    let mut stream = ftp.retr_as_stream("big.bin").expect("RETR opens");
    let mut some = [0u8; 1000];
    std::io::Read::read_exact(&mut stream, &mut some).expect("some bytes");
    // Closing the data connection early: the server's next writes fail.
    assert!(stream.finish().is_err(), "RETR cut short is not a 226");
    let text = log_until(&log, "both failures logged", |t| {
        t.contains("STOR /d/x.bin failed") && t.contains("RETR /big.bin failed")
    });
    let stor = text
        .lines()
        .find(|l| l.contains("STOR /d/x.bin failed"))
        .expect("STOR line");
    assert!(stor.contains("No such file or directory"), "{stor}");
    for debug in [
        "Some(",
        "None",
        "Os {",
        "kind:",
        "(\"",
        "LocalIo",
        "ConnectionLost",
    ] {
        assert!(
            !text.lines().any(|l| l.contains(debug)),
            "{debug:?} in the log:\n{text}"
        );
    }
}

#[test]
fn tls_log_lines_name_their_session_and_ip_sni_is_not_warned_about() {
    if !common::require_tool("openssl") {
        return;
    }
    let cert = common::tls::make_cert();
    let (mut d, log) = logged_daemon(&[
        "--tls-cert",
        cert.cert_arg(),
        "--tls-key",
        cert.key_arg(),
        "--implicit-tls-listen",
        "127.0.0.1:0",
    ]);
    let prefix = "actorftpd implicit TLS on ";
    let line = d
        .wait_for_stdout_line(|l| l.starts_with(prefix), DEADLINE)
        .expect("implicit address");
    let implicit: std::net::SocketAddr = line[prefix.len()..].trim().parse().expect("address");
    // A client that names the server by IP address and sends it as SNI, as lftp (GnuTLS) does;
    // it says QUIT, and the server's close ends it.
    let quit = d.tmp().join("quit.txt");
    std::fs::write(&quit, "QUIT\r\n").expect("quit");
    let out = common::run_with_timeout(
        Command::new("sh").args([
            "-c",
            "exec openssl s_client -connect \"$1\" -servername 127.0.0.1 -quiet < \"$2\"",
            "sh",
            &implicit.to_string(),
            quit.to_str().expect("utf-8"),
        ]),
        DEADLINE,
    );
    let said = out.stdout_text();
    assert!(
        said.contains("220 ") && said.contains("221 "),
        "{said}{}",
        out.stderr_text()
    );
    // A client that speaks no TLS at all on the implicit port.
    let mut plain = std::net::TcpStream::connect(implicit).expect("connect");
    plain.write_all(b"USER alice\r\n").expect("write");
    let _ = std::io::Read::read_to_end(&mut plain, &mut Vec::new());
    let text = log_until(&log, "the failed handshake", |t| {
        t.contains("implicit TLS handshake failed")
    });
    let failed = text
        .lines()
        .find(|l| l.contains("implicit TLS handshake failed"))
        .expect("line");
    assert!(
        failed.contains("] [#") && failed.contains(" 127.0.0.1:"),
        "no session id: {failed}"
    );
    assert!(
        !text.contains("SNI") && !text.contains("rustls"),
        "rustls' per-connection warning is logged:\n{text}"
    );
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::net::UnixDatagram;
    let tmp = TempDir::new().expect("tmp");
    let (users, _) = users_file(tmp.path(), &[("alice", "pw")]);
    let socket_path = tmp.path().join("notify.sock");
    let systemd = UnixDatagram::bind(&socket_path).expect("bind");
    systemd.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut child = Command::new(BIN)
        .args(["--listen", "127.0.0.1:0", "-q", "--users"])
        .arg(&users)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id().to_string();
    let kill = |sig: &str| {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), pid.as_str()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig}");
    };
    let next = || {
        let mut buf = [0u8; 256];
        let n = systemd
            .recv(&mut buf)
            .expect("a notification within the deadline");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    // READY=1 comes once the daemon is listening: the address is already announced.
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("listening line");
    let addr: std::net::SocketAddr = first
        .trim()
        .strip_prefix("actorftpd listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{first}"));
    assert_eq!(ready, "READY=1");
    let mut ftp = common::ftp_connect(addr);
    ftp.login("alice", "pw").expect("login once ready");
    kill("HUP");
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    ftp.noop().expect("still serving after the reload");
    drop(ftp);
    kill("TERM");
    assert_eq!(next(), "STOPPING=1");
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("the daemon did not stop");
        }
        std::thread::yield_now();
    };
    assert!(status.success(), "{status:?}");
}
