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

pub mod admin;
pub mod auth;
pub mod authenticator;
pub mod cli;
pub mod config;
pub mod config_file;
pub mod connection;
pub mod data_channel;
pub mod error;
pub mod fdlimit;
pub mod file_store;
pub mod gatekeeper;
pub mod listener;
pub mod listing;
pub mod logging;
pub mod metrics;
pub mod printable;
pub mod privileges;
pub mod protocol;
pub mod reload;
pub mod server;
pub mod session;
pub mod tls;
pub mod who;
pub mod xferlog;
