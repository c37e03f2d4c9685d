//! The Listener actor: one per listening address.
//!
//! It accepts control connections, refuses those over the session limits (global, per source
//! IP) or from a temporarily banned source with `421`, numbers the rest, and starts each Session
//! on one of the worker Arbiters in turn (an Arbiter is one thread, so this is what spreads
//! sessions over cores), with that worker's Resolver. The accepted socket crosses threads as a
//! std socket and is registered again on the worker's reactor. It keeps its sessions' addresses
//! (told by `SessionStarted` and `SessionClosed`) to tell them about a shutdown, and counts
//! failed logins per source IP. It never reads a control connection itself.

use crate::connection::{run_control, ControlStream};
use crate::file_store::Resolver;
use crate::session::{LoginFailed, Peer, ServerShutdown, Services, Session, SessionClosed};
use actix::prelude::*;
use actix_rt::ArbiterHandle;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Pause after an accept error (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a refused client gets to read its 421 before the socket is closed.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Failed-login records kept before old, unbanned ones are pruned.
const MAX_TRACKED_SOURCES: usize = 10_000;

#[derive(Default)]
struct Failures {
    recent: VecDeque<Instant>,
    banned_until: Option<Instant>,
}

pub struct Listener {
    listener: Option<TcpListener>,
    accepting: Option<SpawnHandle>,
    workers: Vec<Worker>,
    next_worker: usize,
    services: Services,
    next_id: u64,
    open: usize,
    per_ip: HashMap<IpAddr, usize>,
    sessions: HashMap<u64, Addr<Session>>,
    failures: HashMap<IpAddr, Failures>,
    shutting_down: bool,
    /// The implicit-TLS port: every connection starts with a TLS handshake.
    implicit_tls: bool,
}

/// A worker Arbiter (one thread) and the Resolver that runs on it.
#[derive(Clone)]
pub struct Worker {
    pub arbiter: ArbiterHandle,
    pub resolver: Addr<Resolver>,
}

impl Listener {
    /// `workers` must not be empty: sessions run there, never on the Listener's thread.
    pub fn new(listener: TcpListener, workers: Vec<Worker>, services: Services) -> Listener {
        Listener {
            listener: Some(listener),
            accepting: None,
            workers,
            next_worker: 0,
            services,
            next_id: 1,
            open: 0,
            per_ip: HashMap::new(),
            sessions: HashMap::new(),
            failures: HashMap::new(),
            shutting_down: false,
            implicit_tls: false,
        }
    }

    /// Makes this the implicit-TLS listener (`--implicit-tls-listen`); needs TLS configured.
    pub fn implicit_tls(mut self) -> Listener {
        self.implicit_tls = true;
        self
    }

    /// SECURITY: the limits every new connection passes before a Session exists for it.
    fn refusal(&mut self, ip: IpAddr) -> Option<&'static str> {
        let limits = &self.services.config.limits;
        let now = Instant::now();
        if let Some(f) = self.failures.get(&ip) {
            if f.banned_until.is_some_and(|until| until > now) {
                return Some("Too many failed logins from your address, try again later");
            }
        }
        if self.open >= limits.max_sessions {
            return Some("Too many users, try again later");
        }
        if self.per_ip.get(&ip).copied().unwrap_or(0) >= limits.max_sessions_per_ip {
            return Some("Too many connections from your address");
        }
        None
    }
}

/// One accepted connection, or an accept error.
#[derive(Message)]
#[rtype(result = "()")]
struct Accepted(io::Result<(TcpStream, SocketAddr)>);

/// A fact from a worker: this Session is running (the Listener keeps its address).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionStarted {
    pub id: u64,
    pub session: Addr<Session>,
}

/// The sessions this Listener started and that are still open (the admin view asks).
#[derive(Message)]
#[rtype(result = "Vec<Addr<Session>>")]
pub struct ListSessions;

/// How many sessions are open (the shutdown wait, tests and the admin view ask).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct OpenSessions;

/// Stop accepting, and tell every session the daemon is stopping.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub grace: Duration,
}

impl Actor for Listener {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let me = ctx.address();
        // The accept loop waits for each connection to be handled before the next accept,
        // so a burst of connections cannot pile up unbounded in the mailbox.
        let handle = ctx.spawn(
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
        self.accepting = Some(handle);
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
        if self.shutting_down {
            return;
        }
        if let Some(why) = self.refusal(remote.ip()) {
            log::warn!("refused connection from {remote}: {why}");
            actix_rt::spawn(refuse(stream, why));
            return;
        }
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
        *self.per_ip.entry(remote.ip()).or_default() += 1;
        let worker = &self.workers[self.next_worker % self.workers.len()];
        self.next_worker = self.next_worker.wrapping_add(1);
        let services = self.services.with_resolver(worker.resolver.clone());
        let me = ctx.address();
        let implicit = self.implicit_tls;
        let spawned = worker.arbiter.spawn(async move {
            start_session(std_stream, remote, id, services, me, implicit);
        });
        if !spawned {
            log::error!("worker arbiter is gone; connection from {remote} dropped");
            self.handle(SessionClosed { id, remote }, ctx);
        }
    }
}

/// Writes a 421 and closes, without ever starting a Session.
async fn refuse(mut stream: TcpStream, why: &'static str) {
    let line = format!("421 {why}\r\n");
    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
        let _ = stream.write_all(line.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

impl Handler<SessionStarted> for Listener {
    type Result = ();

    fn handle(&mut self, msg: SessionStarted, _: &mut Context<Self>) {
        if self.shutting_down {
            msg.session.do_send(ServerShutdown {
                grace: self.services.config.shutdown_grace,
            });
        }
        self.sessions.insert(msg.id, msg.session);
    }
}

impl Handler<SessionClosed> for Listener {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, _: &mut Context<Self>) {
        self.open = self.open.saturating_sub(1);
        self.sessions.remove(&msg.id);
        let ip = msg.remote.ip();
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

impl Handler<LoginFailed> for Listener {
    type Result = ();

    fn handle(&mut self, msg: LoginFailed, _: &mut Context<Self>) {
        let policy = &self.services.config.login;
        let now = Instant::now();
        if self.failures.len() >= MAX_TRACKED_SOURCES {
            let window = policy.ban_window;
            self.failures.retain(|_, f| {
                f.banned_until.is_some_and(|u| u > now)
                    || f.recent
                        .back()
                        .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let f = self.failures.entry(msg.ip).or_default();
        f.recent.push_back(now);
        while f
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > policy.ban_window)
        {
            f.recent.pop_front();
        }
        // SECURITY: a source that keeps guessing is shut out for a while, whatever connection it uses.
        if f.recent.len() >= policy.ban_failures as usize {
            log::warn!(
                "banning {} for {:?} after {} failed logins",
                msg.ip,
                policy.ban_time,
                f.recent.len()
            );
            f.banned_until = Some(now + policy.ban_time);
            f.recent.clear();
        }
    }
}

impl Handler<OpenSessions> for Listener {
    type Result = usize;

    fn handle(&mut self, _: OpenSessions, _: &mut Context<Self>) -> usize {
        self.open
    }
}

impl Handler<ListSessions> for Listener {
    type Result = MessageResult<ListSessions>;

    fn handle(&mut self, _: ListSessions, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.sessions.values().cloned().collect())
    }
}

impl Handler<Shutdown> for Listener {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        self.shutting_down = true;
        if let Some(handle) = self.accepting.take() {
            // Dropping the accept loop closes the listening socket.
            ctx.cancel_future(handle);
        }
        log::info!(
            "shutting down: {} sessions, transfers get {:?}",
            self.open,
            msg.grace
        );
        for session in self.sessions.values() {
            session.do_send(ServerShutdown { grace: msg.grace });
        }
    }
}

/// Starts a Session and its I/O task on the current (worker) Arbiter.
fn start_session(
    std_stream: std::net::TcpStream,
    remote: SocketAddr,
    id: u64,
    services: Services,
    listener: Addr<Listener>,
    implicit_tls: bool,
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
            listener.do_send(SessionClosed { id, remote });
            return;
        }
    };
    let max_line = services.config.limits.max_line;
    let (tx, rx) = mpsc::unbounded_channel();
    let peer = Peer { id, remote, local };
    let tls = match (&services.config.tls, implicit_tls) {
        (Some(policy), true) => Some(policy.session_config()),
        _ => None,
    };
    let mut session = Session::new(peer, services, tx, Some(listener.clone()));
    if let Some(config) = &tls {
        session = session.with_implicit_tls(config.clone());
    }
    let session = session.start();
    listener.do_send(SessionStarted {
        id,
        session: session.clone(),
    });
    actix_rt::spawn(run_control(stream, session, rx, max_line, tls));
}
