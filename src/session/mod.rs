//! The Session actor: one per control connection.
//!
//! It owns the login state, the user, the working directory, TYPE, the REST offset, a pending
//! RNFR, the data-connection setup (a passive listener or an active target) and the running
//! transfer. It receives parsed `Command` messages (from the connection's I/O task, or from a
//! test), sends `Reply`s to its `ReplySink`, asks the FileStore for every file-system call,
//! and hands each transfer to a short-lived DataChannel. It never touches a socket's bytes or
//! the disk itself, and it never waits on a transfer: NOOP, STAT and ABOR answer while one runs.
//!
//! This file holds the state, the small helpers every handler uses, closing, timeouts and the
//! handlers of the control messages. `dispatch.rs` is the login gate, the routing table and the
//! one answer shape; the commands live by job in `login.rs`, `files.rs`, `data_setup.rs`,
//! `transfer.rs` and `info.rs`; `messages.rs` has the messages, snapshots and services.

mod data_setup;
mod dispatch;
mod files;
mod info;
mod login;
mod messages;
mod transfer;

pub use info::Kick;
pub use messages::{
    ControlClosed, Peer, Recorders, ReplySink, ServerShutdown, Services, SessionClosed,
    SessionSnapshot, SessionStatus, SinkItem, TransferSnapshot, Unparsable,
};
pub use transfer::rate;

use crate::auth::{Permissions, User};
use crate::data_channel::Abort;
use crate::error::{FtpError, StoreError};
use crate::file_store::{Jail, VirtualPath};
use crate::gatekeeper::SourceBanned;
use crate::listing::MlsxFacts;
use crate::observability::metrics::{Count, MetricEvent};
use crate::protocol::{Command, ParseError, Reply, ReplyCode, TransferType};
use crate::tls::{data_config, SessionTls};
use actix::prelude::*;
use data_setup::DataSetup;
use dispatch::done;
use rustls::server::ServerConfig;
use std::sync::Arc;
use std::time::Duration;
// tokio's clock: the same one actix timers use, so paused-time tests can drive timeouts.
use tokio::time::Instant;
use transfer::Transfer;

enum Login {
    Connected,
    AwaitingPassword(String),
    LoggedIn { user: Arc<User>, jail: Jail },
}

pub struct Session {
    peer: Peer,
    services: Services,
    out: ReplySink,
    /// Told when this session ends (the Listener that started it; `None` in actor tests).
    listener: Option<Recipient<SessionClosed>>,
    login: Login,
    cwd: VirtualPath,
    transfer_type: TransferType,
    rest: u64,
    rename_from: Option<VirtualPath>,
    data: DataSetup,
    /// The expiry timer of the passive listener in `data`. A new PASV cancels the old one:
    /// actix polls every pending timer of an actor on each of its wake-ups, so timers left
    /// to run out (30 s each, one per transfer) made a busy session slower with every PASV.
    passive_expiry: Option<SpawnHandle>,
    epsv_all: bool,
    transfer: Option<Transfer>,
    next_transfer_id: u64,
    connected_at: Instant,
    last_active: Instant,
    bad_lines: u32,
    closing: bool,
    quit_after_transfer: bool,
    /// RFC 3659 §7.9: the facts MLST and MLSD show, chosen with OPTS MLST.
    mlst_facts: MlsxFacts,
    /// HASH's algorithm (OPTS HASH) and pending RANG.
    hashing: files::HashState,
    login_failures: u32,
    /// The control connection is in TLS (after AUTH TLS, or implicit TLS).
    control_tls: bool,
    /// This session's TLS configuration (shared, or its own when sessions must be reused).
    tls_config: Option<SessionTls>,
    pbsz: bool,
    /// PROT P: data connections run TLS.
    prot_private: bool,
    /// Lines received so far (the first one is checked against other protocols).
    lines_seen: u64,
    shutting_down: bool,
    /// The last command, as the live view shows it (passwords masked).
    /// Formatted only when the live view asks: most commands (NOOP, PWD) clone for free.
    last_command: Option<Command>,
    /// Prefix of every log line: session id, peer, and user once known.
    tag: String,
}

impl Session {
    pub fn new(
        peer: Peer,
        services: Services,
        out: ReplySink,
        listener: Option<Recipient<SessionClosed>>,
    ) -> Session {
        let now = Instant::now();
        Session {
            tag: format!("#{} {}", peer.id, peer.remote),
            peer,
            services,
            out,
            listener,
            login: Login::Connected,
            cwd: VirtualPath::root(),
            transfer_type: TransferType::Ascii,
            rest: 0,
            rename_from: None,
            data: DataSetup::None,
            passive_expiry: None,
            epsv_all: false,
            transfer: None,
            next_transfer_id: 1,
            connected_at: now,
            last_active: now,
            bad_lines: 0,
            closing: false,
            quit_after_transfer: false,
            mlst_facts: MlsxFacts::default(),
            hashing: files::HashState::default(),
            login_failures: 0,
            control_tls: false,
            tls_config: None,
            pbsz: false,
            prot_private: false,
            lines_seen: 0,
            shutting_down: false,
            last_command: None,
        }
    }

    /// A session on the implicit-TLS port: its control connection is TLS from the first byte.
    pub fn with_implicit_tls(mut self, config: Arc<ServerConfig>) -> Session {
        self.control_tls = true;
        self.tls_config = Some(SessionTls {
            data: data_config(&config),
            control: config,
        });
        self
    }

    fn count(&self, event: MetricEvent) {
        if let Some(m) = &self.services.recorders.metrics {
            m.do_send(Count(event));
        }
    }

    fn send(&mut self, reply: Reply) {
        self.count(MetricEvent::Reply(reply.code.as_u16()));
        log::debug!("[{}] -> {}", self.tag, reply);
        // A closed receiver means the connection is gone; ControlClosed will follow.
        let _ = self.out.send(SinkItem::Reply(reply));
    }

    fn reply(&mut self, code: ReplyCode, text: impl Into<String>) {
        self.send(Reply::new(code, text));
    }

    fn respond(&mut self, result: Result<Reply, FtpError>) {
        match result {
            Ok(reply) => self.send(reply),
            Err(e) => {
                if let FtpError::Store(StoreError::Io(detail)) = &e {
                    log::warn!("[{}] file system error: {detail}", self.tag);
                }
                self.send(e.reply());
            }
        }
    }

    fn user(&self) -> Option<&Arc<User>> {
        match &self.login {
            Login::LoggedIn { user, .. } => Some(user),
            _ => None,
        }
    }

    fn jail(&self) -> Result<Jail, FtpError> {
        match &self.login {
            Login::LoggedIn { jail, .. } => Ok(jail.clone()),
            _ => Err(FtpError::NotLoggedIn("Please login with USER and PASS")),
        }
    }

    fn permissions(&self) -> Permissions {
        self.user()
            .map(|u| u.permissions)
            .unwrap_or(Permissions::READ_ONLY)
    }

    /// SECURITY: every write-side command asks here before the FileStore is touched.
    fn require(&self, allowed: impl Fn(&Permissions) -> bool) -> Result<(), FtpError> {
        if allowed(&self.permissions()) {
            Ok(())
        } else {
            Err(FtpError::Forbidden)
        }
    }

    /// Flushes what is queued (the 234), then upgrades the control connection to TLS.
    fn start_tls(&mut self, config: Arc<ServerConfig>) {
        let _ = self.out.send(SinkItem::StartTls(config));
    }

    /// Closes the session: an optional last reply, then the control connection. A running
    /// transfer is aborted first, and the actor stops once it has reported (so a partial
    /// upload is always cleaned up).
    fn close(&mut self, ctx: &mut Context<Self>, last: Option<Reply>) {
        if let Some(r) = last {
            self.send(r);
        }
        if !self.closing {
            self.closing = true;
            let _ = self.out.send(SinkItem::Close);
        }
        match &self.transfer {
            Some(t) => t.channel.do_send(Abort),
            None => ctx.stop(),
        }
    }

    fn schedule_timeout_check(&self, ctx: &mut Context<Self>, after: Duration) {
        ctx.run_later(after, |act, ctx| act.check_timeouts(ctx));
    }

    /// One timer per session, re-armed for the time left: idle sessions cost no wake-ups.
    fn check_timeouts(&mut self, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        let t = &self.services.config.timeouts;
        let (limit, since, why) = match self.login {
            Login::LoggedIn { .. } => (
                t.idle,
                self.last_active,
                "Idle timeout, closing control connection",
            ),
            _ => (
                t.login,
                self.connected_at,
                "Login timeout, closing control connection",
            ),
        };
        if self.transfer.is_some() {
            // The idle timeout never fires while a transfer runs.
            self.schedule_timeout_check(ctx, limit);
            return;
        }
        let elapsed = since.elapsed();
        if elapsed >= limit {
            log::info!("[{}] {}", self.tag, why);
            self.close(ctx, Some(Reply::new(ReplyCode::ServiceNotAvailable, why)));
        } else {
            self.schedule_timeout_check(ctx, limit - elapsed);
        }
    }
}

fn shutdown_reply() -> Reply {
    Reply::new(
        ReplyCode::ServiceNotAvailable,
        "Server shutting down, closing control connection",
    )
}

/// First words of HTTP and SMTP requests: a connection that opens with one of them is not an
/// FTP client (a browser, a cross-protocol attack through a web page) and is closed silently.
const FOREIGN_VERBS: [&str; 15] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "CONNECT", "TRACE", "PATCH", "PRI", "HELO",
    "EHLO", "MAIL", "RCPT", "DATA",
];

impl Handler<ServerShutdown> for Session {
    type Result = ();

    fn handle(&mut self, msg: ServerShutdown, ctx: &mut Context<Self>) {
        if self.closing || self.shutting_down {
            return;
        }
        self.shutting_down = true;
        if self.transfer.is_none() {
            self.close(ctx, Some(shutdown_reply()));
            return;
        }
        log::info!(
            "[{}] shutdown: transfer may run {:?} more",
            self.tag,
            msg.grace
        );
        // The transfer's end (complete, or aborted here) replies and then closes with 421.
        ctx.run_later(msg.grace, |act, _| {
            if let Some(t) = &act.transfer {
                t.channel.do_send(Abort);
            }
        });
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        log::info!("[{}] connected", self.tag);
        self.count(MetricEvent::SessionOpened);
        // `--banner FILE` may give several lines: a multi-line 220 (RFC 959 §4.2).
        let banner = self.services.config.banner.lines().map(str::to_owned);
        self.send(Reply::multi(ReplyCode::ServiceReady, banner.collect()));
        let t = &self.services.config.timeouts;
        self.schedule_timeout_check(ctx, t.login.min(t.idle));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(t) = self.transfer.take() {
            t.channel.do_send(Abort);
            // Stopped before the transfer reported (its worker is stopping): dropping the
            // upload's target has the FileStore remove its temporary file.
            drop(t);
        }
        self.count(MetricEvent::SessionClosed);
        log::info!("[{}] disconnected", self.tag);
        if let Some(to) = &self.listener {
            to.do_send(SessionClosed {
                id: self.peer.id,
                remote: self.peer.remote,
            });
        }
    }
}

impl Handler<Command> for Session {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, cmd: Command, ctx: &mut Context<Self>) -> Self::Result {
        if self.closing {
            return AtomicResponse::new(done());
        }
        self.last_active = Instant::now();
        self.lines_seen += 1;
        log::debug!("[{}] <- {}", self.tag, cmd);
        self.count(MetricEvent::Command(cmd.verb()));
        self.last_command = Some(cmd.clone());
        AtomicResponse::new(self.dispatch(cmd, ctx))
    }
}

impl Handler<Unparsable> for Session {
    type Result = ();

    fn handle(&mut self, msg: Unparsable, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        log::debug!("[{}] <- unparsable line: {}", self.tag, msg.0);
        self.lines_seen += 1;
        if let ParseError::UnknownCommand(verb) = &msg.0 {
            // SECURITY: cross-protocol guard, only on the first line.
            // Compared without case: verbs longer than four letters reach us as sent.
            if self.lines_seen == 1 && FOREIGN_VERBS.iter().any(|v| v.eq_ignore_ascii_case(verb)) {
                log::warn!(
                    "[{}] not an FTP client (first word {verb}), closing",
                    self.tag
                );
                self.close(ctx, None);
                return;
            }
        }
        let continues = msg.0 == ParseError::LineTooLongContinues;
        if msg.0 == ParseError::LineTooLong || continues {
            // SECURITY: an over-long line is answered once; a client that keeps sending them (or
            // one endless line) is cut off.
            self.bad_lines += 1;
            if self.bad_lines > self.services.config.limits.max_bad_lines {
                log::warn!("[{}] too many over-long lines, closing", self.tag);
                self.close(
                    ctx,
                    Some(Reply::new(
                        ReplyCode::ServiceNotAvailable,
                        "Too many over-long lines",
                    )),
                );
                return;
            }
            if continues {
                return;
            }
        }
        self.respond(Err(FtpError::Parse(msg.0)));
    }
}

impl Handler<SourceBanned> for Session {
    type Result = ();

    /// SECURITY: a connection opened before its source was banned gets no more guesses: if it
    /// has not logged in, it is closed now. Logged-in sessions are left alone.
    fn handle(&mut self, msg: SourceBanned, ctx: &mut Context<Self>) {
        if self.closing || matches!(self.login, Login::LoggedIn { .. }) {
            return;
        }
        if msg.covers(self.peer.remote.ip()) {
            log::warn!("[{}] source banned, closing before login", self.tag);
            self.close(
                ctx,
                Some(Reply::new(
                    ReplyCode::ServiceNotAvailable,
                    "Too many failed logins from your address, closing control connection",
                )),
            );
        }
    }
}

impl Handler<ControlClosed> for Session {
    type Result = ();

    fn handle(&mut self, _: ControlClosed, ctx: &mut Context<Self>) {
        self.close(ctx, None);
    }
}

impl Handler<SessionStatus> for Session {
    type Result = MessageResult<SessionStatus>;

    fn handle(&mut self, _: SessionStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(SessionSnapshot {
            id: self.peer.id,
            peer: self.peer.remote.to_string(),
            user: self.user().map(|u| u.name.clone()),
            idle_secs: self.last_active.elapsed().as_secs(),
            command: self
                .last_command
                .as_ref()
                .map(Command::to_string)
                .unwrap_or_default(),
            tls: self.control_tls,
            transfer: self.transfer.as_ref().map(Transfer::snapshot),
        })
    }
}
