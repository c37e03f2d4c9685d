//! Bandwidth limits: a token bucket that the copy loop pays into after each socket call, and the
//! parsing of rates such as `500K` or `10M`. The copy loop runs on a blocking-pool thread, so a
//! transfer over its rate simply sleeps that thread until its debt is paid: no timer, no message,
//! no reactor wake-up per chunk, and a paced transfer costs one `Instant::now()` per call. Pure
//! except for that sleep; it never touches a socket.

use std::time::{Duration, Instant};

/// The longest one sleep lasts: the copy loop looks at its abort switch at least this often, so
/// ABOR, kick and shutdown stop a limited transfer as quickly as an unlimited one.
pub const MAX_SLEEP: Duration = Duration::from_millis(250);

/// Calls per second a limited transfer makes at its rate (each moves at most `rate / CALLS`):
/// progress moves several times a second, and a limited `sendfile`/`splice` is paced by smaller
/// calls instead of one burst and a long pause.
const CALLS_PER_SEC: u64 = 8;

/// The smallest chunk a limited transfer moves per call (very low rates would otherwise make
/// calls of a few bytes).
const MIN_CHUNK: usize = 4 * 1024;

/// Bytes per second; `None`: unlimited.
pub type Rate = Option<u64>;

/// The tighter of two limits (the daemon's and the user's).
pub fn tighter(a: Rate, b: Rate) -> Rate {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Parses a rate in bytes per second: `65536`, `500K`, `10M`, `1G` (K = 1024; a trailing `B`,
/// `/s` or `iB` is allowed). `0` means unlimited.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => t.split_at(at),
        None => (t, ""),
    };
    let scale: u64 = match unit.to_ascii_uppercase().as_str() {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => {
            return Err(format!(
                "bad rate {s:?}: expected e.g. 65536, 500K, 10M or 1G"
            ))
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("bad rate {s:?}: expected e.g. 65536, 500K, 10M or 1G"))?;
    let rate = n
        .checked_mul(scale)
        .ok_or_else(|| format!("rate {s:?} is too large"))?;
    Ok((rate > 0).then_some(rate))
}

/// One transfer's token bucket. Bytes are paid after they moved; when the bucket is in debt the
/// copy thread sleeps until it is not. Tokens never pile up beyond one chunk, so a transfer that
/// waited on its client cannot burst afterwards.
#[derive(Debug)]
pub struct TokenBucket {
    rate: u64,
    /// Tokens in bytes; negative: debt.
    tokens: f64,
    last: Instant,
    /// Time spent sleeping, so far (the server's own slowing, not the client's).
    pub slept: Duration,
}

impl TokenBucket {
    pub fn new(rate: u64) -> TokenBucket {
        TokenBucket {
            rate: rate.max(1),
            tokens: 0.0,
            last: Instant::now(),
            slept: Duration::ZERO,
        }
    }

    /// The most one socket call should move.
    pub fn chunk(&self) -> usize {
        usize::try_from(self.rate / CALLS_PER_SEC)
            .unwrap_or(usize::MAX)
            .max(MIN_CHUNK)
    }

    /// Pays for `n` bytes moved; returns how long to sleep before the next call (zero if none).
    pub fn pay(&mut self, n: usize, now: Instant) -> Duration {
        let rate = self.rate as f64;
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * rate;
        self.last = now;
        self.tokens = (self.tokens + earned).min(self.chunk() as f64) - n as f64;
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-self.tokens / rate)
    }

    /// Sleeps `owed` in slices of at most `MAX_SLEEP`, asking `stop` between them; `Err` with
    /// what `stop` returned.
    pub fn sleep<E>(
        &mut self,
        owed: Duration,
        mut stop: impl FnMut() -> Result<(), E>,
    ) -> Result<(), E> {
        let until = Instant::now() + owed;
        loop {
            stop()?;
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            let nap = (until - now).min(MAX_SLEEP);
            std::thread::sleep(nap);
            self.slept += nap;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_with_units() {
        let cases = [
            ("65536", Ok(Some(65536))),
            ("500K", Ok(Some(500 * 1024))),
            ("10M", Ok(Some(10 << 20))),
            ("10MB/s", Ok(Some(10 << 20))),
            ("2MiB", Ok(Some(2 << 20))),
            ("1g", Ok(Some(1 << 30))),
            ("0", Ok(None)),
        ];
        for (s, want) in cases {
            assert_eq!(parse_rate(s), want, "{s}");
        }
        for bad in ["", "K", "10X", "-5", "1.5M", "99999999999999999999G"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_tighter_limit_wins() {
        assert_eq!(tighter(Some(5), Some(3)), Some(3));
        assert_eq!(tighter(None, Some(3)), Some(3));
        assert_eq!(tighter(Some(5), None), Some(5));
        assert_eq!(tighter(None, None), None);
    }

    #[test]
    fn the_bucket_owes_time_in_proportion_to_bytes() {
        let start = Instant::now();
        let mut b = TokenBucket {
            rate: 1000,
            tokens: 0.0,
            last: start,
            slept: Duration::ZERO,
        };
        // 500 bytes at once at 1000 B/s: half a second of debt.
        assert_eq!(b.pay(500, start), Duration::from_millis(500));
        // Half a second later the debt is paid; 100 more bytes owe 0.1 s.
        let later = start + Duration::from_millis(500);
        let owed = b.pay(100, later);
        assert!((owed.as_secs_f64() - 0.1).abs() < 1e-6, "{owed:?}");
        // A long idle spell earns at most one chunk (no burst afterwards).
        let idle = later + Duration::from_secs(3600);
        assert_eq!(b.pay(0, idle), Duration::ZERO);
        assert!(b.tokens <= b.chunk() as f64);
        assert_eq!(
            b.chunk(),
            MIN_CHUNK,
            "1000 B/s calls move the minimum chunk"
        );
        assert_eq!(TokenBucket::new(8 << 20).chunk(), 1 << 20);
    }
}
