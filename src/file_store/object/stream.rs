//! The bytes of an S3 transfer between the DataChannel's copy thread and the ObjectStore's
//! runtime: a download arrives as a bounded channel of chunks (`ObjectReader`, a `Read`), an
//! upload leaves through one (`ObjectSink`, a `Write`), and an upload is completed or aborted by
//! its `Commit`. Memory stays bounded: at most `CHANNEL_CHUNKS` chunks wait in either direction.
//!
//! A leaf: the ObjectStore's handlers make these; the FileStore's messages carry them.

use crate::error::StoreError;
use bytes::{Buf, Bytes};
use std::io::{self, Read, Write};
use tokio::sync::{mpsc, oneshot};

/// Chunks in flight between the S3 runtime and a copy thread, each way.
pub const CHANNEL_CHUNKS: usize = 4;

/// What a download task sends: data, then exactly one `End` or `Failed`.
#[derive(Debug)]
pub enum Piece {
    Data(Bytes),
    End,
    Failed(String),
}

/// A download from S3 as a `Read`, for the copy loop on a blocking-pool thread.
///
/// SECURITY (truncation): the stream counts what it delivers against the object's size; a
/// stream that ends early (the server reset mid-download, the task died) is an error, never an
/// end of file, so a client never gets a short file with `226`.
pub struct ObjectReader {
    rx: mpsc::Receiver<Piece>,
    chunk: Bytes,
    /// Bytes still due; `None` for a stream of unknown length (a listing), which ends at `End`.
    left: Option<u64>,
}

impl ObjectReader {
    /// The bytes of an object: exactly `left` of them.
    pub fn new(rx: mpsc::Receiver<Piece>, left: u64) -> ObjectReader {
        ObjectReader {
            rx,
            chunk: Bytes::new(),
            left: Some(left),
        }
    }

    /// A stream whose length is known only at its end (a listing).
    pub fn open_ended(rx: mpsc::Receiver<Piece>) -> ObjectReader {
        ObjectReader {
            rx,
            chunk: Bytes::new(),
            left: None,
        }
    }
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectReader({:?} bytes left)", self.left)
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            // Blocking: only ever called on a blocking-pool thread (the copy loop).
            match self.rx.blocking_recv() {
                Some(Piece::Data(bytes)) => self.chunk = bytes,
                Some(Piece::End) if matches!(self.left, None | Some(0)) => return Ok(0),
                Some(Piece::End) | None => {
                    return Err(io::Error::other("object storage ended the download early"))
                }
                Some(Piece::Failed(why)) => return Err(io::Error::other(why)),
            }
        }
        let n = buf.len().min(self.chunk.len());
        if let Some(left) = &mut self.left {
            *left = left.checked_sub(n as u64).ok_or_else(|| {
                io::Error::other("object storage sent more bytes than the object holds")
            })?;
        }
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// An upload to S3 as a `Write`, for the copy loop. Dropping it (the copy ended, well or not)
/// closes the channel; whether the upload is completed is the `Commit`'s decision.
pub struct ObjectSink {
    tx: mpsc::Sender<Bytes>,
}

impl ObjectSink {
    pub fn new(tx: mpsc::Sender<Bytes>) -> ObjectSink {
        ObjectSink { tx }
    }
}

impl std::fmt::Debug for ObjectSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectSink")
    }
}

impl Write for ObjectSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Blocking: only ever called on a blocking-pool thread (the copy loop).
        self.tx
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::other("object storage stopped taking the upload"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The end of an upload to S3: `finish(true)` completes the multipart upload (the object
/// appears under its name only then), `finish(false)` aborts it. Dropped without a decision
/// (the session vanished, the daemon is stopping), the upload is aborted.
#[derive(Debug)]
pub struct Commit {
    decide: Option<oneshot::Sender<bool>>,
    done: Option<oneshot::Receiver<Result<(), StoreError>>>,
}

impl Commit {
    pub fn new(
        decide: oneshot::Sender<bool>,
        done: oneshot::Receiver<Result<(), StoreError>>,
    ) -> Commit {
        Commit {
            decide: Some(decide),
            done: Some(done),
        }
    }

    /// Sends the decision and waits for the upload task to carry it out.
    pub async fn finish(mut self, keep: bool) -> Result<(), StoreError> {
        if let Some(decide) = self.decide.take() {
            let _ = decide.send(keep);
        }
        match self.done.take() {
            Some(done) => done.await.unwrap_or_else(|_| {
                Err(StoreError::Unavailable(
                    "the upload to object storage ended unexpectedly".into(),
                ))
            }),
            None => Ok(()),
        }
    }
}
