//! The minimum transfer rate: how many bytes a transfer must move over each window, raised for
//! transfers that hold a copy thread while those are scarce. Pure: the DataChannel's watchdog
//! asks it.

use std::time::Duration;

/// The least a transfer must move over a window, or it is ended with 426 (`0` bytes: off).
/// Bytes count when the socket takes or gives them, in either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    pub bytes_per_sec: u64,
    pub window: Duration,
    /// How many copy threads the daemon has (`--max-transfer-threads`): when fewer than a
    /// quarter of them are free, a transfer holding one must move `SCARCE_MIN_RATE`.
    pub threads: usize,
}

/// The rate a transfer holding a copy thread must keep while threads are scarce (fewer than a
/// quarter free). SECURITY: transfers just above `--min-rate` could otherwise hold every
/// thread at 256 B/s each, and every other upload and large download would get 425; under
/// contention, holding a thread costs each of them 16 times more.
pub const SCARCE_MIN_RATE: u64 = 4096;

impl MinRate {
    /// Bytes a window must see; `None` when the check is off.
    fn floor(&self) -> Option<u64> {
        Self::bytes_in(self.bytes_per_sec, self.window)
    }

    fn bytes_in(rate: u64, window: Duration) -> Option<u64> {
        if rate == 0 || window.is_zero() {
            return None;
        }
        let floor = u128::from(rate) * window.as_millis() / 1000;
        Some(u64::try_from(floor).unwrap_or(u64::MAX).max(1))
    }

    /// The floor for a transfer that holds a copy thread (`holds_thread`) while `free` of the
    /// daemon's threads are free: raised to `SCARCE_MIN_RATE` when fewer than a quarter are.
    pub fn floor_now(&self, holds_thread: bool, free: usize) -> Option<u64> {
        let floor = self.floor()?;
        if holds_thread && free.saturating_mul(4) < self.threads {
            let scarce = Self::bytes_in(SCARCE_MIN_RATE, self.window)?;
            return Some(floor.max(scarce));
        }
        Some(floor)
    }

    /// The floor for a transfer limited to `max_rate`: at most half of what the limit lets
    /// through in a window, so a transfer the server slows down itself is never ended as too
    /// slow (its client still has to take or give that half).
    pub fn within_limit(&self, floor: u64, max_rate: Option<u64>) -> u64 {
        match max_rate.and_then(|r| Self::bytes_in(r, self.window)) {
            Some(allowed) => floor.min((allowed / 2).max(1)),
            None => floor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimum_rate_rises_for_thread_holders_when_threads_are_scarce() {
        let min = MinRate {
            bytes_per_sec: 256,
            window: Duration::from_secs(30),
            threads: 256,
        };
        let (plain, scarce) = (256 * 30, SCARCE_MIN_RATE * 30);
        // (holds a thread, threads free) -> bytes the window must see
        let cases = [
            (true, 256, plain),
            (true, 64, plain),
            (true, 63, scarce),
            (true, 0, scarce),
            // Bytes sent from memory hold no thread: only the plain floor.
            (false, 0, plain),
        ];
        for (holds, free, want) in cases {
            assert_eq!(min.floor_now(holds, free), Some(want), "{holds} {free}");
        }
        let off = MinRate {
            bytes_per_sec: 0,
            ..min
        };
        assert_eq!(
            off.floor_now(true, 0),
            None,
            "--min-rate 0 turns it all off"
        );
    }

    #[test]
    fn a_limited_transfer_is_never_asked_for_more_than_half_its_limit() {
        let min = MinRate {
            bytes_per_sec: 4096,
            window: Duration::from_secs(10),
            threads: 4,
        };
        // Limited to 1000 B/s: 10 s allow 10,000 bytes; the floor drops to 5,000.
        assert_eq!(min.within_limit(40_960, Some(1000)), 5_000);
        // A generous limit leaves the floor alone; no limit too.
        assert_eq!(min.within_limit(40_960, Some(1 << 20)), 40_960);
        assert_eq!(min.within_limit(40_960, None), 40_960);
    }
}
