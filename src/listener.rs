//! The Listener actor: one per listening address.
//!
//! It accepts control connections, asks the daemon's one Gatekeeper whether each may have a
//! Session (session limits and bans hold across every port), refuses the others with `421`,
//! numbers the rest, and starts each Session on one of the worker Arbiters in turn (an Arbiter
//! is one thread, so this is what spreads sessions over cores), with that worker's Resolver.
//! The accepted socket crosses threads as a std socket and is registered again on the worker's
//! reactor. It keeps its sessions' addresses (told by `SessionStarted` and `SessionClosed`) to
//! tell them about a shutdown or a ban of their source, and tells the Gatekeeper when one ends.
//! With `--proxy-protocol`, a connection from a trusted proxy first has its PROXY header read
//! (in a task of its own, so the accept loop never waits on it), and from then on the client's
//! address in it is the connection's: for the Gatekeeper, the Session, every log line. That
//! header is the only thing it ever reads from a control connection.

use crate::connection::{run_control, ControlStream};
use crate::fdlimit::{is_out_of_descriptors, Reserve};
use crate::file_store::Resolver;
use crate::gatekeeper::{Admit, Gatekeeper, Release, SourceBanned};
use crate::proxy::{self, Origin};
use crate::session::{Peer, ServerShutdown, Services, Session, SessionClosed};
use actix::prelude::*;
use actix_rt::ArbiterHandle;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Pause after an accept error (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a client gets when the daemon has no descriptor left for it.
const OUT_OF_FILES: &[u8] = b"421 Too many open files on the server, try again later\r\n";

/// How long a refused client gets to read its 421 before the socket is closed.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Listener {
    listener: Option<TcpListener>,
    accepting: Option<SpawnHandle>,
    workers: Vec<Worker>,
    next_worker: usize,
    services: Services,
    next_id: u64,
    /// The daemon's one table of session counts, failed logins and bans.
    gatekeeper: Addr<Gatekeeper>,
    /// Every session this Listener admitted and that has not closed, by id: its client's
    /// address, and the Session once it has started.
    sessions: HashMap<u64, (IpAddr, Option<Addr<Session>>)>,
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
    pub fn new(
        listener: TcpListener,
        workers: Vec<Worker>,
        services: Services,
        gatekeeper: Addr<Gatekeeper>,
    ) -> Listener {
        Listener {
            listener: Some(listener),
            accepting: None,
            workers,
            next_worker: 0,
            services,
            next_id: 1,
            gatekeeper,
            sessions: HashMap::new(),
            shutting_down: false,
            implicit_tls: false,
        }
    }

    /// Makes this the implicit-TLS listener (`--implicit-tls-listen`); needs TLS configured.
    pub fn implicit_tls(mut self) -> Listener {
        self.implicit_tls = true;
        self
    }
}

/// One accepted connection, or an accept error.
#[derive(Message)]
#[rtype(result = "()")]
struct Accepted(io::Result<(TcpStream, SocketAddr)>);

/// A trusted proxy's connection whose PROXY header has been read.
#[derive(Message)]
#[rtype(result = "()")]
struct Proxied {
    stream: TcpStream,
    /// The proxy's end of the connection.
    proxy: SocketAddr,
    origin: Origin,
}

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
                // One descriptor kept spare for the moment the daemon runs out of them.
                let mut reserve = Reserve::new();
                loop {
                    let accepted = listener.accept().await;
                    if let Err(e) = &accepted {
                        // SECURITY: out of descriptors, the kernel keeps the waiting clients in
                        // the backlog, where they would hang: each gets a 421 through the
                        // spare descriptor instead, and the loop backs off only when none is
                        // left waiting.
                        if is_out_of_descriptors(e) {
                            let mut refused = 0u32;
                            while let Ok(true) = reserve.refuse_one(&listener, OUT_OF_FILES) {
                                refused += 1;
                            }
                            if refused > 0 {
                                log::warn!(
                                    "out of file descriptors: {refused} connection(s) refused with 421"
                                );
                                continue;
                            }
                        }
                    }
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
    type Result = ResponseActFuture<Self, ()>;

    /// The accept loop waits for this answer, so connections are admitted one at a time.
    fn handle(&mut self, msg: Accepted, ctx: &mut Context<Self>) -> Self::Result {
        let (stream, remote) = match msg.0 {
            Ok(v) => v,
            Err(e) => {
                log::warn!("accept failed: {e}");
                return Box::pin(actix::fut::ready(()));
            }
        };
        if self.shutting_down {
            return Box::pin(actix::fut::ready(()));
        }
        if let Some(policy) = self.services.config.proxy_protocol.clone() {
            // SECURITY: a trusted proxy must start with a PROXY header, read within its time
            // and size bounds before anything else; it is read in a task of its own (only
            // trusted proxies get one), so the accept loop never waits on a slow sender.
            if policy.trusts(remote.ip()) {
                let me = ctx.address();
                actix_rt::spawn(async move {
                    let mut stream = stream;
                    match proxy::read_header(&mut stream, policy.header_timeout).await {
                        Ok(origin) => me.do_send(Proxied {
                            stream,
                            proxy: remote,
                            origin,
                        }),
                        // Closed without a reply: a proxy that speaks no PROXY protocol is
                        // misconfigured, and whatever it relays must not reach a Session.
                        Err(e) => log::warn!("connection from trusted proxy {remote} closed: {e}"),
                    }
                });
                return Box::pin(actix::fut::ready(()));
            }
        }
        self.admit(stream, remote, None)
    }
}

impl Handler<Proxied> for Listener {
    type Result = ResponseActFuture<Self, ()>;

    /// From here on the client's address from the header is the connection's.
    fn handle(&mut self, msg: Proxied, _: &mut Context<Self>) -> Self::Result {
        let client = msg.origin.client(msg.proxy);
        // A header with no client in it (HAProxy's health checks send v2 LOCAL) leaves the
        // proxy as the peer: nothing to say about a proxy in between.
        let via = matches!(msg.origin, Origin::Client { .. }).then_some(msg.proxy);
        self.admit(msg.stream, client, via)
    }
}

impl Listener {
    /// Asks the Gatekeeper about the client at `remote` (through the proxy at `via`, if any);
    /// starts its Session or refuses it with 421.
    fn admit(
        &mut self,
        stream: TcpStream,
        remote: SocketAddr,
        via: Option<SocketAddr>,
    ) -> ResponseActFuture<Self, ()> {
        if self.shutting_down {
            return Box::pin(actix::fut::ready(()));
        }
        let admit = self.gatekeeper.send(Admit { ip: remote.ip() });
        Box::pin(
            admit
                .into_actor(self)
                .map(move |answer, act, ctx| match answer {
                    Ok(Ok(())) if !act.shutting_down => act.start(stream, remote, via, ctx),
                    Ok(Ok(())) => act.gatekeeper.do_send(Release { ip: remote.ip() }),
                    Ok(Err(why)) => {
                        log::warn!("refused connection from {remote}{}: {why}", through(via));
                        actix_rt::spawn(refuse(stream, why));
                    }
                    Err(_) => {
                        log::error!("gatekeeper is gone; connection from {remote} refused");
                        actix_rt::spawn(refuse(stream, "Service not available"));
                    }
                }),
        )
    }
}

/// ` through proxy ADDR` for a log line, or nothing.
fn through(via: Option<SocketAddr>) -> String {
    via.map(|p| format!(" through proxy {p}"))
        .unwrap_or_default()
}

impl Listener {
    /// Starts an admitted connection's Session on the next worker.
    fn start(
        &mut self,
        stream: TcpStream,
        remote: SocketAddr,
        via: Option<SocketAddr>,
        ctx: &mut Context<Self>,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        self.sessions.insert(id, (remote.ip(), None));
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                log::warn!("cannot hand over connection from {remote}: {e}");
                self.handle(SessionClosed { id, remote }, ctx);
                return;
            }
        };
        let worker = &self.workers[self.next_worker % self.workers.len()];
        self.next_worker = self.next_worker.wrapping_add(1);
        let services = self.services.with_resolver(worker.resolver.clone());
        let me = ctx.address();
        let implicit = self.implicit_tls;
        let spawned = worker.arbiter.spawn(async move {
            start_session(std_stream, remote, via, id, services, me, implicit);
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
        if let Some((_, session)) = self.sessions.get_mut(&msg.id) {
            *session = Some(msg.session);
        }
    }
}

impl Handler<SessionClosed> for Listener {
    type Result = ();

    fn handle(&mut self, msg: SessionClosed, _: &mut Context<Self>) {
        if self.sessions.remove(&msg.id).is_some() {
            self.gatekeeper.do_send(Release {
                ip: msg.remote.ip(),
            });
        }
    }
}

impl Handler<SourceBanned> for Listener {
    type Result = ();

    /// Passes a ban on to the sessions from the banned source; those not logged in close.
    fn handle(&mut self, msg: SourceBanned, _: &mut Context<Self>) {
        for (ip, session) in self.sessions.values() {
            if let (true, Some(session)) = (msg.covers(*ip), session) {
                session.do_send(msg);
            }
        }
    }
}

impl Handler<OpenSessions> for Listener {
    type Result = usize;

    fn handle(&mut self, _: OpenSessions, _: &mut Context<Self>) -> usize {
        self.sessions.len()
    }
}

impl Handler<ListSessions> for Listener {
    type Result = MessageResult<ListSessions>;

    fn handle(&mut self, _: ListSessions, _: &mut Context<Self>) -> Self::Result {
        MessageResult(
            self.sessions
                .values()
                .filter_map(|(_, session)| session.clone())
                .collect(),
        )
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
            self.sessions.len(),
            msg.grace
        );
        for session in self.sessions.values().filter_map(|(_, s)| s.as_ref()) {
            session.do_send(ServerShutdown { grace: msg.grace });
        }
    }
}

/// Starts a Session and its I/O task on the current (worker) Arbiter.
fn start_session(
    std_stream: std::net::TcpStream,
    remote: SocketAddr,
    via: Option<SocketAddr>,
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
    if let Some(proxy) = via {
        log::info!("[#{id} {remote}] through proxy {proxy} (PROXY header)");
    }
    let max_line = services.config.limits.max_line;
    let (tx, rx) = mpsc::unbounded_channel();
    let peer = Peer { id, remote, local };
    let tls = match (&services.config.tls, implicit_tls) {
        (Some(policy), true) => Some(policy.session_config()),
        _ => None,
    };
    let mut session = Session::new(peer, services, tx, Some(listener.clone().recipient()));
    if let Some(config) = &tls {
        session = session.with_implicit_tls(config.clone());
    }
    let session = session.start();
    listener.do_send(SessionStarted {
        id,
        session: session.clone(),
    });
    let tag = format!("#{id} {remote}");
    actix_rt::spawn(run_control(stream, session, rx, max_line, tls, tag));
}
