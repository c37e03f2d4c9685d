//! What the daemon tells its operator: the admin endpoint and its token, the `who` client that
//! reads it, the metrics counters and the transfer log.
//!
//! `notify` tells systemd when the daemon is ready, reloading or stopping.
//!
//! Sessions report into `metrics` and `xferlog` by notification only; `admin` asks Listeners and
//! Sessions by message. Nothing here changes how a session runs.

pub mod admin;
pub mod metrics;
pub mod notify;
pub mod token;
pub mod who;
pub mod xferlog;
