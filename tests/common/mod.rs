//! Shared harness for the real-client integration tests.
//!
//! Every test starts its own `actorftpd` on `127.0.0.1:0` with a fresh temporary tree, learns the
//! bound address from the daemon's `actorftpd listening on ADDR` stdout line (with a deadline, never
//! a sleep), and kills the daemon when the [`Daemon`] is dropped. External clients run through
//! [`run_with_timeout`], which bounds their run time without polling.

// Each test binary uses a different subset of the harness.
#![allow(dead_code)]

pub mod backend;
pub mod haproxy;
pub mod postgres;
pub mod s3;
pub mod tls;

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpStream, Status};
use tempfile::TempDir;

/// Prefix of the stdout line the daemon prints once it is bound.
pub const LISTENING_PREFIX: &str = "actorftpd listening on ";
/// How long the daemon may take to print its listening line.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(15);
/// Read/write timeout on every socket a Rust-side FTP client opens.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one external client run (curl, lftp, python).
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(60);

pub const KIB: usize = 1024;
pub const MIB: usize = 1024 * 1024;

/// How many stderr lines of the daemon are kept to be shown when a test fails.
const STDERR_TAIL_LINES: usize = 200;

/// A running `actorftpd` child process with its own temporary tree.
pub struct Daemon {
    child: Child,
    addr: SocketAddr,
    users: Vec<(String, String, PathBuf)>,
    stdout_rx: Receiver<String>,
    stdout_seen: Vec<String>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_thread: Option<JoinHandle<()>>,
    /// Set by `wait_exit`: the test asked the daemon to stop, so its exit is no crash.
    exit_expected: bool,
    // Last field: dropped after the child has been killed.
    tmp: TempDir,
}

impl Daemon {
    /// Starts the daemon with one root folder per user, `<tmp>/roots/<name>`.
    pub fn start(users: &[(&str, &str)]) -> Daemon {
        let with_roots: Vec<(&str, &str, String)> = users
            .iter()
            .map(|(name, pass)| (*name, *pass, format!("roots/{name}")))
            .collect();
        let borrowed: Vec<(&str, &str, &str)> = with_roots
            .iter()
            .map(|(n, p, r)| (*n, *p, r.as_str()))
            .collect();
        Daemon::start_with_roots(&borrowed)
    }

    /// Starts the daemon with explicit user roots, given relative to the temporary directory
    /// (`("alice", "pw", "srv")` serves `<tmp>/srv` to alice).
    pub fn start_with_roots(users: &[(&str, &str, &str)]) -> Daemon {
        Daemon::start_with_args(users, &[])
    }

    /// Like [`Daemon::start_with_roots`], with extra command-line options (limits, timeouts).
    pub fn start_with_args(users: &[(&str, &str, &str)], extra: &[&str]) -> Daemon {
        Daemon::start_listening("127.0.0.1:0", users, extra)
    }

    /// Like [`Daemon::start_with_args`], listening on `listen` (e.g. `[::1]:0`).
    pub fn start_listening(listen: &str, users: &[(&str, &str, &str)], extra: &[&str]) -> Daemon {
        assert!(!users.is_empty(), "Daemon::start needs at least one user");
        let tmp = TempDir::new().expect("create temporary directory for the daemon");
        let mut toml = String::new();
        let mut table = Vec::new();
        for (name, pass, rel_root) in users {
            let root = tmp.path().join(rel_root);
            std::fs::create_dir_all(&root).expect("create user root");
            toml.push_str(&format!(
                "[[user]]\nname = {}\npassword_hash = {}\nroot = {}\n\n",
                toml_string(name),
                toml_string(&actorftpd::auth::hash_password(pass).expect("hash password")),
                toml_string(root.to_str().expect("temporary path is UTF-8")),
            ));
            table.push((name.to_string(), pass.to_string(), root));
        }
        let first_root = table[0]
            .2
            .to_str()
            .expect("temporary path is UTF-8")
            .to_owned();
        let mut args = vec!["--root", first_root.as_str()];
        args.extend_from_slice(extra);
        Daemon::start_with_users_file_on(listen, tmp, &toml, &args, table)
    }

    /// Starts the daemon on `127.0.0.1:0` with `toml` as `<tmp>/users.toml` (user roots in it
    /// are relative to `tmp`) and extra options; `users` as for [`Daemon::start_custom`].
    pub fn start_with_users_file(
        tmp: TempDir,
        toml: &str,
        extra: &[&str],
        users: Vec<(String, String, PathBuf)>,
    ) -> Daemon {
        Daemon::start_with_users_file_on("127.0.0.1:0", tmp, toml, extra, users)
    }

    /// [`Daemon::start_with_users_file`], listening on `listen`.
    fn start_with_users_file_on(
        listen: &str,
        tmp: TempDir,
        toml: &str,
        extra: &[&str],
        users: Vec<(String, String, PathBuf)>,
    ) -> Daemon {
        let users_file = tmp.path().join("users.toml");
        std::fs::write(&users_file, toml).expect("write users file");
        let mut args: Vec<OsString> = vec![
            "--listen".into(),
            listen.into(),
            "--users".into(),
            users_file.into_os_string(),
        ];
        args.extend(extra.iter().map(OsString::from));
        // Set ACTORFTPD_TEST_LOG to get the daemon's full logs in a failing test's output.
        if std::env::var_os("ACTORFTPD_TEST_LOG").is_none() {
            args.push("-q".into());
        }
        Daemon::start_custom(tmp, &args, users)
    }

    /// Starts the binary with arbitrary arguments inside `tmp` (kept alive by the `Daemon`).
    /// `users` is what [`Daemon::root`] and [`Daemon::password`] answer from; pass an empty list
    /// when the daemon makes up its own user (the no-`--users` mode).
    pub fn start_custom<S: AsRef<OsStr>>(
        tmp: TempDir,
        args: &[S],
        users: Vec<(String, String, PathBuf)>,
    ) -> Daemon {
        Daemon::start_configured(tmp, args, users, |_| {})
    }

    /// [`Daemon::start_custom`], with `configure` given the command before it starts (its
    /// environment: the S3 endpoint and credentials, for instance).
    pub fn start_configured<S: AsRef<OsStr>>(
        tmp: TempDir,
        args: &[S],
        users: Vec<(String, String, PathBuf)>,
        configure: impl FnOnce(&mut Command),
    ) -> Daemon {
        let mut command = Command::new(env!("CARGO_BIN_EXE_actorftpd"));
        configure(&mut command);
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn actorftpd");

        let stdout = child.stdout.take().expect("daemon stdout is piped");
        let (tx, stdout_rx) = mpsc::channel();
        thread::spawn(move || {
            for_each_line(stdout, |line| {
                let _ = tx.send(line);
            })
        });

        let stderr = child.stderr.take().expect("daemon stderr is piped");
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr_tail);
        let stderr_thread = thread::spawn(move || {
            for_each_line(stderr, |line| {
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                if tail.len() == STDERR_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line);
            })
        });

        let mut daemon = Daemon {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            users,
            stdout_rx,
            stdout_seen: Vec::new(),
            stderr_tail,
            stderr_thread: Some(stderr_thread),
            exit_expected: false,
            tmp,
        };
        let line = daemon
            .wait_for_stdout_line(|l| l.starts_with(LISTENING_PREFIX), STARTUP_DEADLINE)
            .unwrap_or_else(|why| {
                daemon.fail(&format!("daemon did not report its address: {why}"))
            });
        let addr_text = line[LISTENING_PREFIX.len()..].trim();
        daemon.addr = addr_text.parse().unwrap_or_else(|e| {
            daemon.fail(&format!(
                "listening line {line:?} has no socket address: {e}"
            ))
        });
        assert_ne!(daemon.addr.port(), 0, "daemon reported port 0: {line:?}");
        daemon
    }

    /// Waits until the daemon printed a stdout line matching `pred` (looking at earlier lines
    /// first) and returns it.
    pub fn wait_for_stdout_line<F: Fn(&str) -> bool>(
        &mut self,
        pred: F,
        timeout: Duration,
    ) -> Result<String, String> {
        if let Some(line) = self.stdout_seen.iter().find(|l| pred(l)) {
            return Ok(line.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout_rx.recv_timeout(left) {
                Ok(line) => {
                    self.stdout_seen.push(line.clone());
                    if pred(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no matching stdout line within {timeout:?}; stdout so far: {:?}",
                        self.stdout_seen
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "daemon closed stdout (exited?); stdout so far: {:?}",
                        self.stdout_seen
                    ))
                }
            }
        }
    }

    /// Every stdout line read so far.
    pub fn stdout_lines(&self) -> &[String] {
        &self.stdout_seen
    }

    /// The daemon's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits, up to `deadline`, for the daemon to exit; `None` if it is still running. The
    /// daemon's stdout closes when it exits, so this waits on that event, not on a clock.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stdout_rx.recv_timeout(left) {
                Ok(line) => self.stdout_seen.push(line),
                Err(RecvTimeoutError::Disconnected) => {
                    self.exit_expected = true;
                    return self.child.wait().ok();
                }
                Err(RecvTimeoutError::Timeout) => return None,
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The temporary directory holding the users file and the user roots.
    pub fn tmp(&self) -> &Path {
        self.tmp.path()
    }

    /// Root directory of `user`.
    pub fn root(&self, user: &str) -> PathBuf {
        self.user(user).2.clone()
    }

    pub fn password(&self, user: &str) -> String {
        self.user(user).1.clone()
    }

    fn user(&self, user: &str) -> &(String, String, PathBuf) {
        self.users
            .iter()
            .find(|(name, _, _)| name == user)
            .unwrap_or_else(|| panic!("test bug: no user {user:?} in this daemon"))
    }

    /// Opens a control connection (220 greeting read) with timeouts on every socket.
    pub fn connect(&self) -> FtpStream {
        ftp_connect(self.addr)
    }

    /// Connects, logs in as `user` and switches to binary (TYPE I).
    pub fn login(&self, user: &str) -> FtpStream {
        let mut ftp = self.connect();
        let pass = self.password(user);
        ftp.login(user, pass.as_str())
            .unwrap_or_else(|e| panic!("login as {user} failed: {e}"));
        ftp.transfer_type(FileType::Binary)
            .expect("TYPE I is accepted after login");
        ftp
    }

    /// Kills the daemon, prints the tail of its stderr and panics with `msg`.
    fn fail(&mut self, msg: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.stderr_thread.take() {
            let _ = t.join();
        }
        panic!(
            "{msg}\n--- daemon stderr (tail) ---\n{}",
            self.stderr_text()
        );
    }

    fn stderr_text(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // A daemon that is gone before the test ends crashed or quit on its own: that fails the
        // test even when every client-side check passed. (Best effort: a crash racing with the
        // end of the test may go unnoticed.)
        let exited_early = self
            .child
            .try_wait()
            .ok()
            .flatten()
            .filter(|_| !self.exit_expected);
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let (Some(status), false) = (exited_early, thread::panicking()) {
            if let Some(t) = self.stderr_thread.take() {
                let _ = t.join();
            }
            panic!(
                "actorftpd exited during the test ({status})\n--- daemon stderr (tail) ---\n{}",
                self.stderr_text()
            );
        }
        if thread::panicking() {
            if let Some(t) = self.stderr_thread.take() {
                let _ = t.join();
            }
            eprintln!(
                "--- actorftpd stderr (tail, test failed) ---\n{}\n--- end of actorftpd stderr ---",
                self.stderr_text()
            );
        }
    }
}

/// Calls `f` with every line read from `r` until EOF (lossy UTF-8, so odd bytes never stop the
/// reader and the daemon can never block on a full pipe).
fn for_each_line<R: Read>(r: R, mut f: impl FnMut(String)) {
    let mut reader = BufReader::new(r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                f(String::from_utf8_lossy(line).into_owned());
            }
        }
    }
}

/// TOML basic string with the characters TOML requires to be escaped.
pub fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Polls `cond` until it holds, failing the test after `timeout`. For conditions no event
/// announces (a file removed, a descriptor count falling); the short pause between polls only
/// leaves the CPU to the daemon, no outcome depends on its length.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting until {what}"
        );
        thread::park_timeout(Duration::from_millis(10));
    }
}

/// Polls `f` until it returns `Some`, failing the test after `timeout` (see [`wait_until`]).
#[track_caller]
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    wait_until(timeout, what, || {
        found = f();
        found.is_some()
    });
    found.expect("wait_until returned, so the value was found")
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A temporary `--admin-token-file` path; the daemon creates the file.
pub struct TokenFile {
    dir: TempDir,
}

impl TokenFile {
    pub fn new() -> TokenFile {
        TokenFile {
            dir: TempDir::new().expect("temporary directory for the admin token"),
        }
    }

    pub fn path(&self) -> String {
        self.dir
            .path()
            .join("admin-token")
            .to_str()
            .expect("temporary paths are UTF-8")
            .to_owned()
    }
}

/// A daemon serving alice (password `pw`, root `srv`) with the admin endpoint on
/// 127.0.0.1:0 and `token` as its token file, and the endpoint's address.
pub fn admin_daemon(token: &TokenFile, extra: &[&str]) -> (Daemon, SocketAddr) {
    let path = token.path();
    let mut args = vec![
        "--admin-listen",
        "127.0.0.1:0",
        "--admin-token-file",
        path.as_str(),
    ];
    args.extend_from_slice(extra);
    let mut d = Daemon::start_with_args(&[("alice", "pw", "srv")], &args);
    let admin = d.announced("actorftpd admin endpoint on ");
    (d, admin)
}

/// Sends `request` as it is to an HTTP endpoint and returns whatever came back before the
/// server closed (a server may answer and close before reading all of a huge request).
pub fn http_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    set_timeouts(&s).expect("set HTTP socket timeouts");
    let _ = s.write_all(request);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

/// `GET path` with `version` (`HTTP/1.0`, `HTTP/1.1`) and extra header lines (each ending in
/// CRLF); the status line and the body.
pub fn http_get(addr: SocketAddr, version: &str, path: &str, headers: &str) -> (String, String) {
    let raw = http_exchange(
        addr,
        format!("GET {path} {version}\r\n{headers}\r\n").as_bytes(),
    );
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer from {addr}: {raw:?}"));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// Connects a suppaftp client to `addr` with read/write timeouts on the control connection and on
/// every passive data connection.
pub fn ftp_connect(addr: SocketAddr) -> FtpStream {
    let control = TcpStream::connect_timeout(&addr, SOCKET_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    set_timeouts(&control).expect("set control socket timeouts");
    FtpStream::connect_with_stream(control)
        .unwrap_or_else(|e| panic!("no 220 greeting from {addr}: {e}"))
        .passive_stream_builder(|data_addr| {
            let data = TcpStream::connect_timeout(&data_addr, SOCKET_TIMEOUT)
                .map_err(FtpError::ConnectionError)?;
            set_timeouts(&data).map_err(FtpError::ConnectionError)?;
            Ok(data)
        })
}

fn set_timeouts(s: &TcpStream) -> std::io::Result<()> {
    s.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    s.set_write_timeout(Some(SOCKET_TIMEOUT))
}

/// The reply code carried by a suppaftp error, if the server answered with one.
pub fn reply_code(err: &FtpError) -> Option<u32> {
    match err {
        FtpError::UnexpectedResponse(r) => Some(r.status.code()),
        _ => None,
    }
}

/// Asserts that `res` failed because the server replied `code`.
#[track_caller]
pub fn assert_reply<T: std::fmt::Debug>(res: Result<T, FtpError>, code: u32, what: &str) {
    match res {
        Ok(v) => panic!("{what}: expected a {code} reply, but it succeeded ({v:?})"),
        Err(e) => assert_eq!(
            reply_code(&e),
            Some(code),
            "{what}: expected a {code} reply, got error {e}"
        ),
    }
}

/// Sends a raw command and returns the reply, asserting its code is one of `codes`.
#[track_caller]
pub fn expect_codes(ftp: &mut FtpStream, command: &str, codes: &[Status]) -> String {
    match ftp.custom_command(command, codes) {
        Ok(r) => r.as_string().unwrap_or_default(),
        Err(e) => {
            let want: Vec<u32> = codes.iter().map(Status::code).collect();
            panic!("{command}: expected a reply in {want:?}, got {e}")
        }
    }
}

/// Sends a raw command and returns the reply, asserting its code is `code`.
#[track_caller]
pub fn expect_code(ftp: &mut FtpStream, command: &str, code: Status) -> String {
    match ftp.custom_command(command, &[code]) {
        Ok(r) => r.as_string().unwrap_or_default(),
        Err(e) => panic!("{command}: expected reply {}, got {e}", code.code()),
    }
}

/// Uploads `data` as `name` in whatever type the session is in (use binary).
#[track_caller]
pub fn put(ftp: &mut FtpStream, name: &str, data: &[u8]) {
    let sent = ftp
        .put_file(name, &mut &data[..])
        .unwrap_or_else(|e| panic!("STOR {name} ({} bytes) failed: {e}", data.len()));
    assert_eq!(sent, data.len() as u64, "bytes sent for {name}");
}

/// Downloads `name` into memory.
#[track_caller]
pub fn get(ftp: &mut FtpStream, name: &str) -> Vec<u8> {
    ftp.retr_as_buffer(name)
        .unwrap_or_else(|e| panic!("RETR {name} failed: {e}"))
        .into_inner()
}

/// Deterministic pseudo-random bytes (xorshift64*), a different stream for every length.
pub fn random_bytes(n: usize) -> Vec<u8> {
    random_bytes_seeded(0x9E37_79B9_7F4A_7C15 ^ n as u64, n)
}

/// Deterministic pseudo-random bytes (xorshift64*) from `seed`.
pub fn random_bytes_seeded(seed: u64, n: usize) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = vec![0u8; n];
    for chunk in out.chunks_mut(8) {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    out
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// sha256 of a file on disk, with the path in the panic message if it cannot be read.
#[track_caller]
pub fn file_sha256(path: &Path) -> String {
    let mut f = std::fs::File::open(path)
        .unwrap_or_else(|e| panic!("open {} to hash it: {e}", path.display()));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * KIB];
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts that the file at `path` holds exactly `data` (compared by sha256, so a failure
/// shows two hashes, not two megabytes).
#[track_caller]
pub fn assert_file_holds(path: &Path, data: &[u8], what: &str) {
    assert_eq!(file_sha256(path), sha256_hex(data), "{what}");
}

/// Asserts that `got` and `want` are the same names, in any order.
#[track_caller]
pub fn assert_same_names<S: AsRef<str>>(
    got: impl IntoIterator<Item = S>,
    want: &[&str],
    what: &str,
) {
    let mut got: Vec<String> = got.into_iter().map(|n| n.as_ref().to_owned()).collect();
    got.sort();
    let mut want: Vec<String> = want.iter().map(|n| n.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{what}");
}

/// A daemon with one user when `tool` is installed; `None` when it is not (the test is then
/// skipped, as [`require_tool`] reports).
pub fn daemon_if_tool(tool: &str, user: &str, pass: &str) -> Option<Daemon> {
    require_tool(tool).then(|| Daemon::start(&[(user, pass)]))
}

/// Human name of a test size, for messages.
pub fn size_label(n: usize) -> String {
    match n {
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB", n / KIB),
        n => format!("{n} B"),
    }
}

/// The daemon refused to start (`status` not success) and said why in one line of `stderr`
/// that contains `want`.
#[track_caller]
pub fn assert_refused_in_one_line(status: ExitStatus, stderr: &[u8], want: &str, what: &str) {
    let err = String::from_utf8_lossy(stderr);
    assert!(!status.success(), "{what}: the daemon started\n{err}");
    assert!(err.contains(want), "{what}: no {want:?} in {err}");
    assert_eq!(
        err.trim().lines().count(),
        1,
        "{what}: not one clear line: {err}"
    );
}

/// Whether the external program `name` is on PATH. If it is not: panics when `CI` is set, else
/// prints a loud skip line and returns false so the test can return early.
pub fn require_tool(name: &str) -> bool {
    if find_on_path(name).is_some() {
        return true;
    }
    cannot_run(
        &format!("{name} is required by this test but is not on PATH"),
        &format!("{name} not installed"),
    )
}

/// A test that cannot run on this machine (`required` says why, `missing` names what is not
/// there): panics when `CI` is set, else prints a loud skip line. Returns false, so that the
/// test can return early.
pub fn cannot_run(required: &str, missing: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{required} (CI is set, so this is an error, not a skip)");
    }
    // Written to the real stderr, not through eprintln!, which libtest captures and hides for
    // passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n=== SKIPPED: {missing}; this test did not run ===\n"
    );
    false
}

pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// What an external client printed and how it exited.
pub struct ClientOutput {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub description: String,
}

impl ClientOutput {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Panics (showing the command's output) unless it exited with status 0.
    #[track_caller]
    pub fn assert_success(&self, what: &str) -> &Self {
        self.assert_status(self.status.success(), what, "failed with")
    }

    /// Panics (showing the command's output) unless it exited with status `code`.
    #[track_caller]
    pub fn assert_exit(&self, code: i32, what: &str) -> &Self {
        let how = format!("should have exited with {code}, exited with");
        self.assert_status(self.status.code() == Some(code), what, &how)
    }

    #[track_caller]
    fn assert_status(&self, ok: bool, what: &str, how: &str) -> &Self {
        assert!(
            ok,
            "{what}: `{}` {how} {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.description,
            self.status,
            self.stdout_text(),
            self.stderr_text()
        );
        self
    }

    /// Panics (showing stderr) unless the command's stderr contains `text`.
    #[track_caller]
    pub fn assert_stderr_has(&self, text: &str, what: &str) -> &Self {
        let err = self.stderr_text();
        assert!(err.contains(text), "{what}: no {text:?} in stderr:\n{err}");
        self
    }
}

/// curl as `user` with verbose output (the tests read which commands it sent), IPv6 URL
/// literals allowed (`-g`), and time limits on connect and on the whole transfer.
pub fn curl_as(user: &str, pass: &str, args: &[&str]) -> ClientOutput {
    curl_with(Some((user, pass)), true, args)
}

/// curl with `-sS -g`, time limits on connect and on the whole transfer, `--user` when `creds`
/// are given, and `-v` (the commands sent and the replies, on stderr) when `verbose`.
pub fn curl_with(creds: Option<(&str, &str)>, verbose: bool, args: &[&str]) -> ClientOutput {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-g", "--max-time", "60", "--connect-timeout", "10"]);
    if verbose {
        cmd.arg("-v");
    }
    if let Some((user, pass)) = creds {
        cmd.arg("--user").arg(format!("{user}:{pass}"));
    }
    cmd.args(args);
    run_with_timeout(&mut cmd, CLIENT_DEADLINE + Duration::from_secs(10))
}

/// A temporary path as a command-line argument.
pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Runs `mode` of a Python `ftplib` script in tests/clients/ (`ftplib_session.py`,
/// `ftplib_extras.py`) as `script MODE HOST PORT USER PASS EXTRA...`, requires exit 0, and
/// returns the TAB-separated records it printed.
pub fn ftplib_script(
    script: &str,
    mode: &str,
    d: &Daemon,
    (user, pass): (&str, &str),
    extra: &[&str],
) -> Records {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(path)
        .arg(mode)
        .arg(d.addr().ip().to_string())
        .arg(d.port().to_string())
        .args([user, pass])
        .args(extra)
        .env("PYTHONIOENCODING", "utf-8");
    let out = run_with_timeout(&mut cmd, CLIENT_DEADLINE);
    out.assert_success(&format!("{script} {mode}"));
    Records::parse(&out.stdout_text())
}

/// TAB-separated records (`key\tfield\tfield...`), one a line, as the ftplib scripts print them.
#[derive(Debug)]
pub struct Records(Vec<Vec<String>>);

impl Records {
    pub fn parse(text: &str) -> Records {
        Records(
            text.lines()
                .map(|l| l.split('\t').map(str::to_string).collect())
                .collect(),
        )
    }

    /// Values of every record named `key` (fields after the key).
    pub fn all(&self, key: &str) -> Vec<&[String]> {
        self.0
            .iter()
            .filter(|r| r[0] == key)
            .map(|r| &r[1..])
            .collect()
    }

    /// First field of the single record named `key`.
    #[track_caller]
    pub fn one(&self, key: &str) -> &str {
        let all = self.all(key);
        assert_eq!(
            all.len(),
            1,
            "expected one {key:?} record, got {all:?} in {self:?}"
        );
        all[0].first().map(String::as_str).unwrap_or("")
    }
    /// Asserts that the single reply record `key` has reply code `code`.
    #[track_caller]
    pub fn assert_code(&self, key: &str, code: u16) {
        let reply = self.one(key);
        assert!(
            reply.starts_with(&code.to_string()),
            "{key}: expected {code}, got {reply:?} in {self:?}"
        );
    }
}

/// Runs `cmd` to completion with a hard deadline: `Child::wait` runs in a thread and the caller
/// waits on a channel with `recv_timeout`; on timeout the child is killed by its pid and the test
/// fails. stdout/stderr are captured by their own threads so a chatty child never blocks, and are
/// collected with the same deadline (a grandchild keeping a pipe open cannot hang the test).
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> ClientOutput {
    let deadline = Instant::now() + timeout;
    let description = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {description}: {e}"));
    let pid = child.id();
    let stdout = Drain::start(child.stdout.take().expect("child stdout is piped"));
    let stderr = Drain::start(child.stderr.take().expect("child stderr is piped"));
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(status) => status.unwrap_or_else(|e| panic!("wait for {description}: {e}")),
        Err(_) => {
            // The waiter thread still owns the (unreaped) child, so its pid is still ours.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let grace = Instant::now() + Duration::from_secs(2);
            let _ = rx.recv_timeout(Duration::from_secs(2));
            panic!(
                "`{description}` did not finish within {timeout:?} and was killed\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&stdout.finish(grace)),
                String::from_utf8_lossy(&stderr.finish(grace))
            );
        }
    };
    // The child has exited; its pipes reach EOF at once unless a grandchild inherited them.
    let grace = deadline.max(Instant::now() + Duration::from_secs(2));
    ClientOutput {
        status,
        stdout: stdout.finish(grace),
        stderr: stderr.finish(grace),
        description,
    }
}

/// A pipe read to EOF by its own thread; what was read so far can be taken at any time.
struct Drain {
    buf: Arc<Mutex<Vec<u8>>>,
    eof: Receiver<()>,
}

impl Drain {
    fn start<R: Read + Send + 'static>(mut r: R) -> Drain {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, eof) = mpsc::channel();
        let shared = Arc::clone(&buf);
        thread::spawn(move || {
            let mut chunk = [0u8; 64 * 1024];
            loop {
                match r.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => shared
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&chunk[..n]),
                }
            }
            let _ = tx.send(());
        });
        Drain { buf, eof }
    }

    /// Waits for EOF until `deadline`, then returns everything read.
    fn finish(self, deadline: Instant) -> Vec<u8> {
        let _ = self
            .eof
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *buf)
    }
}

/// Writes `data` to `path`, creating parent directories.
#[track_caller]
pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
    }
    std::fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The names in `dir`, sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap_or_else(|e| panic!("entry of {}: {e}", dir.display()));
            e.file_name().to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names
}

/// All regular files under `dir`, as (path relative to `dir`, sha256), sorted.
pub fn tree_hashes(dir: &Path) -> Vec<(String, String)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            let path = entry.path();
            let ft = entry.file_type().expect("file type");
            if ft.is_dir() {
                walk(base, &path, out);
            } else if ft.is_file() {
                let rel = path
                    .strip_prefix(base)
                    .expect("entry under base")
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, file_sha256(&path)));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// All directories under `dir` (relative, sorted), including empty ones.
pub fn tree_dirs(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        for entry in entries {
            let entry = entry.expect("directory entry");
            if entry.file_type().expect("file type").is_dir() {
                let path = entry.path();
                out.push(
                    path.strip_prefix(base)
                        .expect("entry under base")
                        .to_string_lossy()
                        .into_owned(),
                );
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A nested tree with spaces in names (and optionally non-ASCII names), as (relative path, data).
pub fn sample_tree(non_ascii: bool) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(&str, usize)> = vec![
        ("top.bin", 3 * KIB + 7),
        ("empty file.txt", 0),
        ("one byte", 1),
        ("dir one/a.bin", 64 * KIB),
        ("dir one/with space.dat", 100 * KIB + 3),
        ("dir one/nested dir/deep file.bin", 200 * KIB + 11),
        ("dir one/nested dir/deeper/leaf.txt", 513),
        ("second/b c d.bin", 40 * KIB),
    ];
    if non_ascii {
        files.extend([
            ("ünïcødé dir/ファイル.bin", 12 * KIB + 5),
            ("ünïcødé dir/naïve café.txt", 77),
            ("Ωmega.bin", 9 * KIB),
        ]);
    }
    files
        .into_iter()
        .enumerate()
        .map(|(i, (name, len))| (name.to_string(), random_bytes_seeded(1000 + i as u64, len)))
        .collect()
}

/// Writes [`sample_tree`] entries under `dir` and returns the expected (path, sha256) list.
pub fn write_tree(dir: &Path, files: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let mut expected = Vec::new();
    for (rel, data) in files {
        write_file(&dir.join(rel), data);
        expected.push((rel.clone(), sha256_hex(data)));
    }
    expected.sort();
    expected
}

/// The parts of an `ftp://USER:PASSWORD@HOST:PORT/` URL.
#[derive(Debug, Clone)]
pub struct FtpUrl {
    pub url: String,
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
}

/// Finds the first `ftp://USER:PASSWORD@HOST:PORT/` URL in `text` (hand-rolled: the crate has no
/// regex dev-dependency). User and password are percent-decoded.
pub fn find_ftp_url(text: &str) -> Option<FtpUrl> {
    let mut rest = text;
    while let Some(start) = rest.find("ftp://") {
        let candidate: &str = rest[start..]
            .split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '<' || c == '>')
            .next()
            .unwrap_or("");
        if let Some(url) = parse_ftp_url(candidate) {
            return Some(url);
        }
        rest = &rest[start + "ftp://".len()..];
    }
    None
}

fn parse_ftp_url(candidate: &str) -> Option<FtpUrl> {
    let body = candidate.strip_prefix("ftp://")?;
    let (authority, path) = body.split_once('/')?;
    if !path.is_empty() {
        return None;
    }
    let (userinfo, hostport) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    let (host, port) = hostport.rsplit_once(':')?;
    if user.is_empty() || password.is_empty() || host.is_empty() {
        return None;
    }
    Some(FtpUrl {
        url: candidate.to_string(),
        user: percent_decode(user)?,
        password: percent_decode(password)?,
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port: port.parse().ok()?,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes a path segment for use in an `ftp://` URL (curl).
pub fn url_encode(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Daemon {
    /// The address printed on a stdout line starting with `prefix` (the admin and metrics
    /// endpoints announce themselves so).
    pub fn announced(&mut self, prefix: &str) -> SocketAddr {
        let line = self
            .wait_for_stdout_line(|l| l.starts_with(prefix), STARTUP_DEADLINE)
            .unwrap_or_else(|e| panic!("no {prefix:?} line: {e}"));
        line[prefix.len()..]
            .split_whitespace()
            .next()
            .and_then(|a| {
                a.trim_end_matches("/metrics")
                    .trim_start_matches("http://")
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no address in {line:?}"))
    }

    /// The daemon's stderr lines read so far (the last 200), to check what it logged.
    pub fn stderr_lines(&self) -> Vec<String> {
        let tail = self.stderr_tail.lock().unwrap_or_else(|p| p.into_inner());
        tail.iter().cloned().collect()
    }
}
