//! Path traversal in every path-taking command, against the real daemon: `..`, absolute and
//! encoded paths, backslashes and symlinks leading out of the root. Nothing outside the root
//! may be read, listed, created or changed (the fixture in tests/hostile/mod.rs lays out the
//! canaries and checks them). No test sleeps.

mod common;
mod hostile;
mod rawftp;

use std::fs;
use std::path::{Path, PathBuf};

use hostile::*;
use rawftp::*;

// ---------------------------------------------------------------------------------------------
// 7. Path traversal in every path-taking command.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Op {
    Cwd,
    Retr,
    Stor,
    RestStor,
    Appe,
    Dele,
    Mkd,
    Rmd,
    /// RNFR the hostile path, RNTO a plain name.
    RnfrHostile,
    /// RNFR a plain file, RNTO the hostile path.
    RntoHostile,
    Size,
    Mdtm,
    List,
    Nlst,
    Mlsd,
    Mlst,
    StatPath,
}

const OPS: [Op; 17] = [
    Op::Cwd,
    Op::Retr,
    Op::Stor,
    Op::RestStor,
    Op::Appe,
    Op::Dele,
    Op::Mkd,
    Op::Rmd,
    Op::RnfrHostile,
    Op::RntoHostile,
    Op::Size,
    Op::Mdtm,
    Op::List,
    Op::Nlst,
    Op::Mlsd,
    Op::Mlst,
    Op::StatPath,
];

fn hostile_paths(fx: &Fixture) -> Vec<String> {
    let mut paths: Vec<String> = [
        "..",
        "../..",
        "../../../../../../../../..",
        "../CANARY-next-to-root.txt",
        "../../CANARY-parent.txt",
        "../srv2",
        "../srv2/CANARY-sibling.txt",
        "../outside-dir/CANARY-in-outside-dir.txt",
        "../outside-empty",
        "/etc/passwd",
        "../../../../../../../../etc/passwd",
        "/../../CANARY-next-to-root.txt",
        "/../../x",
        "/../srv2/CANARY-sibling.txt",
        "sub/../../CANARY-next-to-root.txt",
        "./../srv2",
        "%2e%2e%2fCANARY-next-to-root.txt",
        "%2e%2e%2f%2e%2e%2fCANARY-parent.txt",
        "%2e%2e/%2e%2e/CANARY-parent.txt",
        "..%2f..%2fCANARY-parent.txt",
        "..\\CANARY-next-to-root.txt",
        "..\\..\\CANARY-parent.txt",
        "..\\..\\",
        "link-file",
        "link-file-abs",
        "link-dir",
        "link-dir/CANARY-in-outside-dir.txt",
        "link-dir/new-entry",
        "link-dir-abs",
        "link-dir-abs/CANARY-in-outside-dir.txt",
        "link-sibling",
        "link-sibling/CANARY-sibling.txt",
        "link-parent",
        "link-parent/CANARY-parent.txt",
        "link-parent/tree/srv2",
        "link-empty",
        "link-empty/new-entry",
        "link-dangling",
        "link-dangling-abs",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // The host's absolute paths mean nothing inside the jail.
    for p in [
        fx.tree.join("CANARY-next-to-root.txt"),
        fx.tree.join("srv2/CANARY-sibling.txt"),
        fx.tree.join("outside-empty"),
    ] {
        paths.push(p.to_str().expect("UTF-8").to_owned());
    }
    paths
}

/// The path's components after lexical resolution from `/` (`..` stops at the root).
fn lexical(path: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name),
        }
    }
    parts
}

/// `root/comps...` if every component but the last is a real directory inside the root (no
/// symlink on the way), else `None`.
fn real_path(root: &Path, comps: &[&str]) -> Option<PathBuf> {
    let mut p = root.to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        p.push(c);
        if i + 1 < comps.len() && !fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            return None;
        }
    }
    Some(p)
}

fn real_kind(root: &Path, comps: &[&str]) -> Option<&'static str> {
    let p = real_path(root, comps)?;
    let m = fs::symlink_metadata(p).ok()?;
    Some(if m.is_symlink() {
        "symlink"
    } else if m.is_dir() {
        "dir"
    } else {
        "file"
    })
}

const PAYLOAD: &[u8] = b"HOSTILE PAYLOAD\n";

/// Runs `op` on `path` and checks that it failed or acted only inside the root. Returns
/// everything the client received, for the leak check.
fn traversal_op(c: &mut Ctrl, fx: &Fixture, op: Op, path: &str) -> Vec<u8> {
    let what = format!("{op:?} {path:?}");
    let comps = lexical(path);
    let root = fx.root();
    let fail = |code: u16, extra: &[u16]| {
        assert!(
            code == 550 || code == 553 || extra.contains(&code),
            "{what}: unexpected reply {code}"
        );
    };
    match op {
        Op::Cwd => {
            let r = c.cmd(&format!("CWD {path}"));
            let mut seen = r.wire().into_bytes();
            if r.code == 250 {
                assert_eq!(
                    real_kind(root, &comps),
                    Some("dir"),
                    "{what}: CWD succeeded into something that is not a real directory inside"
                );
                let pwd = c.expect("PWD", 257);
                let want = format!("\"/{}\"", comps.join("/"));
                assert!(
                    pwd.text().starts_with(&want),
                    "{what}: PWD {pwd:?}, want {want}"
                );
                let listing = c.transfer("LIST -a", None);
                assert_eq!(listing.code(), 226, "{what}: LIST after CWD");
                seen.extend(listing.everything());
                c.expect("CWD /", 250);
            } else {
                fail(r.code, &[]);
            }
            seen
        }
        Op::Retr => {
            let t = c.transfer(&format!("RETR {path}"), None);
            if t.code() == 226 {
                let p = real_path(root, &comps).expect("RETR succeeded through a symlink");
                assert!(
                    fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()),
                    "{what}: RETR succeeded on something that is not a real file inside"
                );
                assert_eq!(t.data, fs::read(&p).expect("read"), "{what}: RETR data");
            } else {
                fail(t.code(), &[]);
            }
            t.everything()
        }
        Op::Stor | Op::RestStor | Op::Appe => {
            let verb = if matches!(op, Op::Appe) {
                "APPE"
            } else {
                "STOR"
            };
            if matches!(op, Op::RestStor) {
                c.expect("REST 1", 350);
            }
            let t = c.transfer(&format!("{verb} {path}"), Some(PAYLOAD));
            if t.code() == 226 {
                let p = real_path(root, &comps)
                    .unwrap_or_else(|| panic!("{what}: stored through a symlink"));
                let m = fs::symlink_metadata(&p)
                    .unwrap_or_else(|e| panic!("{what}: 226 but nothing at {}: {e}", p.display()));
                assert!(m.is_file(), "{what}: 226 but {} is not a file", p.display());
                let stored = fs::read(&p).expect("read");
                let ok = match op {
                    Op::Stor => stored == PAYLOAD,
                    Op::Appe => stored.ends_with(PAYLOAD),
                    _ => stored.get(1..=PAYLOAD.len()) == Some(PAYLOAD),
                };
                assert!(ok, "{what}: stored {stored:?}");
            } else {
                fail(t.code(), &[554]);
            }
            t.everything()
        }
        Op::Dele | Op::Rmd => {
            let verb = if matches!(op, Op::Dele) {
                "DELE"
            } else {
                "RMD"
            };
            let existed = real_kind(root, &comps);
            let r = c.cmd(&format!("{verb} {path}"));
            if r.code == 250 {
                assert!(
                    existed.is_some() && real_kind(root, &comps).is_none(),
                    "{what}: 250 but it did not remove an entry inside the root"
                );
            } else {
                fail(r.code, &[]);
            }
            r.wire().into_bytes()
        }
        Op::Mkd => {
            let r = c.cmd(&format!("MKD {path}"));
            if r.code == 257 {
                assert_eq!(
                    real_kind(root, &comps),
                    Some("dir"),
                    "{what}: 257 but no real directory inside the root"
                );
            } else {
                fail(r.code, &[]);
            }
            r.wire().into_bytes()
        }
        Op::RnfrHostile => {
            let r = c.cmd(&format!("RNFR {path}"));
            let mut seen = r.wire().into_bytes();
            if r.code == 350 {
                assert!(
                    real_kind(root, &comps).is_some(),
                    "{what}: 350 for something not inside the root"
                );
                let r = c.cmd("RNTO renamed-by-hostile-test");
                if r.code == 250 {
                    assert!(
                        real_kind(root, &comps).is_none()
                            && root.join("renamed-by-hostile-test").exists(),
                        "{what}: RNTO 250 but nothing moved inside the root"
                    );
                    remove_any(&root.join("renamed-by-hostile-test"));
                } else {
                    // RNFR of the root itself is accepted; RNTO then refuses to move it.
                    fail(r.code, &[]);
                }
                seen.extend(r.wire().into_bytes());
            } else {
                fail(r.code, &[]);
            }
            seen
        }
        Op::RntoHostile => {
            c.expect("RNFR hello.txt", 350);
            let r = c.cmd(&format!("RNTO {path}"));
            if r.code == 250 {
                assert!(
                    real_kind(root, &comps).is_some() && !root.join("hello.txt").exists(),
                    "{what}: 250 but hello.txt did not move inside the root"
                );
            } else {
                fail(r.code, &[]);
                assert!(
                    root.join("hello.txt").exists(),
                    "{what}: hello.txt vanished"
                );
            }
            r.wire().into_bytes()
        }
        Op::Size | Op::Mdtm => {
            let verb = if matches!(op, Op::Size) {
                "SIZE"
            } else {
                "MDTM"
            };
            let r = c.cmd(&format!("{verb} {path}"));
            if r.code == 213 {
                let p = real_path(root, &comps).expect("213 through a symlink");
                let m = fs::symlink_metadata(&p).expect("213 for a missing file");
                assert!(m.is_file(), "{what}: 213 for a non-file");
                if matches!(op, Op::Size) {
                    assert_eq!(r.text(), m.len().to_string(), "{what}");
                }
            } else {
                fail(r.code, &[]);
            }
            r.wire().into_bytes()
        }
        Op::List | Op::Nlst | Op::Mlsd => {
            let verb = match op {
                Op::List => "LIST",
                Op::Nlst => "NLST",
                _ => "MLSD",
            };
            let t = c.transfer(&format!("{verb} {path}"), None);
            if t.code() == 226 {
                assert!(
                    matches!(real_kind(root, &comps), Some("dir" | "file")),
                    "{what}: listed something that is not a real entry inside the root"
                );
            } else {
                fail(t.code(), &[501]);
            }
            t.everything()
        }
        Op::Mlst | Op::StatPath => {
            let verb = if matches!(op, Op::Mlst) {
                "MLST"
            } else {
                "STAT"
            };
            let r = c.cmd(&format!("{verb} {path}"));
            if r.code == 250 || r.code == 213 {
                assert!(
                    matches!(real_kind(root, &comps), Some("dir" | "file")),
                    "{what}: described something that is not a real entry inside the root"
                );
            } else {
                fail(r.code, &[]);
            }
            r.wire().into_bytes()
        }
    }
}

#[test]
fn path_traversal_in_every_path_command_never_leaves_the_root() {
    let fx = Fixture::start(&[]);
    let mut c = fx.login(ALICE);
    let paths = hostile_paths(&fx);
    let mut tried = 0;
    for op in OPS {
        for path in &paths {
            fx.prepare_root();
            let seen = traversal_op(&mut c, &fx, op, path);
            let what = format!("{op:?} {path:?}");
            fx.assert_no_leak(&what, &seen);
            fx.assert_outside_untouched(&what);
            tried += 1;
        }
    }
    assert_eq!(tried, OPS.len() * paths.len());
    c.expect("QUIT", 221);
    fx.finish("after path traversal attempts");
}
