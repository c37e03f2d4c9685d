//! Issue 18: what real FTP clients expect, each with the client that exposed it.
//!
//! - `mget *.txt` in tnftp (NLST with a glob pattern), and the pattern's limits over raw FTP;
//! - `lftp mirror -R` keeping modification times and modes (MFMT, SITE CHMOD), and the other
//!   forms (MFF, SITE UTIME) with their permission checks and error codes;
//! - HASH, OPTS HASH, RANG and XCRC/XMD5/XSHA1/XSHA256 with Python's ftplib;
//! - names that are not UTF-8: listed as their bytes and retrieved by them (ftplib, tnftp);
//! - dotfiles hidden unless `LIST -a` or `--show-dotfiles` (command line or config file).
//!
//! Every transferred byte is checked by sha256, and what is on disk afterwards. No test sleeps.

mod common;
mod rawftp;

use common::*;
use rawftp::*;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const USER: &str = "alice";
const PASS: &str = "pw";
/// 2001-02-03 04:05:06 UTC.
const OLD_MTIME: i64 = 981_173_106;

/// A file name made of raw bytes (not UTF-8 when the bytes are not).
fn raw(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

fn names_in(dir: &Path) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().as_bytes().to_vec())
        .collect();
    names.sort();
    names
}

/// Runs tnftp with `script` on its standard input (after logging in, binary mode), in `local`.
fn tnftp(d: &Daemon, local: &Path, script: &str) -> ClientOutput {
    let file = d.tmp().join("tnftp-script");
    std::fs::write(&file, format!("user {USER} {PASS}\nbinary\n{script}quit\n")).expect("script");
    let home = d.tmp().join("tnftp-home");
    std::fs::create_dir_all(&home).expect("home");
    let mut cmd = Command::new("sh");
    // run_with_timeout gives the child no stdin; the shell redirects the script into tnftp.
    cmd.arg("-c")
        .arg(r#"exec tnftp -n -i -v -p "$1" "$2" < "$3""#)
        .arg("sh")
        .arg(d.addr().ip().to_string())
        .arg(d.port().to_string())
        .arg(&file)
        .current_dir(local)
        .env("HOME", &home);
    run_with_timeout(&mut cmd, CLIENT_DEADLINE)
}

// ---------------------------------------------------------------------------------------------
// 1. Wildcards.
// ---------------------------------------------------------------------------------------------

#[test]
fn tnftp_mget_with_wildcards_fetches_exactly_the_matching_files() {
    let Some(d) = daemon_if_tool("tnftp", USER, PASS) else {
        return;
    };
    let root = d.root(USER);
    let files: Vec<(PathBuf, Vec<u8>)> = vec![
        (root.join("a.txt"), random_bytes_seeded(1, 70_001)),
        (root.join("b.txt"), random_bytes_seeded(2, MIB + 3)),
        (root.join("c.bin"), random_bytes_seeded(3, 10)),
        (root.join(".hidden.txt"), random_bytes_seeded(4, 11)),
        (root.join("sub/d.txt"), random_bytes_seeded(5, 12)),
        (root.join("sub/e.bin"), random_bytes_seeded(6, 13)),
        (root.join(raw(b"caf\xe9.txt")), random_bytes_seeded(7, 14)),
    ];
    for (path, data) in &files {
        write_file(path, data);
    }
    let local = d.tmp().join("down");
    std::fs::create_dir_all(local.join("sub")).expect("local dirs");
    let out = tnftp(&d, &local, "mget *.txt\nmget sub/*.txt\n");
    out.assert_success("tnftp mget");

    // `*` matched a.txt, b.txt and the Latin-1 name, not the dotfile or c.bin; `sub/*.txt` only
    // sub/d.txt, which tnftp stored under the name the server listed.
    let mut want: Vec<Vec<u8>> = vec![
        b"a.txt".to_vec(),
        b"b.txt".to_vec(),
        b"caf\xe9.txt".to_vec(),
    ];
    want.push(b"sub".to_vec());
    want.sort();
    assert_eq!(names_in(&local), want, "{}", out.stdout_text());
    assert_eq!(names_in(&local.join("sub")), vec![b"d.txt".to_vec()]);
    for (name, index) in [
        (raw(b"a.txt"), 0),
        (raw(b"b.txt"), 1),
        (raw(b"caf\xe9.txt"), 6),
        (raw(b"sub/d.txt"), 4),
    ] {
        assert_file_holds(
            &local.join(&name),
            &files[index].1,
            &format!("{name:?} fetched by mget"),
        );
    }
    // The server's tree is as it was.
    for (path, data) in &files {
        assert_file_holds(path, data, "server file after mget");
    }
}

#[test]
fn glob_patterns_match_one_folder_within_the_root_and_a_limit() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    for name in ["a.txt", "b.txt", "c.bin", ".hidden.txt", "sub/d.txt", "[x]"] {
        write_file(&root.join(name), name.as_bytes());
    }
    let names = |c: &mut Ctrl, cmd: &str| -> Vec<String> {
        let mut v: Vec<String> = c
            .listing(cmd)
            .split("\r\n")
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&mut c, "NLST *.txt"), ["a.txt", "b.txt"]);
    assert_eq!(names(&mut c, "NLST ?.bin"), ["c.bin"]);
    assert_eq!(names(&mut c, "NLST [ab].*"), ["a.txt", "b.txt"]);
    assert_eq!(
        names(&mut c, "NLST [!a]*"),
        ["[x]", "b.txt", "c.bin", "sub"]
    );
    assert_eq!(names(&mut c, "NLST \\[x]"), ["[x]"]);
    assert_eq!(names(&mut c, "NLST .*"), [".hidden.txt"]);
    assert_eq!(names(&mut c, "NLST sub/*.txt"), ["sub/d.txt"]);
    assert_eq!(names(&mut c, "NLST /sub/d.*"), ["/sub/d.txt"]);
    assert_eq!(names(&mut c, "NLST nothing*"), Vec::<String>::new());
    // `..` cannot lead a pattern above the root: it lists the root.
    assert_eq!(
        names(&mut c, "NLST ../../*.txt"),
        ["../../a.txt", "../../b.txt"]
    );
    let long = c.listing("LIST *.txt");
    assert_eq!(long.lines().count(), 2, "{long}");
    assert!(long.lines().all(|l| l.starts_with("-rw")), "{long}");
    // A pattern in a folder component is a plain name (no tree walk): no folder is called `*`.
    let r = c.transfer("NLST */d.txt", None);
    assert_eq!(r.code(), 550, "pattern in a folder component");
    // A pattern after a file is an error, not a listing of the file.
    assert_eq!(c.transfer("NLST a.txt/*", None).code(), 550);
    // An over-long pattern is a plain (missing) name, never matched.
    let long = c.transfer(&format!("NLST {}", "a*".repeat(128)), None);
    assert!(matches!(long.code(), 550 | 553), "{:?}", long.first);
    // The server's upload temporary files match no pattern, not even an explicit one.
    write_file(
        &root.join(".actorftpd-upload-0123456789abcdef.part"),
        b"in flight",
    );
    assert_eq!(names(&mut c, "NLST .*"), [".hidden.txt"]);
    assert_eq!(
        names(&mut c, "NLST -a .actorftpd-upload-*"),
        Vec::<String>::new()
    );

    // The match limit: 10,000 names; one more and the listing is refused, not cut short.
    let many = root.join("many");
    std::fs::create_dir_all(&many).expect("mkdir many");
    for i in 0..=10_000 {
        std::fs::File::create(many.join(format!("f{i:05}"))).expect("create");
    }
    let r = c.transfer("NLST many/f*", None);
    assert_eq!(r.code(), 550, "over the match limit: {:?}", r.first);
    assert_eq!(names(&mut c, "NLST many/f0*").len(), 10_000);
    c.expect("QUIT", 221);
}

// ---------------------------------------------------------------------------------------------
// 2. Timestamps and modes.
// ---------------------------------------------------------------------------------------------

fn lftp(d: &Daemon, script: &str) -> ClientOutput {
    let home = d.tmp().join("lftp-home");
    std::fs::create_dir_all(&home).expect("mkdir lftp home");
    let commands = format!(
        "set net:max-retries 1; set net:timeout 10; set ftp:passive-mode true; \
         set ftp:ssl-allow false; set cmd:fail-exit true; \
         open -u {USER},{PASS} -p {} {}; {script}",
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

fn set_mtime(path: &Path, secs: i64) {
    let file = std::fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))
        .expect("open to set time");
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64);
    file.set_modified(t).expect("set mtime");
}

#[test]
fn lftp_mirror_r_keeps_modification_times_and_modes() {
    let Some(d) = daemon_if_tool("lftp", USER, PASS) else {
        return;
    };
    let up = d.tmp().join("up");
    let files: Vec<(&str, usize, u32)> = vec![
        ("one.txt", 70_001, 0o640),
        ("run.sh", 100, 0o755),
        (".dotfile", 5, 0o600),
        ("deep/d.bin", MIB + 1, 0o644),
    ];
    let mut data = Vec::new();
    for (i, (name, n, mode)) in files.iter().enumerate() {
        let bytes = random_bytes_seeded(100 + i as u64, *n);
        let path = up.join(name);
        write_file(&path, &bytes);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).expect("chmod");
        set_mtime(&path, OLD_MTIME + i as i64);
        data.push(bytes);
    }
    let out = lftp(&d, &format!("mirror -R {} mirrored", up.display()));
    out.assert_success("lftp mirror -R");
    let log = out.stderr_text();
    assert!(
        !log.contains("<--- 502") && !log.contains("<--- 500"),
        "{log}"
    );
    assert!(log.contains("---> MFMT "), "lftp sent no MFMT:\n{log}");
    assert!(
        log.contains("---> SITE CHMOD "),
        "lftp sent no SITE CHMOD:\n{log}"
    );

    let remote = d.root(USER).join("mirrored");
    for (i, (name, _, mode)) in files.iter().enumerate() {
        let path = remote.join(name);
        assert_file_holds(&path, &data[i], &format!("{name} mirrored up"));
        let meta = std::fs::metadata(&path).expect("mirrored file");
        assert_eq!(meta.mtime(), OLD_MTIME + i as i64, "{name}: mtime kept");
        assert_eq!(meta.mode() & 0o777, *mode, "{name}: mode kept");
    }

    // And back down: the bytes, and the times MLSD reports (lftp sets them locally).
    let back = d.tmp().join("back");
    let out = lftp(&d, &format!("mirror mirrored {}", back.display()));
    out.assert_success("lftp mirror (download)");
    for (i, (name, _, _)) in files.iter().enumerate() {
        let path = back.join(name);
        assert_file_holds(&path, &data[i], &format!("{name} mirrored back"));
        let meta = std::fs::metadata(&path).expect("mirrored back");
        assert_eq!(
            meta.mtime(),
            OLD_MTIME + i as i64,
            "{name}: mtime downloaded"
        );
    }
}

#[test]
fn mfmt_mff_site_utime_and_chmod_agree_with_mlst_and_the_disk() {
    let d = Daemon::start_with_args(&[(USER, PASS, "roots/alice")], &["--umask", "027"]);
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    let root = d.root(USER);
    let payload = random_bytes_seeded(9, 4_097);
    c.upload("STOR f.bin", &payload);
    let path = root.join("f.bin");
    assert_eq!(
        std::fs::metadata(&path).expect("f.bin").mode() & 0o777,
        0o640,
        "a new file is 0644 minus the umask"
    );
    let mlst = |c: &mut Ctrl| c.expect("MLST f.bin", 250).lines[1].clone();

    let r = c.expect("MFMT 20010203040506 f.bin", 213);
    assert_eq!(r.text(), "Modify=20010203040506; /f.bin");
    assert_eq!(std::fs::metadata(&path).expect("f").mtime(), OLD_MTIME);
    assert!(mlst(&mut c).contains("modify=20010203040506;"));
    c.expect("MFMT 20010203040506.250 f.bin", 213);
    assert_eq!(
        std::fs::metadata(&path).expect("f").mtime_nsec(),
        250_000_000
    );

    c.expect("SITE UTIME 20020304050607 f.bin", 200);
    assert_eq!(c.expect("MDTM f.bin", 213).text(), "20020304050607");
    c.expect(
        "SITE UTIME f.bin 20030405060708 20030405060708 20030405060708 UTC",
        200,
    );
    assert_eq!(c.expect("MDTM f.bin", 213).text(), "20030405060708");

    let r = c.expect("MFF modify=20010203040506;UNIX.mode=0600; f.bin", 213);
    assert_eq!(r.text(), "modify=20010203040506;UNIX.mode=0600; /f.bin");
    let meta = std::fs::metadata(&path).expect("f");
    assert_eq!((meta.mtime(), meta.mode() & 0o777), (OLD_MTIME, 0o600));
    assert!(mlst(&mut c).contains("UNIX.mode=0600;"));

    // CHMOD sets the bits asked for exactly; the umask is for new files only.
    c.expect("SITE CHMOD 664 f.bin", 200);
    assert_eq!(std::fs::metadata(&path).expect("f").mode() & 0o777, 0o664);
    assert!(mlst(&mut c).contains("UNIX.mode=0664;"));
    c.expect("MKD dir", 257);
    c.expect("SITE CHMOD 700 dir", 200);
    assert_eq!(
        std::fs::metadata(root.join("dir")).expect("d").mode() & 0o777,
        0o700
    );

    // Wrong arguments 501, unknown facts 504, missing files 550, unknown SITE verbs 502.
    for (cmd, code) in [
        ("SITE CHMOD 4755 f.bin", 501),
        ("SITE CHMOD 1777 dir", 501),
        ("SITE CHMOD rwx f.bin", 501),
        ("SITE CHMOD 644", 501),
        ("SITE CHMOD 644 nope", 550),
        ("SITE CHMOD 777 /", 550),
        ("MFMT 2001 f.bin", 501),
        ("MFMT 20010230000000 f.bin", 501),
        ("MFMT 20010203040506 nope", 550),
        ("MFF create=20010203040506; f.bin", 504),
        ("MFF modify=x; f.bin", 501),
        ("SITE UTIME 20010203 f.bin", 501),
        ("SITE FROB f.bin", 502),
    ] {
        let r = c.cmd(cmd);
        assert_eq!(r.code, code, "{cmd}: {r:?}");
    }
    // A FIFO (or device) keeps its attributes: only regular files and folders change.
    let fifo = root.join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let before = std::fs::symlink_metadata(&fifo).expect("fifo");
    c.expect("SITE CHMOD 600 fifo", 550);
    c.expect("MFMT 20010203040506 fifo", 550);
    let after = std::fs::symlink_metadata(&fifo).expect("fifo");
    assert_eq!(
        (after.mode(), after.mtime()),
        (before.mode(), before.mtime())
    );
    c.expect("MFMT 20010203040506 /", 550);
    // Nothing above changed the file's bytes.
    c.expect("TYPE I", 200);
    assert_eq!(sha256_hex(&c.download("RETR f.bin")), sha256_hex(&payload));
    let help = c.expect("SITE HELP", 214);
    for verb in ["CHMOD", "UTIME", "HELP"] {
        assert!(help.lines.iter().any(|l| l.contains(verb)), "{help:?}");
    }
    let feat = c.expect("FEAT", 211);
    for want in [
        " MFMT",
        " MFF modify;UNIX.mode;",
        " HASH SHA-256*;SHA-1;MD5;CRC32",
    ] {
        assert!(
            feat.lines.iter().any(|l| l == want),
            "FEAT lacks {want:?}: {feat:?}"
        );
    }
    c.expect("QUIT", 221);
}

#[test]
fn chmod_needs_its_permission_and_is_never_for_anonymous() {
    let tmp = tempfile::TempDir::new().expect("tmp");
    for dir in ["alice", "reader", "pub"] {
        std::fs::create_dir_all(tmp.path().join(dir)).expect("root");
        write_file(&tmp.path().join(dir).join("f.txt"), b"data");
    }
    let hash = |p: &str| toml_string(&actorftpd::auth::hash_password(p).expect("hash"));
    let toml = format!(
        "[[user]]\nname = \"alice\"\npassword_hash = {}\nroot = \"alice\"\n\
         permissions = [\"read\", \"upload\", \"overwrite\"]\n\n\
         [[user]]\nname = \"reader\"\npassword_hash = {}\nroot = \"reader\"\n\
         permissions = [\"read\"]\n\n\
         [anonymous]\nroot = \"pub\"\npermissions = [\"all\"]\n",
        hash("pw"),
        hash("pw"),
    );
    let root = tmp.path().to_path_buf();
    let users = vec![
        ("alice".into(), "pw".into(), root.join("alice")),
        ("reader".into(), "pw".into(), root.join("reader")),
    ];
    let d = Daemon::start_with_users_file(tmp, &toml, &[], users);
    let before = |dir: &str| std::fs::metadata(root.join(dir).join("f.txt")).expect("f");
    let mode_of = |dir: &str| before(dir).mode() & 0o777;

    // alice may replace files (so set their times) but was not granted chmod.
    let mut alice = Ctrl::login(d.addr(), "alice", "pw");
    alice.expect("MFMT 20010203040506 f.txt", 213);
    let mode = mode_of("alice");
    alice.expect("SITE CHMOD 600 f.txt", 550);
    alice.expect("MFF UNIX.mode=0600; f.txt", 550);
    assert_eq!(mode_of("alice"), mode);
    // reader may do neither.
    let mut reader = Ctrl::login(d.addr(), "reader", "pw");
    let mtime = before("reader").mtime();
    reader.expect("MFMT 20010203040506 f.txt", 550);
    reader.expect("SITE UTIME 20010203040506 f.txt", 550);
    assert_eq!(before("reader").mtime(), mtime);
    // Anonymous, even granted "all", never changes a mode.
    let mut anon = Ctrl::login(d.addr(), "anonymous", "guest@example.com");
    let mode = mode_of("pub");
    anon.expect("SITE CHMOD 777 f.txt", 550);
    assert_eq!(mode_of("pub"), mode);
    anon.expect("MFMT 20010203040506 f.txt", 213);
    for c in [&mut alice, &mut reader, &mut anon] {
        c.expect("QUIT", 221);
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Checksums.
// ---------------------------------------------------------------------------------------------

/// Python's ftplib: FEAT, HASH under each OPTS HASH algorithm, RANG, the X-digests, errors;
/// each digest next to the one hashlib/zlib computes over the bytes RETR brought.
const FTPLIB_HASH: &str = r#"
import ftplib, hashlib, sys, zlib
host, port, user, pw, name = sys.argv[1:6]
f = ftplib.FTP()
f.connect(host, int(port), timeout=30)
f.login(user, pw)
def rec(*v):
    print("\t".join(str(x) for x in v), flush=True)
def code(cmd):
    try:
        return f.sendcmd(cmd)[:3]
    except ftplib.all_errors as e:
        return str(e)[:3]
feat = [l.strip() for l in f.sendcmd("FEAT").splitlines() if l.startswith(" HASH")]
rec("feat", feat[0] if feat else "")
buf = bytearray()
f.retrbinary("RETR " + name, buf.extend)
data = bytes(buf)
rec("retr_sha256", hashlib.sha256(data).hexdigest())
local = {
    "SHA-256": hashlib.sha256(data).hexdigest(),
    "SHA-1": hashlib.sha1(data).hexdigest(),
    "MD5": hashlib.md5(data).hexdigest(),
    "CRC32": "%08x" % (zlib.crc32(data) & 0xffffffff),
}
rec("default", f.sendcmd("HASH " + name))
for algo in ["SHA-1", "MD5", "CRC32", "SHA-256"]:
    rec("opts", algo, f.sendcmd("OPTS HASH " + algo))
    rec("hash", algo, f.sendcmd("HASH " + name), local[algo])
rec("opts_query", f.sendcmd("OPTS HASH"))
rec("rang", f.sendcmd("RANG 10 100"))
rec("ranged", f.sendcmd("HASH " + name), hashlib.sha256(data[10:100]).hexdigest())
rec("after_rang", f.sendcmd("HASH " + name))
for verb, algo in [("XSHA256", "SHA-256"), ("XSHA1", "SHA-1"), ("XMD5", "MD5"), ("XCRC", "CRC32")]:
    rec("x", verb, f.sendcmd(verb + " " + name), local[algo])
rec("x_range", f.sendcmd("XSHA256 " + name + " 5 50"), hashlib.sha256(data[5:50]).hexdigest())
rec("err", "missing", code("HASH no-such-file"))
rec("err", "folder", code("HASH sub"))
rec("err", "algo", code("OPTS HASH SHA-512"))
rec("err", "bad_rang", code("RANG 9 3"))
rec("err", "rang_then_retr", code("RANG 0 9") + code("RETR " + name))
rec("err", "offset", code("XCRC " + name + " 999999999"))
f.quit()
"#;

#[test]
fn ftplib_hash_and_x_digests_match_the_bytes_retr_sends() {
    let Some(d) = daemon_if_tool("python3", USER, PASS) else {
        return;
    };
    let root = d.root(USER);
    let data = random_bytes_seeded(18, 3 * MIB + 5);
    write_file(&root.join("data file.bin"), &data);
    std::fs::create_dir_all(root.join("sub")).expect("sub");
    let script = d.tmp().join("hash.py");
    std::fs::write(&script, FTPLIB_HASH).expect("script");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(d.addr().ip().to_string())
        .arg(d.port().to_string())
        .args([USER, PASS, "data file.bin"]);
    let out = run_with_timeout(&mut cmd, CLIENT_DEADLINE);
    out.assert_success("ftplib HASH script");
    let r = Records::parse(&out.stdout_text());

    let sha = sha256_hex(&data);
    assert_eq!(r.one("retr_sha256"), sha, "RETR bytes");
    assert_eq!(r.one("feat"), "HASH SHA-256*;SHA-1;MD5;CRC32");
    let size = data.len();
    assert_eq!(
        r.one("default"),
        format!("213 SHA-256 0-{size} {sha} /data file.bin")
    );
    for rec in r.all("hash") {
        let (algo, reply, local) = (&rec[0], &rec[1], &rec[2]);
        assert_eq!(
            reply,
            &format!("213 {algo} 0-{size} {local} /data file.bin"),
            "HASH under OPTS HASH {algo}"
        );
    }
    for rec in r.all("opts") {
        assert_eq!(rec[1], format!("200 {}", rec[0]));
    }
    assert_eq!(r.one("opts_query"), "200 SHA-256");
    assert!(r.one("rang").starts_with("350"), "{r:?}");
    let ranged = &r.all("ranged")[0];
    assert_eq!(
        ranged[0],
        format!("213 SHA-256 10-100 {} /data file.bin", ranged[1])
    );
    assert_eq!(ranged[1], sha256_hex(&data[10..100]));
    // The range was for one HASH only.
    assert_eq!(
        r.one("after_rang"),
        format!("213 SHA-256 0-{size} {sha} /data file.bin")
    );
    for rec in r.all("x") {
        let (verb, reply, local) = (&rec[0], &rec[1], &rec[2]);
        assert_eq!(reply.to_ascii_lowercase(), format!("250 {local}"), "{verb}");
    }
    let x_range = &r.all("x_range")[0];
    assert_eq!(x_range[0], format!("250 {}", x_range[1]));
    let errors: Vec<(String, String)> = r
        .all("err")
        .iter()
        .map(|e| (e[0].clone(), e[1].clone()))
        .collect();
    let want = [
        ("missing", "550"),
        ("folder", "550"),
        ("algo", "504"),
        ("bad_rang", "501"),
        ("rang_then_retr", "350504"),
        ("offset", "554"),
    ];
    for (what, code) in want {
        assert!(
            errors.iter().any(|(w, c)| w == what && c == code),
            "{what}: want {code} in {errors:?}"
        );
    }
    // Hashing read the file; it did not change it.
    assert_file_holds(&root.join("data file.bin"), &data, "hashed file");
}

// ---------------------------------------------------------------------------------------------
// 4. Every file name.
// ---------------------------------------------------------------------------------------------

/// ftplib with `encoding = "latin-1"`: every byte is one character, so the names NLST gives are
/// the bytes on the wire and go back the same way in RETR.
const FTPLIB_RAW_NAMES: &str = r#"
import ftplib, hashlib, sys
host, port, user, pw = sys.argv[1:5]
f = ftplib.FTP(encoding="latin-1")
f.connect(host, int(port), timeout=30)
f.login(user, pw)
for name in sorted(f.nlst()):
    buf = bytearray()
    f.retrbinary("RETR " + name, buf.extend)
    print("file\t%s\t%s" % (name.encode("latin-1").hex(), hashlib.sha256(bytes(buf)).hexdigest()), flush=True)
lines = []
f.retrlines("LIST", lines.append)
for l in lines:
    print("list\t%s" % l.encode("latin-1").hex(), flush=True)
f.quit()
"#;

#[test]
fn names_that_are_not_utf8_are_listed_as_their_bytes_and_retrievable_with_ftplib() {
    let Some(d) = daemon_if_tool("python3", USER, PASS) else {
        return;
    };
    let root = d.root(USER);
    let names: [&[u8]; 4] = [
        b"caf\xe9.txt",
        // 0xFF is Telnet's IAC: ftplib does not double it, and the server takes it as data
        // when no Telnet command byte follows.
        b"\xff raw \xe9.bin",
        "ünïcödé.txt".as_bytes(),
        b"plain.txt",
    ];
    let mut want = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let data = random_bytes_seeded(50 + i as u64, 1000 * (i + 1) + 7);
        write_file(&root.join(raw(name)), &data);
        want.push((hex(name), sha256_hex(&data)));
    }
    want.sort();
    let script = d.tmp().join("raw.py");
    std::fs::write(&script, FTPLIB_RAW_NAMES).expect("script");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(d.addr().ip().to_string())
        .arg(d.port().to_string())
        .args([USER, PASS]);
    let out = run_with_timeout(&mut cmd, CLIENT_DEADLINE);
    out.assert_success("ftplib raw names");
    let r = Records::parse(&out.stdout_text());
    let mut got: Vec<(String, String)> = r
        .all("file")
        .iter()
        .map(|f| (f[0].clone(), f[1].clone()))
        .collect();
    got.sort();
    assert_eq!(got, want, "NLST names and RETR bytes");
    let lines = r.all("list");
    assert_eq!(lines.len(), names.len());
    for name in names {
        assert!(
            lines.iter().any(|l| l[0].ends_with(&hex(name))),
            "LIST shows {:?} as its bytes",
            String::from_utf8_lossy(name)
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A download whose command line holds raw bytes.
fn download_raw(c: &mut Ctrl, line: &[u8]) -> Vec<u8> {
    let data = c.epsv();
    let mut with_crlf = line.to_vec();
    with_crlf.extend_from_slice(b"\r\n");
    c.send_raw(&with_crlf);
    c.expect_reply(150);
    let mut got = Vec::new();
    let mut data = data;
    std::io::Read::read_to_end(&mut data, &mut got).expect("read data");
    c.expect_reply(226);
    got
}

fn raw_cmd(c: &mut Ctrl, line: &[u8]) -> Resp {
    let mut with_crlf = line.to_vec();
    with_crlf.extend_from_slice(b"\r\n");
    c.send_raw(&with_crlf);
    c.reply()
}

#[test]
fn raw_names_work_in_every_command_but_new_names_stay_utf8() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    let dir = root.join(raw(b"d\xe9j\xe0"));
    let data = random_bytes_seeded(77, 5_000);
    write_file(&dir.join(raw(b"x\xff.bin")), &data);

    // MLSD sends the bytes; replies on the control connection stay UTF-8 (rawftp checks every
    // reply line) and show U+FFFD.
    let mlsd = c.download("MLSD");
    assert!(mlsd.windows(4).any(|w| w == b"d\xe9j\xe0"), "MLSD bytes");
    let r = raw_cmd(&mut c, b"CWD d\xe9j\xe0");
    assert_eq!(r.code, 250, "{r:?}");
    assert_eq!(
        c.expect("PWD", 257).text(),
        "\"/d\u{FFFD}j\u{FFFD}\" is the current directory"
    );
    assert_eq!(
        sha256_hex(&download_raw(&mut c, b"RETR x\xff.bin")),
        sha256_hex(&data)
    );
    assert_eq!(raw_cmd(&mut c, b"SIZE x\xff.bin").text(), "5000");
    assert!(c
        .expect("STAT .", 213)
        .lines
        .iter()
        .any(|l| l.ends_with("x\u{FFFD}.bin")));
    // A new name must be UTF-8 (501); renaming a raw name to a UTF-8 one fixes it.
    assert_eq!(raw_cmd(&mut c, b"MKD new\xe9").code, 501);
    let r = raw_cmd(&mut c, b"STOR up\xe9.bin");
    assert_eq!(r.code, 501, "{r:?}");
    assert_eq!(raw_cmd(&mut c, b"RNFR x\xff.bin").code, 350);
    c.expect("RNTO fixed.bin", 250);
    assert_file_holds(&dir.join("fixed.bin"), &data, "renamed from a raw name");
    assert_eq!(names_in(&dir), vec![b"fixed.bin".to_vec()]);
    c.expect("CWD /", 250);
    assert_eq!(raw_cmd(&mut c, b"RMD d\xe9j\xe0").code, 550, "not empty");
    c.expect("DELE d\u{FFFD}j\u{FFFD}/fixed.bin", 550);
    assert_eq!(raw_cmd(&mut c, b"DELE d\xe9j\xe0/fixed.bin").code, 250);
    assert_eq!(raw_cmd(&mut c, b"RMD d\xe9j\xe0").code, 250);
    assert!(names_in(&root).is_empty());
    c.expect("QUIT", 221);
}

// ---------------------------------------------------------------------------------------------
// 5. Dotfiles.
// ---------------------------------------------------------------------------------------------

fn listed(c: &mut Ctrl, cmd: &str) -> Vec<String> {
    let mut names: Vec<String> = c
        .listing(cmd)
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.rsplit(' ').next().unwrap_or(l).to_owned())
        .collect();
    names.sort();
    names
}

fn with_dotfiles(root: &Path) {
    for name in [".profile", "visible.txt", ".git/config"] {
        write_file(&root.join(name), name.as_bytes());
    }
}

#[test]
fn dotfiles_are_hidden_unless_list_a_asks() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    with_dotfiles(&d.root(USER));
    let all = [".git", ".profile", "visible.txt"];
    assert_eq!(listed(&mut c, "LIST"), ["visible.txt"]);
    assert_eq!(listed(&mut c, "NLST"), ["visible.txt"]);
    assert_eq!(listed(&mut c, "LIST -l"), ["visible.txt"]);
    assert_eq!(listed(&mut c, "LIST -a"), all);
    assert_eq!(listed(&mut c, "LIST -la"), all);
    assert_eq!(listed(&mut c, "NLST -a"), all);
    assert_eq!(listed(&mut c, "LIST -a /"), all);
    // MLSD is for programs: every entry. A dotfile is hidden, not secret.
    let mlsd = c.listing("MLSD");
    assert!(
        mlsd.contains(" .profile\r\n") && mlsd.contains(" .git\r\n"),
        "{mlsd}"
    );
    assert_eq!(c.download("RETR .profile"), b".profile");
    let stat = c.expect("STAT .", 213);
    assert!(
        !stat.lines.iter().any(|l| l.ends_with(".profile")),
        "{stat:?}"
    );
    c.expect("QUIT", 221);

    // curl lists a folder with LIST (and NLST for -l): the dotfile is not there either.
    if require_tool("curl") {
        for extra in [&[][..], &["-l"][..]] {
            let mut args = extra.to_vec();
            let url = format!("ftp://{}:{}/", d.addr().ip(), d.port());
            args.push(&url);
            let out = curl_as(USER, PASS, &args);
            out.assert_success("curl listing");
            let text = out.stdout_text();
            assert!(
                text.contains("visible.txt") && !text.contains(".profile"),
                "{text}"
            );
        }
    }
}

#[test]
fn show_dotfiles_from_the_command_line_or_the_config_file_lists_them() {
    let d = Daemon::start_with_args(&[(USER, PASS, "roots/alice")], &["--show-dotfiles"]);
    with_dotfiles(&d.root(USER));
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    assert_eq!(listed(&mut c, "LIST"), [".git", ".profile", "visible.txt"]);
    c.expect("QUIT", 221);

    let conf = tempfile::TempDir::new().expect("tmp");
    let file = conf.path().join("actorftpd.toml");
    std::fs::write(&file, "show_dotfiles = true\n").expect("config");
    let config = file.to_str().expect("utf-8").to_owned();
    let d = Daemon::start_with_args(&[(USER, PASS, "roots/alice")], &["--config", &config]);
    with_dotfiles(&d.root(USER));
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    assert_eq!(listed(&mut c, "NLST"), [".git", ".profile", "visible.txt"]);
    c.expect("QUIT", 221);
}

#[test]
fn hash_of_a_huge_file_is_refused_but_its_ranges_are_served() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    // A sparse 5 GiB file: over the 4 GiB a single HASH may read, yet costs no disk.
    let big = d.root(USER).join("huge.img");
    let f = std::fs::File::create(&big).expect("create");
    let size: u64 = 5 * 1024 * 1024 * 1024;
    f.set_len(size).expect("sparse");
    let r = c.expect("HASH huge.img", 550);
    assert!(r.text().contains("RANG"), "{r:?}");
    c.expect("RANG 0 1048576", 350);
    let zeros = vec![0u8; MIB];
    let r = c.expect("HASH huge.img", 213);
    assert_eq!(
        r.text(),
        format!("SHA-256 0-1048576 {} /huge.img", sha256_hex(&zeros))
    );
    // A range near the end, with the X-form's offsets: CRC-32 of 120 zero bytes.
    let r = c.expect(&format!("XCRC huge.img {} {size}", size - 120), 250);
    assert_eq!(r.text(), format!("{:08X}", crc32(&zeros[..120])));
    c.expect("QUIT", 221);
}

/// Bitwise CRC-32 (IEEE), independent of the server's table.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
