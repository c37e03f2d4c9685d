//! What only object storage can do wrong: a bucket that cannot be reached at start or stops
//! answering mid-session, access denied, a download cut by the S3 server, uploads left by a
//! crash (the start-up sweep) or by a stop (SIGTERM), and the transfer log naming objects. The
//! commands themselves run against both back-ends in tests/backends.rs.

mod common;
mod rawftp;

use common::backend::{prefix_of, Served, ALICE};
use common::s3::S3Server;
use common::*;
use rawftp::*;
use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the daemon may take to give up on an S3 server that refuses connections: the
/// retry layer's backoff (0.2 + 0.4 + 0.8 + 1.6 s, with jitter) and some slack for a busy
/// machine.
const GIVE_UP_DEADLINE: Duration = Duration::from_secs(30);

fn refused_start(bucket: &common::s3::Bucket, what: &str) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_actorftpd"));
    bucket.apply_env(&mut cmd);
    cmd.args([
        "--listen",
        "127.0.0.1:0",
        "-q",
        "--storage",
        &bucket.storage_arg("data"),
    ]);
    let out = run_with_timeout(&mut cmd, GIVE_UP_DEADLINE * 2);
    assert_refused_in_one_line(out.status, &out.stderr, "is not reachable", what);
    let err = out.stderr_text();
    assert!(
        err.contains(&bucket.storage_arg("data").trim_end_matches('/').to_string()),
        "{err}"
    );
    assert!(
        !err.contains(common::s3::SECRET_ACCESS_KEY) || common::s3::SECRET_ACCESS_KEY == "test",
        "{err}"
    );
}

/// A moto of the test's own (to break), a daemon on it, `data` stored as `name` in alice's
/// root, and a session logged in as alice. `None`: moto is unavailable (a loud skip).
fn own_server_with(name: &str, data: &[u8]) -> Option<(S3Server, Served, Ctrl)> {
    let server = S3Server::start()?;
    let s = Served::start_on(Some(server.bucket()), &[ALICE], &[])?;
    s.write("alice", name, data);
    let c = Ctrl::login(s.daemon.addr(), ALICE.name, ALICE.password);
    Some((server, s, c))
}

#[test]
fn a_bucket_that_cannot_be_reached_stops_the_start_in_one_line() {
    let Some(mut server) = S3Server::start() else {
        return;
    };
    let bucket = server.bucket();
    server.enforce_credentials(true);
    refused_start(&bucket, "credentials refused (403)");
    server.stop();
    refused_start(&bucket, "nothing listening");
}

#[test]
fn a_store_that_refuses_or_stops_mid_session_gets_550_then_451_and_the_session_lives() {
    let Some((mut server, _daemon, mut c)) = own_server_with("file.txt", b"content") else {
        return;
    };
    assert_eq!(c.download("RETR file.txt"), b"content");

    server.enforce_credentials(true);
    let t = c.transfer("RETR file.txt", None);
    assert_eq!(t.code(), 550, "access denied is 550");
    c.expect("SIZE file.txt", 550);
    server.enforce_credentials(false);
    c.expect("SIZE file.txt", 213);

    server.stop();
    let started = Instant::now();
    let t = c.transfer("LIST", None);
    assert_eq!(t.code(), 451, "an unreachable store is 451");
    assert!(
        started.elapsed() < GIVE_UP_DEADLINE,
        "given up within the retries: {:?}",
        started.elapsed()
    );
    let r = c.expect("SIZE file.txt", 451);
    assert!(
        r.text().contains("Storage unavailable"),
        "a clear reason: {}",
        r.text()
    );
    c.expect("NOOP", 200);
}

#[test]
fn a_download_cut_by_the_s3_server_is_not_reported_complete() {
    let data = random_bytes(64 * MIB);
    let Some((mut server, _daemon, mut c)) = own_server_with("big.bin", &data) else {
        return;
    };
    let mut conn = c.epsv();
    c.expect("RETR big.bin", 150);
    let mut got = vec![0u8; MIB];
    conn.read_exact(&mut got).expect("the first MiB arrives");
    server.stop();
    let (rest, _) = drain(&mut conn);
    got.extend_from_slice(&rest);
    let end = c.reply();
    assert!(
        end.code == 451 || end.code == 426,
        "a cut download ends in an error, not 226: {}",
        end.text()
    );
    assert!(got.len() < data.len(), "the download was cut short");
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&data[..got.len()]),
        "what arrived is the object's start"
    );
}

#[test]
fn uploads_a_crash_left_are_aborted_at_start_and_others_are_not() {
    let Some(bucket) = common::s3::bucket() else {
        return;
    };
    let ours = format!("{}/stale.bin", prefix_of("alice"));
    bucket.create_upload(&ours);
    bucket.create_upload("elsewhere/not-ours.bin");
    let Some(s) = Served::start_on(Some(bucket), &[ALICE], &["--stale-upload-age", "0"]) else {
        return;
    };
    let b = s.bucket().expect("an S3 daemon");
    wait_until(
        Duration::from_secs(20),
        "the stale upload is aborted",
        || b.uploads(&format!("{}/", prefix_of("alice"))).is_empty(),
    );
    assert_eq!(
        b.uploads("elsewhere/").len(),
        1,
        "outside the prefix nothing is touched"
    );
}

#[test]
fn a_stop_mid_upload_aborts_the_multipart_upload() {
    let Some(bucket) = common::s3::bucket() else {
        return;
    };
    let Some(mut s) = Served::start_on(Some(bucket), &[ALICE], &["--shutdown-grace", "1"]) else {
        return;
    };
    let mut c = Ctrl::login(s.daemon.addr(), ALICE.name, ALICE.password);
    let mut conn = c.epsv();
    c.expect("STOR cut.bin", 150);
    std::io::Write::write_all(&mut conn, &random_bytes(20 * MIB)).expect("send 20 MiB");
    let b = s.bucket().expect("an S3 daemon");
    let prefix = format!("{}/", prefix_of("alice"));
    wait_until(
        Duration::from_secs(20),
        "the upload is under way in S3",
        || !b.uploads(&prefix).is_empty(),
    );
    let pid = rustix::process::Pid::from_raw(s.daemon.pid() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = s
        .daemon
        .wait_exit(Duration::from_secs(30))
        .expect("the daemon stops");
    assert!(status.success(), "a clean stop: {status:?}");
    let b = s.bucket().expect("an S3 daemon");
    assert!(
        b.uploads(&prefix).is_empty(),
        "no multipart upload outlives the daemon"
    );
    assert!(
        b.get(&format!("{prefix}cut.bin")).is_none(),
        "no partial object"
    );
    drop(conn);
}

#[test]
fn the_transfer_log_names_objects_by_their_url() {
    let Some(bucket) = common::s3::bucket() else {
        return;
    };
    let tmp = tempfile::TempDir::new().expect("tmp");
    let log = tmp.path().join("xferlog");
    let log_arg = log.to_str().expect("UTF-8").to_owned();
    let Some(s) = Served::start_on(Some(bucket), &[ALICE], &["--xferlog", &log_arg]) else {
        return;
    };
    let mut c = Ctrl::login(s.daemon.addr(), ALICE.name, ALICE.password);
    c.upload("STOR logged.txt", b"0123456789");
    let url = format!(
        "{}/logged.txt",
        s.bucket()
            .expect("S3")
            .storage_arg(&prefix_of("alice"))
            .trim_end_matches('/')
    );
    let line = wait_for(Duration::from_secs(10), "the xferlog line", || {
        std::fs::read_to_string(&log)
            .ok()?
            .lines()
            .find(|l| l.contains("logged.txt"))
            .map(str::to_owned)
    });
    assert!(
        line.contains(&format!(" 10 {url} b _ i r alice ftp 0 * c")),
        "{line}"
    );
}

#[test]
fn a_store_that_hangs_gets_451_in_bounded_time_and_recovers() {
    let Some((mut server, _daemon, mut c)) = own_server_with("file.txt", b"content") else {
        return;
    };
    c.expect("SIZE file.txt", 213);
    server.pause();
    let started = Instant::now();
    let r = c.expect("SIZE file.txt", 451);
    let waited = started.elapsed();
    server.resume();
    assert!(r.text().contains("did not answer in time"), "{}", r.text());
    // Quick requests: 6 s each, two retries, backoff in between (about 19 s).
    assert!(
        waited < Duration::from_secs(45),
        "given up in bounded time: {waited:?}"
    );
    c.expect("SIZE file.txt", 213);
}
