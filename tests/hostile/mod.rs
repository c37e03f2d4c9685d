//! The fixture shared by the hostile-client tests (tests/hostile_*.rs), against the real daemon.
//!
//! Every scenario starts its own `actorftpd` on a fresh temporary tree laid out like this:
//!
//! ```text
//! <base>/CANARY-parent.txt                       canaries in the parent area
//! <base>/UNSEEN-parent-marker
//! <base>/tree/users.toml                         (holds a canary comment too)
//! <base>/tree/CANARY-next-to-root.txt            canaries next to the root
//! <base>/tree/UNSEEN-tree-marker
//! <base>/tree/outside-dir/{CANARY-in-outside-dir.txt, UNSEEN-outside-dir-marker}
//! <base>/tree/outside-empty/
//! <base>/tree/srv/                               alice's root: decoys, and symlinks leading out
//! <base>/tree/srv2/{CANARY-sibling.txt, UNSEEN-sibling-marker}   bob's root, the sibling `srv2`
//! ```
//!
//! and ends with the same checks ([`Fixture::finish`]): a normal client still logs in and moves a
//! file byte-exact, and nothing outside alice's root changed. "Changed" is judged from metadata
//! that the test itself never disturbs (entries, kinds, sizes, inodes, link counts, modes, mtimes,
//! ctimes, and the atime of every file outside the root where the file system records reads),
//! then from the files' contents.
//!
//! Canary *contents* hold the token `CANARY SECRET`, and `UNSEEN-` names are never mentioned by
//! any client: finding either in a reply or in data received means something outside the root
//! was read or listed. No test sleeps: waits are for the server's answer with a deadline, or a
//! poll of an observable condition with a deadline.

// Each hostile test binary uses a different part of the fixture.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::{self, FileTimes};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use crate::common::*;
use crate::rawftp::Ctrl;

pub const ALICE: (&str, &str) = ("alice", "alice-pass");
pub const BOB: (&str, &str) = ("bob", "bob-pass");

/// How long any one reply, connect or data read may take before the test fails.
pub const IO_DEADLINE: Duration = Duration::from_secs(10);
/// Another loopback address: another client, or the target of a bounce attempt.
pub const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// Found in every canary's content; must never reach a client.
const SECRET: &str = "CANARY SECRET";
/// Prefix of names that exist outside the root and that no client ever mentions.
const UNSEEN: &str = "UNSEEN-";
/// Canary sizes (all distinct, below the ephemeral port range so no port number looks like one).
const CANARY_SIZES: [usize; 4] = [13_331, 17_171, 23_232, 29_292];
/// Canary atime (2001-01-01) and mtime (2002-02-02), UTC. atime < mtime makes a `relatime`
/// mount record the next read.
const CANARY_ATIME: u64 = 978_307_200;
const CANARY_MTIME: u64 = 1_012_608_000;
/// How the canary mtime shows in MDTM/MLSx and in LIST.
const CANARY_DATE_TOKENS: [&str; 2] = ["20020202", "Feb  2  2002"];
/// A line of the real /etc/passwd.
const PASSWD_TOKEN: &str = "root:x:0:0";

// ---------------------------------------------------------------------------------------------
// The fixture: the tree, the daemon, and the "still serves, nothing outside touched" checks.
// ---------------------------------------------------------------------------------------------

/// Metadata of one entry outside the root, as far as the test can read it without changing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    kind: &'static str,
    len: u64,
    ino: u64,
    nlink: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
    /// Regular files only (reading a directory to walk it updates its own atime).
    atime: Option<(i64, i64)>,
    link: Option<PathBuf>,
}

pub struct Fixture {
    pub daemon: Daemon,
    pub base: PathBuf,
    pub tree: PathBuf,
    pub root: PathBuf,
    pub users_file: PathBuf,
    /// Every regular file outside the root and its content.
    pub contents: BTreeMap<PathBuf, Vec<u8>>,
    pub links: Vec<(&'static str, PathBuf)>,
    pub before: BTreeMap<PathBuf, Meta>,
    pub atime_recorded: bool,
    pub health_runs: AtomicUsize,
}

pub fn canary_bytes(tag: &str, size: usize) -> Vec<u8> {
    format!("{SECRET} {tag} ")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(size)
        .collect()
}

pub fn epoch(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Fixture {
    /// Builds the tree and starts the daemon with `extra` options.
    pub fn start(extra: &[&str]) -> Fixture {
        let tmp = TempDir::new().expect("temporary directory");
        let base = tmp.path().to_path_buf();
        let tree = base.join("tree");
        let root = tree.join("srv");
        let sibling = tree.join("srv2");
        for dir in [&root, &sibling, &tree.join("outside-empty")] {
            fs::create_dir_all(dir).expect("create directory");
        }
        let mut contents = BTreeMap::new();
        let mut put_file = |rel: &str, data: Vec<u8>| {
            write_file(&base.join(rel), &data);
            contents.insert(base.join(rel), data);
        };
        put_file("CANARY-parent.txt", canary_bytes("parent", CANARY_SIZES[0]));
        put_file("UNSEEN-parent-marker", canary_bytes("parent marker", 77));
        put_file(
            "tree/CANARY-next-to-root.txt",
            canary_bytes("next to root", CANARY_SIZES[1]),
        );
        put_file("tree/UNSEEN-tree-marker", canary_bytes("tree marker", 78));
        put_file(
            "tree/outside-dir/CANARY-in-outside-dir.txt",
            canary_bytes("outside dir", CANARY_SIZES[2]),
        );
        put_file(
            "tree/outside-dir/UNSEEN-outside-dir-marker",
            canary_bytes("outside dir marker", 79),
        );
        put_file(
            "tree/srv2/CANARY-sibling.txt",
            canary_bytes("sibling root", CANARY_SIZES[3]),
        );
        put_file(
            "tree/srv2/UNSEEN-sibling-marker",
            canary_bytes("sibling marker", 80),
        );
        let users = format!(
            "# {SECRET} users file, {UNSEEN}users-file-marker\n\
             [[user]]\nname = \"{}\"\npassword_hash = \"{}\"\nroot = {}\n\n\
             [[user]]\nname = \"{}\"\npassword_hash = \"{}\"\nroot = {}\n",
            ALICE.0,
            actorftpd::auth::hash_password(ALICE.1).expect("hash"),
            toml_string(root.to_str().expect("UTF-8 temp path")),
            BOB.0,
            actorftpd::auth::hash_password(BOB.1).expect("hash"),
            toml_string(sibling.to_str().expect("UTF-8 temp path")),
        );
        put_file("tree/users.toml", users.into_bytes());
        let users_file = tree.join("users.toml");

        let links: Vec<(&'static str, PathBuf)> = vec![
            ("link-file", "../CANARY-next-to-root.txt".into()),
            ("link-file-abs", tree.join("CANARY-next-to-root.txt")),
            ("link-dir", "../outside-dir".into()),
            ("link-dir-abs", tree.join("outside-dir")),
            ("link-sibling", "../srv2".into()),
            ("link-parent", "../..".into()),
            ("link-empty", "../outside-empty".into()),
            // Dangling: following them with O_CREAT would create a file outside.
            ("link-dangling", "../created-through-dangling-link".into()),
            ("link-dangling-abs", tree.join("created-through-abs-link")),
        ];

        let mut args: Vec<OsString> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--users".into(),
            users_file.clone().into(),
        ];
        if std::env::var_os("ACTORFTPD_TEST_LOG").is_none() {
            args.push("-q".into());
        }
        args.extend(extra.iter().map(OsString::from));
        let table = vec![
            (ALICE.0.to_owned(), ALICE.1.to_owned(), root.clone()),
            (BOB.0.to_owned(), BOB.1.to_owned(), sibling.clone()),
        ];
        let daemon = Daemon::start_custom(tmp, &args, table);

        // The daemon has read its users file: from now on nothing outside the root may be read.
        let times = FileTimes::new()
            .set_accessed(epoch(CANARY_ATIME))
            .set_modified(epoch(CANARY_MTIME));
        for path in contents.keys() {
            fs::File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_times(times))
                .unwrap_or_else(|e| panic!("set times of {}: {e}", path.display()));
        }
        let atime_recorded = atime_is_recorded(&base);

        let mut fx = Fixture {
            daemon,
            base,
            tree,
            root,
            users_file,
            contents,
            links,
            before: BTreeMap::new(),
            atime_recorded,
            health_runs: AtomicUsize::new(0),
        };
        fx.prepare_root();
        fx.before = fx.snapshot();
        fx
    }

    pub fn addr(&self) -> SocketAddr {
        self.daemon.addr()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A raw control connection logged in as `user` (TYPE I).
    pub fn login(&self, (user, pass): (&str, &str)) -> Ctrl {
        Ctrl::login(self.addr(), user, pass)
    }

    /// (Re)creates the root's decoys and symlinks, whatever a previous command did to them.
    pub fn prepare_root(&self) {
        for dir in ["sub", "etc"] {
            ensure_real_dir(&self.root.join(dir));
        }
        ensure_file(
            &self.root.join("hello.txt"),
            b"hello from inside the root\n",
        );
        ensure_file(
            &self.root.join("etc/passwd"),
            b"decoy: <root>/etc/passwd, inside the jail\n",
        );
        for (name, target) in &self.links {
            let path = self.root.join(name);
            let ok = fs::read_link(&path).is_ok_and(|t| &t == target);
            if !ok {
                remove_any(&path);
                symlink(target, &path)
                    .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
            }
        }
    }

    /// Metadata of everything under `base` except the inside of alice's root.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Meta> {
        let mut out = BTreeMap::new();
        self.walk(&self.base, &mut out);
        out
    }

    pub fn walk(&self, dir: &Path, out: &mut BTreeMap<PathBuf, Meta>) {
        let m = fs::symlink_metadata(dir).expect("stat directory");
        out.insert(dir.to_path_buf(), meta_of(&m, None));
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            let m = fs::symlink_metadata(&path).expect("stat entry");
            if path == self.root {
                // Only its identity: the root's own times change with everything inside it.
                let mut id = meta_of(&m, None);
                (id.len, id.nlink, id.mtime, id.ctime) = (0, 0, (0, 0), (0, 0));
                out.insert(path, id);
            } else if m.is_dir() {
                self.walk(&path, out);
            } else {
                let link = m.is_symlink().then(|| fs::read_link(&path).expect("link"));
                out.insert(path, meta_of(&m, link));
            }
        }
    }

    /// Nothing outside the root was created, removed, renamed, written or (where the file
    /// system records atime) read.
    #[track_caller]
    pub fn assert_outside_untouched(&self, what: &str) {
        let now = self.snapshot();
        if now == self.before {
            return;
        }
        let mut diff = Vec::new();
        for (path, old) in &self.before {
            match now.get(path) {
                None => diff.push(format!("removed: {}", path.display())),
                Some(new) if new != old => diff.push(format!(
                    "changed: {}\n  was {old:?}\n  now {new:?}",
                    path.display()
                )),
                Some(_) => {}
            }
        }
        for path in now.keys().filter(|p| !self.before.contains_key(*p)) {
            diff.push(format!("created: {}", path.display()));
        }
        panic!(
            "{what}: something outside the user's root changed:\n{}",
            diff.join("\n")
        );
    }

    /// A normal client logs in, uploads and downloads a file byte-exact (sha256), and deletes it.
    #[track_caller]
    pub fn assert_serves_normal_client(&self, what: &str) {
        let n = self.health_runs.fetch_add(1, Ordering::SeqCst);
        let data = random_bytes_seeded(0xA11CE + n as u64, 300 * KIB + n);
        let name = format!("health-check-{n}.bin");
        let mut ftp = self.daemon.login(ALICE.0);
        put(&mut ftp, &name, &data);
        assert_eq!(
            file_sha256(&self.root.join(&name)),
            sha256_hex(&data),
            "{what}: upload stored wrongly"
        );
        let back = get(&mut ftp, &name);
        assert_eq!(
            sha256_hex(&back),
            sha256_hex(&data),
            "{what}: download differs"
        );
        ftp.rm(&name)
            .unwrap_or_else(|e| panic!("{what}: DELE {name}: {e}"));
        ftp.quit().unwrap_or_else(|e| panic!("{what}: QUIT: {e}"));
    }

    /// The end of every scenario: still serving, nothing outside touched, canary bytes intact.
    #[track_caller]
    pub fn finish(self, what: &str) {
        self.assert_serves_normal_client(what);
        self.assert_outside_untouched(what);
        // Reading the canaries updates their atime, so this comes last.
        for (path, want) in &self.contents {
            let got = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            assert!(
                &got == want,
                "{what}: content of {} changed",
                path.display()
            );
        }
        if !self.atime_recorded {
            let _ = writeln!(
                io::stderr(),
                "note: this file system does not record atime; reads outside the root were \
                 checked through the data and replies only"
            );
        }
    }

    /// Finds anything from outside the root in bytes a client received.
    #[track_caller]
    pub fn assert_no_leak(&self, what: &str, seen: &[u8]) {
        for token in [SECRET, UNSEEN, PASSWD_TOKEN]
            .into_iter()
            .chain(CANARY_DATE_TOKENS)
        {
            assert!(
                !contains(seen, token),
                "{what}: the client received {token:?} from outside the root:\n{}",
                String::from_utf8_lossy(seen)
            );
        }
        for size in CANARY_SIZES {
            for shape in [format!(" {size} "), format!("size={size};")] {
                assert!(
                    !contains(seen, &shape),
                    "{what}: a canary's size {size} was shown:\n{}",
                    String::from_utf8_lossy(seen)
                );
            }
        }
    }

    /// The daemon's process id (found by its unique users-file argument).
    pub fn daemon_pid(&self) -> u32 {
        let needle = self.users_file.to_str().expect("UTF-8 path").as_bytes();
        for entry in fs::read_dir("/proc").expect("/proc") {
            let entry = entry.expect("proc entry");
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let is_daemon = cmdline.split(|&b| b == 0).any(|arg| arg == needle)
                && cmdline
                    .split(|&b| b == 0)
                    .next()
                    .is_some_and(|exe| exe.ends_with(b"actorftpd"));
            if is_daemon {
                return pid;
            }
        }
        panic!("daemon process not found in /proc");
    }
}

pub fn meta_of(m: &fs::Metadata, link: Option<PathBuf>) -> Meta {
    let kind = if m.is_symlink() {
        "symlink"
    } else if m.is_dir() {
        "dir"
    } else if m.is_file() {
        "file"
    } else {
        "other"
    };
    Meta {
        kind,
        len: m.len(),
        ino: m.ino(),
        nlink: m.nlink(),
        mode: m.mode(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        atime: m.is_file().then(|| (m.atime(), m.atime_nsec())),
        link,
    }
}

/// Whether reading a file whose atime is older than its mtime updates the atime here.
pub fn atime_is_recorded(base: &Path) -> bool {
    let probe = base.join("atime-probe");
    fs::write(&probe, b"probe").expect("write probe");
    let f = fs::File::options().write(true).open(&probe).expect("probe");
    f.set_times(
        FileTimes::new()
            .set_accessed(epoch(CANARY_ATIME))
            .set_modified(epoch(CANARY_MTIME)),
    )
    .expect("set probe times");
    drop(f);
    let _ = fs::read(&probe).expect("read probe");
    let atime = fs::metadata(&probe).expect("stat probe").atime();
    fs::remove_file(&probe).expect("remove probe");
    atime != CANARY_ATIME as i64
}

pub fn remove_any(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).expect("remove dir"),
        Ok(_) => fs::remove_file(path).expect("remove file"),
        Err(_) => {}
    }
}

pub fn ensure_real_dir(path: &Path) {
    if !fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        remove_any(path);
        fs::create_dir(path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
    }
}

pub fn ensure_file(path: &Path, data: &[u8]) {
    let ok = fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && fs::read(path).is_ok_and(|d| d == data);
    if !ok {
        remove_any(path);
        fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
