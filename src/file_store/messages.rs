//! The FileStore's requests and answers: what a Session may ask (stat, list, open, create,
//! remove, rename) and the handles it gets back. Types only; the handlers are in mod.rs and
//! changes.rs.

use super::object::stream::{Commit, ObjectReader, ObjectSink};
use super::vpath::VirtualPath;
use super::{FileStore, Jail};
use crate::error::StoreError;
use crate::listing::{EntryInfo, MlsxFacts, PermFact};
use actix::prelude::*;
use std::path::PathBuf;

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

/// A directory listing (or one line for a file), formatted and ready to send: its bytes, or
/// (a large folder in object storage) a stream that formats it a page at a time.
#[derive(Message)]
#[rtype(result = "Result<ReadSource, StoreError>")]
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
    /// An object in S3, streamed from the restart offset on.
    Stream(ObjectReader),
}

/// Opens a file for RETR, positioned at `offset`.
#[derive(Message)]
#[rtype(result = "Result<ReadHandle, StoreError>")]
pub struct OpenRead {
    pub jail: Jail,
    pub path: VirtualPath,
    pub offset: u64,
}

/// SIZE in TYPE A (RFC 3659 §4): the file's size as it would be transferred, every LF not
/// already preceded by CR counted as two bytes. `None` for a file over `ASCII_SIZE_LIMIT`, whose
/// scan would tie up a pool thread.
#[derive(Message)]
#[rtype(result = "Result<Option<u64>, StoreError>")]
pub struct AsciiSize {
    pub jail: Jail,
    pub path: VirtualPath,
}

/// The largest file SIZE in TYPE A scans (the pool reads it once, in 64 KiB chunks).
pub const ASCII_SIZE_LIMIT: u64 = 64 * 1024 * 1024;

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
    pub(super) temp: Option<PathBuf>,
    pub(super) dest: PathBuf,
    /// From `WriteMode::Replace`: whether the final rename may replace a file that exists by
    /// then. Checked again at the rename itself, not only at the open.
    pub(super) allow_overwrite: bool,
    /// Who removes the temporary file if this is dropped unfinished.
    pub(super) abandon: Option<(Addr<FileStore>, Jail)>,
    /// For a `Replace` upload, the folder it is in, opened (beneath the root) when the upload
    /// began; `temp` and `dest` are then single names in it. The rename into place and the
    /// removal find the temporary file even if the folder was renamed meanwhile.
    pub(super) folder: Option<std::sync::Arc<cap_std::fs::Dir>>,
    /// An upload to object storage: completed or aborted by `FinishUpload`, aborted if dropped.
    pub(super) object: Option<Commit>,
}

impl UploadTarget {
    /// An APPE or REST+STOR upload: written where it goes, nothing to rename or remove after.
    pub(super) fn in_place(dest: PathBuf) -> UploadTarget {
        UploadTarget {
            temp: None,
            dest,
            allow_overwrite: true,
            abandon: None,
            folder: None,
            object: None,
        }
    }

    /// An upload to object storage, visible under its name only once `commit` completes it.
    pub(super) fn object(commit: Commit) -> UploadTarget {
        UploadTarget {
            temp: None,
            dest: PathBuf::new(),
            allow_overwrite: false,
            abandon: None,
            folder: None,
            object: Some(commit),
        }
    }

    /// The object-storage upload's commit, taken to complete or abort it.
    pub(super) fn take_commit(&mut self) -> Option<Commit> {
        self.object.take()
    }
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
                object: None,
            },
            keep: false,
        });
    }
}

#[derive(Debug)]
pub struct Upload {
    pub sink: UploadSink,
    pub target: UploadTarget,
}

/// Where an upload's bytes are written.
#[derive(Debug)]
pub enum UploadSink {
    /// A file on the local disk (a temporary file, or the target itself for APPE/REST).
    File(std::fs::File),
    /// A multipart upload to S3.
    Object(ObjectSink),
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

/// Which entries LIST and NLST show: dotfiles or not, and only the names matching a glob
/// pattern (`protocol::glob`), the last component of the client's argument.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Names starting with `.` are listed (`LIST -a`, `--show-dotfiles`).
    pub show_hidden: bool,
    /// Only names matching this pattern are listed (at most `MAX_GLOB_MATCHES`).
    pub pattern: Option<String>,
    /// NLST names are shown behind this folder prefix (`NLST dir/*.txt` answers `dir/a.txt`,
    /// which `mget` then retrieves).
    pub prefix: Option<String>,
}

/// A listing (`list.path` a folder, or one file) with only the selected entries. Plain `List`
/// shows every entry (MLSD, STAT); this is what LIST and NLST send.
#[derive(Message)]
#[rtype(result = "Result<ReadSource, StoreError>")]
pub struct ListSelected {
    pub list: List,
    pub select: Selection,
}

/// The most names one glob pattern may match; past it the listing is refused (550) rather than
/// cut short without a word.
pub const MAX_GLOB_MATCHES: usize = 10_000;

/// Sets a file's or folder's modification time and/or permission bits (MFMT, MFF, SITE UTIME,
/// SITE CHMOD) and answers its metadata afterwards, as MLST would show it.
#[derive(Message)]
#[rtype(result = "Result<EntryInfo, StoreError>")]
pub struct SetAttributes {
    pub jail: Jail,
    pub path: VirtualPath,
    pub modified: Option<crate::protocol::command::Timestamp>,
    /// Permission bits only (0o777 at most; the parser refuses more).
    pub mode: Option<u32>,
}

/// A digest of a regular file, or of the byte range `range` of it (HASH, XCRC, XMD5, XSHA1,
/// XSHA256). The pool reads the file itself, within `HASH_SIZE_LIMIT` bytes and at most
/// `MAX_CONCURRENT_HASHES` at once.
#[derive(Message)]
#[rtype(result = "Result<FileDigest, StoreError>")]
pub struct HashFile {
    pub jail: Jail,
    pub path: VirtualPath,
    pub algo: crate::protocol::command::HashAlgo,
    pub range: crate::protocol::command::ByteRange,
}

/// What `HashFile` answers: the digest in lower-case hex and the range it covers (`end`
/// exclusive, at most the file's size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub hex: String,
    pub start: u64,
    pub end: u64,
}

/// The most bytes one HASH reads: a pool thread is then busy for seconds (SHA-256 and SHA-1 ran
/// at about 950 MiB/s here; MD5 and CRC32 are slower), not the minutes a 100 GiB file would
/// take. A client hashes a larger file range by range (RANG).
pub const HASH_SIZE_LIMIT: u64 = 4 * 1024 * 1024 * 1024;

/// Hashes running at once in the pool; the next gets 450 (try again), so the pool's other
/// threads stay free for listings, opens and renames.
pub const MAX_CONCURRENT_HASHES: usize = 2;
