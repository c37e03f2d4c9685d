//! What the operator sees of a running daemon, against the real binary: `who --json` as a
//! stream into a pipe, `who` during an upload (IDLE and the upload's size and rate), `/metrics`
//! uptime and build information, and the transfer log's real, absolute paths.
//!
//! Nothing waits on a clock: `who` paces itself (one snapshot a second) and every wait has a
//! deadline on observable state.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(20);

/// Kills the child (a `who` that a failing test leaves running) when dropped.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn who(admin: std::net::SocketAddr, token: &TokenFile, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_actorftpd"));
    cmd.arg("who")
        .args(["--admin", &admin.to_string()])
        .args(["--admin-token-file", &token.path()])
        .args(args)
        .stdin(Stdio::null());
    cmd
}

#[test]
fn who_json_streams_timed_lines_into_a_pipe_and_idle_stays_low_during_an_upload() {
    let token = TokenFile::new();
    let (d, admin) = admin_daemon(&token, &[]);
    let mut ftp = d.login("alice");
    let mut upload = ftp.put_with_stream("up.bin").expect("STOR opens");
    let chunk = random_bytes(MIB);
    let mut sent: Vec<u8> = Vec::new();

    let mut child = Reaped(
        who(admin, &token, &["--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run who --json"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().expect("piped"));
    let started = Instant::now();
    let mut seen = 0;
    // One chunk after each line read: bytes keep moving while the STOR command gets older.
    let last = loop {
        assert!(
            started.elapsed() < DEADLINE,
            "no snapshot 3 s into the upload"
        );
        upload.write_all(&chunk).expect("upload chunk");
        sent.extend_from_slice(&chunk);
        let mut raw = Vec::new();
        lines.read_until(b'\n', &mut raw).expect("a line");
        assert!(raw.ends_with(b"\n"), "who --json ended: {raw:?}");
        assert!(
            !raw[..raw.len() - 1].iter().any(|b| b.is_ascii_control()),
            "control bytes in a JSON line: {raw:?}"
        );
        let v: serde_json::Value = serde_json::from_slice(&raw).expect("one JSON object a line");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let time = v["time"].as_u64().expect("time");
        assert!(time <= now && time + 60 > now, "{v}");
        seen += 1;
        let sessions = v["sessions"].as_array().expect("sessions").clone();
        assert_eq!(sessions.len(), 1, "{v}");
        let s = &sessions[0];
        let elapsed = s["transfer"]["elapsed_secs"].as_f64().unwrap_or(0.0);
        if elapsed >= 3.0 && s["transfer"]["bytes"].as_u64() > Some(MIB as u64) {
            break s.clone();
        }
    };
    assert!(seen >= 3, "a line a second: {seen}");
    assert_eq!(last["transfer"]["direction"], "upload");
    assert_eq!(last["transfer"]["path"], "/up.bin");
    assert_eq!(last["command"], "STOR up.bin");
    // The STOR is 3 s old, but bytes moved within the last second.
    assert!(
        last["idle_secs"].as_u64().expect("idle") <= 1,
        "IDLE grows during a transfer: {last}"
    );
    // The table shows what has arrived and how fast, with no bar or ETA it cannot know.
    let out = who(admin, &token, &["--once"])
        .output()
        .expect("who --once");
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table
        .lines()
        .find(|l| l.contains("upload /up.bin"))
        .unwrap_or_else(|| panic!("no upload line: {table}"));
    assert!(
        line.contains(" MB received at ") && line.contains("/s for "),
        "{line}"
    );
    assert!(!line.contains("ETA") && !line.contains('?'), "{line}");
    assert!(table.contains("* TLS control connection"), "{table}");
    // The reader goes away: who ends by itself, successfully.
    drop(lines);
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < end,
            "who --json still runs with its pipe closed"
        );
        std::thread::yield_now();
    };
    assert!(
        status.success(),
        "who --json after its reader left: {status:?}"
    );
    upload.finish().expect("226");
    assert_eq!(
        file_sha256(&d.root("alice").join("up.bin")),
        sha256_hex(&sent),
        "the upload on disk"
    );
}

/// The value of the first sample line starting with `name` (labels included in `name`).
fn sample(text: &str, name: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"));
    line[name.len()..].trim().parse().expect("a number")
}

#[test]
fn metrics_show_uptime_and_build_info() {
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let mut d = Daemon::start_with_args(
        &[("alice", "pw", "srv")],
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = d.announced("actorftpd metrics on ");
    let (status, first) = http_get(metrics, "HTTP/1.0", "/metrics", "");
    assert!(status.contains(" 200 "), "{status}");
    for line in [
        "# TYPE actorftpd_build_info gauge",
        "# TYPE actorftpd_uptime_seconds gauge",
        "# TYPE actorftpd_start_time_seconds gauge",
    ] {
        assert!(first.lines().any(|l| l == line), "no {line:?} in\n{first}");
    }
    let info = first
        .lines()
        .find(|l| l.starts_with("actorftpd_build_info{"))
        .expect("build info");
    let version = format!("{{version=\"{}\",commit=\"", env!("CARGO_PKG_VERSION"));
    assert!(
        info.starts_with(&format!("actorftpd_build_info{version}")) && info.ends_with("\"} 1"),
        "{info}"
    );
    let start = sample(&first, "actorftpd_start_time_seconds ");
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        start >= before.floor() - 1.0 && start <= after + 0.001,
        "{before} <= {start} <= {after}"
    );
    let up = sample(&first, "actorftpd_uptime_seconds ");
    assert!((0.0..=after - before + 1.0).contains(&up), "{up}");
    // Uptime counts on; the start stays put.
    let later = wait_for(DEADLINE, "uptime to grow", || {
        let (_, text) = http_get(metrics, "HTTP/1.0", "/metrics", "");
        (sample(&text, "actorftpd_uptime_seconds ") > up).then_some(text)
    });
    assert_eq!(sample(&later, "actorftpd_start_time_seconds "), start);
}

#[test]
fn xferlog_writes_the_real_absolute_path_however_the_root_is_spelled() {
    let tmp = TempDir::new().expect("tmp");
    let real = tmp.path().join("real/alice");
    std::fs::create_dir_all(&real).expect("root");
    std::os::unix::fs::symlink(tmp.path().join("real"), tmp.path().join("link")).expect("link");
    let hash = actorftpd::auth::hash_password("pw").expect("hash");
    // Relative to the users file, through a symlink, with `.` and `..` in it.
    let users = format!(
        "[[user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\nroot = \"link/./../link/alice\"\n"
    );
    let log_dir = TempDir::new().expect("tmp");
    let xferlog = log_dir.path().join("xferlog");
    let real = real.canonicalize().expect("real root");
    let table = vec![("alice".to_string(), "pw".to_string(), real.clone())];
    let d = Daemon::start_with_users_file(
        tmp,
        &users,
        &["--xferlog", xferlog.to_str().expect("utf-8")],
        table,
    );
    let data = random_bytes(70_001);
    let mut ftp = d.login("alice");
    put(&mut ftp, "a b.bin", &data);
    assert_eq!(sha256_hex(&get(&mut ftp, "a b.bin")), sha256_hex(&data));
    assert_file_holds(&real.join("a b.bin"), &data, "the upload");
    let text = wait_for(DEADLINE, "two xferlog lines", || {
        let text = std::fs::read_to_string(&xferlog).unwrap_or_default();
        (text.lines().count() >= 2).then_some(text)
    });
    // The space is written `_`, as before; the rest is the path on disk.
    let want = real.join("a_b.bin");
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 18, "{line}");
        assert_eq!(fields[8], want.to_str().expect("utf-8"), "{line}");
        assert_eq!(fields[7], data.len().to_string(), "{line}");
    }
}
