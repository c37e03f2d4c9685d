//! actorftpd: a multi-client FTP server built on Actix actors.
//!
//! Architecture in ten lines (pictures in `diagrams/`):
//! - `Listener` (one per listening address) accepts control connections and starts one
//!   `Session` per connection on a worker Arbiter (one thread per core).
//! - A connection's I/O task (`connection`) owns the socket: it decodes lines with the pure
//!   `protocol::FtpCodec` into typed `Command` messages and writes the `Reply`s the Session sends.
//! - `Session` holds all per-client state, checks login and sequence in one place, and asks the
//!   shared `FileStore` (a `SyncArbiter` pool) for every file-system call, inside the user's jail.
//! - Each transfer runs in a short-lived `DataChannel` actor that owns the data socket and the
//!   file, reports `Progress` and one `TransferDone`, and obeys `Abort`; the Session never waits
//!   on it, so NOOP, STAT and ABOR answer during transfers.
//! - `Gatekeeper` (one per daemon) holds the session counts, failed logins and bans that every
//!   Listener and Session ask before admitting a connection or checking a password.
//! - Components talk only by messages; no shared mutable state.
#![forbid(unsafe_code)]

// The modules, one job each (diagrams/actors.mmd shows how the actors talk):
/// Who may log in: the user database, permissions, passwords, and the Authenticator pool.
pub mod auth;
/// Command-line options: the only file that knows the argument parser.
pub mod cli;
/// Validated, typed configuration with documented defaults and limits.
pub mod config;
/// The configuration file (TOML): every option, merged under the command line; check-config.
pub mod config_file;
/// The control connection's I/O task and transport (plain or TLS): the socket's one owner.
pub mod connection;
/// The DataChannel actor: one transfer on one data connection.
pub mod data_channel;
/// Typed errors and the one table from failure to FTP reply.
pub mod error;
/// Open-file limits: raising the soft limit and fitting the session cap to it.
pub mod fdlimit;
/// The FileStore actor (the jail), its Resolver front desk, and `Store`, the one door to them.
pub mod file_store;
/// The Gatekeeper actor: session counts, failed logins, bans and passive-port shares.
pub mod gatekeeper;
/// Upload hooks: a program or a URL told of each completed upload, off the sessions' threads.
pub mod hooks;
/// The Listener actor: accepts control connections and starts Sessions on worker Arbiters.
pub mod listener;
/// LIST, NLST, MLSD and MLST lines (pure).
pub mod listing;
/// The daemon's log: text or JSON, stderr or a file reopened on SIGHUP, control characters
/// escaped.
pub mod logging;
/// What the operator sees: the admin endpoint and its token, `who`, metrics, the transfer log.
pub mod observability;
/// Escaping of client-supplied text for logs and JSON.
pub mod printable;
/// Dropping root after binding (`--run-as`), and the umask.
pub mod privileges;
/// The pure protocol: bytes to `Command`, `Reply` to bytes.
pub mod protocol;
/// The PROXY protocol from trusted load balancers: the client's real address.
pub mod proxy;
/// SIGHUP: re-reading and validating the users and TLS files.
pub mod reload;
/// Wiring: binds the sockets and starts the actors of a daemon.
pub mod server;
/// The Session actor: one per control connection, one file per job.
pub mod session;
/// `Shared<T>`: a value the daemon reads and SIGHUP replaces whole.
pub mod swap;
/// The TLS configuration (FTPS, RFC 4217).
pub mod tls;
