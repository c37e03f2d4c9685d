//! A real S3-compatible server for the integration tests of the S3 storage back-end.
//!
//! The server is moto (PyPI, version pinned in [`PIP_REQUIREMENTS`]) in a virtual environment the
//! harness makes itself under `target/tmp/` the first time it is needed (`python3 -m venv`, then
//! pip), so a plain `cargo test` runs the S3 tests on any machine with Python. Where that cannot
//! work (no `python3`, no `venv` module, PyPI out of reach) the tests are a loud skip, and a
//! failure when `CI` is set (see [`cannot_run`]).
//!
//! moto runs from a small wrapper script ([`WRAPPER`]) that binds `127.0.0.1:0` itself (no port
//! race), prints the bound address on stdout (a readiness line waited for with a deadline, never a
//! sleep), and exits as soon as its stdin reaches EOF. The harness holds the write end of that
//! pipe, so the kernel closes it when the test process ends however it ends (panic, `exit`,
//! SIGKILL) and no moto outlives the tests. (`PR_SET_PDEATHSIG` would not do: it fires when the
//! *thread* that spawned the child ends, and libtest runs every test on its own thread.)
//!
//! One moto per test binary is shared through a static ([`S3Server::shared`]); each test gets its
//! own bucket ([`bucket`]). A test that makes the server misbehave (stop, pause, enforce
//! credentials) starts its own with [`S3Server::start`]: those methods take `&mut self`, so the
//! shared server cannot be broken for the other tests.
//!
//! The helpers speak unsigned HTTP/1.1 over `std::net::TcpStream`, independent of the daemon's own
//! S3 code, so a bug there cannot hide itself: moto checks no signature unless told to
//! ([`S3Server::enforce_credentials`]); it only needs an `Authorization` header to be present,
//! else it treats the request as anonymous and refuses private objects.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::{cannot_run, find_on_path, for_each_line, run_with_timeout, sha256_hex};

/// What pip installs into the harness's virtual environment: moto's S3 back-end and the two
/// packages its `[server]` extra adds for the HTTP server, at the versions these helpers were
/// tested with. (The whole `moto[server]` extra pulls every AWS service's dependencies: 317 MB
/// and 30 s to install against 140 MB and 12 s for these.)
pub const PIP_REQUIREMENTS: &[&str] = &["moto[s3]==5.2.5", "flask==3.1.3", "flask-cors==6.0.5"];

/// The region the daemon under test is given.
pub const REGION: &str = "us-east-1";
/// Fake credentials (moto accepts any unless [`S3Server::enforce_credentials`] is on).
pub const ACCESS_KEY_ID: &str = "test";
pub const SECRET_ACCESS_KEY: &str = "test";

/// How long moto may take to print its address (it takes about a second on an idle machine).
const MOTO_START_DEADLINE: Duration = Duration::from_secs(60);
/// Upper bound for `python3 -m venv` and for the pip install (downloads about 20 MB).
const VENV_STEP_DEADLINE: Duration = Duration::from_secs(600);
/// Read/write timeout on every helper connection to moto.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// How many lines of moto's stderr (its request log and tracebacks) are kept.
const LOG_LINES: usize = 5000;
/// Prefix of the readiness line [`WRAPPER`] prints.
const READY_PREFIX: &str = "moto listening on ";

/// Runs moto's WSGI application on 127.0.0.1 with a port the kernel picks; exits when stdin
/// reaches EOF (the test process is gone). `MOTO_PORT` is what moto writes into URLs it returns.
const WRAPPER: &str = r#"
import os, sys, threading

def watch_parent():
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)

threading.Thread(target=watch_parent, daemon=True).start()

from werkzeug.serving import make_server
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication, MotoRequestHandler, create_backend_app)

app = DomainDispatcherApplication(create_backend_app)
server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
port = server.socket.getsockname()[1]
os.environ["MOTO_PORT"] = str(port)
print("moto listening on 127.0.0.1:%d" % port, flush=True)
server.serve_forever()
"#;

/// A moto process serving S3 on 127.0.0.1.
pub struct S3Server {
    child: Child,
    /// The pipe moto watches: dropping it (or the process ending) makes moto exit.
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    log: Arc<Log>,
    started_in: Duration,
    stopped: bool,
}

/// moto's stderr lines (the request log, one line per request, and any traceback).
struct Log {
    lines: Mutex<VecDeque<String>>,
    grew: Condvar,
}

static SHARED: OnceLock<Result<S3Server, String>> = OnceLock::new();

/// Reports that moto cannot be had (see [`cannot_run`]) and returns `None`.
fn unavailable<T>(why: &str) -> Option<T> {
    cannot_run(
        &format!("the S3 tests need moto, and it could not be installed: {why}"),
        &format!("moto (S3 server) unavailable: {why}"),
    );
    None
}

/// A fresh bucket on this test binary's shared server; `None` when moto cannot be had here (a
/// loud skip, see the module doc): `let Some(bucket) = s3::bucket() else { return };`.
pub fn bucket() -> Option<Bucket> {
    S3Server::shared().map(S3Server::bucket)
}

impl S3Server {
    /// The server shared by every test of this binary, started on first use. Never stopped
    /// explicitly: it exits when the test process does (see the module doc). `None` when moto
    /// cannot be had here (a loud skip for every test that asks; a panic under `CI`).
    pub fn shared() -> Option<&'static S3Server> {
        let shared = SHARED.get_or_init(|| moto_python().map(S3Server::start_with));
        match shared {
            Ok(server) => Some(server),
            Err(why) => unavailable(why),
        }
    }

    /// Starts a server of the test's own, for tests that make it misbehave. `None` when moto
    /// cannot be had here (a loud skip; a panic under `CI`).
    pub fn start() -> Option<S3Server> {
        match moto_python() {
            Ok(python) => Some(S3Server::start_with(python)),
            Err(why) => unavailable(&why),
        }
    }

    fn start_with(python: &Path) -> S3Server {
        let began = Instant::now();
        let mut child = Command::new(python)
            .arg("-c")
            .arg(WRAPPER)
            .env("PYTHONUNBUFFERED", "1")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn moto with {}: {e}", python.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("moto stdout is piped");
        let stderr = child.stderr.take().expect("moto stderr is piped");

        let log = Arc::new(Log {
            lines: Mutex::new(VecDeque::new()),
            grew: Condvar::new(),
        });
        let sink = Arc::clone(&log);
        thread::spawn(move || {
            for_each_line(stderr, |line| {
                let mut lines = sink.lines.lock().unwrap_or_else(|p| p.into_inner());
                if lines.len() == LOG_LINES {
                    lines.pop_front();
                }
                lines.push_back(strip_ansi(&line));
                sink.grew.notify_all();
            })
        });
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for_each_line(stdout, |line| {
                let _ = tx.send(line);
            })
        });

        let mut server = S3Server {
            child,
            stdin,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
            started_in: Duration::ZERO,
            stopped: false,
        };
        let line =
            loop {
                match rx.recv_timeout(MOTO_START_DEADLINE.saturating_sub(began.elapsed())) {
                    Ok(line) if line.starts_with(READY_PREFIX) => break line,
                    Ok(_) => continue,
                    Err(e) => {
                        server.fail(&format!(
                    "moto did not report its address within {MOTO_START_DEADLINE:?} ({e}); if \
                     its environment is broken, remove {} to have it made anew",
                    python.parent().and_then(Path::parent).unwrap_or(python).display()
                ))
                    }
                }
            };
        server.addr = line[READY_PREFIX.len()..]
            .trim()
            .parse()
            .unwrap_or_else(|e| server.fail(&format!("no address in {line:?}: {e}")));
        server.started_in = began.elapsed();
        server
    }

    /// `http://127.0.0.1:PORT`, the daemon's `AWS_ENDPOINT_URL`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How long moto took from spawn to its readiness line.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// moto's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Creates a bucket with a fresh name made from the test's name.
    pub fn bucket(&self) -> Bucket {
        self.bucket_named(&unique_bucket_name())
    }

    /// Creates the bucket `name` (3 to 63 characters: lowercase letters, digits, `-`, `.`).
    #[track_caller]
    pub fn bucket_named(&self, name: &str) -> Bucket {
        let bucket = Bucket {
            addr: self.addr,
            name: name.to_owned(),
            log: Arc::clone(&self.log),
            clean_up: self.is_shared(),
        };
        let r = bucket.send("PUT", &format!("/{name}"), &[], b"");
        bucket.expect(&r, &[200], &format!("create bucket {name}"));
        bucket
    }

    fn is_shared(&self) -> bool {
        matches!(SHARED.get(), Some(Ok(shared)) if std::ptr::eq(shared, self))
    }

    /// Kills moto and waits for it to exit: its port then refuses connections (an unreachable
    /// endpoint for the daemon).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdin = None;
        self.stopped = true;
    }

    /// Freezes moto (SIGSTOP): the kernel still accepts connections on its port, but no request
    /// is answered until [`S3Server::resume`] (a hanging endpoint, for timeout tests).
    pub fn pause(&mut self) {
        self.signal(rustix::process::Signal::STOP);
    }

    /// Lets a [`S3Server::pause`]d moto run again; it answers the requests that waited.
    pub fn resume(&mut self) {
        self.signal(rustix::process::Signal::CONT);
    }

    fn signal(&mut self, sig: rustix::process::Signal) {
        assert!(!self.stopped, "test bug: moto was stopped");
        // The child is ours and not yet reaped, so its pid cannot have been reused.
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), sig)
            .unwrap_or_else(|e| panic!("signal moto ({}): {e}", self.child.id()));
    }

    /// Turns moto's IAM emulation on or off for the whole server (`POST /moto-api/reset-auth`).
    /// While it is on, moto checks every request's SigV4 signature against IAM users it knows:
    /// the fake credentials are unknown, so every S3 request, signed or not, fails with 403
    /// (`InvalidAccessKeyId` for signed ones). The helpers of [`Bucket`] then fail too; turn it
    /// off before using them again.
    pub fn enforce_credentials(&mut self, on: bool) {
        let count = if on { "0" } else { "inf" };
        let r = http(
            self.addr,
            "POST",
            "/moto-api/reset-auth",
            &[],
            count.as_bytes(),
        )
        .unwrap_or_else(|e| panic!("POST /moto-api/reset-auth to {}: {e}", self.addr));
        assert_eq!(r.status, 200, "reset-auth answered {}", r.text());
    }

    /// moto's request log and tracebacks so far (the last 5000 lines), ANSI colours removed:
    /// one `127.0.0.1 - - [date] "METHOD /bucket/key?query HTTP/1.1" STATUS -` line per request.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.snapshot()
    }

    /// Waits until moto logged a line matching `pred` (moto logs a request after answering it,
    /// so a line may trail the response that a client already has).
    pub fn wait_for_log(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        self.log.wait_for(timeout, pred)
    }

    /// Panics with `msg`; dropping the server then shows moto's log.
    fn fail(&mut self, msg: &str) -> ! {
        self.stop();
        panic!("{msg}");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- moto log (tail, test failed) ---\n{}\n--- end of moto log ---",
                self.log.tail(100)
            );
        }
        self.stop();
    }
}

impl Log {
    fn snapshot(&self) -> Vec<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect()
    }

    fn tail(&self, n: usize) -> String {
        let lines = self.snapshot();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    fn wait_for(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(line) = lines.iter().find(|l| pred(l)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no matching moto log line within {timeout:?}; last lines:\n{}",
                lines
                    .iter()
                    .rev()
                    .take(30)
                    .rev()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            lines = self
                .grew
                .wait_timeout(lines, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// One bucket on a moto server, with helpers that read and change it behind the daemon's back.
/// Buckets on the shared server are emptied and deleted when dropped (unless the test failed,
/// so that their content can be looked at).
pub struct Bucket {
    addr: SocketAddr,
    name: String,
    log: Arc<Log>,
    clean_up: bool,
}

/// What `HEAD` (or a listing) tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// As the server sends it, quotes included.
    pub etag: String,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub key: String,
    pub upload_id: String,
}

impl Bucket {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The daemon's `--storage` value for `prefix` (no leading slash; may be empty).
    pub fn storage_arg(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }

    /// The environment the daemon under test is started with. See also [`Bucket::apply_env`].
    pub fn daemon_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY.to_owned()),
            // Never ask an instance metadata service for credentials: test traffic stays on
            // loopback.
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// Gives `cmd` [`Bucket::daemon_env`] and no other `AWS_` variable: none of the test's own
    /// environment (a profile, a session token, a config file, another endpoint) nor any that
    /// was set on `cmd` before can point the daemon elsewhere.
    pub fn apply_env(&self, cmd: &mut Command) {
        let set_on_cmd = cmd.get_envs().map(|(name, _)| name.to_owned());
        let inherited = std::env::vars_os().map(|(name, _)| name);
        let names: Vec<_> = set_on_cmd.chain(inherited).collect();
        for name in names {
            if name.as_encoded_bytes().starts_with(b"AWS_") {
                cmd.env_remove(name);
            }
        }
        cmd.envs(self.daemon_env());
    }

    /// Stores `data` as `key`.
    #[track_caller]
    pub fn put(&self, key: &str, data: &[u8]) {
        let r = self.send("PUT", &self.key_path(key), &[], data);
        self.expect(&r, &[200], &format!("PUT {key} ({} bytes)", data.len()));
    }

    /// The content of `key`, or `None` if there is no such object.
    #[track_caller]
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let r = self.send("GET", &self.key_path(key), &[], b"");
        if r.status == 404 {
            return None;
        }
        self.expect(&r, &[200], &format!("GET {key}"));
        Some(r.body)
    }

    /// sha256 (hex) of `key`'s content, or `None` if there is no such object.
    #[track_caller]
    pub fn sha256(&self, key: &str) -> Option<String> {
        self.get(key).map(|data| sha256_hex(&data))
    }

    /// Bytes `range` of `key` (a `Range: bytes=A-B` request, which must answer 206).
    #[track_caller]
    pub fn get_range(&self, key: &str, range: RangeInclusive<u64>) -> Vec<u8> {
        let header = format!("bytes={}-{}", range.start(), range.end());
        let r = self.send("GET", &self.key_path(key), &[("Range", &header)], b"");
        self.expect(&r, &[206], &format!("GET {key} Range: {header}"));
        r.body
    }

    /// Size and ETag of `key`, or `None` if there is no such object.
    #[track_caller]
    pub fn head(&self, key: &str) -> Option<ObjectInfo> {
        let r = self.send("HEAD", &self.key_path(key), &[], b"");
        if r.status == 404 {
            return None;
        }
        self.expect(&r, &[200], &format!("HEAD {key}"));
        let size = r
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("HEAD {key}: no Content-Length in {:?}", r.headers));
        Some(ObjectInfo {
            key: key.to_owned(),
            size,
            etag: r.header("etag").unwrap_or_default().to_owned(),
        })
    }

    /// Deletes `key` (S3 answers 204 whether or not it existed).
    #[track_caller]
    pub fn delete(&self, key: &str) {
        let r = self.send("DELETE", &self.key_path(key), &[], b"");
        self.expect(&r, &[204], &format!("DELETE {key}"));
    }

    /// The keys under `prefix`, sorted (every page of ListObjectsV2).
    #[track_caller]
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        self.list(prefix).into_iter().map(|o| o.key).collect()
    }

    /// The objects under `prefix`, sorted by key (every page of ListObjectsV2).
    #[track_caller]
    pub fn list(&self, prefix: &str) -> Vec<ObjectInfo> {
        self.list_in_pages(prefix, 1000)
    }

    /// [`Bucket::list`] asking for at most `page` keys a request (to exercise the
    /// continuation tokens).
    #[track_caller]
    pub fn list_in_pages(&self, prefix: &str, page: usize) -> Vec<ObjectInfo> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut target = format!(
                "/{}?list-type=2&max-keys={page}&prefix={}",
                self.name,
                query_encode(prefix)
            );
            if let Some(t) = &token {
                target.push_str(&format!("&continuation-token={}", query_encode(t)));
            }
            let r = self.send("GET", &target, &[], b"");
            let xml = self.expect_xml(&r, &format!("list {prefix:?}"));
            for item in xml_all(&xml, "Contents") {
                let field = |tag| {
                    xml_first(item, tag)
                        .map(xml_unescape)
                        .unwrap_or_else(|| panic!("no <{tag}> in listed object {item:?}"))
                };
                out.push(ObjectInfo {
                    key: field("Key"),
                    size: field("Size")
                        .parse()
                        .unwrap_or_else(|e| panic!("bad <Size> in {item:?}: {e}")),
                    etag: field("ETag"),
                });
            }
            if xml_first(&xml, "IsTruncated") != Some("true") {
                break;
            }
            token = Some(
                xml_first(&xml, "NextContinuationToken")
                    .map(xml_unescape)
                    .unwrap_or_else(|| panic!("truncated listing without a token: {xml}")),
            );
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// The in-progress multipart uploads under `prefix` (ListMultipartUploads,
    /// `GET /BUCKET?uploads`), sorted by key then id.
    #[track_caller]
    pub fn uploads(&self, prefix: &str) -> Vec<Upload> {
        let target = format!("/{}?uploads&prefix={}", self.name, query_encode(prefix));
        let r = self.send("GET", &target, &[], b"");
        let xml = self.expect_xml(&r, &format!("list uploads under {prefix:?}"));
        assert_ne!(
            xml_first(&xml, "IsTruncated"),
            Some("true"),
            "more than 1000 uploads: the helper reads one page"
        );
        let mut out: Vec<Upload> = xml_all(&xml, "Upload")
            .into_iter()
            .map(|item| {
                let field = |tag| {
                    xml_first(item, tag)
                        .map(xml_unescape)
                        .unwrap_or_else(|| panic!("no <{tag}> in listed upload {item:?}"))
                };
                Upload {
                    key: field("Key"),
                    upload_id: field("UploadId"),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.key, &a.upload_id).cmp(&(&b.key, &b.upload_id)));
        out
    }

    /// Starts a multipart upload of `key` and returns its upload id (to leave one in progress,
    /// as a crashed daemon would).
    #[track_caller]
    pub fn create_upload(&self, key: &str) -> String {
        let r = self.send("POST", &format!("{}?uploads", self.key_path(key)), &[], b"");
        let xml = self.expect_xml(&r, &format!("create upload of {key}"));
        xml_first(&xml, "UploadId")
            .map(xml_unescape)
            .unwrap_or_else(|| panic!("no <UploadId> in {xml}"))
    }

    /// Uploads part `number` (1-based; every part but the last at least 5 MiB) and returns its
    /// ETag.
    #[track_caller]
    pub fn upload_part(&self, key: &str, upload_id: &str, number: u32, data: &[u8]) -> String {
        let target = format!(
            "{}?partNumber={number}&uploadId={}",
            self.key_path(key),
            query_encode(upload_id)
        );
        let r = self.send("PUT", &target, &[], data);
        self.expect(&r, &[200], &format!("upload part {number} of {key}"));
        r.header("etag")
            .unwrap_or_else(|| panic!("no ETag for part {number} of {key}: {:?}", r.headers))
            .to_owned()
    }

    /// Completes an upload from its parts' (number, ETag).
    #[track_caller]
    pub fn complete_upload(&self, key: &str, upload_id: &str, parts: &[(u32, String)]) {
        let mut body = String::from("<CompleteMultipartUpload>");
        for (number, etag) in parts {
            body.push_str(&format!(
                "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                xml_escape(etag)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let target = format!(
            "{}?uploadId={}",
            self.key_path(key),
            query_encode(upload_id)
        );
        let r = self.send("POST", &target, &[], body.as_bytes());
        let xml = self.expect_xml(&r, &format!("complete upload of {key}"));
        // S3 may answer 200 with an error document.
        assert!(
            xml_first(&xml, "Code").is_none(),
            "complete upload of {key} failed: {xml}"
        );
    }

    /// Aborts an in-progress upload.
    #[track_caller]
    pub fn abort_upload(&self, key: &str, upload_id: &str) {
        let target = format!(
            "{}?uploadId={}",
            self.key_path(key),
            query_encode(upload_id)
        );
        let r = self.send("DELETE", &target, &[], b"");
        self.expect(&r, &[204], &format!("abort upload of {key}"));
    }

    /// Sets a bucket policy that denies `actions` (e.g. `["s3:PutObject"]`, or `["s3:*"]`) on
    /// every key under `prefix`. moto enforces bucket policies on object requests only: GET,
    /// PUT (also parts and UploadPartCopy), POST (starting and completing multipart uploads),
    /// DELETE and HEAD of a key (the actions are `s3:GetObject`, `s3:PutObject`,
    /// `s3:PostObject`, `s3:DeleteObject`, `s3:HeadObject`) answer 403 with an empty body, and
    /// DeleteObjects reports `AccessDenied` for such keys. Listings are not affected.
    #[track_caller]
    pub fn deny(&self, actions: &[&str], prefix: &str) {
        let actions: Vec<String> = actions.iter().map(|a| json_string(a)).collect();
        let policy = format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"TestDeny","Effect":"Deny","Principal":"*","Action":[{}],"Resource":{}}}]}}"#,
            actions.join(","),
            json_string(&format!("arn:aws:s3:::{}/{prefix}*", self.name))
        );
        let r = self.send(
            "PUT",
            &format!("/{}?policy", self.name),
            &[],
            policy.as_bytes(),
        );
        self.expect(&r, &[200, 204], "put bucket policy");
    }

    /// Removes the bucket policy [`Bucket::deny`] set.
    #[track_caller]
    pub fn allow_all(&self) {
        let r = self.send("DELETE", &format!("/{}?policy", self.name), &[], b"");
        self.expect(&r, &[204], "delete bucket policy");
    }

    /// Any request: `target` is the path and query (`/BUCKET/KEY?x=y`, encoded already, see
    /// [`Bucket::key_path`]), `headers` extra header lines. For conditional requests and error
    /// checks that the helpers above do not cover.
    #[track_caller]
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> S3Response {
        self.send(method, target, headers, body)
    }

    /// `/BUCKET/KEY` with the key percent-encoded (its slashes kept).
    pub fn key_path(&self, key: &str) -> String {
        format!("/{}/{}", self.name, path_encode(key))
    }

    /// moto's log lines that name this bucket (requests, mostly the daemon's).
    pub fn log_lines(&self) -> Vec<String> {
        let needles = ['/', '?', ' '].map(|end| format!("/{}{end}", self.name));
        self.log
            .snapshot()
            .into_iter()
            .filter(|l| needles.iter().any(|n| l.contains(n.as_str())))
            .collect()
    }

    #[track_caller]
    fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> S3Response {
        http(self.addr, method, target, headers, body).unwrap_or_else(|e| {
            panic!(
                "{method} {target} to moto at {}: {e}\n--- moto log (tail) ---\n{}",
                self.addr,
                self.log.tail(30)
            )
        })
    }

    #[track_caller]
    fn expect(&self, r: &S3Response, statuses: &[u16], what: &str) {
        assert!(
            statuses.contains(&r.status),
            "{what} in bucket {}: moto answered {} (expected {statuses:?}): {}",
            self.name,
            r.status,
            r.text()
        );
    }

    #[track_caller]
    fn expect_xml(&self, r: &S3Response, what: &str) -> String {
        self.expect(r, &[200], what);
        r.text()
    }

    /// Best effort: removes the bucket policy, aborts every upload, deletes every object, then
    /// the bucket. Gives up at the first request that does not do what it should.
    fn remove_everything(&self) -> Result<(), String> {
        let call = |method: &str, target: &str, ok: u16| -> Result<S3Response, String> {
            let r = http(self.addr, method, target, &[], b"").map_err(|e| e.to_string())?;
            match r.status {
                s if s == ok => Ok(r),
                s => Err(format!("{method} {target} answered {s}: {}", r.text())),
            }
        };
        call("DELETE", &format!("/{}?policy", self.name), 204)?;
        let r = call("GET", &format!("/{}?uploads", self.name), 200)?;
        for item in xml_all(&r.text(), "Upload") {
            if let (Some(key), Some(id)) = (xml_first(item, "Key"), xml_first(item, "UploadId")) {
                let target = format!(
                    "{}?uploadId={}",
                    self.key_path(&xml_unescape(key)),
                    query_encode(&xml_unescape(id))
                );
                call("DELETE", &target, 204)?;
            }
        }
        loop {
            let r = call("GET", &format!("/{}?list-type=2", self.name), 200)?;
            let text = r.text();
            let keys = xml_all(&text, "Key");
            if keys.is_empty() {
                break;
            }
            // One DeleteObjects request a page, its keys copied as listed (still escaped).
            let mut body = String::from("<Delete><Quiet>true</Quiet>");
            for key in keys {
                body.push_str(&format!("<Object><Key>{key}</Key></Object>"));
            }
            body.push_str("</Delete>");
            let target = format!("/{}?delete", self.name);
            let r = http(self.addr, "POST", &target, &[], body.as_bytes())
                .map_err(|e| e.to_string())?;
            if r.status != 200 || r.text().contains("<Error>") {
                return Err(format!("DeleteObjects answered {}: {}", r.status, r.text()));
            }
        }
        call("DELETE", &format!("/{}", self.name), 204).map(drop)
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "--- moto requests for bucket {} (test failed) ---\n{}\n--- end ---",
                self.name,
                self.log_lines().join("\n")
            );
            return;
        }
        if self.clean_up {
            if let Err(e) = self.remove_everything() {
                eprintln!("note: could not remove test bucket {}: {e}", self.name);
            }
        }
    }
}

/// A bucket name no other test of any test binary uses: `t`, this process's id, a counter,
/// and the test's (thread's) name.
fn unique_bucket_name() -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let test = thread::current()
        .name()
        .unwrap_or("test")
        .rsplit("::")
        .next()
        .unwrap_or("test")
        .to_ascii_lowercase();
    let mut label = String::new();
    for c in test.chars() {
        if c.is_ascii_alphanumeric() {
            label.push(c);
        } else if !label.ends_with('-') {
            label.push('-');
        }
    }
    let mut name = format!("t{}-{n}-{}", std::process::id(), label.trim_matches('-'));
    name.truncate(63);
    name.trim_end_matches('-').to_owned()
}

/// An HTTP answer from moto.
#[derive(Debug)]
pub struct S3Response {
    pub status: u16,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl S3Response {
    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `<Code>` of an S3 error document (`NoSuchKey`, `PreconditionFailed`, ...).
    pub fn error_code(&self) -> Option<String> {
        xml_first(&self.text(), "Code").map(xml_unescape)
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`), the answer read to EOF.
/// Every request carries an `Authorization` header that moto does not verify (see the module
/// doc) and an explicit `Content-Type`: moto's Flask would otherwise parse a body sent as a form
/// and store nothing.
fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<S3Response> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: AWS4-HMAC-SHA256 \
         Credential={ACCESS_KEY_ID}/20250101/{REGION}/s3/aws4_request, SignedHeaders=host, \
         Signature=0000000000000000000000000000000000000000000000000000000000000000\r\n\
         x-amz-content-sha256: UNSIGNED-PAYLOAD\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        head.push_str("Content-Type: application/octet-stream\r\n");
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    // moto may answer (an error) and close before it read a large body: a failed write is
    // reported only if no answer can be read either.
    let written = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut raw = Vec::new();
    let read = s.read_to_end(&mut raw);
    if raw.is_empty() {
        written?;
        read?;
        return Err(std::io::Error::new(
            ErrorKind::UnexpectedEof,
            "connection closed without an answer",
        ));
    }
    if let Err(e) = read {
        // A reset after a complete answer is harmless; parse_response finds a cut one.
        if e.kind() != ErrorKind::ConnectionReset {
            return Err(e);
        }
    }
    parse_response(&raw, method == "HEAD")
}

fn parse_response(raw: &[u8], head_request: bool) -> std::io::Result<S3Response> {
    let bad = |what: String| std::io::Error::new(ErrorKind::InvalidData, what);
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            bad(format!(
                "no end of headers in {:?}",
                String::from_utf8_lossy(raw)
            ))
        })?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let find = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let body = if head_request || status == 204 || status == 304 {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        decode_chunked(rest).map_err(|e| bad(format!("bad chunked body: {e}")))?
    } else if let Some(len) = find("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| bad(format!("bad Content-Length {len:?}")))?;
        if rest.len() < len {
            return Err(bad(format!(
                "answer cut short: {} of {len} body bytes",
                rest.len()
            )));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(S3Response {
        status,
        headers,
        body,
    })
}

fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("no chunk size line")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("chunk size {size_text:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err(format!("chunk of {size} bytes cut short"));
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Percent-encodes a key for a request path: everything but unreserved characters and `/`.
pub fn path_encode(key: &str) -> String {
    encode(key, b"-._~/")
}

/// Percent-encodes a query-string value: everything but unreserved characters.
pub fn query_encode(value: &str) -> String {
    encode(value, b"-._~")
}

fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The raw contents of every `<tag>…</tag>` (or `<tag/>`, as "") in `xml`, in order. Enough
/// for S3's answers, where the elements read here never nest in an element of the same name.
pub fn xml_all<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        let Some(gt) = after.find('>') else { break };
        let attrs = &after[..gt];
        // `<Keys>` is not `<Key>`: the name must end here.
        if !(attrs.is_empty() || attrs.starts_with(char::is_whitespace) || attrs == "/") {
            rest = after;
            continue;
        }
        let content_and_more = &after[gt + 1..];
        if attrs.ends_with('/') {
            out.push("");
            rest = content_and_more;
            continue;
        }
        let Some(end) = content_and_more.find(&close) else {
            break;
        };
        out.push(&content_and_more[..end]);
        rest = &content_and_more[end + close.len()..];
    }
    out
}

/// The raw contents of the first `<tag>` in `xml`.
pub fn xml_first<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    xml_all(xml, tag).into_iter().next()
}

/// Resolves the five predefined entities and numeric character references.
pub fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Removes ANSI colour sequences (werkzeug colours its request log).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The Python of the harness's virtual environment with moto in it, made on first use.
fn moto_python() -> Result<&'static Path, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(ensure_venv)
        .as_ref()
        .map(PathBuf::as_path)
        .map_err(Clone::clone)
}

/// `target/tmp/moto-venv-HASH`, HASH naming [`PIP_REQUIREMENTS`] (so changing them makes a new
/// environment).
pub fn venv_dir() -> PathBuf {
    let reqs = sha256_hex(PIP_REQUIREMENTS.join(" ").as_bytes());
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("moto-venv-{}", &reqs[..12]))
}

/// Makes the virtual environment unless it exists. Safe when several test binaries (and their
/// threads) ask at once: one of them builds it, holding an exclusive `flock` on a lock file
/// beside it, into a temporary directory renamed into place when complete; the others wait
/// for the lock and then find it there. An existing environment is reused without locking.
fn ensure_venv() -> Result<PathBuf, String> {
    let dir = venv_dir();
    let python = dir.join("bin/python");
    if python.exists() {
        return Ok(python);
    }
    let parent = dir.parent().ok_or("venv path has no parent")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("venv name is not UTF-8")?
        .to_owned();
    let lock_path = parent.join(format!("{name}.lock"));
    let lock =
        File::create(&lock_path).map_err(|e| format!("create {}: {e}", lock_path.display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| format!("lock {}: {e}", lock_path.display()))?;
    if python.exists() {
        return Ok(python); // made by another process while this one waited
    }
    // There but unusable: its base Python is gone (a `bin/python` symlink to nowhere).
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    }
    // Holding the lock, any half-made environment is a leftover of a process that died.
    let tmp_prefix = format!("{name}.tmp-");
    if let Ok(entries) = std::fs::read_dir(parent) {
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&tmp_prefix) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    let base = find_on_path("python3").ok_or("python3 is not on PATH")?;
    let tmp = parent.join(format!("{tmp_prefix}{}", std::process::id()));
    let began = Instant::now();
    let made = run_with_timeout(
        Command::new(&base).args(["-m", "venv"]).arg(&tmp),
        VENV_STEP_DEADLINE,
    );
    if !made.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!(
            "`python3 -m venv` failed (on Debian: apt-get install python3-venv): {}",
            made.stderr_text().trim()
        ));
    }
    let venv_done = began.elapsed();
    let installed = run_with_timeout(
        Command::new(tmp.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-input"])
            .args(PIP_REQUIREMENTS),
        VENV_STEP_DEADLINE,
    );
    if !installed.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(format!(
            "pip install {} failed: {}",
            PIP_REQUIREMENTS.join(" "),
            installed.stderr_text().trim()
        ));
    }
    std::fs::rename(&tmp, &dir)
        .map_err(|e| format!("rename {} to {}: {e}", tmp.display(), dir.display()))?;
    // Written to the real stderr, as in `cannot_run`: a one-time cost worth seeing.
    let _ = writeln!(
        std::io::stderr(),
        "note: made moto's virtual environment {} in {:.1?} (venv {:.1?}, pip {:.1?})",
        dir.display(),
        began.elapsed(),
        venv_done,
        began.elapsed() - venv_done
    );
    Ok(dir.join("bin/python"))
}
