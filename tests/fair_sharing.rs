//! Sharing the server fairly (issue 19): bandwidth limits per user and for the daemon, both
//! directions, measured within generous bounds on 8 MiB; the banner and the welcome message as
//! exact multi-line replies; `actorftpd kick` ending a session mid-upload with nothing left on
//! disk; upload hooks (program and URL) told exactly once per completed upload, never for an
//! aborted one. Everything on loopback, against the real daemon.

mod common;
mod rawftp;

use common::backend::{Kind, Served, ALICE};
use common::*;
use rawftp::Ctrl;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIMIT: u64 = 4 * MIB as u64;
const BIG: usize = 8 * MIB;

fn hash(p: &str) -> String {
    toml_string(&actorftpd::auth::hash_password(p).expect("hash"))
}

/// alice (limited by the users file to 4M both ways, with a welcome message) and bob
/// (unlimited), plus `extra` options.
fn two_users(extra: &[&str]) -> Daemon {
    let tmp = tempfile::TempDir::new().expect("tmp");
    for u in ["alice", "bob"] {
        std::fs::create_dir_all(tmp.path().join(u)).expect("root");
    }
    let toml = format!(
        "[[user]]\nname = \"alice\"\npassword_hash = {}\nroot = \"alice\"\n\
         max_download_rate = \"4M\"\nmax_upload_rate = \"4M\"\n\
         welcome = \"Hello alice\\n230 not a final line\\nbe nice\"\n\n\
         [[user]]\nname = \"bob\"\npassword_hash = {}\nroot = \"bob\"\n",
        hash("pw"),
        hash("pw"),
    );
    let root = tmp.path().to_path_buf();
    let users = vec![
        ("alice".into(), "pw".into(), root.join("alice")),
        ("bob".into(), "pw".into(), root.join("bob")),
    ];
    Daemon::start_with_users_file(tmp, &toml, extra, users)
}

fn rate(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / took.as_secs_f64()
}

/// Downloads then uploads 8 MiB as `user`; the measured rates (bytes/s), each transfer checked
/// by sha256 and the upload on disk.
fn round_trip(d: &Daemon, user: &str, seed: u64) -> (f64, f64) {
    let data = random_bytes_seeded(seed, BIG);
    let root = d.root(user);
    std::fs::write(root.join("down.bin"), &data).expect("seed file");
    let mut ftp = d.login(user);
    let start = Instant::now();
    let got = get(&mut ftp, "down.bin");
    let down = rate(got.len(), start.elapsed());
    assert_eq!(sha256_hex(&got), sha256_hex(&data), "download is intact");
    let start = Instant::now();
    // put_file returns after the 226: the time includes every byte the server took.
    put(&mut ftp, "up.bin", &data);
    let up = rate(data.len(), start.elapsed());
    assert_file_holds(&root.join("up.bin"), &data, "upload");
    (down, up)
}

fn assert_near_limit(measured: f64, what: &str) {
    let limit = LIMIT as f64;
    assert!(
        measured > 0.5 * limit && measured < 1.5 * limit,
        "{what}: {:.2} MiB/s, limit {:.2} MiB/s",
        measured / MIB as f64,
        limit / MIB as f64
    );
}

#[test]
fn a_users_limits_hold_both_ways_and_an_unlimited_user_is_not_slowed() {
    let d = two_users(&[]);
    let (down, up) = round_trip(&d, "alice", 1);
    assert_near_limit(down, "alice's limited RETR");
    assert_near_limit(up, "alice's limited STOR");
    let (down, up) = round_trip(&d, "bob", 2);
    // Unlimited: far above the limit on loopback (8 MiB in well under a second).
    assert!(down > 3.0 * LIMIT as f64, "bob's RETR: {down:.0} B/s");
    assert!(up > 3.0 * LIMIT as f64, "bob's STOR: {up:.0} B/s");
}

#[test]
fn the_daemons_limits_apply_to_every_user() {
    let d = Daemon::start_with_args(
        &[("carol", "pw", "carol")],
        &["--max-download-rate", "4M", "--max-upload-rate", "4MiB"],
    );
    let (down, up) = round_trip(&d, "carol", 3);
    assert_near_limit(down, "RETR under --max-download-rate");
    assert_near_limit(up, "STOR under --max-upload-rate");
}

#[test]
fn a_limited_transfer_shows_its_progress_and_rate_in_who() {
    let token = TokenFile::new();
    let (d, admin) = admin_daemon(&token, &["--max-download-rate", "4M"]);
    let data = random_bytes_seeded(4, BIG);
    std::fs::write(d.root("alice").join("big.bin"), &data).expect("seed");
    let mut ftp = d.login("alice");
    let reader = std::thread::spawn(move || {
        let got = get(&mut ftp, "big.bin");
        sha256_hex(&got)
    });
    let secret = std::fs::read_to_string(token.path()).expect("token");
    let auth = format!("Authorization: Bearer {}\r\n", secret.trim());
    // Halfway (the limit makes this about a second in), `who`'s source shows the transfer.
    let transfer = wait_for(Duration::from_secs(20), "a transfer half done", || {
        let (status, body) = http_get(admin, "HTTP/1.0", "/sessions", &auth);
        assert!(status.contains(" 200 "), "{status}");
        let sessions: serde_json::Value = serde_json::from_str(&body).expect("json");
        let t = sessions
            .as_array()?
            .iter()
            .find_map(|s| s.get("transfer").cloned())?;
        let bytes = t.get("bytes")?.as_u64()?;
        (bytes >= (BIG / 2) as u64).then_some(t)
    });
    let bytes = transfer["bytes"].as_u64().expect("bytes");
    assert!(bytes < BIG as u64, "seen before the end: {transfer}");
    let rate = transfer["rate"].as_f64().expect("rate");
    assert!(
        rate > 0.5 * LIMIT as f64 && rate < 2.0 * LIMIT as f64,
        "who's rate {rate:.0} B/s against a limit of {LIMIT}: {transfer}"
    );
    assert_eq!(reader.join().expect("reader"), sha256_hex(&data));
}

#[test]
fn the_banner_and_the_welcome_are_multi_line_replies_that_cannot_forge_a_code() {
    let banner = tempfile::NamedTempFile::new().expect("banner file");
    std::fs::write(
        banner.path(),
        "Welcome to the archive\n220 this is not the end\nbell\x07 and esc\x1b[2J\n",
    )
    .expect("write banner");
    let d = two_users(&["--banner", path_str(banner.path())]);
    let mut c = Ctrl::ungreeted(d.addr());
    let greeting = c.expect_reply(220);
    assert_eq!(greeting.lines[0], "220-Welcome to the archive");
    // A middle line that starts with digits is indented (RFC 959 4.2); controls are dropped.
    assert_eq!(greeting.middle(), [" 220 this is not the end"]);
    assert_eq!(greeting.lines[2], "220 bell and esc[2J");
    c.expect("USER alice", 331);
    let welcome = c.expect("PASS pw", 230);
    assert_eq!(
        welcome.lines,
        [
            "230-Hello alice",
            " 230 not a final line",
            "be nice",
            "230 Login successful"
        ]
    );
    // bob has no welcome: the one-line 230 as before.
    let mut b = Ctrl::connect(d.addr());
    b.expect("USER bob", 331);
    assert_eq!(b.expect("PASS pw", 230).lines, ["230 Login successful"]);
}

#[test]
fn an_oversized_banner_file_is_refused_at_start() {
    let banner = tempfile::NamedTempFile::new().expect("banner file");
    std::fs::write(banner.path(), "x".repeat(5000)).expect("write banner");
    let out = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--banner",
            path_str(banner.path()),
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--banner") && err.contains("4096"), "{err}");
}

/// Starts an upload of `first` bytes (the data connection stays open) and returns both sockets.
fn upload_in_progress(c: &mut Ctrl, name: &str, first: &[u8]) -> std::net::TcpStream {
    let mut data = c.epsv();
    c.expect(&format!("STOR {name}"), 150);
    data.write_all(first).expect("first bytes");
    data
}

/// Files left in `root` (temporary upload files included).
fn entries(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .expect("root")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn kick(admin: SocketAddr, token: &TokenFile, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_actorftpd"))
        .arg("kick")
        .args(args)
        .args([
            "--admin",
            &admin.to_string(),
            "--admin-token-file",
            &token.path(),
        ])
        .output()
        .expect("run actorftpd kick")
}

#[test]
fn kick_ends_a_session_with_421_and_its_upload_leaves_nothing() {
    let token = TokenFile::new();
    let (d, admin) = admin_daemon(&token, &[]);
    let root = d.root("alice");
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    c.expect("TYPE I", 200);
    let data = upload_in_progress(&mut c, "partial.bin", &random_bytes(256 * KIB));
    let out = kick(admin, &token, &["--user", "alice"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 session"),
        "{out:?}"
    );
    // The client closes its data connection at once, as a client told 421 would: that EOF may
    // reach the DataChannel before the Abort does, and still nothing of the upload is kept.
    drop(data);
    // The client hears 421 (the aborted transfer's 426 may come first), then the close.
    let mut codes = Vec::new();
    while let Ok(r) = c.try_reply() {
        codes.push(r.code);
    }
    assert!(codes.contains(&421), "replies after the kick: {codes:?}");
    assert!(c.closed(), "the control connection is closed");
    wait_until(Duration::from_secs(30), "no upload left on disk", || {
        entries(&root).is_empty()
    });
    // Kicking by session id works too; an unknown id is an error for the operator.
    let mut other = Ctrl::login(d.addr(), "alice", "pw");
    let secret = std::fs::read_to_string(token.path()).expect("token");
    let auth = format!("Authorization: Bearer {}\r\n", secret.trim());
    let (_, body) = http_get(admin, "HTTP/1.0", "/sessions", &auth);
    let sessions: serde_json::Value = serde_json::from_str(&body).expect("json");
    let id = sessions[0]["id"].as_u64().expect("a session id");
    assert!(kick(admin, &token, &[&id.to_string()]).status.success());
    assert_eq!(other.expect_reply(421).code, 421);
    assert!(!kick(admin, &token, &["999999"]).status.success());
    // Without the token the endpoint refuses to kick.
    let raw = http_exchange(admin, b"POST /kick?user=alice HTTP/1.0\r\n\r\n");
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
}

/// A hook program that appends its arguments, TAB-separated, to `out`.
fn hook_script(dir: &Path, out: &Path) -> String {
    let script = dir.join("hook.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\t%s\\t%s\\n' \"$1\" \"$2\" \"$3\" >> '{}'\n",
            out.display()
        ),
    )
    .expect("write hook");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path_str(&script).to_owned()
}

/// Completed upload A, aborted upload B, completed upload C (names a shell would mangle).
fn a_b_c(d: &Daemon) -> (Vec<u8>, Vec<u8>) {
    let (a, c_bytes) = (random_bytes(100_000), random_bytes(3_000));
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    c.expect("TYPE I", 200);
    c.upload("STOR a b;touch pwned.bin", &a);
    let data = upload_in_progress(&mut c, "aborted.bin", &random_bytes(50_000));
    c.send("ABOR");
    let mut codes = vec![c.reply().code];
    if codes[0] != 226 {
        codes.push(c.reply().code);
    }
    assert!(codes.contains(&226), "{codes:?}");
    drop(data);
    c.upload("STOR $(id).bin", &c_bytes);
    (a, c_bytes)
}

#[test]
fn the_hook_program_runs_once_per_completed_upload_without_a_shell() {
    let dir = tempfile::TempDir::new().expect("tmp");
    let out = dir.path().join("events.tsv");
    let script = hook_script(dir.path(), &out);
    let d = Daemon::start_with_args(&[("alice", "pw", "alice")], &["--upload-hook", &script]);
    let (a, c) = a_b_c(&d);
    let root = d.root("alice");
    let text = wait_for(Duration::from_secs(20), "the second event", || {
        let t = std::fs::read_to_string(&out).ok()?;
        t.contains("$(id).bin").then_some(t)
    });
    let want = format!(
        "{}\talice\t{}\n{}\talice\t{}\n",
        root.join("a b;touch pwned.bin").display(),
        a.len(),
        root.join("$(id).bin").display(),
        c.len()
    );
    assert_eq!(text, want, "exactly A and C, in order, names as they are");
    assert!(!root.join("pwned.bin").exists() && !Path::new("pwned.bin").exists());
    assert_eq!(
        entries(&root),
        ["$(id).bin", "a b;touch pwned.bin"],
        "the aborted upload left nothing"
    );
}

/// A one-shot-per-connection HTTP receiver on loopback: each request's body, answered 200.
fn receiver() -> (String, mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/events", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = conn.set_read_timeout(Some(SOCKET_TIMEOUT));
            let mut reader = BufReader::new(conn.try_clone().expect("clone"));
            let mut length = 0usize;
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_ok() {
                let _ = tx.send(serde_json::from_slice(&body).expect("a JSON body"));
            }
            // No `Connection: close`: the daemon must not reuse a connection we close anyway.
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (url, rx)
}

#[test]
fn the_hook_url_gets_one_json_event_per_completed_upload() {
    let (url, events) = receiver();
    let d = Daemon::start_with_args(&[("alice", "pw", "alice")], &["--upload-hook-url", &url]);
    let (a, c) = a_b_c(&d);
    let wait = Duration::from_secs(20);
    let first = events.recv_timeout(wait).expect("event for A");
    let second = events.recv_timeout(wait).expect("event for C");
    assert_eq!(first["virtual_path"], "/a b;touch pwned.bin");
    assert_eq!(first["size"], a.len() as u64);
    assert_eq!(first["user"], "alice");
    assert_eq!(first["event"], "upload");
    assert_eq!(second["virtual_path"], "/$(id).bin");
    assert_eq!(second["size"], c.len() as u64);
    // Nothing for the aborted upload: a last completed upload's event is next in line.
    let mut ctrl = Ctrl::login(d.addr(), "alice", "pw");
    ctrl.upload("STOR last.bin", b"x");
    let third = events.recv_timeout(wait).expect("event for last.bin");
    assert_eq!(third["virtual_path"], "/last.bin");
}

#[test]
fn the_minimum_rate_does_not_end_a_transfer_the_server_slows_down() {
    // A minimum of 1 MiB/s over 1 s windows, a limit of 64 KiB/s: the watchdog would end this
    // transfer after its first window if it did not know the server slows it down itself.
    let d = Daemon::start_with_args(
        &[("alice", "pw", "alice")],
        &[
            "--min-rate",
            "1048576",
            "--min-rate-window",
            "1",
            "--max-download-rate",
            "64K",
            "--max-upload-rate",
            "64K",
        ],
    );
    let data = random_bytes_seeded(5, 192 * KIB);
    std::fs::write(d.root("alice").join("slow.bin"), &data).expect("seed");
    let mut ftp = d.login("alice");
    let start = Instant::now();
    assert_eq!(sha256_hex(&get(&mut ftp, "slow.bin")), sha256_hex(&data));
    put(&mut ftp, "slow-up.bin", &data);
    let took = start.elapsed();
    assert_file_holds(&d.root("alice").join("slow-up.bin"), &data, "upload");
    // Both ways at 64 KiB/s: about 6 s, not the second a 1 MiB/s floor would allow.
    assert!(took > Duration::from_secs(3), "limited: {took:?}");
}

/// On the local disk and on S3 (streams instead of sendfile/splice): the daemon's limits hold
/// both ways, and a kicked upload leaves no temporary file and no multipart upload.
fn limits_and_kick_on(kind: Kind) {
    let token = TokenFile::new();
    let path = token.path();
    let args = [
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        path.as_str(),
        "--max-download-rate",
        "4M",
        "--max-upload-rate",
        "4M",
    ];
    let Some(mut s) = Served::start(kind, &[ALICE], &args) else {
        return;
    };
    let admin = s.daemon.announced("actorftpd admin endpoint on ");
    let data = random_bytes_seeded(6, BIG);
    s.write("alice", "down.bin", &data);
    let mut ftp = s.daemon.connect();
    ftp.login(ALICE.name, ALICE.password).expect("login");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .expect("TYPE I");
    let start = Instant::now();
    let got = get(&mut ftp, "down.bin");
    assert_near_limit(rate(got.len(), start.elapsed()), &format!("{kind:?} RETR"));
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
    let start = Instant::now();
    put(&mut ftp, "up.bin", &data);
    assert_near_limit(rate(BIG, start.elapsed()), &format!("{kind:?} STOR"));
    assert_eq!(
        s.read("alice", "up.bin").map(|b| sha256_hex(&b)),
        Some(sha256_hex(&data))
    );
    // Kicked mid-upload: 421, and nothing of the upload is left anywhere.
    let mut c = Ctrl::login(s.daemon.addr(), ALICE.name, ALICE.password);
    let mut data_conn = upload_in_progress(&mut c, "kicked.bin", &random_bytes(MIB));
    // More in the background, enough for S3 to begin a multipart upload (at the 4M limit).
    let writer = std::thread::spawn(move || {
        let _ = data_conn.write_all(&random_bytes(20 * MIB));
        data_conn
    });
    wait_until(Duration::from_secs(30), "the upload is under way", || {
        !s.leftovers("alice").is_empty()
    });
    let out = kick(admin, &token, &["--user", "alice"]);
    assert!(out.status.success(), "{out:?}");
    let mut codes = Vec::new();
    while let Ok(r) = c.try_reply() {
        codes.push(r.code);
    }
    assert!(
        codes.contains(&421),
        "{kind:?}: replies after the kick: {codes:?}"
    );
    drop(writer.join().expect("writer"));
    wait_until(
        Duration::from_secs(20),
        "nothing left of the kicked upload",
        || s.leftovers("alice").is_empty(),
    );
    assert!(
        !s.exists("alice", "kicked.bin"),
        "{kind:?}: no partial file"
    );
}

#[test]
fn limits_and_kick_on_the_local_disk() {
    limits_and_kick_on(Kind::Local);
}

#[test]
fn limits_and_kick_on_s3() {
    limits_and_kick_on(Kind::S3);
}
