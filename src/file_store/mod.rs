//! The FileStore actor: every file-system call, behind the jail.
//!
//! One shared pool (`SyncArbiter`, a few threads) answers typed requests, so blocking
//! metadata calls never run on a worker Arbiter. Each request carries the session's `Jail`, a
//! handle to the user's root directory; every path is opened relative to that handle with
//! cap-std, which refuses any resolution (`..`, absolute symlinks, symlinks to `..`) that
//! would leave it. Open requests return file handles, so nothing can swap the path between
//! the check and the transfer.
//!
//! Uploads that replace a file (STOR) are written under a temporary name beside it
//! (`vpath::is_temp_name`) and renamed into place when complete. Those names are the server's
//! own: every request that names one is answered as if it did not exist (or refused, when it
//! would create one), listings skip them, a failed upload removes its file, and
//! `sweep_temp_files` removes what a crash left behind when the daemon starts. A user without
//! the overwrite permission gets an exclusive final step (`RENAME_NOREPLACE`), so no upload or
//! RNTO replaces a file that appeared after the permission check.
//!
//! Files: this one holds the actor, the `Jail` and the read-side handlers (stat, list, open
//! for reading); `messages.rs` the requests and answers; `changes.rs` the handlers that change
//! the disk; `sweep.rs` the start-up sweep; `resolver.rs` the per-worker cached fast path; and
//! `handle.rs` the `Store` handle, the one door Sessions use.

mod attributes;
mod changes;
pub mod handle;
mod messages;
pub mod object;
pub mod resolver;
mod sweep;
pub mod vpath;

#[cfg(test)]
mod tests;

use crate::error::StoreError;
use crate::listing::{self, EntryInfo, EntryKind};
use crate::protocol::{glob, rawname};
use actix::prelude::*;
use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};
pub use handle::{Request, Store};
pub use messages::{
    AsciiSize, Dispose, FileDigest, FinishUpload, HashFile, List, ListFormat, ListSelected,
    MakeDir, OpenJail, OpenRead, OpenWrite, ReadHandle, ReadSource, RemoveDir, RemoveFile, Rename,
    Selection, SetAttributes, Stat, Upload, UploadSink, UploadTarget, WriteMode, ASCII_SIZE_LIMIT,
    HASH_SIZE_LIMIT, MAX_CONCURRENT_HASHES, MAX_GLOB_MATCHES, SMALL_FILE,
};
pub use resolver::Resolver;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};
use std::sync::Arc;
pub use sweep::{sweep_temp_files, SWEEP_MAX_DEPTH, SWEEP_MAX_ENTRIES};
pub use vpath::{is_temp_name, VirtualPath};

/// The file-system pool. Stateless: all state is in the messages.
#[derive(Debug, Default)]
pub struct FileStore;

impl Actor for FileStore {
    type Context = SyncContext<Self>;
}

impl FileStore {
    /// Starts the shared pool with `threads` threads.
    pub fn start_pool(threads: usize) -> Addr<FileStore> {
        SyncArbiter::start(threads.max(1), || FileStore)
    }
}

/// A handle to a user's root: a directory on the local disk, or a prefix in an S3 bucket.
/// Cloning is cheap; all clones share one descriptor (or one S3 client).
#[derive(Clone)]
pub struct Jail(Arc<Root>);

/// The two storage back-ends. Which one a request goes to is decided once, by `Store::ask`
/// (handle.rs): the local root to the FileStore pool (and its Resolvers), an object-storage
/// root to the ObjectStore.
enum Root {
    Local(Dir),
    Object(Box<object::Bucket>),
}

impl std::fmt::Debug for Jail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jail(..)")
    }
}

impl Jail {
    /// Opens a root directory as a jail. Blocking: at start-up, or inside the FileStore.
    pub fn open(root: &Path) -> Result<Jail, StoreError> {
        let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
        Ok(Jail(Arc::new(Root::Local(dir))))
    }

    /// A root in object storage: the user's prefix in a bucket.
    pub fn object(bucket: object::Bucket) -> Jail {
        Jail(Arc::new(Root::Object(Box::new(bucket))))
    }

    /// The bucket and prefix, for a root in object storage.
    pub fn bucket(&self) -> Option<&object::Bucket> {
        match &*self.0 {
            Root::Object(bucket) => Some(bucket),
            Root::Local(_) => None,
        }
    }

    /// SECURITY: every file-system call goes through this handle: cap-std resolves each path
    /// beneath it (openat2 RESOLVE_BENEATH where the kernel has it) and fails any `..` or
    /// symlink, absolute or relative, that would lead outside, so a check cannot race an open.
    ///
    /// Only local roots have one; `Store::ask` never sends an object-storage root here, and if
    /// it ever did the request fails rather than touching the disk.
    fn dir(&self) -> Result<&Dir, StoreError> {
        match &*self.0 {
            Root::Local(dir) => Ok(dir),
            Root::Object(_) => Err(StoreError::Io(
                "an object-storage root reached the local file store".into(),
            )),
        }
    }
}

/// Freeing a large file's page cache and extents is slow (0.2-0.3 s per GiB here, inside the
/// `unlink` or `rename` that drops its last name). From this size on, DELE, RNTO and uploads
/// that replace a file keep it open across that call and close it afterwards (`Dispose`), so
/// the reply does not wait for it.
const DISPOSE_AFTER_REPLY: u64 = 16 * 1024 * 1024;

/// A handle on `rel`, whose own metadata (`symlink_metadata`, which the caller already has) is
/// `meta`, when it is a regular file of at least `DISPOSE_AFTER_REPLY` with no other hard link,
/// i.e. a file whose data the coming unlink or rename would free. Read-only and O_NONBLOCK
/// (nothing can make the open wait); cap-std keeps it inside the jail. Any failure just means
/// no handle: the caller goes on as before.
fn hold_if_large(dir: &Dir, rel: &Path, meta: &cap_std::fs::Metadata) -> Option<std::fs::File> {
    if !meta.is_file() || meta.len() < DISPOSE_AFTER_REPLY || meta.nlink() > 1 {
        return None;
    }
    dir.open_with(rel, &read_nonblocking())
        .ok()
        .map(|f| f.into_std())
}

/// Read-only, O_NONBLOCK: opening a FIFO (or any file whose open could wait) returns at once,
/// so no pool thread is parked by a name in a user's root.
fn read_nonblocking() -> OpenOptions {
    let mut opts = OpenOptions::new();
    opts.read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32);
    opts
}

fn dispose_later(ctx: &SyncContext<FileStore>, held: Option<std::fs::File>) {
    if let Some(file) = held {
        ctx.address().do_send(Dispose(file));
    }
}

impl Handler<Dispose> for FileStore {
    type Result = ();

    fn handle(&mut self, msg: Dispose, _: &mut SyncContext<Self>) {
        drop(msg.0);
    }
}

/// SECURITY: a path naming an upload temporary file (in any component) is answered as if
/// nothing were there: a client cannot see, read, rename or delete another upload in flight.
fn visible(path: &VirtualPath) -> Result<(), StoreError> {
    if path.names_temp() {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

/// `Stat` in the pool: may block on the disk.
fn stat(jail: &Jail, path: &VirtualPath) -> Result<EntryInfo, StoreError> {
    visible(path)?;
    let meta = jail.dir()?.metadata(path.to_relative())?;
    Ok(entry_info(path.file_name().to_owned(), &meta, None))
}

/// `OpenRead` in the pool: may block on the disk.
fn open_read(jail: &Jail, path: &VirtualPath, offset: u64) -> Result<ReadHandle, StoreError> {
    // SECURITY: only regular files are sent. O_NONBLOCK keeps the open of a FIFO from parking
    // this pool thread until a writer comes; the handle's own type then decides (a FIFO or a
    // device file, which could stream without end, is refused), so no path can be swapped
    // between the check and the open.
    visible(path)?;
    let file = jail
        .dir()?
        .open_with(path.to_relative(), &read_nonblocking())?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(StoreError::IsADirectory);
    }
    if !meta.is_file() {
        return Err(StoreError::PermissionDenied);
    }
    // Reads and sendfile then block as usual.
    let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| StoreError::from(io::Error::from(e)))?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| StoreError::from(io::Error::from(e)))?;
    let size = meta.len();
    if offset > size {
        return Err(StoreError::BadOffset);
    }
    let mut file = file.into_std();
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .map_err(StoreError::from)?;
    }
    let left = size - offset;
    let source = if left <= SMALL_FILE {
        let mut bytes = Vec::with_capacity(left as usize);
        file.read_to_end(&mut bytes).map_err(StoreError::from)?;
        ReadSource::Bytes(bytes)
    } else {
        ReadSource::File(file)
    };
    Ok(ReadHandle { source, size })
}

/// Turns cap-std metadata into a listing entry.
fn entry_info(
    name: String,
    meta: &cap_std::fs::Metadata,
    link_target: Option<String>,
) -> EntryInfo {
    let kind = if let Some(target) = link_target {
        EntryKind::Symlink { target }
    } else if meta.is_dir() {
        EntryKind::Dir
    } else if meta.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    EntryInfo {
        name,
        kind,
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        nlink: meta.nlink(),
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.mtime(),
        dev: meta.dev(),
        ino: meta.ino(),
    }
}

impl Handler<OpenJail> for FileStore {
    type Result = Result<Jail, StoreError>;

    fn handle(&mut self, msg: OpenJail, _: &mut SyncContext<Self>) -> Self::Result {
        Jail::open(&msg.root)
    }
}

impl Handler<Stat> for FileStore {
    type Result = Result<EntryInfo, StoreError>;

    fn handle(&mut self, msg: Stat, _: &mut SyncContext<Self>) -> Self::Result {
        stat(&msg.jail, &msg.path)
    }
}

impl Handler<List> for FileStore {
    type Result = Result<ReadSource, StoreError>;

    fn handle(&mut self, msg: List, _: &mut SyncContext<Self>) -> Self::Result {
        let everything = Selection {
            show_hidden: true,
            ..Selection::default()
        };
        list(&msg, &everything).map(ReadSource::Bytes)
    }
}

impl Handler<ListSelected> for FileStore {
    type Result = Result<ReadSource, StoreError>;

    fn handle(&mut self, msg: ListSelected, _: &mut SyncContext<Self>) -> Self::Result {
        list(&msg.list, &msg.select).map(ReadSource::Bytes)
    }
}

/// A listing of `msg.path` with the entries `select` picks. Blocking: in the pool.
fn list(msg: &List, select: &Selection) -> Result<Vec<u8>, StoreError> {
    visible(&msg.path)?;
    let dir = msg.jail.dir()?;
    let rel = msg.path.to_relative();
    let meta = dir.metadata(&rel)?;
    let mut entries = Vec::new();
    if let ListFormat::Machine(..) = msg.format {
        // RFC 3659 §7.1: MLSD names a directory; a file is an error (501).
        if !meta.is_dir() {
            return Err(StoreError::NotADirectory);
        }
    }
    if meta.is_dir() {
        for entry in dir.read_dir(&rel)? {
            let entry = entry?;
            let os_name = entry.file_name();
            // RFC 2640 §3.2: a name that is not UTF-8 is listed as the bytes it is; the
            // lossless form lets the client name it back (`protocol::rawname`).
            let name = rawname::decode(os_name.as_bytes());
            // SECURITY: uploads in flight (or left by a crash) are not the client's to see.
            if is_temp_name(&name) || !selected(&name, select, entries.len())? {
                continue;
            }
            let child = rel.join(&os_name);
            let Ok(lmeta) = dir.symlink_metadata(&child) else {
                continue;
            };
            if !lmeta.is_symlink() {
                entries.push(entry_info(name, &lmeta, None));
                continue;
            }
            entries.push(link_entry(dir, &rel, name, &child, &lmeta, msg.format));
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        if let (Some(prefix), ListFormat::Names) = (&select.prefix, msg.format) {
            for e in &mut entries {
                e.name = format!("{prefix}{}", e.name);
            }
        }
    } else if select.pattern.is_some() {
        // A pattern filters the entries of a folder; after a file there is nothing to match.
        return Err(StoreError::NotADirectory);
    } else {
        entries.push(entry_info(msg.path.file_name().to_owned(), &meta, None));
    }
    Ok(match msg.format {
        ListFormat::Long => listing::list_body(&entries, msg.now),
        ListFormat::Names => listing::nlst_body(&entries),
        ListFormat::Machine(facts, perm) => listing::mlsd_body(&entries, facts, perm),
    })
}

/// Whether the entry `name` is listed under `select`. SECURITY: a pattern may match at most
/// `MAX_GLOB_MATCHES` names (`found` so far); past that the listing is refused.
fn selected(name: &str, select: &Selection, found: usize) -> Result<bool, StoreError> {
    let Some(pattern) = &select.pattern else {
        return Ok(select.show_hidden || !listing::is_hidden(name));
    };
    // `*` never matches a dotfile; `.*` does, whatever `-a` says (as in the shell).
    if !glob::glob_match(pattern, name)
        || (!select.show_hidden && listing::is_hidden(name) && !pattern.starts_with('.'))
    {
        return Ok(false);
    }
    if found >= MAX_GLOB_MATCHES {
        return Err(StoreError::Refused(
            "Too many names match; narrow the pattern",
        ));
    }
    Ok(true)
}

/// The listing entry of the symlink `child` (in the directory `parent`, both relative to the
/// root), whose own metadata is `lmeta`. MLSD describes what a link leads to when that is
/// inside the jail; LIST shows `name -> target` as ls does, but only for a target inside.
fn link_entry(
    dir: &Dir,
    parent: &Path,
    name: String,
    child: &Path,
    lmeta: &cap_std::fs::Metadata,
    format: ListFormat,
) -> EntryInfo {
    // cap-std follows the link only as far as it stays beneath the root.
    let followed = dir.metadata(child).ok();
    if let (ListFormat::Machine(..), Some(m)) = (format, &followed) {
        return entry_info(name, m, None);
    }
    // SECURITY: the target's text is shown only when the link resolves inside the jail and the
    // text itself does not leave the root (no absolute path, no `..` above the root): a
    // listing must not tell where outside the root a link points, not even its length.
    let shown_target = followed
        .and_then(|_| dir.read_link_contents(child).ok())
        .filter(|target| target_stays_inside(parent, target));
    match shown_target {
        Some(target) => entry_info(
            name,
            lmeta,
            Some(rawname::decode(target.as_os_str().as_bytes())),
        ),
        None => {
            let mut info = entry_info(name, lmeta, None);
            info.kind = EntryKind::OpaqueLink;
            info.size = 0;
            info
        }
    }
}

/// Whether a symlink's literal `target`, found in the directory `parent` (relative to the root,
/// `.` for the root), names something under the root read as plain text: relative, and no `..`
/// climbing above the root at any point.
fn target_stays_inside(parent: &Path, target: &Path) -> bool {
    let mut depth = parent
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    for c in target.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

impl Handler<OpenRead> for FileStore {
    type Result = Result<ReadHandle, StoreError>;

    fn handle(&mut self, msg: OpenRead, _: &mut SyncContext<Self>) -> Self::Result {
        open_read(&msg.jail, &msg.path, msg.offset)
    }
}

impl Handler<AsciiSize> for FileStore {
    type Result = Result<Option<u64>, StoreError>;

    fn handle(&mut self, msg: AsciiSize, _: &mut SyncContext<Self>) -> Self::Result {
        // The same open as RETR: only regular files, inside the jail, upload files invisible.
        let handle = open_read(&msg.jail, &msg.path, 0)?;
        if handle.size > ASCII_SIZE_LIMIT {
            return Ok(None);
        }
        let mut counter = AsciiCounter::default();
        match handle.source {
            ReadSource::Bytes(bytes) => counter.add(&bytes),
            // The ObjectStore answers for objects; nothing here streams one.
            ReadSource::Stream(_) => {
                return Err(StoreError::Io("a stream in the local store".into()))
            }
            ReadSource::File(mut file) => {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match file.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => counter.add(&buf[..n]),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
        Ok(Some(counter.size))
    }
}

/// Counts bytes as TYPE A sends them (`data_channel::lf_to_crlf`): an LF not preceded by CR
/// becomes CR LF.
#[derive(Default)]
pub(crate) struct AsciiCounter {
    size: u64,
    prev_cr: bool,
}

impl AsciiCounter {
    pub(crate) fn add(&mut self, chunk: &[u8]) {
        for &b in chunk {
            self.size += if b == b'\n' && !self.prev_cr { 2 } else { 1 };
            self.prev_cr = b == b'\r';
        }
    }
}
