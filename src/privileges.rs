//! `--run-as USER[:GROUP]` and `--umask`: the daemon binds its sockets as root (port 21), then
//! gives up root for good before it starts a single thread.
//!
//! Linux keeps user and group ids per thread: the raw `setuid` system call changes only the
//! calling thread (glibc's wrapper signals every thread to follow; rustix calls the kernel
//! directly). So the drop happens while the process has exactly one thread, which this module
//! checks (`/proc/self/task`) instead of trusting, and then verifies from `/proc/self/status`.
//! It never starts threads, binds sockets or opens the users' roots.

use rustix::process::{Gid, Uid};
use std::fmt;

/// What `--run-as` asks for, before the account is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub group: Option<String>,
}

/// A looked-up account to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (uid {}, gid {})", self.user, self.uid, self.gid)
    }
}

impl RunAs {
    /// `USER` or `USER:GROUP`; either may be a number.
    pub fn parse(spec: &str) -> Result<RunAs, String> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'))
        };
        if !ok(user) || group.is_some_and(|g| !ok(g)) {
            return Err(format!("{spec:?} is not USER or USER:GROUP"));
        }
        Ok(RunAs {
            user: user.to_owned(),
            group: group.map(str::to_owned),
        })
    }

    /// Looks the names up in /etc/passwd and /etc/group (numbers are taken as they are; an
    /// account known only to NSS, such as LDAP, can be given by number). Without a group, the
    /// user's primary group.
    pub fn lookup(&self) -> Result<Account, String> {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let (uid, primary) = match self.user.parse::<u32>() {
            Ok(uid) => (
                uid,
                find(&passwd, |f| f.get(2) == Some(&self.user.as_str()))
                    .and_then(|f| f.get(3)?.parse().ok()),
            ),
            Err(_) => {
                let f = find(&passwd, |f| f.first() == Some(&self.user.as_str()))
                    .ok_or_else(|| format!("--run-as: no user {:?} in /etc/passwd", self.user))?;
                let num = |i: usize| f.get(i).and_then(|s| s.parse::<u32>().ok());
                match (num(2), num(3)) {
                    (Some(u), Some(g)) => (u, Some(g)),
                    _ => {
                        return Err(format!(
                            "--run-as: /etc/passwd entry of {:?} is malformed",
                            self.user
                        ))
                    }
                }
            }
        };
        let gid = match &self.group {
            None => primary.ok_or_else(|| {
                format!("--run-as: uid {uid} has no /etc/passwd entry; give USER:GROUP")
            })?,
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => {
                    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
                    find(&group, |f| f.first() == Some(&g.as_str()))
                        .and_then(|f| f.get(2)?.parse().ok())
                        .ok_or_else(|| format!("--run-as: no group {g:?} in /etc/group"))?
                }
            },
        };
        if uid == 0 {
            return Err("--run-as: that is root; name an unprivileged account".into());
        }
        Ok(Account {
            user: self.user.clone(),
            uid,
            gid,
        })
    }
}

/// The fields of the first line of a colon-separated database that `pick` accepts.
fn find(db: &str, pick: impl Fn(&[&str]) -> bool) -> Option<Vec<&str>> {
    db.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| pick(f))
}

/// Sets the process umask (before any file is created).
pub fn set_umask(mask: u32) {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
}

/// Threads of this process, from /proc (None without /proc).
fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// SECURITY: gives up root for good: supplementary groups, then the group, then the user (real,
/// effective and saved ids, so it cannot be taken back). Refuses if more than one thread runs
/// (the others would stay root), and checks the result on /proc/self/status.
pub fn drop_to(account: &Account) -> Result<(), String> {
    let euid = rustix::process::geteuid().as_raw();
    if euid != 0 {
        return Err(format!(
            "--run-as {} needs the daemon started as root (it runs as uid {euid}); drop \
             --run-as, or start it as root to bind a low port and then switch",
            account.user
        ));
    }
    match thread_count() {
        Some(1) | None => {}
        Some(n) => {
            return Err(format!(
                "cannot switch to {account}: {n} threads already run (a bug: the switch must come first)"
            ))
        }
    }
    let gid = Gid::from_raw(account.gid);
    let uid = Uid::from_raw(account.uid);
    let fail =
        |what: &str, e: rustix::io::Errno| format!("cannot switch to {account}: {what}: {e}");
    rustix::thread::set_thread_groups(&[gid]).map_err(|e| fail("setgroups", e))?;
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(|e| fail("setresuid", e))?;
    // Root again must be impossible now.
    if rustix::thread::set_thread_res_uid(Uid::ROOT, Uid::ROOT, Uid::ROOT).is_ok() {
        return Err(format!(
            "switched to {account} but could become root again; stopping"
        ));
    }
    match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => {
            let want_uid = format!("{0}\t{0}\t{0}\t{0}", account.uid);
            let want_gid = format!("{0}\t{0}\t{0}\t{0}", account.gid);
            let has = |key: &str, want: &str| {
                status
                    .lines()
                    .any(|l| l.strip_prefix(key).is_some_and(|v| v.trim() == want))
            };
            if !has("Uid:", &want_uid) || !has("Gid:", &want_gid) {
                return Err(format!(
                    "switched to {account} but /proc/self/status disagrees; stopping"
                ));
            }
        }
        Err(e) => log::debug!("cannot read /proc/self/status to confirm the switch: {e}"),
    }
    Ok(())
}

/// Every thread's real, effective, saved and file-system uid, from /proc/self/task/*/status
/// (for the log line after start, and tests).
pub fn thread_uids() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .filter_map(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Uid:")
                    .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            })
        })
        .collect()
}

/// The one line that says why a low port could not be bound, and both ways to get it.
pub fn low_port_hint(port: u16) -> Option<String> {
    if port == 0 || port >= 1024 {
        return None;
    }
    Some(format!(
        "port {port} is below 1024: start as root with --run-as USER (the daemon binds, then \
         switches), or grant the capability (setcap cap_net_bind_service=+ep on the binary, or \
         AmbientCapabilities=CAP_NET_BIND_SERVICE in the systemd unit)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_as_specs() {
        assert_eq!(
            RunAs::parse("ftp:ftp"),
            Ok(RunAs {
                user: "ftp".into(),
                group: Some("ftp".into())
            })
        );
        assert!(RunAs::parse("").is_err());
        assert!(RunAs::parse("a:").is_err());
        assert!(RunAs::parse("a b").is_err());
        assert!(RunAs::parse("../x").is_err());
        assert!(RunAs::parse("root").expect("parses").lookup().is_err());
        assert!(RunAs::parse("0:0").expect("parses").lookup().is_err());
        let nobody = RunAs::parse("65534:65534").expect("parses").lookup();
        assert_eq!(nobody.map(|a| (a.uid, a.gid)), Ok((65534, 65534)));
    }

    #[test]
    fn databases() {
        let db = "# comment\nroot:x:0:0::/root:/bin/sh\nftp:x:101:102::/srv:/bin/false\n";
        let f = find(db, |f| f.first() == Some(&"ftp")).expect("found");
        assert_eq!(f[2], "101");
        assert!(find(db, |f| f.first() == Some(&"x")).is_none());
    }
}
