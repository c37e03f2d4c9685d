//! The passive port range and the daemon's own book of which of its ports are in use.
//!
//! Passive ports never come from the kernel's ephemeral range (`bind` to port 0): the kernel's
//! search there grows expensive as TIME_WAIT sockets pile up, and clients' and the daemon's
//! outgoing connections compete for the same ports. The default range is chosen at start next
//! to `net.ipv4.ip_local_port_range`, outside it (`default_range`). Within the range a port is
//! picked at random (SECURITY: a predictable passive port is easier to steal), from the ports
//! the daemon does not hold (`PortPool`), so a PASV costs one bind, not a scan of failed ones.

use std::ops::RangeInclusive;

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
