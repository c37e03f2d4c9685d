//! The default root (`$TMPDIR/actorftpd-root-UID`, served when neither `--root` nor `--users` is
//! given) against another local user who plants something under that name in a shared temporary
//! folder: a symlink to a folder of the victim's, a folder of their own, a folder anyone can
//! write, a `welcome.txt` symlink. Each daemon runs with `TMPDIR` set to a fresh temporary folder.
//!
//! The traps are planted under the old name (`actorftpd-root`) as well as the new one, so that
//! on the code before the fix these tests fail for the right reason.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

/// The names the default root had before (shared by every user) and has now (per user).
fn root_names(tmpdir: &Path) -> [PathBuf; 2] {
    let uid = rustix::process::geteuid().as_raw();
    [
        tmpdir.join("actorftpd-root"),
        tmpdir.join(format!("actorftpd-root-{uid}")),
    ]
}

/// What a daemon started with no `--root` and no `--users` did.
enum Outcome {
    /// It serves: the lines it printed (the daemon is killed when this is dropped).
    Serving(Running),
    /// It exited before serving, with this stderr.
    Refused(String),
}

struct Running {
    child: Child,
    stdout: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Outcome {
    fn refused(self) -> String {
        match self {
            Outcome::Refused(stderr) => stderr,
            Outcome::Serving(r) => panic!("the daemon serves: {:?}", r.stdout),
        }
    }

    fn serving(self) -> Running {
        match self {
            Outcome::Serving(r) => r,
            Outcome::Refused(stderr) => panic!("the daemon refused to start: {stderr}"),
        }
    }
}

/// Runs the daemon on its defaults (loopback port 0) with `TMPDIR=tmpdir`, until it prints how
/// to connect or exits (a deadline, no sleeps).
fn start_default(tmpdir: &Path) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
        .args(["--listen", "127.0.0.1:0"])
        .env("TMPDIR", tmpdir)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn actorftpd");
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let stderr_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let end = Instant::now() + STARTUP_DEADLINE;
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                // The last line of the announcement.
                let done = line.trim_start().starts_with("lftp:");
                lines.push(line);
                if done {
                    return Outcome::Serving(Running {
                        child,
                        stdout: lines,
                    });
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().expect("wait");
                let stderr = stderr_reader.join().unwrap_or_default();
                assert!(!status.success(), "exited successfully: {stderr}");
                return Outcome::Refused(stderr);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("neither served nor exited within {STARTUP_DEADLINE:?}: {lines:?}");
            }
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("stat").mode() & 0o7777
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn a_symlink_planted_at_the_default_root_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let victim = tmp.path().join("victim-files");
    std::fs::create_dir(&victim).expect("mkdir");
    for name in root_names(tmp.path()) {
        symlink(&victim, &name).expect("plant symlink");
    }
    let stderr = start_default(tmp.path()).refused();
    assert!(
        stderr.contains("is a symlink") && stderr.contains("--root DIR"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
    assert_eq!(
        std::fs::read_dir(&victim).expect("list").count(),
        0,
        "nothing written into the symlink's target"
    );
}

#[test]
fn a_default_root_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!("SKIPPED: a_default_root_owned_by_another_user_is_refused needs root (chown)");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    for name in root_names(tmp.path()) {
        std::fs::create_dir(&name).expect("mkdir");
        std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::chown(&name, Some(4242), Some(4242)).expect("chown");
    }
    let stderr = start_default(tmp.path()).refused();
    assert!(stderr.contains("belongs to uid 4242"), "{stderr}");
    for name in root_names(tmp.path()) {
        assert!(!name.join("welcome.txt").exists(), "wrote into {name:?}");
    }
}

#[test]
fn a_default_root_others_can_write_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    for name in root_names(tmp.path()) {
        std::fs::create_dir(&name).expect("mkdir");
        std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let stderr = start_default(tmp.path()).refused();
    assert!(stderr.contains("writable by others (mode 777)"), "{stderr}");
}

#[test]
fn a_welcome_symlink_inside_the_default_root_is_not_followed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    for name in root_names(tmp.path()) {
        std::fs::create_dir(&name).expect("mkdir");
        std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        symlink(outside.join("pwned"), name.join("welcome.txt")).expect("plant");
    }
    let _running = start_default(tmp.path()).serving();
    assert!(
        !outside.join("pwned").exists(),
        "welcome.txt was written through a planted symlink"
    );
}

#[test]
fn a_shared_temporary_folder_without_the_sticky_bit_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let stderr = start_default(&shared).refused();
    assert!(stderr.contains("not sticky"), "{stderr}");
    // Sticky, as /tmp is: fine.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let _running = start_default(&shared).serving();
}

#[test]
fn the_default_root_is_created_private_per_user_and_served() {
    let tmp = tempfile::tempdir().expect("tmp");
    let [old_name, root] = root_names(tmp.path());
    let running = start_default(tmp.path()).serving();
    let text = running.stdout.join("\n");
    assert!(
        text.contains(&format!("serving {} as user ftpuser", root.display())),
        "{text}"
    );
    assert!(!old_name.exists(), "the shared name is not used any more");
    let meta = std::fs::symlink_metadata(&root).expect("created");
    assert!(meta.is_dir());
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
    assert_eq!(mode(&root), 0o700);
    // The README's first command: connect as it says and fetch the welcome file.
    let url = find_ftp_url(&text).unwrap_or_else(|| panic!("no URL in {text}"));
    let addr = format!("{}:{}", url.host, url.port)
        .parse()
        .expect("address");
    let mut ftp = ftp_connect(addr);
    ftp.login(url.user.as_str(), url.password.as_str())
        .expect("login");
    let welcome = get(&mut ftp, "welcome.txt");
    assert!(
        String::from_utf8_lossy(&welcome).starts_with("Served by actorftpd."),
        "{welcome:?}"
    );
    let _ = ftp.quit();
    drop(running);

    // A second start reuses it; one left readable by others (as older versions made it) is
    // tightened to 0700.
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let _again = start_default(tmp.path()).serving();
    assert_eq!(mode(&root), 0o700);
}

#[test]
fn a_file_at_the_default_root_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    for name in root_names(tmp.path()) {
        std::fs::write(&name, b"a file, not a folder").expect("write");
    }
    let stderr = start_default(tmp.path()).refused();
    assert!(stderr.contains("is not a folder"), "{stderr}");
}

#[test]
fn a_temporary_folder_owned_by_another_user_is_refused() {
    if !is_root() {
        eprintln!(
            "SKIPPED: a_temporary_folder_owned_by_another_user_is_refused needs root (chown)"
        );
        return;
    }
    // Its owner could swap our root for another between the checks and the use.
    let tmp = tempfile::tempdir().expect("tmp");
    let shared = tmp.path().join("theirs");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::chown(&shared, Some(4242), Some(4242)).expect("chown");
    let stderr = start_default(&shared).refused();
    assert!(stderr.contains("belongs to uid 4242"), "{stderr}");
    assert_eq!(std::fs::read_dir(&shared).expect("read").count(), 0);
}
