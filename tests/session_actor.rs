//! Actor-level tests: a Session with a channel as its reply sink, driven by synthetic
//! `Command` messages. No control socket; data connections are real loopback sockets.
//! The harness is shared with tests/session_timeouts.rs (tests/actor_harness/).

mod actor_harness;

use actor_harness::{random_bytes, read_to_eof, sha256, write, Harness};
use actorftpd::auth::Permissions;
use actorftpd::config::Config;
use actorftpd::protocol::{Command, EpsvArg, ParseError, TransferType};
use actorftpd::session::{SinkItem, Unparsable};
use std::time::Duration;

impl Harness {
    /// A Session for user alice/secret (with `permissions`) whose root is a fresh temp folder.
    async fn start(permissions: Permissions) -> Harness {
        let mut config = Config::default();
        // Failed logins are answered at once here; the delay has its own test.
        config.login.failure_delay = Duration::ZERO;
        Harness::start_with(config, permissions).await
    }

    async fn logged_in() -> Harness {
        let mut h = Harness::start(Permissions::ALL).await;
        h.login().await;
        h
    }
}

/// Reads a data socket to EOF on a blocking thread (the actors keep running meanwhile).
async fn read_all(sock: std::net::TcpStream) -> Vec<u8> {
    tokio::task::spawn_blocking(move || read_to_eof(sock))
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
    assert_eq!(h.next().await, SinkItem::Close);
}

#[actix::test]
async fn quit_says_goodbye_and_closes() {
    let mut h = Harness::logged_in().await;
    // The session stops right after QUIT, so the message's own response may be dropped.
    let _ = h.session.send(Command::Quit).await;
    h.expect(221).await;
    assert_eq!(h.next().await, SinkItem::Close);
}
