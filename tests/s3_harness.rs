//! The S3 test harness (tests/common/s3.rs) against a real moto: every helper the S3 back-end's
//! tests rely on is shown to do what it says, so that a failing S3 test points at the daemon,
//! not at its harness. Each check would fail if its helper were wrong: contents are compared by
//! sha256 with what was sent, listings with the exact expected key sets.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::s3::{self, S3Server};
use common::{random_bytes, random_bytes_seeded, sha256_hex, wait_until, KIB, MIB};

/// Keys that need encoding in a URL and escaping in XML.
const AWKWARD_KEYS: &[&str] = &[
    "dir one/with space.bin",
    "dir one/a&b<c>'d\".txt",
    "ünïcødé/ファイル.bin",
    "plus+percent%hash#question?.bin",
];

#[test]
fn put_get_head_list_and_delete_round_trip_every_byte() {
    let Some(bucket) = s3::bucket() else { return };
    let mut sent = Vec::new();
    for (i, (key, len)) in [
        ("top.bin", 3 * KIB + 7),
        ("empty", 0),
        ("dir one/big.bin", MIB + 13),
    ]
    .into_iter()
    .chain(AWKWARD_KEYS.iter().map(|k| (*k, 777)))
    .enumerate()
    {
        let data = random_bytes_seeded(7 + i as u64, len);
        bucket.put(key, &data);
        sent.push((key.to_owned(), data));
    }
    for (key, data) in &sent {
        assert_eq!(
            bucket.sha256(key).as_deref(),
            Some(sha256_hex(data).as_str()),
            "content of {key:?}"
        );
        let head = bucket
            .head(key)
            .unwrap_or_else(|| panic!("HEAD {key:?}: no object"));
        assert_eq!(head.size, data.len() as u64, "HEAD size of {key:?}");
        assert!(head.etag.starts_with('"'), "ETag of {key:?}: {head:?}");
    }

    let mut all: Vec<String> = sent.iter().map(|(k, _)| k.clone()).collect();
    all.sort();
    assert_eq!(bucket.keys(""), all, "every key, listed in one page");
    let paged = bucket.list_in_pages("", 2);
    assert_eq!(
        paged.iter().map(|o| o.key.clone()).collect::<Vec<_>>(),
        all,
        "every key, listed two a page"
    );
    let big = paged
        .iter()
        .find(|o| o.key == "dir one/big.bin")
        .expect("big.bin listed");
    assert_eq!(big.size, (MIB + 13) as u64, "listed size");
    assert_eq!(
        bucket.keys("dir one/"),
        vec![
            "dir one/a&b<c>'d\".txt",
            "dir one/big.bin",
            "dir one/with space.bin"
        ],
        "keys under a prefix"
    );
    assert!(bucket.keys("nothing/").is_empty(), "empty prefix");

    bucket.delete("dir one/big.bin");
    assert_eq!(bucket.get("dir one/big.bin"), None, "deleted object");
    assert_eq!(bucket.head("dir one/big.bin"), None, "deleted object");
    assert!(!bucket.keys("").contains(&"dir one/big.bin".to_owned()));
    // S3 deletes are idempotent.
    bucket.delete("dir one/big.bin");
    assert_eq!(bucket.get("never/was"), None, "missing object");
}

#[test]
fn ranged_gets_return_exactly_the_asked_bytes() {
    let Some(bucket) = s3::bucket() else { return };
    let data = random_bytes(100 * KIB + 3);
    bucket.put("ranged.bin", &data);
    let last = data.len() as u64 - 1;
    for range in [
        0..=0,
        0..=last,
        1..=1000,
        4096..=65535,
        last..=last,
        70_000..=last,
    ] {
        let got = bucket.get_range("ranged.bin", range.clone());
        let want = &data[*range.start() as usize..=*range.end() as usize];
        assert_eq!(sha256_hex(&got), sha256_hex(want), "bytes {range:?}");
    }
    let beyond = bucket.request(
        "GET",
        &bucket.key_path("ranged.bin"),
        &[("Range", &format!("bytes={}-", data.len() + 10))],
        b"",
    );
    assert_eq!(beyond.status, 416, "range past the end: {}", beyond.text());
    assert_eq!(beyond.error_code().as_deref(), Some("InvalidRange"));
}

#[test]
fn multipart_uploads_are_listed_aborted_and_completed() {
    let Some(bucket) = s3::bucket() else { return };
    let left_a = bucket.create_upload("up/a.bin");
    let left_b = bucket.create_upload("up/b c.bin");
    let elsewhere = bucket.create_upload("other/x.bin");
    assert_ne!(left_a, left_b, "upload ids differ");
    let ids = |prefix| -> Vec<(String, String)> {
        bucket
            .uploads(prefix)
            .into_iter()
            .map(|u| (u.key, u.upload_id))
            .collect()
    };
    assert_eq!(
        ids("up/"),
        vec![
            ("up/a.bin".to_owned(), left_a.clone()),
            ("up/b c.bin".to_owned(), left_b.clone())
        ],
        "uploads under up/"
    );
    assert_eq!(ids("").len(), 3, "all uploads");
    // An upload in progress is no object.
    assert!(bucket.keys("").is_empty(), "no object yet");

    bucket.abort_upload("up/a.bin", &left_a);
    assert_eq!(
        ids("up/"),
        vec![("up/b c.bin".to_owned(), left_b.clone())],
        "after aborting a.bin"
    );

    // S3's minimum part size is 5 MiB (but for the last part).
    let part1 = random_bytes_seeded(1, 5 * MIB);
    let part2 = random_bytes_seeded(2, 100 * KIB + 1);
    let e1 = bucket.upload_part("up/b c.bin", &left_b, 1, &part1);
    let e2 = bucket.upload_part("up/b c.bin", &left_b, 2, &part2);
    bucket.complete_upload("up/b c.bin", &left_b, &[(1, e1), (2, e2)]);
    let whole = [part1, part2].concat();
    assert_eq!(
        bucket.sha256("up/b c.bin"),
        Some(sha256_hex(&whole)),
        "completed object"
    );
    assert_eq!(
        ids(""),
        vec![("other/x.bin".to_owned(), elsewhere.clone())],
        "only the upload elsewhere is left"
    );
    bucket.abort_upload("other/x.bin", &elsewhere);
    assert!(bucket.uploads("").is_empty(), "no upload left");
}

#[test]
fn conditional_put_refuses_to_overwrite() {
    let Some(bucket) = s3::bucket() else { return };
    let path = bucket.key_path("once.txt");
    let first = bucket.request("PUT", &path, &[("If-None-Match", "*")], b"first");
    assert_eq!(first.status, 200, "create: {}", first.text());
    let second = bucket.request("PUT", &path, &[("If-None-Match", "*")], b"second");
    assert_eq!(second.status, 412, "overwrite: {}", second.text());
    assert_eq!(second.error_code().as_deref(), Some("PreconditionFailed"));
    assert_eq!(bucket.get("once.txt").as_deref(), Some(&b"first"[..]));
}

/// moto does the server-side copies a rename can use: CopyObject, and UploadPartCopy with
/// source ranges (the way to copy objects over 5 GiB).
#[test]
fn server_side_copy_and_upload_part_copy_work() {
    let Some(bucket) = s3::bucket() else { return };
    let data = random_bytes(6 * MIB + 5);
    bucket.put("src dir/source.bin", &data);
    let source = format!(
        "/{}/{}",
        bucket.name(),
        s3::path_encode("src dir/source.bin")
    );

    let copy = bucket.request(
        "PUT",
        &bucket.key_path("copied.bin"),
        &[("x-amz-copy-source", &source)],
        b"",
    );
    assert_eq!(copy.status, 200, "CopyObject: {}", copy.text());
    assert_eq!(bucket.sha256("copied.bin"), Some(sha256_hex(&data)));

    let id = bucket.create_upload("part-copied.bin");
    let split = 5 * MIB;
    let mut parts = Vec::new();
    for (number, range) in [
        (1, format!("bytes=0-{}", split - 1)),
        (2, format!("bytes={split}-{}", data.len() - 1)),
    ] {
        let target = format!(
            "{}?partNumber={number}&uploadId={}",
            bucket.key_path("part-copied.bin"),
            s3::query_encode(&id)
        );
        let r = bucket.request(
            "PUT",
            &target,
            &[
                ("x-amz-copy-source", &source),
                ("x-amz-copy-source-range", &range),
            ],
            b"",
        );
        assert_eq!(r.status, 200, "UploadPartCopy {range}: {}", r.text());
        let etag = s3::xml_first(&r.text(), "ETag")
            .map(s3::xml_unescape)
            .unwrap_or_else(|| panic!("no ETag in {}", r.text()));
        parts.push((number, etag));
    }
    bucket.complete_upload("part-copied.bin", &id, &parts);
    assert_eq!(bucket.sha256("part-copied.bin"), Some(sha256_hex(&data)));
    assert_eq!(
        bucket.sha256("src dir/source.bin"),
        Some(sha256_hex(&data)),
        "source intact"
    );
}

#[test]
fn deny_policy_refuses_object_requests_under_its_prefix() {
    let Some(bucket) = s3::bucket() else { return };
    bucket.put("locked/old.txt", b"old");
    bucket.put("open/old.txt", b"old");
    bucket.deny(&["s3:*"], "locked/");
    for (method, key) in [
        ("GET", "locked/old.txt"),
        ("HEAD", "locked/old.txt"),
        ("PUT", "locked/new.txt"),
        ("DELETE", "locked/old.txt"),
    ] {
        let r = bucket.request(method, &bucket.key_path(key), &[], b"new");
        assert_eq!(r.status, 403, "{method} {key}: {}", r.text());
    }
    let start = bucket.request(
        "POST",
        &format!("{}?uploads", bucket.key_path("locked/mp.bin")),
        &[],
        b"",
    );
    assert_eq!(start.status, 403, "multipart start: {}", start.text());
    // Outside the prefix, and listings, are not affected.
    bucket.put("open/new.txt", b"new");
    assert_eq!(bucket.get("open/old.txt").as_deref(), Some(&b"old"[..]));
    assert_eq!(
        bucket.keys(""),
        vec!["locked/old.txt", "open/new.txt", "open/old.txt"]
    );

    bucket.allow_all();
    assert_eq!(bucket.get("locked/old.txt").as_deref(), Some(&b"old"[..]));
    bucket.put("locked/new.txt", b"new");
}

#[test]
fn write_only_deny_still_lets_reads_through() {
    let Some(bucket) = s3::bucket() else { return };
    bucket.put("ro/file", b"data");
    bucket.deny(&["s3:PutObject", "s3:DeleteObject", "s3:PostObject"], "ro/");
    assert_eq!(bucket.get("ro/file").as_deref(), Some(&b"data"[..]));
    let put = bucket.request("PUT", &bucket.key_path("ro/file"), &[], b"changed");
    assert_eq!(put.status, 403, "PUT: {}", put.text());
    let delete = bucket.request("DELETE", &bucket.key_path("ro/file"), &[], b"");
    assert_eq!(delete.status, 403, "DELETE: {}", delete.text());
    assert_eq!(bucket.get("ro/file").as_deref(), Some(&b"data"[..]));
}

#[test]
fn parallel_tests_each_get_their_own_bucket() {
    let Some(server) = S3Server::shared() else {
        return;
    };
    let buckets: Vec<_> = (0..4).map(|_| server.bucket()).collect();
    let mut names: Vec<&str> = buckets.iter().map(|b| b.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 4, "distinct names: {names:?}");
    std::thread::scope(|scope| {
        for (i, bucket) in buckets.iter().enumerate() {
            scope.spawn(move || {
                for j in 0..5 {
                    bucket.put(
                        &format!("k{j}"),
                        &random_bytes_seeded((i * 10 + j) as u64, 999),
                    );
                }
            });
        }
    });
    for (i, bucket) in buckets.iter().enumerate() {
        assert_eq!(bucket.keys(""), vec!["k0", "k1", "k2", "k3", "k4"]);
        assert_eq!(
            bucket.sha256("k3"),
            Some(sha256_hex(&random_bytes_seeded((i * 10 + 3) as u64, 999)))
        );
    }
}

#[test]
fn daemon_environment_points_at_the_bucket() {
    let Some(bucket) = s3::bucket() else { return };
    let env = bucket.daemon_env();
    let get = |name| {
        env.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
    };
    assert_eq!(get("AWS_ENDPOINT_URL"), bucket.endpoint());
    assert_eq!(get("AWS_REGION"), "us-east-1");
    assert_eq!(get("AWS_ACCESS_KEY_ID"), "test");
    assert_eq!(get("AWS_SECRET_ACCESS_KEY"), "test");
    assert_eq!(
        bucket.storage_arg("pre/fix"),
        format!("s3://{}/pre/fix", bucket.name())
    );

    // What a child started with `apply_env` sees, whatever AWS_ variables were set before.
    let mut cmd = Command::new("env");
    cmd.env("AWS_PROFILE", "someone-else")
        .env("AWS_SESSION_TOKEN", "stale")
        .env("AWS_REGION", "eu-west-3");
    bucket.apply_env(&mut cmd);
    let out = common::run_with_timeout(&mut cmd, common::CLIENT_DEADLINE);
    out.assert_success("env");
    let seen: Vec<String> = out
        .stdout_text()
        .lines()
        .filter(|l| l.starts_with("AWS_"))
        .map(str::to_owned)
        .collect();
    let mut want: Vec<String> = env.iter().map(|(n, v)| format!("{n}={v}")).collect();
    want.sort();
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    assert_eq!(seen_sorted, want, "the child's AWS_ variables");
}

#[test]
fn stopped_server_refuses_and_paused_server_stalls() {
    let Some(mut server) = S3Server::start() else {
        return;
    };
    let bucket = server.bucket();
    bucket.put("k", b"v");

    // Paused: the kernel accepts the connection, nobody answers until resumed.
    server.pause();
    let mut s = TcpStream::connect(server.addr()).expect("connect to paused moto");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential=test/20250101/us-east-1/s3/aws4_request, SignedHeaders=host, \
         Signature=00\r\nConnection: close\r\n\r\n",
        bucket.key_path("k"),
        server.addr()
    );
    s.write_all(request.as_bytes())
        .expect("send to paused moto");
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    let stalled = s.read(&mut byte);
    assert!(
        matches!(&stalled, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "a paused moto answered: {stalled:?}"
    );
    server.resume();
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("answer after resume");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "after resume: {answer}");
    assert!(answer.ends_with("\r\n\r\nv"), "body after resume: {answer}");

    server.stop();
    let refused = TcpStream::connect(server.addr());
    assert!(
        matches!(&refused, Err(e) if e.kind() == ErrorKind::ConnectionRefused),
        "a stopped moto's port: {refused:?}"
    );
}

#[test]
fn enforced_credentials_reject_the_fake_ones() {
    let Some(mut server) = S3Server::start() else {
        return;
    };
    let bucket = server.bucket();
    bucket.put("k", b"v");
    server.enforce_credentials(true);
    let r = bucket.request("GET", &bucket.key_path("k"), &[], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.error_code().as_deref(), Some("InvalidAccessKeyId"));
    let list = bucket.request("GET", &format!("/{}?list-type=2", bucket.name()), &[], b"");
    assert_eq!(list.status, 403, "listing: {}", list.text());
    server.enforce_credentials(false);
    assert_eq!(bucket.get("k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn moto_logs_every_request_it_answered() {
    let Some(server) = S3Server::shared() else {
        return;
    };
    let bucket = server.bucket();
    bucket.put("logged key", b"x");
    let line = server.wait_for_log(Duration::from_secs(10), |l| {
        l.contains(&format!(
            "\"PUT /{}/logged%20key HTTP/1.1\" 200",
            bucket.name()
        ))
    });
    assert!(!line.contains('\u{1b}'), "colours left in {line:?}");
    assert!(
        bucket.log_lines().contains(&line),
        "the bucket's own log lines hold {line:?}"
    );
}

/// Not run on its own: [`moto_exits_when_the_test_process_is_killed`] runs it in a child test
/// process, which starts a server, prints its pid and waits to be killed.
#[test]
#[ignore = "run by moto_exits_when_the_test_process_is_killed"]
fn child_process_holding_a_server() {
    if std::env::var_os("S3_HARNESS_CHILD").is_none() {
        return;
    }
    let Some(server) = S3Server::start() else {
        return;
    };
    let mut out = std::io::stdout();
    writeln!(out, "moto pid {}", server.pid()).expect("stdout");
    out.flush().expect("stdout");
    // Blocks until the parent kills this process (stdin is a pipe the parent keeps open).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(server);
}

#[test]
fn moto_exits_when_the_test_process_is_killed() {
    if S3Server::shared().is_none() {
        return; // moto unavailable (the skip was reported)
    }
    let mut child = Command::new(std::env::current_exe().expect("test binary path"))
        .args(["--exact", "child_process_holding_a_server", "--ignored"])
        .args(["--nocapture", "--test-threads=1"])
        .env("S3_HARNESS_CHILD", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the test binary");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        let mut reader = std::io::BufReader::new(stdout);
        loop {
            text.clear();
            match std::io::BufRead::read_line(&mut reader, &mut text) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    // libtest may have written "test NAME ... " before it on the line.
                    if let Some((_, pid)) = text.trim().split_once("moto pid ") {
                        let _ = tx.send(pid.parse::<u32>().expect("pid"));
                    }
                }
            }
        }
    });
    let pid = rx
        .recv_timeout(Duration::from_secs(90))
        .expect("the child test reports moto's pid");
    assert!(alive(pid), "moto {pid} runs while its test process does");
    // SIGKILL: no destructor, no atexit, no signal handler runs in the child.
    child.kill().expect("kill the child test process");
    child.wait().expect("reap the child test process");
    wait_until(
        Duration::from_secs(20),
        "moto exits after its test process died",
        || !alive(pid),
    );
}

/// Whether `pid` is a live process (a zombie waiting for init to reap it counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name, which may itself hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
