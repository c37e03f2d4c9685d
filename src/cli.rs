//! Command-line options. The only file that knows the argument parser (structopt).
//!
//! It turns arguments into a typed `Invocation`; validation of files (users, root) happens in
//! `main.rs`, which reports problems as one line and a non-zero exit.

use crate::config::{self, Config};
use std::net::SocketAddr;
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

    /// Users file (TOML, [[user]] tables with name, password or password_hash, root, permissions).
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

    /// More log output (-v info per command, -vv trace). RUST_LOG overrides.
    #[structopt(short, long, parse(from_occurrences))]
    verbose: u8,

    /// Less log output (-q warnings only, -qq errors only). RUST_LOG overrides.
    #[structopt(short, long, parse(from_occurrences))]
    quiet: u8,
}

/// What the daemon was asked to do.
#[derive(Debug)]
pub struct Invocation {
    pub config: Config,
    pub root: Option<PathBuf>,
    pub users: Option<PathBuf>,
    /// Default log filter when RUST_LOG is not set.
    pub log_level: &'static str,
}

/// Parses the process arguments; prints help or a usage error and exits on bad input.
pub fn parse() -> Invocation {
    from_opt(Opt::from_args())
}

fn from_opt(opt: Opt) -> Invocation {
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
        },
        ..defaults
    };
    let log_level = match (opt.verbose, opt.quiet) {
        (0, 0) => "info",
        (_, 1) => "warn",
        (_, q) if q >= 2 => "error",
        (1, _) => "debug",
        _ => "trace",
    };
    Invocation {
        config,
        root: opt.root,
        users: opt.users,
        log_level,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(args: &[&str]) -> Result<Invocation, String> {
        let mut all = vec!["actorftpd"];
        all.extend_from_slice(args);
        Opt::from_iter_safe(all)
            .map(from_opt)
            .map_err(|e| e.message)
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
