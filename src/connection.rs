//! The control connection's I/O task: the one owner of the control socket.
//!
//! It decodes lines with `FtpCodec`, hands each parsed command to its Session (waiting for the
//! Session to take it, which gives back-pressure), and writes the replies the Session queues.
//! It is a plain task rather than an actor so that it can later hand the socket to a TLS
//! upgrade in place. It never interprets commands.

use crate::protocol::{Command, FtpCodec, Reply};
use crate::session::{ControlClosed, Outbound, Session, Unparsable};
use actix::Addr;
use futures_util::{SinkExt, StreamExt};
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

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
            match stream.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
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

/// Runs the control connection until the client leaves or the Session closes it.
pub async fn run_control(
    stream: ControlStream,
    session: Addr<Session>,
    mut replies: mpsc::UnboundedReceiver<Outbound>,
    max_line: usize,
) {
    let mut framed = Framed::with_capacity(stream, FtpCodec::new(max_line), READ_BUFFER);
    let mut reading = true;
    loop {
        tokio::select! {
            // Replies first: a client that pipelines commands still sees answers promptly.
            biased;
            out = replies.recv() => {
                let mut next = out;
                let mut close = false;
                // Queue everything already waiting, then flush once.
                while let Some(item) = next {
                    match item {
                        Outbound::Reply(reply) => {
                            if feed(&mut framed, reply).await.is_err() {
                                session.do_send(ControlClosed);
                                return;
                            }
                        }
                        Outbound::Close => {
                            close = true;
                            break;
                        }
                    }
                    next = replies.try_recv().ok();
                }
                if out_of_time(tokio::time::timeout(WRITE_TIMEOUT, framed.flush()).await) {
                    session.do_send(ControlClosed);
                    return;
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

async fn feed(framed: &mut Framed<ControlStream, FtpCodec>, reply: Reply) -> io::Result<()> {
    framed.feed(reply).await
}

fn out_of_time(r: Result<io::Result<()>, tokio::time::error::Elapsed>) -> bool {
    !matches!(r, Ok(Ok(())))
}
