//! The Session actor: one per control connection.
//!
//! It owns the login state, the user, the working directory, TYPE, the REST offset, a pending
//! RNFR, the data-connection setup (a passive listener or an active target) and the running
//! transfer. It receives parsed `Command` messages (from the connection's I/O task, or from a
//! test), sends `Reply`s to its `ReplySender`, asks the FileStore for every file-system call,
//! and hands each transfer to a short-lived DataChannel. It never touches a socket's bytes or
//! the disk itself, and it never waits on a transfer: NOOP, STAT and ABOR answer while one runs.

use crate::auth::{Password, Permissions, User, UserDb};
use crate::authenticator::{Authenticate, Authenticator};
use crate::config::{is_local_peer, Config};
use crate::data_channel::{
    self, Abort, DataChannel, DataEndpoint, DataTls, MinRate, Payload, Progress, TransferDone,
    TransferError, TransferResult, TransferSpec,
};
use crate::error::{FtpError, StoreError};
use crate::file_store::{
    FileStore, FinishUpload, Jail, List, ListFormat, MakeDir, OpenJail, OpenRead, OpenWrite,
    ReadSource, RemoveDir, RemoveFile, Rename, Resolver, Stat, UploadTarget, VirtualPath,
    WriteMode,
};
use crate::gatekeeper::{
    BeginLogin, Gatekeeper, HoldPassive, LoginAttempt, PassiveLease, SourceBanned,
};
use crate::listing::{mlsx_line, CivilTime, EntryKind, MlsxFacts, PermFact};
use crate::observability::metrics::{Metrics, Observe, Observed};
use crate::observability::xferlog::{XferLog, XferRecord};
use crate::protocol::{quote_path, Command, EpsvArg, ParseError, Reply, ReplyCode, TransferType};
use crate::tls::{data_config, SessionTls, TlsPolicy};
use actix::prelude::*;
use rustls::server::ServerConfig;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
// tokio's clock: the same one actix timers use, so paused-time tests can drive timeouts.
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the Session sends to whoever owns the control connection.
#[derive(Debug)]
pub enum Outbound {
    Reply(Reply),
    /// Flush what is queued, then close the control connection.
    Close,
    /// Flush what is queued (the 234), then run the TLS handshake on the control connection
    /// with this configuration (RFC 4217 §4).
    StartTls(Arc<ServerConfig>),
}

impl PartialEq for Outbound {
    fn eq(&self, other: &Outbound) -> bool {
        match (self, other) {
            (Outbound::Reply(a), Outbound::Reply(b)) => a == b,
            (Outbound::Close, Outbound::Close) => true,
            (Outbound::StartTls(a), Outbound::StartTls(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// The Session's only way to talk to its client. In the daemon, the connection's I/O task reads
/// it; in actor tests, the test does.
pub type ReplySender = mpsc::UnboundedSender<Outbound>;

/// Shared, read-only services every Session needs.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub users: Arc<UserDb>,
    pub store: Addr<FileStore>,
    /// This worker's Resolver (`Stat` without a thread hop when the kernel has it cached).
    pub resolver: Addr<Resolver>,
    pub auth: Addr<Authenticator>,
    pub observers: Observers,
    /// The daemon's table of failed logins and bans, asked before each password check. `None`
    /// in actor tests that run a Session without a daemon around it.
    pub gatekeeper: Option<Addr<Gatekeeper>>,
    /// SECURITY: permits for transfers copying on blocking-pool threads
    /// (`Limits::transfer_threads`), shared by every Session of the daemon.
    pub transfer_threads: Arc<tokio::sync::Semaphore>,
}

impl Services {
    /// The same services with another Resolver (the one on the Session's worker).
    pub fn with_resolver(&self, resolver: Addr<Resolver>) -> Services {
        Services {
            resolver,
            ..self.clone()
        }
    }
}

/// Where sessions report what happened; each is off (`None`) unless configured.
#[derive(Clone, Default)]
pub struct Observers {
    pub metrics: Option<Addr<Metrics>>,
    pub xferlog: Option<Addr<XferLog>>,
}

/// One session as the live view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    pub id: u64,
    pub peer: String,
    pub user: Option<String>,
    /// Seconds since the last command.
    pub idle_secs: u64,
    /// The last command (passwords masked).
    pub command: String,
    pub tls: bool,
    pub transfer: Option<TransferSnapshot>,
}

/// A running transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferSnapshot {
    pub verb: String,
    pub path: String,
    /// `download`, `upload` or `listing`.
    pub direction: String,
    pub bytes: u64,
    pub size: Option<u64>,
    pub elapsed_secs: f64,
    /// Bytes per second so far.
    pub rate: f64,
}

/// Asks a Session to describe itself (the admin endpoint's live view).
#[derive(Debug, Message)]
#[rtype(result = "SessionSnapshot")]
pub struct SessionStatus;

/// How often a long transfer writes a progress line to the log.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Who a Session talks to.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub id: u64,
    /// The client's address on the control connection.
    pub remote: SocketAddr,
    /// Our address on the control connection (passive listeners bind here).
    pub local: SocketAddr,
}

impl Message for Command {
    type Result = ();
}

/// A control line that did not parse: answered with its error reply.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unparsable(pub ParseError);

/// The client closed the control connection, or it failed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ControlClosed;

/// The daemon is stopping: idle sessions get 421 now; a running transfer may go on for
/// `grace`, then it is aborted (an unfinished upload is discarded) and the session gets 421.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct ServerShutdown {
    pub grace: Duration,
}

/// A fact for the Listener: this session has ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SessionClosed {
    pub id: u64,
    pub remote: SocketAddr,
}

/// Commands allowed before login (RFC 959 §4.1.1 and the security extensions that must
/// precede USER). SECURITY: this is the one list; `dispatch` is the one place it is checked.
fn allowed_before_login(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::User(_)
            | Command::Pass(_)
            | Command::Quit
            | Command::Feat
            | Command::Syst
            | Command::Noop
            | Command::Help(_)
            | Command::Opts(..)
            | Command::Auth(_)
            | Command::Pbsz(_)
            | Command::Prot(_)
    )
}

/// FEAT lines (RFC 2389): exactly what is implemented, one space indent.
const FEATURES: &[&str] = &[
    " EPRT",
    " EPSV",
    " MDTM",
    " PASV",
    " REST STREAM",
    " SIZE",
    " TVFS",
    " UTF8",
];

/// HELP lists the verbs we answer.
const HELP_VERBS: &str =
    "ABOR ACCT ALLO APPE CDUP CWD DELE EPRT EPSV FEAT HELP LIST MDTM MKD MLSD MLST MODE NLST \
NOOP OPTS PASS PASV PORT PWD QUIT REIN REST RETR RMD RNFR RNTO SITE SIZE STAT STOR STOU STRU \
SYST TYPE USER XCUP XCWD XMKD XPWD XRMD";

/// Answered only when TLS is configured.
const HELP_TLS_VERBS: &str = "AUTH PBSZ PROT";

enum Login {
    Connected,
    AwaitingPassword(String),
    LoggedIn { user: Arc<User>, jail: Jail },
}

enum DataSetup {
    None,
    /// A passive listener, and the Gatekeeper's lease on it when ports are counted per source.
    Passive(std::net::TcpListener, Option<PassiveLease>),
    Active(SocketAddr),
}

/// The data endpoint a transfer command took, with the passive port's lease (released when the
/// transfer ends, or when this is dropped because the command failed first).
struct Endpoint {
    to: DataEndpoint,
    lease: Option<PassiveLease>,
}

struct Transfer {
    id: u64,
    channel: Addr<DataChannel>,
    verb: &'static str,
    path: VirtualPath,
    bytes: u64,
    size: Option<u64>,
    started: Instant,
    upload: Option<(Jail, UploadTarget)>,
    abort_requested: bool,
    ascii: bool,
    last_log: Instant,
    /// Held for the whole transfer: its passive port counts against the source's share.
    _lease: Option<PassiveLease>,
}

impl Transfer {
    fn direction(&self) -> &'static str {
        match self.verb {
            "RETR" => "download",
            "STOR" | "APPE" | "STOU" => "upload",
            _ => "listing",
        }
    }

    fn snapshot(&self) -> TransferSnapshot {
        let elapsed = self.started.elapsed().as_secs_f64();
        TransferSnapshot {
            verb: self.verb.to_owned(),
            path: self.path.to_string(),
            direction: self.direction().to_owned(),
            bytes: self.bytes,
            size: self.size,
            elapsed_secs: elapsed,
            rate: if elapsed > 0.0 {
                self.bytes as f64 / elapsed
            } else {
                0.0
            },
        }
    }
}

/// What a command handler hands back: its reply is sent when the future completes, and the
/// next command is not handled before that (replies stay in command order).
type Flow = ResponseActFuture<Session, ()>;

/// What a file-system answer becomes: a reply, or an error that `respond` turns into one.
trait ThenReply<T>:
    FnOnce(&mut Session, Result<T, StoreError>, &mut Context<Session>) -> Result<Reply, FtpError>
    + 'static
{
}

impl<T, F> ThenReply<T> for F where
    F: FnOnce(
            &mut Session,
            Result<T, StoreError>,
            &mut Context<Session>,
        ) -> Result<Reply, FtpError>
        + 'static
{
}

fn done() -> Flow {
    Box::pin(actix::fut::ready(()))
}

pub struct Session {
    peer: Peer,
    services: Services,
    out: ReplySender,
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
        out: ReplySender,
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

    fn observe(&self, event: Observe) {
        if let Some(m) = &self.services.observers.metrics {
            m.do_send(Observed(event));
        }
    }

    fn send(&mut self, reply: Reply) {
        self.observe(Observe::Reply(reply.code.as_u16()));
        log::debug!("[{}] -> {}", self.tag, reply);
        // A closed receiver means the connection is gone; ControlClosed will follow.
        let _ = self.out.send(Outbound::Reply(reply));
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

    /// The user's jail for a file command, if its permission allows it; otherwise the error
    /// reply is sent and `None` returned (every path answers exactly once).
    fn permitted_jail(&mut self, allowed: impl Fn(&Permissions) -> bool) -> Option<Jail> {
        match self.require(allowed).and_then(|_| self.jail()) {
            Ok(jail) => Some(jail),
            Err(e) => {
                self.respond(Err(e));
                None
            }
        }
    }

    /// The jail and the prepared data endpoint for a transfer command, given its permission
    /// check; on any failure the error reply is sent and `None` returned.
    fn transfer_setup(&mut self, allowed: Result<(), FtpError>) -> Option<(Jail, Endpoint)> {
        let setup = allowed
            .and_then(|_| self.jail())
            .and_then(|j| Ok((j, self.take_endpoint()?)));
        match setup {
            Ok(v) => Some(v),
            Err(e) => {
                self.respond(Err(e));
                None
            }
        }
    }

    /// Asks the FileStore, then turns its answer into a reply with `then`.
    fn ask<M, T>(&mut self, msg: M, then: impl ThenReply<T>) -> Flow
    where
        M: Message<Result = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
        FileStore: Handler<M>,
    {
        let request = self.services.store.send(msg);
        self.answer_with(request, then)
    }

    /// `ask` for what the Resolver handles (`Stat`, `OpenRead`): it goes to this worker's
    /// Resolver, which answers from the kernel's caches when it can and asks the FileStore pool
    /// otherwise.
    fn resolve<M, T>(&mut self, msg: M, then: impl ThenReply<T>) -> Flow
    where
        M: Message<Result = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
        Resolver: Handler<M>,
    {
        let request = self.services.resolver.send(msg);
        self.answer_with(request, then)
    }

    /// Waits for a store answer (keeping replies in command order), then replies.
    fn answer_with<T: 'static>(
        &mut self,
        request: impl std::future::Future<Output = Result<Result<T, StoreError>, MailboxError>>
            + 'static,
        then: impl ThenReply<T>,
    ) -> Flow {
        Box::pin(request.into_actor(self).map(move |answer, act, ctx| {
            let answer =
                answer.unwrap_or_else(|_| Err(StoreError::Io("file store is not running".into())));
            let result = then(act, answer, ctx);
            act.respond(result);
        }))
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
            let _ = self.out.send(Outbound::Close);
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

    /// SECURITY: the one place that checks login state before a command runs.
    fn dispatch(&mut self, cmd: Command, ctx: &mut Context<Self>) -> Flow {
        if !matches!(self.login, Login::LoggedIn { .. }) && !allowed_before_login(&cmd) {
            self.send(FtpError::NotLoggedIn("Please login with USER and PASS").reply());
            return done();
        }
        // RFC 959 §4.1.3: RNTO must come right after RNFR; any other command forgets it.
        let rename_from = self.rename_from.take();
        let result: Result<Reply, FtpError> = match cmd {
            Command::User(name) => {
                // SECURITY: with TLS required, no name or password crosses the wire in clear.
                if self.tls_policy().is_some_and(|p| p.require_control) && !self.control_tls {
                    Err(FtpError::NotLoggedIn(
                        "TLS required: send AUTH TLS before USER",
                    ))
                } else {
                    self.cmd_user(name)
                }
            }
            Command::Pass(password) => return self.cmd_pass(password),
            Command::Quit => {
                if self.transfer.is_some() {
                    // RFC 959 §4.1.1: QUIT lets a running transfer finish, then 221.
                    self.quit_after_transfer = true;
                    return done();
                }
                self.close(ctx, Some(Reply::new(ReplyCode::ClosingControl, "Goodbye")));
                return done();
            }
            Command::Noop => Ok(Reply::new(ReplyCode::CommandOk, "NOOP ok")),
            Command::Syst => Ok(Reply::new(ReplyCode::SystemType, "UNIX Type: L8")),
            Command::Feat => {
                let mut features: Vec<String> = FEATURES.iter().map(|f| (*f).to_owned()).collect();
                if self.tls_policy().is_some() {
                    features.extend([
                        " AUTH TLS".to_owned(),
                        " PBSZ".to_owned(),
                        " PROT".to_owned(),
                    ]);
                }
                features.push(format!(" MLST {}", self.mlst_facts.feat()));
                features.sort();
                let mut lines = vec!["Features:".to_owned()];
                lines.extend(features);
                lines.push("End".to_owned());
                Ok(Reply::multi(ReplyCode::SystemStatus, lines))
            }
            Command::Help(topic) => Ok(help(topic, self.tls_policy().is_some())),
            Command::Opts(name, value) => self.cmd_opts(&name, value.as_deref()),
            Command::Pwd => Ok(Reply::new(
                ReplyCode::PathCreated,
                format!("{} is the current directory", quote_path(self.cwd.as_str())),
            )),
            Command::Cwd(arg) => return self.cmd_cwd(self.cwd.join(&arg)),
            Command::Cdup => return self.cmd_cwd(self.cwd.parent()),
            Command::Type(t) => {
                self.transfer_type = t;
                Ok(Reply::new(
                    ReplyCode::CommandOk,
                    match t {
                        TransferType::Ascii => "Switching to ASCII mode",
                        TransferType::Image => "Switching to Binary mode",
                    },
                ))
            }
            Command::Mode(_) => Ok(Reply::new(ReplyCode::CommandOk, "Mode set to S")),
            Command::Stru(_) => Ok(Reply::new(ReplyCode::CommandOk, "Structure set to F")),
            Command::Pasv => return self.cmd_pasv(ctx, false, None),
            Command::Epsv(EpsvArg::All) => {
                self.epsv_all = true;
                Ok(Reply::new(
                    ReplyCode::CommandOk,
                    "EPSV ALL ok: only EPSV will set up data connections",
                ))
            }
            Command::Epsv(EpsvArg::Any) => return self.cmd_pasv(ctx, true, None),
            Command::Epsv(EpsvArg::Protocol(p)) => return self.cmd_pasv(ctx, true, Some(p)),
            Command::Port(addr) | Command::Eprt(addr) => self.cmd_port(addr),
            // RFC 3659 §5.5: a REST offset holds until the next transfer command uses it.
            Command::List(arg) => {
                self.rest = 0;
                return self.cmd_list(arg, ListFormat::Long);
            }
            Command::Nlst(arg) => {
                self.rest = 0;
                return self.cmd_list(arg, ListFormat::Names);
            }
            Command::Mlsd(arg) => {
                self.rest = 0;
                let perm = self.perm_fact();
                return self.cmd_list(arg, ListFormat::Machine(self.mlst_facts, perm));
            }
            Command::Mlst(arg) => return self.cmd_mlst(arg),
            Command::Retr(arg) => {
                let rest = std::mem::take(&mut self.rest);
                return self.cmd_retr(arg, rest);
            }
            Command::Stor(arg) => {
                let rest = std::mem::take(&mut self.rest);
                let mode = if rest > 0 {
                    WriteMode::At(rest)
                } else {
                    WriteMode::Replace {
                        allow_overwrite: self.permissions().overwrite,
                    }
                };
                return self.cmd_store(self.cwd.join(&arg), mode, "STOR");
            }
            Command::Appe(arg) => {
                self.rest = 0;
                return self.cmd_store(self.cwd.join(&arg), WriteMode::Append, "APPE");
            }
            Command::Stou => {
                self.rest = 0;
                return self.cmd_stou();
            }
            Command::Rest(offset) => {
                if self.transfer_type == TransferType::Ascii && offset > 0 {
                    // Offsets in TYPE A would need a scan of the file to map wire bytes to disk bytes.
                    Err(FtpError::Parse(ParseError::BadArgument(
                        "REST",
                        "not supported in ASCII mode; use TYPE I",
                    )))
                } else {
                    self.rest = offset;
                    Ok(Reply::new(
                        ReplyCode::FileActionPending,
                        format!("Restarting at {offset}. Send STOR or RETR to initiate transfer"),
                    ))
                }
            }
            Command::Dele(arg) => return self.cmd_dele(self.cwd.join(&arg)),
            Command::Mkd(arg) => return self.cmd_mkd(self.cwd.join(&arg)),
            Command::Rmd(arg) => return self.cmd_rmd(self.cwd.join(&arg)),
            Command::Rnfr(arg) => return self.cmd_rnfr(self.cwd.join(&arg)),
            Command::Rnto(arg) => match rename_from {
                Some(from) => return self.cmd_rnto(from, self.cwd.join(&arg)),
                // RFC 959 §4.1.3: RNTO must immediately follow RNFR.
                None => Err(FtpError::BadSequence("RNFR required first")),
            },
            Command::Size(arg) => return self.cmd_size(self.cwd.join(&arg)),
            Command::Mdtm(arg) => return self.cmd_mdtm(self.cwd.join(&arg)),
            Command::Allo => Ok(Reply::new(
                ReplyCode::NotImplementedSuperfluous,
                "ALLO not needed",
            )),
            Command::Abor => match self.cmd_abor() {
                Some(reply) => Ok(reply),
                None => return done(),
            },
            Command::Stat(None) => Ok(self.status()),
            Command::Stat(Some(arg)) => return self.cmd_stat_path(self.cwd.join(&arg)),
            Command::Site(arg) => site(&arg),
            Command::Rein => {
                // RFC 959 §4.1.1: back to the state of a new connection; a running transfer
                // still completes and is answered.
                self.login = Login::Connected;
                self.tag = format!("#{} {}", self.peer.id, self.peer.remote);
                self.cwd = VirtualPath::root();
                self.transfer_type = TransferType::Ascii;
                self.rest = 0;
                self.data = DataSetup::None;
                self.epsv_all = false;
                self.mlst_facts = MlsxFacts::default();
                self.connected_at = Instant::now();
                Ok(Reply::new(ReplyCode::ServiceReady, "Ready for a new user"))
            }
            Command::Acct(_) => Ok(Reply::new(
                ReplyCode::NotImplementedSuperfluous,
                "ACCT not needed",
            )),
            Command::Auth(mechanism) => match self.cmd_auth(&mechanism) {
                Ok(None) => return done(),
                Ok(Some(reply)) => Ok(reply),
                Err(e) => Err(e),
            },
            Command::Pbsz(_) => self.cmd_pbsz(),
            Command::Prot(level) => self.cmd_prot(&level),
            // RFC 4217 §6: clearing the control channel would expose the rest of the session.
            Command::Ccc => Ok(Reply::new(
                ReplyCode::NotImplemented,
                "CCC not supported: the control connection stays encrypted",
            )),
            Command::Smnt(_) => Err(FtpError::NotImplemented(cmd.verb())),
        };
        self.respond(result);
        done()
    }

    fn cmd_user(&mut self, name: String) -> Result<Reply, FtpError> {
        if matches!(self.login, Login::LoggedIn { .. }) {
            return Err(FtpError::NotLoggedIn(
                "Already logged in; cannot change user",
            ));
        }
        // SECURITY: an account that requires TLS is refused here, in clear, before a password
        // is sent: refusing it at PASS answered fast for the right password and after the
        // failure delay for a wrong one, an oracle for guessing.
        if !self.control_tls && self.services.users.requires_tls(&name) {
            log::warn!("[{}] USER refused in clear: account requires TLS", self.tag);
            return Err(FtpError::NotLoggedIn(
                "This account requires TLS: send AUTH TLS first",
            ));
        }
        let text = if self.services.users.is_anonymous_name(&name) {
            "Anonymous login ok, send your e-mail address as password".to_owned()
        } else {
            format!("Password required for {name}")
        };
        self.login = Login::AwaitingPassword(name);
        Ok(Reply::new(ReplyCode::NeedPassword, text))
    }

    fn cmd_pass(&mut self, password: String) -> Flow {
        let name = match std::mem::replace(&mut self.login, Login::Connected) {
            Login::AwaitingPassword(name) => name,
            other => {
                let already = matches!(other, Login::LoggedIn { .. });
                self.login = other;
                let err = if already {
                    FtpError::BadSequence("Already logged in")
                } else {
                    FtpError::BadSequence("Login with USER first")
                };
                self.respond(Err(err));
                return done();
            }
        };
        let auth = self.services.auth.clone();
        let store = self.services.store.clone();
        let ask = Authenticate {
            name: name.clone(),
            password: Password::new(password),
            source: Some(self.peer.remote.ip()),
        };
        let delay = self.services.config.login.failure_delay;
        let gatekeeper = self.services.gatekeeper.clone();
        let ip = self.peer.remote.ip();
        let check = async move {
            let started = Instant::now();
            // SECURITY: no password is checked for a banned source, nor beyond the number of
            // guesses its ban allows, whichever connection it comes on.
            let attempt = match gatekeeper {
                Some(g) => match g.send(BeginLogin { ip }).await {
                    Ok(Ok(())) => Some(LoginAttempt::new(g, ip)),
                    Ok(Err(why)) => return Err(Some(why)),
                    Err(_) => return Err(Some("Service not available")),
                },
                None => None,
            };
            // Argon2 is CPU-heavy: the Authenticator pool runs it, never this Arbiter.
            let found = auth.send(ask).await.ok().flatten();
            if let Some(attempt) = attempt {
                attempt.end(found.is_none());
            }
            match found {
                Some(user) => match user.jail.clone() {
                    // Opened at start-up and shared by the user's sessions.
                    Some(jail) => Ok((user, Ok(Ok(jail)))),
                    None => {
                        let root = user.root.clone();
                        Ok((user, store.send(OpenJail { root }).await))
                    }
                },
                None => {
                    // SECURITY: each failure costs the guesser time; only this session waits.
                    // The 530 leaves at a fixed time after the PASS, not a fixed time after the
                    // check, so how long the check took (one user's hash parameters against
                    // another's, or the decoy's) does not show.
                    tokio::time::sleep_until(started + delay).await;
                    Err(None)
                }
            }
        };
        Box::pin(
            check
                .into_actor(self)
                .map(move |outcome, act, ctx| match outcome {
                    Ok((user, Ok(Ok(_)))) if user.require_tls && !act.control_tls => {
                        log::warn!("[{}] {} refused: account requires TLS", act.tag, user.name);
                        act.respond(Err(FtpError::NotLoggedIn(
                            "This account requires TLS: send AUTH TLS first",
                        )));
                    }
                    Ok((user, Ok(Ok(jail)))) => {
                        log::info!("[{}] login ok as {}", act.tag, user.name);
                        act.observe(Observe::Login { ok: true });
                        act.tag = format!("#{} {} {}", act.peer.id, act.peer.remote, user.name);
                        act.cwd = VirtualPath::root();
                        act.login = Login::LoggedIn { user, jail };
                        act.reply(ReplyCode::LoggedIn, "Login successful");
                    }
                    Ok((user, jail)) => {
                        log::error!(
                            "[{}] root of {} cannot be opened: {:?}",
                            act.tag,
                            user.name,
                            jail.map(|j| j.err())
                        );
                        act.respond(Err(FtpError::NotLoggedIn(
                            "Login failed: home directory unavailable",
                        )));
                    }
                    Err(None) => act.login_failed(ctx, &name),
                    Err(Some(why)) => {
                        log::warn!("[{}] PASS for {name} not checked: {why}", act.tag);
                        act.close(ctx, Some(Reply::new(ReplyCode::ServiceNotAvailable, why)));
                    }
                }),
        )
    }

    /// A failed PASS (the Gatekeeper, which bans repeat offenders, has been told): 530, and
    /// after `max_failures` on this connection, close it.
    fn login_failed(&mut self, ctx: &mut Context<Self>, name: &str) {
        self.login_failures += 1;
        self.observe(Observe::Login { ok: false });
        log::warn!(
            "[{}] login failed for {name} ({} on this connection)",
            self.tag,
            self.login_failures
        );
        self.respond(Err(FtpError::NotLoggedIn("Login incorrect")));
        // SECURITY: a connection gets a bounded number of guesses.
        if self.login_failures >= self.services.config.login.max_failures {
            self.close(
                ctx,
                Some(Reply::new(
                    ReplyCode::ServiceNotAvailable,
                    "Too many failed logins, closing control connection",
                )),
            );
        }
    }

    fn cmd_cwd(&mut self, path: VirtualPath) -> Flow {
        // SECURITY: no permission needed: moving around is what an upload-only user does too,
        // and CWD tells only whether a folder exists, which STOR or MKD into it tells as well.
        // Everything that shows a file (its size, time, contents or a listing) needs `read`.
        let Some(jail) = self.permitted_jail(|_| true) else {
            return done();
        };
        self.resolve(
            Stat {
                jail,
                path: path.clone(),
            },
            move |act, res, _| {
                let info = res?;
                if info.kind != EntryKind::Dir {
                    return Err(StoreError::NotADirectory.into());
                }
                let text = format!("Directory changed to {}", path);
                act.cwd = path;
                Ok(Reply::new(ReplyCode::FileActionOk, text))
            },
        )
    }

    fn cmd_size(&mut self, path: VirtualPath) -> Flow {
        if self.transfer_type == TransferType::Ascii {
            // RFC 3659 §4: in ASCII mode SIZE would have to count converted line endings.
            self.reply(
                ReplyCode::FileUnavailable,
                "SIZE not allowed in ASCII mode; use TYPE I",
            );
            return done();
        }
        let Some(jail) = self.permitted_jail(|p| p.read) else {
            return done();
        };
        self.resolve(Stat { jail, path }, |_, res, _| {
            let info = res?;
            if info.kind != EntryKind::File {
                return Err(FtpError::Store(StoreError::IsADirectory));
            }
            Ok(Reply::new(ReplyCode::FileStatus, info.size.to_string()))
        })
    }

    fn cmd_mdtm(&mut self, path: VirtualPath) -> Flow {
        let Some(jail) = self.permitted_jail(|p| p.read) else {
            return done();
        };
        self.resolve(Stat { jail, path }, |_, res, _| {
            let info = res?;
            if info.kind != EntryKind::File {
                return Err(FtpError::Store(StoreError::IsADirectory));
            }
            Ok(Reply::new(
                ReplyCode::FileStatus,
                CivilTime::from_unix(info.mtime).to_mdtm(),
            ))
        })
    }

    fn cmd_dele(&mut self, path: VirtualPath) -> Flow {
        let Some(jail) = self.permitted_jail(|p| p.delete) else {
            return done();
        };
        self.ask(RemoveFile { jail, path }, |_, res, _| {
            res?;
            Ok(Reply::new(ReplyCode::FileActionOk, "File deleted"))
        })
    }

    fn cmd_mkd(&mut self, path: VirtualPath) -> Flow {
        let Some(jail) = self.permitted_jail(|p| p.mkdir) else {
            return done();
        };
        self.ask(
            MakeDir {
                jail,
                path: path.clone(),
            },
            move |_, res, _| {
                res?;
                Ok(Reply::new(
                    ReplyCode::PathCreated,
                    format!("{} created", quote_path(path.as_str())),
                ))
            },
        )
    }

    fn cmd_rmd(&mut self, path: VirtualPath) -> Flow {
        let Some(jail) = self.permitted_jail(|p| p.mkdir) else {
            return done();
        };
        self.ask(RemoveDir { jail, path }, |_, res, _| {
            res?;
            Ok(Reply::new(ReplyCode::FileActionOk, "Directory removed"))
        })
    }

    fn cmd_rnfr(&mut self, path: VirtualPath) -> Flow {
        let Some(jail) = self.permitted_jail(|p| p.rename) else {
            return done();
        };
        self.resolve(
            Stat {
                jail,
                path: path.clone(),
            },
            move |act, res, _| {
                res?;
                act.rename_from = Some(path);
                Ok(Reply::new(ReplyCode::FileActionPending, "Ready for RNTO"))
            },
        )
    }

    fn cmd_rnto(&mut self, from: VirtualPath, to: VirtualPath) -> Flow {
        let Some(jail) = self.permitted_jail(|p| p.rename) else {
            return done();
        };
        let allow_overwrite = self.permissions().overwrite;
        self.ask(
            Rename {
                jail,
                from,
                to,
                allow_overwrite,
            },
            |_, res, _| {
                res?;
                Ok(Reply::new(ReplyCode::FileActionOk, "Rename successful"))
            },
        )
    }

    /// The reply now, or none when a transfer is running: RFC 959 §4.1.3 has the transfer
    /// answer 426 first and ABOR 226 after it, both sent when the DataChannel reports.
    fn cmd_abor(&mut self) -> Option<Reply> {
        match &mut self.transfer {
            Some(t) => {
                t.abort_requested = true;
                t.channel.do_send(Abort);
                None
            }
            None => Some(Reply::new(
                ReplyCode::DataConnectionOpenNoTransfer,
                "No transfer to abort",
            )),
        }
    }

    /// PASV and EPSV: open one passive listener (closing any earlier one).
    fn cmd_pasv(&mut self, ctx: &mut Context<Self>, extended: bool, family: Option<u8>) -> Flow {
        if self.epsv_all && !extended {
            // RFC 2428 §4: after EPSV ALL only EPSV may set up data connections.
            self.respond(Err(FtpError::BadSequence("EPSV ALL in effect; use EPSV")));
            return done();
        }
        let local_ip = self.peer.local.ip();
        let local_family = if local_ip.is_ipv4() { 1 } else { 2 };
        if family.is_some_and(|f| f != local_family) {
            // RFC 2428 §3: 522 names the protocols that can be used.
            self.reply(
                ReplyCode::NetworkProtocolNotSupported,
                format!("Network protocol not supported, use ({local_family})"),
            );
            return done();
        }
        if !extended && as_v4(local_ip).is_none() {
            self.respond(Err(FtpError::NoDataConnection(
                "PASV works over IPv4 only; use EPSV",
            )));
            return done();
        }
        // A new PASV replaces (and closes) the previous listener, and gives back its lease
        // (sent before the request below, so the Gatekeeper counts it first).
        self.data = DataSetup::None;
        let gatekeeper = match (
            &self.services.gatekeeper,
            &self.services.config.passive_ports,
        ) {
            (Some(g), Some(_)) => g.clone(),
            // Ports from the kernel's ephemeral range are not counted: one source's sessions
            // cannot hold enough of them to matter.
            _ => {
                let reply = self.open_passive(ctx, None, extended);
                self.respond(reply);
                return done();
            }
        };
        let ip = self.peer.remote.ip();
        Box::pin(gatekeeper.send(HoldPassive { ip }).into_actor(self).map(
            move |granted, act, ctx| {
                let reply = match granted {
                    Ok(true) => {
                        let lease = PassiveLease::new(gatekeeper, ip);
                        act.open_passive(ctx, Some(lease), extended)
                    }
                    // SECURITY: a configured passive range is shared; one source (all its
                    // sessions together) may hold only its share of it.
                    Ok(false) => {
                        log::warn!("[{}] passive share of the source used up", act.tag);
                        Err(FtpError::NoDataConnection(
                            "Too many passive ports held from your address",
                        ))
                    }
                    Err(_) => Err(FtpError::Internal),
                };
                act.respond(reply);
            },
        ))
    }

    /// Binds a passive listener, makes it the data endpoint, and says where it is.
    fn open_passive(
        &mut self,
        ctx: &mut Context<Self>,
        lease: Option<PassiveLease>,
        extended: bool,
    ) -> Result<Reply, FtpError> {
        let local_ip = self.peer.local.ip();
        let (listener, port) = bind_passive(local_ip, self.services.config.passive_ports.clone())
            .map_err(|e| {
            log::warn!("[{}] no passive port: {e}", self.tag);
            FtpError::NoDataConnection("Cannot open a passive port")
        })?;
        self.set_data(ctx, DataSetup::Passive(listener, lease));
        if extended {
            return Ok(Reply::new(
                ReplyCode::EnteringExtendedPassiveMode,
                format!("Entering Extended Passive Mode (|||{port}|)"),
            ));
        }
        // Behind NAT the outside world must be told the public address; local peers
        // (loopback, private networks) keep the address they connected to.
        let advertised = match self.services.config.passive_address {
            Some(IpAddr::V4(public)) if !is_local_peer(self.peer.remote.ip()) => Some(public),
            _ => as_v4(local_ip),
        };
        let o = advertised.map(|a| a.octets()).unwrap_or([127, 0, 0, 1]);
        Ok(Reply::new(
            ReplyCode::EnteringPassiveMode,
            format!(
                "Entering Passive Mode ({},{},{},{},{},{})",
                o[0],
                o[1],
                o[2],
                o[3],
                port >> 8,
                port & 0xff
            ),
        ))
    }

    /// PORT and EPRT: remember where to connect for the next transfer.
    fn cmd_port(&mut self, addr: SocketAddr) -> Result<Reply, FtpError> {
        if self.epsv_all {
            return Err(FtpError::BadSequence("EPSV ALL in effect; use EPSV"));
        }
        // SECURITY: no bounce attacks (RFC 2577 §3): only the client's own address, and no
        // privileged ports.
        if !data_channel::same_ip(addr.ip(), self.peer.remote.ip()) {
            return Err(FtpError::Parse(ParseError::BadArgument(
                "PORT",
                "address must be the client's own",
            )));
        }
        if addr.port() < 1024 {
            return Err(FtpError::Parse(ParseError::BadArgument(
                "PORT",
                "port must be 1024 or above",
            )));
        }
        self.data = DataSetup::Active(addr);
        Ok(Reply::new(ReplyCode::CommandOk, "PORT command successful"))
    }

    fn set_data(&mut self, ctx: &mut Context<Self>, setup: DataSetup) {
        self.data = setup;
        if let Some(old) = self.passive_expiry.take() {
            ctx.cancel_future(old);
        }
        // SECURITY: a passive port nobody uses is closed after the data-connect timeout.
        // Only `set_data` makes `data` passive, and it cancels the previous timer, so a
        // passive `data` when this fires is the one it was set for.
        let expiry = ctx.run_later(self.services.config.timeouts.data_connect, |act, _| {
            act.passive_expiry = None;
            if matches!(act.data, DataSetup::Passive(..)) {
                log::debug!("[{}] passive port expired unused", act.tag);
                act.data = DataSetup::None;
            }
        });
        self.passive_expiry = Some(expiry);
    }

    /// Takes the prepared data endpoint for a transfer command (RFC 959 §3.2: 425 without one).
    fn take_endpoint(&mut self) -> Result<Endpoint, FtpError> {
        // SECURITY: with data protection required, nothing is sent in clear.
        if self.data_protection_required() && !self.prot_private {
            return Err(FtpError::ProtectionRequired);
        }
        if self.transfer.is_some() {
            return Err(FtpError::BadSequence("A transfer is already running"));
        }
        match std::mem::replace(&mut self.data, DataSetup::None) {
            DataSetup::Passive(l, lease) => Ok(Endpoint {
                to: DataEndpoint::Passive(l),
                lease,
            }),
            DataSetup::Active(a) => Ok(Endpoint {
                to: DataEndpoint::Active(a),
                lease: None,
            }),
            DataSetup::None => Err(FtpError::NoDataConnection(
                "Use PASV, EPSV, PORT or EPRT first",
            )),
        }
    }

    fn tls_policy(&self) -> Option<&TlsPolicy> {
        self.services.config.tls.as_ref()
    }

    fn data_protection_required(&self) -> bool {
        self.tls_policy().is_some_and(|p| p.require_data)
            || self.user().is_some_and(|u| u.require_tls)
    }

    /// AUTH TLS (RFC 4217 §4): `None` when the 234 and the upgrade were queued.
    fn cmd_auth(&mut self, mechanism: &str) -> Result<Option<Reply>, FtpError> {
        let Some(policy) = self.tls_policy() else {
            return Err(FtpError::NotImplemented("AUTH (TLS is not configured)"));
        };
        if !matches!(mechanism, "TLS" | "SSL" | "TLS-C" | "TLS-P") {
            return Ok(Some(Reply::new(
                ReplyCode::ParameterNotImplemented,
                "AUTH mechanism not supported; use AUTH TLS",
            )));
        }
        if self.control_tls {
            return Err(FtpError::BadSequence("TLS is already in use"));
        }
        if matches!(self.login, Login::LoggedIn { .. }) {
            return Err(FtpError::BadSequence("AUTH must come before login"));
        }
        let config = policy.session_config();
        self.tls_config = Some(SessionTls {
            data: data_config(&config),
            control: config.clone(),
        });
        self.control_tls = true;
        // A USER sent in clear before AUTH does not carry over (RFC 4217 §4).
        self.login = Login::Connected;
        self.reply(
            ReplyCode::AuthOk,
            "AUTH TLS successful, start TLS negotiation",
        );
        let _ = self.out.send(Outbound::StartTls(config));
        Ok(None)
    }

    /// PBSZ (RFC 4217 §8): TLS has no buffer size; 0 is the only answer.
    fn cmd_pbsz(&mut self) -> Result<Reply, FtpError> {
        if !self.control_tls {
            return Err(FtpError::BadSequence("PBSZ needs AUTH TLS first"));
        }
        self.pbsz = true;
        Ok(Reply::new(ReplyCode::CommandOk, "PBSZ=0"))
    }

    /// PROT (RFC 4217 §9): P protects data connections, C leaves them clear.
    fn cmd_prot(&mut self, level: &str) -> Result<Reply, FtpError> {
        if !self.control_tls {
            return Err(FtpError::BadSequence("PROT needs AUTH TLS first"));
        }
        if !self.pbsz {
            return Err(FtpError::BadSequence("PROT needs PBSZ first"));
        }
        match level {
            "P" => {
                self.prot_private = true;
                Ok(Reply::new(
                    ReplyCode::CommandOk,
                    "Protection level set to Private",
                ))
            }
            "C" if self.data_protection_required() => Ok(Reply::new(
                ReplyCode::PolicyRequiresTls,
                "Policy requires protected data connections (PROT P)",
            )),
            "C" => {
                self.prot_private = false;
                Ok(Reply::new(
                    ReplyCode::CommandOk,
                    "Protection level set to Clear",
                ))
            }
            "S" | "E" => Ok(Reply::new(
                ReplyCode::ProtLevelNotSupported,
                "Protection level not supported; use P or C",
            )),
            _ => Err(FtpError::Parse(ParseError::BadArgument(
                "PROT",
                "unknown protection level",
            ))),
        }
    }

    fn cmd_opts(&mut self, name: &str, value: Option<&str>) -> Result<Reply, FtpError> {
        if name != "MLST" {
            return opts(name, value);
        }
        // RFC 3659 §7.9: the reply lists the facts now selected.
        self.mlst_facts = MlsxFacts::parse(value.unwrap_or(""));
        Ok(Reply::new(
            ReplyCode::CommandOk,
            format!("MLST OPTS {}", self.mlst_facts.selected()),
        ))
    }

    fn perm_fact(&self) -> PermFact {
        let p = self.permissions();
        PermFact {
            read: p.read,
            write: p.upload && p.overwrite,
            delete: p.delete,
            rename: p.rename,
            mkdir: p.mkdir,
        }
    }

    /// MLST (RFC 3659 §7): facts of one path over the control connection.
    fn cmd_mlst(&mut self, arg: Option<String>) -> Flow {
        let Some(jail) = self.permitted_jail(|p| p.read) else {
            return done();
        };
        let path = match &arg {
            Some(a) => self.cwd.join(a),
            None => self.cwd.clone(),
        };
        let (facts, perm) = (self.mlst_facts, self.perm_fact());
        self.resolve(
            Stat {
                jail,
                path: path.clone(),
            },
            move |_, res, _| {
                let info = res?;
                let line = format!(" {}", mlsx_line(&info, facts, perm, path.as_str()));
                Ok(Reply::multi(
                    ReplyCode::FileActionOk,
                    vec![format!("Listing {path}"), line, "End".to_owned()],
                ))
            },
        )
    }

    /// STAT with a path (RFC 959 §4.1.3): the listing, over the control connection.
    fn cmd_stat_path(&mut self, path: VirtualPath) -> Flow {
        let Some(jail) = self.permitted_jail(|p| p.read) else {
            return done();
        };
        let list = List {
            jail,
            path: path.clone(),
            format: ListFormat::Long,
            now: unix_now(),
        };
        self.ask(list, move |_, res, _| {
            let body = res?;
            let mut lines = vec![format!("Status of {path}:")];
            lines.extend(String::from_utf8_lossy(&body).lines().map(str::to_owned));
            lines.push("End of status".to_owned());
            Ok(Reply::multi(ReplyCode::FileStatus, lines))
        })
    }

    fn cmd_list(&mut self, arg: Option<String>, format: ListFormat) -> Flow {
        let Some((jail, endpoint)) = self.transfer_setup(self.require(|p| p.read)) else {
            return done();
        };
        let path = match &arg {
            Some(a) => self.cwd.join(a),
            None => self.cwd.clone(),
        };
        let verb = match format {
            ListFormat::Long => "LIST",
            ListFormat::Names => "NLST",
            ListFormat::Machine(..) => "MLSD",
        };
        self.ask(
            List {
                jail,
                path: path.clone(),
                format,
                now: unix_now(),
            },
            move |act, res, ctx| {
                let body = match res {
                    // RFC 3659 §7.2: MLSD of something that is not a directory is 501.
                    Err(StoreError::NotADirectory) if verb == "MLSD" => {
                        return Err(FtpError::Parse(ParseError::BadArgument(
                            "MLSD",
                            "not a directory",
                        )))
                    }
                    other => other?,
                };
                let len = body.len() as u64;
                act.start_transfer(
                    ctx,
                    verb,
                    path,
                    endpoint,
                    Payload::SendBytes(body),
                    Some(len),
                    None,
                )?;
                Ok(Reply::new(
                    ReplyCode::OpeningDataConnection,
                    "Here comes the directory listing",
                ))
            },
        )
    }

    fn cmd_retr(&mut self, arg: String, offset: u64) -> Flow {
        let Some((jail, endpoint)) = self.transfer_setup(self.require(|p| p.read)) else {
            return done();
        };
        let path = self.cwd.join(&arg);
        self.resolve(
            OpenRead {
                jail,
                path: path.clone(),
                offset,
            },
            move |act, res, ctx| {
                let handle = res?;
                let left = handle.size - offset;
                let mode = mode_name(act.transfer_type);
                let text = format!(
                    "Opening {mode} mode data connection for {} ({} bytes)",
                    path.file_name(),
                    handle.size
                );
                act.start_transfer(
                    ctx,
                    "RETR",
                    path,
                    endpoint,
                    match handle.source {
                        ReadSource::File(file) => Payload::SendFile(file),
                        ReadSource::Bytes(bytes) => Payload::SendBytes(bytes),
                    },
                    Some(left),
                    None,
                )?;
                Ok(Reply::new(ReplyCode::OpeningDataConnection, text))
            },
        )
    }

    fn cmd_store(&mut self, path: VirtualPath, mode: WriteMode, verb: &'static str) -> Flow {
        let allowed = match mode {
            WriteMode::Replace { .. } => self.require(|p| p.upload),
            WriteMode::Append | WriteMode::At(_) => self.require(|p| p.upload && p.overwrite),
        };
        let Some((jail, endpoint)) = self.transfer_setup(allowed) else {
            return done();
        };
        // The upload keeps its own jail handle: after REIN (or anything else that changes the
        // login) the temporary file is still renamed into place or removed in the right root.
        let upload_jail = jail.clone();
        self.ask(
            OpenWrite {
                jail,
                path: path.clone(),
                mode,
            },
            move |act, res, ctx| {
                let upload = res?;
                let mode = mode_name(act.transfer_type);
                let text = if verb == "STOU" {
                    // RFC 1123 §4.1.2.9: STOU names the file in its 150 reply.
                    format!("FILE: {}", path.file_name())
                } else {
                    format!(
                        "Opening {mode} mode data connection for {}",
                        path.file_name()
                    )
                };
                act.start_transfer(
                    ctx,
                    verb,
                    path,
                    endpoint,
                    Payload::Receive(upload.file),
                    None,
                    Some((upload_jail, upload.target)),
                )?;
                Ok(Reply::new(ReplyCode::OpeningDataConnection, text))
            },
        )
    }

    fn cmd_stou(&mut self) -> Flow {
        let mut rnd = [0u8; 6];
        if getrandom::getrandom(&mut rnd).is_err() {
            self.respond(Err(FtpError::Internal));
            return done();
        }
        let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let path = self.cwd.join(&format!("stou-{name}"));
        self.cmd_store(
            path,
            WriteMode::Replace {
                allow_overwrite: false,
            },
            "STOU",
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn start_transfer(
        &mut self,
        ctx: &mut Context<Self>,
        verb: &'static str,
        path: VirtualPath,
        endpoint: Endpoint,
        payload: Payload,
        size: Option<u64>,
        upload: Option<(Jail, UploadTarget)>,
    ) -> Result<(), FtpError> {
        let config = &self.services.config;
        let id = self.next_transfer_id;
        self.next_transfer_id += 1;
        let Endpoint {
            to: endpoint,
            lease,
        } = endpoint;
        let spec = TransferSpec {
            id,
            endpoint,
            payload,
            ascii: self.transfer_type == TransferType::Ascii
                && !matches!(verb, "LIST" | "NLST" | "MLSD"),
            tls: match (&self.tls_config, self.prot_private) {
                (Some(tls), true) => Some(DataTls {
                    config: tls.data.clone(),
                    require_resumption: self.tls_policy().is_some_and(|p| p.require_session_reuse),
                }),
                _ => None,
            },
            control_peer: if config.allow_fxp {
                None
            } else {
                Some(self.peer.remote.ip())
            },
            size_hint: size,
            connect_timeout: config.timeouts.data_connect,
            stall_timeout: config.timeouts.data_stall,
            buffer_size: config.limits.transfer_buffer,
            min_rate: MinRate {
                bytes_per_sec: config.timeouts.data_min_rate,
                window: config.timeouts.data_min_rate_window,
            },
            threads: self.services.transfer_threads.clone(),
        };
        let me = ctx.address();
        let channel = DataChannel::new(spec, me.clone().recipient(), me.recipient()).start();
        log::info!(
            "[{}] {verb} {path} started ({} bytes expected)",
            self.tag,
            size.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
        );
        self.observe(Observe::TransferStarted);
        self.transfer = Some(Transfer {
            id,
            channel,
            verb,
            path,
            bytes: 0,
            size,
            started: Instant::now(),
            upload,
            abort_requested: false,
            ascii: self.transfer_type == TransferType::Ascii,
            last_log: Instant::now(),
            _lease: lease,
        });
        Ok(())
    }

    /// STAT without argument (RFC 959 §4.1.3): session status, and the transfer if one runs.
    fn status(&self) -> Reply {
        let mut lines = vec![format!("actorftpd status for {}", self.peer.remote)];
        match self.user() {
            Some(u) => lines.push(format!("Logged in as {}", u.name)),
            None => lines.push("Not logged in".to_owned()),
        }
        lines.push(format!(
            "TYPE: {}, STRUcture: File, MODE: Stream",
            mode_name(self.transfer_type)
        ));
        match &self.transfer {
            Some(t) => {
                let secs = t.started.elapsed().as_secs_f64();
                let (total, pct) = match t.size {
                    Some(s) if s > 0 => (
                        format!(" of {s}"),
                        format!(" ({:.0}%)", t.bytes as f64 * 100.0 / s as f64),
                    ),
                    Some(s) => (format!(" of {s}"), String::new()),
                    None => (String::new(), String::new()),
                };
                lines.push(format!(
                    "Transfer in progress: {} {} ({}) {}{} bytes{}, {:.1} s, {}",
                    t.verb,
                    t.path,
                    t.direction(),
                    t.bytes,
                    total,
                    pct,
                    secs,
                    rate(t.bytes, secs)
                ));
            }
            None => lines.push("No data transfer in progress".to_owned()),
        }
        lines.push("End of status".to_owned());
        Reply::multi(ReplyCode::SystemStatus, lines)
    }

    /// Replies to the end of a transfer, in RFC 959 order, then any QUIT or close that waited.
    fn finish_transfer(&mut self, ctx: &mut Context<Self>, t: Transfer, result: TransferResult) {
        let secs = t.started.elapsed().as_secs_f64();
        let bytes = *result.as_ref().unwrap_or(&t.bytes);
        self.observe(Observe::TransferEnded {
            incoming: t.direction() == "upload",
            bytes,
            ok: result.is_ok(),
        });
        if let (Some(log), Some(user), "download" | "upload") =
            (&self.services.observers.xferlog, self.user(), t.direction())
        {
            log.do_send(XferRecord {
                when: unix_now(),
                seconds: secs,
                remote: self.peer.remote.ip(),
                bytes,
                path: user.root.join(t.path.to_relative()),
                binary: !t.ascii,
                incoming: t.direction() == "upload",
                anonymous: user.anonymous,
                user: user.name.clone(),
                complete: result.is_ok(),
            });
        }
        let reply = match &result {
            Ok(bytes) => {
                log::info!(
                    "[{}] {} {} ok: {bytes} bytes in {secs:.3} s ({})",
                    self.tag,
                    t.verb,
                    t.path,
                    rate(*bytes, secs)
                );
                Ok(Reply::new(
                    ReplyCode::ClosingDataConnection,
                    format!(
                        "Transfer complete: {bytes} bytes in {secs:.3} s ({})",
                        rate(*bytes, secs)
                    ),
                ))
            }
            Err(e) => {
                log::info!(
                    "[{}] {} {} failed after {} bytes: {e:?}",
                    self.tag,
                    t.verb,
                    t.path,
                    t.bytes
                );
                Err(FtpError::Transfer(e.clone()))
            }
        };
        self.respond(reply);
        if t.abort_requested {
            self.reply(ReplyCode::ClosingDataConnection, "ABOR command successful");
        }
        if self.closing {
            ctx.stop();
        } else if self.quit_after_transfer {
            self.close(ctx, Some(Reply::new(ReplyCode::ClosingControl, "Goodbye")));
        } else if self.shutting_down {
            self.close(ctx, Some(shutdown_reply()));
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
        self.observe(Observe::SessionOpened);
        let banner = self.services.config.banner.clone();
        self.reply(ReplyCode::ServiceReady, banner);
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
        self.observe(Observe::SessionClosed);
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
        self.observe(Observe::Command(cmd.verb()));
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

impl Handler<Progress> for Session {
    type Result = ();

    fn handle(&mut self, msg: Progress, _: &mut Context<Self>) {
        let Some(t) = self.transfer.as_mut().filter(|t| t.id == msg.id) else {
            return;
        };
        t.bytes = msg.bytes;
        // A steady progress line for long transfers, not one per chunk.
        if t.last_log.elapsed() >= PROGRESS_LOG_INTERVAL {
            t.last_log = Instant::now();
            let snap = t.snapshot();
            log::info!(
                "[{}] {} {} in progress: {} of {} bytes, {:.0} s, {}",
                self.tag,
                snap.verb,
                snap.path,
                snap.bytes,
                snap.size
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "?".into()),
                snap.elapsed_secs,
                rate(snap.bytes, snap.elapsed_secs)
            );
        }
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

impl Handler<TransferDone> for Session {
    type Result = ();

    fn handle(&mut self, msg: TransferDone, ctx: &mut Context<Self>) {
        let Some(mut t) = self.transfer.take_if(|t| t.id == msg.id) else {
            return;
        };
        if let Ok(bytes) = msg.result {
            t.bytes = bytes;
        }
        self.last_active = Instant::now();
        let Some((jail, target)) = t.upload.take() else {
            self.finish_transfer(ctx, t, msg.result);
            return;
        };
        // An upload is renamed into place only when it completed; otherwise its temporary
        // file is removed, so a failed STOR never leaves a truncated file under the real name.
        let keep = msg.result.is_ok();
        let finish = self
            .services
            .store
            .send(FinishUpload { jail, target, keep });
        ctx.wait(finish.into_actor(self).map(move |answer, act, ctx| {
            let result = match (msg.result, answer) {
                (Ok(bytes), Ok(Ok(()))) => Ok(bytes),
                (Ok(_), Ok(Err(StoreError::NoSpace))) => Err(TransferError::NoSpace),
                // SECURITY: the final rename would have replaced a file that appeared while
                // the upload ran, and the user may not overwrite: the other file stays.
                (Ok(_), Ok(Err(StoreError::AlreadyExists))) => Err(TransferError::NameTaken),
                (Ok(_), Ok(Err(e))) => Err(TransferError::LocalIo(format!("{e:?}"))),
                (Ok(_), Err(_)) => Err(TransferError::LocalIo("file store is not running".into())),
                (Err(e), _) => Err(e),
            };
            act.finish_transfer(ctx, t, result);
        }));
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn mode_name(t: TransferType) -> &'static str {
    match t {
        TransferType::Ascii => "ASCII",
        TransferType::Image => "BINARY",
    }
}

/// A human rate: `12.3 MB/s`.
pub fn rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "n/a".to_owned();
    }
    let bps = bytes as f64 / secs;
    if bps >= 1e6 {
        format!("{:.1} MB/s", bps / 1e6)
    } else {
        format!("{:.1} kB/s", bps / 1e3)
    }
}

fn help(topic: Option<String>, tls: bool) -> Reply {
    let known = |t: &str| {
        HELP_VERBS.split(' ').any(|v| v == t) || (tls && HELP_TLS_VERBS.split(' ').any(|v| v == t))
    };
    match topic {
        None => Reply::multi(
            ReplyCode::HelpMessage,
            vec![
                "The following commands are recognized:".to_owned(),
                if tls {
                    format!(" {HELP_VERBS} {HELP_TLS_VERBS}")
                } else {
                    format!(" {HELP_VERBS}")
                },
                "Help OK".to_owned(),
            ],
        ),
        Some(t) if known(&t) => Reply::new(
            ReplyCode::HelpMessage,
            format!("{t} is supported; see RFC 959"),
        ),
        Some(t) => Reply::new(ReplyCode::NotImplemented, format!("Unknown command {t}")),
    }
}

/// SITE (RFC 959 §4.1.3): only HELP; other subcommands are not offered.
fn site(arg: &str) -> Result<Reply, FtpError> {
    let sub = arg
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if sub == "HELP" {
        Ok(Reply::multi(
            ReplyCode::HelpMessage,
            vec![
                "SITE commands recognized:".to_owned(),
                " HELP".to_owned(),
                "End".to_owned(),
            ],
        ))
    } else {
        Ok(Reply::new(
            ReplyCode::NotImplemented,
            format!("SITE {sub} not implemented"),
        ))
    }
}

/// RFC 2389 OPTS; RFC 2640 §3.3 UTF8 (MLST is handled by the Session, which holds the facts).
fn opts(name: &str, value: Option<&str>) -> Result<Reply, FtpError> {
    match (name, value.map(str::to_ascii_uppercase).as_deref()) {
        ("UTF8", None | Some("ON")) => Ok(Reply::new(ReplyCode::CommandOk, "Always in UTF8 mode")),
        ("UTF8", Some("OFF")) => Ok(Reply::new(
            ReplyCode::ParameterNotImplemented,
            "UTF8 cannot be turned off: names are UTF-8",
        )),
        _ => Err(FtpError::Parse(ParseError::BadArgument(
            "OPTS",
            "option not understood",
        ))),
    }
}

/// An IPv4 address, or the IPv4 address inside an IPv4-mapped IPv6 one.
fn as_v4(ip: IpAddr) -> Option<std::net::Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// Binds a passive listener on the control connection's local address, in the configured
/// range (a random starting point, then every port once) or on an ephemeral port.
fn bind_passive(
    ip: IpAddr,
    range: Option<std::ops::RangeInclusive<u16>>,
) -> std::io::Result<(std::net::TcpListener, u16)> {
    use socket2::{Domain, Socket, Type};
    // Non-blocking from the start, and not registered with the reactor: the DataChannel
    // does that only if it has to wait for the client. The port is known when we chose it;
    // only the kernel's choice (port 0) needs a `getsockname`.
    let bind = |port: u16| -> std::io::Result<(std::net::TcpListener, u16)> {
        let addr = SocketAddr::new(ip, port);
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(8)?;
        let listener: std::net::TcpListener = socket.into();
        let port = match port {
            0 => listener.local_addr()?.port(),
            chosen => chosen,
        };
        Ok((listener, port))
    };
    let Some(range) = range else { return bind(0) };
    let (lo, hi) = (*range.start(), *range.end());
    let span = u32::from(hi - lo) + 1;
    let start = random_u32()? % span;
    let mut last_err = std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        "passive port range exhausted",
    );
    for i in 0..span {
        let port = lo + ((start + i) % span) as u16;
        match bind(port) {
            Ok(l) => return Ok(l),
            Err(e) => last_err = e,
        }
    }
    Err(last_err)
}

/// A random number from the OS's generator, fetched 64 at a time per thread: passive ports
/// stay unpredictable, and PASV costs a `getrandom` call once in 64 times, not every time.
fn random_u32() -> std::io::Result<u32> {
    use std::cell::RefCell;
    const BATCH: usize = 64;
    thread_local! {
        static POOL: RefCell<([u32; BATCH], usize)> = const { RefCell::new(([0; BATCH], BATCH)) };
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (values, used) = &mut *pool;
        if *used == BATCH {
            let mut bytes = [0u8; BATCH * 4];
            getrandom::getrandom(&mut bytes).map_err(std::io::Error::other)?;
            for (v, b) in values.iter_mut().zip(bytes.chunks_exact(4)) {
                *v = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            *used = 0;
        }
        let v = values[*used];
        *used += 1;
        Ok(v)
    })
}
