//! Command-line options. The only file that knows the argument parser (structopt).
//!
//! It turns arguments into a typed `Invocation`; validation of files (users, root) happens in
//! `main.rs`, which reports problems as one line and a non-zero exit.

use crate::config::{self, Config};
use crate::observability::admin;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;
use structopt::StructOpt;

#[derive(Debug, StructOpt)]
#[structopt(
    name = "actorftpd",
    about = "A multi-client FTP server built on Actix actors.",
    after_help = "Started with no options, it serves a ready folder on 127.0.0.1:2121 with a one-off user and \
                  password, and prints how to connect."
)]
struct Opt {
    /// Control connection address (IPv4 or [IPv6]:port). Port 0 picks a free port.
    #[structopt(long, default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// Folder to serve with a one-off user (ignored for users of --users, who have their own roots).
    #[structopt(long, parse(from_os_str))]
    root: Option<PathBuf>,

    /// Users file (TOML: [[user]] tables with name, password_hash, root, permissions,
    /// allowed_networks, enabled, require_tls; an optional [anonymous] table).
    #[structopt(long, parse(from_os_str))]
    users: Option<PathBuf>,

    /// Passive data ports, LOW-HIGH (default: any free port the kernel picks).
    #[structopt(long, parse(try_from_str = config::parse_port_range))]
    passive_ports: Option<RangeInclusive<u16>>,

    /// Worker threads running sessions (default: one per core).
    #[structopt(long)]
    workers: Option<usize>,

    /// Seconds a logged-in session may stay idle before it is closed with 421.
    #[structopt(long, default_value = "300")]
    idle_timeout: u64,

    /// Seconds a connection has to log in before it is closed with 421.
    #[structopt(long, default_value = "60")]
    login_timeout: u64,

    /// Seconds to wait for a data connection (passive accept or active connect).
    #[structopt(long, default_value = "30")]
    data_timeout: u64,

    /// Seconds a transfer may make no progress before it is aborted with 426.
    #[structopt(long, default_value = "120")]
    stall_timeout: u64,

    /// More log output (-v debug: every command and reply, -vv trace). RUST_LOG overrides.
    #[structopt(short, long, parse(from_occurrences))]
    verbose: u8,

    /// Less log output (-q warnings only, -qq errors only). RUST_LOG overrides.
    #[structopt(short, long, parse(from_occurrences))]
    quiet: u8,

    /// Sessions open at once; the next connection gets 421.
    #[structopt(long, default_value = "2000")]
    max_sessions: usize,

    /// Sessions open at once from one source IP (an IPv6 source is its --ipv6-prefix).
    #[structopt(long, default_value = "50")]
    max_sessions_per_ip: usize,

    /// Leading bits of an IPv6 address that make one source for the per-IP limit and bans
    /// (one subscriber usually has a whole /64). 128 counts each address on its own.
    #[structopt(long, default_value = "64")]
    ipv6_prefix: u8,

    /// Milliseconds to wait before answering a failed login.
    #[structopt(long, default_value = "1000")]
    login_failure_delay_ms: u64,

    /// Failed logins on one connection before it is closed.
    #[structopt(long, default_value = "3")]
    max_login_failures: u32,

    /// Failed logins from one source within --ban-window seconds that ban it, on every port,
    /// for --ban-time seconds; its open connections that have not logged in are closed.
    #[structopt(long, default_value = "10")]
    ban_failures: u32,

    /// Seconds over which failed logins are counted for --ban-failures.
    #[structopt(long, default_value = "60")]
    ban_window: u64,

    /// Seconds a banned source is refused (421) for.
    #[structopt(long, default_value = "600")]
    ban_time: u64,

    /// Accept passive data connections from any address (FXP); off by default.
    #[structopt(long)]
    allow_fxp: bool,

    /// Address (IPv4 or host name, resolved at start) advertised in PASV replies to peers
    /// outside loopback and private networks, for a server behind NAT.
    #[structopt(long)]
    passive_address: Option<String>,

    /// Seconds running transfers may go on after SIGTERM/SIGINT before they are aborted.
    #[structopt(long, default_value = "30")]
    shutdown_grace: u64,

    /// TLS certificate chain (PEM) for FTPS; with --tls-key, enables AUTH TLS.
    #[structopt(long, parse(from_os_str), requires = "tls-key")]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) matching --tls-cert.
    #[structopt(long, parse(from_os_str), requires = "tls-cert")]
    tls_key: Option<PathBuf>,

    /// Also listen for implicit TLS (TLS from the first byte; port 990 by convention).
    #[structopt(long, requires = "tls-cert")]
    implicit_tls_listen: Option<SocketAddr>,

    /// Refuse USER on a control connection that is not in TLS.
    #[structopt(long, requires = "tls-cert")]
    require_tls_control: bool,

    /// Refuse data transfers that are not protected (PROT P).
    #[structopt(long, requires = "tls-cert")]
    require_tls_data: bool,

    /// Require each protected data connection to resume the control connection's TLS session
    /// (guards against data-connection theft; curl with TLS 1.3 and Python's ftplib fail it).
    #[structopt(long, requires = "tls-cert")]
    require_tls_session_reuse: bool,

    /// Append a transfer log in xferlog(5) format to this file.
    #[structopt(long, parse(from_os_str))]
    xferlog: Option<PathBuf>,

    /// Serve the admin endpoint (what `actorftpd who` reads) on this address (loopback); needs
    /// --admin-token-file.
    #[structopt(long)]
    admin_listen: Option<SocketAddr>,

    /// Allow --admin-listen on a non-loopback address.
    #[structopt(long)]
    admin_allow_remote: bool,

    /// Serve Prometheus metrics at /metrics on this address (loopback).
    #[structopt(long)]
    metrics_listen: Option<SocketAddr>,

    /// Allow --metrics-listen on a non-loopback address.
    #[structopt(long)]
    metrics_allow_remote: bool,

    /// Secret the admin endpoint requires (`Authorization: Bearer`; `actorftpd who
    /// --admin-token-file` sends it); needed with --admin-listen. Created with a random token,
    /// mode 0600, if FILE does not exist; refused if group or others have any access to it, or if
    /// a user other than this one or root owns it.
    #[structopt(long, parse(from_os_str), requires = "admin-listen")]
    admin_token_file: Option<PathBuf>,

    /// Minimum transfer rate in bytes per second: a transfer moving less over a whole
    /// --min-rate-window is aborted with 426 (0: no minimum).
    #[structopt(long, default_value = "256")]
    min_rate: u64,

    /// Seconds over which --min-rate is measured.
    #[structopt(long, default_value = "30")]
    min_rate_window: u64,

    /// Transfers that may copy on threads at once; more wait for one (then 425 after
    /// --data-timeout). Listings and small files in clear need no thread.
    #[structopt(long, default_value = "256")]
    max_transfer_threads: usize,

    #[structopt(subcommand)]
    command: Option<Sub>,
}

/// Where the TLS certificate and key are, and the TLS policies (loaded by `main`).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub require_control: bool,
    pub require_data: bool,
    pub require_session_reuse: bool,
}

#[derive(Debug, StructOpt)]
enum Sub {
    /// Print an Argon2id hash for a password read from the terminal (or one line of stdin),
    /// to paste into a users file as password_hash.
    HashPassword,
    /// Show the running daemon's sessions and transfers (needs its --admin-listen, and its
    /// --admin-token-file passed here too).
    Who {
        /// The daemon's admin endpoint.
        #[structopt(long, default_value = DEFAULT_ADMIN)]
        admin: SocketAddr,
        /// Print one snapshot and exit.
        #[structopt(long)]
        once: bool,
        /// Print the snapshot as JSON.
        #[structopt(long)]
        json: bool,
        /// The daemon's --admin-token-file (its token is sent as `Authorization: Bearer`).
        #[structopt(long, parse(from_os_str))]
        admin_token_file: Option<PathBuf>,
    },
}

/// Where `who` looks by default, and what the README suggests for --admin-listen.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:2122";

/// What the program was asked to do.
#[derive(Debug)]
pub enum Invocation {
    Run(Box<RunSettings>),
    HashPassword,
    Who {
        admin: SocketAddr,
        once: bool,
        json: bool,
        token_file: Option<PathBuf>,
    },
}

/// The daemon's settings.
#[derive(Debug)]
pub struct RunSettings {
    pub config: Config,
    pub root: Option<PathBuf>,
    pub users: Option<PathBuf>,
    /// Default log filter when RUST_LOG is not set.
    pub log_level: &'static str,
    pub tls: Option<TlsFiles>,
    pub admin_listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    /// Loaded (or created) by `main` into `Config::admin_token`.
    pub admin_token_file: Option<PathBuf>,
}

/// Parses the process arguments; prints help or a usage error and exits on bad input.
pub fn parse() -> Result<Invocation, String> {
    from_opt(Opt::from_args())
}

/// Resolves a host name or address to the IPv4 address PASV can carry.
fn resolve_ipv4(name: &str) -> Result<IpAddr, String> {
    use std::net::ToSocketAddrs;
    let addrs = (name, 0)
        .to_socket_addrs()
        .map_err(|e| format!("--passive-address {name}: {e}"))?;
    addrs
        .map(|a| a.ip())
        .find(IpAddr::is_ipv4)
        .ok_or_else(|| format!("--passive-address {name}: no IPv4 address"))
}

fn from_opt(opt: Opt) -> Result<Invocation, String> {
    match opt.command {
        Some(Sub::HashPassword) => return Ok(Invocation::HashPassword),
        Some(Sub::Who {
            admin,
            once,
            json,
            admin_token_file,
        }) => {
            return Ok(Invocation::Who {
                admin,
                once,
                json,
                token_file: admin_token_file,
            })
        }
        None => {}
    }
    if let Some(addr) = opt.admin_listen {
        admin::check_bind(addr, "admin", opt.admin_allow_remote)?;
        // SECURITY: who is logged in from where is for the operator, not for every local user.
        if opt.admin_token_file.is_none() {
            return Err(
                "--admin-listen needs --admin-token-file FILE: the secret `actorftpd who \
                 --admin-token-file FILE` presents (created, mode 0600, if FILE does not exist)"
                    .into(),
            );
        }
    }
    if let Some(addr) = opt.metrics_listen {
        admin::check_bind(addr, "metrics", opt.metrics_allow_remote)?;
    }
    let passive_address = match &opt.passive_address {
        Some(name) => Some(resolve_ipv4(name)?),
        None => None,
    };
    let defaults = Config::default();
    let config = Config {
        listen: opt.listen,
        passive_ports: opt.passive_ports,
        workers: opt.workers.unwrap_or(defaults.workers).max(1),
        timeouts: config::Timeouts {
            idle: Duration::from_secs(opt.idle_timeout.max(1)),
            login: Duration::from_secs(opt.login_timeout.max(1)),
            data_connect: Duration::from_secs(opt.data_timeout.max(1)),
            data_stall: Duration::from_secs(opt.stall_timeout.max(1)),
            data_min_rate: opt.min_rate,
            data_min_rate_window: Duration::from_secs(opt.min_rate_window.max(1)),
        },
        limits: config::Limits {
            max_sessions: opt.max_sessions.max(1),
            max_sessions_per_ip: opt.max_sessions_per_ip.max(1),
            ipv6_prefix: opt.ipv6_prefix.min(128),
            transfer_threads: opt.max_transfer_threads.max(1),
            ..defaults.limits.clone()
        },
        login: config::LoginPolicy {
            failure_delay: Duration::from_millis(opt.login_failure_delay_ms),
            max_failures: opt.max_login_failures.max(1),
            ban_failures: opt.ban_failures.max(1),
            ban_window: Duration::from_secs(opt.ban_window),
            ban_time: Duration::from_secs(opt.ban_time),
        },
        allow_fxp: opt.allow_fxp,
        passive_address,
        shutdown_grace: Duration::from_secs(opt.shutdown_grace),
        implicit_tls_listen: opt.implicit_tls_listen,
        xferlog: opt.xferlog,
        metrics_enabled: opt.admin_listen.is_some() || opt.metrics_listen.is_some(),
        ..defaults
    };
    let tls = match (opt.tls_cert, opt.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert,
            key,
            require_control: opt.require_tls_control,
            require_data: opt.require_tls_data,
            require_session_reuse: opt.require_tls_session_reuse,
        }),
        _ => None,
    };
    let log_level = match (opt.verbose, opt.quiet) {
        (0, 0) => "info",
        (_, 1) => "warn",
        (_, q) if q >= 2 => "error",
        (1, _) => "debug",
        _ => "trace",
    };
    Ok(Invocation::Run(Box::new(RunSettings {
        config,
        root: opt.root,
        users: opt.users,
        log_level,
        tls,
        admin_listen: opt.admin_listen,
        metrics_listen: opt.metrics_listen,
        admin_token_file: opt.admin_token_file,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(args: &[&str]) -> Result<RunSettings, String> {
        let mut all = vec!["actorftpd"];
        all.extend_from_slice(args);
        match from_opt(Opt::from_iter_safe(all).map_err(|e| e.message)?)? {
            Invocation::Run(r) => Ok(*r),
            _ => Err("not a run".into()),
        }
    }

    #[test]
    fn hash_password_subcommand() {
        let opt = Opt::from_iter_safe(["actorftpd", "hash-password"]).expect("parses");
        assert!(matches!(from_opt(opt), Ok(Invocation::HashPassword)));
    }

    #[test]
    fn who_and_observability_options() {
        let opt = Opt::from_iter_safe(["actorftpd", "who", "--once", "--json"]).expect("parses");
        match from_opt(opt) {
            Ok(Invocation::Who {
                admin,
                once,
                json,
                token_file,
            }) => {
                assert_eq!(admin.to_string(), DEFAULT_ADMIN);
                assert!(once && json && token_file.is_none());
            }
            other => panic!("{other:?}"),
        }
        let i = inv(&[
            "--admin-listen",
            "127.0.0.1:0",
            "--admin-token-file",
            "/run/t",
            "--xferlog",
            "/tmp/x.log",
        ])
        .expect("valid");
        assert!(i.config.metrics_enabled);
        assert!(i.config.xferlog.is_some());
        assert_eq!(i.admin_token_file, Some(PathBuf::from("/run/t")));
        let err = inv(&["--admin-listen", "0.0.0.0:2122"]).expect_err("refused");
        assert!(err.contains("--admin-allow-remote"), "{err}");
        assert!(inv(&["--metrics-listen", "0.0.0.0:0", "--metrics-allow-remote"]).is_ok());
    }

    #[test]
    fn admin_endpoint_needs_a_token_file() {
        let err = inv(&["--admin-listen", "127.0.0.1:0"]).expect_err("refused");
        assert!(err.contains("--admin-token-file"), "{err}");
        assert!(
            inv(&["--admin-token-file", "/run/t"]).is_err(),
            "a token file without an admin endpoint is a mistake"
        );
        let opt = Opt::from_iter_safe(["actorftpd", "who", "--admin-token-file", "/run/t"])
            .expect("parses");
        match from_opt(opt) {
            Ok(Invocation::Who { token_file, .. }) => {
                assert_eq!(token_file, Some(PathBuf::from("/run/t")))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limits_and_policies() {
        let i = inv(&[
            "--max-sessions",
            "10",
            "--max-sessions-per-ip",
            "2",
            "--login-failure-delay-ms",
            "0",
            "--allow-fxp",
            "--passive-address",
            "203.0.113.7",
        ])
        .expect("valid");
        assert_eq!(i.config.limits.max_sessions, 10);
        assert_eq!(i.config.limits.max_sessions_per_ip, 2);
        assert_eq!(i.config.login.failure_delay, Duration::ZERO);
        assert!(i.config.allow_fxp);
        assert_eq!(i.config.passive_address, "203.0.113.7".parse().ok());
        assert!(inv(&["--passive-address", "::1"]).is_err());
    }

    #[test]
    fn defaults_are_safe() {
        let i = inv(&[]).expect("no options is valid");
        assert_eq!(i.config.listen.to_string(), "127.0.0.1:2121");
        assert!(i.config.listen.ip().is_loopback());
        assert!(i.root.is_none() && i.users.is_none());
        assert_eq!(i.log_level, "info");
    }

    #[test]
    fn options_are_parsed() {
        let i = inv(&[
            "--listen",
            "[::1]:0",
            "--passive-ports",
            "30100-30199",
            "--workers",
            "3",
            "-q",
        ])
        .expect("valid");
        assert_eq!(i.config.listen.to_string(), "[::1]:0");
        assert_eq!(i.config.passive_ports, Some(30100..=30199));
        assert_eq!(i.config.workers, 3);
        assert_eq!(i.log_level, "warn");
        assert!(inv(&["--passive-ports", "99-1"]).is_err());
        assert!(inv(&["--listen", "nowhere"]).is_err());
    }
}
