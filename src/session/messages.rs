//! What the Session receives, sends and is given: its messages (commands, unparsable lines,
//! control-connection and shutdown facts, the live view's question), the reply sink it writes
//! to (`SinkItem` on a `ReplySink`), the snapshots it answers with, and the shared services it
//! is started with. Types only: no handler logic here.

use crate::auth::Authenticator;
use crate::auth::UserDb;
use crate::config::Config;
use crate::file_store::{Resolver, Store};
use crate::gatekeeper::Gatekeeper;
use crate::observability::metrics::Metrics;
use crate::observability::xferlog::XferLog;
use crate::protocol::{Command, ParseError, Reply};
use actix::prelude::*;
use rustls::server::ServerConfig;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the Session puts in its `ReplySink` for whoever owns the control connection.
#[derive(Debug)]
pub enum SinkItem {
    Reply(Reply),
    /// Flush what is queued, then close the control connection.
    Close,
    /// Flush what is queued (the 234), then run the TLS handshake on the control connection
    /// with this configuration (RFC 4217 §4).
    StartTls(Arc<ServerConfig>),
}

impl PartialEq for SinkItem {
    fn eq(&self, other: &SinkItem) -> bool {
        match (self, other) {
            (SinkItem::Reply(a), SinkItem::Reply(b)) => a == b,
            (SinkItem::Close, SinkItem::Close) => true,
            (SinkItem::StartTls(a), SinkItem::StartTls(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// The Session's only way to talk to its client. In the daemon, the connection's I/O task reads
/// it; in actor tests, the test does.
pub type ReplySink = mpsc::UnboundedSender<SinkItem>;

/// Shared, read-only services every Session needs.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub users: Arc<crate::swap::Shared<UserDb>>,
    /// The one door to the file store (through this worker's Resolver where that helps).
    pub store: Store,
    pub auth: Addr<Authenticator>,
    pub recorders: Recorders,
    /// The daemon's table of failed logins and bans, asked before each password check. `None`
    /// in actor tests that run a Session without a daemon around it.
    pub gatekeeper: Option<Addr<Gatekeeper>>,
    /// The daemon's passive ports: which are free, and how many each source holds.
    pub passive: Arc<crate::gatekeeper::PassiveBook>,
    /// SECURITY: permits for transfers copying on blocking-pool threads
    /// (`Limits::transfer_threads`), shared by every Session of the daemon.
    pub transfer_threads: Arc<tokio::sync::Semaphore>,
}

impl Services {
    /// The same services with another Resolver (the one on the Session's worker).
    pub fn with_resolver(&self, resolver: Addr<Resolver>) -> Services {
        Services {
            store: self.store.on_worker(resolver),
            ..self.clone()
        }
    }
}

/// Where sessions report what happened; each is off (`None`) unless configured.
#[derive(Clone, Default)]
pub struct Recorders {
    pub metrics: Option<Addr<Metrics>>,
    pub xferlog: Option<Addr<XferLog>>,
    /// `--upload-hook`, `--upload-hook-url`: told of every completed upload.
    pub upload_hooks: Option<crate::hooks::UploadHooks>,
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
