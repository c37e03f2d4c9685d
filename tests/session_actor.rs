//! Actor-level tests: a Session with a channel as its reply sink, driven by synthetic
//! `Command` messages. No control socket; data connections are real loopback sockets.

use actix::prelude::*;
use actorftpd::auth::{Credential, Password, Permissions, User, UserDb};
use actorftpd::config::Config;
use actorftpd::protocol::{Command, EpsvArg, ParseError, Reply, TransferType};
use actorftpd::session::{Outbound, Peer, Services, Session, Unparsable};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// Generous: a reply that does not come within this is a hang, and the test fails.
const REPLY_DEADLINE: Duration = Duration::from_secs(10);

struct Harness {
    session: Addr<Session>,
    replies: mpsc::UnboundedReceiver<Outbound>,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A Session for user alice/secret (with `permissions`) whose root is a fresh temp folder.
    async fn start(permissions: Permissions) -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("srv");
        std::fs::create_dir(&root).expect("root");
        let user = User::new(
            "alice",
            Credential::Plain(Password::new("secret")),
            root.clone(),
            permissions,
        );
        let mut config = Config::default();
        // Failed logins are answered at once here; the delay has its own test.
        config.login.failure_delay = Duration::ZERO;
        let services = Services::start(config, UserDb::single(user), Default::default());
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

    async fn logged_in() -> Harness {
        let mut h = Harness::start(Permissions::ALL).await;
        h.cmd(Command::User("alice".into()), 331).await;
        h.cmd(Command::Pass("secret".into()), 230).await;
        h
    }

    async fn next(&mut self) -> Outbound {
        match tokio::time::timeout(REPLY_DEADLINE, self.replies.recv()).await {
            Ok(Some(out)) => out,
            Ok(None) => panic!("session stopped without replying"),
            Err(_) => panic!("no reply within {REPLY_DEADLINE:?}"),
        }
    }

    async fn reply(&mut self) -> Reply {
        match self.next().await {
            Outbound::Reply(r) => r,
            Outbound::Close => panic!("connection closed instead of a reply"),
            Outbound::StartTls(_) => panic!("TLS upgrade instead of a reply"),
        }
    }

    async fn expect(&mut self, code: u16) -> Reply {
        let r = self.reply().await;
        assert_eq!(r.code.as_u16(), code, "unexpected reply {r}");
        r
    }

    async fn send(&mut self, cmd: Command) {
        self.session.send(cmd).await.expect("session alive");
    }

    async fn cmd(&mut self, cmd: Command, code: u16) -> Reply {
        self.send(cmd).await;
        self.expect(code).await
    }

    /// EPSV, then a data connection to the port it names.
    async fn passive(&mut self) -> std::net::TcpStream {
        let r = self.cmd(Command::Epsv(EpsvArg::Any), 229).await;
        let text = r.text();
        let port: u16 = text
            .split("|||")
            .nth(1)
            .and_then(|s| s.trim_end_matches(['|', ')']).parse().ok())
            .unwrap_or_else(|| panic!("no port in {text:?}"));
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        std::net::TcpStream::connect(addr).expect("connect to passive port")
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    Sha256::digest(data).to_vec()
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
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

fn write(root: &Path, name: &str, data: &[u8]) {
    std::fs::write(root.join(name), data).expect("write fixture");
}

/// Reads a data socket to EOF on a blocking thread (the actors keep running meanwhile).
async fn read_all(mut sock: std::net::TcpStream) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        sock.set_read_timeout(Some(REPLY_DEADLINE))
            .expect("timeout");
        let mut buf = Vec::new();
        sock.read_to_end(&mut buf).expect("read data connection");
        buf
    })
    .await
    .expect("reader thread")
}

#[actix::test]
async fn login_with_right_password_succeeds() {
    let mut h = Harness::start(Permissions::ALL).await;
    h.cmd(Command::User("alice".into()), 331).await;
    h.cmd(Command::Pass("secret".into()), 230).await;
    let pwd = h.cmd(Command::Pwd, 257).await;
    assert!(pwd.text().starts_with("\"/\""), "{pwd}");
}

#[actix::test]
async fn wrong_password_and_unknown_user_get_the_same_530() {
    let mut h = Harness::start(Permissions::ALL).await;
    h.cmd(Command::User("alice".into()), 331).await;
    let wrong_pass = h.cmd(Command::Pass("nope".into()), 530).await;
    h.cmd(Command::User("mallory".into()), 331).await;
    let no_user = h.cmd(Command::Pass("secret".into()), 530).await;
    assert_eq!(
        wrong_pass, no_user,
        "replies must not reveal which names exist"
    );
    // Still able to log in afterwards.
    h.cmd(Command::User("alice".into()), 331).await;
    h.cmd(Command::Pass("secret".into()), 230).await;
}

#[actix::test]
async fn pass_before_user_is_bad_sequence() {
    let mut h = Harness::start(Permissions::ALL).await;
    h.cmd(Command::Pass("secret".into()), 503).await;
}

#[actix::test]
async fn commands_before_login_get_530() {
    let mut h = Harness::start(Permissions::ALL).await;
    for cmd in [
        Command::Pwd,
        Command::Cwd("/".into()),
        Command::List(None),
        Command::Retr("x".into()),
        Command::Stor("x".into()),
        Command::Dele("x".into()),
        Command::Mkd("d".into()),
        Command::Pasv,
        Command::Epsv(EpsvArg::Any),
        Command::Size("x".into()),
    ] {
        h.cmd(cmd, 530).await;
    }
    // The allowed ones still answer.
    h.cmd(Command::Noop, 200).await;
    h.cmd(Command::Syst, 215).await;
    let feat = h.cmd(Command::Feat, 211).await;
    assert!(feat.lines.iter().any(|l| l == " UTF8"), "{feat:?}");
    assert_eq!(feat.lines.first().map(String::as_str), Some("Features:"));
    assert_eq!(feat.lines.last().map(String::as_str), Some("End"));
    h.cmd(Command::Opts("UTF8".into(), Some("ON".into())), 200)
        .await;
    h.cmd(Command::Help(None), 214).await;
}

#[actix::test]
async fn cwd_outside_the_root_is_refused_and_cwd_is_unchanged() {
    let mut h = Harness::logged_in().await;
    std::fs::create_dir(h.root.join("sub")).expect("mkdir");
    // A sibling folder whose name starts like the root's, and a symlink pointing out.
    let sibling = h.root.parent().expect("parent").join("srv2");
    std::fs::create_dir(&sibling).expect("sibling");
    std::os::unix::fs::symlink(&sibling, h.root.join("escape")).expect("symlink");
    h.cmd(Command::Cwd("sub".into()), 250).await;
    for target in ["/escape", "../escape", "/../srv2", "../../srv2", "/etc"] {
        h.cmd(Command::Cwd(target.into()), 550).await;
        let pwd = h.cmd(Command::Pwd, 257).await;
        assert!(
            pwd.text().starts_with("\"/sub\""),
            "after CWD {target}: {pwd}"
        );
    }
    // `..` above the root stays at the root.
    h.cmd(Command::Cwd("../../../..".into()), 250).await;
    let pwd = h.cmd(Command::Pwd, 257).await;
    assert!(pwd.text().starts_with("\"/\""), "{pwd}");
}

#[actix::test]
async fn passive_retr_sends_the_file_byte_exact() {
    let mut h = Harness::logged_in().await;
    let data = random_bytes(3 * 1024 * 1024 + 7, 42);
    write(&h.root, "blob.bin", &data);
    h.cmd(Command::Type(TransferType::Image), 200).await;
    let sock = h.passive().await;
    h.cmd(Command::Retr("blob.bin".into()), 150).await;
    let got = read_all(sock).await;
    let done = h.expect(226).await;
    assert_eq!(sha256(&got), sha256(&data));
    assert!(
        done.text().contains(&data.len().to_string()),
        "226 states the bytes: {done}"
    );
}

#[actix::test]
async fn data_command_without_pasv_gets_425() {
    let mut h = Harness::logged_in().await;
    write(&h.root, "a", b"a");
    h.cmd(Command::Retr("a".into()), 425).await;
    h.cmd(Command::List(None), 425).await;
}

#[actix::test]
async fn missing_file_gets_550_and_consumes_the_passive_port() {
    let mut h = Harness::logged_in().await;
    let _sock = h.passive().await;
    h.cmd(Command::Retr("nope".into()), 550).await;
    h.cmd(Command::Retr("nope".into()), 425).await;
}

#[actix::test]
async fn noop_stat_and_abor_answer_while_a_transfer_runs() {
    let mut h = Harness::logged_in().await;
    // Large enough that the copy blocks on a full socket buffer while nobody reads.
    let data = random_bytes(64 * 1024 * 1024, 7);
    write(&h.root, "big.bin", &data);
    h.cmd(Command::Type(TransferType::Image), 200).await;
    let sock = h.passive().await;
    h.cmd(Command::Retr("big.bin".into()), 150).await;
    h.cmd(Command::Noop, 200).await;
    let stat = h.cmd(Command::Stat(None), 211).await;
    assert!(
        stat.text().contains("Transfer in progress: RETR /big.bin"),
        "{stat:?}"
    );
    h.send(Command::Abor).await;
    h.expect(426).await;
    h.expect(226).await;
    drop(sock);
    // The session is usable afterwards.
    h.cmd(Command::Noop, 200).await;
    h.cmd(Command::Abor, 225).await;
}

#[actix::test]
async fn stor_then_retr_round_trips_and_replaces_atomically() {
    let mut h = Harness::logged_in().await;
    write(&h.root, "f.bin", b"old contents");
    h.cmd(Command::Type(TransferType::Image), 200).await;
    let data = random_bytes(1024 * 1024 + 3, 9);
    let mut sock = h.passive().await;
    h.cmd(Command::Stor("f.bin".into()), 150).await;
    let payload = data.clone();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        sock.write_all(&payload).expect("upload");
    })
    .await
    .expect("writer");
    h.expect(226).await;
    let on_disk = std::fs::read(h.root.join("f.bin")).expect("uploaded file");
    assert_eq!(sha256(&on_disk), sha256(&data));
    let leftovers: Vec<_> = std::fs::read_dir(&h.root)
        .expect("list")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".part"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary upload files left: {leftovers:?}"
    );
}

#[actix::test]
async fn aborted_upload_keeps_the_old_file() {
    let mut h = Harness::logged_in().await;
    write(&h.root, "keep.bin", b"precious");
    h.cmd(Command::Type(TransferType::Image), 200).await;
    let mut sock = h.passive().await;
    h.cmd(Command::Stor("keep.bin".into()), 150).await;
    {
        use std::io::Write;
        sock.write_all(b"partial data").expect("some bytes");
    }
    h.send(Command::Abor).await;
    h.expect(426).await;
    h.expect(226).await;
    assert_eq!(
        std::fs::read(h.root.join("keep.bin")).expect("file"),
        b"precious"
    );
}

#[actix::test]
async fn read_only_user_cannot_change_anything() {
    let mut h = Harness::start(Permissions::READ_ONLY).await;
    h.cmd(Command::User("alice".into()), 331).await;
    h.cmd(Command::Pass("secret".into()), 230).await;
    write(&h.root, "a", b"a");
    h.cmd(Command::Dele("a".into()), 550).await;
    h.cmd(Command::Mkd("d".into()), 550).await;
    h.cmd(Command::Rnfr("a".into()), 550).await;
    let _sock = h.passive().await;
    h.cmd(Command::Stor("b".into()), 550).await;
    assert!(h.root.join("a").exists());
    assert!(!h.root.join("b").exists() && !h.root.join("d").exists());
}

#[actix::test]
async fn file_commands_reply_with_their_codes() {
    let mut h = Harness::logged_in().await;
    write(&h.root, "f", b"12345");
    h.cmd(Command::Type(TransferType::Image), 200).await;
    assert_eq!(h.cmd(Command::Size("f".into()), 213).await.text(), "5");
    h.cmd(Command::Size("nope".into()), 550).await;
    let mdtm = h.cmd(Command::Mdtm("f".into()), 213).await;
    assert_eq!(mdtm.text().len(), 14, "{mdtm}");
    let mkd = h.cmd(Command::Mkd("new \"dir\"".into()), 257).await;
    assert!(
        mkd.text().starts_with("\"/new \"\"dir\"\"\""),
        "quotes doubled: {mkd}"
    );
    h.cmd(Command::Mkd("new \"dir\"".into()), 550).await;
    h.cmd(Command::Rmd("new \"dir\"".into()), 250).await;
    h.cmd(Command::Rnto("g".into()), 503).await;
    h.cmd(Command::Rnfr("f".into()), 350).await;
    h.cmd(Command::Rnto("g".into()), 250).await;
    assert!(h.root.join("g").exists() && !h.root.join("f").exists());
    h.cmd(Command::Dele("g".into()), 250).await;
    h.cmd(Command::Dele("g".into()), 550).await;
    h.cmd(Command::Rmd("/".into()), 550).await;
    h.cmd(Command::Type(TransferType::Ascii), 200).await;
    h.cmd(Command::Size("f".into()), 550).await;
}

#[actix::test]
async fn unparsable_lines_get_their_codes_and_too_many_long_lines_close() {
    let mut h = Harness::logged_in().await;
    h.session
        .send(Unparsable(ParseError::UnknownCommand("XYZZ".into())))
        .await
        .expect("alive");
    h.expect(500).await;
    h.session
        .send(Unparsable(ParseError::MissingArgument("RETR")))
        .await
        .expect("alive");
    h.expect(501).await;
    for _ in 0..3 {
        h.session
            .send(Unparsable(ParseError::LineTooLong))
            .await
            .expect("alive");
        h.expect(500).await;
    }
    h.session
        .send(Unparsable(ParseError::LineTooLong))
        .await
        .expect("alive");
    h.expect(421).await;
    assert_eq!(h.next().await, Outbound::Close);
}

#[actix::test]
async fn quit_says_goodbye_and_closes() {
    let mut h = Harness::logged_in().await;
    // The session stops right after QUIT, so the message's own response may be dropped.
    let _ = h.session.send(Command::Quit).await;
    h.expect(221).await;
    assert_eq!(h.next().await, Outbound::Close);
}
