//! The transfer log, in the xferlog(5) format that wu-ftpd, vsftpd, ProFTPD and Pure-FTPd
//! write, so existing log analysers read it.
//!
//! Sessions send one `XferRecord` per finished transfer (complete or not); the `XferLog`
//! actor, on its own thread, appends one line per record. Times are UTC.
//!
//! The file name is the real one on disk, absolute, as the other daemons write it: the user's
//! root resolved once by the actor (symlinks and `..` gone, so it is the same however the users
//! file or `--root` spelled it), then the file's path inside the root.

use crate::listing::CivilTime;
use actix::prelude::*;
use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One finished transfer.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct XferRecord {
    /// When the transfer ended, seconds since the epoch.
    pub when: i64,
    pub seconds: f64,
    pub remote: IpAddr,
    pub bytes: u64,
    /// The user's root folder, as configured (the actor resolves it).
    pub root: PathBuf,
    /// The file inside the root, relative (the virtual path without its leading `/`).
    pub path: PathBuf,
    pub binary: bool,
    pub incoming: bool,
    pub anonymous: bool,
    /// The login name (for anonymous users, what they gave as password is not logged).
    pub user: String,
    pub complete: bool,
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `ctime(3)` form: `Wed Nov 25 14:03:01 2026` (day of month space-padded).
fn ctime(secs: i64) -> String {
    let t = CivilTime::from_unix(secs);
    let weekday = DAYS[secs.div_euclid(86_400).rem_euclid(7) as usize];
    let month = MONTHS[(t.month as usize).saturating_sub(1).min(11)];
    format!(
        "{weekday} {month} {:>2} {:02}:{:02}:{:02} {}",
        t.day, t.hour, t.minute, t.second, t.year
    )
}

/// Fields are separated by single spaces, so whitespace inside a file or user name becomes
/// `_` (as ProFTPD does); control characters, bidi overrides and line separators are dropped
/// (`printable::needs_escape`), so a name can neither forge a line nor reorder what a terminal
/// shows of one.
fn field(s: &str) -> String {
    s.chars()
        .filter(|&c| !crate::printable::needs_escape(c) || c.is_whitespace())
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// One xferlog line (without the newline), for a record whose `root` is already resolved:
/// `current-time transfer-time remote-host file-size filename transfer-type
/// special-action-flag direction access-mode username service-name authentication-method
/// authenticated-user-id completion-status`.
pub fn format_line(r: &XferRecord) -> String {
    format!(
        "{} {} {} {} {} {} _ {} {} {} ftp 0 * {}",
        ctime(r.when),
        r.seconds.round().max(0.0) as u64,
        r.remote,
        r.bytes,
        field(&r.root.join(&r.path).to_string_lossy()),
        if r.binary { 'b' } else { 'a' },
        if r.incoming { 'i' } else { 'o' },
        if r.anonymous { 'a' } else { 'r' },
        field(&r.user),
        if r.complete { 'c' } else { 'i' },
    )
}

/// Appends records to the transfer log, on its own thread (file writes block).
pub struct XferLog {
    file: Arc<std::fs::File>,
    /// Each root as configured, and where it really is.
    roots: HashMap<PathBuf, PathBuf>,
}

/// A root as an absolute path without symlinks, `.` or `..`; when it cannot be resolved (it
/// was removed), at least absolute.
fn real_root(root: &Path) -> PathBuf {
    // A root in object storage is its URL, `s3://BUCKET/PREFIX`: nothing to resolve.
    if root.to_str().is_some_and(|r| r.starts_with("s3://")) {
        return root.to_path_buf();
    }
    root.canonicalize()
        .or_else(|_| std::path::absolute(root))
        .unwrap_or_else(|_| root.to_path_buf())
}

impl Actor for XferLog {
    type Context = SyncContext<Self>;
}

impl XferLog {
    /// Opens (creating, appending) the log now, so a bad path stops the daemon at start.
    pub fn start(path: &Path) -> Result<Addr<XferLog>, String> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("transfer log {}: {e}", path.display()))?;
        let file = Arc::new(file);
        Ok(SyncArbiter::start(1, move || XferLog {
            file: file.clone(),
            roots: HashMap::new(),
        }))
    }
}

impl Handler<XferRecord> for XferLog {
    type Result = ();

    fn handle(&mut self, mut record: XferRecord, _: &mut SyncContext<Self>) {
        // Resolved once per root: a root is rarely replaced while the daemon runs, and a
        // SIGHUP that points a user elsewhere names a new root.
        record.root = self
            .roots
            .entry(record.root)
            .or_insert_with_key(|root| real_root(root))
            .clone();
        let mut line = format_line(&record);
        line.push('\n');
        // One write per line with O_APPEND: lines never interleave.
        if let Err(e) = (&*self.file).write_all(line.as_bytes()) {
            log::error!("transfer log write failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> XferRecord {
        XferRecord {
            // 2026-11-25 12:00:00 UTC, a Wednesday.
            when: 1_795_608_000,
            seconds: 2.6,
            remote: "127.0.0.1".parse().expect("ip"),
            bytes: 1234,
            root: PathBuf::from("/srv/ftp"),
            path: PathBuf::from("a b.txt"),
            binary: true,
            incoming: false,
            anonymous: false,
            user: "alice".into(),
            complete: true,
        }
    }

    #[test]
    fn lines_follow_xferlog_5() {
        assert_eq!(
            format_line(&record()),
            "Wed Nov 25 12:00:00 2026 3 127.0.0.1 1234 /srv/ftp/a_b.txt b _ o r alice ftp 0 * c"
        );
        let r = XferRecord {
            when: 1_794_124_800, // 2026-11-08 08:00:00 UTC, a Sunday
            incoming: true,
            binary: false,
            anonymous: true,
            complete: false,
            user: "anon\nymous".into(),
            ..record()
        };
        let line = format_line(&r);
        assert_eq!(line.split_whitespace().count(), 18, "{line}");
        assert!(line.starts_with("Sun Nov  8 08:00:00 2026 "), "{line}");
        assert!(line.ends_with(" a _ i a anon_ymous ftp 0 * i"), "{line}");
    }

    #[test]
    fn names_cannot_reorder_or_break_a_line() {
        let r = XferRecord {
            root: "/srv".into(),
            path: "\u{202e}txt.exe\u{1b}[2J\u{2028}x".into(),
            ..record()
        };
        let line = format_line(&r);
        assert!(line.contains(" /srv/txt.exe[2J_x b "), "{line}");
        assert!(!line.chars().any(crate::printable::needs_escape), "{line}");
    }

    #[test]
    fn roots_are_resolved_to_real_absolute_paths() {
        let dir = tempfile::tempdir().expect("tmp");
        let real = dir.path().canonicalize().expect("real").join("srv");
        std::fs::create_dir(&real).expect("srv");
        std::os::unix::fs::symlink(&real, dir.path().join("link")).expect("symlink");
        let spelled = dir.path().join("link/../link/./");
        assert_eq!(real_root(&spelled), real);
        let gone = dir.path().join("gone");
        assert!(real_root(&gone).is_absolute());
        let relative = real_root(Path::new("some/where"));
        assert!(relative.is_absolute() && relative.ends_with("some/where"));
    }
}
