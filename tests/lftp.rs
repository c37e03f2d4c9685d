//! Scenarios driven with `lftp -c` in passive mode. Every run sets `net:timeout` and
//! `net:max-retries 1` so a misbehaving server fails the test instead of hanging it.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const USER: &str = "alice";
const PASS: &str = "alice-pass";

/// Quotes `s` as one lftp word.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn qp(p: &Path) -> String {
    q(p.to_str().expect("temporary paths are UTF-8"))
}

/// Runs `lftp -c "<settings>; open ...; <script>"` as `user`.
fn lftp_as(d: &Daemon, user: &str, pass: &str, epsv: bool, script: &str) -> ClientOutput {
    let home = d.tmp().join("lftp-home");
    std::fs::create_dir_all(&home).expect("mkdir lftp home");
    let commands = format!(
        "set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; \
         set ftp:passive-mode true; set ftp:prefer-epsv {epsv}; set ftp:ssl-allow false; \
         set cmd:fail-exit true; set xfer:clobber true; \
         set file:charset UTF-8; set ftp:charset UTF-8; \
         open -u {},{} -p {} {}; {script}",
        q(user),
        q(pass),
        d.port(),
        d.addr().ip(),
    );
    let mut cmd = Command::new("lftp");
    cmd.arg("-c")
        .arg(commands)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("LC_ALL", "C.UTF-8");
    run_with_timeout(&mut cmd, CLIENT_DEADLINE)
}

fn lftp(d: &Daemon, script: &str) -> ClientOutput {
    lftp_as(d, USER, PASS, false, script)
}

fn put_get_round_trip(epsv: bool) {
    let d = Daemon::start(&[(USER, PASS)]);
    let up = d.tmp().join("up");
    let down = d.tmp().join("down");
    std::fs::create_dir_all(&down).expect("mkdir down");
    let files = [
        ("empty.bin", 0usize),
        ("one.bin", 1),
        ("one mib.bin", MIB),
        ("odd size.dat", 777_777),
    ];
    let mut script = String::new();
    let mut expected = Vec::new();
    for (i, (name, n)) in files.iter().enumerate() {
        let data = random_bytes_seeded(40 + i as u64, *n);
        write_file(&up.join(name), &data);
        expected.push((*name, *n, sha256_hex(&data)));
        script.push_str(&format!("put {} -o {}; ", qp(&up.join(name)), q(name)));
    }
    for (name, _) in files.iter() {
        script.push_str(&format!("get {} -o {}; ", q(name), qp(&down.join(name))));
    }
    lftp_as(&d, USER, PASS, epsv, &script).assert_success("lftp put/get");
    for (name, n, sha) in &expected {
        assert_eq!(
            &file_sha256(&d.root(USER).join(name)),
            sha,
            "{name} ({}) put by lftp differs on the server's disk",
            size_label(*n)
        );
        assert_eq!(
            &file_sha256(&down.join(name)),
            sha,
            "{name} ({}) fetched by lftp get differs from the upload",
            size_label(*n)
        );
    }
}

#[test]
fn lftp_put_then_get_is_byte_exact_over_pasv() {
    if require_tool("lftp") {
        put_get_round_trip(false);
    }
}

#[test]
fn lftp_put_then_get_is_byte_exact_over_epsv() {
    if require_tool("lftp") {
        put_get_round_trip(true);
    }
}

#[test]
fn lftp_ls_and_nlist_show_uploaded_names() {
    if !require_tool("lftp") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let names = ["plain.txt", "with space.bin", "x"];
    for (i, name) in names.iter().enumerate() {
        write_file(&d.root(USER).join(name), &random_bytes_seeded(i as u64, 10));
    }
    std::fs::create_dir_all(d.root(USER).join("a dir")).expect("mkdir");
    let out = lftp(&d, "ls");
    out.assert_success("lftp ls");
    let text = out.stdout_text();
    for name in names.iter().chain(&["a dir"]) {
        assert!(
            text.lines().any(|l| l.trim_end().ends_with(name)),
            "lftp ls shows {name:?}:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with('d') && l.trim_end().ends_with("a dir")),
        "lftp ls shows 'a dir' as a directory:\n{text}"
    );

    let out = lftp(&d, "nlist");
    out.assert_success("lftp nlist");
    let mut got: Vec<String> = out
        .stdout_text()
        .lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    got.sort();
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.push("a dir".into());
    want.sort();
    assert_eq!(got, want, "lftp nlist (NLST)");
}

#[test]
fn lftp_mkdir_rm_rmdir_change_the_tree() {
    if !require_tool("lftp") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let root = d.root(USER);
    let local = d.tmp().join("f.bin");
    let data = random_bytes(4321);
    write_file(&local, &data);

    lftp(
        &d,
        &format!(
            "mkdir -p {}; mkdir other; put {} -o {}; cd {}; pwd",
            q("made dir/sub dir"),
            qp(&local),
            q("made dir/sub dir/f.bin"),
            q("made dir")
        ),
    )
    .assert_success("lftp mkdir/put");
    assert!(
        root.join("made dir/sub dir").is_dir(),
        "mkdir -p made both levels"
    );
    assert!(root.join("other").is_dir(), "mkdir other");
    assert_eq!(
        file_sha256(&root.join("made dir/sub dir/f.bin")),
        sha256_hex(&data),
        "put into the new directory"
    );

    lftp(
        &d,
        &format!(
            "rm {}; rmdir {}; rmdir other",
            q("made dir/sub dir/f.bin"),
            q("made dir/sub dir")
        ),
    )
    .assert_success("lftp rm/rmdir");
    assert!(!root.join("made dir/sub dir").exists(), "rmdir sub dir");
    assert!(!root.join("other").exists(), "rmdir other");
    assert!(root.join("made dir").is_dir(), "the parent is still there");

    write_file(&root.join("made dir/again/g.bin"), b"g");
    lftp(&d, &format!("rm -r {}", q("made dir"))).assert_success("lftp rm -r");
    assert!(!root.join("made dir").exists(), "rm -r removed the tree");

    let out = lftp(&d, "rm no-such-file");
    assert!(!out.status.success(), "lftp rm of a missing file must fail");
    assert!(
        out.stderr_text().contains("550"),
        "lftp reports the 550: {}",
        out.stderr_text()
    );
}

/// Mirrors a server-side tree down with `mirror` and checks every file and directory.
fn mirror_down(non_ascii: bool) {
    let d = Daemon::start(&[(USER, PASS)]);
    let remote = d.root(USER).join("tree root");
    let expected = write_tree(&remote, &sample_tree(non_ascii));
    std::fs::create_dir_all(remote.join("dir one/empty dir")).expect("mkdir empty dir");
    let local = d.tmp().join("mirrored down");

    lftp(
        &d,
        &format!("mirror --no-perms {} {}", q("tree root"), qp(&local)),
    )
    .assert_success("lftp mirror");
    assert_eq!(
        tree_hashes(&local),
        expected,
        "every file mirrored down is byte-exact"
    );
    assert_eq!(tree_dirs(&local), tree_dirs(&remote), "same directories");
}

/// Mirrors a local tree up with `mirror -R` and checks every file and directory.
fn mirror_up(non_ascii: bool) {
    let d = Daemon::start(&[(USER, PASS)]);
    let local = d.tmp().join("local tree");
    let expected = write_tree(&local, &sample_tree(non_ascii));
    std::fs::create_dir_all(local.join("dir one/empty dir")).expect("mkdir empty dir");

    lftp(
        &d,
        &format!("mirror -R --no-perms {} {}", qp(&local), q("uploaded tree")),
    )
    .assert_success("lftp mirror -R");
    let remote = d.root(USER).join("uploaded tree");
    assert_eq!(
        tree_hashes(&remote),
        expected,
        "every file mirrored up is byte-exact"
    );
    assert_eq!(tree_dirs(&remote), tree_dirs(&local), "same directories");

    // Mirroring back down what was uploaded reproduces it as well.
    let back = d.tmp().join("back down");
    lftp(
        &d,
        &format!("mirror --no-perms {} {}", q("uploaded tree"), qp(&back)),
    )
    .assert_success("lftp mirror of the uploaded tree");
    assert_eq!(
        tree_hashes(&back),
        expected,
        "round trip through the server"
    );
}

#[test]
fn lftp_mirror_down_reproduces_tree_with_spaces() {
    if require_tool("lftp") {
        mirror_down(false);
    }
}

#[test]
fn lftp_mirror_reverse_uploads_tree_with_spaces() {
    if require_tool("lftp") {
        mirror_up(false);
    }
}

#[test]
fn lftp_mirror_down_reproduces_tree_with_non_ascii_names() {
    if require_tool("lftp") {
        mirror_down(true);
    }
}

#[test]
fn lftp_mirror_reverse_uploads_tree_with_non_ascii_names() {
    if require_tool("lftp") {
        mirror_up(true);
    }
}

#[test]
fn lftp_wrong_password_fails_with_530() {
    if !require_tool("lftp") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let out = lftp_as(&d, USER, "wrong-pass", false, "ls");
    assert!(
        !out.status.success(),
        "lftp ls with a wrong password must fail"
    );
    assert!(
        out.stderr_text().contains("530"),
        "lftp reports the 530: {}",
        out.stderr_text()
    );
}
