//! Authentication: who may log in, and checking their passwords.
//!
//! `users` is the user database (the users file, or `db`: users in SQLite or PostgreSQL, and
//! the `actorftpd user` subcommand that edits them), `permissions` what a user may do and from
//! which networks, `password` the credentials and Argon2 hashing, and `authenticator` the
//! Authenticator actor: the small pool that runs the CPU-heavy checks off the worker Arbiters.

pub mod authenticator;
pub mod db;
pub mod password;
pub mod permissions;
mod roots;
pub mod users;

pub use authenticator::{Authenticate, Authenticator};
pub use password::{
    hash_password, random_password, read_new_password, Argon2Memory, Credential, Password,
};
pub use permissions::{IpNet, Permissions};
pub use users::{LoginRefused, User, UserDb, ANONYMOUS_NAMES};
