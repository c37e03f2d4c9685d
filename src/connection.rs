//! The control connection's I/O task: the one owner of the control socket.
//!
//! It decodes lines with `FtpCodec`, hands each parsed command to its Session (waiting for the
//! Session to take it, which gives back-pressure), and writes the replies the Session queues.
//! It is a plain task rather than an actor so that it can own the socket across an in-place
//! TLS upgrade (`AUTH TLS`, RFC 4217). It never interprets commands. The one thing it looks
//! at is a connection's first bytes: a PROXY protocol header there did not come from a trusted
//! proxy (the Listener has already read those), and the connection is closed.

use crate::protocol::{Command, FtpCodec, ParseError, Reply};
use crate::session::{ControlClosed, Session, SinkItem, Unparsable};
use actix::Addr;
use bytes::BytesMut;
use futures_util::{FutureExt, SinkExt, StreamExt};
use rustls::server::ServerConfig;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, Encoder, Framed};

/// A client that does not read its replies for this long is disconnected.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Initial read buffer: most command lines fit, and idle sessions stay small.
const READ_BUFFER: usize = 256;

/// A TCP stream whose reads survive TCP urgent data.
///
/// Clients send ABOR as urgent data (`IAC IP`, `IAC DM` with MSG_OOB). With `SO_OOBINLINE` the
/// urgent byte arrives inline, but Linux ends a read at the urgent mark; tokio's `poll_read`
/// takes a short read as "drained" and waits for a new edge that never comes. Reading with
/// `try_read` clears readiness only on `WouldBlock`, so the rest of the line is read at once.
pub struct ControlStream(TcpStream);

impl ControlStream {
    pub fn new(stream: TcpStream) -> io::Result<ControlStream> {
        let sock = socket2::SockRef::from(&stream);
        sock.set_out_of_band_inline(true)?;
        stream.set_nodelay(true)?;
        Ok(ControlStream(stream))
    }
}

impl AsyncRead for ControlStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &self.get_mut().0;
        loop {
            ready!(stream.poll_read_ready(cx))?;
            let dst = buf.initialize_unfilled();
            let mut got = 0;
            // A read that stops short just after a line end has drained the socket: readiness
            // is cleared then and there (by answering "would block"), which saves the read that
            // would only return EAGAIN before every wait. A read that stops short anywhere else
            // may have stopped at the urgent mark, so the loop reads on until EAGAIN.
            let read = stream.try_io(Interest::READABLE, || {
                got = rustix::io::read(stream, &mut *dst).map_err(io::Error::from)?;
                if drained_at_line_end(dst, got) {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(got)
            });
            match read {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => {
                    buf.advance(got);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

/// A short read (fewer bytes than asked for) that ends with LF. Linux ends a read early only when
/// the socket is empty or at the urgent mark, and every client's urgent ABOR puts the mark after
/// an IAC or inside the line, never right after a line end.
fn drained_at_line_end(dst: &[u8], got: usize) -> bool {
    got > 0 && got < dst.len() && dst[got - 1] == b'\n'
}

impl AsyncWrite for ControlStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The control connection's transport: plaintext until `AUTH TLS`, TLS after (or from the
/// start on the implicit-TLS port).
pub enum ControlIo {
    Plain(ControlStream),
    Tls(Box<tokio_rustls::server::TlsStream<ControlStream>>),
}

impl AsyncRead for ControlIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ControlIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ControlIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ControlIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ControlIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlIo::Plain(s) => Pin::new(s).poll_flush(cx),
            ControlIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ControlIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ControlIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How long a TLS handshake on the control connection may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

type ControlFramed = Framed<ControlIo, ControlCodec>;

/// `FtpCodec`, with a look at the connection's first bytes.
struct ControlCodec {
    lines: FtpCodec,
    /// Still deciding whether the first bytes are a PROXY header.
    first_bytes: bool,
}

/// The read error that closes a connection whose first bytes are a PROXY header.
#[derive(Debug)]
struct ProxyHeaderRefused;

impl std::fmt::Display for ProxyHeaderRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PROXY header from a peer not in --trusted-proxies")
    }
}

impl std::error::Error for ProxyHeaderRefused {}

impl Decoder for ControlCodec {
    type Item = Result<Command, ParseError>;
    type Error = io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        if self.first_bytes {
            // SECURITY: a client must not claim another address. A header from a trusted proxy
            // was read before this task started; one here comes from anyone else (or is a
            // second one), and the connection is closed before the Session sees a byte of it.
            match crate::proxy::looks_like_header(src) {
                Some(true) => return Err(io::Error::other(ProxyHeaderRefused)),
                Some(false) => self.first_bytes = false,
                // At most 11 bytes wait here (the v2 signature is 12) for the rest.
                None => return Ok(None),
            }
        }
        self.lines.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, io::Error> {
        // A connection that ends inside what could have been a header's first bytes was not
        // one: what arrived is still lines.
        self.first_bytes = false;
        self.lines.decode_eof(src)
    }
}

impl Encoder<Reply> for ControlCodec {
    type Error = io::Error;

    fn encode(&mut self, reply: Reply, dst: &mut BytesMut) -> Result<(), io::Error> {
        self.lines.encode(reply, dst)
    }
}

/// Replies are short: the write buffer starts small and grows only for long listings (STAT,
/// HELP). tokio-util would give every connection 8 KiB here, most of an idle session's cost.
const WRITE_BUFFER: usize = 128;

/// `first_bytes`: the connection's first bytes are still to come (not after a TLS upgrade).
fn control_framed(io: ControlIo, max_line: usize, first_bytes: bool) -> ControlFramed {
    let codec = ControlCodec {
        lines: FtpCodec::new(max_line),
        first_bytes,
    };
    let mut framed = Framed::with_capacity(io, codec, READ_BUFFER);
    *framed.write_buffer_mut() = BytesMut::with_capacity(WRITE_BUFFER);
    framed
}

/// Runs the TLS handshake on a plaintext control stream (AUTH TLS, or implicit TLS at connect).
async fn accept_tls(stream: ControlStream, config: Arc<ServerConfig>) -> io::Result<ControlIo> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Ok(ControlIo::Tls(Box::new(tls))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// Upgrades the control connection in place after the 234 reply has been flushed.
async fn start_tls(
    framed: ControlFramed,
    config: Arc<ServerConfig>,
    max_line: usize,
    tag: &str,
) -> io::Result<ControlFramed> {
    let mut parts = framed.into_parts();
    // The LF of AUTH's own CRLF may still be waiting (the codec ends a line at CR).
    if parts.read_buf.first() == Some(&b'\n') {
        let _ = parts.read_buf.split_to(1);
    }
    if !parts.read_buf.is_empty() {
        // SECURITY: plaintext pipelined after AUTH TLS could have been injected by anyone on
        // the path; it is dropped unread (RFC 4217 §13, "command injection").
        log::warn!(
            "[{tag}] discarding {} plaintext bytes sent after AUTH TLS",
            parts.read_buf.len()
        );
    }
    let ControlIo::Plain(plain) = parts.io else {
        return Err(io::Error::other("AUTH TLS on a connection already in TLS"));
    };
    let io = accept_tls(plain, config).await?;
    Ok(control_framed(io, max_line, false))
}

/// Runs the control connection until the client leaves or the Session closes it. With
/// `implicit_tls`, the TLS handshake comes first (before the 220 greeting is written). `tag`
/// starts its log lines, as the Session's do (`#id peer`): TLS happens before any login.
pub async fn run_control(
    stream: ControlStream,
    session: Addr<Session>,
    mut replies: mpsc::UnboundedReceiver<SinkItem>,
    max_line: usize,
    implicit_tls: Option<Arc<ServerConfig>>,
    tag: String,
) {
    let io = match implicit_tls {
        None => ControlIo::Plain(stream),
        Some(config) => match accept_tls(stream, config).await {
            Ok(io) => io,
            Err(e) => {
                log::info!("[{tag}] implicit TLS handshake failed: {e}");
                session.do_send(ControlClosed);
                return;
            }
        },
    };
    let mut framed = control_framed(io, max_line, true);
    let mut reading = true;
    loop {
        tokio::select! {
            // Replies first: a client that pipelines commands still sees answers promptly, and
            // an AUTH TLS upgrade happens before any further line is read.
            biased;
            out = replies.recv() => {
                let mut next = out;
                let mut close = false;
                let mut upgrade = None;
                let mut waited = false;
                // Queue everything already waiting, then flush once.
                loop {
                    let mut preliminary = false;
                    while let Some(item) = next {
                        match item {
                            SinkItem::Reply(reply) => {
                                preliminary = reply.code.is_preliminary();
                                if framed.feed(reply).await.is_err() {
                                    session.do_send(ControlClosed);
                                    return;
                                }
                            }
                            SinkItem::Close => {
                                close = true;
                                break;
                            }
                            SinkItem::StartTls(config) => {
                                upgrade = Some(config);
                                break;
                            }
                        }
                        next = replies.try_recv().ok();
                    }
                    // A 150 is often followed at once by its 226: a small transfer finishes
                    // on this thread as soon as the tasks already woken have run (the Session
                    // starts the DataChannel before it queues the 150, so that task is ahead
                    // of this one; its bytes may reach the client before the 150, as they did
                    // before this wait existed). Letting them run first sends both in one
                    // write (one segment, one client wake-up); a long transfer's 150 waits
                    // only for that one round.
                    if !preliminary || waited || close || upgrade.is_some() {
                        break;
                    }
                    waited = true;
                    behind_woken_tasks().await;
                    next = replies.try_recv().ok();
                }
                if !flushed(&mut framed).await {
                    session.do_send(ControlClosed);
                    return;
                }
                if let Some(config) = upgrade {
                    framed = match start_tls(framed, config, max_line, &tag).await {
                        Ok(f) => f,
                        Err(e) => {
                            log::info!("[{tag}] AUTH TLS handshake failed: {e}");
                            session.do_send(ControlClosed);
                            return;
                        }
                    };
                    continue;
                }
                // `None` from recv: the Session has stopped and dropped its sender.
                if close || replies.is_closed() && replies.is_empty() {
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, framed.get_mut().shutdown()).await;
                    return;
                }
            }
            item = framed.next(), if reading => {
                let delivered = match item {
                    Some(Ok(Ok(cmd))) => session.send::<Command>(cmd).await.is_ok(),
                    Some(Ok(Err(e))) => session.send::<Unparsable>(Unparsable(e)).await.is_ok(),
                    // EOF or a read error: the Session decides how to wind down.
                    Some(Err(e)) if e.get_ref().is_some_and(|e| e.is::<ProxyHeaderRefused>()) => {
                        log::warn!("[{tag}] {e}: closed");
                        reading = false;
                        session.do_send(ControlClosed);
                        true
                    }
                    Some(Err(_)) | None => {
                        reading = false;
                        session.do_send(ControlClosed);
                        true
                    }
                };
                if !delivered {
                    // The Session has stopped (QUIT, 421): its last replies are still queued,
                    // and the reply branch writes them and closes when the queue ends.
                    reading = false;
                }
            }
        }
    }
}

/// Flushes the replies. The write timeout's timer is armed only when the socket buffer is full:
/// a reply that fits (nearly always) costs no timer entry.
async fn flushed(framed: &mut ControlFramed) -> bool {
    match framed.flush().now_or_never() {
        Some(r) => r.is_ok(),
        None => matches!(
            tokio::time::timeout(WRITE_TIMEOUT, framed.flush()).await,
            Ok(Ok(()))
        ),
    }
}

/// Returns once the tasks already woken on this thread have had their turn: the task wakes
/// itself and goes to the back of the queue. Unlike `tokio::task::yield_now`, it does not make
/// the runtime poll the I/O driver first (an `epoll_wait` per 150 reply).
async fn behind_woken_tasks() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}
