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

use crate::config::{Limits, LoginPolicy};
use actix::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Failed-login records kept before old, unbanned ones are pruned.
const MAX_TRACKED_SOURCES: usize = 10_000;

/// The key limits and bans are counted under: IPv4 addresses (and IPv4-mapped IPv6 ones) as
/// they are; IPv6 addresses cut to their first `v6_prefix` bits.
pub fn source_key(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u32::from(v6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

#[derive(Default)]
struct Failures {
    recent: VecDeque<Instant>,
    banned_until: Option<Instant>,
    /// Password checks begun and not yet ended.
    in_flight: u32,
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
        let count = self.per_source.entry(key).or_default();
        if *count >= self.limits.max_sessions_per_ip {
            if *count == 0 {
                self.per_source.remove(&key);
            }
            return Err("Too many connections from your address");
        }
        *count += 1;
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
    type Result = Result<(), Refusal>;

    /// SECURITY: a banned source gets no password checked, on any connection, including
    /// those opened before the ban. Checks under way count against the ban threshold too, so
    /// many connections guessing at once cannot get more than `ban_failures` wrong passwords
    /// checked before the ban.
    fn handle(&mut self, msg: BeginLogin, _: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        self.prune(now);
        let key = self.key(msg.ip);
        let window = self.policy.ban_window;
        let limit = self.policy.ban_failures as usize;
        let f = self.failures.entry(key).or_default();
        if f.banned(now) {
            return Err(BANNED);
        }
        f.forget_before(window, now);
        if f.recent.len() + f.in_flight as usize >= limit {
            return Err("Too many login attempts from your address, try again later");
        }
        f.in_flight += 1;
        Ok(())
    }
}

impl Handler<LoginEnded> for Gatekeeper {
    type Result = ();

    fn handle(&mut self, msg: LoginEnded, _: &mut Context<Self>) {
        let now = Instant::now();
        let key = self.key(msg.ip);
        let policy = &self.policy;
        let f = self.failures.entry(key).or_default();
        f.in_flight = f.in_flight.saturating_sub(1);
        if !msg.failed {
            return;
        }
        f.recent.push_back(now);
        f.forget_before(policy.ban_window, now);
        // SECURITY: a source that keeps guessing is shut out for a while, whatever connection
        // and port it uses.
        if f.recent.len() >= policy.ban_failures as usize && !f.banned(now) {
            log::warn!(
                "banning {key} for {:?} after {} failed logins",
                policy.ban_time,
                f.recent.len()
            );
            f.banned_until = Some(now + policy.ban_time);
            f.recent.clear();
            let banned = SourceBanned {
                source: key,
                v6_prefix: self.limits.ipv6_prefix,
            };
            for w in &self.watchers {
                w.do_send(banned);
            }
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
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn source_keys() {
        let cases = [
            ("192.0.2.7", 64, "192.0.2.7"),
            ("::ffff:192.0.2.7", 64, "192.0.2.7"),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 64, "2001:db8:1:2::"),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 48, "2001:db8:1::"),
            (
                "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
                128,
                "2001:db8:1:2:aaaa:bbbb:cccc:dddd",
            ),
            ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 0, "::"),
            ("2001:db8::1", 200, "2001:db8::1"),
            ("::1", 64, "::"),
        ];
        for (addr, prefix, want) in cases {
            assert_eq!(source_key(ip(addr), prefix), ip(want), "{addr}/{prefix}");
        }
    }

    #[test]
    fn a_ban_covers_the_whole_prefix() {
        let b = SourceBanned {
            source: source_key(ip("2001:db8:1:2::5"), 64),
            v6_prefix: 64,
        };
        assert!(b.covers(ip("2001:db8:1:2:ffff::1")));
        assert!(!b.covers(ip("2001:db8:1:3::1")));
        assert!(!b.covers(ip("192.0.2.1")));
    }

    fn keeper(max_sessions: usize, per_ip: usize, ban_failures: u32) -> Addr<Gatekeeper> {
        let limits = Limits {
            max_sessions,
            max_sessions_per_ip: per_ip,
            ..Limits::default()
        };
        let policy = LoginPolicy {
            ban_failures,
            ..LoginPolicy::default()
        };
        Gatekeeper::new(limits, policy).start()
    }

    #[actix::test]
    async fn one_slash_64_shares_one_per_source_limit() {
        let g = keeper(100, 2, 10);
        let a = ip("2001:db8::1");
        let b = ip("2001:db8::ffff:2");
        assert_eq!(g.send(Admit { ip: a }).await, Ok(Ok(())));
        assert_eq!(g.send(Admit { ip: b }).await, Ok(Ok(())));
        let third = g
            .send(Admit {
                ip: ip("2001:db8::3"),
            })
            .await
            .expect("alive");
        assert!(third.is_err(), "a third address of the same /64 got in");
        assert_eq!(
            g.send(Admit {
                ip: ip("2001:db9::1")
            })
            .await,
            Ok(Ok(()))
        );
        g.send(Release { ip: a }).await.expect("alive");
        assert_eq!(
            g.send(Admit {
                ip: ip("2001:db8::4")
            })
            .await,
            Ok(Ok(()))
        );
    }

    #[actix::test]
    async fn concurrent_guesses_never_exceed_the_ban_threshold() {
        let g = keeper(100, 100, 3);
        let src = ip("192.0.2.9");
        // Five connections ask at once: only three checks may run before their outcome is known.
        let mut allowed = 0;
        for _ in 0..5 {
            if g.send(BeginLogin { ip: src }).await.expect("alive").is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 3);
        for _ in 0..3 {
            g.send(LoginEnded {
                ip: src,
                failed: true,
            })
            .await
            .expect("alive");
        }
        let after = g.send(BeginLogin { ip: src }).await.expect("alive");
        assert_eq!(after, Err(BANNED));
        assert_eq!(g.send(Admit { ip: src }).await, Ok(Err(BANNED)));
    }

    #[actix::test]
    async fn a_successful_login_frees_its_place() {
        let g = keeper(100, 100, 1);
        let src = ip("192.0.2.10");
        assert_eq!(g.send(BeginLogin { ip: src }).await, Ok(Ok(())));
        assert!(g
            .send(BeginLogin { ip: src })
            .await
            .expect("alive")
            .is_err());
        g.send(LoginEnded {
            ip: src,
            failed: false,
        })
        .await
        .expect("alive");
        assert_eq!(g.send(BeginLogin { ip: src }).await, Ok(Ok(())));
    }
}
