//! Real clients against both storage back-ends (a local root and an S3 prefix): lftp
//! `mirror -R` and `mirror` of a tree, curl uploads and downloads, Python's ftplib with REST,
//! SIZE and HASH; and the control connection during a large download (STAT shows progress,
//! ABOR ends it). Every byte is checked by sha256, on the client and in the store.

mod common;
mod rawftp;

use common::backend::{Served, ALICE};
use common::*;
use rawftp::*;
use std::io::Read;
use std::path::Path;
use std::process::Command;

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let files = vec![
        ("empty.bin".to_owned(), Vec::new()),
        ("one.txt".to_owned(), b"1".to_vec()),
        (
            "sub dir/big.bin".to_owned(),
            random_bytes_seeded(3, 9 * MIB + 7),
        ),
        (
            "sub dir/ünï cödé.txt".to_owned(),
            random_bytes_seeded(4, 70_001),
        ),
        (
            "sub dir/deeper/last.dat".to_owned(),
            random_bytes_seeded(5, 1234),
        ),
    ];
    for (name, data) in &files {
        write_file(&root.join(name), data);
    }
    files
}

fn lftp(s: &Served, script: &str) -> ClientOutput {
    let home = s.daemon.tmp().join("lftp-home");
    std::fs::create_dir_all(&home).expect("lftp home");
    let commands = format!(
        "set net:max-retries 1; set net:timeout 20; set ftp:passive-mode true; \
         set ftp:ssl-allow false; set cmd:fail-exit true; set xfer:clobber true; \
         set ftp:charset UTF-8; set file:charset UTF-8; \
         open -u {},{} -p {} 127.0.0.1; {script}",
        ALICE.name,
        ALICE.password,
        s.daemon.port()
    );
    let mut cmd = Command::new("lftp");
    cmd.arg("-c")
        .arg(commands)
        .env("HOME", &home)
        .env("LC_ALL", "C.UTF-8");
    run_with_timeout(&mut cmd, CLIENT_DEADLINE * 2)
}

backend_tests! {
    /// lftp `mirror -R` uploads a tree (folders, a multipart-sized file, non-ASCII names) and
    /// `mirror` brings it back identical.
    fn lftp_mirrors_a_tree_both_ways(kind) {
        if !require_tool("lftp") {
            return;
        }
        let Some(s) = Served::start(kind, &[ALICE], &[]) else { return };
        let up = s.daemon.tmp().join("up");
        let down = s.daemon.tmp().join("down");
        let files = tree(&up);
        let out = lftp(&s, &format!("mirror -R {} /tree", up.display()));
        assert!(out.status.success(), "mirror -R: {}", out.stderr_text());
        for (name, data) in &files {
            let stored = s.read("alice", &format!("tree/{name}")).unwrap_or_else(|| {
                panic!("{name} was not stored ({kind:?})")
            });
            assert_eq!(sha256_hex(&stored), sha256_hex(data), "stored {name}");
        }
        let out = lftp(&s, &format!("mirror /tree {}", down.display()));
        assert!(out.status.success(), "mirror: {}", out.stderr_text());
        for (name, data) in &files {
            assert_file_holds(&down.join(name), data, &format!("mirrored back {name}"));
        }
        assert!(s.leftovers("alice").is_empty(), "no upload left in progress");
    }

    /// curl uploads (creating folders on the way) and downloads, whole and resumed.
    fn curl_uploads_and_downloads(kind) {
        if !require_tool("curl") {
            return;
        }
        let Some(s) = Served::start(kind, &[ALICE], &[]) else { return };
        let data = random_bytes_seeded(9, 12 * MIB + 1);
        let local = s.daemon.tmp().join("up.bin");
        write_file(&local, &data);
        let url = format!(
            "ftp://{}:{}@127.0.0.1:{}/a/b/up.bin",
            ALICE.name,
            ALICE.password,
            s.daemon.port()
        );
        let mut up = Command::new("curl");
        up.args(["-sS", "--ftp-create-dirs", "-T"]).arg(&local).arg(&url);
        let out = run_with_timeout(&mut up, CLIENT_DEADLINE);
        assert!(out.status.success(), "curl -T: {}", out.stderr_text());
        let stored = s.read("alice", "a/b/up.bin").expect("stored");
        assert_eq!(sha256_hex(&stored), sha256_hex(&data), "stored by curl");
        let mut get = Command::new("curl");
        get.args(["-sS", &url]);
        let out = run_with_timeout(&mut get, CLIENT_DEADLINE);
        assert_eq!(sha256_hex(&out.stdout), sha256_hex(&data), "curl download");
        let mut part = Command::new("curl");
        part.args(["-sS", "-C", "5000000", &url]);
        let out = run_with_timeout(&mut part, CLIENT_DEADLINE);
        assert_eq!(sha256_hex(&out.stdout), sha256_hex(&data[5_000_000..]), "curl -C (REST)");
    }

    /// Python's ftplib: STOR, RETR with REST, SIZE, and HASH agreeing with the bytes.
    fn ftplib_transfers_size_and_hash(kind) {
        if !require_tool("python3") {
            return;
        }
        let Some(s) = Served::start(kind, &[ALICE], &[]) else { return };
        let data = random_bytes_seeded(11, 3 * MIB + 5);
        let local = s.daemon.tmp().join("py.bin");
        write_file(&local, &data);
        let script = r#"
import ftplib, hashlib, sys
port, user, pw, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = open(path, 'rb').read()
f = ftplib.FTP(timeout=30); f.connect('127.0.0.1', port); f.login(user, pw)
with open(path, 'rb') as fh: f.storbinary('STOR py.bin', fh)
assert f.size('py.bin') == len(data), f.size('py.bin')
got = bytearray(); f.retrbinary('RETR py.bin', got.extend)
assert bytes(got) == data
tail = bytearray(); f.retrbinary('RETR py.bin', tail.extend, rest=1000)
assert bytes(tail) == data[1000:]
reply = f.sendcmd('HASH py.bin')
assert hashlib.sha256(data).hexdigest() in reply, reply
f.sendcmd('OPTS HASH MD5')
assert hashlib.md5(data).hexdigest() in f.sendcmd('HASH py.bin')
f.quit()
print('ok')
"#;
        let mut py = Command::new("python3");
        py.args(["-c", script])
            .arg(s.daemon.port().to_string())
            .args([ALICE.name, ALICE.password])
            .arg(&local);
        let out = run_with_timeout(&mut py, CLIENT_DEADLINE);
        assert!(
            out.status.success() && out.stdout_text().trim() == "ok",
            "ftplib: {}\n{}",
            out.stdout_text(),
            out.stderr_text()
        );
        let stored = s.read("alice", "py.bin").expect("stored");
        assert_eq!(sha256_hex(&stored), sha256_hex(&data), "stored by ftplib");
    }

    /// During a large RETR nobody reads, STAT reports its progress and ABOR ends it (426,
    /// then 226); what arrived is the file's start, and the session goes on.
    fn stat_and_abor_during_a_download(kind) {
        let Some(s) = Served::start(kind, &[ALICE], &[]) else { return };
        let data = random_bytes_seeded(21, 48 * MIB);
        s.write("alice", "big.bin", &data);
        let mut c = Ctrl::login(s.daemon.addr(), ALICE.name, ALICE.password);
        let mut conn = c.epsv();
        c.expect("RETR big.bin", 150);
        let mut got = vec![0u8; 4 * MIB];
        conn.read_exact(&mut got).expect("the first bytes arrive");
        let status = c.expect("STAT", 211).wire();
        assert!(
            status.contains("Transfer in progress: RETR /big.bin"),
            "STAT during the transfer: {status}"
        );
        c.send("ABOR");
        let first = c.reply().code;
        assert!(first == 426 || first == 226, "ABOR: {first}");
        if first == 426 {
            c.expect_reply(226);
        }
        let (rest, _) = drain(&mut conn);
        got.extend_from_slice(&rest);
        assert!(got.len() < data.len(), "the abort cut the transfer short");
        assert_eq!(sha256_hex(&got), sha256_hex(&data[..got.len()]), "a prefix of the file");
        assert_eq!(c.download("RETR big.bin").len(), data.len(), "the session goes on");
    }
}
