//! The ObjectStore's answers to the attribute requests: digests (HASH and the X-digests) read
//! from the object with a ranged GET, and times and modes, which S3 cannot set.

use super::keys::file_key;
use super::reads::{find, Found};
use super::{bucket_of, on_runtime, store_error, Bucket, ObjectStore};
use crate::error::StoreError;
use crate::file_store::attributes::{HashSlot, Hasher};
use crate::file_store::{FileDigest, HashFile, SetAttributes, VirtualPath, HASH_SIZE_LIMIT};
use crate::listing::EntryInfo;
use crate::protocol::command::{ByteRange, HashAlgo};
use actix::prelude::*;
use futures_util::TryStreamExt;

/// An object's ETag is the MD5 of its bytes when it was stored in one piece (no `-N` suffix of
/// a multipart upload) without SSE-KMS/SSE-C: then MD5 of the whole object needs no read.
fn md5_from_etag(etag: Option<&str>) -> Option<String> {
    let hex = etag?.trim_matches('"');
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| hex.to_ascii_lowercase())
}

async fn hash(
    bucket: &Bucket,
    path: &VirtualPath,
    algo: HashAlgo,
    range: ByteRange,
) -> Result<FileDigest, StoreError> {
    let meta = match find(bucket, path).await? {
        Found::File(meta) => meta,
        Found::Dir => return Err(StoreError::IsADirectory),
    };
    let size = meta.content_length();
    if range.start > size {
        return Err(StoreError::BadOffset);
    }
    let end = range.end.map_or(size, |e| e.min(size));
    let start = range.start.min(end);
    if algo == HashAlgo::Md5 && start == 0 && end == size {
        if let Some(hex) = md5_from_etag(meta.etag()) {
            return Ok(FileDigest { hex, start, end });
        }
    }
    // SECURITY: the same bound on the work one command may ask as on the disk.
    if end - start > HASH_SIZE_LIMIT {
        return Err(StoreError::Refused(
            "File too large to hash at once (limit 4 GiB); ask for a range with RANG",
        ));
    }
    let mut hasher = Hasher::new(algo);
    if end > start {
        let key = file_key(path, &bucket.location.prefix)?;
        let mut reader = bucket.bulk.reader_with(&key);
        if let Some(etag) = meta.etag() {
            reader = reader.if_match(etag);
        }
        let mut stream = reader
            .await
            .map_err(store_error)?
            .into_bytes_stream(start..end)
            .await
            .map_err(store_error)?;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| StoreError::Unavailable(format!("download failed: {e}")))?
        {
            hasher.update(&chunk);
        }
    }
    Ok(FileDigest {
        hex: hasher.finish(),
        start,
        end,
    })
}

impl Handler<HashFile> for ObjectStore {
    type Result = ResponseFuture<Result<FileDigest, StoreError>>;

    fn handle(&mut self, msg: HashFile, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move {
            let _slot = HashSlot::take().ok_or(StoreError::Busy(
                "Other checksums are being computed; try again shortly",
            ))?;
            hash(&bucket_of(&msg.jail)?, &msg.path, msg.algo, msg.range).await
        })
    }
}

impl Handler<SetAttributes> for ObjectStore {
    type Result = ResponseFuture<Result<EntryInfo, StoreError>>;

    fn handle(&mut self, msg: SetAttributes, _: &mut Context<Self>) -> Self::Result {
        on_runtime(async move {
            let bucket = bucket_of(&msg.jail)?;
            // The path must exist, as on the disk; then the honest answer.
            find(&bucket, &msg.path).await?;
            Err(StoreError::Unsupported(
                "Object storage keeps no settable times or modes",
            ))
        })
    }
}

#[cfg(test)]
mod etag_tests {
    use super::md5_from_etag;

    #[test]
    fn only_a_single_part_etag_is_an_md5() {
        assert_eq!(
            md5_from_etag(Some("\"9E107D9D372BB6826BD81D3542A419D6\"")),
            Some("9e107d9d372bb6826bd81d3542a419d6".into())
        );
        assert_eq!(
            md5_from_etag(Some("\"9e107d9d372bb6826bd81d3542a419d6-3\"")),
            None
        );
        assert_eq!(md5_from_etag(None), None);
    }
}
