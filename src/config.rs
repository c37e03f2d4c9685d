//! Validated, typed configuration with documented defaults and limits.
//!
//! `cli.rs` turns arguments into a `Config`; nothing else reads arguments or the
//! environment. Every limit is a named value here, so the README and SPEC can point at it.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

/// Default control address: loopback, a port above 1024 so no privileges are needed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2121";

/// Timeouts. Each ends with the reply its RFC role calls for (421 control, 425/426 data).
#[derive(Debug, Clone)]
pub struct Timeouts {
    /// A logged-in session with no command and no transfer for this long is closed with 421.
    pub idle: Duration,
    /// A connection that has not logged in within this long is closed with 421.
    pub login: Duration,
    /// A passive port nobody connects to is closed after this long (the data command gets 425).
    pub data_connect: Duration,
    /// A transfer with no bytes moving for this long is ended with 426.
    pub data_stall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle: Duration::from_secs(300),
            login: Duration::from_secs(60),
            data_connect: Duration::from_secs(30),
            data_stall: Duration::from_secs(120),
        }
    }
}

/// Caps on what one client can make the daemon hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest control line (bytes, without the line ending).
    pub max_line: usize,
    /// Over-long lines tolerated before the connection is closed.
    pub max_bad_lines: u32,
    /// Copy buffer for one transfer (large files; small files get a small buffer).
    pub transfer_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: crate::protocol::MAX_LINE_LEN,
            max_bad_lines: 3,
            transfer_buffer: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Passive data ports; `None` lets the kernel choose an ephemeral port.
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// Worker arbiters (threads) that run sessions; default one per core.
    pub workers: usize,
    /// Threads in the FileStore pool.
    pub store_threads: usize,
    pub timeouts: Timeouts,
    pub limits: Limits,
    /// Greeting text after `220 `.
    pub banner: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 2121))),
            passive_ports: None,
            workers: default_workers(),
            store_threads: 4,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
            banner: "actorftpd ready".to_owned(),
        }
    }
}

pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Parses `LOW-HIGH` (inclusive), both ports above 1023.
pub fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    let (lo, hi) = s
        .split_once('-')
        .ok_or_else(|| format!("expected LOW-HIGH, got {s:?}"))?;
    let lo: u16 = lo.trim().parse().map_err(|_| format!("bad port {lo:?}"))?;
    let hi: u16 = hi.trim().parse().map_err(|_| format!("bad port {hi:?}"))?;
    if lo < 1024 || hi < lo {
        return Err(format!(
            "passive port range {lo}-{hi} must be ascending and above 1023"
        ));
    }
    Ok(lo..=hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("30100-30199"), Ok(30100..=30199));
        assert_eq!(parse_port_range("40000-40000"), Ok(40000..=40000));
        assert!(parse_port_range("30199-30100").is_err());
        assert!(parse_port_range("21-30").is_err());
        assert!(parse_port_range("x").is_err());
        assert!(parse_port_range("1-99999").is_err());
    }
}
