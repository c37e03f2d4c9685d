//! lftp beyond tests/lftp.rs: `mirror --continue` resumes a partial download with REST, a second
//! `mirror -R` of an unchanged tree uploads nothing (and a changed file is uploaded again), and
//! `set ftp:use-mlsd true` listings come from MLSD with the right facts. Names have spaces and
//! non-ASCII characters; every file is sha256-checked. lftp runs with `-d` so the commands it
//! sent (`---> VERB`) can be asserted on.

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

/// Runs `lftp -d -c "<settings>; open ...; <script>"`; the debug log (stderr) shows every command.
fn lftp(d: &Daemon, script: &str) -> ClientOutput {
    let home = d.tmp().join("lftp-home");
    std::fs::create_dir_all(&home).expect("mkdir lftp home");
    let commands = format!(
        "set net:max-retries 1; set net:timeout 10; set net:reconnect-interval-base 1; \
         set ftp:passive-mode true; set ftp:ssl-allow false; \
         set cmd:fail-exit true; set xfer:clobber true; \
         set file:charset UTF-8; set ftp:charset UTF-8; \
         open -u {},{} -p {} {}; {script}",
        q(USER),
        q(PASS),
        d.port(),
        d.addr().ip(),
    );
    let mut cmd = Command::new("lftp");
    cmd.arg("-d")
        .arg("-c")
        .arg(commands)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("LC_ALL", "C.UTF-8");
    run_with_timeout(&mut cmd, CLIENT_DEADLINE)
}

/// The commands lftp sent, from its debug log.
fn sent(out: &ClientOutput) -> Vec<String> {
    out.stderr_text()
        .lines()
        .filter_map(|l| l.strip_prefix("---> "))
        .map(str::to_string)
        .collect()
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
    if !require_tool("lftp") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
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

    let out = lftp(
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
    if !require_tool("lftp") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let local = d.tmp().join("local ü tree");
    let files = sample_tree(true);
    let expected = write_tree(&local, &files);
    let script = format!("mirror -R --no-perms {} {}", qp(&local), q("up ü"));
    let remote = d.root(USER).join("up ü");

    let first = lftp(&d, &script);
    first.assert_success("first mirror -R");
    let stors = sent(&first)
        .iter()
        .filter(|c| c.starts_with("STOR "))
        .count();
    assert_eq!(stors, files.len(), "first mirror -R uploads every file");
    assert_eq!(tree_hashes(&remote), expected);
    let inodes = tree_inodes(&remote);

    let second = lftp(&d, &script);
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
    let third = lftp(&d, &script);
    third.assert_success("third mirror -R");
    let stors: Vec<String> = sent(&third)
        .into_iter()
        .filter(|c| c.starts_with("STOR "))
        .collect();
    assert_eq!(stors, vec!["STOR naïve café.txt".to_string()], "{stors:?}");
    assert_eq!(
        file_sha256(&remote.join("ünïcødé dir/naïve café.txt")),
        sha256_hex(&changed)
    );
}

#[test]
fn lftp_listing_with_use_mlsd_true_comes_from_mlsd_with_exact_facts() {
    if !require_tool("lftp") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
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

    let out = lftp(&d, "set ftp:use-mlsd true; cls -l lst/");
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
    let out = lftp(&d, "set ftp:use-mlsd false; cls -1 lst/");
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
