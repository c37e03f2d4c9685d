//! The FileStore actor: every file-system call, behind the jail.
//!
//! One shared pool (`SyncArbiter`, a few threads) answers typed requests, so blocking
//! metadata calls never run on a worker Arbiter. Each request carries the session's `Jail`, a
//! handle to the user's root directory; every path is opened relative to that handle with
//! cap-std, which refuses any resolution (`..`, absolute symlinks, symlinks to `..`) that
//! would leave it. Open requests return file handles, so nothing can swap the path between
//! the check and the transfer.

pub mod resolver;
pub mod vpath;

use crate::error::StoreError;
use crate::listing::{self, EntryInfo, EntryKind, MlsxFacts, PermFact};
use actix::prelude::*;
use cap_std::fs::{Dir, MetadataExt, OpenOptions, OpenOptionsExt};
pub use resolver::Resolver;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use vpath::VirtualPath;

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
#[derive(Debug, Clone)]
pub struct UploadTarget {
    temp: Option<PathBuf>,
    dest: PathBuf,
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

/// `Stat` in the pool: may block on the disk.
fn stat(jail: &Jail, path: &VirtualPath) -> Result<EntryInfo, StoreError> {
    let meta = jail.dir().metadata(path.to_relative())?;
    Ok(entry_info(path.file_name().to_owned(), &meta, None))
}

/// `OpenRead` in the pool: may block on the disk.
fn open_read(jail: &Jail, path: &VirtualPath, offset: u64) -> Result<ReadHandle, StoreError> {
    // SECURITY: only regular files are sent. O_NONBLOCK keeps the open of a FIFO from parking
    // this pool thread until a writer comes; the handle's own type then decides (a FIFO or a
    // device file, which could stream without end, is refused), so no path can be swapped
    // between the check and the open.
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
    let name = format!(".actorftpd-upload-{hex}.part");
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
                let child = rel.join(&name);
                let Ok(lmeta) = dir.symlink_metadata(&child) else {
                    continue;
                };
                if !lmeta.is_symlink() {
                    entries.push(entry_info(name, &lmeta, None));
                    continue;
                }
                // MLSD describes what a link leads to when that is inside the jail; LIST shows
                // `name -> target` as ls does.
                let followed = match msg.format {
                    ListFormat::Machine(..) => dir.metadata(&child).ok(),
                    _ => None,
                };
                match followed {
                    Some(m) => entries.push(entry_info(name, &m, None)),
                    None => {
                        let target = dir
                            .read_link_contents(&child)
                            .map(|t| t.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        entries.push(entry_info(name, &lmeta, Some(target)));
                    }
                }
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

impl Handler<OpenRead> for FileStore {
    type Result = Result<ReadHandle, StoreError>;

    fn handle(&mut self, msg: OpenRead, _: &mut SyncContext<Self>) -> Self::Result {
        open_read(&msg.jail, &msg.path, msg.offset)
    }
}

impl Handler<OpenWrite> for FileStore {
    type Result = Result<Upload, StoreError>;

    fn handle(&mut self, msg: OpenWrite, _: &mut SyncContext<Self>) -> Self::Result {
        let dir = msg.jail.dir();
        let dest = non_root(&msg.path)?;
        let existing_len = match dir.metadata(&dest) {
            Ok(m) if m.is_dir() => return Err(StoreError::IsADirectory),
            Ok(m) => {
                if msg.mode
                    == (WriteMode::Replace {
                        allow_overwrite: false,
                    })
                {
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
                let temp = temp_name_for(&dest)?;
                opts.create_new(true);
                let file = dir.open_with(&temp, &opts)?.into_std();
                Ok(Upload {
                    file,
                    target: UploadTarget {
                        temp: Some(temp),
                        dest,
                    },
                })
            }
            WriteMode::Append => {
                opts.create(true).append(true);
                let file = dir.open_with(&dest, &opts)?.into_std();
                Ok(Upload {
                    file,
                    target: UploadTarget { temp: None, dest },
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
                    target: UploadTarget { temp: None, dest },
                })
            }
        }
    }
}

impl Handler<FinishUpload> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: FinishUpload, ctx: &mut SyncContext<Self>) -> Self::Result {
        let Some(temp) = &msg.target.temp else {
            // In-place uploads (APPE, REST+STOR) keep what was written either way.
            return Ok(());
        };
        let dir = msg.jail.dir();
        if msg.keep {
            let replaced = dir
                .symlink_metadata(&msg.target.dest)
                .ok()
                .and_then(|meta| hold_if_large(dir, &msg.target.dest, &meta));
            if let Err(e) = dir.rename(temp, dir, &msg.target.dest) {
                let _ = dir.remove_file(temp);
                return Err(e.into());
            }
            dispose_later(ctx, replaced);
            Ok(())
        } else {
            dir.remove_file(temp).map_err(StoreError::from)
        }
    }
}

impl Handler<MakeDir> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: MakeDir, _: &mut SyncContext<Self>) -> Self::Result {
        Ok(msg.jail.dir().create_dir(non_root(&msg.path)?)?)
    }
}

impl Handler<RemoveDir> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: RemoveDir, _: &mut SyncContext<Self>) -> Self::Result {
        Ok(msg.jail.dir().remove_dir(non_root(&msg.path)?)?)
    }
}

impl Handler<RemoveFile> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: RemoveFile, ctx: &mut SyncContext<Self>) -> Self::Result {
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
        let dir = msg.jail.dir();
        let from = non_root(&msg.from)?;
        let to = non_root(&msg.to)?;
        dir.symlink_metadata(&from)?;
        let existing = dir.symlink_metadata(&to).ok();
        if !msg.allow_overwrite && existing.is_some() {
            return Err(StoreError::AlreadyExists);
        }
        let replaced = existing.and_then(|meta| hold_if_large(dir, &to, &meta));
        dir.rename(from, dir, to)?;
        dispose_later(ctx, replaced);
        Ok(())
    }
}
