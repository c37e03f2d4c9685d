//! The FileStore's own rules, against the real daemon: each test tries to get past one of them
//! (overwrite without the permission by racing two uploads, reaching an upload's temporary
//! file, leaving one behind by killing the daemon or filling the disk, learning where a symlink
//! outside the root points) and checks the replies and what is on disk afterwards.

mod common;
mod rawftp;

use common::{
    assert_file_holds, dir_names, file_sha256, random_bytes_seeded, sha256_hex, Daemon, KIB, MIB,
};
use rawftp::{write_all_close, Ctrl};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An upload temporary name as the daemon makes them (`.actorftpd-upload-<16 hex>.part`).
const TEMP: &str = ".actorftpd-upload-0123456789abcdef.part";

/// The reply to an upload whose name was taken while it ran, by a user who may not overwrite:
/// 553, file name not allowed (RFC 959), as STOR onto an existing name is refused.
const NAME_TAKEN_MEANWHILE: [u16; 1] = [553];

/// Upload temporary files anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.starts_with(".actorftpd-upload-") {
            out.push(path.clone());
        }
        if path.is_dir() && !path.is_symlink() {
            out.extend(temp_files(&path));
        }
    }
    out
}

/// One user `alice` (password `pw`) with these permissions, served from `<tmp>/srv`.
fn daemon_with_permissions(permissions: &[&str]) -> Daemon {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("srv");
    std::fs::create_dir(&root).expect("root");
    let hash = actorftpd::auth::hash_password("pw").expect("hash");
    let list: Vec<String> = permissions.iter().map(|p| format!("{p:?}")).collect();
    let toml = format!(
        "[[user]]\nname = \"alice\"\npassword_hash = \"{hash}\"\nroot = \"srv\"\n\
         permissions = [{}]\n",
        list.join(", ")
    );
    Daemon::start_with_users_file(tmp, &toml, &[], vec![("alice".into(), "pw".into(), root)])
}

/// Hole 1: the permission was checked when the first STOR opened, and the name was free then;
/// a second session stores the same name meanwhile. The first upload's end must not replace it.
#[test]
fn upload_without_overwrite_never_replaces_a_file_stored_meanwhile() {
    let d = daemon_with_permissions(&["read", "upload"]);
    let root = d.root("alice");
    let first = random_bytes_seeded(1, 3 * MIB);
    let second = random_bytes_seeded(2, MIB + 5);

    let mut s1 = Ctrl::login(d.addr(), "alice", "pw");
    let mut data1 = s1.epsv();
    s1.expect("STOR x", 150);
    data1.write_all(&first[..MIB]).expect("first part");

    let mut s2 = Ctrl::login(d.addr(), "alice", "pw");
    s2.upload("STOR x", &second);
    assert_file_holds(&root.join("x"), &second, "");

    write_all_close(data1, &first[MIB..]);
    let end = s1.reply();
    assert!(
        NAME_TAKEN_MEANWHILE.contains(&end.code),
        "the first upload must fail, not replace the file: {end}"
    );
    assert_file_holds(
        &root.join("x"),
        &second,
        "x still holds the second session's upload",
    );
    assert_eq!(dir_names(&root), ["x"], "no temporary file is left");

    // The early answer still comes at the open, and both sessions carry on.
    let _ = s1.epsv_port();
    s1.expect("STOR x", 550);
    s2.expect("NOOP", 200);
    assert_eq!(s1.download("RETR x"), second);
}

/// Hole 6: a temporary file (planted here, as a crash or a running upload leaves one) cannot be
/// seen, read, renamed, deleted, replaced or created by any command.
#[test]
fn upload_temp_files_are_invisible_to_every_command() {
    let d = Daemon::start(&[("alice", "pw")]);
    let root = d.root("alice");
    let planted = random_bytes_seeded(3, 70 * KIB);
    let real = random_bytes_seeded(4, 1000);
    common::write_file(&root.join(TEMP), &planted);
    common::write_file(&root.join("sub").join(TEMP), &planted);
    common::write_file(
        &root.join(TEMP.replace("abcdef", "000000")).join("inner"),
        &planted,
    );
    common::write_file(&root.join("real.bin"), &real);
    let upper = TEMP.to_ascii_uppercase();
    let dir_temp = TEMP.replace("abcdef", "000000");
    let mut c = Ctrl::login(d.addr(), "alice", &d.password("alice"));

    for listing in [
        c.listing("LIST"),
        c.listing("LIST -a"),
        c.listing("NLST"),
        c.listing("MLSD"),
        c.listing("LIST sub"),
        c.listing("MLSD sub"),
        c.expect("STAT /", 213).lines.join("\n"),
        c.expect("STAT sub", 213).lines.join("\n"),
    ] {
        assert!(!listing.contains("actorftpd-upload"), "{listing}");
    }

    let below = format!("{dir_temp}/inner");
    let sub_temp = format!("sub/{TEMP}");
    let slash_temp = format!("/{TEMP}");
    for path in [TEMP, &slash_temp, &sub_temp, &upper, &dir_temp, &below] {
        for verb in ["MLST", "STAT", "SIZE", "MDTM", "RNFR", "DELE", "CWD", "RMD"] {
            c.expect(&format!("{verb} {path}"), 550);
        }
        let _ = c.epsv_port();
        c.expect(&format!("RETR {path}"), 550);
        for verb in ["STOR", "APPE"] {
            let _ = c.epsv_port();
            c.expect(&format!("{verb} {path}"), 553);
        }
        c.expect(&format!("MKD {path}"), 553);
        c.expect("RNFR real.bin", 350);
        c.expect(&format!("RNTO {path}"), 553);
    }
    assert!(
        c.expect("PWD", 257).text().starts_with("\"/\""),
        "CWD went nowhere"
    );
    assert_eq!(c.download("RETR real.bin"), real);

    for path in [
        root.join(TEMP),
        root.join("sub").join(TEMP),
        root.join(&dir_temp).join("inner"),
    ] {
        assert_eq!(
            file_sha256(&path),
            sha256_hex(&planted),
            "{}",
            path.display()
        );
    }
    let mut want = vec![
        TEMP.to_owned(),
        dir_temp.clone(),
        "real.bin".into(),
        "sub".into(),
    ];
    want.sort();
    assert_eq!(dir_names(&root), want);
    assert_file_holds(&root.join("real.bin"), &real, "");
}

/// Hole 6: SIGKILL in the middle of a STOR that replaces a file leaves its temporary file; the
/// next start removes it, and the file it would have replaced is intact.
#[test]
fn a_killed_upload_leaves_no_temp_file_once_the_daemon_restarts() {
    let keep = tempfile::tempdir().expect("tmp");
    let root = keep.path().join("srv");
    let original = random_bytes_seeded(5, 300 * KIB);
    common::write_file(&root.join("sub/x"), &original);
    let root_text = root.to_str().expect("utf8").to_owned();
    let users = [("alice", "pw", root_text.as_str())];

    let d = Daemon::start_with_roots(&users);
    let mut c = Ctrl::login(d.addr(), "alice", &d.password("alice"));
    let mut data = c.epsv();
    c.expect("STOR sub/x", 150);
    data.write_all(&random_bytes_seeded(6, 4 * MIB))
        .expect("upload part");
    // The 150 comes after the temporary file is created.
    let left = temp_files(&root);
    assert_eq!(left.len(), 1, "one upload in flight: {left:?}");
    drop(d); // SIGKILL, then reaped.
    assert!(left[0].exists(), "the crash left the temporary file");
    assert_file_holds(&root.join("sub/x"), &original, "");

    let d = Daemon::start_with_roots(&users);
    assert_eq!(temp_files(&root), Vec::<PathBuf>::new(), "swept at start");
    assert_eq!(dir_names(&root.join("sub")), ["x"]);
    assert_file_holds(&root.join("sub/x"), &original, "");
    let mut c = Ctrl::login(d.addr(), "alice", &d.password("alice"));
    assert_eq!(sha256_hex(&c.download("RETR sub/x")), sha256_hex(&original));
}

/// Unmounts a test's tmpfs when dropped (lazily, so a failing test cannot leave it busy).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A 1 MiB tmpfs, or `None` (with a loud line) where this process may not mount one.
fn small_tmpfs(at: &Path) -> Option<Mount> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: the disk-full test mounts a tmpfs, which needs root");
        return None;
    }
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: mounting a tmpfs failed (no CAP_SYS_ADMIN in this container?)");
        return None;
    }
    Some(Mount(at.to_path_buf()))
}

/// Hole 6: a disk that fills up during STOR gets 452; the file being replaced is intact and the
/// temporary file is gone.
#[test]
fn a_full_disk_gets_452_and_leaves_the_original_and_no_temp_file() {
    let keep = tempfile::tempdir().expect("tmp");
    let Some(_mount) = small_tmpfs(keep.path()) else {
        return;
    };
    let root = keep.path().join("srv");
    let original = random_bytes_seeded(7, 100 * KIB);
    common::write_file(&root.join("x"), &original);
    let root_text = root.to_str().expect("utf8").to_owned();
    // Declared after the mount: the daemon is killed before the unmount.
    let d = Daemon::start_with_roots(&[("alice", "pw", root_text.as_str())]);
    let mut c = Ctrl::login(d.addr(), "alice", &d.password("alice"));
    let mut data = c.epsv();
    c.expect("STOR x", 150);
    // The server may close the data connection as soon as the disk is full.
    let _ = data.write_all(&random_bytes_seeded(8, 3 * MIB));
    drop(data);
    c.expect_reply(452);
    assert_file_holds(&root.join("x"), &original, "");
    assert_eq!(dir_names(&root), ["x"]);
    c.expect("NOOP", 200);
}

/// Hole 10: a symlink leading outside the root is listed without its target (LIST and STAT);
/// one that stays inside is shown as `name -> target`.
#[test]
fn listings_never_show_where_a_link_outside_the_root_points() {
    let d = Daemon::start(&[("alice", "pw")]);
    let root = d.root("alice");
    let secret = d.tmp().join("outside-secret.txt");
    common::write_file(&secret, b"secret");
    common::write_file(&root.join("sub/file"), b"inside");
    symlink(&secret, root.join("abs-link")).expect("symlink");
    symlink("../../outside-secret.txt", root.join("rel-link")).expect("symlink");
    symlink("../../x", root.join("sub/up-link")).expect("symlink");
    symlink("sub/file", root.join("in-link")).expect("symlink");
    symlink("../in-link", root.join("sub/back-link")).expect("symlink");
    let mut c = Ctrl::login(d.addr(), "alice", &d.password("alice"));

    let outside_texts = [
        secret.to_str().expect("utf8").to_owned(),
        "outside-secret".to_owned(),
        "../../".to_owned(),
    ];
    let views = [
        ("LIST", c.listing("LIST")),
        ("LIST sub", c.listing("LIST sub")),
        ("STAT /", c.expect("STAT /", 213).lines.join("\n")),
        ("STAT sub", c.expect("STAT sub", 213).lines.join("\n")),
        ("MLSD", c.listing("MLSD")),
        ("NLST", c.listing("NLST")),
    ];
    for (what, text) in &views {
        for bad in &outside_texts {
            assert!(
                !text.contains(bad.as_str()),
                "{what} shows {bad:?}:\n{text}"
            );
        }
        for name in ["abs-link", "rel-link", "up-link"] {
            if let Some(line) = text.lines().find(|l| l.contains(name)) {
                assert!(line.trim_end().ends_with(name), "{what}: {line:?}");
            }
        }
    }
    for (what, text) in &views[..4] {
        let inside = if what.ends_with("sub") {
            " back-link -> ../in-link"
        } else {
            " in-link -> sub/file"
        };
        assert!(text.contains(inside), "{what} shows {inside:?}:\n{text}");
        for line in text.lines().filter(|l| l.contains("-link")) {
            assert!(line.trim_start().starts_with('l'), "{what}: {line:?}");
        }
    }
    // The links themselves are as they were.
    assert_eq!(
        std::fs::read_link(root.join("abs-link")).expect("link"),
        secret
    );
    assert_file_holds(&secret, b"secret", "");
}
