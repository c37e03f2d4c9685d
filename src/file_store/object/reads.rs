//! The ObjectStore's read side: stat (HEAD, or a one-key listing for a folder), listings
//! (ListObjectsV2 with delimiter `/`, paged by opendal) and downloads (a ranged GET streamed
//! through a bounded channel; a small object is read whole, so its transfer needs no thread).

use super::keys::{dir_key, file_key};
use super::stream::{ObjectReader, Piece, CHANNEL_CHUNKS};
use super::{bucket_of, describe, on_runtime, store_error, Bucket, ObjectStore};
use crate::error::StoreError;
use crate::file_store::{
    is_temp_name, selected, AsciiCounter, AsciiSize, List, ListFormat, ListSelected, OpenRead,
    ReadHandle, ReadSource, Selection, Stat, VirtualPath, ASCII_SIZE_LIMIT, SMALL_FILE,
};
use crate::listing::{self, EntryInfo, EntryKind};
use actix::prelude::*;
use futures_util::TryStreamExt;
use tokio::sync::mpsc;

/// What a path names in a bucket.
pub(super) enum Found {
    /// An object.
    File(opendal::Metadata),
    /// A folder: its marker (`KEY/`), or any key under it.
    Dir,
}

/// What `path` is. An object wins over a folder of the same name.
pub(super) async fn find(bucket: &Bucket, path: &VirtualPath) -> Result<Found, StoreError> {
    if path.is_root() {
        return Ok(Found::Dir);
    }
    let prefix = &bucket.location.prefix;
    let key = file_key(path, prefix)?;
    match bucket.op.stat(&key).await {
        Ok(meta) if meta.is_file() => return Ok(Found::File(meta)),
        Ok(_) => {}
        Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
        Err(e) => return Err(store_error(e)),
    }
    if dir_exists(bucket, &dir_key(path, prefix)?).await? {
        Ok(Found::Dir)
    } else {
        Err(StoreError::NotFound)
    }
}

/// Whether any key starts with `dir_key` (its marker, or anything in it).
pub(super) async fn dir_exists(bucket: &Bucket, dir_key: &str) -> Result<bool, StoreError> {
    let mut lister = bucket
        .op
        .lister_with(dir_key)
        .limit(1)
        .await
        .map_err(store_error)?;
    Ok(lister.try_next().await.map_err(store_error)?.is_some())
}

/// A listing entry for an object. Objects have no owner or mode: files show 0644, folders
/// 0755, owned by 0; `unique` (MLSx) is a hash of the key (relative to the prefix), stable
/// while the key exists. Folders have no time in S3: they show the epoch.
fn file_entry(name: String, key: &str, meta: &opendal::Metadata) -> EntryInfo {
    EntryInfo {
        name,
        kind: EntryKind::File,
        size: meta.content_length(),
        mode: 0o644,
        nlink: 1,
        uid: 0,
        gid: 0,
        mtime: meta
            .last_modified()
            .map_or(0, |t| t.into_inner().as_second()),
        dev: 0x53,
        ino: key_hash(key),
    }
}

fn dir_entry(name: String, key: &str) -> EntryInfo {
    EntryInfo {
        name,
        kind: EntryKind::Dir,
        size: 0,
        mode: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        mtime: 0,
        dev: 0x53,
        ino: key_hash(key),
    }
}

/// FNV-1a of the key: the `unique` fact of an object.
fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn stat(bucket: &Bucket, path: &VirtualPath) -> Result<EntryInfo, StoreError> {
    let name = path.file_name().to_owned();
    let key = path.as_str().trim_start_matches('/');
    Ok(match find(bucket, path).await? {
        Found::File(meta) => file_entry(name, key, &meta),
        Found::Dir => dir_entry(name, key),
    })
}

/// Entries formatted and sent at a time: one page of ListObjectsV2, so a listing of any size
/// holds about this many entries in memory.
const LIST_BATCH: usize = 1000;

/// Up to `LIST_BATCH` entries of the folder whose key is `dir`, sorted; `true` when the listing
/// is complete. S3 lists keys in order, page after page, so batches follow one another in
/// order too.
async fn next_batch(
    lister: &mut opendal::Lister,
    dir: &str,
    select: &Selection,
    found: &mut usize,
) -> Result<(Vec<EntryInfo>, bool), StoreError> {
    let mut entries = Vec::new();
    while entries.len() < LIST_BATCH {
        let Some(entry) = lister.try_next().await.map_err(store_error)? else {
            entries.sort_by(|a: &EntryInfo, b| a.name.cmp(&b.name));
            return Ok((entries, true));
        };
        let key = entry.path();
        let Some(name) = key.strip_prefix(dir) else {
            continue;
        };
        let name = name.strip_suffix('/').unwrap_or(name);
        // The folder's own marker, anything odd, and uploads of other servers in flight.
        if name.is_empty() || name.contains('/') || is_temp_name(name) {
            continue;
        }
        // Dotfiles and glob patterns, as on the disk (at most MAX_GLOB_MATCHES matches).
        if !selected(name, select, *found)? {
            continue;
        }
        *found += 1;
        let shown = match (&select.prefix, entry.metadata().is_dir()) {
            (Some(prefix), _) => format!("{prefix}{name}"),
            (None, _) => name.to_owned(),
        };
        entries.push(if entry.metadata().is_dir() {
            dir_entry(shown, key)
        } else {
            file_entry(shown, key, entry.metadata())
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((entries, false))
}

fn format(entries: &[EntryInfo], format: ListFormat, now: i64) -> Vec<u8> {
    match format {
        ListFormat::Long => listing::list_body(entries, now),
        ListFormat::Names => listing::nlst_body(entries),
        ListFormat::Machine(facts, perm) => listing::mlsd_body(entries, facts, perm),
    }
}

/// A listing: the bytes when it fits in one batch, otherwise a stream that formats one batch
/// at a time (bounded memory for a folder of any size). `select` picks the entries (LIST and
/// NLST: dotfiles, a glob pattern; MLSD and STAT: all).
async fn list(bucket: &Bucket, msg: List, select: Selection) -> Result<ReadSource, StoreError> {
    // NLST's folder prefix (`NLST dir/*.txt` answers `dir/a.txt`) is for names only.
    let select = Selection {
        prefix: select
            .prefix
            .filter(|_| matches!(msg.format, ListFormat::Names)),
        ..select
    };
    let entries = match find(bucket, &msg.path).await? {
        // A pattern filters the entries of a folder; after a file there is nothing to match.
        Found::File(_) if select.pattern.is_some() => return Err(StoreError::NotADirectory),
        // RFC 3659 §7.1: MLSD names a directory; a file is an error (501).
        Found::File(_) if matches!(msg.format, ListFormat::Machine(..)) => {
            return Err(StoreError::NotADirectory)
        }
        Found::File(meta) => vec![file_entry(
            msg.path.file_name().to_owned(),
            msg.path.as_str().trim_start_matches('/'),
            &meta,
        )],
        Found::Dir => {
            let dir = dir_key(&msg.path, &bucket.location.prefix)?;
            let mut lister = bucket.op.lister(&dir).await.map_err(store_error)?;
            let mut found = 0;
            let (first, complete) = next_batch(&mut lister, &dir, &select, &mut found).await?;
            if !complete {
                let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
                let body = format(&first, msg.format, msg.now);
                let rest = Rest {
                    lister,
                    dir,
                    select,
                    found,
                    format: msg.format,
                    now: msg.now,
                };
                tokio::spawn(stream_listing(rest, body, tx));
                return Ok(ReadSource::Stream(ObjectReader::open_ended(rx)));
            }
            first
        }
    };
    Ok(ReadSource::Bytes(format(&entries, msg.format, msg.now)))
}

/// The rest of a listing that did not fit in one batch.
struct Rest {
    lister: opendal::Lister,
    dir: String,
    select: Selection,
    found: usize,
    format: ListFormat,
    now: i64,
}

/// Sends `first`, then the rest of the listing batch by batch, then `End` (or `Failed`).
async fn stream_listing(mut rest: Rest, first: Vec<u8>, tx: mpsc::Sender<Piece>) {
    let mut body = first;
    loop {
        if tx.send(Piece::Data(body.into())).await.is_err() {
            return;
        }
        match next_batch(&mut rest.lister, &rest.dir, &rest.select, &mut rest.found).await {
            Ok((entries, complete)) => {
                body = format(&entries, rest.format, rest.now);
                if complete {
                    if !body.is_empty() && tx.send(Piece::Data(body.into())).await.is_err() {
                        return;
                    }
                    let _ = tx.send(Piece::End).await;
                    return;
                }
            }
            Err(e) => {
                let _ = tx.send(Piece::Failed(format!("listing failed: {e}"))).await;
                return;
            }
        }
    }
}

/// An object opened for RETR from `offset`: its bytes when small, a stream otherwise.
async fn open_read(
    bucket: &Bucket,
    path: &VirtualPath,
    offset: u64,
) -> Result<ReadHandle, StoreError> {
    let meta = match find(bucket, path).await? {
        Found::File(meta) => meta,
        Found::Dir => return Err(StoreError::IsADirectory),
    };
    let size = meta.content_length();
    if offset > size {
        return Err(StoreError::BadOffset);
    }
    let key = file_key(path, &bucket.location.prefix)?;
    // The bytes sent are those of the object that was stat'ed: a replacement meanwhile fails
    // the GET (If-Match) instead of mixing two objects' bytes or sizes.
    let etag = meta.etag().map(str::to_owned);
    let left = size - offset;
    let source = if left <= SMALL_FILE {
        // Small: read here, sent from memory without a copy thread.
        let mut read = bucket.op.read_with(&key).range(offset..size);
        if let Some(etag) = &etag {
            read = read.if_match(etag);
        }
        let bytes = read.await.map_err(store_error)?.to_vec();
        if bytes.len() as u64 != left {
            return Err(StoreError::Unavailable(
                "object storage sent a short read".into(),
            ));
        }
        ReadSource::Bytes(bytes)
    } else {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        tokio::spawn(download(bucket.clone(), key, etag, offset..size, tx));
        ReadSource::Stream(ObjectReader::new(rx, left))
    };
    Ok(ReadHandle { source, size })
}

/// Streams `range` of `key` into `tx`, then `End`, or `Failed` with the reason. Stops as soon
/// as the reader is gone (ABOR, a vanished client): dropping the GET closes its connection.
async fn download(
    bucket: Bucket,
    key: String,
    etag: Option<String>,
    range: std::ops::Range<u64>,
    tx: mpsc::Sender<Piece>,
) {
    let sent = async {
        let mut reader = bucket.bulk.reader_with(&key);
        if let Some(etag) = &etag {
            reader = reader.if_match(etag);
        }
        let mut stream = reader.await?.into_bytes_stream(range).await?;
        while let Some(chunk) = stream.try_next().await.map_err(|e| {
            opendal::Error::new(opendal::ErrorKind::Unexpected, e.to_string()).set_temporary()
        })? {
            if tx.send(Piece::Data(chunk)).await.is_err() {
                return Ok(false);
            }
        }
        Ok::<bool, opendal::Error>(true)
    }
    .await;
    let last = match sent {
        Ok(true) => Piece::End,
        Ok(false) => return,
        Err(e) => {
            log::warn!("object storage: download of {key}: {}", describe(&e));
            Piece::Failed(format!("object storage: {}", describe(&e)))
        }
    };
    let _ = tx.send(last).await;
}

/// SIZE in TYPE A: the object read once, LFs counted (up to `ASCII_SIZE_LIMIT`).
async fn ascii_size(bucket: &Bucket, path: &VirtualPath) -> Result<Option<u64>, StoreError> {
    let meta = match find(bucket, path).await? {
        Found::File(meta) => meta,
        Found::Dir => return Err(StoreError::IsADirectory),
    };
    if meta.content_length() > ASCII_SIZE_LIMIT {
        return Ok(None);
    }
    let key = file_key(path, &bucket.location.prefix)?;
    let reader = bucket.bulk.reader(&key).await.map_err(store_error)?;
    let mut stream = reader
        .into_bytes_stream(0..meta.content_length())
        .await
        .map_err(store_error)?;
    let mut counter = AsciiCounter::default();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| StoreError::Unavailable(format!("download failed: {e}")))?
    {
        counter.add(&chunk);
    }
    Ok(Some(counter.size))
}

impl Handler<Stat> for ObjectStore {
    type Result = ResponseFuture<Result<EntryInfo, StoreError>>;

    fn handle(&mut self, msg: Stat, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move { stat(&bucket_of(&msg.jail)?, &msg.path).await })
    }
}

impl Handler<List> for ObjectStore {
    type Result = ResponseFuture<Result<ReadSource, StoreError>>;

    fn handle(&mut self, msg: List, _: &mut Context<Self>) -> Self::Result {
        // MLSD and STAT list every entry, dotfiles included.
        let everything = Selection {
            show_hidden: true,
            ..Selection::default()
        };
        on_runtime(async move { list(&bucket_of(&msg.jail)?, msg, everything).await })
    }
}

impl Handler<ListSelected> for ObjectStore {
    type Result = ResponseFuture<Result<ReadSource, StoreError>>;

    fn handle(&mut self, msg: ListSelected, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move { list(&bucket_of(&msg.list.jail)?, msg.list, msg.select).await })
    }
}

impl Handler<OpenRead> for ObjectStore {
    type Result = ResponseFuture<Result<ReadHandle, StoreError>>;

    fn handle(&mut self, msg: OpenRead, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move { open_read(&bucket_of(&msg.jail)?, &msg.path, msg.offset).await })
    }
}

impl Handler<AsciiSize> for ObjectStore {
    type Result = ResponseFuture<Result<Option<u64>, StoreError>>;

    fn handle(&mut self, msg: AsciiSize, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move { ascii_size(&bucket_of(&msg.jail)?, &msg.path).await })
    }
}
