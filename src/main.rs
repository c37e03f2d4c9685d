//! The actorftpd daemon: parse options, load users, bind, start the actors, wait for a signal,
//! shut down gracefully. Also `actorftpd hash-password`.
//!
//! This is the only place that writes to stdout: the listening address and, for the embedded
//! default user, exactly how to connect. Everything else goes to the log (stderr).

use actorftpd::auth::{
    hash_password, random_password, Credential, Password, Permissions, User, UserDb,
};
use actorftpd::listener::{OpenSessions, Shutdown};
use actorftpd::observability::token::AdminToken;
use actorftpd::printable::escape_controls;
use actorftpd::tls::{self, TlsPolicy};
use actorftpd::{cli, server};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Name of the one-off user of the embedded default.
const DEFAULT_USER: &str = "ftpuser";

fn main() -> ExitCode {
    let result = match cli::parse() {
        Ok(cli::Invocation::HashPassword) => print_hash(),
        Ok(cli::Invocation::Who {
            admin,
            once,
            json,
            token_file,
        }) => actorftpd::observability::who::run(admin, token_file.as_deref(), once, json),
        Ok(cli::Invocation::Run(settings)) => {
            env_logger::Builder::from_env(
                env_logger::Env::default().default_filter_or(settings.log_level),
            )
            .format(log_line)
            .init();
            run(*settings)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // SECURITY: an error may quote a client's or an endpoint's text; never print it raw.
            eprintln!("actorftpd: {}", escape_controls(&e));
            ExitCode::from(2)
        }
    }
}

/// One log line, laid out as env_logger's default (`[time LEVEL target] message`, the level
/// coloured on a terminal), with the message's control characters escaped.
///
/// SECURITY: messages quote user names, paths and command lines that clients chose. Escaped
/// always, not only on a terminal: log files get `cat`ed and `tail`ed too, and a CR or LF in a
/// message must not forge a line.
fn log_line(buf: &mut env_logger::fmt::Formatter, record: &log::Record) -> std::io::Result<()> {
    let text = match record.args().as_str() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(record.args().to_string()),
    };
    let level = record.level();
    let style = buf.default_level_style(level);
    writeln!(
        buf,
        "[{} {style}{level:<5}{style:#} {}] {}",
        buf.timestamp_millis(),
        record.target(),
        escape_controls(&text)
    )
}

/// `actorftpd hash-password`: the password comes from the terminal without echo (asked twice),
/// or from one line of standard input; never from the command line, where `ps` would show it.
fn print_hash() -> Result<(), String> {
    use std::io::{BufRead, IsTerminal};
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        return Err("an empty password cannot be hashed".into());
    }
    let hash = hash_password(&password)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{hash}").map_err(|e| e.to_string())
}

/// The one-off user: how to connect is printed once the address is known.
struct OneOff {
    root: PathBuf,
    password: String,
}

fn run(settings: cli::RunSettings) -> Result<(), String> {
    let (users, one_off) = match &settings.users {
        Some(path) => (UserDb::load(path)?, None),
        None => {
            let root = match &settings.root {
                Some(r) => r.clone(),
                None => default_root()?,
            };
            if !root.is_dir() {
                return Err(format!("root {} is not a directory", root.display()));
            }
            let root = root
                .canonicalize()
                .map_err(|e| format!("root {}: {e}", root.display()))?;
            let password = random_password(16)?;
            let user = User::new(
                DEFAULT_USER,
                Credential::Plain(Password::new(password.clone())),
                root.clone(),
                Permissions::ALL,
            )
            .open_root()?;
            (UserDb::single(user), Some(OneOff { root, password }))
        }
    };
    // Upload temporary files a crash left behind (no upload of this process is in flight yet).
    for root in users.roots() {
        if let Err(e) = actorftpd::file_store::sweep_temp_files(root) {
            log::warn!("cannot sweep {} for abandoned uploads: {e}", root.display());
        }
    }
    let mut config = settings.config;
    if let Some(path) = &settings.admin_token_file {
        config.admin_token = Some(AdminToken::load_or_create(path)?);
    }
    if let Some(files) = &settings.tls {
        config.tls = Some(TlsPolicy {
            config: tls::load_config(&files.cert, &files.key)?,
            require_control: files.require_control,
            require_data: files.require_data,
            require_session_reuse: files.require_session_reuse,
        });
    }
    let listen = config.listen;
    let std_listener =
        server::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local = std_listener.local_addr().map_err(|e| e.to_string())?;
    let implicit = match config.implicit_tls_listen {
        Some(addr) => Some(
            server::bind(addr)
                .map_err(|e| format!("cannot listen on {addr} (implicit TLS): {e}"))?,
        ),
        None => None,
    };
    let implicit_local = match &implicit {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let bind_endpoint = |addr: Option<SocketAddr>, what: &str| -> Result<_, String> {
        match addr {
            Some(a) => {
                let l =
                    server::bind(a).map_err(|e| format!("cannot listen on {a} ({what}): {e}"))?;
                let local = l.local_addr().map_err(|e| e.to_string())?;
                Ok((Some(l), Some(local)))
            }
            None => Ok((None, None)),
        }
    };
    let (admin, admin_local) = bind_endpoint(settings.admin_listen, "admin")?;
    let (metrics, metrics_local) = bind_endpoint(settings.metrics_listen, "metrics")?;
    let endpoints = Endpoints {
        implicit: implicit_local,
        admin: admin_local,
        metrics: metrics_local,
        admin_token_file: settings.admin_token_file.clone(),
    };
    let sockets = server::Sockets {
        control: std_listener,
        implicit_tls: implicit,
        admin,
        metrics,
    };

    let grace = config.shutdown_grace;
    let tls_on = config.tls.is_some();
    let system = actix_rt::System::new();
    system.block_on(async move {
        let running = server::start(config, users, sockets)?;
        announce(local, &endpoints, tls_on, one_off.as_ref());
        wait_for_signal().await;
        // Stop accepting, 421 to idle sessions, let transfers finish within the grace period
        // (then they are aborted and unfinished uploads discarded), then stop.
        if let Some(implicit) = &running.implicit {
            let _ = implicit.send(Shutdown { grace }).await;
        }
        let _ = running.listener.send(Shutdown { grace }).await;
        let deadline = Instant::now() + grace + Duration::from_secs(2);
        while Instant::now() < deadline {
            let mut open = running.listener.send(OpenSessions).await.unwrap_or(0);
            if let Some(implicit) = &running.implicit {
                open += implicit.send(OpenSessions).await.unwrap_or(0);
            }
            if open == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        log::info!("stopped");
        running.stop_workers();
        Ok::<(), String>(())
    })
}

/// The folder served when neither `--root` nor `--users` is given: `$TMPDIR/actorftpd-root-UID`
/// (the effective uid in the name, so two local users do not collide).
///
/// SECURITY: the temporary folder is shared, so another local user may have planted a symlink
/// or a folder of their own under our name, to make us serve (and write into) their choice.
/// - The temporary folder must not let others rename our entry: not writable by group or
///   others unless sticky (as /tmp is).
/// - The folder is made with mkdir mode 0700; an existing one is opened with O_NOFOLLOW and
///   checked on the open handle: a real folder, owned by us, not writable by group or others
///   (refused), and tightened to 0700 if others could read it.
/// - `welcome.txt` is created relative to that handle with O_CREAT|O_EXCL|O_NOFOLLOW: a symlink
///   planted under that name is never followed, an existing file is left alone.
fn default_root() -> Result<PathBuf, String> {
    use rustix::fs::{Mode, OFlags};
    use rustix::io::Errno;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let uid = rustix::process::geteuid().as_raw();
    let tmp = std::env::temp_dir();
    let root = tmp.join(format!("actorftpd-root-{uid}"));
    let shown = root.display().to_string();
    let refuse = |why: String| format!("default root {shown} {why}; remove it or pass --root DIR");

    let tmp_mode = std::fs::metadata(&tmp)
        .map_err(|e| format!("temporary folder {}: {e}", tmp.display()))?
        .mode();
    if tmp_mode & 0o022 != 0 && tmp_mode & 0o1000 == 0 {
        return Err(format!(
            "temporary folder {} is writable by others and not sticky (mode {:03o}); set TMPDIR \
             to a private folder or pass --root DIR",
            tmp.display(),
            tmp_mode & 0o7777
        ));
    }
    match rustix::fs::mkdir(&root, Mode::RWXU) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(format!("cannot create {shown}: {e}")),
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dir = match rustix::fs::open(&root, flags, Mode::empty()) {
        Ok(fd) => std::fs::File::from(fd),
        Err(Errno::LOOP | Errno::NOTDIR) => {
            let link = std::fs::symlink_metadata(&root).is_ok_and(|m| m.file_type().is_symlink());
            return Err(refuse(
                if link {
                    "is a symlink"
                } else {
                    "is not a folder"
                }
                .into(),
            ));
        }
        Err(e) => return Err(format!("cannot open {shown}: {e}")),
    };
    let meta = dir
        .metadata()
        .map_err(|e| format!("cannot inspect {shown}: {e}"))?;
    if !meta.is_dir() {
        return Err(refuse("is not a folder".into()));
    }
    if meta.uid() != uid {
        return Err(refuse(format!(
            "belongs to uid {}, not to this user ({uid})",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refuse(format!("is writable by others (mode {mode:03o})")));
    }
    if mode & 0o077 != 0 {
        dir.set_permissions(std::fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("cannot chmod 700 {shown}: {e}"))?;
        log::info!("{shown} was readable by others (mode {mode:03o}); now 0700");
    }
    let create =
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(&dir, "welcome.txt", create, Mode::from_raw_mode(0o644)) {
        Ok(fd) => std::fs::File::from(fd)
            .write_all(
                b"Served by actorftpd. Upload files here, or pass --root DIR to serve another folder.\n",
            )
            .map_err(|e| format!("cannot write {shown}/welcome.txt: {e}"))?,
        // Already there, or something planted under that name: not followed, left alone.
        Err(Errno::EXIST) => {}
        Err(e) => return Err(format!("cannot create {shown}/welcome.txt: {e}")),
    }
    Ok(root)
}

/// Where the optional endpoints ended up (port 0 binds are resolved).
struct Endpoints {
    implicit: Option<SocketAddr>,
    admin: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    admin_token_file: Option<PathBuf>,
}

fn announce(local: SocketAddr, endpoints: &Endpoints, tls: bool, one_off: Option<&OneOff>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "actorftpd listening on {local}");
    if let Some(addr) = endpoints.implicit {
        let _ = writeln!(out, "actorftpd implicit TLS on {addr}");
    }
    if let Some(addr) = endpoints.admin {
        let token = match &endpoints.admin_token_file {
            Some(path) => format!(" --admin-token-file {}", show(path)),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "actorftpd admin endpoint on {addr} (actorftpd who --admin {addr}{token})"
        );
    }
    if let Some(addr) = endpoints.metrics {
        let _ = writeln!(out, "actorftpd metrics on http://{addr}/metrics");
    }
    if let Some(o) = one_off {
        let host = connect_host(local);
        let port = local.port();
        let url = format!("ftp://{DEFAULT_USER}:{}@{host}:{port}/", o.password);
        let _ = writeln!(
            out,
            "serving {} as user {DEFAULT_USER} with a one-off password (new at every start)",
            show(&o.root)
        );
        let _ = writeln!(out, "  url:  {url}");
        // With FTPS on, the commands ask for TLS (and accept a self-signed certificate).
        let (curl_tls, lftp_tls) = if tls {
            (
                "--ssl-reqd -k ",
                " -e 'set ftp:ssl-force true; set ssl:verify-certificate no'",
            )
        } else {
            ("", "")
        };
        let _ = writeln!(out, "  curl: curl {curl_tls}{url}");
        let _ = writeln!(
            out,
            "  lftp: lftp -u {DEFAULT_USER},{} -p {port}{lftp_tls} {host}",
            o.password
        );
    }
    let _ = out.flush();
}

/// The address a client on this machine would type (an unspecified bind becomes loopback).
fn connect_host(local: SocketAddr) -> String {
    match local {
        SocketAddr::V4(a) if a.ip().is_unspecified() => "127.0.0.1".to_owned(),
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => "[::1]".to_owned(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

fn show(p: &Path) -> String {
    p.display().to_string()
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
