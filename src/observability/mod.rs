//! What the daemon tells its operator: the admin endpoint and its token, the `who` client that
//! reads it, the metrics counters and the transfer log.
//!
//! `health` answers `/health` and `/ready` (unauthenticated: they reveal nothing); `kick`
//! ends sessions on the operator's word.
//!
//! `notify` tells systemd when the daemon is ready, reloading or stopping.
//!
//! Sessions report into `metrics` and `xferlog` by notification only; `admin` asks Listeners and
//! Sessions by message. Nothing here changes how a session runs.

pub mod admin;
pub mod health;
pub mod kick;
pub mod metrics;
pub mod notify;
pub mod token;
pub mod who;
pub mod xferlog;
