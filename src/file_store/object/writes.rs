//! The ObjectStore's write side: uploads as multipart uploads (visible only when complete,
//! aborted otherwise), MKD as a folder marker, RMD of an empty folder, DELE, and RNFR/RNTO as
//! a server-side copy and a delete.

use super::keys::{dir_key, file_key};
use super::reads::{find, Found};
use super::stream::{Commit, ObjectSink, CHANNEL_CHUNKS};
use super::{bucket_of, describe, on_runtime, store_error, Bucket, ObjectStore};
use crate::error::StoreError;
use crate::file_store::{
    FinishUpload, MakeDir, OpenWrite, RemoveDir, RemoveFile, Rename, Upload, UploadSink,
    UploadTarget, VirtualPath, WriteMode,
};
use actix::prelude::*;
use bytes::Bytes;
use futures_util::TryStreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Multipart upload parts: 8 MiB, at most two in flight per upload.
const PART_SIZE: usize = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 2;
/// S3's smallest part (but the last): a kept head below it is re-sent, not copied.
const MIN_PART: u64 = 5 * 1024 * 1024;
/// S3's largest part, and the largest single CopyObject.
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;

/// Uploads whose task has not ended yet (completed or aborted): the daemon waits for them at
/// shutdown, so no multipart upload is left behind by a stop.
static UPLOADS: AtomicUsize = AtomicUsize::new(0);

/// The number of uploads to object storage not yet completed or aborted.
pub fn uploads_in_flight() -> usize {
    UPLOADS.load(Ordering::SeqCst)
}

struct InFlight;

impl InFlight {
    fn new() -> InFlight {
        UPLOADS.fetch_add(1, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        UPLOADS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// SECURITY: a client can neither create under an upload temporary name nor replace the root.
fn target_key(bucket: &Bucket, path: &VirtualPath) -> Result<String, StoreError> {
    if path.names_temp() {
        return Err(StoreError::InvalidName);
    }
    if path.is_root() {
        return Err(StoreError::PermissionDenied);
    }
    file_key(path, &bucket.location.prefix)
}

/// The folder `path` would be created in must exist (as on a disk).
async fn parent_is_dir(bucket: &Bucket, path: &VirtualPath) -> Result<(), StoreError> {
    match find(bucket, &path.parent()).await? {
        Found::Dir => Ok(()),
        Found::File(_) => Err(StoreError::NotADirectory),
    }
}

/// What is at `path` now, if anything.
async fn existing(bucket: &Bucket, path: &VirtualPath) -> Result<Option<Found>, StoreError> {
    match find(bucket, path).await {
        Ok(found) => Ok(Some(found)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

async fn open_write(
    bucket: Bucket,
    path: VirtualPath,
    mode: WriteMode,
) -> Result<Upload, StoreError> {
    let key = target_key(&bucket, &path)?;
    parent_is_dir(&bucket, &path).await?;
    let allow_overwrite = match mode {
        WriteMode::Replace { allow_overwrite } => allow_overwrite,
        WriteMode::Append | WriteMode::At(_) => true,
    };
    let existing_len = match existing(&bucket, &path).await? {
        Some(Found::Dir) => return Err(StoreError::IsADirectory),
        // An early answer; the conditional write is the guarantee.
        Some(Found::File(_)) if !allow_overwrite => return Err(StoreError::PermissionDenied),
        Some(Found::File(meta)) => meta.content_length(),
        None => 0,
    };
    let kept = match mode {
        WriteMode::Replace { .. } => 0,
        WriteMode::Append => existing_len,
        // RFC 3659 §5.5: a restart offset past the end is refused before anything is created.
        WriteMode::At(offset) if offset > existing_len => return Err(StoreError::BadOffset),
        WriteMode::At(offset) => offset,
    };
    // SECURITY: without the overwrite permission the upload is completed only if no object of
    // that name exists then (If-None-Match: *): two uploads racing for a name cannot replace
    // each other, nor one that appeared after the check above.
    let mut writer = bucket
        .bulk
        .writer_with(&key)
        .chunk(PART_SIZE)
        .concurrent(PARTS_IN_FLIGHT)
        .if_not_exists(!allow_overwrite)
        .await
        .map_err(store_error)?;
    if kept > 0 {
        if let Err(e) = keep_head(&bucket, &key, &mut writer, kept).await {
            let _ = writer.abort().await;
            return Err(e);
        }
    }
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let (decide_tx, decide_rx) = oneshot::channel();
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(upload(writer, rx, decide_rx, done_tx, key, InFlight::new()));
    Ok(Upload {
        sink: UploadSink::Object(ObjectSink::new(tx)),
        target: UploadTarget::object(Commit::new(decide_tx, done_rx)),
    })
}

/// APPE and REST+STOR: the first `kept` bytes of the existing object begin the new one. From
/// S3's smallest part size on they are copied server-side (UploadPartCopy, in parts of at most
/// 5 GiB and at least 5 MiB); a smaller head is read and re-sent (under 5 MiB).
async fn keep_head(
    bucket: &Bucket,
    key: &str,
    writer: &mut opendal::Writer,
    kept: u64,
) -> Result<(), StoreError> {
    if kept < MIN_PART {
        let head = bucket
            .op
            .read_with(key)
            .range(0..kept)
            .await
            .map_err(store_error)?;
        return writer.write(head).await.map_err(store_error);
    }
    let parts = kept.div_ceil(MAX_PART);
    let part = kept.div_ceil(parts);
    let mut start = 0;
    while start < kept {
        let end = (start + part).min(kept);
        writer
            .copy_from(key, start..end)
            .await
            .map_err(store_error)?;
        start = end;
    }
    Ok(())
}

/// Writes what the copy loop sends, then completes the upload if told to keep it, and aborts
/// it otherwise (a failed transfer, ABOR, a vanished session, a stop).
async fn upload(
    mut writer: opendal::Writer,
    mut rx: mpsc::Receiver<Bytes>,
    decide: oneshot::Receiver<bool>,
    done: oneshot::Sender<Result<(), StoreError>>,
    key: String,
    _in_flight: InFlight,
) {
    let mut failed = None;
    while let Some(bytes) = rx.recv().await {
        if let Err(e) = writer.write(bytes).await {
            failed = Some(e);
            break;
        }
    }
    // The copy loop's next write fails at once.
    drop(rx);
    let keep = decide.await.unwrap_or(false);
    let result = match failed {
        None if keep => match writer.close().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = writer.abort().await;
                Err(store_error(e))
            }
        },
        failed => {
            if let Err(e) = writer.abort().await {
                log::warn!(
                    "object storage: abort of the upload to {key}: {}",
                    describe(&e)
                );
            }
            failed.map_or(Ok(()), |e| Err(store_error(e)))
        }
    };
    let _ = done.send(result);
}

async fn make_dir(bucket: Bucket, path: VirtualPath) -> Result<(), StoreError> {
    target_key(&bucket, &path)?;
    if existing(&bucket, &path).await?.is_some() {
        return Err(StoreError::AlreadyExists);
    }
    parent_is_dir(&bucket, &path).await?;
    let marker = dir_key(&path, &bucket.location.prefix)?;
    bucket.op.create_dir(&marker).await.map_err(store_error)
}

/// Whether the folder whose key is `marker` holds anything but its marker.
async fn has_contents(bucket: &Bucket, marker: &str) -> Result<bool, StoreError> {
    let mut lister = bucket
        .op
        .lister_with(marker)
        .limit(2)
        .await
        .map_err(store_error)?;
    for _ in 0..2 {
        match lister.try_next().await.map_err(store_error)? {
            Some(entry) if entry.path() != marker => return Ok(true),
            Some(_) => {}
            None => return Ok(false),
        }
    }
    Ok(false)
}

async fn remove_dir(bucket: Bucket, path: VirtualPath) -> Result<(), StoreError> {
    if path.is_root() {
        return Err(StoreError::PermissionDenied);
    }
    match find(&bucket, &path).await? {
        Found::File(_) => return Err(StoreError::NotADirectory),
        Found::Dir => {}
    }
    let marker = dir_key(&path, &bucket.location.prefix)?;
    if has_contents(&bucket, &marker).await? {
        return Err(StoreError::NotEmpty);
    }
    bucket.op.delete(&marker).await.map_err(store_error)
}

async fn remove_file(bucket: Bucket, path: VirtualPath) -> Result<(), StoreError> {
    if path.is_root() {
        return Err(StoreError::PermissionDenied);
    }
    match find(&bucket, &path).await? {
        Found::Dir => Err(StoreError::IsADirectory),
        Found::File(_) => {
            let key = file_key(&path, &bucket.location.prefix)?;
            bucket.op.delete(&key).await.map_err(store_error)
        }
    }
}

/// RNFR/RNTO: S3 has no rename. A file is copied server-side (CopyObject; multipart copy above
/// 5 GiB) and then deleted; an empty folder's marker likewise. A folder with contents would
/// need a copy of every key, not atomic and unbounded: refused with a clear 550.
async fn rename(bucket: Bucket, msg: Rename) -> Result<(), StoreError> {
    let prefix = bucket.location.prefix.clone();
    if msg.from.is_root() || msg.to.is_root() {
        return Err(StoreError::PermissionDenied);
    }
    let from = find(&bucket, &msg.from).await?;
    target_key(&bucket, &msg.to)?;
    if msg.from == msg.to {
        return Ok(());
    }
    parent_is_dir(&bucket, &msg.to).await?;
    let target = existing(&bucket, &msg.to).await?;
    match from {
        Found::File(_) => {
            match target {
                Some(Found::Dir) => return Err(StoreError::IsADirectory),
                Some(Found::File(_)) if !msg.allow_overwrite => {
                    return Err(StoreError::AlreadyExists)
                }
                _ => {}
            }
            let (from_key, to_key) = (file_key(&msg.from, &prefix)?, file_key(&msg.to, &prefix)?);
            // SECURITY: without the overwrite permission, the copy happens only if nothing
            // has that name by then.
            bucket
                .bulk
                .copy_with(&from_key, &to_key)
                .if_not_exists(!msg.allow_overwrite)
                .chunk(MAX_PART as usize)
                .await
                .map_err(store_error)?;
            bucket.op.delete(&from_key).await.map_err(store_error)
        }
        Found::Dir => {
            if target.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            let (from_marker, to_marker) =
                (dir_key(&msg.from, &prefix)?, dir_key(&msg.to, &prefix)?);
            if has_contents(&bucket, &from_marker).await? {
                return Err(StoreError::Unsupported(
                    "Renaming a folder that is not empty is not supported on object storage",
                ));
            }
            bucket
                .op
                .create_dir(&to_marker)
                .await
                .map_err(store_error)?;
            bucket.op.delete(&from_marker).await.map_err(store_error)
        }
    }
}

impl Handler<OpenWrite> for ObjectStore {
    type Result = ResponseFuture<Result<Upload, StoreError>>;

    fn handle(&mut self, msg: OpenWrite, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move { open_write(bucket_of(&msg.jail)?, msg.path, msg.mode).await })
    }
}

impl Handler<FinishUpload> for ObjectStore {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: FinishUpload, _: &mut Context<Self>) -> Self::Result {
        let FinishUpload {
            mut target, keep, ..
        } = msg;
        let commit = target.take_commit();
        on_runtime(async move {
            match commit {
                Some(commit) => commit.finish(keep).await,
                None => Err(StoreError::Io("an upload without its commit".into())),
            }
        })
    }
}

impl Handler<MakeDir> for ObjectStore {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: MakeDir, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move { make_dir(bucket_of(&msg.jail)?, msg.path).await })
    }
}

impl Handler<RemoveDir> for ObjectStore {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: RemoveDir, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move { remove_dir(bucket_of(&msg.jail)?, msg.path).await })
    }
}

impl Handler<RemoveFile> for ObjectStore {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: RemoveFile, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move { remove_file(bucket_of(&msg.jail)?, msg.path).await })
    }
}

impl Handler<Rename> for ObjectStore {
    type Result = ResponseFuture<Result<(), StoreError>>;

    fn handle(&mut self, msg: Rename, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move { rename(bucket_of(&msg.jail)?, msg).await })
    }
}
