//! The Authenticator actor: password verification on its own small pool.
//!
//! Argon2 is deliberately slow and memory-hard (19 MiB and tens of milliseconds per check with
//! the default parameters). Sessions ask here by message; the pool has one thread per core, so
//! a login storm uses every idle core but never more threads, or more hashing memory, than
//! cores. Its threads run at a lower scheduling priority, so sessions that are already logged
//! in keep answering during a storm. It never touches a socket or the file system.

use super::{Argon2Memory, LoginRefused, User, UserDb};
use actix::prelude::*;
use std::net::IpAddr;
use std::sync::Arc;

/// How much lower than the session threads the hashing threads run (nice value).
const NICE: i32 = 10;

pub struct Authenticator {
    /// The users file in force (SIGHUP may replace it; each check takes the current one).
    users: Arc<crate::swap::Shared<UserDb>>,
    /// Argon2's work area, allocated once per thread and reused.
    memory: Argon2Memory,
}

impl Authenticator {
    /// Starts the pool: `threads` verifications at most run at once. Each thread allocates its
    /// Argon2 work area now (threads x 19 MiB with the default parameters, and nothing when no
    /// user has a hash), so the daemon's memory does not grow at the first logins.
    pub fn start_pool(
        users: Arc<crate::swap::Shared<UserDb>>,
        threads: usize,
    ) -> Addr<Authenticator> {
        let blocks = users.get().argon2_blocks();
        SyncArbiter::start(threads.max(1), move || Authenticator {
            users: users.clone(),
            memory: Argon2Memory::with_blocks(blocks),
        })
    }
}

impl Actor for Authenticator {
    type Context = SyncContext<Self>;

    fn started(&mut self, _: &mut SyncContext<Self>) {
        // Linux applies a "process" priority set on a thread id to that thread alone.
        let me = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(me), NICE) {
            log::debug!("authenticator thread keeps its priority: {e}");
        }
    }
}

/// Checks a login: the user if the name, password, account state and source network allow it.
/// Every kind of failure costs the same work (see `UserDb::authenticate`); the reason is for the
/// log only, never for the client.
#[derive(Message)]
#[rtype(result = "Result<Arc<User>, LoginRefused>")]
pub struct Authenticate {
    pub name: String,
    pub password: crate::auth::Password,
    pub source: Option<IpAddr>,
}

impl Handler<Authenticate> for Authenticator {
    type Result = Result<Arc<User>, LoginRefused>;

    fn handle(&mut self, msg: Authenticate, _: &mut SyncContext<Self>) -> Self::Result {
        self.users.get().authenticate_with(
            &msg.name,
            msg.password.expose(),
            msg.source,
            &mut self.memory,
        )
    }
}
