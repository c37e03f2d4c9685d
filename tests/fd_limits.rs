//! The open-file limit, against the real daemon started under `ulimit -n`: the soft limit is
//! raised to the hard one, `--max-sessions` is lowered (and the log says so) when the limit
//! cannot hold that many sessions, and under a flood of connections that never log in, a
//! logged-in session keeps working and newcomers get 421 instead of hanging.
//!
//! These tests start the binary through `sh` to set the limit, so they have their own small
//! launcher (the shared `Daemon` runs the binary directly). Every wait has a deadline.

mod common;
mod rawftp;

use common::STARTUP_DEADLINE;
use rawftp::Ctrl;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// A greeting (220 or 421) must come within this; longer is a hang.
const ANSWER_DEADLINE: Duration = Duration::from_secs(5);

/// The daemon under a descriptor limit, killed on drop.
struct Limited {
    child: Child,
    addr: SocketAddr,
    root: PathBuf,
    stderr: Receiver<String>,
    stderr_seen: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl Limited {
    /// Starts the daemon with the soft and hard `RLIMIT_NOFILE` set to `soft` and `hard`, one
    /// user alice/pw, and `extra` options; returns once it is listening.
    fn start(soft: u64, hard: u64, extra: &[&str]) -> Limited {
        let tmp = tempfile::TempDir::new().expect("temp dir");
        let root = tmp.path().join("srv");
        std::fs::create_dir(&root).expect("root");
        let users = tmp.path().join("users.toml");
        let hash = actorftpd::auth::hash_password("pw").expect("hash");
        std::fs::write(
            &users,
            format!(
                "[[user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\nroot = \"{}\"\n",
                root.display()
            ),
        )
        .expect("users file");
        // Soft first: the hard limit may not go below the soft one.
        let script = format!("ulimit -S -n {soft} && ulimit -H -n {hard} && exec \"$0\" \"$@\"");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(env!("CARGO_BIN_EXE_actorftpd"))
            .args(["--listen", "127.0.0.1:0", "--users"])
            .arg(&users)
            .args(extra)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let lines = |r: Box<dyn Read + Send>| {
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().expect("stdout")));
        let stderr = lines(Box::new(child.stderr.take().expect("stderr")));
        let mut d = Limited {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            root,
            stderr,
            stderr_seen: Vec::new(),
            _tmp: tmp,
        };
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix(common::LISTENING_PREFIX) {
                        d.addr = addr.trim().parse().expect("listening address");
                        return d;
                    }
                }
                Err(e) => {
                    let _ = d.wait_stderr(|_| false, Duration::from_millis(1));
                    panic!("no listening line ({e}); stderr: {:?}", d.stderr_seen)
                }
            }
        }
    }

    /// The first stderr line (seen before or within `deadline`) matching `pred`.
    fn wait_stderr(&mut self, pred: impl Fn(&str) -> bool, deadline: Duration) -> Option<String> {
        if let Some(l) = self.stderr_seen.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        let end = Instant::now() + deadline;
        while let Ok(line) = self
            .stderr
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            self.stderr_seen.push(line.clone());
            if pred(&line) {
                return Some(line);
            }
        }
        None
    }

    /// The daemon's (soft, hard) open-file limits, from /proc.
    fn nofile(&self) -> (String, String) {
        let limits =
            std::fs::read_to_string(format!("/proc/{}/limits", self.child.id())).expect("limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("Max open files line");
        let mut fields = line["Max open files".len()..].split_whitespace();
        (
            fields.next().expect("soft").to_owned(),
            fields.next().expect("hard").to_owned(),
        )
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            while let Ok(line) = self.stderr.try_recv() {
                self.stderr_seen.push(line);
            }
            eprintln!("--- actorftpd stderr ---\n{}", self.stderr_seen.join("\n"));
        }
    }
}

/// The `N` of "... lowered from 2000 to N ...".
fn lowered_to(line: &str) -> usize {
    line.split(" to ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

/// The first reply line of a fresh connection, or `None` if none came within the deadline.
fn greeting(addr: SocketAddr) -> (TcpStream, Option<String>) {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(ANSWER_DEADLINE)).expect("timeout");
    let mut line = String::new();
    let answer = match BufReader::new(&s).read_line(&mut line) {
        Ok(n) if n > 0 => Some(line.trim_end().to_owned()),
        _ => None,
    };
    (s, answer)
}

#[test]
fn a_low_descriptor_limit_lowers_max_sessions_and_the_log_says_so_in_one_line() {
    let mut d = Limited::start(120, 120, &[]);
    let line = d
        .wait_stderr(|l| l.contains("--max-sessions lowered"), STARTUP_DEADLINE)
        .expect("a log line saying --max-sessions was lowered");
    assert!(line.contains("from 2000 to "), "{line}");
    assert!(line.contains("120"), "{line}");
    let n = lowered_to(&line);
    assert!(
        (1..10).contains(&n),
        "{n} sessions of 7 descriptors in 120: {line}"
    );
    assert_eq!(d.nofile(), ("120".to_owned(), "120".to_owned()));
}

#[test]
fn a_soft_limit_below_the_hard_one_is_raised_and_then_nothing_is_lowered() {
    let mut d = Limited::start(120, 4096, &["--max-sessions", "100"]);
    assert_eq!(d.nofile(), ("4096".to_owned(), "4096".to_owned()));
    let raised = d.wait_stderr(|l| l.contains("open-file limit raised"), STARTUP_DEADLINE);
    assert!(
        raised.is_some_and(|l| l.contains("from 120 to 4096")),
        "{:?}",
        d.stderr_seen
    );
    // Lines of the start come before a login's: once that is seen, none is pending.
    let mut c = Ctrl::login(d.addr, "alice", "pw");
    c.expect("NOOP", 200);
    assert!(d
        .wait_stderr(|l| l.contains("login ok"), STARTUP_DEADLINE)
        .is_some());
    assert!(
        !d.stderr_seen.iter().any(|l| l.contains("lowered")),
        "{:?}",
        d.stderr_seen
    );
}

#[test]
fn under_a_connection_flood_at_a_low_limit_logged_in_users_keep_working_and_newcomers_get_421() {
    // Behaviour only (the log line has its own test): with 120 descriptors, 150 clients.
    let d = Limited::start(120, 120, &["--max-sessions-per-ip", "1000"]);
    let data = common::random_bytes(300_000);
    std::fs::write(d.root.join("f.bin"), &data).expect("fixture");
    let mut user = Ctrl::login(d.addr, "alice", "pw");

    // 150 connections that never log in, each kept open: more than 120 descriptors could hold.
    let mut flood = Vec::new();
    let (mut sessions, mut refused) = (0, 0);
    for i in 0..150 {
        let (sock, answer) = greeting(d.addr);
        match answer.as_deref() {
            Some(l) if l.starts_with("220") => sessions += 1,
            Some(l) if l.starts_with("421") => refused += 1,
            other => panic!(
                "flood connection {i} got {other:?} within {ANSWER_DEADLINE:?} \
                 ({sessions} sessions, {refused} refused so far)"
            ),
        }
        flood.push(sock);
    }
    assert!(
        sessions > 0 && refused > 0,
        "{sessions} sessions, {refused} refused"
    );

    // The logged-in user still gets data connections, both ways, and listings.
    assert_eq!(user.download("RETR f.bin"), data);
    user.upload("STOR up.bin", &data[..100_000]);
    assert!(user.listing("NLST").contains("up.bin"));
    assert_eq!(
        std::fs::read(d.root.join("up.bin")).expect("uploaded"),
        &data[..100_000]
    );
    // A newcomer is told at once.
    let (_s, answer) = greeting(d.addr);
    assert!(
        answer.as_deref().is_some_and(|l| l.starts_with("421")),
        "newcomer got {answer:?}"
    );
    drop(flood);
    // Room again once the flood is gone (the Listener hears of each closed session).
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        let (_s, answer) = greeting(d.addr);
        match answer.as_deref() {
            Some(l) if l.starts_with("220") => break,
            _ if Instant::now() < deadline => continue,
            other => panic!("still no room after the flood: {other:?}"),
        }
    }
}
