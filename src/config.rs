//! Validated, typed configuration with documented defaults and limits.
//!
//! `cli.rs` turns arguments into a `Config`; nothing else reads arguments or the
//! environment. Every limit is a named value here, so the README and SPEC can point at it.

use std::net::{IpAddr, SocketAddr};
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
    /// A transfer that moves fewer than this many bytes per second over a whole
    /// `data_min_rate_window` is ended with 426 (0: no minimum). Catches the trickle that keeps
    /// just ahead of `data_stall`.
    pub data_min_rate: u64,
    pub data_min_rate_window: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            idle: Duration::from_secs(300),
            login: Duration::from_secs(60),
            data_connect: Duration::from_secs(30),
            data_stall: Duration::from_secs(120),
            data_min_rate: DEFAULT_MIN_RATE,
            data_min_rate_window: Duration::from_secs(30),
        }
    }
}

/// Default minimum transfer rate, bytes per second over a 30 s window (7.5 KiB per window).
/// A 56k modem moves about 5 KB/s, a GPRS link 2.5-5 KB/s; even ten transfers sharing one such
/// link (about 500 B/s each) stay above it, with room for TCP's retransmission backoff within a
/// window. A trickle of one byte every few seconds is thousands of times below it. Apache's
/// mod_reqtimeout uses a similar floor (500 B/s) for request bodies.
pub const DEFAULT_MIN_RATE: u64 = 256;

/// Default number of transfers that may copy on blocking-pool threads at once (`--max-transfer-
/// threads`). Below tokio's 512-thread pool of each worker, so a transfer never waits in that
/// pool's queue, where no deadline reaches it; at most one copy buffer (1 MiB) each.
pub const DEFAULT_TRANSFER_THREADS: usize = 256;

/// Caps on what clients can make the daemon hold.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest control line (bytes, without the line ending).
    pub max_line: usize,
    /// Over-long lines tolerated before the connection is closed.
    pub max_bad_lines: u32,
    /// Copy buffer for one transfer (large files; small files get a small buffer).
    pub transfer_buffer: usize,
    /// Sessions open at once; the next connection gets 421 and is closed.
    pub max_sessions: usize,
    /// Sessions open at once from one source (an IPv4 address or an IPv6 prefix).
    pub max_sessions_per_ip: usize,
    /// IPv6 sources are counted (limits, bans) by this many leading bits: one subscriber
    /// usually has a whole /64, and could otherwise walk around a ban address by address.
    pub ipv6_prefix: u8,
    /// Transfers copying on blocking-pool threads at once; the next waits for one to end (up to
    /// the data-connection timeout, then 425). Transfers of bytes in memory need none.
    pub transfer_threads: usize,
    /// Bandwidth limit of each download (RETR and listings sent from a file), bytes per second;
    /// a user's own `max_download_rate` is applied when tighter.
    pub max_download_rate: crate::data_channel::Rate,
    /// Bandwidth limit of each upload (STOR, APPE, STOU), bytes per second.
    pub max_upload_rate: crate::data_channel::Rate,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: crate::protocol::MAX_LINE_LEN,
            max_bad_lines: 3,
            transfer_buffer: 1024 * 1024,
            max_sessions: 2000,
            max_sessions_per_ip: 50,
            ipv6_prefix: 64,
            transfer_threads: DEFAULT_TRANSFER_THREADS,
            max_download_rate: None,
            max_upload_rate: None,
        }
    }
}

/// What failed logins cost the client.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// Wait before answering a failed PASS (only that session waits).
    pub failure_delay: Duration,
    /// Failed logins on one connection before it is closed with 421.
    pub max_failures: u32,
    /// Failed logins from one IP within `ban_window` that ban it for `ban_time`.
    pub ban_failures: u32,
    pub ban_window: Duration,
    pub ban_time: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            failure_delay: Duration::from_secs(1),
            max_failures: 3,
            ban_failures: 10,
            ban_window: Duration::from_secs(60),
            ban_time: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Passive data ports; `None`: `gatekeeper::ports::default_range`, outside the kernel's
    /// ephemeral range (`config_file::resolve` fills it in).
    pub passive_ports: Option<RangeInclusive<u16>>,
    /// Worker arbiters (threads) that run sessions; default one per core.
    pub workers: usize,
    /// Threads in the FileStore pool.
    pub store_threads: usize,
    pub timeouts: Timeouts,
    pub limits: Limits,
    pub login: LoginPolicy,
    /// Accept passive data connections from any address (FXP). Off: only from the control peer.
    pub allow_fxp: bool,
    /// LIST and NLST show names starting with `.` without `-a` (off: hidden, as vsftpd and
    /// Pure-FTPd do; MLSD always shows them).
    pub show_dotfiles: bool,
    /// Address advertised in PASV replies to peers outside loopback and private networks (NAT).
    pub passive_address: Option<IpAddr>,
    /// On SIGTERM/SIGINT, how long running transfers may go on before they are aborted.
    pub shutdown_grace: Duration,
    /// Multipart uploads to object storage unfinished for this long are aborted.
    pub stale_upload_age: Duration,
    /// FTPS: present when a certificate and key were given.
    pub tls: Option<crate::tls::TlsPolicy>,
    /// Implicit TLS (TLS from the first byte), conventionally port 990.
    pub implicit_tls_listen: Option<SocketAddr>,
    /// Transfer log in xferlog(5) format.
    pub xferlog: Option<std::path::PathBuf>,
    /// Count metrics even without a metrics endpoint (the admin endpoint serves them).
    pub metrics_enabled: bool,
    /// Greeting text after `220 ` (one line; `--banner FILE` may give several, sanitised).
    pub banner: String,
    /// Upload hooks: a command and/or a URL told of every completed upload.
    pub upload_hook: crate::hooks::HookConfig,
    /// The secret the admin endpoint requires (`Authorization: Bearer`), from `--admin-token-file`.
    pub admin_token: Option<crate::observability::token::AdminToken>,
    /// `--proxy-protocol`: connections from these proxies start with a PROXY header naming
    /// the client (control connections, and passive data connections).
    pub proxy_protocol: Option<crate::proxy::ProxyProtocol>,
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
            login: LoginPolicy::default(),
            allow_fxp: false,
            show_dotfiles: false,
            passive_address: None,
            shutdown_grace: Duration::from_secs(30),
            stale_upload_age: crate::file_store::object::sweep::STALE_AFTER,
            tls: None,
            implicit_tls_listen: None,
            xferlog: None,
            metrics_enabled: false,
            banner: "actorftpd ready".to_owned(),
            upload_hook: crate::hooks::HookConfig::default(),
            admin_token: None,
            proxy_protocol: None,
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
