//! Actor tests: every command is gated by the permission that matches what it reveals or
//! changes (the table in diagrams/SPEC.md), and an account that requires TLS is refused in clear
//! exactly like a wrong password, its password unchecked. A Session with a channel as its reply sink, driven by synthetic
//! `Command` messages (tests/actor_harness/).

#[allow(dead_code)] // The harness serves several test files; this one uses part of it.
mod actor_harness;

use actor_harness::{write, Harness};
use actorftpd::auth::Permissions;
use actorftpd::config::Config;
use actorftpd::protocol::command::{parse_time_val, ByteRange, FactChanges, HashAlgo, Timestamp};
use actorftpd::protocol::{Command, EpsvArg};
use std::path::Path;
use std::time::Duration;

fn config() -> Config {
    let mut config = Config::default();
    config.login.failure_delay = Duration::ZERO;
    config
}

/// Every name under `root` with its contents, to show that a refused command changed nothing.
fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir") {
            let path = e.expect("entry").path();
            let name = path
                .strip_prefix(root)
                .expect("inside")
                .display()
                .to_string();
            if path.is_dir() {
                stack.push(path);
                out.push((name + "/", Vec::new()));
            } else {
                out.push((name, std::fs::read(&path).expect("read")));
            }
        }
    }
    out.sort();
    out
}

fn time() -> Timestamp {
    parse_time_val("20010203040506").expect("time")
}

fn facts(modify: Option<Timestamp>, mode: Option<u32>) -> FactChanges {
    FactChanges { modify, mode }
}

/// A row of the table in diagrams/SPEC.md: the permission taken away, and the commands that
/// must then get 550 without touching the store.
type Row = (&'static str, fn(&mut Permissions), Vec<Command>);

fn rows() -> Vec<Row> {
    let s = |x: &str| x.to_owned();
    vec![
        (
            "read",
            |p| p.read = false,
            vec![
                Command::List(None),
                Command::Nlst(None),
                Command::Mlsd(None),
                Command::Mlst(Some(s("f.txt"))),
                Command::Stat(Some(s("f.txt"))),
                Command::Size(s("f.txt")),
                Command::Mdtm(s("f.txt")),
                Command::Retr(s("f.txt")),
                Command::Hash(s("f.txt")),
                Command::XHash(HashAlgo::Md5, s("f.txt"), ByteRange::default()),
            ],
        ),
        (
            "upload",
            |p| p.upload = false,
            vec![Command::Stor(s("new.txt")), Command::Stou],
        ),
        (
            "overwrite",
            |p| p.overwrite = false,
            vec![
                Command::Appe(s("f.txt")),
                Command::Stor(s("f.txt")),
                Command::Mfmt(time(), s("f.txt")),
                Command::Mff(facts(Some(time()), None), s("f.txt")),
                Command::Site(s("UTIME 20010203040506 f.txt")),
            ],
        ),
        (
            "chmod",
            |p| p.chmod = false,
            vec![
                Command::Site(s("CHMOD 600 f.txt")),
                Command::Mff(facts(None, Some(0o600)), s("f.txt")),
            ],
        ),
        (
            "delete",
            |p| p.delete = false,
            vec![Command::Dele(s("f.txt"))],
        ),
        (
            "rename",
            |p| p.rename = false,
            vec![Command::Rnfr(s("f.txt"))],
        ),
        (
            "mkdir",
            |p| p.mkdir = false,
            vec![Command::Mkd(s("newdir")), Command::Rmd(s("sub"))],
        ),
    ]
}

#[actix::test]
async fn each_command_needs_its_permission() {
    for (name, take_away, commands) in rows() {
        let mut perms = Permissions::ALL;
        take_away(&mut perms);
        let mut h = Harness::start_with(config(), perms).await;
        write(&h.root, "f.txt", b"secret contents");
        std::fs::create_dir(h.root.join("sub")).expect("sub");
        let before = snapshot(&h.root);
        h.login().await;
        h.cmd(Command::Type(actorftpd::protocol::TransferType::Image), 200)
            .await;
        for cmd in commands {
            // A data endpoint is ready, so a refusal can only come from the permission.
            h.cmd(Command::Epsv(EpsvArg::Any), 229).await;
            let shown = cmd.to_string();
            let r = h.cmd(cmd, 550).await;
            assert!(
                !r.text().contains("15") && !r.text().contains("2026"),
                "without {name}, {shown} told something: {r}"
            );
        }
        assert_eq!(
            snapshot(&h.root),
            before,
            "without {name}, the folder changed"
        );
    }
}

#[actix::test]
async fn a_write_only_user_learns_nothing_about_files() {
    let perms = Permissions {
        read: false,
        ..Permissions::READ_ONLY
    };
    let perms = Permissions {
        upload: true,
        ..perms
    };
    let mut h = Harness::start_with(config(), perms).await;
    write(&h.root, "f.txt", b"secret contents");
    h.login().await;
    h.cmd(Command::Type(actorftpd::protocol::TransferType::Image), 200)
        .await;
    // An existing file and a missing one get the same answer.
    for name in ["f.txt", "missing.txt"] {
        let size = h.cmd(Command::Size(name.into()), 550).await;
        let mdtm = h.cmd(Command::Mdtm(name.into()), 550).await;
        let mlst = h.cmd(Command::Mlst(Some(name.into())), 550).await;
        assert_eq!(size.text(), mdtm.text(), "{name}");
        assert_eq!(size.text(), mlst.text(), "{name}");
    }
    // It can still move around and upload.
    std::fs::create_dir(h.root.join("in")).expect("dir");
    h.cmd(Command::Cwd("in".into()), 250).await;
}

#[actix::test]
async fn an_account_that_requires_tls_is_refused_in_clear_exactly_like_a_wrong_password() {
    let mut h = Harness::start_with_user(config(), |u| u.require_tls = true).await;
    // USER tells nothing: the same 331 as a name that does not exist.
    let alice = h.cmd(Command::User("alice".into()), 331).await;
    assert_eq!(alice.text(), "Password required for alice");
    // The right password and a wrong one get the same 530 (the password is not even checked).
    let right = h.cmd(Command::Pass("secret".into()), 530).await;
    h.cmd(Command::User("alice".into()), 331).await;
    let wrong = h.cmd(Command::Pass("nope".into()), 530).await;
    assert_eq!(right, wrong);
    // ...and the same as a name that does not exist.
    let nobody = h.cmd(Command::User("bob".into()), 331).await;
    assert_eq!(nobody.text(), "Password required for bob");
    let unknown = h.cmd(Command::Pass("secret".into()), 530).await;
    assert_eq!(right, unknown);
}
