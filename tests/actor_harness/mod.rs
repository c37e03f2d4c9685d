//! Shared harness for the actor-level tests (tests/session_actor.rs, tests/session_timeouts.rs):
//! a Session with a `tokio::sync::mpsc` channel as its reply sink, driven by synthetic `Command`
//! messages. No control socket; data connections are real loopback sockets.
//!
//! Only what both test files use lives here (a directory module, so no other test crate compiles
//! it); each file adds its own `impl Harness` block for what only it needs (its `start` and
//! `logged_in`, the paused-time `_spin` variants, ...).

use actix::prelude::*;
use actorftpd::auth::{Credential, Password, Permissions, User, UserDb};
use actorftpd::config::Config;
use actorftpd::protocol::{Command, EpsvArg, Reply};
use actorftpd::server;
use actorftpd::session::{Peer, Session, SinkItem};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Generous, and real time: a reply that does not come within this is a hang, and the test fails.
pub const REPLY_DEADLINE: Duration = Duration::from_secs(10);

pub struct Harness {
    pub session: Addr<Session>,
    pub replies: mpsc::UnboundedReceiver<SinkItem>,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A Session with `config` for user alice/secret (with `permissions`) whose root is a fresh
    /// temp folder; returns once the 220 greeting has come.
    pub async fn start_with(config: Config, permissions: Permissions) -> Harness {
        Harness::start_with_user(config, |user| user.permissions = permissions).await
    }

    /// `start_with` for a user alice/secret (all permissions) that `edit` may change.
    pub async fn start_with_user(config: Config, edit: impl FnOnce(&mut User)) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("srv");
        std::fs::create_dir(&root).expect("root");
        let mut user = User::new(
            "alice",
            Credential::Plain(Password::new("secret")),
            root.clone(),
            Permissions::ALL,
        );
        edit(&mut user);
        let services = server::services(config, UserDb::single(user), Default::default());
        let peer = Peer {
            id: 1,
            remote: "127.0.0.1:40000".parse().expect("addr"),
            local: "127.0.0.1:2121".parse().expect("addr"),
        };
        let (tx, replies) = mpsc::unbounded_channel();
        let session = Session::new(peer, services, tx, None).start();
        let mut h = Harness {
            session,
            replies,
            root,
            _dir: dir,
        };
        h.expect(220).await;
        h
    }

    /// USER alice (331), PASS secret (230).
    pub async fn login(&mut self) {
        self.cmd(Command::User("alice".into()), 331).await;
        self.cmd(Command::Pass("secret".into()), 230).await;
    }

    /// Next outbound item (real clock; only while tokio time is not paused).
    pub async fn next(&mut self) -> SinkItem {
        match tokio::time::timeout(REPLY_DEADLINE, self.replies.recv()).await {
            Ok(Some(out)) => out,
            Ok(None) => panic!("session stopped without replying"),
            Err(_) => panic!("no reply within {REPLY_DEADLINE:?}"),
        }
    }

    pub async fn expect(&mut self, code: u16) -> Reply {
        let out = self.next().await;
        expect_reply(out, code)
    }

    pub async fn send(&mut self, cmd: Command) {
        self.session.send(cmd).await.expect("session alive");
    }

    pub async fn cmd(&mut self, cmd: Command, code: u16) -> Reply {
        self.send(cmd).await;
        self.expect(code).await
    }

    /// EPSV, then a data connection to the port it names.
    pub async fn passive(&mut self) -> TcpStream {
        let r = self.cmd(Command::Epsv(EpsvArg::Any), 229).await;
        TcpStream::connect(local(epsv_port(&r))).expect("connect to passive port")
    }
}

/// `out` must be a reply with `code`.
pub fn expect_reply(out: SinkItem, code: u16) -> Reply {
    match out {
        SinkItem::Reply(r) => {
            assert_eq!(r.code.as_u16(), code, "unexpected reply {r}");
            r
        }
        SinkItem::Close => panic!("connection closed instead of a {code} reply"),
        SinkItem::StartTls(_) => panic!("TLS upgrade instead of a {code} reply"),
    }
}

/// The port of a 229 EPSV reply.
pub fn epsv_port(r: &Reply) -> u16 {
    let text = r.text();
    text.split("|||")
        .nth(1)
        .and_then(|s| s.trim_end_matches(['|', ')']).parse().ok())
        .unwrap_or_else(|| panic!("no port in {text:?}"))
}

pub fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

pub fn write(root: &Path, name: &str, data: &[u8]) {
    std::fs::write(root.join(name), data).expect("write fixture");
}

pub fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

/// Deterministic pseudo-random bytes (xorshift64) from `seed`.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Reads a data socket to EOF, blocking (call it off the runtime's worker threads).
pub fn read_to_eof(mut sock: TcpStream) -> Vec<u8> {
    sock.set_read_timeout(Some(REPLY_DEADLINE))
        .expect("timeout");
    let mut buf = Vec::new();
    sock.read_to_end(&mut buf).expect("read data connection");
    buf
}
