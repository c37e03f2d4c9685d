//! A fuzz target on the stable toolchain: generated command sequences drive a Session through
//! the actor harness (synthetic `Command` messages, real data connections). After every
//! command: no panic, exactly one final answer (a transfer's 150 is followed by exactly one
//! 226/4xx/5xx), and at the end nothing outside the user's root was touched.
//!
//! The cases come from a fixed seed, so CI sees the same ones every run; `PROPTEST_CASES=5000
//! cargo test --test session_fuzz` runs a longer campaign (tests/fuzz/README.md).

#[allow(dead_code)] // The harness serves several test files; this one uses part of it.
mod actor_harness;
mod strategies;

use actor_harness::{epsv_port, local, write, Harness};
use actorftpd::auth::Permissions;
use actorftpd::config::Config;
use actorftpd::protocol::{Command, EpsvArg, ParseError, TransferType};
use actorftpd::session::{SinkItem, Unparsable};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// Names a client might send: planted files, traversal, links out of the root, the server's own
/// temporary-file pattern, and odd bytes.
const NAMES: &[&str] = &[
    "f.txt",
    "sub",
    "sub/g.bin",
    "new.txt",
    "..",
    "../outside.txt",
    "/../../outside.txt",
    "link_out",
    "link_out/x",
    "",
    "/",
    ".actorftpd-upload-0123456789abcdef.part",
];

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        NAMES.len() as u32 => strategies::one_of(NAMES),
        1 => "[a-z]{1,3}(/[a-z.]{1,3}){0,2}",
        1 => any::<String>(),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        name().prop_map(Command::Cwd),
        Just(Command::Cdup),
        Just(Command::Pwd),
        name().prop_map(Command::Size),
        name().prop_map(Command::Mdtm),
        prop::option::of(name()).prop_map(Command::Mlst),
        prop::option::of(name()).prop_map(Command::Stat),
        prop::option::of(name()).prop_map(Command::List),
        prop::option::of(name()).prop_map(Command::Nlst),
        prop::option::of(name()).prop_map(Command::Mlsd),
        name().prop_map(Command::Retr),
        name().prop_map(Command::Stor),
        name().prop_map(Command::Appe),
        Just(Command::Stou),
        name().prop_map(Command::Dele),
        name().prop_map(Command::Mkd),
        name().prop_map(Command::Rmd),
        name().prop_map(Command::Rnfr),
        name().prop_map(Command::Rnto),
        (0u64..40_000).prop_map(Command::Rest),
        prop_oneof![Just(TransferType::Ascii), Just(TransferType::Image)].prop_map(Command::Type),
        Just(Command::Epsv(EpsvArg::Any)),
        Just(Command::Epsv(EpsvArg::Any)),
        Just(Command::Pasv),
        Just(Command::Abor),
        Just(Command::Noop),
        Just(Command::Feat),
        Just(Command::Syst),
        any::<String>().prop_map(Command::Site),
        Just(Command::User("alice".into())),
        Just(Command::Pass("secret".into())),
        Just(Command::Pass("wrong".into())),
        Just(Command::Rein),
    ]
}

/// Everything under `dir` except `skip`, with contents: what must not change outside the root.
fn outside(dir: &Path, skip: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p != skip)
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_default();
            (p.display().to_string(), bytes)
        })
        .collect();
    out.sort();
    out
}

/// The next item: a reply's code, or `None` for a close.
async fn next_code(h: &mut Harness) -> Option<u16> {
    match h.next().await {
        SinkItem::Reply(r) => Some(r.code.as_u16()),
        SinkItem::Close => None,
        SinkItem::StartTls(_) => panic!("TLS upgrade without AUTH"),
    }
}

/// The port of a 227 reply's `(h1,h2,h3,h4,p1,p2)`.
fn pasv_port(text: &str) -> Option<u16> {
    let inside = text.split('(').nth(1)?.split(')').next()?;
    let n: Vec<u16> = inside.split(',').filter_map(|v| v.parse().ok()).collect();
    (n.len() == 6).then(|| n[4] * 256 + n[5])
}

fn is_transfer(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::List(_)
            | Command::Nlst(_)
            | Command::Mlsd(_)
            | Command::Retr(_)
            | Command::Stor(_)
            | Command::Appe(_)
            | Command::Stou
    )
}

/// Runs one sequence; returns a description of the first broken promise.
async fn run(seq: Vec<Command>) -> Result<(), String> {
    let mut config = Config::default();
    config.login.failure_delay = Duration::ZERO;
    config.login.max_failures = 1000;
    let mut h = Harness::start_with(config, Permissions::ALL).await;
    let parent = h.root.parent().expect("parent").to_path_buf();
    write(&parent, "outside.txt", b"outside the root");
    write(&h.root, "f.txt", b"hello\nworld\n");
    std::fs::create_dir(h.root.join("sub")).expect("sub");
    write(&h.root.join("sub"), "g.bin", &[0u8, 1, 2, 255]);
    std::os::unix::fs::symlink(parent.join("outside.txt"), h.root.join("link_out")).expect("link");
    let before = outside(&parent, &h.root);
    h.login().await;
    let mut passive: Option<u16> = None;
    for (i, cmd) in seq.into_iter().enumerate() {
        let shown = format!("#{i} {cmd}");
        let transfer = is_transfer(&cmd);
        match &cmd {
            Command::Epsv(_) | Command::Pasv => passive = None,
            _ => {}
        }
        let upload = matches!(cmd, Command::Stor(_) | Command::Appe(_) | Command::Stou);
        h.send(cmd).await;
        let first = match h.next().await {
            SinkItem::Reply(r) => r,
            other => return Err(format!("{shown}: {other:?} instead of a reply")),
        };
        let code = first.code.as_u16();
        match code {
            229 => passive = Some(epsv_port(&first)),
            227 => passive = pasv_port(&first.text()),
            _ => {}
        }
        if code == 150 {
            if !transfer {
                return Err(format!("{shown}: 150 for a command that moves no data"));
            }
            let Some(port) = passive.take() else {
                return Err(format!("{shown}: 150 without a prepared data connection"));
            };
            let mut data = std::net::TcpStream::connect(local(port))
                .map_err(|e| format!("{shown}: data connect: {e}"))?;
            data.set_read_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            let moved = tokio::task::spawn_blocking(move || {
                if upload {
                    let _ = data.write_all(b"uploaded by the fuzzer\n");
                } else {
                    let mut sink = Vec::new();
                    let _ = data.read_to_end(&mut sink);
                }
            });
            moved.await.map_err(|e| e.to_string())?;
            match next_code(&mut h).await {
                Some(c) if c >= 200 => {}
                other => return Err(format!("{shown}: after 150, {other:?}")),
            }
        } else if transfer && code < 200 {
            return Err(format!("{shown}: preliminary {code} and no transfer"));
        }
        if transfer {
            passive = None;
        }
        // Exactly one answer: the next reply is the marker's.
        h.send(Command::Noop).await;
        match next_code(&mut h).await {
            Some(200) => {}
            other => return Err(format!("{shown}: a second answer, or none: {other:?}")),
        }
    }
    // A line that did not parse is answered once too.
    h.session
        .send(Unparsable(ParseError::UnknownCommand("XYZZ".into())))
        .await
        .map_err(|e| e.to_string())?;
    if next_code(&mut h).await != Some(500) {
        return Err("unparsable line not answered 500".into());
    }
    if outside(&parent, &h.root) != before {
        return Err("something outside the root changed".into());
    }
    Ok(())
}

#[test]
fn generated_command_sequences_are_answered_once_and_stay_in_the_root() {
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let mut runner = TestRunner::new_with_rng(
        Default::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let strategy = prop::collection::vec(command(), 1..30);
    for case in 0..cases {
        let seq = strategy.new_tree(&mut runner).expect("generate").current();
        let shown: Vec<String> = seq.iter().map(ToString::to_string).collect();
        // Each case in its own actix System: dropping it ends the case's Session, and with it
        // the FileStore and Authenticator threads, so long campaigns do not pile them up.
        let outcome = actix::System::new().block_on(run(seq));
        if let Err(why) = outcome {
            panic!("case {case}: {why}\nsequence:\n{}", shown.join("\n"));
        }
    }
}
