//! The DataChannel actor: one per transfer, short-lived.
//!
//! It owns the data socket and the open file (or the listing bytes). It accepts the passive
//! connection (only from the control connection's peer) or connects to the active target,
//! then copies in a blocking-pool task: `sendfile` for a clear TYPE I RETR, otherwise large
//! buffers, converting line endings for TYPE A. Bytes already in memory (a listing, a small
//! file) in clear are written on the actor's own thread instead, straight into the socket,
//! and wait on the reactor only if the socket is full. Downloads run corked (full segments).
//! It reports `Progress` at a bounded rate and exactly one `TransferDone` to its Session, and
//! obeys `Abort` by shutting the socket down under the copy loop. It never touches the control
//! connection or the file system's metadata. Files: `connect.rs` opens the data connection,
//! `copy.rs` is the blocking-pool copy loop, `ascii.rs` the TYPE A line endings.
//!
//! What a transfer may hold is bounded: a copy on the blocking pool first takes one of the
//! daemon's transfer-thread permits (waiting at most the data-connection timeout, then 425);
//! every blocking socket call returns within `SOCKET_TICK`, so the copy loop counts the bytes
//! that moved and ends a transfer with no progress for the stall timeout; and the actor's
//! watchdog ends one that moves less than the minimum rate over a window (426), shutting the
//! socket down under the copy loop as `Abort` does.

mod ascii;
mod limit;
pub use limit::{parse_rate, tighter, Rate};
mod rate;
pub use rate::{MinRate, SCARCE_MIN_RATE};
mod connect;
mod copy;

pub use ascii::{crlf_to_lf, lf_to_crlf};
use connect::{accept_from, connect_to};
pub use connect::{canonical_ip, same_ip};
use copy::{copy_blocking, socket_error, CopyJob, ProgressReporter};

use actix::prelude::*;
use rustls::server::ServerConfig;
use std::io::{self, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// A data socket, non-blocking, not registered with the reactor: most small transfers find
/// the client already connected and the socket buffer free, and finish without an
/// `epoll_ctl` in either direction. Only a wait registers it.
type DataSocket = std::net::TcpStream;

/// How often, at most, a running transfer reports its byte count.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Accepts tried before the passive listener is handed to the reactor (the listen backlog is 8).
const QUICK_ACCEPTS: usize = 4;

/// The smallest copy buffer; small files get a buffer their size, large ones `Limits::transfer_buffer`.
const MIN_BUFFER: usize = 8 * 1024;

/// The longest one blocking socket call of a copy loop waits (SO_RCVTIMEO/SO_SNDTIMEO; shorter
/// if the stall timeout is). A call that times out returns what it moved, so the byte count the
/// watchdog reads is never older than this, and the loop looks at its deadlines this often.
const SOCKET_TICK: Duration = Duration::from_secs(1);

/// Where the data connection comes from.
#[derive(Debug)]
pub enum DataEndpoint {
    /// PASV/EPSV: a listener the client connects to (non-blocking, not yet registered with
    /// the reactor).
    Passive(std::net::TcpListener),
    /// PORT/EPRT: the address we connect to.
    Active(SocketAddr),
}

/// What is transferred, in which direction.
pub enum Payload {
    /// RETR: the file, already positioned at the REST offset.
    SendFile(std::fs::File),
    /// Bytes in memory: a formatted listing (LIST, NLST, MLSD) or a small file.
    SendBytes(Vec<u8>),
    /// STOR/APPE: the file to write to.
    Receive(std::fs::File),
    /// RETR from a back-end that streams (object storage), from the REST offset on. A read
    /// error (the store failed or ended early) fails the transfer.
    SendStream(Box<dyn std::io::Read + Send>),
    /// STOR/APPE into a back-end that streams. Dropped when the copy ends; whether the upload
    /// is kept is decided afterwards, by the Session (`FinishUpload`).
    ReceiveStream(Box<dyn std::io::Write + Send>),
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Payload::SendFile(file) => f.debug_tuple("SendFile").field(file).finish(),
            Payload::SendBytes(bytes) => write!(f, "SendBytes({} bytes)", bytes.len()),
            Payload::Receive(file) => f.debug_tuple("Receive").field(file).finish(),
            Payload::SendStream(_) => f.write_str("SendStream"),
            Payload::ReceiveStream(_) => f.write_str("ReceiveStream"),
        }
    }
}

impl Payload {
    fn is_upload(&self) -> bool {
        matches!(self, Payload::Receive(_) | Payload::ReceiveStream(_))
    }
}

/// Everything a DataChannel needs, given by the Session.
#[derive(Debug)]
pub struct TransferSpec {
    pub id: u64,
    pub endpoint: DataEndpoint,
    pub payload: Payload,
    /// TYPE A: LF on disk, CRLF on the wire.
    pub ascii: bool,
    /// SECURITY: only this address may connect to a passive endpoint (`None`: FXP allowed).
    pub control_peer: Option<IpAddr>,
    /// `--proxy-protocol`: a passive connection from these proxies starts with a PROXY header
    /// naming the client (read, and that client compared with `control_peer`).
    pub proxies: Option<crate::proxy::ProxyProtocol>,
    /// Bytes still to send when known (a buffer size hint).
    pub size_hint: Option<u64>,
    pub connect_timeout: Duration,
    pub stall_timeout: Duration,
    pub buffer_size: usize,
    /// PROT P: the data connection runs TLS with this configuration.
    pub tls: Option<DataTls>,
    /// SECURITY: a transfer slower than this is ended, so a trickle cannot hold it forever.
    pub min_rate: MinRate,
    /// SECURITY: the daemon's permits for copies on the blocking pool (one per running copy).
    pub threads: Arc<Semaphore>,
    /// The bandwidth limit for this transfer in bytes per second (`None`: unlimited): the
    /// tighter of the daemon's and the user's for its direction.
    pub max_rate: Rate,
}

/// TLS for one data connection (RFC 4217 §9).
#[derive(Debug, Clone)]
pub struct DataTls {
    pub config: Arc<ServerConfig>,
    /// The client must resume the control connection's TLS session.
    pub require_resumption: bool,
}

/// Why a transfer did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferError {
    /// No data connection could be made (accept/connect failed or timed out): 425.
    NoConnection(String),
    /// The protected data connection's TLS handshake failed or did not complete within the
    /// data-connection timeout: 425, saying so.
    TlsHandshake(String),
    /// With `--require-tls-session-reuse`, the data connection did not resume the control
    /// connection's TLS session (a client that does not reuse sessions, or another client): 425,
    /// saying so.
    TlsNotResumed,
    /// ABOR, or the session ended: 426.
    Aborted,
    /// The peer closed or reset the data connection: 426.
    ConnectionLost(String),
    /// No progress within the stall timeout: 426.
    Stalled,
    /// The disk is full: 452.
    NoSpace,
    /// Reading or writing the file failed: 451.
    LocalIo(String),
    /// The upload's name was taken by another upload or rename while it ran, and the user may
    /// not replace files: nothing was replaced, the upload is discarded: 553.
    NameTaken,
}

/// How a transfer ended: bytes of the file moved, or why not.
pub type TransferResult = Result<u64, TransferError>;

/// Exactly one per DataChannel, to its Session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TransferDone {
    pub id: u64,
    pub result: TransferResult,
}

/// File bytes moved so far, at most every `PROGRESS_INTERVAL`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Progress {
    pub id: u64,
    pub bytes: u64,
}

/// Stop the transfer now (ABOR, QUIT, or the session ending).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Abort;

/// `AbortSwitch::state`: the copy runs, has finished, or was stopped (and why).
const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
const ABORTED: u8 = 2;
const TOO_SLOW: u8 = 3;

/// Shared between the actor and its own copy task (nothing else sees it). The only way to stop
/// a blocking copy is to shut its socket down, so the socket is published here once it exists;
/// the copy stores its byte counts here, and the actor turns them into `Progress` messages and
/// watches the rate.
#[derive(Debug, Default)]
struct AbortSwitch {
    state: AtomicU8,
    socket: OnceLock<std::net::TcpStream>,
    /// File bytes moved (what `Progress` reports).
    done: AtomicU64,
    /// Bytes the data socket took or gave (what the minimum rate counts; TLS included).
    wire: AtomicU64,
    /// The copy has begun (connected and, on the blocking pool, holding a thread permit): from
    /// here on the minimum rate applies.
    flowing: AtomicBool,
    /// Why the watchdog stopped the transfer (read when `state` is `TOO_SLOW`).
    too_slow: OnceLock<String>,
}

impl AbortSwitch {
    /// ABOR: wins even over a finished copy (an aborted upload is never reported complete).
    fn trigger(&self) {
        let stopped = self
            .state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                matches!(s, RUNNING | FINISHED).then_some(ABORTED)
            });
        if stopped.is_ok() {
            self.shut_socket();
        }
    }

    /// The watchdog: stops only a copy still running. False if it had finished or was stopped.
    fn trigger_too_slow(&self, why: String) -> bool {
        let _ = self.too_slow.set(why);
        let stopped = self
            .state
            .compare_exchange(RUNNING, TOO_SLOW, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if stopped {
            self.shut_socket();
        }
        stopped
    }

    /// The copy reached its end. False if it was stopped first (then an upload's EOF may be
    /// the shutdown's, not the client's).
    fn finish(&self) -> bool {
        let s = self
            .state
            .compare_exchange(RUNNING, FINISHED, Ordering::SeqCst, Ordering::SeqCst);
        matches!(s, Ok(_) | Err(FINISHED))
    }

    fn shut_socket(&self) {
        if let Some(s) = self.socket.get() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn is_triggered(&self) -> bool {
        self.state.load(Ordering::SeqCst) >= ABORTED
    }

    /// How a stopped transfer ends.
    fn reason(&self) -> TransferError {
        match self.state.load(Ordering::SeqCst) {
            TOO_SLOW => TransferError::ConnectionLost(
                self.too_slow
                    .get()
                    .cloned()
                    .unwrap_or_else(|| "transfer too slow".into()),
            ),
            _ => TransferError::Aborted,
        }
    }
}

/// The actor's side of the minimum rate: the window under way.
#[derive(Debug)]
struct RateWatch {
    min: MinRate,
    /// The daemon's copy-thread permits, to see whether they are scarce.
    threads: Arc<Semaphore>,
    /// When the window began (tokio's clock, so paused-time tests move it) and the wire count then.
    window: Option<(tokio::time::Instant, u64)>,
    /// The transfer's own bandwidth limit: the server never kills what it slows down itself.
    max_rate: Rate,
}

pub struct DataChannel {
    spec: Option<TransferSpec>,
    id: u64,
    done_to: Recipient<TransferDone>,
    progress_to: Recipient<Progress>,
    switch: Arc<AbortSwitch>,
    result: Option<TransferResult>,
    reported: u64,
    rate: RateWatch,
}

impl DataChannel {
    pub fn new(
        spec: TransferSpec,
        done_to: Recipient<TransferDone>,
        progress_to: Recipient<Progress>,
    ) -> Self {
        DataChannel {
            id: spec.id,
            rate: RateWatch {
                min: spec.min_rate,
                threads: spec.threads.clone(),
                window: None,
                max_rate: spec.max_rate,
            },
            spec: Some(spec),
            done_to,
            progress_to,
            switch: Arc::new(AbortSwitch::default()),
            result: None,
            reported: 0,
        }
    }

    /// SECURITY: the minimum rate. Each window (from the moment the copy begins) must see
    /// `min_rate * window` bytes on the data socket; otherwise the socket is shut down under
    /// the copy loop (426). A transfer still waiting for its data connection or a thread permit
    /// is under those deadlines instead.
    fn watch_rate(&mut self, ctx: &mut Context<Self>) {
        let holds_thread = self.switch.socket.get().is_some();
        let free = self.rate.threads.available_permits();
        let Some(floor) = self.rate.min.floor_now(holds_thread, free) else {
            return;
        };
        let floor = self.rate.min.within_limit(floor, self.rate.max_rate);
        if self.result.is_some() || !self.switch.flowing.load(Ordering::SeqCst) {
            return;
        }
        let now = tokio::time::Instant::now();
        let wire = self.switch.wire.load(Ordering::Relaxed);
        let (began, at) = *self.rate.window.get_or_insert((now, wire));
        if now.duration_since(began) < self.rate.min.window {
            return;
        }
        let moved = wire.saturating_sub(at);
        if moved >= floor {
            self.rate.window = Some((now, wire));
            return;
        }
        let why = format!(
            "slower than the minimum rate: {moved} bytes in {:?} (at least {floor} needed)",
            self.rate.min.window
        );
        if self.switch.trigger_too_slow(why) && self.switch.socket.get().is_none() {
            // Written on this thread (bytes in memory): dropping the future closes the socket.
            self.result = Some(Err(self.switch.reason()));
            ctx.stop();
        }
        // Otherwise the copy task sees its socket shut down and ends with the reason.
    }
}

impl Actor for DataChannel {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(spec) = self.spec.take() else {
            self.result = Some(Err(TransferError::LocalIo("transfer started twice".into())));
            ctx.stop();
            return;
        };
        let switch = self.switch.clone();
        let fut = run_transfer(spec, switch);
        ctx.spawn(fut.into_actor(self).map(|result, act, ctx| {
            act.result = Some(result);
            ctx.stop();
        }));
        // Progress to the Session at a bounded rate, and only when bytes moved: the copy loop
        // may be blocked on a full socket, and its latest count still gets reported.
        ctx.run_interval(PROGRESS_INTERVAL, |act, ctx| {
            let bytes = act.switch.done.load(Ordering::Relaxed);
            if bytes != act.reported {
                act.reported = bytes;
                act.progress_to.do_send(Progress { id: act.id, bytes });
            }
            act.watch_rate(ctx);
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if self.result.is_none() {
            // Stopped from outside (the System ending): a copy on the blocking pool must not
            // outlive its actor.
            self.switch.trigger();
        }
        let result = self.result.take().unwrap_or(Err(TransferError::Aborted));
        self.done_to.do_send(TransferDone {
            id: self.id,
            result,
        });
    }
}

impl Handler<Abort> for DataChannel {
    type Result = ();

    fn handle(&mut self, _: Abort, ctx: &mut Context<Self>) {
        self.switch.trigger();
        if self.switch.socket.get().is_none() {
            // Still waiting for the connection: dropping the future cancels the accept/connect.
            self.result = Some(Err(TransferError::Aborted));
            ctx.stop();
        }
        // Otherwise the copy task sees its socket shut down and ends with `Aborted`.
    }
}

/// The whole transfer: connect, then copy on the blocking pool, or, for bytes in memory in
/// clear, write them right here on the actor's thread.
async fn run_transfer(spec: TransferSpec, switch: Arc<AbortSwitch>) -> TransferResult {
    let sock = match spec.endpoint {
        DataEndpoint::Passive(listener) => {
            let proxies = spec.proxies.as_ref();
            accept_from(listener, spec.control_peer, proxies, spec.connect_timeout).await?
        }
        DataEndpoint::Active(addr) => connect_to(addr, spec.connect_timeout).await?,
    };
    let payload = match (spec.tls.is_none(), spec.payload) {
        // Bytes in memory (listings, small files) in clear: written right here, no thread.
        (true, Payload::SendBytes(bytes)) => {
            switch.flowing.store(true, Ordering::SeqCst);
            return send_bytes(sock, bytes, spec.ascii, spec.stall_timeout, &switch).await;
        }
        (_, payload) => payload,
    };
    // SECURITY: at most so many copies hold blocking-pool threads; the rest wait here, under
    // the data-connection timeout, and get 425 rather than queueing in the pool unseen. Before
    // the socket is published, so an Abort while waiting stops the actor at once.
    let permit = match tokio::time::timeout(
        spec.connect_timeout,
        spec.threads.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => return Err(TransferError::LocalIo("transfer permits closed".into())),
        Err(_) => {
            return Err(TransferError::NoConnection(
                "every transfer thread stayed busy for the data-connection timeout".into(),
            ))
        }
    };
    let tick = SOCKET_TICK
        .min(spec.stall_timeout)
        .max(Duration::from_millis(10));
    let setup = || -> io::Result<std::net::TcpStream> {
        sock.set_nonblocking(false)?;
        // SECURITY: no socket call blocks longer than a tick; the copy loop then ends a
        // transfer with no progress for the stall timeout, and the watchdog a too slow one.
        sock.set_read_timeout(Some(tick))?;
        sock.set_write_timeout(Some(tick))?;
        sock.try_clone()
    };
    let abort_clone = setup().map_err(|e| TransferError::NoConnection(e.to_string()))?;
    let _ = switch.socket.set(abort_clone);
    // The actor handles Abort between polls of this future: after publishing the socket we
    // look at the flag once more, so an Abort that came first is never missed.
    if switch.is_triggered() {
        return Err(switch.reason());
    }
    let buffer = buffer_size(&payload, spec.size_hint, spec.buffer_size);
    let reporter = ProgressReporter {
        switch: switch.clone(),
        stall: spec.stall_timeout,
        last_moved: Instant::now(),
        limit: spec.max_rate.map(limit::TokenBucket::new),
    };
    let job = CopyJob {
        payload,
        ascii: spec.ascii,
        buffer,
        tls: spec.tls,
        handshake_timeout: spec.connect_timeout,
    };
    switch.flowing.store(true, Ordering::SeqCst);
    let job = tokio::task::spawn_blocking(move || {
        let result = copy_blocking(sock, job, &switch, reporter);
        drop(permit);
        result
    });
    match job.await {
        Ok(result) => result,
        Err(e) => Err(TransferError::LocalIo(format!("copy task failed: {e}"))),
    }
}

/// Sends bytes held in memory: straight into the socket while it takes them, then (a large
/// listing, a slow client) on the reactor under the stall timeout. An Abort drops this future
/// (the actor stops), which closes the socket.
async fn send_bytes(
    mut sock: DataSocket,
    bytes: Vec<u8>,
    ascii: bool,
    stall: Duration,
    switch: &AbortSwitch,
) -> TransferResult {
    use tokio::io::AsyncWriteExt;
    let len = bytes.len() as u64;
    let wire = if ascii {
        let mut wire = Vec::with_capacity(bytes.len() + bytes.len() / 16);
        lf_to_crlf(&bytes, false, &mut wire);
        wire
    } else {
        bytes
    };
    let mut sent = 0;
    while sent < wire.len() {
        match sock.write(&wire[sent..]) {
            Ok(0) => {
                return Err(TransferError::ConnectionLost(
                    "the socket took nothing".into(),
                ))
            }
            Ok(n) => {
                sent += n;
                switch.wire.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(socket_error(e, switch)),
        }
    }
    let finish = async {
        if sent == wire.len() {
            return sock.shutdown(Shutdown::Write);
        }
        let mut stream = TcpStream::from_std(sock)?;
        while sent < wire.len() {
            let n = stream.write(&wire[sent..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            sent += n;
            switch.wire.fetch_add(n as u64, Ordering::Relaxed);
        }
        stream.shutdown().await
    };
    match tokio::time::timeout(stall, finish).await {
        Ok(Ok(())) => {
            switch.done.store(len, Ordering::Relaxed);
            Ok(len)
        }
        Ok(Err(e)) => Err(socket_error(e, switch)),
        Err(_) => Err(TransferError::Stalled),
    }
}

fn buffer_size(payload: &Payload, size_hint: Option<u64>, max: usize) -> usize {
    let max = max.max(MIN_BUFFER);
    match (payload, size_hint) {
        (Payload::SendFile(_) | Payload::SendStream(_), Some(n)) => {
            (n.saturating_add(1)).clamp(MIN_BUFFER as u64, max as u64) as usize
        }
        (Payload::SendBytes(_), _) => MIN_BUFFER,
        _ => max,
    }
}
