//! The Resolver actor: the FileStore's front desk on each worker Arbiter.
//!
//! `Stat` (CWD, CDUP, SIZE, MDTM, MLST, RNFR) and `OpenRead` (RETR) are the commonest
//! file-system requests and usually need no disk at all: the kernel has the path in its dentry
//! cache, and a small file's bytes in its page cache. Asking the FileStore pool costs
//! two thread hand-overs per command (*measured*: CWD took twice as long as PWD with client and
//! server on one CPU, and much longer when the pool thread sleeps on the other core). The
//! Resolver lives on the Session's own thread and asks the kernel to resolve the path from its
//! caches only (`openat2` with `RESOLVE_CACHED`, which fails with EAGAIN rather than wait for
//! a disk or a network file system), then reads the cached attributes (`statx` with
//! `AT_STATX_DONT_SYNC`) and, for a small regular file, its bytes (`preadv2` with
//! `RWF_NOWAIT`, which reads only what is in the page cache). Whatever it cannot answer that
//! way, including every error, goes to the FileStore pool, whose answer is the one the client
//! gets: the fast path never decides an error, so both paths reply alike.
//!
//! SECURITY: the fast path resolves beneath the jail's handle with `RESOLVE_BENEATH` and
//! `RESOLVE_NO_MAGICLINKS`, the same rules cap-std applies in the pool: a path that would
//! leave the jail fails there and is then refused by the pool. Likewise a path naming an upload
//! temporary file (`VirtualPath::names_temp`) is never answered here: the pool answers it, as
//! if nothing were there.

use super::{FileStore, Jail, OpenRead, ReadHandle, ReadSource, Stat, VirtualPath, SMALL_FILE};
use crate::error::StoreError;
use crate::listing::{EntryInfo, EntryKind};
use actix::prelude::*;
use std::os::fd::OwnedFd;

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
        match stat_cached(&msg.jail, &msg.path) {
            Some(info) => Response::reply(Ok(info)),
            None => ask_pool(&self.store, msg),
        }
    }
}

impl Handler<OpenRead> for Resolver {
    type Result = Response<Result<ReadHandle, StoreError>>;

    fn handle(&mut self, msg: OpenRead, _: &mut Context<Self>) -> Self::Result {
        match read_small_cached(&msg.jail, &msg.path, msg.offset) {
            Some(handle) => Response::reply(Ok(handle)),
            None => ask_pool(&self.store, msg),
        }
    }
}

/// Hands a request the kernel could not answer from its caches to the FileStore pool.
fn ask_pool<M, T>(store: &Addr<FileStore>, msg: M) -> Response<Result<T, StoreError>>
where
    M: Message<Result = Result<T, StoreError>> + Send + 'static,
    T: Send + 'static,
    FileStore: Handler<M>,
{
    let answer = store.send(msg);
    Response::fut(async move { super::handle::delivered(answer.await) })
}

/// Opens `path` beneath the jail from the kernel's caches only.
fn open_cached(jail: &Jail, path: &VirtualPath, flags: rustix::fs::OFlags) -> Option<OwnedFd> {
    use rustix::fs::{openat2, Mode, ResolveFlags};
    // SECURITY: upload temporary files are the pool's to refuse (the same rule for every
    // request); a warm one would otherwise be stat'ed or read from the cache here.
    if path.names_temp() {
        return None;
    }
    openat2(
        jail.dir().ok()?,
        path.to_relative(),
        flags | rustix::fs::OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | ResolveFlags::CACHED,
    )
    .ok()
}

/// Cached attributes of an open file, without asking a network file system's server.
fn statx_cached(fd: &OwnedFd) -> Option<rustix::fs::Statx> {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    statx(
        fd,
        "",
        AtFlags::EMPTY_PATH | AtFlags::STATX_DONT_SYNC,
        StatxFlags::BASIC_STATS,
    )
    .ok()
}

/// A small regular file's bytes from `offset` on, if every one of them is in the page cache;
/// `None` otherwise (a large file, a miss, anything odd: the pool answers).
pub fn read_small_cached(jail: &Jail, path: &VirtualPath, offset: u64) -> Option<ReadHandle> {
    use rustix::fs::{FileType, OFlags};
    use rustix::io::{preadv2, ReadWriteFlags};
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is declined below anyway).
    let fd = open_cached(
        jail,
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    )?;
    let st = statx_cached(&fd)?;
    if FileType::from_raw_mode(st.stx_mode.into()) != FileType::RegularFile {
        return None;
    }
    let size = st.stx_size;
    let left = size.checked_sub(offset)?;
    if left > SMALL_FILE {
        return None;
    }
    let mut bytes = vec![0u8; left as usize];
    let mut got = 0;
    while got < bytes.len() {
        let at = offset + got as u64;
        match preadv2(
            &fd,
            &mut [std::io::IoSliceMut::new(&mut bytes[got..])],
            at,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(0) | Err(_) => return None,
            Ok(n) => got += n,
        }
    }
    Some(ReadHandle {
        source: ReadSource::Bytes(bytes),
        size,
    })
}

/// The metadata of `path` if the kernel can give it without blocking; `None` if it cannot, or
/// on any error (the pool then answers).
pub fn stat_cached(jail: &Jail, path: &VirtualPath) -> Option<EntryInfo> {
    use rustix::fs::{FileType, OFlags};
    let fd = open_cached(jail, path, OFlags::PATH)?;
    let st = statx_cached(&fd)?;
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

    fn pool_read(jail: &Jail, path: &VirtualPath, offset: u64) -> Result<Vec<u8>, StoreError> {
        match super::super::open_read(jail, path, offset)?.source {
            ReadSource::Bytes(b) => Ok(b),
            ReadSource::File(mut f) => {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut b).map_err(StoreError::from)?;
                Ok(b)
            }
            ReadSource::Stream(_) => panic!("the local pool never streams"),
        }
    }

    fn fast_read(jail: &Jail, path: &VirtualPath, offset: u64) -> Option<(Vec<u8>, u64)> {
        let handle = read_small_cached(jail, path, offset)?;
        match handle.source {
            ReadSource::Bytes(b) => Some((b, handle.size)),
            ReadSource::File(_) | ReadSource::Stream(_) => {
                panic!("the fast path only returns bytes")
            }
        }
    }

    #[test]
    fn small_cached_reads_match_the_pool_and_decline_everything_else() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(root.join("dir")).expect("dirs");
        fs::create_dir_all(&outside).expect("outside dir");
        let small: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let large = vec![7u8; (SMALL_FILE + 1) as usize];
        fs::write(root.join("small.bin"), &small).expect("small");
        fs::write(root.join("large.bin"), &large).expect("large");
        fs::write(root.join("empty.bin"), b"").expect("empty");
        fs::write(outside.join("secret"), b"secret").expect("secret");
        symlink("small.bin", root.join("link.bin")).expect("link");
        symlink(outside.join("secret"), root.join("escape.bin")).expect("link");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .expect("mkfifo");
        let jail = Jail::open(&root).expect("jail");
        let vp = |s: &str| VirtualPath::root().join(s);
        for (path, offset) in [
            ("small.bin", 0),
            ("small.bin", 12_345),
            ("small.bin", 40_000),
            ("link.bin", 1),
            ("empty.bin", 0),
        ] {
            // Reading once puts the bytes in the page cache, as an upload or earlier RETR would.
            let pool = pool_read(&jail, &vp(path), offset).expect("pool reads");
            if let Some((fast, size)) = fast_read(&jail, &vp(path), offset) {
                assert_eq!(fast, pool, "{path} at {offset}");
                assert_eq!(fast, &small[offset as usize..][..fast.len()], "{path}");
                assert_eq!(size, fs::metadata(root.join(path)).expect("meta").len());
            }
        }
        // Large files go to the pool (they are sent with sendfile, not from memory); a restart
        // near the end leaves a small remainder, which both paths read into memory.
        let _ = pool_read(&jail, &vp("large.bin"), 0);
        assert!(fast_read(&jail, &vp("large.bin"), 0).is_none());
        if let Some((tail, _)) = fast_read(&jail, &vp("large.bin"), 100) {
            assert_eq!(tail, pool_read(&jail, &vp("large.bin"), 100).expect("pool"));
        }
        // An offset past the end is the pool's error to give.
        assert!(fast_read(&jail, &vp("small.bin"), 40_001).is_none());
        assert_eq!(
            pool_read(&jail, &vp("small.bin"), 40_001),
            Err(StoreError::BadOffset)
        );
        // SECURITY: no link out of the jail, no directory, no FIFO (the pool refuses it at
        // once instead of waiting for a writer).
        for path in ["escape.bin", "dir", "fifo", "missing"] {
            assert!(fast_read(&jail, &vp(path), 0).is_none(), "{path}");
            assert!(pool_read(&jail, &vp(path), 0).is_err(), "{path}");
        }
        assert_eq!(
            pool_read(&jail, &vp("fifo"), 0),
            Err(StoreError::PermissionDenied)
        );
    }

    #[test]
    fn a_warm_small_file_is_read_without_the_pool_on_this_kernel() {
        let tmp = tempfile::tempdir().expect("temp dir");
        fs::write(tmp.path().join("f"), b"cached bytes").expect("file");
        let _ = fs::read(tmp.path().join("f"));
        let jail = Jail::open(tmp.path()).expect("jail");
        let got = fast_read(&jail, &VirtualPath::root().join("f"), 0);
        assert_eq!(got, Some((b"cached bytes".to_vec(), 12)));
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
    fn upload_temp_files_are_never_answered_from_the_cache() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let name = ".actorftpd-upload-0123456789abcdef.part";
        fs::create_dir(tmp.path().join("d")).expect("dir");
        fs::write(tmp.path().join(name), b"in flight").expect("temp");
        fs::create_dir(tmp.path().join(format!("d/{name}"))).expect("temp-named dir");
        fs::write(tmp.path().join(format!("d/{name}/f")), b"below").expect("file");
        let jail = Jail::open(tmp.path()).expect("jail");
        for path in [name, &format!("d/{name}"), &format!("d/{name}/f")] {
            let vp = VirtualPath::root().join(path);
            touch_cache(&tmp.path().join(path));
            let _ = fs::read(tmp.path().join(path));
            assert_eq!(stat_cached(&jail, &vp), None, "{path}");
            assert!(fast_read(&jail, &vp, 0).is_none(), "{path}");
            assert_eq!(pool_stat(&jail, &vp), Err(StoreError::NotFound), "{path}");
        }
        assert_eq!(
            pool_read(&jail, &VirtualPath::root().join(name), 0),
            Err(StoreError::NotFound)
        );
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
