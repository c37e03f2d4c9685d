//! The Gatekeeper actor: one per daemon, the one table of who may connect and who may try a
//! password.
//!
//! Every Listener (the control port and the implicit-TLS port) asks it before a Session exists
//! (`Admit`) and tells it when one ends (`Release`); every Session asks it before a password is
//! checked (`BeginLogin`) and reports the outcome (`LoginEnded`). So the session limits, the
//! failure counts and the bans hold for the whole daemon, whichever port a client uses. Sources
//! are counted by `source_key`: an IPv4 address, or the IPv6 prefix (`/64` by default) that one
//! subscriber gets, so a client cannot walk around a ban or a limit by changing the low bits of
//! its address. When a source is banned, the Listeners are told (`SourceBanned`), and they close
//! its sessions that have not logged in. It never touches a socket.
//!
//! Passive ports are counted by source the same way, but in `ports::PassiveBook`, which every
//! Session asks directly (a lock held for a few instructions) rather than by message: a PASV
//! waits for no other thread.

pub mod ports;

pub use ports::{PassiveBook, PassiveLease};

use crate::config::{Limits, LoginPolicy};
use actix::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Failed-login records kept before old, unbanned ones are pruned.
const MAX_TRACKED_SOURCES: usize = 10_000;

/// How many ports of a passive range of `ports` one source may hold at once.
pub fn passive_share(ports: usize) -> usize {
    (ports / 8).max(1)
}

/// The key limits and bans are counted under: IPv4 addresses (and IPv4-mapped IPv6 ones) as
/// they are; IPv6 addresses cut to their first `v6_prefix` bits.
pub fn source_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match crate::data_channel::canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let bits = u32::from(v6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}

#[derive(Default)]
struct Failures {
    recent: VecDeque<Instant>,
    banned_until: Option<Instant>,
    /// Password checks begun and not yet ended.
    in_flight: u32,
    /// Checks asked for while `in_flight` would reach the ban threshold: each waits until a
    /// check under way ends, then goes on, or is refused if that one earned the ban.
    waiting: VecDeque<oneshot::Sender<Result<(), Refusal>>>,
}

impl Failures {
    fn banned(&self, now: Instant) -> bool {
        self.banned_until.is_some_and(|until| until > now)
    }

    fn forget_before(&mut self, window: Duration, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.recent.pop_front();
        }
    }
}

pub struct Gatekeeper {
    limits: Limits,
    policy: LoginPolicy,
    open: usize,
    per_source: HashMap<IpAddr, usize>,
    failures: HashMap<IpAddr, Failures>,
    /// Told of every new ban (the Listeners, which close the source's sessions).
    watchers: Vec<Recipient<SourceBanned>>,
}

impl Gatekeeper {
    pub fn new(limits: Limits, policy: LoginPolicy) -> Gatekeeper {
        Gatekeeper {
            limits,
            policy,
            open: 0,
            per_source: HashMap::new(),
            failures: HashMap::new(),
            watchers: Vec::new(),
        }
    }

    fn key(&self, ip: IpAddr) -> IpAddr {
        source_key(ip, self.limits.ipv6_prefix)
    }

    fn prune(&mut self, now: Instant) {
        if self.failures.len() < MAX_TRACKED_SOURCES {
            return;
        }
        let window = self.policy.ban_window;
        self.failures.retain(|_, f| {
            f.banned(now)
                || f.in_flight > 0
                || !f.waiting.is_empty()
                || f.recent
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < window)
        });
    }
}

impl Actor for Gatekeeper {
    type Context = Context<Self>;
}

/// Why a connection or a login is turned away (the text of its 421).
pub type Refusal = &'static str;

const BANNED: Refusal = "Too many failed logins from your address, try again later";

/// May a connection from `ip` have a Session? On `Ok` it is counted until `Release`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct Admit {
    pub ip: IpAddr,
}

/// A fact: a Session admitted for `ip` has ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Release {
    pub ip: IpAddr,
}

/// May a session from `ip` have a password checked now? On `Ok` it must send `LoginEnded`.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), Refusal>")]
pub struct BeginLogin {
    pub ip: IpAddr,
}

/// A fact: the password check `BeginLogin` allowed has ended, and whether it failed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LoginEnded {
    pub ip: IpAddr,
    pub failed: bool,
}

/// Tell this recipient of every new ban.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchBans(pub Recipient<SourceBanned>);

/// A fact: every address under `source` (see `source_key`) is banned; sessions from it that
/// have not logged in are closed with 421.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct SourceBanned {
    pub source: IpAddr,
    pub v6_prefix: u8,
}

impl SourceBanned {
    /// Whether `ip` is one of the banned addresses.
    pub fn covers(&self, ip: IpAddr) -> bool {
        source_key(ip, self.v6_prefix) == self.source
    }
}

impl Handler<Admit> for Gatekeeper {
    type Result = Result<(), Refusal>;

    /// SECURITY: the limits every new connection passes, on every port, before a Session exists.
    fn handle(&mut self, msg: Admit, _: &mut Context<Self>) -> Self::Result {
        let key = self.key(msg.ip);
        if self
            .failures
            .get(&key)
            .is_some_and(|f| f.banned(Instant::now()))
        {
            return Err(BANNED);
        }
        if self.open >= self.limits.max_sessions {
            return Err("Too many users, try again later");
        }
        if self.per_source.get(&key).copied().unwrap_or(0) >= self.limits.max_sessions_per_ip {
            return Err("Too many connections from your address");
        }
        *self.per_source.entry(key).or_default() += 1;
        self.open += 1;
        Ok(())
    }
}

impl Handler<Release> for Gatekeeper {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        let key = self.key(msg.ip);
        self.open = self.open.saturating_sub(1);
        if let Some(n) = self.per_source.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&key);
            }
        }
    }
}

impl Handler<BeginLogin> for Gatekeeper {
    type Result = ResponseFuture<Result<(), Refusal>>;

    /// SECURITY: a banned source gets no password checked, on any connection, including
    /// those opened before the ban. Checks under way count against the ban threshold, so many
    /// connections guessing at once cannot get more than `ban_failures` wrong passwords
    /// checked: a check that would pass the threshold waits until one under way has ended
    /// (right passwords, such as many clients behind one NAT logging in at once, only wait
    /// for each other).
    fn handle(&mut self, msg: BeginLogin, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        self.prune(now);
        let key = self.key(msg.ip);
        let window = self.policy.ban_window;
        let limit = self.policy.ban_failures as usize;
        let f = self.failures.entry(key).or_default();
        if f.banned(now) {
            return Box::pin(async { Err(BANNED) });
        }
        f.forget_before(window, now);
        if f.recent.len() + (f.in_flight as usize) < limit {
            f.in_flight += 1;
            return Box::pin(async { Ok(()) });
        }
        let (tx, rx) = oneshot::channel();
        f.waiting.push_back(tx);
        Box::pin(async move { rx.await.unwrap_or(Err("Service not available")) })
    }
}

impl Handler<LoginEnded> for Gatekeeper {
    type Result = ();

    fn handle(&mut self, msg: LoginEnded, _: &mut Context<Self>) {
        let now = Instant::now();
        let key = self.key(msg.ip);
        let policy = &self.policy;
        let limit = policy.ban_failures as usize;
        let f = self.failures.entry(key).or_default();
        f.in_flight = f.in_flight.saturating_sub(1);
        if msg.failed {
            f.recent.push_back(now);
        }
        f.forget_before(policy.ban_window, now);
        // SECURITY: a source that keeps guessing is shut out for a while, whatever connection
        // and port it uses.
        if f.recent.len() >= limit && !f.banned(now) {
            log::warn!(
                "banning {key} for {:?} after {} failed logins",
                policy.ban_time,
                f.recent.len()
            );
            f.banned_until = Some(now + policy.ban_time);
            f.recent.clear();
            for waiter in f.waiting.drain(..) {
                let _ = waiter.send(Err(BANNED));
            }
            let banned = SourceBanned {
                source: key,
                v6_prefix: self.limits.ipv6_prefix,
            };
            for w in &self.watchers {
                w.do_send(banned);
            }
            return;
        }
        // Room for more checks: the longest waiting go on, in order. A waiter whose session
        // has gone takes no room.
        while f.recent.len() + (f.in_flight as usize) < limit {
            let Some(waiter) = f.waiting.pop_front() else {
                break;
            };
            if waiter.send(Ok(())).is_ok() {
                f.in_flight += 1;
            }
        }
    }
}

/// A password check the Gatekeeper allowed: `end` reports its outcome. Dropped without
/// `end` (the session went away during the check), it counts as a failure, so hanging up
/// mid-check neither saves a guess nor leaves the check counted as under way for ever.
pub struct LoginAttempt {
    gatekeeper: Option<Addr<Gatekeeper>>,
    ip: IpAddr,
}

impl LoginAttempt {
    /// The attempt `BeginLogin` granted.
    pub fn new(gatekeeper: Addr<Gatekeeper>, ip: IpAddr) -> LoginAttempt {
        LoginAttempt {
            gatekeeper: Some(gatekeeper),
            ip,
        }
    }

    pub fn end(mut self, failed: bool) {
        if let Some(g) = self.gatekeeper.take() {
            g.do_send(LoginEnded {
                ip: self.ip,
                failed,
            });
        }
    }
}

impl Drop for LoginAttempt {
    fn drop(&mut self) {
        if let Some(g) = self.gatekeeper.take() {
            g.do_send(LoginEnded {
                ip: self.ip,
                failed: true,
            });
        }
    }
}

impl Handler<WatchBans> for Gatekeeper {
    type Result = ();

    fn handle(&mut self, msg: WatchBans, _: &mut Context<Self>) {
        self.watchers.push(msg.0);
    }
}

#[cfg(test)]
mod tests;
