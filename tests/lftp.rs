//! Scenarios driven with `lftp -c` in passive mode: put/get over PASV and EPSV, listings,
//! mkdir/rm/rmdir, `mirror` both ways with spaces and non-ASCII names, `mirror --continue`
//! resuming a partial download with REST, a second `mirror -R` of an unchanged tree uploading
//! nothing, and `set ftp:use-mlsd true` listings built from MLSD facts. Every run sets
//! `net:timeout` and `net:max-retries 1` so a misbehaving server fails the test instead of
//! hanging it; every file is sha256-checked. Runs with `-d` show the commands lftp sent
//! (`---> VERB`) so they can be asserted on.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use common::*;

const USER: &str = "alice";
const PASS: &str = "alice-pass";
/// 2001-02-03 04:05:06 UTC.
const OLD_MTIME: u64 = 981_173_106;

/// Quotes `s` as one lftp word.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn qp(p: &Path) -> String {
    q(p.to_str().expect("temporary paths are UTF-8"))
}

/// How one lftp run is made.
#[derive(Clone, Copy)]
struct Run<'a> {
    user: &'a str,
    pass: &'a str,
    /// `ftp:prefer-epsv` (lftp's default is false: PASV).
    epsv: bool,
    /// `-d`: the debug log on stderr shows every command sent.
    debug: bool,
}

const ALICE: Run = Run {
    user: USER,
    pass: PASS,
    epsv: false,
    debug: false,
};

/// Runs `lftp -c "<settings>; open ...; <script>"` with a private HOME.
fn lftp_run(d: &Daemon, run: Run, script: &str) -> ClientOutput {
    let home = d.tmp().join("lftp-home");
    std::fs::create_dir_all(&home).expect("mkdir lftp home");
    let commands = format!(
        "set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; \
         set ftp:passive-mode true; set ftp:prefer-epsv {}; set ftp:ssl-allow false; \
         set cmd:fail-exit true; set xfer:clobber true; \
         set file:charset UTF-8; set ftp:charset UTF-8; \
         open -u {},{} -p {} {}; {script}",
        run.epsv,
        q(run.user),
        q(run.pass),
        d.port(),
        d.addr().ip(),
    );
    let mut cmd = Command::new("lftp");
    if run.debug {
        cmd.arg("-d");
    }
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
    lftp_run(d, ALICE, script)
}

/// Like [`lftp`] with `-d`; see [`sent`].
fn lftp_debug(d: &Daemon, script: &str) -> ClientOutput {
    lftp_run(
        d,
        Run {
            debug: true,
            ..ALICE
        },
        script,
    )
}

/// The commands lftp sent, from its debug log.
fn sent(out: &ClientOutput) -> Vec<String> {
    out.stderr_text()
        .lines()
        .filter_map(|l| l.strip_prefix("---> "))
        .map(str::to_string)
        .collect()
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
    lftp_run(&d, Run { epsv, ..ALICE }, &script).assert_success("lftp put/get");
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
    let Some(d) = daemon_if_tool("lftp", USER, PASS) else {
        return;
    };
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
    let text = out.stdout_text();
    let got = text.lines().map(str::trim_end).filter(|l| !l.is_empty());
    let want: Vec<&str> = names.iter().chain(&["a dir"]).copied().collect();
    assert_same_names(got, &want, "lftp nlist (NLST)");
}

#[test]
fn lftp_mkdir_rm_rmdir_change_the_tree() {
    let Some(d) = daemon_if_tool("lftp", USER, PASS) else {
        return;
    };
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
    assert_file_holds(
        &root.join("made dir/sub dir/f.bin"),
        &data,
        "put into the new directory",
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
    let Some(d) = daemon_if_tool("lftp", USER, PASS) else {
        return;
    };
    let out = lftp_run(
        &d,
        Run {
            pass: "wrong-pass",
            ..ALICE
        },
        "ls",
    );
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

fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

/// Every regular file under `dir` with its inode (relative path, inode), sorted.
fn tree_inodes(dir: &Path) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = tree_hashes(dir)
        .into_iter()
        .map(|(rel, _)| {
            let ino = std::fs::metadata(dir.join(&rel)).expect("metadata").ino();
            (rel, ino)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn lftp_mirror_continue_resumes_a_partial_download_with_rest() {
    let Some(d) = daemon_if_tool("lftp", USER, PASS) else {
        return;
    };
    let remote = d.root(USER).join("tree ü");
    let mut files = sample_tree(true);
    let big = random_bytes_seeded(80, 3 * MIB + 21);
    files.push(("dir one/grand fichier é.bin".to_string(), big.clone()));
    let expected = write_tree(&remote, &files);
    // The remote file is older than the interrupted local copy, so lftp continues it.
    set_mtime(&remote.join("dir one/grand fichier é.bin"), OLD_MTIME);
    let local = d.tmp().join("mirror ü");
    let cut = MIB + 5;
    write_file(&local.join("dir one/grand fichier é.bin"), &big[..cut]);

    let out = lftp_debug(
        &d,
        &format!(
            "mirror --continue --no-perms {} {}",
            q("tree ü"),
            qp(&local)
        ),
    );
    out.assert_success("lftp mirror --continue");
    let cmds = sent(&out);
    assert!(
        cmds.iter().any(|c| c == &format!("REST {cut}")),
        "mirror --continue resumed with REST {cut}: {cmds:?}"
    );
    assert_eq!(
        tree_hashes(&local),
        expected,
        "every file mirrored down is byte-exact, the resumed one included"
    );
}

#[test]
fn lftp_second_mirror_reverse_of_an_unchanged_tree_uploads_nothing() {
    let Some(d) = daemon_if_tool("lftp", USER, PASS) else {
        return;
    };
    let local = d.tmp().join("local ü tree");
    let files = sample_tree(true);
    let expected = write_tree(&local, &files);
    let script = format!("mirror -R --no-perms {} {}", qp(&local), q("up ü"));
    let remote = d.root(USER).join("up ü");

    let first = lftp_debug(&d, &script);
    first.assert_success("first mirror -R");
    let stors = sent(&first)
        .iter()
        .filter(|c| c.starts_with("STOR "))
        .count();
    assert_eq!(stors, files.len(), "first mirror -R uploads every file");
    assert_eq!(tree_hashes(&remote), expected);
    let inodes = tree_inodes(&remote);

    let second = lftp_debug(&d, &script);
    second.assert_success("second mirror -R");
    let uploads: Vec<String> = sent(&second)
        .into_iter()
        .filter(|c| c.starts_with("STOR ") || c.starts_with("APPE ") || c.starts_with("STOU"))
        .collect();
    assert!(
        uploads.is_empty(),
        "an unchanged tree was uploaded again: {uploads:?}"
    );
    assert_eq!(tree_inodes(&remote), inodes, "no remote file was replaced");
    assert_eq!(tree_hashes(&remote), expected);

    // A changed file (new size) is uploaded again, and only that one.
    let changed = random_bytes_seeded(81, 5000);
    write_file(&local.join("ünïcødé dir/naïve café.txt"), &changed);
    let third = lftp_debug(&d, &script);
    third.assert_success("third mirror -R");
    let stors: Vec<String> = sent(&third)
        .into_iter()
        .filter(|c| c.starts_with("STOR "))
        .collect();
    assert_eq!(stors, vec!["STOR naïve café.txt".to_string()], "{stors:?}");
    assert_file_holds(&remote.join("ünïcødé dir/naïve café.txt"), &changed, "");
}

#[test]
fn lftp_listing_with_use_mlsd_true_comes_from_mlsd_with_exact_facts() {
    let Some(d) = daemon_if_tool("lftp", USER, PASS) else {
        return;
    };
    let dir = d.root(USER).join("lst");
    let files = [
        ("plain.bin", 1234usize),
        ("with space é.bin", 98_765),
        ("ファイル.txt", 7),
    ];
    for (i, (name, n)) in files.iter().enumerate() {
        write_file(&dir.join(name), &random_bytes_seeded(82 + i as u64, *n));
        set_mtime(&dir.join(name), OLD_MTIME);
    }
    std::fs::create_dir_all(dir.join("sub dir")).expect("mkdir");

    let out = lftp_debug(&d, "set ftp:use-mlsd true; cls -l lst/");
    out.assert_success("lftp cls -l with MLSD");
    let cmds = sent(&out);
    assert!(
        cmds.iter().any(|c| c.starts_with("MLSD")),
        "MLSD used: {cmds:?}"
    );
    assert!(
        !cmds.iter().any(|c| c.starts_with("LIST")),
        "LIST not used: {cmds:?}"
    );
    let text = out.stdout_text();
    for (name, n) in files {
        // Mode from UNIX.mode, size from size, date from modify.
        let want = format!(" {n} Feb  3  2001 lst/{name}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("-rw-r--r--") && l.ends_with(&want)),
            "cls -l line for {name:?} ending {want:?}:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with('d') && l.ends_with(" lst/sub dir/")),
        "{text}"
    );

    // The same listing through LIST names the same entries.
    let out = lftp_debug(&d, "set ftp:use-mlsd false; cls -1 lst/");
    out.assert_success("lftp cls with LIST");
    assert!(
        sent(&out).iter().any(|c| c.starts_with("LIST")),
        "{:?}",
        sent(&out)
    );
    let mut names: Vec<String> = out
        .stdout_text()
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect();
    names.sort();
    let mut want: Vec<String> = files.iter().map(|(n, _)| format!("lst/{n}")).collect();
    want.push("lst/sub dir/".into());
    want.sort();
    assert_eq!(names, want);
}
