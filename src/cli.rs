//! Command-line options. The only file that knows the argument parser (structopt).
//!
//! It turns arguments into `config_file::Options` (each `None` unless given, so a `--config`
//! file can fill it) and hands them to `config_file::resolve`, which merges, applies defaults
//! and checks; files (users, root) are read in `main.rs`. Problems are one line and exit 2.

use crate::auth::db::command::UserCommand;
use crate::config_file::{self, Options, RunSettings, Setting};
use std::net::SocketAddr;
use std::path::PathBuf;
use structopt::StructOpt;

#[derive(Debug, StructOpt)]
#[structopt(
    name = "actorftpd",
    about = "A multi-client FTP server built on Actix actors.",
    after_help = "Started with no options, it serves a ready folder on 127.0.0.1:2121 with a one-off user and \
                  password, and prints how to connect. Every option can also be set in a --config file \
                  (key: the option's name with underscores, e.g. max_sessions = 100); the command line wins. \
                  SIGHUP reopens --log-file and --xferlog (logrotate) and re-checks the users file and TLS \
                  files; SIGTERM/SIGINT stop gracefully, a second one at once."
)]
struct Opt {
    /// Configuration file (TOML) holding any of these options; the command line overrides it.
    #[structopt(long, value_name = "FILE", parse(from_os_str))]
    config: Option<PathBuf>,

    /// Control connection address: IPv4:port, [IPv6]:port or host:port. Port 0 picks a free
    /// port. [default: 127.0.0.1:2121]
    #[structopt(long, value_name = "ADDR")]
    listen: Option<String>,

    /// Folder to serve with a one-off user (ignored for users of --users, who have their own roots).
    /// [default: $TMPDIR/actorftpd-root-UID]
    #[structopt(long, value_name = "DIR", parse(from_os_str))]
    root: Option<PathBuf>,

    /// Serve this S3 bucket (s3://BUCKET/PREFIX) with the one-off user instead of a folder.
    /// Credentials, region and endpoint come from the environment (AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION, AWS_ENDPOINT_URL) or the shared
    /// credentials file, never from the command line.
    #[structopt(long, value_name = "URL")]
    storage: Option<String>,

    /// Users file (TOML: [[user]] tables with name, password_hash, root, permissions,
    /// allowed_networks, enabled, require_tls; an optional [anonymous] table).
    #[structopt(long, value_name = "FILE", parse(from_os_str))]
    users: Option<PathBuf>,

    /// Passive data ports, LOW-HIGH; one client address holds at most an eighth of them at once.
    /// Each PASV gets a random free one. [default: up to 8192 ports just outside the kernel's
    /// ephemeral range (net.ipv4.ip_local_port_range, read at start): 61000-65535 for Linux's
    /// 32768-60999]
    #[structopt(long, value_name = "LOW-HIGH")]
    passive_ports: Option<String>,

    /// Worker threads running sessions. [default: one per core]
    #[structopt(long, value_name = "N")]
    workers: Option<usize>,

    /// Seconds a logged-in session may stay idle before it is closed with 421. [default: 300]
    #[structopt(long, value_name = "S")]
    idle_timeout: Option<u64>,

    /// Seconds a connection has to log in before it is closed with 421. [default: 60]
    #[structopt(long, value_name = "S")]
    login_timeout: Option<u64>,

    /// Seconds to wait for a data connection (passive accept or active connect). [default: 30]
    #[structopt(long, value_name = "S")]
    data_timeout: Option<u64>,

    /// Seconds a transfer may make no progress before it is aborted with 426. [default: 120]
    #[structopt(long, value_name = "S")]
    stall_timeout: Option<u64>,

    /// More log output (-v debug: every command and reply, -vv trace). RUST_LOG overrides.
    #[structopt(short, long, parse(from_occurrences))]
    verbose: u8,

    /// Less log output (-q warnings only, -qq errors only). RUST_LOG overrides.
    #[structopt(short, long, parse(from_occurrences))]
    quiet: u8,

    /// Log level: error, warn, info, debug or trace (-v/-q win; RUST_LOG overrides). [default: info]
    #[structopt(long, value_name = "LEVEL")]
    log_level: Option<String>,

    /// Log line format: text or json (one object per line). [default: text]
    #[structopt(long, value_name = "FORMAT")]
    log_format: Option<String>,

    /// Append the log to FILE instead of stderr (reopened on SIGHUP). [default: stderr]
    #[structopt(long, value_name = "FILE", parse(from_os_str))]
    log_file: Option<PathBuf>,

    /// Sessions open at once; the next connection gets 421. [default: 2000]
    #[structopt(long, value_name = "N")]
    max_sessions: Option<usize>,

    /// Sessions open at once from one source IP (an IPv6 source is its --ipv6-prefix). [default: 50]
    #[structopt(long, value_name = "N")]
    max_sessions_per_ip: Option<usize>,

    /// Leading bits of an IPv6 address that make one source for the per-IP limit and bans
    /// (one subscriber usually has a whole /64). 128 counts each address on its own. [default: 64]
    #[structopt(long, value_name = "BITS")]
    ipv6_prefix: Option<u8>,

    /// Milliseconds to wait before answering a failed login. [default: 1000]
    #[structopt(long, value_name = "MS")]
    login_failure_delay_ms: Option<u64>,

    /// Failed logins on one connection before it is closed. [default: 3]
    #[structopt(long, value_name = "N")]
    max_login_failures: Option<u32>,

    /// Failed logins from one source within --ban-window seconds that ban it, on every port,
    /// for --ban-time seconds; its open connections that have not logged in are closed. [default: 10]
    #[structopt(long, value_name = "N")]
    ban_failures: Option<u32>,

    /// Seconds over which failed logins are counted for --ban-failures. [default: 60]
    #[structopt(long, value_name = "S")]
    ban_window: Option<u64>,

    /// Seconds a banned source is refused (421) for. [default: 600]
    #[structopt(long, value_name = "S")]
    ban_time: Option<u64>,

    /// Accept passive data connections from any address (FXP); off by default.
    #[structopt(long)]
    allow_fxp: bool,

    /// List names starting with a dot in LIST and NLST without `-a`; off by default (they are
    /// hidden unless the client sends `LIST -a`). MLSD always lists them.
    #[structopt(long)]
    show_dotfiles: bool,

    /// Address (IPv4 or host name, resolved at start) advertised in PASV replies to peers
    /// outside loopback and private networks, for a server behind NAT.
    #[structopt(long, value_name = "HOST")]
    passive_address: Option<String>,

    /// Control and passive data connections from --trusted-proxies must start with a PROXY
    /// protocol header (v1 or v2, as HAProxy's send-proxy-v2 sends) naming the client, whose
    /// address then counts everywhere; a header from any other address is refused.
    #[structopt(long)]
    proxy_protocol: bool,

    /// The load balancers allowed to send PROXY headers: CIDR,CIDR,... (needs --proxy-protocol).
    #[structopt(long, value_name = "CIDRS")]
    trusted_proxies: Option<String>,

    /// Seconds running transfers may go on after SIGTERM/SIGINT before they are aborted. [default: 30]
    #[structopt(long, value_name = "S")]
    shutdown_grace: Option<u64>,

    /// Abort multipart uploads to object storage left unfinished for this many seconds (a
    /// crashed daemon's, here or on another replica), at start and every hour. [default: 86400]
    #[structopt(long, value_name = "SECONDS")]
    stale_upload_age: Option<u64>,

    /// TLS certificate chain (PEM) for FTPS; with --tls-key, enables AUTH TLS.
    #[structopt(long, value_name = "FILE", parse(from_os_str))]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) matching --tls-cert.
    #[structopt(long, value_name = "FILE", parse(from_os_str))]
    tls_key: Option<PathBuf>,

    /// Also listen for implicit TLS (TLS from the first byte; port 990 by convention); needs TLS.
    #[structopt(long, value_name = "ADDR")]
    implicit_tls_listen: Option<String>,

    /// Refuse USER on a control connection that is not in TLS; needs TLS.
    #[structopt(long)]
    require_tls_control: bool,

    /// Refuse data transfers that are not protected (PROT P); needs TLS.
    #[structopt(long)]
    require_tls_data: bool,

    /// Require each protected data connection to resume the control connection's TLS session
    /// (guards against data-connection theft; curl with TLS 1.3 and Python's ftplib fail it).
    #[structopt(long)]
    require_tls_session_reuse: bool,

    /// Append a transfer log in xferlog(5) format to this file (reopened on SIGHUP).
    #[structopt(long, value_name = "FILE", parse(from_os_str))]
    xferlog: Option<PathBuf>,

    /// Serve the admin endpoint (what `actorftpd who` reads) on this address (loopback); needs
    /// --admin-token-file.
    #[structopt(long, value_name = "ADDR")]
    admin_listen: Option<String>,

    /// Allow --admin-listen on a non-loopback address.
    #[structopt(long)]
    admin_allow_remote: bool,

    /// Serve Prometheus metrics at /metrics on this address (loopback).
    #[structopt(long, value_name = "ADDR")]
    metrics_listen: Option<String>,

    /// Allow --metrics-listen on a non-loopback address.
    #[structopt(long)]
    metrics_allow_remote: bool,

    /// Secret the admin endpoint requires (`Authorization: Bearer`; `actorftpd who
    /// --admin-token-file` sends it); needed with --admin-listen. Created with a random token,
    /// mode 0600, if FILE does not exist; refused if group or others have any access to it, or if
    /// a user other than this one or root owns it.
    #[structopt(long, value_name = "FILE", parse(from_os_str))]
    admin_token_file: Option<PathBuf>,

    /// Minimum transfer rate in bytes per second: a transfer moving less over a whole
    /// --min-rate-window is aborted with 426 (0: no minimum). [default: 256]
    #[structopt(long, value_name = "BYTES")]
    min_rate: Option<u64>,

    /// Seconds over which --min-rate is measured. [default: 30]
    #[structopt(long, value_name = "S")]
    min_rate_window: Option<u64>,

    /// Transfers that may copy on threads at once; more wait for one (then 425 after
    /// --data-timeout). Listings and small files in clear need no thread. [default: 256]
    #[structopt(long, value_name = "N")]
    max_transfer_threads: Option<usize>,

    /// Bandwidth limit of each download, bytes per second: 500K, 10M (a user's own
    /// max_download_rate applies when tighter). [default: none]
    #[structopt(long, value_name = "RATE")]
    max_download_rate: Option<String>,

    /// Bandwidth limit of each upload, bytes per second. [default: none]
    #[structopt(long, value_name = "RATE")]
    max_upload_rate: Option<String>,

    /// A text file whose lines make the 220 greeting (sanitised; at most 4 KiB and 20 lines).
    #[structopt(long, value_name = "FILE", parse(from_os_str))]
    banner: Option<PathBuf>,

    /// Run this program after each completed upload, with the path, user and size as its
    /// arguments (no shell); failures are logged.
    #[structopt(long, value_name = "PROGRAM")]
    upload_hook: Option<String>,

    /// POST a JSON event to this http:// URL after each completed upload.
    #[structopt(long, value_name = "URL")]
    upload_hook_url: Option<String>,

    /// After binding the sockets, switch to this account for good (start as root; for port 21).
    /// Uploaded files then belong to it. USER or USER:GROUP, names or numbers.
    #[structopt(long, value_name = "USER[:GROUP]")]
    run_as: Option<String>,

    /// Process umask (octal): uploads are created 0644 and folders 0755 minus these bits.
    /// [default: 022]
    #[structopt(long, value_name = "MODE")]
    umask: Option<String>,

    #[structopt(subcommand)]
    command: Option<Sub>,
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
        /// JSON: with --once the snapshot (an array of sessions); without, one line a second,
        /// {"time": UNIX_SECONDS, "sessions": [...]}, and no screen-control bytes.
        #[structopt(long)]
        json: bool,
        /// The daemon's --admin-token-file (its token is sent as `Authorization: Bearer`).
        #[structopt(long, parse(from_os_str))]
        admin_token_file: Option<PathBuf>,
    },
    /// Disconnect a session (421; its upload is discarded) through the admin endpoint.
    Kick {
        /// The session's id (as `who` shows it).
        session: Option<u64>,
        /// Every session of this user instead.
        #[structopt(long)]
        user: Option<String>,
        #[structopt(long, default_value = DEFAULT_ADMIN)]
        admin: SocketAddr,
        #[structopt(long, parse(from_os_str))]
        admin_token_file: Option<PathBuf>,
    },
    /// Check a configuration file (and the users file and TLS files it names) without starting:
    /// exit 0, or print the file, line and problem.
    CheckConfig {
        #[structopt(parse(from_os_str))]
        file: PathBuf,
    },
    /// Edit the users in a database: ACTION is add, passwd, del, list, disable or enable. add and
    /// passwd read the password from the terminal without echo, or one line of stdin.
    User {
        action: String,
        /// The account (every action but list).
        name: Option<String>,
        /// The users database, sqlite:PATH or postgres://USER@HOST/DB [default: --config's users]
        #[structopt(long, value_name = "URL")]
        users: Option<String>,
        /// A configuration file whose `users` names the database.
        #[structopt(long, value_name = "FILE", parse(from_os_str))]
        config: Option<PathBuf>,
        /// add: the user's root folder (absolute, on each daemon's machine).
        #[structopt(long, value_name = "DIR", parse(from_os_str))]
        root: Option<PathBuf>,
        /// add: a root in object storage instead, s3://BUCKET/PREFIX (with --endpoint, --region).
        #[structopt(long, value_name = "URL")]
        storage: Option<String>,
        #[structopt(long, value_name = "URL")]
        endpoint: Option<String>,
        #[structopt(long)]
        region: Option<String>,
        /// add: permissions, comma-separated (all, read-only, read, upload, overwrite, delete,
        /// rename, mkdir, chmod). [default: all]
        #[structopt(long, value_name = "LIST")]
        permissions: Option<String>,
        /// add: source networks (CIDR, comma-separated) it may log in from. [default: any]
        #[structopt(long, value_name = "CIDRS")]
        allowed_networks: Option<String>,
        /// add: log in only over TLS.
        #[structopt(long)]
        require_tls: bool,
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
    CheckConfig(PathBuf),
    User(Box<UserCommand>),
    Kick {
        target: crate::observability::kick::KickTarget,
        admin: SocketAddr,
        token_file: Option<PathBuf>,
    },
}

/// Parses the process arguments; prints help or a usage error and exits on bad input.
pub fn parse() -> Result<Invocation, String> {
    from_opt(Opt::from_args())
}

/// The full `--help` text (for the man page and its test).
pub fn long_help() -> String {
    let mut out = Vec::new();
    let _ = Opt::clap().write_long_help(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The manual page (roff), made from the `--help` text so the two cannot drift: a test compares
/// it with `src/dist/actorftpd.1` (`ACTORFTPD_WRITE_MAN=1 cargo test --test running_as_a_service`
/// rewrites that file).
pub fn man_page() -> String {
    let roff = |line: &str| {
        let line = line.replace('\\', "\\e");
        if line.starts_with('.') || line.starts_with('\'') {
            format!("\\&{line}")
        } else {
            line
        }
    };
    let help = long_help();
    let mut page = String::from(
        ".TH ACTORFTPD 8 \"\" \"actorftpd\" \"System Administration\"\n\
         .SH NAME\nactorftpd \\- a multi-client FTP server built on Actix actors\n\
         .SH SYNOPSIS\n.B actorftpd\n[\\fIOPTIONS\\fR] [\\fB\\-\\-config\\fR \\fIFILE\\fR]\n.br\n\
         .B actorftpd check\\-config\n\\fIFILE\\fR\n.br\n.B actorftpd hash\\-password\n.br\n\
         .B actorftpd who\n[\\fIOPTIONS\\fR]\n.br\n.B actorftpd kick\n\
         [\\fIOPTIONS\\fR] \\fISESSION_ID\\fR | \\fB\\-\\-user\\fR \\fINAME\\fR\n\
         .SH DESCRIPTION\n\
         The text of \\fBactorftpd \\-\\-help\\fR:\n.PP\n.nf\n",
    );
    for line in help.lines() {
        page.push_str(&roff(line));
        page.push('\n');
    }
    page.push_str(
        ".fi\n.SH SIGNALS\n\
         SIGHUP reopens the log file and the transfer log and checks the users file and the TLS \
         files again; SIGTERM and SIGINT stop gracefully (the admin endpoint's /ready answers \
         503 first, then new connections are refused and transfers get --shutdown-grace), a \
         second one at once.\n\
         .SH SEE ALSO\nREADME.md (\"Running as a service\"), xferlog(5), systemd.service(5)\n",
    );
    page
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
        Some(Sub::CheckConfig { file }) => return Ok(Invocation::CheckConfig(file)),
        Some(Sub::User {
            action,
            name,
            users,
            config,
            root,
            storage,
            endpoint,
            region,
            permissions,
            allowed_networks,
            require_tls,
        }) => {
            let from_config = match (&users, &config) {
                (None, Some(path)) => Options::load(path)?.users.map(|s| s.value),
                _ => None,
            };
            let database = users
                .or_else(|| from_config.map(|p| p.display().to_string()))
                .ok_or("user: give the database with --users URL or --config FILE")?;
            return Ok(Invocation::User(Box::new(UserCommand {
                database,
                action,
                name,
                root,
                storage,
                endpoint,
                region,
                permissions,
                allowed_networks,
                require_tls,
            })));
        }
        Some(Sub::Kick {
            session,
            user,
            admin,
            admin_token_file,
        }) => {
            use crate::observability::kick::KickTarget;
            let target = match (session, user) {
                (Some(id), None) => KickTarget::Session(id),
                (None, Some(name)) => KickTarget::User(name),
                _ => return Err("kick: give a SESSION_ID or --user NAME (one of them)".into()),
            };
            let token_file = admin_token_file;
            return Ok(Invocation::Kick {
                target,
                admin,
                token_file,
            });
        }
        None => {}
    }
    let level = match (opt.verbose, opt.quiet) {
        (0, 0) => None,
        (_, 1) => Some("warn"),
        (_, q) if q >= 2 => Some("error"),
        (1, _) => Some("debug"),
        _ => Some("trace"),
    };
    fn given<T>(key: &'static str, v: Option<T>) -> Option<Setting<T>> {
        v.map(|v| Setting::cli(key, v))
    }
    fn set(key: &'static str, on: bool) -> Option<Setting<bool>> {
        on.then(|| Setting::cli(key, true))
    }
    // Every field, no `..`: a new option that is not wired here does not compile.
    let cli = Options {
        listen: given("listen", opt.listen),
        root: given("root", opt.root),
        storage: given("storage", opt.storage),
        users: given("users", opt.users),
        passive_ports: given("passive_ports", opt.passive_ports),
        workers: given("workers", opt.workers),
        idle_timeout: given("idle_timeout", opt.idle_timeout),
        login_timeout: given("login_timeout", opt.login_timeout),
        data_timeout: given("data_timeout", opt.data_timeout),
        stall_timeout: given("stall_timeout", opt.stall_timeout),
        log_level: given("log_level", level.map(str::to_owned).or(opt.log_level)),
        log_format: given("log_format", opt.log_format),
        log_file: given("log_file", opt.log_file),
        max_sessions: given("max_sessions", opt.max_sessions),
        max_sessions_per_ip: given("max_sessions_per_ip", opt.max_sessions_per_ip),
        ipv6_prefix: given("ipv6_prefix", opt.ipv6_prefix),
        login_failure_delay_ms: given("login_failure_delay_ms", opt.login_failure_delay_ms),
        max_login_failures: given("max_login_failures", opt.max_login_failures),
        ban_failures: given("ban_failures", opt.ban_failures),
        ban_window: given("ban_window", opt.ban_window),
        ban_time: given("ban_time", opt.ban_time),
        allow_fxp: set("allow_fxp", opt.allow_fxp),
        show_dotfiles: set("show_dotfiles", opt.show_dotfiles),
        passive_address: given("passive_address", opt.passive_address),
        proxy_protocol: set("proxy_protocol", opt.proxy_protocol),
        trusted_proxies: given("trusted_proxies", opt.trusted_proxies),
        shutdown_grace: given("shutdown_grace", opt.shutdown_grace),
        stale_upload_age: given("stale_upload_age", opt.stale_upload_age),
        tls_cert: given("tls_cert", opt.tls_cert),
        tls_key: given("tls_key", opt.tls_key),
        implicit_tls_listen: given("implicit_tls_listen", opt.implicit_tls_listen),
        require_tls_control: set("require_tls_control", opt.require_tls_control),
        require_tls_data: set("require_tls_data", opt.require_tls_data),
        require_tls_session_reuse: set("require_tls_session_reuse", opt.require_tls_session_reuse),
        xferlog: given("xferlog", opt.xferlog),
        admin_listen: given("admin_listen", opt.admin_listen),
        admin_allow_remote: set("admin_allow_remote", opt.admin_allow_remote),
        metrics_listen: given("metrics_listen", opt.metrics_listen),
        metrics_allow_remote: set("metrics_allow_remote", opt.metrics_allow_remote),
        admin_token_file: given("admin_token_file", opt.admin_token_file),
        min_rate: given("min_rate", opt.min_rate),
        min_rate_window: given("min_rate_window", opt.min_rate_window),
        max_transfer_threads: given("max_transfer_threads", opt.max_transfer_threads),
        max_download_rate: given("max_download_rate", opt.max_download_rate),
        max_upload_rate: given("max_upload_rate", opt.max_upload_rate),
        banner: given("banner", opt.banner),
        upload_hook: given("upload_hook", opt.upload_hook),
        upload_hook_url: given("upload_hook_url", opt.upload_hook_url),
        run_as: given("run_as", opt.run_as),
        umask: given("umask", opt.umask),
    };
    let merged = match &opt.config {
        Some(path) => cli.over(Options::load(path)?),
        None => cli,
    };
    Ok(Invocation::Run(Box::new(config_file::resolve(merged)?)))
}

#[cfg(test)]
mod tests;
