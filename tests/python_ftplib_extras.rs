//! Python `ftplib` beyond the basic session (script in tests/clients/ftplib_extras.py):
//! `mlsd()` with and without facts, `storbinary(..., rest=N)` and `retrbinary(..., rest=N)`
//! resume, and `sendcmd('SITE HELP')`. `abort()` is driven from tests/abort_and_stat.rs.

mod common;

use std::process::Command;

use common::*;

const USER: &str = "alice";
const PASS: &str = "alice-pass";
const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clients/ftplib_extras.py"
);

/// Runs one mode of the script and returns its TAB-separated records.
fn python(d: &Daemon, mode: &str, extra: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("python3");
    cmd.arg(SCRIPT)
        .arg(mode)
        .arg(d.addr().ip().to_string())
        .arg(d.port().to_string())
        .args([USER, PASS])
        .args(extra)
        .env("PYTHONIOENCODING", "utf-8");
    let out = run_with_timeout(&mut cmd, CLIENT_DEADLINE);
    out.assert_success(&format!("ftplib_extras {mode}"));
    out.stdout_text()
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn records<'a>(all: &'a [Vec<String>], key: &str) -> Vec<&'a [String]> {
    all.iter()
        .filter(|r| r[0] == key)
        .map(|r| &r[1..])
        .collect()
}

#[track_caller]
fn one<'a>(all: &'a [Vec<String>], key: &str) -> &'a str {
    let r = records(all, key);
    assert_eq!(r.len(), 1, "one {key:?} record expected, got {all:?}");
    &r[0][0]
}

#[test]
fn ftplib_mlsd_returns_every_entry_with_its_facts() {
    if !require_tool("python3") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let dir = d.root(USER).join("ml dir");
    let files = [("a.bin", 0usize), ("b c.bin", 4096 + 7), ("ünï.txt", 33)];
    for (i, (name, n)) in files.iter().enumerate() {
        write_file(&dir.join(name), &random_bytes_seeded(60 + i as u64, *n));
    }
    std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
    let r = python(&d, "mlsd", &["ml dir"]);

    let all = records(&r, "all");
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

    let some = records(&r, "some");
    assert_eq!(some.len(), 4, "{r:?}");
    for v in &some {
        assert_eq!(
            v[1], "size;type",
            "only the requested facts after OPTS MLST: {v:?}"
        );
    }
    assert!(one(&r, "quit").starts_with("221"));
}

#[test]
fn ftplib_storbinary_and_retrbinary_with_rest_resume_byte_exact() {
    if !require_tool("python3") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let full = random_bytes_seeded(61, 5 * MIB + 321);
    let stor_rest = 2 * MIB + 5;
    let retr_rest = 3 * MIB + 77;
    let local = d.tmp().join("full.bin");
    write_file(&local, &full);
    // The server has an interrupted upload: the first `stor_rest` bytes.
    write_file(&d.root(USER).join("resumed.bin"), &full[..stor_rest]);
    let down = d.tmp().join("tail.bin");
    let r = python(
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
    assert!(one(&r, "stor").starts_with("226"), "{r:?}");
    assert_eq!(one(&r, "size"), full.len().to_string());
    assert!(one(&r, "retr").starts_with("226"), "{r:?}");
    assert_eq!(
        file_sha256(&d.root(USER).join("resumed.bin")),
        sha256_hex(&full),
        "storbinary(rest={stor_rest}) completed the file on the server"
    );
    assert_eq!(
        file_sha256(&down),
        sha256_hex(&full[retr_rest..]),
        "retrbinary(rest={retr_rest}) returned the tail"
    );
}

#[test]
fn ftplib_sendcmd_site_help_is_214_and_site_foo_raises_502() {
    if !require_tool("python3") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let r = python(&d, "site", &[]);
    let help: Vec<&str> = records(&r, "site_help")
        .iter()
        .map(|v| v[0].as_str())
        .collect();
    assert!(help.len() >= 2, "multi-line SITE HELP: {help:?}");
    assert!(help[0].starts_with("214-"), "{help:?}");
    assert!(help.last().expect("last").starts_with("214 "), "{help:?}");
    assert!(one(&r, "site_foo").starts_with("502"), "{r:?}");
    assert!(one(&r, "quit").starts_with("221"));
}
