//! The daemon's settings from two sources: the command line and a TOML configuration file
//! (`--config FILE`), the command line winning. Owns the file's format, the merge, the
//! defaults, and every check that refuses a start because settings contradict each other.
//!
//! It never knows the argument parser (`cli.rs` does) and starts nothing: it turns `Options` into
//! a validated `RunSettings`, each problem one line naming the option or the file's line.

use crate::config::{self, Config};
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;

mod check;
mod fair;
mod network;
pub use check::{check, load_users};
use fair::rate;
use network::{passive_range, proxy_protocol};

/// Where a setting came from, to name it in an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    CommandLine,
    File { path: Arc<PathBuf>, line: usize },
}

/// One setting's value and where it came from.
#[derive(Debug, Clone)]
pub struct Setting<T> {
    pub value: T,
    /// The file key (`max_sessions`); the option is the same with dashes (`--max-sessions`).
    pub key: &'static str,
    pub origin: Origin,
}

impl<T> Setting<T> {
    pub fn cli(key: &'static str, value: T) -> Setting<T> {
        Setting {
            value,
            key,
            origin: Origin::CommandLine,
        }
    }

    /// A one-line error about this setting: `--listen x: why` or
    /// `config file F line 3: listen: why`.
    pub fn fail(&self, why: impl fmt::Display) -> String {
        format!("{self}: {why}")
    }
}

impl<T> fmt::Display for Setting<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::CommandLine => write!(f, "--{}", self.key.replace('_', "-")),
            Origin::File { path, line } => write!(
                f,
                "config file {} line {line}: {}",
                path.display(),
                self.key
            ),
        }
    }
}

/// Relative paths in a configuration file are taken from the file's folder (as the users
/// file's roots are); other values are kept as they are.
trait FromFile {
    fn rebase(self, base: &Path) -> Self;
}

macro_rules! as_is {
    ($($t:ty),*) => { $(impl FromFile for $t { fn rebase(self, _: &Path) -> Self { self } })* };
}
as_is!(bool, u8, u32, u64, usize, String);

impl FromFile for PathBuf {
    fn rebase(self, base: &Path) -> Self {
        // `users = "sqlite:users.db"` is beside the file too; `postgres://...` is no path.
        if crate::auth::db::DbUrl::is_database(&self) {
            return match self.to_str().and_then(|s| s.strip_prefix("sqlite:")) {
                Some(file) if !file.starts_with('/') => {
                    PathBuf::from(format!("sqlite:{}", base.join(file).display()))
                }
                _ => self,
            };
        }
        if self.is_absolute() {
            self
        } else {
            base.join(self)
        }
    }
}

use crate::auth::users::line_of;

/// Declares every option once: the merged `Options` (command line or file) and the file's
/// format (`FileOptions`, unknown keys refused), so the two cannot drift apart.
macro_rules! options {
    ($( $(#[$doc:meta])* $name:ident : $ty:ty ),* $(,)?) => {
        /// Every setting the command line or the file may give; `None`: not given (default).
        #[derive(Debug, Default, Clone)]
        pub struct Options { $( $(#[$doc])* pub $name: Option<Setting<$ty>>, )* }

        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileOptions { $( $name: Option<Spanned<$ty>>, )* }

        impl Options {
            /// Every key a configuration file may hold.
            pub const KEYS: &'static [&'static str] = &[$(stringify!($name)),*];

            fn from_file(f: FileOptions, text: &str, path: &Path) -> Options {
                let shared = Arc::new(path.to_path_buf());
                let base = path.parent().unwrap_or(Path::new("."));
                Options { $( $name: f.$name.map(|s| Setting {
                    key: stringify!($name),
                    origin: Origin::File { path: shared.clone(), line: line_of(text, s.span().start) },
                    value: FromFile::rebase(s.into_inner(), base),
                }), )* }
            }

            /// Each setting from `self` (the command line) when given there, else from `file`.
            pub fn over(self, file: Options) -> Options {
                Options { $( $name: self.$name.or(file.$name), )* }
            }
        }
    };
}

options! {
    listen: String,
    root: PathBuf,
    storage: String,
    users: PathBuf,
    passive_ports: String,
    workers: usize,
    idle_timeout: u64,
    login_timeout: u64,
    data_timeout: u64,
    stall_timeout: u64,
    /// error, warn, info, debug or trace (`-q`/`-v` on the command line).
    log_level: String,
    log_format: String,
    log_file: PathBuf,
    max_sessions: usize,
    max_sessions_per_ip: usize,
    ipv6_prefix: u8,
    login_failure_delay_ms: u64,
    max_login_failures: u32,
    ban_failures: u32,
    ban_window: u64,
    ban_time: u64,
    allow_fxp: bool,
    show_dotfiles: bool,
    passive_address: String,
    proxy_protocol: bool,
    trusted_proxies: String,
    shutdown_grace: u64,
    stale_upload_age: u64,
    tls_cert: PathBuf,
    tls_key: PathBuf,
    implicit_tls_listen: String,
    require_tls_control: bool,
    require_tls_data: bool,
    require_tls_session_reuse: bool,
    xferlog: PathBuf,
    admin_listen: String,
    admin_allow_remote: bool,
    metrics_listen: String,
    metrics_allow_remote: bool,
    admin_token_file: PathBuf,
    min_rate: u64,
    min_rate_window: u64,
    max_transfer_threads: usize,
    /// Bandwidth limits per transfer: `500K`, `10M` (bytes per second).
    max_download_rate: String,
    max_upload_rate: String,
    /// A file whose lines make the 220 greeting.
    banner: PathBuf,
    /// A command run after each completed upload (path, user, size as arguments; no shell).
    upload_hook: String,
    /// A URL that gets a JSON POST after each completed upload (`http://` only).
    upload_hook_url: String,
    run_as: String,
    umask: String,
}

/// Largest configuration file read (a mistake such as `--config /dev/zero` stops quickly).
const MAX_FILE: u64 = 1024 * 1024;

impl Options {
    /// Reads a configuration file. Errors are one line naming the file, the line and the problem.
    pub fn load(path: &Path) -> Result<Options, String> {
        use std::io::Read;
        let shown = path.display();
        let file = std::fs::File::open(path).map_err(|e| format!("config file {shown}: {e}"))?;
        let mut text = String::new();
        file.take(MAX_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("config file {shown}: {e}"))?;
        if text.len() as u64 > MAX_FILE {
            return Err(format!("config file {shown}: larger than {MAX_FILE} bytes"));
        }
        Options::parse(&text, path).map_err(|e| format!("config file {shown}: {e}"))
    }

    /// Parses configuration text read from `path` (relative paths are taken from its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Options, String> {
        let file: FileOptions = toml::from_str(text).map_err(|e| {
            let mut msg = e.message().trim().replace('\n', " ");
            if let Some(cut) = msg.find(", expected one of") {
                msg.truncate(cut);
                msg.push_str(" (keys are the options of `actorftpd --help` with underscores)");
            }
            match e.span() {
                Some(span) => format!("line {}: {msg}", line_of(text, span.start)),
                None => msg,
            }
        })?;
        Ok(Options::from_file(file, text, path))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where and how the daemon logs (set up by `main` before anything else).
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Default filter when RUST_LOG is not set.
    pub level: String,
    pub format: LogFormat,
    /// `None`: stderr.
    pub file: Option<PathBuf>,
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

/// The daemon's settings, checked.
#[derive(Debug)]
pub struct RunSettings {
    pub config: Config,
    pub root: Option<PathBuf>,
    /// `--storage s3://BUCKET/PREFIX`: the one-off user's root in object storage.
    pub storage: Option<String>,
    pub users: Option<PathBuf>,
    pub log: LogSettings,
    pub tls: Option<TlsFiles>,
    pub admin_listen: Option<SocketAddr>,
    pub metrics_listen: Option<SocketAddr>,
    /// Loaded (or created) by `main` into `Config::admin_token`.
    pub admin_token_file: Option<PathBuf>,
    /// `--run-as USER[:GROUP]`, as given (looked up by `privileges`).
    pub run_as: Option<String>,
    /// Process umask for new files and folders.
    pub umask: u32,
    /// Not contradictions, but worth one warning line each once the log is set up.
    pub warnings: Vec<String>,
}

/// Default process umask: new files 0644, new folders 0755.
pub const DEFAULT_UMASK: u32 = 0o022;

fn value<T: Clone>(s: &Option<Setting<T>>) -> Option<T> {
    s.as_ref().map(|s| s.value.clone())
}

fn flag(s: &Option<Setting<bool>>) -> bool {
    s.as_ref().is_some_and(|s| s.value)
}

/// Resolves `HOST:PORT` or `[IPv6]:PORT`: a literal address as it is, a host name to its first
/// IPv4 address (else its first address), so `localhost:2121` binds 127.0.0.1.
fn socket_addr(s: &Setting<String>) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if s.value.rsplit_once(':').is_none() {
        return Err(s.fail(format!(
            "{:?} is not HOST:PORT (e.g. 127.0.0.1:2121, [::1]:2121, localhost:2121)",
            s.value
        )));
    }
    let addrs: Vec<SocketAddr> = s
        .value
        .to_socket_addrs()
        .map_err(|e| s.fail(format!("{:?}: {e}", s.value)))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| s.fail(format!("{:?} has no address", s.value)))
}

fn opt_addr(s: &Option<Setting<String>>) -> Result<Option<SocketAddr>, String> {
    s.as_ref().map(socket_addr).transpose()
}

/// Resolves a host name or address to the IPv4 address PASV can carry.
fn resolve_ipv4(s: &Setting<String>) -> Result<IpAddr, String> {
    let addrs = (s.value.as_str(), 0)
        .to_socket_addrs()
        .map_err(|e| s.fail(format!("{}: {e}", s.value)))?;
    addrs
        .map(|a| a.ip())
        .find(IpAddr::is_ipv4)
        .ok_or_else(|| s.fail(format!("{}: no IPv4 address", s.value)))
}

fn parse_umask(s: &Setting<String>) -> Result<u32, String> {
    let digits = s.value.trim_start_matches("0o");
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 && !digits.is_empty() => Ok(m),
        _ => Err(s.fail(format!(
            "{:?} is not an octal mode from 000 to 777 (e.g. 022, 027)",
            s.value
        ))),
    }
}

fn log_settings(o: &Options) -> Result<LogSettings, String> {
    let level = match &o.log_level {
        Some(s) => {
            let l = s.value.to_ascii_lowercase();
            if !["error", "warn", "info", "debug", "trace"].contains(&l.as_str()) {
                return Err(s.fail(format!(
                    "{:?} is not one of error, warn, info, debug, trace",
                    s.value
                )));
            }
            l
        }
        None => "info".to_owned(),
    };
    let format = match &o.log_format {
        None => LogFormat::Text,
        Some(s) => match s.value.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(s.fail(format!("{other:?} is not text or json"))),
        },
    };
    Ok(LogSettings {
        level,
        format,
        file: value(&o.log_file),
    })
}

/// Refuses a TLS-only option when no certificate is configured.
fn needs_tls<T>(s: &Option<Setting<T>>, tls: bool) -> Result<(), String> {
    match s {
        Some(s) if !tls => Err(s.fail(
            "needs TLS: give --tls-cert and --tls-key (tls_cert and tls_key in the config file)",
        )),
        _ => Ok(()),
    }
}

/// Merges nothing more: turns the options (command line over file) into checked settings,
/// with the documented defaults for everything not given. Every refusal is one line.
pub fn resolve(o: Options) -> Result<RunSettings, String> {
    let defaults = Config::default();
    let tls = match (&o.tls_cert, &o.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.value.clone(),
            key: key.value.clone(),
            require_control: flag(&o.require_tls_control),
            require_data: flag(&o.require_tls_data),
            require_session_reuse: flag(&o.require_tls_session_reuse),
        }),
        (Some(cert), None) => {
            return Err(cert.fail("needs --tls-key too (the certificate's private key, PEM)"))
        }
        (None, Some(key)) => {
            return Err(key.fail("needs --tls-cert too (the certificate chain, PEM)"))
        }
        (None, None) => None,
    };
    let tls_on = tls.is_some();
    // A flag set to false in the file is no contradiction; only a true one is.
    let on = |s: &Option<Setting<bool>>| s.clone().filter(|s| s.value);
    needs_tls(&on(&o.require_tls_control), tls_on)?;
    needs_tls(&on(&o.require_tls_data), tls_on)?;
    needs_tls(&on(&o.require_tls_session_reuse), tls_on)?;
    needs_tls(&o.implicit_tls_listen, tls_on)?;

    let listen = match &o.listen {
        Some(s) => socket_addr(s)?,
        None => defaults.listen,
    };
    let implicit_tls_listen = opt_addr(&o.implicit_tls_listen)?;
    let admin_listen = opt_addr(&o.admin_listen)?;
    let metrics_listen = opt_addr(&o.metrics_listen)?;
    if let (Some(s), Some(addr)) = (&o.admin_listen, admin_listen) {
        crate::observability::admin::check_bind(addr, "admin", flag(&o.admin_allow_remote))
            .map_err(|e| s.fail(e))?;
        // SECURITY: who is logged in from where is for the operator, not for every local user.
        if o.admin_token_file.is_none() {
            return Err(s.fail(
                "needs --admin-token-file FILE: the secret `actorftpd who --admin-token-file \
                 FILE` presents (created, mode 0600, if FILE does not exist)",
            ));
        }
    }
    if let (Some(s), None) = (&o.admin_token_file, admin_listen) {
        return Err(s.fail("is only for --admin-listen, which is not given"));
    }
    if let (Some(s), Some(addr)) = (&o.metrics_listen, metrics_listen) {
        crate::observability::admin::check_bind(addr, "metrics", flag(&o.metrics_allow_remote))
            .map_err(|e| s.fail(e))?;
    }
    // Two services on one address: the second bind would fail with a less helpful message.
    let mut bound: Vec<(SocketAddr, String)> = vec![(listen, "--listen".to_owned())];
    for (addr, s) in [
        (implicit_tls_listen, &o.implicit_tls_listen),
        (admin_listen, &o.admin_listen),
        (metrics_listen, &o.metrics_listen),
    ] {
        if let (Some(addr), Some(s)) = (addr, s) {
            if let Some((_, other)) = bound.iter().find(|(b, _)| *b == addr && addr.port() != 0) {
                return Err(s.fail(format!("{addr} is already the address of {other}")));
            }
            bound.push((addr, s.to_string()));
        }
    }

    let mut warnings = Vec::new();
    let max_sessions = value(&o.max_sessions)
        .unwrap_or(defaults.limits.max_sessions)
        .max(1);
    let max_sessions_per_ip = value(&o.max_sessions_per_ip)
        .unwrap_or(defaults.limits.max_sessions_per_ip)
        .max(1);
    let ephemeral = crate::gatekeeper::ports::ephemeral_range();
    let passive_ports = Some(match &o.passive_ports {
        Some(s) => passive_range(s, max_sessions_per_ip, &ephemeral, &mut warnings)?,
        None => crate::gatekeeper::ports::default_range(&ephemeral),
    });
    let passive_address = o.passive_address.as_ref().map(resolve_ipv4).transpose()?;
    let secs = |s: &Option<Setting<u64>>, d: Duration| value(s).map_or(d, Duration::from_secs);
    let t = &defaults.timeouts;
    let l = &defaults.login;
    let banner = fair::banner(&o.banner, defaults.banner.clone())?;
    let upload_hook = fair::upload_hook(&o.upload_hook, &o.upload_hook_url)?;
    let config = Config {
        listen,
        banner,
        upload_hook,
        passive_ports,
        workers: value(&o.workers).unwrap_or(defaults.workers).max(1),
        timeouts: config::Timeouts {
            idle: secs(&o.idle_timeout, t.idle).max(Duration::from_secs(1)),
            login: secs(&o.login_timeout, t.login).max(Duration::from_secs(1)),
            data_connect: secs(&o.data_timeout, t.data_connect).max(Duration::from_secs(1)),
            data_stall: secs(&o.stall_timeout, t.data_stall).max(Duration::from_secs(1)),
            data_min_rate: value(&o.min_rate).unwrap_or(t.data_min_rate),
            data_min_rate_window: secs(&o.min_rate_window, t.data_min_rate_window)
                .max(Duration::from_secs(1)),
        },
        limits: config::Limits {
            max_sessions,
            max_sessions_per_ip,
            ipv6_prefix: value(&o.ipv6_prefix)
                .unwrap_or(defaults.limits.ipv6_prefix)
                .min(128),
            transfer_threads: value(&o.max_transfer_threads)
                .unwrap_or(defaults.limits.transfer_threads)
                .max(1),
            max_download_rate: rate(&o.max_download_rate)?,
            max_upload_rate: rate(&o.max_upload_rate)?,
            ..defaults.limits.clone()
        },
        login: config::LoginPolicy {
            failure_delay: value(&o.login_failure_delay_ms)
                .map_or(l.failure_delay, Duration::from_millis),
            max_failures: value(&o.max_login_failures)
                .unwrap_or(l.max_failures)
                .max(1),
            ban_failures: value(&o.ban_failures).unwrap_or(l.ban_failures).max(1),
            ban_window: secs(&o.ban_window, l.ban_window),
            ban_time: secs(&o.ban_time, l.ban_time),
        },
        allow_fxp: flag(&o.allow_fxp),
        show_dotfiles: flag(&o.show_dotfiles),
        passive_address,
        shutdown_grace: secs(&o.shutdown_grace, defaults.shutdown_grace),
        stale_upload_age: secs(&o.stale_upload_age, defaults.stale_upload_age),
        implicit_tls_listen,
        xferlog: value(&o.xferlog),
        metrics_enabled: admin_listen.is_some() || metrics_listen.is_some(),
        proxy_protocol: proxy_protocol(&o)?,
        ..defaults
    };
    if let Some(s) = &o.storage {
        if o.root.is_some() {
            return Err(s.fail("and --root name two roots for the one-off user; give one"));
        }
        if o.users.is_some() {
            return Err(s.fail(
                "is for the one-off user; with --users, give each user `storage` in the users file",
            ));
        }
        crate::file_store::object::Location::parse(&s.value).map_err(|e| s.fail(e))?;
    }
    let umask = match &o.umask {
        Some(s) => parse_umask(s)?,
        None => DEFAULT_UMASK,
    };
    if let Some(s) = &o.run_as {
        crate::privileges::RunAs::parse(&s.value).map_err(|e| s.fail(e))?;
    }
    Ok(RunSettings {
        config,
        root: value(&o.root),
        storage: value(&o.storage),
        users: value(&o.users),
        log: log_settings(&o)?,
        tls,
        admin_listen,
        metrics_listen,
        admin_token_file: value(&o.admin_token_file),
        run_as: value(&o.run_as),
        umask,
        warnings,
    })
}

#[cfg(test)]
mod tests;
