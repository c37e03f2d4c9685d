//! The FileStore's handlers that read or set a file's attributes rather than its name or data:
//! modification time and permission bits (`SetAttributes`: MFMT, MFF, SITE UTIME, SITE CHMOD)
//! and digests (`HashFile`: HASH, XCRC, XMD5, XSHA1, XSHA256).
//!
//! Each runs in the pool, behind the jail, on a handle opened the way RETR opens one (no FIFO
//! can park a thread; the handle, not the path, is changed or read, so nothing can be swapped in
//! between). Another back-end answers the same messages its own way.

use super::{
    entry_info, open_read, read_nonblocking, visible, FileDigest, FileStore, HashFile, Jail,
    ReadSource, SetAttributes, VirtualPath, HASH_SIZE_LIMIT, MAX_CONCURRENT_HASHES,
};
use crate::error::StoreError;
use crate::listing::EntryInfo;
use crate::protocol::command::{ByteRange, HashAlgo, Timestamp};
use actix::prelude::*;
use sha1::Digest;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

impl Handler<SetAttributes> for FileStore {
    type Result = Result<EntryInfo, StoreError>;

    fn handle(&mut self, msg: SetAttributes, _: &mut SyncContext<Self>) -> Self::Result {
        set_attributes(&msg.jail, &msg.path, msg.modified, msg.mode)
    }
}

fn set_attributes(
    jail: &Jail,
    path: &VirtualPath,
    modified: Option<Timestamp>,
    mode: Option<u32>,
) -> Result<EntryInfo, StoreError> {
    visible(path)?;
    // SECURITY: the root folder's own mode and time are the administrator's, not the user's.
    if path.is_root() {
        return Err(StoreError::PermissionDenied);
    }
    let file = jail
        .dir()?
        .open_with(path.to_relative(), &read_nonblocking())?;
    let meta = file.metadata()?;
    // SECURITY: only regular files and folders; a device node or FIFO keeps its attributes.
    if !meta.is_file() && !meta.is_dir() {
        return Err(StoreError::PermissionDenied);
    }
    let file = file.into_std();
    if let Some(mode) = mode {
        // SECURITY: permission bits only; the parser refused set-ID and sticky bits already.
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777))?;
    }
    if let Some(t) = modified {
        file.set_modified(system_time(t))?;
    }
    let meta = cap_std::fs::File::from_std(file).metadata()?;
    Ok(entry_info(path.file_name().to_owned(), &meta, None))
}

fn system_time(t: Timestamp) -> SystemTime {
    let whole = Duration::from_secs(t.secs.unsigned_abs());
    let time = if t.secs >= 0 {
        UNIX_EPOCH + whole
    } else {
        UNIX_EPOCH - whole
    };
    time + Duration::from_nanos(u64::from(t.nanos))
}

/// Hashes running now, over the whole pool.
static HASHING: AtomicUsize = AtomicUsize::new(0);

/// One of the `MAX_CONCURRENT_HASHES` places, given back when dropped.
pub(super) struct HashSlot;

impl HashSlot {
    pub(super) fn take() -> Option<HashSlot> {
        HASHING
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONCURRENT_HASHES).then_some(n + 1)
            })
            .ok()
            .map(|_| HashSlot)
    }
}

impl Drop for HashSlot {
    fn drop(&mut self) {
        HASHING.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Handler<HashFile> for FileStore {
    type Result = Result<FileDigest, StoreError>;

    fn handle(&mut self, msg: HashFile, _: &mut SyncContext<Self>) -> Self::Result {
        let _slot = HashSlot::take().ok_or(StoreError::Busy(
            "Other checksums are being computed; try again shortly",
        ))?;
        hash_file(&msg.jail, &msg.path, msg.algo, msg.range)
    }
}

/// The digest of `range` of the regular file `path`. The same open as RETR: the same
/// permission was checked, only regular files, inside the jail, uploads in flight invisible.
fn hash_file(
    jail: &Jail,
    path: &VirtualPath,
    algo: HashAlgo,
    range: ByteRange,
) -> Result<FileDigest, StoreError> {
    let handle = open_read(jail, path, 0)?;
    let size = handle.size;
    if range.start > size {
        return Err(StoreError::BadOffset);
    }
    let end = range.end.map_or(size, |e| e.min(size));
    let start = range.start.min(end);
    // SECURITY: a bound on the work one command can ask of a pool thread.
    if end - start > HASH_SIZE_LIMIT {
        return Err(StoreError::Refused(
            "File too large to hash at once (limit 4 GiB); ask for a range with RANG",
        ));
    }
    let mut hasher = Hasher::new(algo);
    match handle.source {
        ReadSource::Bytes(bytes) => {
            hasher.update(&bytes[start as usize..end as usize]);
        }
        // The ObjectStore hashes objects; the pool never streams.
        ReadSource::Stream(_) => return Err(StoreError::Io("a stream in the local store".into())),
        ReadSource::File(mut file) => {
            file.seek(SeekFrom::Start(start))?;
            let mut left = end - start;
            let mut buf = vec![0u8; 256 * 1024];
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                match file.read(&mut buf[..want]) {
                    // The file shrank meanwhile: the digest covers what was there.
                    Ok(0) => break,
                    Ok(n) => {
                        hasher.update(&buf[..n]);
                        left -= n as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(FileDigest {
        hex: hasher.finish(),
        start,
        end,
    })
}

pub(super) enum Hasher {
    Sha256(sha2::Sha256),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Crc32(u32),
}

impl Hasher {
    pub(super) fn new(algo: HashAlgo) -> Hasher {
        match algo {
            HashAlgo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgo::Md5 => Hasher::Md5(md5::Md5::new()),
            HashAlgo::Crc32 => Hasher::Crc32(!0),
        }
    }

    pub(super) fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Crc32(crc) => *crc = crc32_update(*crc, bytes),
        }
    }

    /// Lower-case hex.
    pub(super) fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::Sha1(h) => hex(&h.finalize()),
            Hasher::Md5(h) => hex(&h.finalize()),
            Hasher::Crc32(crc) => format!("{:08x}", !crc),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-32 (IEEE 802.3, the one zip, PNG and `XCRC` use), one table lookup per byte.
const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &b in bytes {
        crc = CRC32_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_the_published_check_values() {
        let digest = |algo, data: &[u8]| {
            let mut h = Hasher::new(algo);
            // In two pieces: the streaming state carries across updates.
            let (a, b) = data.split_at(data.len() / 2);
            h.update(a);
            h.update(b);
            h.finish()
        };
        assert_eq!(digest(HashAlgo::Crc32, b"123456789"), "cbf43926");
        assert_eq!(
            digest(HashAlgo::Md5, b""),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            digest(HashAlgo::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            digest(HashAlgo::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn times_before_and_after_the_epoch() {
        let t = |secs, nanos| system_time(Timestamp { secs, nanos });
        assert_eq!(t(0, 0), UNIX_EPOCH);
        assert_eq!(t(10, 5), UNIX_EPOCH + Duration::new(10, 5));
        assert_eq!(t(-1, 0), UNIX_EPOCH - Duration::from_secs(1));
    }

    #[test]
    fn hash_slots_are_bounded_and_given_back() {
        let held: Vec<HashSlot> = std::iter::from_fn(HashSlot::take).take(64).collect();
        assert!(held.len() <= MAX_CONCURRENT_HASHES);
        drop(held);
        assert!(HashSlot::take().is_some());
    }
}
