//! The Resolver actor: the FileStore's front desk on each worker Arbiter.
//!
//! `Stat` (CWD, CDUP, SIZE, MDTM, MLST) is the commonest file-system request and usually needs
//! no disk at all: the kernel has the path in its dentry cache. Asking the FileStore pool costs
//! two thread hand-overs per command (*measured*: CWD took twice as long as PWD with client and
//! server on one CPU, and much longer when the pool thread sleeps on the other core). The
//! Resolver lives on the Session's own thread and asks the kernel to resolve the path from its
//! caches only (`openat2` with `RESOLVE_CACHED`, which fails with EAGAIN rather than wait for
//! a disk or a network file system), then reads the cached attributes (`statx` with
//! `AT_STATX_DONT_SYNC`). Whatever it cannot answer that way, including every error, goes to
//! the FileStore pool, whose answer is the one the client gets: the fast path never decides
//! an error, so both paths reply alike.
//!
//! SECURITY: the fast path resolves beneath the jail's handle with `RESOLVE_BENEATH` and
//! `RESOLVE_NO_MAGICLINKS`, the same rules cap-std applies in the pool: a path that would
//! leave the jail fails there and is then refused by the pool.

use super::{FileStore, Jail, Stat, VirtualPath};
use crate::error::StoreError;
use crate::listing::{EntryInfo, EntryKind};
use actix::prelude::*;

/// One per worker Arbiter, shared by that worker's Sessions.
pub struct Resolver {
    store: Addr<FileStore>,
}

impl Resolver {
    pub fn new(store: Addr<FileStore>) -> Resolver {
        Resolver { store }
    }
}

impl Actor for Resolver {
    type Context = Context<Self>;
}

impl Handler<Stat> for Resolver {
    type Result = Response<Result<EntryInfo, StoreError>>;

    fn handle(&mut self, msg: Stat, _: &mut Context<Self>) -> Self::Result {
        if let Some(info) = stat_cached(&msg.jail, &msg.path) {
            return Response::reply(Ok(info));
        }
        let answer = self.store.send(msg);
        Response::fut(async move {
            answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Io("file store is not running".into())))
        })
    }
}

/// The metadata of `path` if the kernel can give it without blocking; `None` if it cannot, or
/// on any error (the pool then answers).
pub fn stat_cached(jail: &Jail, path: &VirtualPath) -> Option<EntryInfo> {
    use rustix::fs::{openat2, statx, AtFlags, FileType, Mode, OFlags, ResolveFlags, StatxFlags};
    let fd = openat2(
        jail.dir(),
        path.to_relative(),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::CACHED,
    )
    .ok()?;
    let st = statx(
        &fd,
        "",
        AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC,
        StatxFlags::BASIC_STATS,
    )
    .ok()?;
    let kind = match FileType::from_raw_mode(st.stx_mode.into()) {
        FileType::Directory => EntryKind::Dir,
        FileType::RegularFile => EntryKind::File,
        _ => EntryKind::Other,
    };
    Some(EntryInfo {
        name: path.file_name().to_owned(),
        kind,
        size: st.stx_size,
        mode: u32::from(st.stx_mode) & 0o7777,
        nlink: u64::from(st.stx_nlink),
        uid: st.stx_uid,
        gid: st.stx_gid,
        mtime: st.stx_mtime.tv_sec,
        dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
        ino: st.stx_ino,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn pool_stat(jail: &Jail, path: &VirtualPath) -> Result<EntryInfo, StoreError> {
        super::super::stat(jail, path)
    }

    /// Warms the dentry cache the way any earlier command would.
    fn touch_cache(p: &std::path::Path) {
        let _ = fs::metadata(p);
    }

    #[test]
    fn fast_path_agrees_with_the_pool_and_never_escapes() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let outside = tmp.path().join("outside");
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("dir/sub")).expect("dirs");
        fs::create_dir_all(&outside).expect("outside dir");
        fs::write(root.join("dir/file.txt"), b"hello").expect("file");
        fs::write(outside.join("secret"), b"secret").expect("secret");
        symlink("dir/file.txt", root.join("inside-link")).expect("link");
        symlink(&outside, root.join("absolute-escape")).expect("link");
        symlink("../outside/secret", root.join("relative-escape")).expect("link");
        let jail = Jail::open(&root).expect("jail");
        let vp = |s: &str| VirtualPath::root().join(s);

        for path in ["/", "dir", "dir/sub", "dir/file.txt", "inside-link"] {
            touch_cache(&root.join(path.trim_start_matches('/')));
            let fast = stat_cached(&jail, &vp(path));
            let pool = pool_stat(&jail, &vp(path)).expect("pool answers");
            // On a kernel without RESOLVE_CACHED the fast path always declines: still correct.
            if let Some(fast) = fast {
                assert_eq!(fast, pool, "{path}");
            }
        }
        // SECURITY: links that lead out of the jail are never answered by the fast path, and
        // the pool refuses them.
        for path in [
            "absolute-escape",
            "relative-escape",
            "absolute-escape/secret",
        ] {
            touch_cache(&outside.join("secret"));
            assert_eq!(stat_cached(&jail, &vp(path)), None, "{path}");
            assert!(pool_stat(&jail, &vp(path)).is_err(), "{path}");
        }
        // Errors are the pool's to give.
        for path in ["missing", "dir/file.txt/below"] {
            assert_eq!(stat_cached(&jail, &vp(path)), None, "{path}");
            assert!(pool_stat(&jail, &vp(path)).is_err(), "{path}");
        }
    }

    #[test]
    fn a_warm_path_is_answered_without_the_pool_on_this_kernel() {
        let tmp = tempfile::tempdir().expect("temp dir");
        fs::create_dir(tmp.path().join("d")).expect("dir");
        touch_cache(&tmp.path().join("d"));
        let jail = Jail::open(tmp.path()).expect("jail");
        let info = stat_cached(&jail, &VirtualPath::root().join("d"));
        // RESOLVE_CACHED is Linux 5.12+; CI and development machines run newer kernels.
        assert_eq!(info.map(|i| i.kind), Some(EntryKind::Dir));
    }
}
