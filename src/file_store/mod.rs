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

pub mod resolver;
pub mod vpath;

use crate::error::StoreError;
use crate::listing::{self, EntryInfo, EntryKind, MlsxFacts, PermFact};
use actix::prelude::*;
use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};
pub use resolver::Resolver;
use std::ffi::OsStr;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
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

/// A handle to a user's root directory. Cloning is cheap; all clones share one descriptor.
#[derive(Clone)]
pub struct Jail(Arc<Dir>);

impl std::fmt::Debug for Jail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Jail(..)")
    }
}

impl Jail {
    /// Opens a root directory as a jail. Blocking: at start-up, or inside the FileStore.
    pub fn open(root: &Path) -> Result<Jail, StoreError> {
        let dir = Dir::open_ambient_dir(root, cap_std::ambient_authority())?;
        Ok(Jail(Arc::new(dir)))
    }

    /// SECURITY: every file-system call goes through this handle: cap-std resolves each path
    /// beneath it (openat2 RESOLVE_BENEATH where the kernel has it) and fails any `..` or
    /// symlink, absolute or relative, that would lead outside, so a check cannot race an open.
    fn dir(&self) -> &Dir {
        &self.0
    }
}

/// Opens a user's root as a jail (at login).
#[derive(Message)]
#[rtype(result = "Result<Jail, StoreError>")]
pub struct OpenJail {
    pub root: PathBuf,
}

/// Metadata of one path, following symlinks that stay inside the jail.
#[derive(Message)]
#[rtype(result = "Result<EntryInfo, StoreError>")]
pub struct Stat {
    pub jail: Jail,
    pub path: VirtualPath,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// `ls -l` lines.
    Long,
    /// Bare names.
    Names,
    /// RFC 3659 MLSD lines with these facts.
    Machine(MlsxFacts, PermFact),
}

/// A directory listing (or one line for a file), formatted and ready to send.
#[derive(Message)]
#[rtype(result = "Result<Vec<u8>, StoreError>")]
pub struct List {
    pub jail: Jail,
    pub path: VirtualPath,
    pub format: ListFormat,
    /// Seconds since the epoch, for the recent/old date format.
    pub now: i64,
}

/// A file opened for download.
#[derive(Debug)]
pub struct ReadHandle {
    pub source: ReadSource,
    /// The whole file's size.
    pub size: u64,
}

/// Files up to this size are read here, on the FileStore's pool, and sent from memory: a
/// small transfer then needs no blocking-pool thread at all.
pub const SMALL_FILE: u64 = 64 * 1024;

/// What a download sends from.
#[derive(Debug)]
pub enum ReadSource {
    /// An open file, positioned at the restart offset.
    File(std::fs::File),
    /// A small file's bytes from the restart offset on.
    Bytes(Vec<u8>),
}

/// Opens a file for RETR, positioned at `offset`.
#[derive(Message)]
#[rtype(result = "Result<ReadHandle, StoreError>")]
pub struct OpenRead {
    pub jail: Jail,
    pub path: VirtualPath,
    pub offset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// STOR: write a temporary file beside the target, renamed over it on success.
    Replace { allow_overwrite: bool },
    /// APPE: append in place.
    Append,
    /// REST + STOR: write in place from this offset.
    At(u64),
}

/// Where an upload goes. A `Replace` upload lives under a temporary name until `FinishUpload`.
/// Dropped without a `FinishUpload` (the session went away while the store was opening it, or
/// mid-transfer), it asks the store to remove its temporary file, so no failure path leaves one.
#[derive(Debug)]
pub struct UploadTarget {
    temp: Option<PathBuf>,
    dest: PathBuf,
    /// From `WriteMode::Replace`: whether the final rename may replace a file that exists by
    /// then. Checked again at the rename itself, not only at the open.
    allow_overwrite: bool,
    /// Who removes the temporary file if this is dropped unfinished.
    abandon: Option<(Addr<FileStore>, Jail)>,
    /// For a `Replace` upload, the folder it is in, opened (beneath the root) when the upload
    /// began; `temp` and `dest` are then single names in it. The rename into place and the
    /// removal find the temporary file even if the folder was renamed meanwhile.
    folder: Option<Arc<Dir>>,
}

impl Drop for UploadTarget {
    fn drop(&mut self) {
        let (Some(temp), Some((store, jail))) = (self.temp.take(), self.abandon.take()) else {
            return;
        };
        store.do_send(FinishUpload {
            jail,
            target: UploadTarget {
                temp: Some(temp),
                dest: std::mem::take(&mut self.dest),
                allow_overwrite: false,
                abandon: None,
                folder: self.folder.take(),
            },
            keep: false,
        });
    }
}

#[derive(Debug)]
pub struct Upload {
    pub file: std::fs::File,
    pub target: UploadTarget,
}

/// Opens a file for STOR/APPE.
#[derive(Message)]
#[rtype(result = "Result<Upload, StoreError>")]
pub struct OpenWrite {
    pub jail: Jail,
    pub path: VirtualPath,
    pub mode: WriteMode,
}

/// Ends an upload: `keep` renames the temporary file over the target, otherwise it is removed.
#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct FinishUpload {
    pub jail: Jail,
    pub target: UploadTarget,
    pub keep: bool,
}

#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct MakeDir {
    pub jail: Jail,
    pub path: VirtualPath,
}

#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RemoveDir {
    pub jail: Jail,
    pub path: VirtualPath,
}

#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct RemoveFile {
    pub jail: Jail,
    pub path: VirtualPath,
}

#[derive(Message)]
#[rtype(result = "Result<(), StoreError>")]
pub struct Rename {
    pub jail: Jail,
    pub from: VirtualPath,
    pub to: VirtualPath,
    pub allow_overwrite: bool,
}

/// A file whose last name is gone; dropping the handle frees its data. The FileStore sends it to
/// itself, so another pool thread does that work after the reply has left.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Dispose(pub std::fs::File);

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

/// SECURITY: nor can a client create a file or directory under such a name (one that a
/// running upload would collide with, or that the start-up sweep would remove).
fn creatable(path: &VirtualPath) -> Result<(), StoreError> {
    if path.names_temp() {
        Err(StoreError::InvalidName)
    } else {
        Ok(())
    }
}

/// `Stat` in the pool: may block on the disk.
fn stat(jail: &Jail, path: &VirtualPath) -> Result<EntryInfo, StoreError> {
    visible(path)?;
    let meta = jail.dir().metadata(path.to_relative())?;
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
        .dir()
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

/// The root itself is refused as a target of destructive calls.
fn non_root(path: &VirtualPath) -> Result<PathBuf, StoreError> {
    if path.is_root() {
        Err(StoreError::PermissionDenied)
    } else {
        Ok(path.to_relative())
    }
}

/// A fresh temporary name in the same directory as `dest`, so the final rename is atomic.
fn temp_name_for(dest: &Path) -> Result<PathBuf, StoreError> {
    let mut rnd = [0u8; 8];
    getrandom::getrandom(&mut rnd).map_err(|e| StoreError::Io(e.to_string()))?;
    let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("{}{hex}{}", vpath::TEMP_PREFIX, vpath::TEMP_SUFFIX);
    debug_assert!(is_temp_name(&name));
    Ok(match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => PathBuf::from(name),
    })
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
    type Result = Result<Vec<u8>, StoreError>;

    fn handle(&mut self, msg: List, _: &mut SyncContext<Self>) -> Self::Result {
        visible(&msg.path)?;
        let dir = msg.jail.dir();
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
                let Ok(name) = entry.file_name().into_string() else {
                    // Names that are not UTF-8 cannot be named by a client (RFC 2640): skip them.
                    continue;
                };
                // SECURITY: uploads in flight (or left by a crash) are not the client's to see.
                if is_temp_name(&name) {
                    continue;
                }
                let child = rel.join(&name);
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
        } else {
            entries.push(entry_info(msg.path.file_name().to_owned(), &meta, None));
        }
        Ok(match msg.format {
            ListFormat::Long => listing::list_body(&entries, msg.now),
            ListFormat::Names => listing::nlst_body(&entries),
            ListFormat::Machine(facts, perm) => listing::mlsd_body(&entries, facts, perm),
        })
    }
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
        Some(target) => entry_info(name, lmeta, Some(target.to_string_lossy().into_owned())),
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

impl Handler<OpenWrite> for FileStore {
    type Result = Result<Upload, StoreError>;

    fn handle(&mut self, msg: OpenWrite, ctx: &mut SyncContext<Self>) -> Self::Result {
        creatable(&msg.path)?;
        let dir = msg.jail.dir();
        let dest = non_root(&msg.path)?;
        let allow_overwrite = match msg.mode {
            WriteMode::Replace { allow_overwrite } => allow_overwrite,
            // In-place writes need the overwrite permission to be asked for at all.
            WriteMode::Append | WriteMode::At(_) => true,
        };
        let existing_len = match dir.metadata(&dest) {
            Ok(m) if m.is_dir() => return Err(StoreError::IsADirectory),
            Ok(m) => {
                // An early answer; `FinishUpload` enforces it again at the rename.
                if !allow_overwrite {
                    return Err(StoreError::PermissionDenied);
                }
                m.len()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        // RFC 3659 §5.5: a restart offset past the end is refused before anything is created.
        if let WriteMode::At(offset) = msg.mode {
            if offset > existing_len {
                return Err(StoreError::BadOffset);
            }
        }
        let mut opts = OpenOptions::new();
        opts.write(true).mode(0o644);
        match msg.mode {
            WriteMode::Replace { .. } => {
                let (parent, name) = split_last(&dest)?;
                let folder = Arc::new(dir.open_dir(parent)?);
                let dest = PathBuf::from(name);
                let temp = temp_name_for(&dest)?;
                opts.create_new(true);
                let file = folder.open_with(&temp, &opts)?.into_std();
                // The lock lives as long as the upload's file handle (the DataChannel's): the
                // start-up sweep of another daemon on this root leaves a locked file alone.
                // Without lock support on this file system the sweep leaves it alone as well.
                if let Err(e) =
                    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                {
                    log::debug!("upload temporary file not locked: {e}");
                }
                Ok(Upload {
                    file,
                    target: UploadTarget {
                        temp: Some(temp),
                        dest,
                        allow_overwrite,
                        abandon: Some((ctx.address(), msg.jail.clone())),
                        folder: Some(folder),
                    },
                })
            }
            WriteMode::Append => {
                opts.create(true).append(true);
                let file = dir.open_with(&dest, &opts)?.into_std();
                Ok(Upload {
                    file,
                    target: UploadTarget {
                        temp: None,
                        dest,
                        allow_overwrite,
                        abandon: None,
                        folder: None,
                    },
                })
            }
            WriteMode::At(offset) => {
                opts.create(true);
                let mut file = dir.open_with(&dest, &opts)?.into_std();
                let len = file.metadata().map_err(StoreError::from)?.len();
                if offset > len {
                    return Err(StoreError::BadOffset);
                }
                file.seek(SeekFrom::Start(offset))
                    .map_err(StoreError::from)?;
                Ok(Upload {
                    file,
                    target: UploadTarget {
                        temp: None,
                        dest,
                        allow_overwrite,
                        abandon: None,
                        folder: None,
                    },
                })
            }
        }
    }
}

impl Handler<FinishUpload> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: FinishUpload, ctx: &mut SyncContext<Self>) -> Self::Result {
        let FinishUpload {
            jail,
            mut target,
            keep,
        } = msg;
        // Finished here, whatever the outcome: its drop has nothing left to do.
        target.abandon = None;
        let replaced = finish_upload(jail.dir(), &target, keep)?;
        dispose_later(ctx, replaced);
        Ok(())
    }
}

/// `FinishUpload` in the pool. Whatever happens, the temporary file is gone afterwards: renamed
/// into place, or removed. Returns the replaced file's handle when it should be freed later.
fn finish_upload(
    dir: &Dir,
    target: &UploadTarget,
    keep: bool,
) -> Result<Option<std::fs::File>, StoreError> {
    let Some(temp) = &target.temp else {
        // In-place uploads (APPE, REST+STOR) keep what was written either way.
        return Ok(None);
    };
    let dir = target.folder.as_deref().unwrap_or(dir);
    if !keep {
        dir.remove_file(temp)?;
        return Ok(None);
    }
    let result = if target.allow_overwrite {
        let replaced = dir
            .symlink_metadata(&target.dest)
            .ok()
            .and_then(|meta| hold_if_large(dir, &target.dest, &meta));
        dir.rename(temp, dir, &target.dest)
            .map(|()| replaced)
            .map_err(StoreError::from)
    } else {
        // SECURITY: without the overwrite permission the rename itself refuses to replace: a
        // file stored under this name since the upload began (by another session, say) stays.
        rename_noreplace(dir, temp, &target.dest).map(|()| None)
    };
    if result.is_err() {
        let _ = dir.remove_file(temp);
    }
    result
}

/// Splits a root-relative path into its parent (`.` for the root) and its last component.
/// SECURITY: VirtualPath makes only plain components; anything else (`..`, `.`, `/`) is
/// refused here rather than handed to a system call that would not confine it.
fn split_last(rel: &Path) -> Result<(&Path, &OsStr), StoreError> {
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(StoreError::InvalidName);
    }
    let Some(Component::Normal(name)) = rel.components().next_back() else {
        return Err(StoreError::InvalidName);
    };
    let parent = match rel.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((parent, name))
}

/// Renames `from` to `to` (both relative to the root) only if `to` does not exist, atomically:
/// `AlreadyExists` if it does, whenever it appeared.
///
/// SECURITY: `renameat2` is given directory handles that cap-std opened beneath the root and a
/// single final component each, so no symlink in an intermediate component is followed outside
/// (a multi-component path handed to the system call directly would not be confined).
fn rename_noreplace(dir: &Dir, from: &Path, to: &Path) -> Result<(), StoreError> {
    use rustix::fs::{renameat_with, RenameFlags};
    use rustix::io::Errno;
    let (from_parent, from_name) = split_last(from)?;
    let (to_parent, to_name) = split_last(to)?;
    let from_dir = dir.open_dir(from_parent)?;
    let to_dir = if to_parent == from_parent {
        None
    } else {
        Some(dir.open_dir(to_parent)?)
    };
    let to_dir = to_dir.as_ref().unwrap_or(&from_dir);
    match renameat_with(
        &from_dir,
        from_name,
        to_dir,
        to_name,
        RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(StoreError::AlreadyExists),
        // A file system without RENAME_NOREPLACE (EINVAL; some return ENOSYS or EOPNOTSUPP).
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
            link_then_unlink(&from_dir, from_name, to_dir, to_name)
        }
        Err(e) => Err(io::Error::from(e).into()),
    }
}

/// The fallback for `rename_noreplace`: a hard link fails if the new name exists, whenever it
/// appeared; then the old name goes. A directory cannot be hard-linked: it is refused
/// (`InvalidName`) rather than renamed with a check that could race.
fn link_then_unlink(
    from_dir: &Dir,
    from_name: &OsStr,
    to_dir: &Dir,
    to_name: &OsStr,
) -> Result<(), StoreError> {
    if from_dir.symlink_metadata(from_name)?.is_dir() {
        return Err(StoreError::InvalidName);
    }
    from_dir.hard_link(from_name, to_dir, to_name)?;
    from_dir.remove_file(from_name)?;
    Ok(())
}

impl Handler<MakeDir> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: MakeDir, _: &mut SyncContext<Self>) -> Self::Result {
        creatable(&msg.path)?;
        Ok(msg.jail.dir().create_dir(non_root(&msg.path)?)?)
    }
}

impl Handler<RemoveDir> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: RemoveDir, _: &mut SyncContext<Self>) -> Self::Result {
        visible(&msg.path)?;
        Ok(msg.jail.dir().remove_dir(non_root(&msg.path)?)?)
    }
}

impl Handler<RemoveFile> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: RemoveFile, ctx: &mut SyncContext<Self>) -> Self::Result {
        visible(&msg.path)?;
        let dir = msg.jail.dir();
        let rel = non_root(&msg.path)?;
        let meta = dir.symlink_metadata(&rel)?;
        if meta.is_dir() {
            return Err(StoreError::IsADirectory);
        }
        let removed = hold_if_large(dir, &rel, &meta);
        dir.remove_file(rel)?;
        dispose_later(ctx, removed);
        Ok(())
    }
}

impl Handler<Rename> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: Rename, ctx: &mut SyncContext<Self>) -> Self::Result {
        visible(&msg.from)?;
        creatable(&msg.to)?;
        let dir = msg.jail.dir();
        let from = non_root(&msg.from)?;
        let to = non_root(&msg.to)?;
        dir.symlink_metadata(&from)?;
        let existing = dir.symlink_metadata(&to).ok();
        if !msg.allow_overwrite {
            // The early answer for the common case; the rename itself is the guarantee.
            if existing.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            return rename_noreplace(dir, &from, &to);
        }
        let replaced = existing.and_then(|meta| hold_if_large(dir, &to, &meta));
        dir.rename(from, dir, to)?;
        dispose_later(ctx, replaced);
        Ok(())
    }
}

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
struct Sweep {
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
fn remove_if_abandoned(dir: &OwnedFd, name: &std::ffi::CStr) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::symlink;

    const TEMP: &str = ".actorftpd-upload-0123456789abcdef.part";

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::root().join(s)
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Opens an upload through the pool, as STOR does.
    async fn open_upload(
        store: &Addr<FileStore>,
        jail: &Jail,
        path: &str,
        allow_overwrite: bool,
    ) -> Result<Upload, StoreError> {
        store
            .send(OpenWrite {
                jail: jail.clone(),
                path: vp(path),
                mode: WriteMode::Replace { allow_overwrite },
            })
            .await
            .expect("store answers")
    }

    #[actix::test]
    async fn an_upload_whose_folder_is_renamed_meanwhile_still_ends_cleanly() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = FileStore::start_pool(1);
        let jail = Jail::open(tmp.path()).expect("jail");
        for (keep, overwrite) in [(true, true), (true, false), (false, true)] {
            fs::create_dir(tmp.path().join("d")).expect("dir");
            let mut upload = open_upload(&store, &jail, "d/x", overwrite)
                .await
                .expect("open");
            upload.file.write_all(b"uploaded").expect("write");
            // Another session renames the folder while the upload runs.
            fs::rename(tmp.path().join("d"), tmp.path().join("e")).expect("rename");
            let answer = store
                .send(FinishUpload {
                    jail: jail.clone(),
                    target: upload.target,
                    keep,
                })
                .await
                .expect("store answers");
            assert_eq!(answer, Ok(()), "keep {keep}, overwrite {overwrite}");
            // The upload lands (or is removed) in the folder it began in, under its new name;
            // no hidden temporary file is left to keep the folder from being removed.
            let want: Vec<String> = if keep { vec!["x".into()] } else { vec![] };
            assert_eq!(names(&tmp.path().join("e")), want);
            fs::remove_dir_all(tmp.path().join("e")).expect("clean");
        }
    }

    #[actix::test]
    async fn an_upload_dropped_unfinished_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let store = FileStore::start_pool(1);
        let jail = Jail::open(tmp.path()).expect("jail");
        fs::write(tmp.path().join("x"), b"original").expect("original");
        let mut upload = open_upload(&store, &jail, "x", true).await.expect("open");
        upload.file.write_all(b"half an upload").expect("write");
        assert_eq!(
            names(tmp.path()).len(),
            2,
            "the temporary file exists meanwhile"
        );
        // The session that asked went away (its answer, or its transfer, was dropped).
        drop(upload);
        // The removal is a message to the pool: a request sent after it is answered after it.
        let probe = store.send(Stat {
            jail: jail.clone(),
            path: vp("x"),
        });
        assert!(probe.await.expect("store answers").is_ok());
        assert_eq!(names(tmp.path()), vec!["x".to_owned()]);
        assert_eq!(fs::read(tmp.path().join("x")).expect("read"), b"original");
    }

    #[actix::test]
    async fn an_upload_without_overwrite_never_replaces_a_file_that_appeared_meanwhile() {
        let tmp = tempfile::tempdir().expect("temp dir");
        fs::create_dir(tmp.path().join("d")).expect("dir");
        let store = FileStore::start_pool(1);
        let jail = Jail::open(tmp.path()).expect("jail");
        for path in ["x", "d/x"] {
            // The name is free when the upload starts...
            let mut upload = open_upload(&store, &jail, path, false).await.expect("open");
            upload.file.write_all(b"first upload").expect("write");
            drop(upload.file);
            // ...and taken (by another session's upload, say) before it ends.
            fs::write(tmp.path().join(path), b"second upload").expect("other file");
            let answer = store
                .send(FinishUpload {
                    jail: jail.clone(),
                    target: upload.target,
                    keep: true,
                })
                .await
                .expect("store answers");
            assert_eq!(answer, Err(StoreError::AlreadyExists), "{path}");
            assert_eq!(
                fs::read(tmp.path().join(path)).expect("read"),
                b"second upload",
                "{path}"
            );
        }
        assert_eq!(names(tmp.path()), ["d", "x"], "no temporary file is left");
        assert_eq!(names(&tmp.path().join("d")), ["x"]);

        // With the name still free the same upload lands, and with overwrite it replaces.
        let mut upload = open_upload(&store, &jail, "y", false).await.expect("open");
        upload.file.write_all(b"new").expect("write");
        let done = store.send(FinishUpload {
            jail: jail.clone(),
            target: upload.target,
            keep: true,
        });
        assert_eq!(done.await.expect("answer"), Ok(()));
        assert_eq!(fs::read(tmp.path().join("y")).expect("read"), b"new");
        let mut upload = open_upload(&store, &jail, "y", true).await.expect("open");
        upload.file.write_all(b"newer").expect("write");
        let done = store.send(FinishUpload {
            jail: jail.clone(),
            target: upload.target,
            keep: true,
        });
        assert_eq!(done.await.expect("answer"), Ok(()));
        assert_eq!(fs::read(tmp.path().join("y")).expect("read"), b"newer");
        assert_eq!(
            open_upload(&store, &jail, "y", false).await.err(),
            Some(StoreError::PermissionDenied),
            "the early answer at the open stays"
        );
        assert_eq!(names(tmp.path()), ["d", "x", "y"]);
    }

    #[test]
    fn rename_without_overwrite_is_exclusive_and_stays_in_the_jail() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(root.join("d")).expect("dirs");
        fs::create_dir_all(&outside).expect("outside");
        symlink(&outside, root.join("out")).expect("link");
        fs::write(root.join("a"), b"a").expect("a");
        fs::write(root.join("b"), b"b").expect("b");
        let dir = Dir::open_ambient_dir(&root, cap_std::ambient_authority()).expect("dir");
        let p = Path::new;

        assert_eq!(
            rename_noreplace(&dir, p("a"), p("b")),
            Err(StoreError::AlreadyExists)
        );
        assert_eq!(
            link_then_unlink(&dir, OsStr::new("a"), &dir, OsStr::new("b")),
            Err(StoreError::AlreadyExists)
        );
        assert_eq!(fs::read(root.join("a")).expect("a"), b"a");
        assert_eq!(fs::read(root.join("b")).expect("b"), b"b");

        assert_eq!(rename_noreplace(&dir, p("a"), p("d/a")), Ok(()));
        let d = dir.open_dir("d").expect("d");
        assert_eq!(
            link_then_unlink(&d, OsStr::new("a"), &dir, OsStr::new("c")),
            Ok(())
        );
        assert_eq!(fs::read(root.join("c")).expect("c"), b"a");
        assert!(!root.join("d/a").exists());
        // A directory is not hard-linked: the fallback refuses it.
        assert_eq!(
            link_then_unlink(&dir, OsStr::new("d"), &dir, OsStr::new("e")),
            Err(StoreError::InvalidName)
        );

        // SECURITY: a symlink in an intermediate component does not lead the rename outside.
        assert!(rename_noreplace(&dir, p("c"), p("out/c")).is_err());
        assert!(rename_noreplace(&dir, p("out/x"), p("x")).is_err());
        assert_eq!(names(&outside), Vec::<String>::new());
        for bad in ["..", "d/..", "/etc/x", "."] {
            assert_eq!(
                rename_noreplace(&dir, p("c"), p(bad)),
                Err(StoreError::InvalidName),
                "{bad}"
            );
        }
        assert_eq!(names(&root), ["b", "c", "d", "out"]);
    }

    #[test]
    fn link_targets_are_inside_only_as_plain_text_below_the_root() {
        let cases = [
            (".", "a", true),
            (".", "sub/file", true),
            (".", "./sub/../file", true),
            ("d", "../file", true),
            ("d/e", "../../file", true),
            (".", "../root/file", false),
            (".", "sub/../../x", false),
            ("d", "../../x", false),
            (".", "/etc/passwd", false),
            ("d", "/d/file", false),
        ];
        for (parent, target, want) in cases {
            assert_eq!(
                target_stays_inside(Path::new(parent), Path::new(target)),
                want,
                "{parent} + {target}"
            );
        }
    }

    #[actix::test]
    async fn listings_hide_upload_files_and_where_outside_links_point() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("root");
        fs::create_dir_all(root.join("sub")).expect("dirs");
        fs::write(root.join("sub/file"), b"inside").expect("file");
        fs::write(root.join(TEMP), b"in flight").expect("temp");
        fs::write(tmp.path().join("secret"), b"outside").expect("secret");
        symlink("sub/file", root.join("in")).expect("link");
        symlink(tmp.path().join("secret"), root.join("abs")).expect("link");
        symlink("../secret", root.join("rel")).expect("link");
        symlink("../root/sub/file", root.join("climb")).expect("link");
        symlink("nowhere", root.join("dangling")).expect("link");
        let store = FileStore::start_pool(1);
        let jail = Jail::open(&root).expect("jail");
        let list = |format| {
            store.send(List {
                jail: jail.clone(),
                path: VirtualPath::root(),
                format,
                now: 0,
            })
        };
        let long = list(ListFormat::Long).await.expect("answer").expect("LIST");
        let long = String::from_utf8(long).expect("utf8");
        let names = list(ListFormat::Names)
            .await
            .expect("answer")
            .expect("NLST");
        let machine = list(ListFormat::Machine(
            MlsxFacts::default(),
            PermFact::default(),
        ))
        .await
        .expect("answer")
        .expect("MLSD");
        let machine = String::from_utf8(machine).expect("utf8");
        for text in [&long, &String::from_utf8(names).expect("utf8"), &machine] {
            assert!(!text.contains("actorftpd-upload"), "{text}");
            assert!(!text.contains("secret"), "{text}");
            assert!(!text.contains("root/"), "{text}");
            assert!(!text.contains("nowhere"), "{text}");
        }
        assert!(long.contains(" in -> sub/file\r\n"), "{long}");
        for name in ["abs", "rel", "climb", "dangling"] {
            let line = long
                .lines()
                .find(|l| l.ends_with(&format!(" {name}")))
                .unwrap_or_else(|| panic!("no line for {name}: {long}"));
            assert!(line.starts_with('l'), "{line}");
            assert!(!line.contains("->"), "{line}");
        }
        assert!(machine.contains("type=OS.unix=symlink;"), "{machine}");
        assert!(machine.contains("type=file;size=6;"), "{machine}");
        // The temp file cannot be named either.
        let stat = store.send(List {
            jail: jail.clone(),
            path: vp(TEMP),
            format: ListFormat::Long,
            now: 0,
        });
        assert_eq!(stat.await.expect("answer"), Err(StoreError::NotFound));
    }

    #[actix::test]
    async fn no_request_can_name_an_upload_file() {
        let tmp = tempfile::tempdir().expect("temp dir");
        fs::write(tmp.path().join(TEMP), b"in flight").expect("temp");
        fs::write(tmp.path().join("real"), b"real").expect("real");
        let store = FileStore::start_pool(1);
        let jail = Jail::open(tmp.path()).expect("jail");
        let j = || jail.clone();
        let not_found = Err(StoreError::NotFound);
        let bad_name: Result<(), StoreError> = Err(StoreError::InvalidName);
        for path in [TEMP, &format!("{TEMP}/below")] {
            let s = store.send(Stat {
                jail: j(),
                path: vp(path),
            });
            assert_eq!(s.await.expect("answer").map(|_| ()), not_found);
            let r = store.send(OpenRead {
                jail: j(),
                path: vp(path),
                offset: 0,
            });
            assert_eq!(r.await.expect("answer").map(|_| ()), not_found);
            let d = store.send(RemoveFile {
                jail: j(),
                path: vp(path),
            });
            assert_eq!(d.await.expect("answer"), not_found);
            let d = store.send(RemoveDir {
                jail: j(),
                path: vp(path),
            });
            assert_eq!(d.await.expect("answer"), not_found);
            let m = store.send(MakeDir {
                jail: j(),
                path: vp(path),
            });
            assert_eq!(m.await.expect("answer"), bad_name);
            for mode in [
                WriteMode::Replace {
                    allow_overwrite: true,
                },
                WriteMode::Append,
                WriteMode::At(0),
            ] {
                let w = store.send(OpenWrite {
                    jail: j(),
                    path: vp(path),
                    mode,
                });
                assert_eq!(w.await.expect("answer").map(|_| ()), bad_name, "{mode:?}");
            }
            for (from, to, want) in [(path, "new", &not_found), ("real", path, &bad_name)] {
                let r = store.send(Rename {
                    jail: j(),
                    from: vp(from),
                    to: vp(to),
                    allow_overwrite: true,
                });
                assert_eq!(&r.await.expect("answer"), want, "{from} -> {to}");
            }
        }
        assert_eq!(names(tmp.path()), [TEMP, "real"]);
        assert_eq!(fs::read(tmp.path().join(TEMP)).expect("temp"), b"in flight");
    }

    #[test]
    fn the_sweep_removes_only_abandoned_upload_files_and_never_follows_links() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        let other = ".actorftpd-upload-fedcba9876543210.part";
        fs::create_dir_all(root.join("a/b/c")).expect("dirs");
        fs::create_dir_all(&outside).expect("outside");
        for dir in [&root, &root.join("a"), &root.join("a/b/c"), &outside] {
            fs::write(dir.join(TEMP), b"left by a crash").expect("temp");
        }
        let keep = [
            "keep.txt",
            ".actorftpd-upload-0123456789abcdef.part.keep",
            ".actorftpd-upload-xyz.part",
            "actorftpd-upload-0123456789abcdef.part",
        ];
        for name in keep {
            fs::write(root.join(name), b"keep").expect("keep");
        }
        // A directory and a symlink under a temp name are not ours to remove, and the link is
        // not followed (its target outside has a temp file too).
        fs::create_dir(root.join("a").join(other)).expect("temp-named dir");
        symlink(&outside, root.join("a/b").join(other)).expect("temp-named link");
        symlink(&outside, root.join("link-out")).expect("link");
        // An upload in flight (another daemon on this root) holds its lock.
        let busy = root
            .join("a/b")
            .join(".actorftpd-upload-00000000000000aa.part");
        let held = fs::File::create(&busy).expect("busy");
        rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .expect("lock");

        assert_eq!(sweep_temp_files(&root).expect("sweep"), 3);
        assert!(!root.join(TEMP).exists());
        assert!(!root.join("a").join(TEMP).exists());
        assert!(!root.join("a/b/c").join(TEMP).exists());
        assert!(outside.join(TEMP).exists(), "the sweep followed a symlink");
        for name in keep {
            assert!(root.join(name).exists(), "{name}");
        }
        assert!(root.join("a").join(other).is_dir());
        assert!(root.join("a/b").join(other).is_symlink());
        assert!(busy.exists(), "a locked upload file was removed");
        // Once its upload is gone, the next start removes it.
        drop(held);
        assert_eq!(sweep_temp_files(&root).expect("sweep"), 1);
        assert!(!busy.exists());
        assert_eq!(sweep_temp_files(&root).expect("sweep"), 0);
        assert!(sweep_temp_files(&tmp.path().join("missing")).is_err());
    }

    #[test]
    fn the_sweep_stops_at_its_depth_bound() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut deep = tmp.path().to_path_buf();
        for _ in 0..=SWEEP_MAX_DEPTH {
            deep.push("d");
        }
        fs::create_dir_all(&deep).expect("deep dirs");
        fs::write(deep.join(TEMP), b"too deep").expect("deep temp");
        fs::write(tmp.path().join("d").join(TEMP), b"shallow").expect("shallow temp");
        fs::create_dir(tmp.path().join("e")).expect("sibling");
        fs::write(tmp.path().join("e").join(TEMP), b"sibling").expect("sibling temp");
        assert_eq!(sweep_temp_files(tmp.path()).expect("sweep"), 2);
        assert!(deep.join(TEMP).exists());
    }
}
