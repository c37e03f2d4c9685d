//! At start-up, `sweep_temp_files` removes the upload temporary files a crash left behind in
//! the served roots, with bounded depth and entries. It runs before any Session exists.

use super::vpath::is_temp_name;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

/// How deep below a root the start-up sweep looks for abandoned upload files.
pub const SWEEP_MAX_DEPTH: usize = 64;

/// How many directory entries the start-up sweep looks at under one root, so that a huge tree
/// cannot hold up the start for long; what lies beyond is left (and a warning says so).
pub const SWEEP_MAX_ENTRIES: usize = 1_000_000;

/// Removes the upload temporary files a crash (SIGKILL, power loss) left under `root`, and
/// returns how many it removed. Call it once per served root at start-up, before serving.
///
/// Only regular files whose name is an upload temporary name (`is_temp_name`) are removed,
/// and only when no process holds the lock every upload takes on its file (`OpenWrite`): a
/// daemon still running on the same root (a restart that overlaps the old one draining) keeps
/// its uploads in flight. Symlinks are never followed (the walk opens one name at a time with
/// `O_NOFOLLOW` beneath the directory it read it from), the walk stops at `SWEEP_MAX_DEPTH`
/// levels and `SWEEP_MAX_ENTRIES` entries, and unreadable directories are skipped. Blocking:
/// run it before the actors start. Errors only when `root` itself cannot be read.
pub fn sweep_temp_files(root: &Path) -> io::Result<usize> {
    use rustix::fs::{open, Mode, OFlags};
    let fd = open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut sweep = Sweep {
        removed: 0,
        entries: 0,
        stopped_early: false,
    };
    // A subdirectory that cannot be read is skipped; only the root's own failure is an error.
    sweep.dir(&fd, 0)?;
    if sweep.stopped_early {
        log::warn!(
            "start-up sweep of {} skipped what lies beyond {} entries or {} levels; abandoned \
             upload files there were left",
            root.display(),
            SWEEP_MAX_ENTRIES,
            SWEEP_MAX_DEPTH
        );
    }
    if sweep.removed > 0 {
        log::info!(
            "removed {} abandoned upload file(s) under {}",
            sweep.removed,
            root.display()
        );
    }
    Ok(sweep.removed)
}

/// The state of one `sweep_temp_files` walk.
pub(super) struct Sweep {
    removed: usize,
    entries: usize,
    stopped_early: bool,
}

impl Sweep {
    /// Sweeps the directory open as `fd`, `depth` levels below the root. Its entries are read
    /// first and its subdirectories walked after, so open descriptors grow with depth only.
    /// Subdirectories nested deeper than `SWEEP_MAX_DEPTH` are not entered.
    fn dir(&mut self, fd: &OwnedFd, depth: usize) -> io::Result<()> {
        use rustix::fs::{openat, statat, AtFlags, FileType, Mode, OFlags};
        let mut subdirs = Vec::new();
        for entry in rustix::fs::Dir::read_from(fd)? {
            let entry = entry?;
            let name = entry.file_name().to_owned();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            self.entries += 1;
            if self.entries > SWEEP_MAX_ENTRIES {
                self.stopped_early = true;
                return Ok(());
            }
            let mut kind = entry.file_type();
            if kind == FileType::Unknown {
                // Some file systems do not report the type in the directory entry.
                kind = match statat(fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(_) => continue,
                };
            }
            match kind {
                FileType::Directory => subdirs.push(name),
                FileType::RegularFile
                    if name.to_str().is_ok_and(is_temp_name) && remove_if_abandoned(fd, &name) =>
                {
                    self.removed += 1;
                }
                _ => {}
            }
        }
        if !subdirs.is_empty() && depth + 1 > SWEEP_MAX_DEPTH {
            self.stopped_early = true;
            return Ok(());
        }
        for name in subdirs {
            // SECURITY: O_NOFOLLOW: a directory swapped for a symlink since it was read is not
            // entered, so the sweep never leaves the root.
            let Ok(sub) = openat(
                fd,
                name.as_c_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            if self.dir(&sub, depth + 1).is_err() {
                continue;
            }
            if self.entries > SWEEP_MAX_ENTRIES {
                break;
            }
        }
        Ok(())
    }
}

/// Removes the upload temporary file `name` in the directory `dir` if it is still a regular
/// file and no process holds its upload lock. Any doubt leaves it.
pub(super) fn remove_if_abandoned(dir: &OwnedFd, name: &std::ffi::CStr) -> bool {
    use rustix::fs::{
        flock, fstat, openat, unlinkat, AtFlags, FileType, FlockOperation, Mode, OFlags,
    };
    let Ok(file) = openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    let regular =
        fstat(&file).is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
    // A running upload holds this lock on its file; ours is kept across the unlink.
    if !regular || flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        return false;
    }
    unlinkat(dir, name, AtFlags::empty()).is_ok()
}
