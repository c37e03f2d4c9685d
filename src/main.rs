//! The actorftpd daemon: parse options, load users, bind, give up root (`--run-as`), start the
//! actors, serve signals (SIGHUP reopens logs and re-checks files; SIGTERM/SIGINT shut down
//! gracefully, a second one at once), and tell systemd about each (`READY=1`, `RELOADING=1`,
//! `STOPPING=1`) when it asks (`NOTIFY_SOCKET`). Also `actorftpd hash-password` and
//! `check-config`.
//!
//! This is the only place that writes to stdout: the listening address and, for the embedded
//! default user, exactly how to connect. Everything else goes to the log (stderr).

use actorftpd::auth::db::{Database, DbUrl};
use actorftpd::auth::{
    hash_password, random_password, read_new_password, Credential, Password, Permissions, User,
    UserDb,
};
use actorftpd::config_file::{self, RunSettings};
use actorftpd::file_store::object::{uploads_in_flight, Location};
use actorftpd::listener::{OpenSessions, Shutdown};
use actorftpd::logging::{self, AppendFile, XferRelay};
use actorftpd::observability::notify::{notify, Notifier};
use actorftpd::observability::token::AdminToken;
use actorftpd::printable::escape_controls;
use actorftpd::privileges;
use actorftpd::reload::Reloader;
use actorftpd::swap::Shared;
use actorftpd::tls::{self, TlsPolicy};
use actorftpd::{cli, server};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
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
        Ok(cli::Invocation::User(command)) => command.run(),
        Ok(cli::Invocation::Kick {
            target,
            admin,
            token_file,
        }) => actorftpd::observability::kick::run(admin, token_file.as_deref(), &target),
        Ok(cli::Invocation::CheckConfig(path)) => config_file::check(&path).and_then(|summary| {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", escape_controls(&summary)).map_err(|e| e.to_string())
        }),
        Ok(cli::Invocation::Run(settings)) => {
            // Before any file is created (the log file included).
            privileges::set_umask(settings.umask);
            match logging::init(&settings.log) {
                Ok(log_file) => run(*settings, log_file),
                Err(e) => Err(e),
            }
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

/// `actorftpd hash-password`: the password comes from the terminal without echo (asked twice),
/// or from one line of standard input; never from the command line, where `ps` would show it.
fn print_hash() -> Result<(), String> {
    let hash = hash_password(&read_new_password()?)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{hash}").map_err(|e| e.to_string())
}

/// How long a stop waits for uploads to object storage to be completed or aborted.
const ABORT_WAIT: Duration = Duration::from_secs(10);

/// The one-off user: how to connect is printed once the address is known.
struct OneOff {
    /// The folder, or `s3://BUCKET/PREFIX`, as shown.
    serving: String,
    password: String,
}

fn run(settings: RunSettings, log_file: Option<AppendFile>) -> Result<(), String> {
    for warning in &settings.warnings {
        log::warn!("{warning}");
    }
    if settings.run_as.is_some() && settings.users.is_none() && settings.root.is_none() {
        return Err(
            "--run-as needs --users FILE or --root DIR (the default folder belongs to the user \
             who starts the daemon)"
                .into(),
        );
    }
    // Looked up now, while /etc is certainly readable; the switch comes after binding.
    let account = match &settings.run_as {
        Some(spec) => Some(privileges::RunAs::parse(spec)?.lookup()?),
        None => None,
    };
    let tls_on = settings.tls.is_some();
    // Users in a database are opened after `--run-as` (its connections run on threads).
    let database = match &settings.users {
        Some(url) if DbUrl::is_database(url) => Some(DbUrl::parse(&url.display().to_string())?),
        _ => None,
    };
    let (users, one_off) = match &settings.users {
        Some(_) if database.is_some() => (UserDb::empty(), None),
        Some(path) => (config_file::load_users(path, tls_on)?, None),
        None => {
            let password = random_password(16)?;
            let credential = Credential::Plain(Password::new(password.clone()));
            let (user, serving) = match &settings.storage {
                Some(url) => {
                    let mut user =
                        User::new(DEFAULT_USER, credential, PathBuf::new(), Permissions::ALL);
                    let location = Location::parse(url)?;
                    let serving = location.url();
                    user.storage = Some(location);
                    (user.open_root()?, serving)
                }
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
                    let serving = show(&root);
                    let user = User::new(DEFAULT_USER, credential, root, Permissions::ALL);
                    (user.open_root()?, serving)
                }
            };
            (UserDb::single(user), Some(OneOff { serving, password }))
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
            config: Arc::new(Shared::new(tls::load_config(&files.cert, &files.key)?)),
            require_control: files.require_control,
            require_data: files.require_data,
            require_session_reuse: files.require_session_reuse,
        });
    }
    // The transfer log goes through a pipe this process can point at a new file on SIGHUP.
    let mut xferlog = match &config.xferlog {
        Some(path) => XferRelay::open(path)?,
        None => None,
    };
    if let Some(relay) = &xferlog {
        config.xferlog = relay.actor_path().or(config.xferlog);
    }
    let bind = |addr: SocketAddr, what: &str| {
        server::bind(addr).map_err(|e| {
            let hint = match privileges::low_port_hint(addr.port()) {
                Some(h) if e.kind() == std::io::ErrorKind::PermissionDenied => format!("; {h}"),
                _ => String::new(),
            };
            format!("cannot listen on {addr}{what}: {e}{hint}")
        })
    };
    let listen = config.listen;
    let std_listener = bind(listen, "")?;
    let local = std_listener.local_addr().map_err(|e| e.to_string())?;
    let implicit = match config.implicit_tls_listen {
        Some(addr) => Some(bind(addr, " (implicit TLS)")?),
        None => None,
    };
    let implicit_local = match &implicit {
        Some(l) => Some(l.local_addr().map_err(|e| e.to_string())?),
        None => None,
    };
    let bind_endpoint = |addr: Option<SocketAddr>, what: &str| -> Result<_, String> {
        match addr {
            Some(a) => {
                let l = bind(a, &format!(" ({what})"))?;
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
    // SECURITY: every socket is bound and every file read; no thread runs yet, so the switch
    // covers the whole process (see `privileges`).
    if let Some(account) = &account {
        privileges::drop_to(account)?;
        log::info!("running as {account}");
    }
    // After the switch: the S3 client's threads start here, as the final user. A bucket that
    // cannot be reached stops the daemon with one line, before it says it is serving.
    for bucket in users.buckets() {
        bucket.check()?;
        log::info!("storage {} is reachable", bucket.location().url());
    }
    let users = match &database {
        Some(url) => {
            let db = UserDb::in_database(Database::open(url)?);
            log::info!("users in {} (schema up to date)", url.shown());
            db
        }
        None => users,
    };
    actorftpd::file_store::object::sweep::start_sweeping(users.buckets(), config.stale_upload_age);
    // SIGHUP re-reads a users file; a database is read at each login anyway.
    let users_file = settings.users.clone().filter(|_| database.is_none());
    let reloader = Reloader::new(users_file, settings.tls.clone());
    let notifier = Notifier::from_env();

    let grace = config.shutdown_grace;
    let system = actix_rt::System::new();
    system.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let listen_for = |kind: SignalKind| {
            signal(kind).map_err(|e| format!("cannot handle signal {}: {e}", kind.as_raw_value()))
        };
        // SIGHUP first: its default action would kill the daemon mid-upload.
        let mut hangup = listen_for(SignalKind::hangup())?;
        let mut term = listen_for(SignalKind::terminate())?;
        let mut interrupt = listen_for(SignalKind::interrupt())?;
        // What SIGHUP accepts is what new logins and new TLS sessions use.
        let tls_cell = config.tls.as_ref().map(|t| t.config.clone());
        let running = server::start(config, users, sockets)?;
        let users_cell = running.users.clone();
        let mut reloader = reloader.on_users(move |db| users_cell.set(db));
        if let Some(cell) = tls_cell {
            reloader = reloader.on_tls(move |c| cell.set(c));
        }
        if let Some(relay) = &mut xferlog {
            relay.start()?;
        }
        let xferlog = std::sync::Arc::new(xferlog);
        if account.is_some() {
            // Every thread, now started, must report the new ids.
            log::debug!("thread uids: {:?}", privileges::thread_uids());
        }
        announce(local, &endpoints, tls_on, one_off.as_ref());
        // Every listener is bound and every actor started: connections are served from here.
        notify(notifier.as_ref(), "READY=1");
        loop {
            tokio::select! {
                _ = hangup.recv() => {
                    notify(notifier.as_ref(), "RELOADING=1");
                    let files = (log_file.clone(), xferlog.clone());
                    let work = tokio::task::spawn_blocking(move || {
                        let lines = on_hangup(files.0.as_ref(), files.1.as_ref().as_ref(), &mut reloader);
                        (lines, reloader)
                    });
                    match work.await {
                        Ok((lines, r)) => {
                            reloader = r;
                            log::info!("SIGHUP: {}", lines.join("; "));
                            // What was accepted is in force; what was refused left the old.
                            notify(notifier.as_ref(), "READY=1");
                        }
                        Err(e) => return Err(format!("SIGHUP handling failed: {e}")),
                    }
                }
                _ = term.recv() => break,
                _ = interrupt.recv() => break,
            }
        }
        // Not ready first (load balancers and probes stop sending clients), then stop accepting.
        running.readiness.drain();
        notify(notifier.as_ref(), "STOPPING=1");
        log::info!("stopping: no new connections; transfers get {} s", grace.as_secs());
        let graceful = async {
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
            // Uploads to object storage that the sessions left are aborted by now, or being
            // aborted: wait for S3 to confirm, so no multipart upload outlives the daemon.
            let deadline = Instant::now() + ABORT_WAIT;
            while uploads_in_flight() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        // A second SIGTERM/SIGINT stops at once (uploads' temporary files are swept at the next
        // start); SIGHUP during the shutdown is ignored.
        let again = async {
            loop {
                tokio::select! {
                    _ = term.recv() => break,
                    _ = interrupt.recv() => break,
                    _ = hangup.recv() => {}
                }
            }
        };
        tokio::select! {
            _ = graceful => log::info!("stopped"),
            _ = again => {
                log::warn!("second stop signal: stopping now, running transfers are cut off");
                if let Some(relay) = xferlog.as_ref() {
                    relay.drain();
                }
                std::process::exit(1);
            }
        }
        if let Some(relay) = xferlog.as_ref() {
            relay.drain();
        }
        running.stop_workers();
        Ok::<(), String>(())
    })
}

/// SIGHUP: reopens the log file and the transfer log (logrotate moved them), re-reads the
/// users file and TLS files. Returns what happened, one clause each, for one log line.
fn on_hangup(
    log_file: Option<&AppendFile>,
    xferlog: Option<&XferRelay>,
    reloader: &mut Reloader,
) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(f) = log_file {
        lines.push(match f.reopen() {
            Ok(()) => format!("log file {} reopened", f.path().display()),
            Err(e) => format!("log file {} not reopened: {e}", f.path().display()),
        });
    }
    if let Some(x) = xferlog {
        lines.push(match x.reopen() {
            Ok(()) => format!("transfer log {} reopened", x.path().display()),
            Err(e) => format!("transfer log {} not reopened: {e}", x.path().display()),
        });
    }
    lines.extend(reloader.hangup());
    if lines.is_empty() {
        lines.push("nothing to reopen or reload".into());
    }
    lines
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

    let tmp_meta =
        std::fs::metadata(&tmp).map_err(|e| format!("temporary folder {}: {e}", tmp.display()))?;
    let tmp_mode = tmp_meta.mode();
    // SECURITY: the owner of the temporary folder could rename our root away and put another
    // in its place between the checks below and its use: it must be us or root.
    if tmp_meta.uid() != uid && tmp_meta.uid() != 0 {
        return Err(format!(
            "temporary folder {} belongs to uid {}, not to this user ({uid}) or root; set TMPDIR \
             to a folder of yours or pass --root DIR",
            tmp.display(),
            tmp_meta.uid()
        ));
    }
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
            o.serving
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
