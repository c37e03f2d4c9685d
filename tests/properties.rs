//! Property-based tests (proptest) of the parts that stand between a client and the disk:
//! the lexical path resolution and the jail, the listing formats, the codec, and the daemon's
//! promise that every command line gets exactly one answer. The generated cases come from a
//! fixed seed (`TestRunner::deterministic`), so CI sees the same cases every run; set
//! `PROPTEST_CASES` for a longer run.

#[path = "fuzz/checks.rs"]
mod checks;
mod common;
mod rawftp;
mod strategies;

use actix::prelude::*;
use actorftpd::file_store::{FileStore, Jail, OpenJail, OpenRead, ReadSource, Stat, VirtualPath};
use actorftpd::listing::{
    list_body, mlsd_body, nlst_body, EntryInfo, EntryKind, MlsxFacts, PermFact,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use std::io::Read;
use std::path::{Component, Path};

fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    )
}

/// Path arguments as a hostile client would write them: traversal, empty components, dots,
/// names of things planted in the root, odd bytes.
fn path_arg() -> impl Strategy<Value = String> {
    const COMPONENTS: &[&str] = &[
        "..", ".", "", "sub", "file.txt", "link_abs", "link_up", "link_in", "%2e%2e", "..\\..",
        "...",
    ];
    let component = prop_oneof![
        COMPONENTS.len() as u32 => strategies::one_of(COMPONENTS),
        1 => "[a-z.]{1,4}",
        1 => any::<String>(),
    ];
    (any::<bool>(), prop::collection::vec(component, 0..8)).prop_map(|(absolute, parts)| {
        let joined = parts.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}

#[test]
fn no_generated_path_climbs_above_the_root() {
    runner(2000)
        .run(&(path_arg(), path_arg()), |(cwd, arg)| {
            let cwd = VirtualPath::root().join(&cwd);
            let p = cwd.join(&arg);
            prop_assert!(p.as_str().starts_with('/'));
            prop_assert!(p
                .components()
                .all(|c| !c.is_empty() && c != "." && c != ".."));
            let rel = p.to_relative();
            prop_assert!(rel
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir)));
            // Joining `..` as often as there are components reaches the root, never further.
            let mut up = p.clone();
            for _ in 0..p.components().count() {
                up = up.parent();
            }
            prop_assert!(up.is_root());
            prop_assert!(up.parent().is_root());
            Ok(())
        })
        .expect("lexical resolution");
}

/// A root with a file, a folder and three symlinks (to an absolute path outside, to `../`
/// outside, and inside), beside a secret that must never be read through the root.
fn planted_root() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tmp");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, b"SECRET").expect("secret");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).expect("root");
    std::fs::write(root.join("file.txt"), b"inside").expect("file");
    std::fs::write(root.join("sub/file.txt"), b"inside too").expect("file");
    std::os::unix::fs::symlink(&secret, root.join("link_abs")).expect("link");
    std::os::unix::fs::symlink("../secret.txt", root.join("link_up")).expect("link");
    std::os::unix::fs::symlink("../../secret.txt", root.join("sub/link_up")).expect("link");
    std::os::unix::fs::symlink("sub/file.txt", root.join("link_in")).expect("link");
    (dir, root)
}

/// A FileStore pool in its own actix System on another thread, for tests that are not async.
fn store_in_background() -> Addr<FileStore> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = System::new();
        system.block_on(async move {
            let _ = tx.send(FileStore::start_pool(2));
        });
        system.run().expect("system");
    });
    rx.recv().expect("file store")
}

#[test]
fn no_generated_path_reads_or_stats_outside_the_jail() {
    let (dir, root) = planted_root();
    let store = store_in_background();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let jail: Jail = rt
        .block_on(store.send(OpenJail { root: root.clone() }))
        .expect("store")
        .expect("jail");
    let secret_ino = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(dir.path().join("secret.txt"))
            .expect("secret")
            .ino()
    };
    runner(400)
        .run(&(path_arg(), path_arg()), |(cwd, arg)| {
            let path = VirtualPath::root().join(&cwd).join(&arg);
            let stat = rt
                .block_on(store.send(Stat {
                    jail: jail.clone(),
                    path: path.clone(),
                }))
                .expect("store");
            if let Ok(info) = stat {
                prop_assert_ne!(info.ino, secret_ino, "{} stats the secret", path);
            }
            let read = rt
                .block_on(store.send(OpenRead {
                    jail: jail.clone(),
                    path: path.clone(),
                    offset: 0,
                }))
                .expect("store");
            if let Ok(handle) = read {
                let bytes = match handle.source {
                    ReadSource::Bytes(b) => b,
                    ReadSource::File(mut f) => {
                        let mut b = Vec::new();
                        f.read_to_end(&mut b).expect("read");
                        b
                    }
                    ReadSource::Stream(mut s) => {
                        let mut b = Vec::new();
                        s.read_to_end(&mut b).expect("read");
                        b
                    }
                };
                prop_assert_ne!(&bytes[..], b"SECRET", "{} reads the secret", path);
            }
            Ok(())
        })
        .expect("the jail holds");
    // The links are there and lead out: only the jail keeps them shut.
    assert_eq!(
        std::fs::read(root.join("link_abs")).expect("through the OS"),
        b"SECRET"
    );
    assert!(Path::new(&root).join("link_in").exists());
}

fn entry() -> impl Strategy<Value = EntryInfo> {
    let kind = prop_oneof![
        Just(EntryKind::File),
        Just(EntryKind::Dir),
        Just(EntryKind::Other),
        any::<String>().prop_map(|target| EntryKind::Symlink { target }),
    ];
    (
        any::<String>(),
        kind,
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        any::<(u32, u32)>(),
        any::<i64>(),
        any::<(u64, u64)>(),
    )
        .prop_map(
            |(name, kind, size, mode, nlink, (uid, gid), mtime, (dev, ino))| EntryInfo {
                name,
                kind,
                size,
                mode,
                nlink,
                uid,
                gid,
                mtime,
                dev,
                ino,
            },
        )
}

/// `body` is exactly `n` lines, each ended by CRLF, with no other control character.
fn framed(body: &[u8], n: usize) -> Result<(), TestCaseError> {
    let text = std::str::from_utf8(body).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(text.is_empty() || text.ends_with("\r\n"));
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    prop_assert_eq!(lines.len(), n, "{:?}", text);
    for line in lines {
        prop_assert!(
            !line.chars().any(char::is_control),
            "control character in {:?}",
            line
        );
    }
    Ok(())
}

#[test]
fn no_generated_name_breaks_a_listing_line() {
    let facts = MlsxFacts::parse("type;size;modify;perm;unique;UNIX.mode;");
    runner(1000)
        .run(
            &(prop::collection::vec(entry(), 0..6), any::<i64>()),
            |(entries, now)| {
                framed(&list_body(&entries, now), entries.len())?;
                framed(&nlst_body(&entries), entries.len())?;
                let mlsd = mlsd_body(&entries, facts, PermFact::default());
                framed(&mlsd, entries.len())?;
                for line in String::from_utf8_lossy(&mlsd).lines() {
                    // Facts, then one space, then the name: no name can forge a fact.
                    let (facts, _) = line.split_once(' ').unwrap_or(("", ""));
                    prop_assert!(facts.ends_with(';'), "{:?}", line);
                }
                Ok(())
            },
        )
        .expect("listing lines");
}

#[test]
fn any_byte_stream_decodes_without_panic_and_like_the_reference() {
    // The fuzz target's own checks (tests/fuzz/checks.rs): no panic, no error, nothing left
    // unconsumed, the line buffer bounded, the same items however the stream is chunked, and
    // for streams without IAC exactly the items the documented line rules predict.
    let stream = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        prop::collection::vec(
            prop_oneof![
                Just(b'\r'),
                Just(b'\n'),
                Just(0xff),
                Just(b' '),
                Just(0u8),
                b'A'..=b'Z'
            ],
            0..600
        ),
    ];
    runner(1500)
        .run(
            &(1u8..=32, any::<u16>(), stream),
            |(limit, seed, stream)| {
                let mut input = vec![limit];
                input.extend_from_slice(&seed.to_le_bytes());
                input.extend_from_slice(&stream);
                checks::check_codec(&input);
                Ok(())
            },
        )
        .expect("codec");
}

/// Lines a logged-in client may send that each get exactly one reply, whatever their
/// arguments: no data-connection setup (so transfer commands answer 425 at once) and nothing
/// that ends the session.
fn control_line() -> impl Strategy<Value = String> {
    let verb = prop_oneof![
        prop::sample::select(vec![
            "CWD", "CDUP", "PWD", "SIZE", "MDTM", "MLST", "STAT", "LIST", "NLST", "MLSD", "RETR",
            "STOR", "APPE", "STOU", "DELE", "MKD", "RMD", "RNFR", "RNTO", "TYPE", "MODE", "STRU",
            "REST", "NOOP", "SYST", "FEAT", "HELP", "OPTS", "SITE", "ALLO", "ACCT", "ABOR", "SMNT",
            "USER", "PASS", "AUTH", "PBSZ", "PROT", "CCC", "XPWD", "XMKD",
        ])
        .prop_map(str::to_owned),
        "[A-Za-z]{1,6}",
    ];
    let arg = prop_oneof![
        Just(String::new()),
        path_arg(),
        "[ -~]{0,40}",
        any::<String>().prop_map(|s| s.replace(['\r', '\n', '\u{ff}'], "")),
    ];
    (verb, arg).prop_map(|(verb, arg)| {
        let line = if arg.is_empty() {
            verb.to_string()
        } else {
            format!("{verb} {arg}")
        };
        // A generated verb that ends the session or sets up a data connection (after which a
        // transfer command answers twice, 150 then 226) is not what this test counts.
        let upper = line.to_ascii_uppercase();
        let verb = upper.split(' ').next().unwrap_or("");
        if [
            "QUIT", "REIN", "PASV", "EPSV", "PORT", "EPRT", "LPSV", "LPRT",
        ]
        .contains(&verb)
        {
            "NOOP".to_owned()
        } else {
            line
        }
    })
}

#[test]
fn every_pipelined_line_gets_exactly_one_reply() {
    let d = common::Daemon::start(&[("alice", "pw")]);
    let c = std::cell::RefCell::new(rawftp::Ctrl::login(d.addr(), "alice", &d.password("alice")));
    runner(40)
        .run(&prop::collection::vec(control_line(), 1..25), |lines| {
            let mut c = c.borrow_mut();
            // All at once, as a pipelining client sends them, then a marker.
            let mut batch = String::new();
            for l in &lines {
                batch.push_str(l);
                batch.push_str("\r\n");
            }
            batch.push_str("NOOP marker\r\n");
            c.send_raw(batch.as_bytes());
            for l in &lines {
                let r = c.reply();
                prop_assert!(r.code >= 200, "{:?} got only a preliminary {}", l, r);
                prop_assert!(r.code != 421, "{:?} closed the session: {}", l, r);
            }
            // The marker's 200 comes next: no line was answered twice.
            let marker = c.reply();
            prop_assert_eq!(marker.code, 200, "{}", marker);
            prop_assert_eq!(marker.text(), "NOOP ok");
            // Log back in if a generated USER/PASS pair logged the session out of its user.
            c.send_raw(b"PWD\r\n");
            if c.reply().code != 257 {
                c.expect("USER alice", 331);
                c.expect(&format!("PASS {}", d.password("alice")), 230);
            }
            Ok(())
        })
        .expect("one reply per line");
}
