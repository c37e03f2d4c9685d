//! The Listener actor: one per listening address.
//!
//! It accepts control connections, numbers them, and starts each Session on one of the worker
//! Arbiters in turn (an Arbiter is one thread, so this is what spreads sessions over cores).
//! The accepted socket crosses threads as a std socket and is registered again on the worker's
//! reactor. It keeps the count of open sessions, told by `SessionClosed`. It never reads or
//! writes a control connection itself.

use crate::connection::{run_control, ControlStream};
use crate::session::{Peer, Services, Session, SessionClosed};
use actix::prelude::*;
use actix_rt::ArbiterHandle;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Pause after an accept error (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub struct Listener {
    listener: Option<TcpListener>,
    workers: Vec<ArbiterHandle>,
    next_worker: usize,
    services: Services,
    next_id: u64,
    open: usize,
}

impl Listener {
    /// `workers` must not be empty: sessions run there, never on the Listener's thread.
    pub fn new(listener: TcpListener, workers: Vec<ArbiterHandle>, services: Services) -> Listener {
        Listener {
            listener: Some(listener),
            workers,
            next_worker: 0,
            services,
            next_id: 1,
            open: 0,
        }
    }
}

/// One accepted connection, or an accept error.
#[derive(Message)]
#[rtype(result = "()")]
struct Accepted(io::Result<(TcpStream, SocketAddr)>);

/// How many sessions are open (for tests and the admin view).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct OpenSessions;

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let me = ctx.address();
        // The accept loop waits for each connection to be handled before the next accept,
        // so a burst of connections cannot pile up unbounded in the mailbox.
        ctx.spawn(
            async move {
                loop {
                    let accepted = listener.accept().await;
                    let failed = accepted.is_err();
                    if me.send(Accepted(accepted)).await.is_err() {
                        return;
                    }
                    if failed {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            }
            .into_actor(self),
        );
    }
}

impl Handler<Accepted> for Listener {
    type Result = ();

    fn handle(&mut self, msg: Accepted, ctx: &mut Context<Self>) {
        let (stream, remote) = match msg.0 {
            Ok(v) => v,
            Err(e) => {
                log::warn!("accept failed: {e}");
                return;
            }
        };
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                log::warn!("cannot hand over connection from {remote}: {e}");
                return;
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        self.open += 1;
        let worker = &self.workers[self.next_worker % self.workers.len()];
        self.next_worker = self.next_worker.wrapping_add(1);
        let services = self.services.clone();
        let closed_to = ctx.address().recipient();
        let spawned = worker.spawn(async move {
            start_session(std_stream, remote, id, services, Some(closed_to));
        });
        if !spawned {
            log::error!("worker arbiter is gone; connection from {remote} dropped");
            self.open -= 1;
        }
    }
}

impl Handler<SessionClosed> for Listener {
    type Result = ();

    fn handle(&mut self, _: SessionClosed, _: &mut Context<Self>) {
        self.open = self.open.saturating_sub(1);
    }
}

impl Handler<OpenSessions> for Listener {
    type Result = usize;

    fn handle(&mut self, _: OpenSessions, _: &mut Context<Self>) -> usize {
        self.open
    }
}

/// Starts a Session and its I/O task on the current (worker) Arbiter.
fn start_session(
    std_stream: std::net::TcpStream,
    remote: SocketAddr,
    id: u64,
    services: Services,
    closed_to: Option<Recipient<SessionClosed>>,
) {
    let setup = || -> io::Result<(ControlStream, SocketAddr)> {
        let stream = TcpStream::from_std(std_stream)?;
        let local = stream.local_addr()?;
        Ok((ControlStream::new(stream)?, local))
    };
    let (stream, local) = match setup() {
        Ok(v) => v,
        Err(e) => {
            log::warn!("[#{id} {remote}] connection setup failed: {e}");
            if let Some(to) = closed_to {
                to.do_send(SessionClosed { id, remote });
            }
            return;
        }
    };
    let max_line = services.config.limits.max_line;
    let (tx, rx) = mpsc::unbounded_channel();
    let session = Session::new(Peer { id, remote, local }, services, tx, closed_to).start();
    actix_rt::spawn(run_control(stream, session, rx, max_line));
}
