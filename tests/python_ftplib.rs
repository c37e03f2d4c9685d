//! Scenarios driven with Python's standard `ftplib`: a whole session (storbinary, nlst, LIST,
//! retrbinary, size; script tests/clients/ftplib_session.py), directories and refusals, and
//! beyond that (tests/clients/ftplib_extras.py) `mlsd()` with and without facts,
//! `storbinary(..., rest=N)` and `retrbinary(..., rest=N)` resume, and `sendcmd('SITE HELP')`.
//! `abort()` is driven from tests/abort_and_stat.rs.

mod common;

use std::path::PathBuf;

use common::*;

const USER: &str = "alice";
const PASS: &str = "alice-pass";

/// Runs one mode of tests/clients/ftplib_session.py.
fn session_script(d: &Daemon, mode: &str, user: &str, pass: &str, extra: &[&str]) -> Records {
    ftplib_script("ftplib_session.py", mode, d, (user, pass), extra)
}

/// Runs one mode of tests/clients/ftplib_extras.py as alice.
fn extras_script(d: &Daemon, mode: &str, extra: &[&str]) -> Records {
    ftplib_script("ftplib_extras.py", mode, d, (USER, PASS), extra)
}

/// Uploads `files` with storbinary into `remote_dir`, lists, downloads with retrbinary, and checks
/// every byte: on the server's disk and downloaded back.
fn ftplib_round_trip(remote_dir: &str, files: &[(&str, usize)]) {
    let d = Daemon::start(&[(USER, PASS)]);
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
    let r = session_script(&d, "session", USER, PASS, &extra);

    r.assert_code("welcome", 220);
    r.assert_code("login", 230);
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
    r.assert_code("list_reply", 226);
    r.assert_code("quit", 221);

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
    let Some(d) = daemon_if_tool("python3", USER, PASS) else {
        return;
    };
    let r = session_script(&d, "badlogin", USER, "wrong-pass", &[]);
    let msg = r.one("error_perm");
    assert!(
        msg.starts_with("530"),
        "error_perm message {msg:?} starts with 530"
    );
}

#[test]
fn ftplib_mkd_cwd_pwd_delete_rmd_and_refusals() {
    let Some(d) = daemon_if_tool("python3", USER, PASS) else {
        return;
    };
    let outside: PathBuf = d.tmp().join("roots/outside.txt");
    write_file(&outside, b"outside the root");
    let r = session_script(&d, "dirs", USER, PASS, &[]);
    assert_eq!(r.one("pwd_in"), "/py dir", "pwd() after cwd('py dir')");
    r.assert_code("cwd", 250);
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
    r.assert_code("retr_missing", 550);
    r.assert_code("retr_outside", 550);
    r.assert_code("delete", 250);
    r.assert_code("rmd", 250);
    r.assert_code("delete_missing", 550);
    r.assert_code("quit", 221);
    assert!(
        !d.root("alice").join("py dir").exists(),
        "py dir removed on disk"
    );
    assert!(outside.is_file(), "the file outside the root is untouched");
}

#[test]
fn ftplib_mlsd_returns_every_entry_with_its_facts() {
    let Some(d) = daemon_if_tool("python3", USER, PASS) else {
        return;
    };
    let dir = d.root(USER).join("ml dir");
    let files = [("a.bin", 0usize), ("b c.bin", 4096 + 7), ("ünï.txt", 33)];
    for (i, (name, n)) in files.iter().enumerate() {
        write_file(&dir.join(name), &random_bytes_seeded(60 + i as u64, *n));
    }
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    let r = extras_script(&d, "mlsd", &["ml dir"]);

    let all = r.all("all");
    let mut names: Vec<&str> = all.iter().map(|v| v[0].as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["a.bin", "b c.bin", "sub", "ünï.txt"],
        "mlsd() names"
    );
    for v in &all {
        let (name, typ, size, modify, perm, unique) = (&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
        assert_eq!(modify.len(), 14, "modify of {name}: {v:?}");
        assert!(!perm.is_empty() && !unique.is_empty(), "{v:?}");
        match files.iter().find(|(n, _)| n == name) {
            Some((_, n)) => {
                assert_eq!(typ, "file", "{v:?}");
                assert_eq!(size, &n.to_string(), "{v:?}");
            }
            None => assert_eq!(typ, "dir", "{v:?}"),
        }
    }

    let some = r.all("some");
    assert_eq!(some.len(), 4, "{r:?}");
    for v in &some {
        assert_eq!(
            v[1], "size;type",
            "only the requested facts after OPTS MLST: {v:?}"
        );
    }
    r.assert_code("quit", 221);
}

#[test]
fn ftplib_storbinary_and_retrbinary_with_rest_resume_byte_exact() {
    let Some(d) = daemon_if_tool("python3", USER, PASS) else {
        return;
    };
    let full = random_bytes_seeded(61, 5 * MIB + 321);
    let stor_rest = 2 * MIB + 5;
    let retr_rest = 3 * MIB + 77;
    let local = d.tmp().join("full.bin");
    write_file(&local, &full);
    // The server has an interrupted upload: the first `stor_rest` bytes.
    write_file(&d.root(USER).join("resumed.bin"), &full[..stor_rest]);
    let down = d.tmp().join("tail.bin");
    let r = extras_script(
        &d,
        "resume",
        &[
            local.to_str().expect("utf-8"),
            "resumed.bin",
            &stor_rest.to_string(),
            &retr_rest.to_string(),
            down.to_str().expect("utf-8"),
        ],
    );
    r.assert_code("stor", 226);
    assert_eq!(r.one("size"), full.len().to_string());
    r.assert_code("retr", 226);
    assert_eq!(
        file_sha256(&d.root(USER).join("resumed.bin")),
        sha256_hex(&full),
        "storbinary(rest={stor_rest}) completed the file on the server"
    );
    assert_file_holds(
        &down,
        &full[retr_rest..],
        &format!("retrbinary(rest={retr_rest}) returned the tail"),
    );
}

#[test]
fn ftplib_sendcmd_site_help_is_214_and_site_foo_raises_502() {
    let Some(d) = daemon_if_tool("python3", USER, PASS) else {
        return;
    };
    let r = extras_script(&d, "site", &[]);
    let help: Vec<&str> = r.all("site_help").iter().map(|v| v[0].as_str()).collect();
    assert!(help.len() >= 2, "multi-line SITE HELP: {help:?}");
    assert!(help[0].starts_with("214-"), "{help:?}");
    assert!(help.last().expect("last").starts_with("214 "), "{help:?}");
    r.assert_code("site_foo", 502);
    r.assert_code("quit", 221);
}
