//! Scenarios driven with Python's standard `ftplib` (script in tests/clients/ftplib_session.py).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/ftplib_session.py"
);

/// Parsed TAB-separated records printed by the script.
struct Records(Vec<Vec<String>>);

impl Records {
    fn parse(text: &str) -> Records {
        Records(
            text.lines()
                .map(|l| l.split('\t').map(str::to_string).collect())
                .collect(),
        )
    }

    /// Values of every record named `key` (fields after the key).
    fn all(&self, key: &str) -> Vec<&[String]> {
        self.0
            .iter()
            .filter(|r| r[0] == key)
            .map(|r| &r[1..])
            .collect()
    }

    /// First field of the single record named `key`.
    #[track_caller]
    fn one(&self, key: &str) -> &str {
        let all = self.all(key);
        assert_eq!(all.len(), 1, "expected one {key:?} record, got {all:?}");
        all[0].first().map(String::as_str).unwrap_or("")
    }
}

fn python(d: &Daemon, mode: &str, user: &str, pass: &str, extra: &[&str]) -> Records {
    let mut cmd = Command::new("python3");
    cmd.arg(SCRIPT)
        .arg(mode)
        .arg(d.addr().ip().to_string())
        .arg(d.port().to_string())
        .arg(user)
        .arg(pass)
        .args(extra)
        .env("PYTHONIOENCODING", "utf-8");
    let out = run_with_timeout(&mut cmd, CLIENT_DEADLINE);
    out.assert_success(&format!("ftplib {mode}"));
    Records::parse(&out.stdout_text())
}

/// Uploads `files` with storbinary into `remote_dir`, lists, downloads with retrbinary, and checks
/// every byte: on the server's disk and downloaded back.
fn ftplib_round_trip(remote_dir: &str, files: &[(&str, usize)]) {
    let d = Daemon::start(&[("alice", "alice-pass")]);
    let up = d.tmp().join("client-up");
    let down = d.tmp().join("client-down");
    std::fs::create_dir_all(&down).expect("mkdir client-down");
    let mut expected = Vec::new();
    for (i, (name, n)) in files.iter().enumerate() {
        let data = random_bytes_seeded(500 + i as u64, *n);
        write_file(&up.join(name), &data);
        expected.push((name.to_string(), *n, sha256_hex(&data)));
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
    let mut extra = vec![
        up.to_str().expect("utf-8 path"),
        down.to_str().expect("utf-8 path"),
        remote_dir,
    ];
    extra.extend(&names);
    let r = python(&d, "session", "alice", "alice-pass", &extra);

    assert!(
        r.one("welcome").starts_with("220"),
        "greeting: {}",
        r.one("welcome")
    );
    assert!(
        r.one("login").starts_with("230"),
        "login: {}",
        r.one("login")
    );
    let want_pwd = if remote_dir == "/" {
        "/".to_string()
    } else {
        format!("/{remote_dir}")
    };
    assert_eq!(r.one("pwd"), want_pwd, "PWD");
    for stor in r.all("stor") {
        assert!(stor[1].starts_with("226"), "storbinary {stor:?}");
    }
    for retr in r.all("retr") {
        assert!(retr[1].starts_with("226"), "retrbinary {retr:?}");
    }
    assert!(r.one("list_reply").starts_with("226"), "LIST reply");
    assert!(r.one("quit").starts_with("221"), "QUIT reply");

    let mut nlst: Vec<String> = r
        .all("nlst")
        .iter()
        .map(|v| v[0].rsplit('/').next().unwrap_or("").to_string())
        .collect();
    nlst.sort();
    let mut want_names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want_names.sort();
    assert_eq!(nlst, want_names, "nlst() lists the uploaded names");
    let list: Vec<String> = r.all("list").iter().map(|v| v[0].clone()).collect();
    for name in &names {
        assert!(
            list.iter().any(|l| l.ends_with(name)),
            "retrlines('LIST') shows {name:?}: {list:#?}"
        );
    }

    let server_dir = if remote_dir == "/" {
        d.root("alice")
    } else {
        d.root("alice").join(remote_dir)
    };
    for (name, n, sha) in &expected {
        let size: Vec<_> = r
            .all("size")
            .into_iter()
            .filter(|v| v[0] == *name)
            .collect();
        assert_eq!(size.len(), 1, "one SIZE record for {name}");
        assert_eq!(size[0][1], n.to_string(), "ftp.size({name:?})");
        assert_eq!(
            &file_sha256(&server_dir.join(name)),
            sha,
            "{name} ({}) on the server's disk differs from the upload",
            size_label(*n)
        );
        assert_eq!(
            &file_sha256(&down.join(name)),
            sha,
            "{name} ({}) downloaded by retrbinary differs from the upload",
            size_label(*n)
        );
    }
}

#[test]
fn ftplib_storbinary_nlst_list_retrbinary_0_b_1_b_1_mib_are_byte_exact() {
    if !require_tool("python3") {
        return;
    }
    ftplib_round_trip(
        "/",
        &[("empty.bin", 0), ("one.bin", 1), ("one mib.bin", MIB)],
    );
}

#[test]
fn ftplib_round_trip_in_a_new_subdirectory_is_byte_exact() {
    if !require_tool("python3") {
        return;
    }
    ftplib_round_trip("py uploads", &[("a.bin", 4097), ("b.bin", 300 * KIB)]);
}

#[test]
fn ftplib_storbinary_retrbinary_64_mib_is_byte_exact() {
    if !require_tool("python3") {
        return;
    }
    ftplib_round_trip("/", &[("big.bin", 64 * MIB)]);
}

#[test]
fn ftplib_wrong_password_raises_error_perm_530() {
    if !require_tool("python3") {
        return;
    }
    let d = Daemon::start(&[("alice", "alice-pass")]);
    let r = python(&d, "badlogin", "alice", "wrong-pass", &[]);
    let msg = r.one("error_perm");
    assert!(
        msg.starts_with("530"),
        "error_perm message {msg:?} starts with 530"
    );
}

#[test]
fn ftplib_mkd_cwd_pwd_delete_rmd_and_refusals() {
    if !require_tool("python3") {
        return;
    }
    let d = Daemon::start(&[("alice", "alice-pass")]);
    let outside: PathBuf = d.tmp().join("roots/outside.txt");
    write_file(&outside, b"outside the root");
    let r = python(&d, "dirs", "alice", "alice-pass", &[]);
    assert_eq!(r.one("pwd_in"), "/py dir", "pwd() after cwd('py dir')");
    assert!(
        r.one("cwd").starts_with("250"),
        "cwd reply {}",
        r.one("cwd")
    );
    // RFC 959 lists 200 for CDUP; 250 is what most servers send. Both are fine.
    let cdup = r.one("cdup");
    assert!(
        cdup.starts_with("250") || cdup.starts_with("200"),
        "CDUP reply {cdup}"
    );
    assert_eq!(r.one("pwd_back"), "/", "pwd() after CDUP");
    let nlst: Vec<String> = r
        .all("nlst_dir")
        .iter()
        .map(|v| v[0].rsplit('/').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(nlst, vec!["hello.txt".to_string()], "nlst('py dir')");
    assert_eq!(r.one("pwd_after_dotdot"), "/", "cwd('..') at / stays at /");
    assert!(
        r.one("retr_missing").starts_with("550"),
        "RETR missing: {}",
        r.one("retr_missing")
    );
    assert!(
        r.one("retr_outside").starts_with("550"),
        "RETR ../outside.txt: {}",
        r.one("retr_outside")
    );
    assert!(
        r.one("delete").starts_with("250"),
        "delete reply {}",
        r.one("delete")
    );
    assert!(
        r.one("rmd").starts_with("250"),
        "rmd reply {}",
        r.one("rmd")
    );
    assert!(
        r.one("delete_missing").starts_with("550"),
        "delete missing: {}",
        r.one("delete_missing")
    );
    assert!(r.one("quit").starts_with("221"), "quit reply");
    assert!(
        !d.root("alice").join("py dir").exists(),
        "py dir removed on disk"
    );
    assert!(outside.is_file(), "the file outside the root is untouched");
}
