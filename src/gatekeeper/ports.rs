//! The passive port range and the daemon's own book of which of its ports are in use.
//!
//! Passive ports never come from the kernel's ephemeral range (`bind` to port 0): the kernel's
//! search there grows expensive as TIME_WAIT sockets pile up, and clients' and the daemon's
//! outgoing connections compete for the same ports. The default range is chosen at start next
//! to `net.ipv4.ip_local_port_range`, outside it (`default_range`). Within the range a port is
//! picked at random (SECURITY: a predictable passive port is easier to steal), from the ports
//! the daemon does not hold (`PortPool`), so a PASV costs one bind, not a scan of failed ones.
//! The `PassiveBook` holds that pool and what each source holds, for every Session at once.

use super::{passive_share, source_key, Refusal};
use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where the kernel's ephemeral range is read from.
const EPHEMERAL_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";

/// Linux's default ephemeral range, assumed when `EPHEMERAL_FILE` cannot be read.
pub const LINUX_EPHEMERAL: RangeInclusive<u16> = 32768..=60999;

/// The default range is at most this many ports, the ones nearest the ephemeral range (away from
/// the well-known services of the low ports).
pub const DEFAULT_SPAN: u32 = 8192;

/// A gap above the ephemeral range with at least this many ports is preferred to one below.
const PREFERRED_ABOVE: u32 = 1024;

/// The default when the ephemeral range leaves no gap of two ports (it overlaps: warned).
pub const FALLBACK: RangeInclusive<u16> = 61000..=65535;

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`), or Linux's default when it
/// cannot be read.
pub fn ephemeral_range() -> RangeInclusive<u16> {
    std::fs::read_to_string(EPHEMERAL_FILE)
        .ok()
        .and_then(|s| parse_ephemeral(&s))
        .unwrap_or(LINUX_EPHEMERAL)
}

/// Parses the two numbers of `ip_local_port_range` ("32768\t60999\n").
pub fn parse_ephemeral(s: &str) -> Option<RangeInclusive<u16>> {
    let mut it = s.split_whitespace().map(|n| n.parse::<u16>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    (lo <= hi).then_some(lo..=hi)
}

/// The default passive range for an `ephemeral` range: the gap above it (when it has at least
/// 1024 ports) or else the larger gap below it, within 1024-65535, at most `DEFAULT_SPAN` ports
/// and those nearest the ephemeral range. Linux's default (32768-60999) gives 61000-65535.
pub fn default_range(ephemeral: &RangeInclusive<u16>) -> RangeInclusive<u16> {
    let (e_lo, e_hi) = (u32::from(*ephemeral.start()), u32::from(*ephemeral.end()));
    let above = (e_hi + 1, 65535);
    let below = (1024, e_lo.saturating_sub(1));
    let size = |(lo, hi): (u32, u32)| if hi >= lo { hi - lo + 1 } else { 0 };
    let (lo, hi) = if size(above) >= PREFERRED_ABOVE || size(above) >= size(below) {
        (above.0, above.1.min(above.0 + DEFAULT_SPAN - 1))
    } else {
        (
            below.1.saturating_sub(DEFAULT_SPAN - 1).max(below.0),
            below.1,
        )
    };
    match (u16::try_from(lo), u16::try_from(hi)) {
        (Ok(lo), Ok(hi)) if size((u32::from(lo), u32::from(hi))) >= 2 => lo..=hi,
        _ => FALLBACK,
    }
}

/// Whether two port ranges share a port.
pub fn overlaps(a: &RangeInclusive<u16>, b: &RangeInclusive<u16>) -> bool {
    a.start() <= b.end() && b.start() <= a.end()
}

/// The ports of the passive range the daemon does not hold, for picking one at random in O(1).
pub struct PortPool {
    lo: u16,
    /// The ports not held, in no order.
    free: Vec<u16>,
    /// For each port of the range (by offset from `lo`), its index in `free`, or `HELD`.
    slot: Vec<u32>,
}

const HELD: u32 = u32::MAX;

impl PortPool {
    pub fn new(range: RangeInclusive<u16>) -> PortPool {
        let free: Vec<u16> = range.clone().collect();
        PortPool {
            lo: *range.start(),
            slot: (0..free.len() as u32).collect(),
            free,
        }
    }

    /// The number of ports in the range.
    pub fn len(&self) -> usize {
        self.slot.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slot.is_empty()
    }

    /// Ports not held.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// Takes a port not held, chosen uniformly at random with `random`; `None` when all are held.
    pub fn take(&mut self, random: u32) -> Option<u16> {
        if self.free.is_empty() {
            return None;
        }
        let i = random as usize % self.free.len();
        let port = self.free.swap_remove(i);
        if let Some(&moved) = self.free.get(i) {
            self.slot[usize::from(moved - self.lo)] = i as u32;
        }
        self.slot[usize::from(port - self.lo)] = HELD;
        Some(port)
    }

    /// Gives a port back; a port outside the range or not held is ignored.
    pub fn give_back(&mut self, port: u16) {
        let Some(offset) = port.checked_sub(self.lo).map(usize::from) else {
            return;
        };
        match self.slot.get_mut(offset) {
            Some(s) if *s == HELD => {
                *s = self.free.len() as u32;
                self.free.push(port);
            }
            _ => {}
        }
    }
}

/// The refusal when every port of the passive range is held.
pub const NO_FREE_PORT: Refusal = "Cannot open a passive port: all are in use";

/// The refusal when the source holds its share of the passive range.
pub const SHARE_USED: Refusal = "Too many passive ports held from your address";

/// The daemon's book of its passive range: which ports are free, and how many each source (see
/// `source_key`) holds. One per daemon, shared by every Session; each call holds its lock for a
/// few instructions.
pub struct PassiveBook {
    v6_prefix: u8,
    /// How many ports one source may hold: an eighth of the range (`passive_share`).
    share: usize,
    book: Mutex<Book>,
}

struct Book {
    free: PortPool,
    held: HashMap<IpAddr, usize>,
}

impl PassiveBook {
    pub fn new(range: RangeInclusive<u16>, v6_prefix: u8) -> Arc<PassiveBook> {
        let free = PortPool::new(range);
        Arc::new(PassiveBook {
            v6_prefix,
            share: passive_share(free.len()),
            book: Mutex::new(Book {
                free,
                held: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        // A panic while the lock was held left counts, not broken invariants: go on with them.
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A free port of the range, picked at random, held for `ip` until the lease is dropped.
    ///
    /// SECURITY: one source (all its sessions, on every port) holds at most its share of the
    /// range, so it cannot leave other clients without a data port; and the port is random
    /// among the free ones, so the next one cannot be guessed from the last.
    pub fn hold(self: &Arc<Self>, ip: IpAddr) -> Result<PassiveLease, Refusal> {
        let key = source_key(ip, self.v6_prefix);
        let random = random_u32().map_err(|e| {
            log::error!("no random number for a passive port: {e}");
            NO_FREE_PORT
        })?;
        let mut book = self.lock();
        let held = book.held.get(&key).copied().unwrap_or(0);
        if held >= self.share {
            return Err(SHARE_USED);
        }
        let port = book.free.take(random).ok_or(NO_FREE_PORT)?;
        book.held.insert(key, held + 1);
        Ok(PassiveLease {
            book: self.clone(),
            key,
            port,
        })
    }

    fn release(&self, key: IpAddr, port: u16) {
        let mut book = self.lock();
        book.free.give_back(port);
        if let Some(n) = book.held.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                book.held.remove(&key);
            }
        }
    }
}

/// A passive port held in the `PassiveBook`, counted against its source; dropping it gives it
/// back.
pub struct PassiveLease {
    book: Arc<PassiveBook>,
    key: IpAddr,
    port: u16,
}

impl PassiveLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl std::fmt::Debug for PassiveLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PassiveLease({}, port {})", self.key, self.port)
    }
}

impl Drop for PassiveLease {
    fn drop(&mut self) {
        self.book.release(self.key, self.port);
    }
}

/// A random number from the OS's generator, fetched 64 at a time per thread: passive ports
/// stay unpredictable, and PASV costs a `getrandom` call once in 64 times, not every time.
pub fn random_u32() -> std::io::Result<u32> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_lies_outside_the_ephemeral_range() {
        let cases = [
            (32768..=60999, 61000..=65535),
            (1024..=65000, 65001..=65535),
            (49152..=65535, 40960..=49151),
            (1024..=32767, 32768..=40959),
            (32768..=65534, 24576..=32767),
            (1024..=65535, FALLBACK),
            (1025..=65535, FALLBACK),
        ];
        for (eph, want) in cases {
            let got = default_range(&eph);
            assert_eq!(got, want, "ephemeral {eph:?}");
            if want != FALLBACK {
                assert!(!overlaps(&got, &eph), "{got:?} overlaps {eph:?}");
                assert!(*got.start() >= 1024);
            }
        }
    }

    #[test]
    fn the_ephemeral_file_parses() {
        assert_eq!(parse_ephemeral("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_ephemeral("1024 65535"), Some(1024..=65535));
        assert_eq!(parse_ephemeral("60999 32768"), None);
        assert_eq!(parse_ephemeral("x"), None);
        assert_eq!(parse_ephemeral(""), None);
    }

    #[test]
    fn the_pool_hands_out_each_port_once_and_takes_it_back() {
        let mut pool = PortPool::new(40000..=40009);
        let mut seen: Vec<u16> = (0..10u32)
            .map(|i| pool.take(i.wrapping_mul(2_654_435_761)).expect("free port"))
            .collect();
        assert_eq!(pool.take(7), None, "every port is held");
        seen.sort_unstable();
        assert_eq!(seen, (40000..=40009).collect::<Vec<_>>());
        pool.give_back(40004);
        pool.give_back(40004);
        pool.give_back(39999);
        pool.give_back(50000);
        assert_eq!(pool.available(), 1, "double and foreign give-backs ignored");
        assert_eq!(pool.take(12345), Some(40004));
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn one_source_holds_at_most_an_eighth_of_the_passive_range() {
        let book = PassiveBook::new(40000..=40015, 64);
        let a = ip("192.0.2.1");
        let mut leases: Vec<_> = (0..2).map(|_| book.hold(a).expect("share")).collect();
        assert_eq!(book.hold(a).map(|l| l.port()), Err(SHARE_USED));
        // The same /64 is the same source.
        let v6 = ip("2001:db8::1");
        let _v6: Vec<_> = (0..2).map(|_| book.hold(v6).expect("share")).collect();
        let other_v6 = book.hold(ip("2001:db8::ffff:2")).map(|l| l.port());
        assert_eq!(other_v6, Err(SHARE_USED));
        let other = book.hold(ip("192.0.2.2")).expect("another source");
        assert!((40000..=40015).contains(&other.port()));
        // A dropped lease is a port given back.
        leases.pop();
        assert!(book.hold(a).is_ok());
    }

    #[test]
    fn every_port_is_handed_out_once_until_given_back() {
        let book = PassiveBook::new(40000..=40015, 64);
        // Sixteen sources, one port each: every port once, then none.
        let mut leases: Vec<PassiveLease> = (1..=16u8)
            .map(|last| book.hold(IpAddr::from([192, 0, 2, last])).expect("free"))
            .collect();
        let mut ports: Vec<u16> = leases.iter().map(PassiveLease::port).collect();
        ports.sort_unstable();
        assert_eq!(ports, (40000..=40015).collect::<Vec<_>>());
        let late = ip("198.51.100.1");
        assert_eq!(book.hold(late).map(|l| l.port()), Err(NO_FREE_PORT));
        // The port given back is the one handed out next.
        let back = leases.swap_remove(5);
        let port = back.port();
        drop(back);
        assert_eq!(book.hold(late).map(|l| l.port()), Ok(port));
    }

    #[test]
    fn ports_are_spread_over_the_whole_range() {
        let mut pool = PortPool::new(50000..=50099);
        let mut hits = [0u32; 100];
        for _ in 0..20_000 {
            let port = pool.take(random_u32().expect("random")).expect("port");
            hits[usize::from(port - 50000)] += 1;
            pool.give_back(port);
        }
        // 200 expected per port; a uniform pick stays well within these bounds.
        assert!(hits.iter().all(|&h| (100..=320).contains(&h)), "{hits:?}");
    }
}
