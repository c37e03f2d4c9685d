//! The copy loop, on a blocking-pool thread: `sendfile`/`splice` where they apply, large
//! buffers otherwise, paced socket calls that return within `SOCKET_TICK`, progress counts per
//! chunk, and the stall timeout. It never touches the control connection.

use super::limit::TokenBucket;
use super::{AbortSwitch, DataTls, Payload, TransferError, TransferResult, PROGRESS_INTERVAL};
use crate::data_channel::ascii::{crlf_to_lf, lf_to_crlf};
use std::io;
use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The copy loop's side of progress: one relaxed store per chunk, one add per socket call, and
/// the stall deadline.
pub(super) struct ProgressReporter {
    pub(super) switch: Arc<AbortSwitch>,
    pub(super) stall: Duration,
    /// When the socket last moved a byte (the blocking thread's own clock).
    pub(super) last_moved: Instant,
    /// The transfer's bandwidth limit, if it has one.
    pub(super) limit: Option<TokenBucket>,
}

impl ProgressReporter {
    /// File bytes done so far.
    fn report(&mut self, bytes: u64) {
        self.switch.done.store(bytes, Ordering::Relaxed);
    }

    /// The socket took or gave `n` bytes.
    fn moved(&mut self, n: usize) {
        if n > 0 {
            self.switch.wire.fetch_add(n as u64, Ordering::Relaxed);
            self.last_moved = Instant::now();
        }
    }

    /// The most the next socket call may move: `want`, or less for a limited transfer (so a
    /// limited `sendfile`/`splice` is paced by smaller calls, not one burst and a long pause).
    fn cap(&self, want: usize) -> usize {
        self.limit.as_ref().map_or(want, |b| want.min(b.chunk()))
    }

    /// Pays for `n` bytes that moved: a limited transfer in debt sleeps here (its thread only,
    /// no timer), looking at the abort switch between short naps.
    fn pace(&mut self, n: usize) -> Result<(), TransferError> {
        let Some(bucket) = self.limit.as_mut() else {
            return Ok(());
        };
        let owed = bucket.pay(n, Instant::now());
        if owed.is_zero() {
            return Ok(());
        }
        let switch = &self.switch;
        bucket.sleep(owed, || match switch.is_triggered() {
            true => Err(switch.reason()),
            false => Ok(()),
        })?;
        // The server's own pause is not the peer stalling.
        self.last_moved = Instant::now();
        Ok(())
    }

    /// A socket call ran out its tick with nothing moved: `Ok` to call again, or why not.
    /// SECURITY: this is where a peer that stops reading or writing meets the stall timeout.
    fn waited(&self) -> Result<(), TransferError> {
        if self.switch.is_triggered() {
            return Err(self.switch.reason());
        }
        if self.last_moved.elapsed() >= self.stall {
            return Err(TransferError::Stalled);
        }
        Ok(())
    }
}

/// A socket call that ran out its SO_RCVTIMEO/SO_SNDTIMEO tick.
pub(super) fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `write_all` that counts every byte the socket takes and waits out ticks up to the stall
/// timeout. Retrying after a timeout is safe: a plain socket that times out took nothing, and
/// rustls keeps what it could not send and sends it first on the next call.
pub(super) fn write_paced<S: Write>(
    sock: &mut S,
    mut out: &[u8],
    reporter: &mut ProgressReporter,
) -> Result<(), TransferError> {
    while !out.is_empty() {
        match sock.write(out) {
            Ok(0) => {
                return Err(TransferError::ConnectionLost(
                    "the socket took nothing".into(),
                ))
            }
            Ok(n) => {
                reporter.moved(n);
                out = &out[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => reporter.waited()?,
            Err(e) => return Err(socket_error(e, &reporter.switch)),
        }
    }
    Ok(())
}

/// `flush` (TLS records rustls still holds) under the same ticks and stall timeout.
pub(super) fn flush_paced<S: Write>(
    sock: &mut S,
    reporter: &mut ProgressReporter,
) -> Result<(), TransferError> {
    loop {
        match sock.flush() {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if timed_out(&e) => reporter.waited()?,
            Err(e) => return Err(socket_error(e, &reporter.switch)),
        }
    }
}

/// Classifies a socket error: after an abort (or the watchdog) everything is its reason.
pub(super) fn socket_error(e: io::Error, switch: &AbortSwitch) -> TransferError {
    if switch.is_triggered() {
        return switch.reason();
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TransferError::Stalled,
        _ => TransferError::ConnectionLost(e.to_string()),
    }
}

pub(super) fn file_error(e: io::Error) -> TransferError {
    match e.raw_os_error() {
        Some(28) | Some(122) => TransferError::NoSpace,
        _ => TransferError::LocalIo(e.to_string()),
    }
}

/// The copy loop, on a blocking-pool thread, in clear or in TLS. Returns file bytes moved.
pub(super) fn copy_blocking(
    mut sock: std::net::TcpStream,
    mut job: CopyJob,
    switch: &AbortSwitch,
    mut reporter: ProgressReporter,
) -> TransferResult {
    let upload = job.payload.is_upload();
    let result = match job.tls.take() {
        None if !upload => {
            cork(&sock, true);
            match job {
                CopyJob {
                    payload: Payload::SendFile(file),
                    ascii: false,
                    buffer,
                    ..
                } => sendfile_loop(&sock, file, buffer, switch, &mut reporter),
                job => copy_payload(&mut sock, job, switch, &mut reporter),
            }
        }
        None => match job {
            CopyJob {
                payload: Payload::Receive(file),
                ascii: false,
                buffer,
                ..
            } => splice_receive(&sock, file, buffer, switch, &mut reporter),
            job => copy_payload(&mut sock, job, switch, &mut reporter),
        },
        Some(DataTls {
            config,
            require_resumption,
        }) => {
            let conn = rustls::ServerConnection::new(config)
                .map_err(|e| TransferError::NoConnection(format!("TLS setup: {e}")))?;
            let mut tls = rustls::StreamOwned::new(
                conn,
                sock.try_clone()
                    .map_err(|e| TransferError::NoConnection(format!("socket clone: {e}")))?,
            );
            // SECURITY: the handshake is bounded by the data-connection timeout, not the stall
            // timeout: a peer that connects and never finishes it (or trickles it) holds the
            // transfer, and its thread, no longer than one that never connects.
            let deadline = Instant::now() + job.handshake_timeout;
            while tls.conn.is_handshaking() {
                if Instant::now() >= deadline {
                    return Err(TransferError::TlsHandshake(format!(
                        "not completed within {:?}",
                        job.handshake_timeout
                    )));
                }
                match tls.conn.complete_io(&mut tls.sock) {
                    Ok((got, sent)) => reporter.moved(got + sent),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if timed_out(&e) => reporter.waited()?,
                    Err(e) => return Err(TransferError::TlsHandshake(e.to_string())),
                }
            }
            // SECURITY: with session reuse required, a data connection must come from the TLS
            // client that holds the control connection (it resumed that session).
            if require_resumption
                && tls.conn.handshake_kind() != Some(rustls::HandshakeKind::Resumed)
            {
                return Err(TransferError::TlsNotResumed);
            }
            if !upload {
                cork(&sock, true);
            }
            let result = copy_payload(&mut tls, job, switch, &mut reporter);
            if result.is_ok() {
                // RFC 4217 §10: every protected transfer ends with close_notify.
                tls.conn.send_close_notify();
                let _ = flush_paced(&mut tls, &mut reporter);
            }
            result
        }
    };
    if !upload {
        // The last partial segment goes out now, then FIN; the client reads to EOF.
        cork(&sock, false);
        let _ = sock.shutdown(Shutdown::Write);
    }
    if !switch.finish() && result.is_ok() && upload {
        // An aborted upload is never reported complete, even if EOF raced the abort: the EOF
        // may be the shutdown's.
        return Err(switch.reason());
    }
    result
}

/// TCP_CORK on a download's socket: the kernel sends only full segments until it is lifted.
/// Without it every `sendfile` or `write` ends by pushing a partial segment; with it a 1 GiB
/// RETR on loopback ran at 2514-2857 MB/s instead of 1993-2029 (curl, same minute). Set after
/// any TLS handshake, whose small messages must not wait. Only an optimisation: a failure is
/// ignored.
pub(super) fn cork(sock: &std::net::TcpStream, on: bool) {
    let _ = rustix::net::sockopt::set_tcp_cork(sock, on);
}

/// What the copy loop moves, and how.
pub(super) struct CopyJob {
    pub(super) payload: Payload,
    pub(super) ascii: bool,
    pub(super) buffer: usize,
    pub(super) tls: Option<DataTls>,
    /// How long a protected data connection's TLS handshake may take (the data-connection
    /// timeout: the connection is not usable before it completes).
    pub(super) handshake_timeout: Duration,
}

pub(super) fn copy_payload<S: Read + Write>(
    sock: &mut S,
    job: CopyJob,
    switch: &AbortSwitch,
    reporter: &mut ProgressReporter,
) -> TransferResult {
    let CopyJob {
        payload,
        ascii,
        buffer,
        ..
    } = job;
    match payload {
        Payload::SendBytes(bytes) => {
            let mut wire = Vec::new();
            let out: &[u8] = if ascii {
                lf_to_crlf(&bytes, false, &mut wire);
                &wire
            } else {
                &bytes
            };
            write_paced(sock, out, reporter)?;
            flush_paced(sock, reporter)?;
            Ok(bytes.len() as u64)
        }
        Payload::SendFile(file) => send_file(sock, file, ascii, buffer, switch, reporter),
        Payload::Receive(file) => receive_file(sock, file, ascii, buffer, switch, reporter),
        Payload::SendStream(stream) => send_file(sock, stream, ascii, buffer, switch, reporter),
        Payload::ReceiveStream(stream) => {
            receive_file(sock, stream, ascii, buffer, switch, reporter)
        }
    }
}

/// The most one `sendfile` call may move. Larger calls cost less CPU per byte (*measured*:
/// 1 MiB calls gave 8% less throughput and 10% more CPU than 8 MiB on A); smaller ones report
/// progress sooner, since a blocking call returns only once all its bytes are in the socket.
pub(super) const SENDFILE_MAX_CHUNK: usize = 8 * 1024 * 1024;

/// RETR in TYPE I without TLS: the kernel sends page-cache pages straight to the socket, saving
/// the copy through a user-space buffer (*measured*: see tests/bench/BENCHMARKS.md). Calls start
/// at one copy buffer and double while the client keeps up, so STAT and `who` see bytes move on
/// a slow link as often as with the read/write loop. Falls back to that loop where the file
/// system does not support `sendfile`.
pub(super) fn sendfile_loop(
    sock: &std::net::TcpStream,
    file: std::fs::File,
    buffer: usize,
    switch: &AbortSwitch,
    reporter: &mut ProgressReporter,
) -> TransferResult {
    use rustix::io::Errno;
    let mut done: u64 = 0;
    let mut chunk = buffer;
    loop {
        if switch.is_triggered() {
            return Err(switch.reason());
        }
        let started = std::time::Instant::now();
        // `None`: from the file's own position, where REST put it.
        match rustix::fs::sendfile(sock, &file, None, reporter.cap(chunk)) {
            Ok(0) => return Ok(done),
            Ok(n) => {
                done += n as u64;
                reporter.moved(n);
                reporter.report(done);
                reporter.pace(n)?;
                chunk = if started.elapsed() < PROGRESS_INTERVAL / 4 {
                    (chunk * 2).min(SENDFILE_MAX_CHUNK.max(buffer))
                } else {
                    buffer
                };
            }
            Err(Errno::INTR) => continue,
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) if done == 0 => {
                let mut sock = sock;
                return send_file(&mut sock, file, false, buffer, switch, reporter);
            }
            Err(e @ (Errno::IO | Errno::NOMEM | Errno::OVERFLOW | Errno::SPIPE)) => {
                return Err(file_error(e.into()));
            }
            // EAGAIN is SO_SNDTIMEO's tick running out with nothing sent; the rest are socket
            // errors.
            Err(Errno::AGAIN) => reporter.waited()?,
            Err(e) => return Err(socket_error(e.into(), switch)),
        }
    }
}

/// STOR in TYPE I without TLS: socket to pipe to file with `splice`, so the bytes are copied
/// once (into the page cache) instead of twice through a user-space buffer. Falls back to the
/// read/write loop where a pipe cannot be had or the file system does not splice.
pub(super) fn splice_receive(
    sock: &std::net::TcpStream,
    file: std::fs::File,
    buffer: usize,
    switch: &AbortSwitch,
    reporter: &mut ProgressReporter,
) -> TransferResult {
    use rustix::io::Errno;
    use rustix::pipe::{pipe_with, splice, PipeFlags, SpliceFlags};
    let fall_back = |file, reporter: &mut ProgressReporter| {
        let mut sock = sock;
        receive_file(&mut sock, file, false, buffer, switch, reporter)
    };
    // splice refuses a file opened for appending (APPE) with EINVAL.
    let appending = rustix::fs::fcntl_getfl(&file)
        .map_or(true, |flags| flags.contains(rustix::fs::OFlags::APPEND));
    let pipe = pipe_with(PipeFlags::CLOEXEC);
    let (false, Ok((pipe_out, pipe_in))) = (appending, pipe) else {
        return fall_back(file, reporter);
    };
    // A bigger pipe means fewer, larger splices; the default (64 KiB) still works.
    let room = rustix::pipe::fcntl_setpipe_size(&pipe_in, buffer)
        .or_else(|_| rustix::pipe::fcntl_getpipe_size(&pipe_in))
        .unwrap_or(64 * 1024);
    let mut done: u64 = 0;
    loop {
        if switch.is_triggered() {
            return Err(switch.reason());
        }
        // SO_RCVTIMEO applies: a tick with nothing received gives EAGAIN, as with read.
        let want = reporter.cap(room);
        let got = match splice(sock, None, &pipe_in, None, want, SpliceFlags::MOVE) {
            Ok(0) => return Ok(done),
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => {
                reporter.waited()?;
                continue;
            }
            Err(Errno::INVAL | Errno::NOSYS) if done == 0 => {
                return fall_back(file, reporter);
            }
            Err(e) => return Err(socket_error(e.into(), switch)),
        };
        reporter.moved(got);
        let mut left = got;
        while left > 0 {
            match splice(&pipe_out, None, &file, None, left, SpliceFlags::MOVE) {
                Ok(0) => return Err(TransferError::LocalIo("file write made no progress".into())),
                Ok(n) => left -= n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(file_error(e.into())),
            }
        }
        done += got as u64;
        reporter.report(done);
        reporter.pace(got)?;
    }
}

pub(super) fn send_file<S: Write, R: Read>(
    sock: &mut S,
    mut file: R,
    ascii: bool,
    buffer: usize,
    switch: &AbortSwitch,
    reporter: &mut ProgressReporter,
) -> TransferResult {
    let mut buf = vec![0u8; buffer];
    let mut wire = Vec::new();
    let mut prev_cr = false;
    let mut done: u64 = 0;
    loop {
        if switch.is_triggered() {
            return Err(switch.reason());
        }
        let want = reporter.cap(buf.len());
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => return Ok(done),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(file_error(e)),
        };
        let out: &[u8] = if ascii {
            wire.clear();
            prev_cr = lf_to_crlf(&buf[..n], prev_cr, &mut wire);
            &wire
        } else {
            &buf[..n]
        };
        write_paced(sock, out, reporter)?;
        done += n as u64;
        reporter.report(done);
        reporter.pace(n)?;
    }
}

pub(super) fn receive_file<S: Read, W: Write>(
    sock: &mut S,
    mut file: W,
    ascii: bool,
    buffer: usize,
    switch: &AbortSwitch,
    reporter: &mut ProgressReporter,
) -> TransferResult {
    let mut buf = vec![0u8; buffer];
    let mut filled = 0;
    let mut pending_cr = false;
    let mut done: u64 = 0;
    let mut plain = Vec::new();
    // A limited upload writes each (smaller) chunk, so its progress moves as it is paced.
    let flush_at = reporter.cap(buf.len());
    loop {
        if switch.is_triggered() {
            return Err(switch.reason());
        }
        let n = match sock.read(&mut buf[filled..flush_at]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if timed_out(&e) => {
                reporter.waited()?;
                continue;
            }
            Err(e) => return Err(socket_error(e, switch)),
        };
        reporter.moved(n);
        reporter.pace(n)?;
        filled += n;
        // Write when the buffer is full or at EOF: few large writes instead of many small ones.
        if n == 0 || filled == flush_at {
            let chunk: &[u8] = if ascii {
                plain.clear();
                pending_cr = crlf_to_lf(&buf[..filled], pending_cr, n == 0, &mut plain);
                &plain
            } else {
                &buf[..filled]
            };
            file.write_all(chunk).map_err(file_error)?;
            done += chunk.len() as u64;
            filled = 0;
            reporter.report(done);
        }
        if n == 0 {
            return Ok(done);
        }
    }
}
