//! The DataChannel actor: one per transfer, short-lived.
//!
//! It owns the data socket and the open file (or the listing bytes). It accepts the passive
//! connection (only from the control connection's peer) or connects to the active target,
//! then copies in a blocking-pool task: `sendfile` for a clear TYPE I RETR, otherwise large
//! buffers, converting line endings for TYPE A. Bytes already in memory (a listing, a small
//! file) in clear are written on the actor's own thread instead, straight into the socket,
//! and wait on the reactor only if the socket is full. Downloads run corked (full segments).
//! It reports `Progress` at a bounded rate and exactly one `TransferDone` to its Session, and
//! obeys `Abort` by shutting the socket down under the copy loop. It never touches the control connection or the file system's metadata.
//!
//! What a transfer may hold is bounded: a copy on the blocking pool first takes one of the
//! daemon's transfer-thread permits (waiting at most the data-connection timeout, then 425);
//! every blocking socket call returns within `SOCKET_TICK`, so the copy loop counts the bytes
//! that moved and ends a transfer with no progress for the stall timeout; and the actor's
//! watchdog ends one that moves less than the minimum rate over a window (426), shutting the
//! socket down under the copy loop as `Abort` does.

use actix::prelude::*;
use rustls::server::ServerConfig;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
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

/// The least a transfer must move over a window, or it is ended with 426 (`0` bytes: off).
/// Bytes count when the socket takes or gives them, in either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub bytes_per_sec: u64,
    pub window: Duration,
}

impl MinRate {
    /// Bytes a window must see; `None` when the check is off.
    fn floor(&self) -> Option<u64> {
        if self.bytes_per_sec == 0 || self.window.is_zero() {
            return None;
        }
        let floor = u128::from(self.bytes_per_sec) * self.window.as_millis() / 1000;
        Some(u64::try_from(floor).unwrap_or(u64::MAX).max(1))
    }
}

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
#[derive(Debug)]
pub enum Payload {
    /// RETR: the file, already positioned at the REST offset.
    SendFile(std::fs::File),
    /// Bytes in memory: a formatted listing (LIST, NLST, MLSD) or a small file.
    SendBytes(Vec<u8>),
    /// STOR/APPE: the file to write to.
    Receive(std::fs::File),
}

impl Payload {
    fn is_upload(&self) -> bool {
        matches!(self, Payload::Receive(_))
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
    /// When the window began (tokio's clock, so paused-time tests move it) and the wire count then.
    window: Option<(tokio::time::Instant, u64)>,
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
                window: None,
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
        let Some(floor) = self.rate.min.floor() else {
            return;
        };
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
            accept_from(listener, spec.control_peer, spec.connect_timeout).await?
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
    };
    let job = CopyJob {
        payload,
        ascii: spec.ascii,
        buffer,
        tls: spec.tls,
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
        (Payload::SendFile(_), Some(n)) => {
            (n.saturating_add(1)).clamp(MIN_BUFFER as u64, max as u64) as usize
        }
        (Payload::SendBytes(_), _) => MIN_BUFFER,
        _ => max,
    }
}

/// Accepts the first connection from the control peer; others are closed untouched. A client
/// normally connects before it sends RETR, so the first try usually finds the connection
/// waiting; only otherwise is the listener registered with the reactor and awaited.
async fn accept_from(
    listener: std::net::TcpListener,
    peer: Option<IpAddr>,
    timeout: Duration,
) -> Result<DataSocket, TransferError> {
    // SECURITY: a passive port is guessable; only the control connection's peer may use it.
    let from_peer = |from: SocketAddr| match peer {
        Some(peer) if !same_ip(from.ip(), peer) => {
            log::warn!("data connection from {from} refused: control connection is from {peer}");
            false
        }
        _ => true,
    };
    let failed = |e: io::Error| TransferError::NoConnection(format!("accept failed: {e}"));
    // A few tries at most: a host that keeps the backlog full of foreign connections must not
    // hold this thread (and every session on it) in a loop that never yields; the reactor's
    // accept below is bounded by tokio's cooperative budget.
    for _ in 0..QUICK_ACCEPTS {
        match accept_nonblocking(&listener) {
            Ok((sock, from)) if from_peer(from) => return Ok(sock),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(failed(e)),
        }
    }
    let listener = TcpListener::from_std(listener).map_err(failed)?;
    let accept = async {
        loop {
            let (stream, from) = listener.accept().await.map_err(failed)?;
            if from_peer(from) {
                return stream.into_std().map_err(failed);
            }
        }
    };
    match tokio::time::timeout(timeout, accept).await {
        Ok(r) => r,
        Err(_) => Err(TransferError::NoConnection(
            "nobody connected to the passive port in time".into(),
        )),
    }
}

/// `accept4` with `SOCK_NONBLOCK`: the socket comes out ready for `send_bytes`, without the
/// extra `ioctl` that `std`'s accept followed by `set_nonblocking` costs.
fn accept_nonblocking(listener: &std::net::TcpListener) -> io::Result<(DataSocket, SocketAddr)> {
    use rustix::net::{acceptfrom_with, SocketFlags};
    let (fd, from) = acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let from = from
        .and_then(|a| SocketAddr::try_from(a).ok())
        .ok_or_else(|| io::Error::other("accepted a connection without an IP address"))?;
    Ok((DataSocket::from(fd), from))
}

async fn connect_to(addr: SocketAddr, timeout: Duration) -> Result<DataSocket, TransferError> {
    let failed =
        |e: io::Error| TransferError::NoConnection(format!("connect to {addr} failed: {e}"));
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s.into_std().map_err(failed),
        Ok(Err(e)) => Err(failed(e)),
        Err(_) => Err(TransferError::NoConnection(format!(
            "connect to {addr} timed out"
        ))),
    }
}

/// Compares addresses, treating an IPv4-mapped IPv6 address as its IPv4 form.
pub fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    canonical_ip(a) == canonical_ip(b)
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The copy loop's side of progress: one relaxed store per chunk, one add per socket call, and
/// the stall deadline.
struct ProgressReporter {
    switch: Arc<AbortSwitch>,
    stall: Duration,
    /// When the socket last moved a byte (the blocking thread's own clock).
    last_moved: Instant,
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
fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// `write_all` that counts every byte the socket takes and waits out ticks up to the stall
/// timeout. Retrying after a timeout is safe: a plain socket that times out took nothing, and
/// rustls keeps what it could not send and sends it first on the next call.
fn write_paced<S: Write>(
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
fn flush_paced<S: Write>(
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
fn socket_error(e: io::Error, switch: &AbortSwitch) -> TransferError {
    if switch.is_triggered() {
        return switch.reason();
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TransferError::Stalled,
        _ => TransferError::ConnectionLost(e.to_string()),
    }
}

fn file_error(e: io::Error) -> TransferError {
    match e.raw_os_error() {
        Some(28) | Some(122) => TransferError::NoSpace,
        _ => TransferError::LocalIo(e.to_string()),
    }
}

/// The copy loop, on a blocking-pool thread, in clear or in TLS. Returns file bytes moved.
fn copy_blocking(
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
            while tls.conn.is_handshaking() {
                match tls.conn.complete_io(&mut tls.sock) {
                    Ok((got, sent)) => reporter.moved(got + sent),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if timed_out(&e) => reporter.waited()?,
                    Err(e) => {
                        return Err(TransferError::NoConnection(format!(
                            "data TLS handshake failed: {e}"
                        )))
                    }
                }
            }
            // SECURITY: with session reuse required, a data connection must come from the TLS
            // client that holds the control connection (it resumed that session).
            if require_resumption
                && tls.conn.handshake_kind() != Some(rustls::HandshakeKind::Resumed)
            {
                return Err(TransferError::NoConnection(
                    "data connection did not resume the control connection's TLS session".into(),
                ));
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
fn cork(sock: &std::net::TcpStream, on: bool) {
    let _ = rustix::net::sockopt::set_tcp_cork(sock, on);
}

/// What the copy loop moves, and how.
struct CopyJob {
    payload: Payload,
    ascii: bool,
    buffer: usize,
    tls: Option<DataTls>,
}

fn copy_payload<S: Read + Write>(
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
    }
}

/// The most one `sendfile` call may move. Larger calls cost less CPU per byte (*measured*:
/// 1 MiB calls gave 8% less throughput and 10% more CPU than 8 MiB on A); smaller ones report
/// progress sooner, since a blocking call returns only once all its bytes are in the socket.
const SENDFILE_MAX_CHUNK: usize = 8 * 1024 * 1024;

/// RETR in TYPE I without TLS: the kernel sends page-cache pages straight to the socket, saving
/// the copy through a user-space buffer (*measured*: see tests/bench/BENCHMARKS.md). Calls start
/// at one copy buffer and double while the client keeps up, so STAT and `who` see bytes move on
/// a slow link as often as with the read/write loop. Falls back to that loop where the file
/// system does not support `sendfile`.
fn sendfile_loop(
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
        match rustix::fs::sendfile(sock, &file, None, chunk) {
            Ok(0) => return Ok(done),
            Ok(n) => {
                done += n as u64;
                reporter.moved(n);
                reporter.report(done);
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
fn splice_receive(
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
        let got = match splice(sock, None, &pipe_in, None, room, SpliceFlags::MOVE) {
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
    }
}

fn send_file<S: Write>(
    sock: &mut S,
    mut file: std::fs::File,
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
        let n = match file.read(&mut buf) {
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
    }
}

fn receive_file<S: Read>(
    sock: &mut S,
    mut file: std::fs::File,
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
    loop {
        if switch.is_triggered() {
            return Err(switch.reason());
        }
        let n = match sock.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if timed_out(&e) => {
                reporter.waited()?;
                continue;
            }
            Err(e) => return Err(socket_error(e, switch)),
        };
        reporter.moved(n);
        filled += n;
        // Write when the buffer is full or at EOF: few large writes instead of many small ones.
        if n == 0 || filled == buf.len() {
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

/// LF to CRLF for sending in TYPE A. A LF already preceded by CR (also across chunks, via
/// `prev_cr`) is left alone, so CRLF files never become CRCRLF. Returns the new `prev_cr`.
pub fn lf_to_crlf(input: &[u8], mut prev_cr: bool, out: &mut Vec<u8>) -> bool {
    out.reserve(input.len() + input.len() / 16);
    for &b in input {
        if b == b'\n' && !prev_cr {
            out.push(b'\r');
        }
        out.push(b);
        prev_cr = b == b'\r';
    }
    prev_cr
}

/// CRLF to LF for receiving in TYPE A. A CR at the end of a chunk is held (`pending_cr`) until
/// the next byte shows whether a LF follows; at EOF it is written as is. A lone CR is kept.
pub fn crlf_to_lf(input: &[u8], mut pending_cr: bool, eof: bool, out: &mut Vec<u8>) -> bool {
    out.reserve(input.len() + 1);
    for &b in input {
        if pending_cr {
            pending_cr = false;
            if b != b'\n' {
                out.push(b'\r');
            }
        }
        if b == b'\r' {
            pending_cr = true;
        } else {
            out.push(b);
        }
    }
    if eof && pending_cr {
        out.push(b'\r');
        pending_cr = false;
    }
    pending_cr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_wire(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = false;
        for c in chunks {
            prev = lf_to_crlf(c, prev, &mut out);
        }
        out
    }

    fn from_wire(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut pending = false;
        for (i, c) in chunks.iter().enumerate() {
            pending = crlf_to_lf(c, pending, i + 1 == chunks.len(), &mut out);
        }
        out
    }

    #[test]
    fn ascii_send_adds_cr_once() {
        let cases: Vec<(Vec<&[u8]>, &[u8])> = vec![
            (vec![b"a\nb\n"], b"a\r\nb\r\n"),
            (vec![b"a\r\nb\r\n"], b"a\r\nb\r\n"),
            (vec![b"a\r", b"\nb"], b"a\r\nb"),
            (vec![b"a", b"\n", b"\n"], b"a\r\n\r\n"),
            (vec![b"\r\r\n"], b"\r\r\n"),
            (vec![b""], b""),
        ];
        for (chunks, want) in cases {
            assert_eq!(to_wire(&chunks), want, "{chunks:?}");
        }
    }

    #[test]
    fn ascii_receive_strips_cr_before_lf_even_across_reads() {
        let cases: Vec<(Vec<&[u8]>, &[u8])> = vec![
            (vec![b"a\r\nb\r\n"], b"a\nb\n"),
            (vec![b"a\r", b"\nb"], b"a\nb"),
            (vec![b"a\r", b"b"], b"a\rb"),
            (vec![b"a\r", b""], b"a\r"),
            (vec![b"a\n"], b"a\n"),
            (vec![b"\r\r\n"], b"\r\n"),
        ];
        for (chunks, want) in cases {
            assert_eq!(from_wire(&chunks), want, "{chunks:?}");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_compare_equal() {
        let v4: IpAddr = "127.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        let other: IpAddr = "127.0.0.2".parse().expect("ip");
        assert!(same_ip(v4, mapped));
        assert!(!same_ip(v4, other));
    }
}
