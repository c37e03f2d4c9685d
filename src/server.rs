//! Starting the actors: worker Arbiters, the FileStore pool and the Listener(s).
//!
//! Used by `main.rs` and by tests that want a real daemon inside their own process.

use crate::auth::Authenticator;
use crate::auth::UserDb;
use crate::config::Config;
use crate::fdlimit;
use crate::file_store::{FileStore, Resolver, Store};
use crate::gatekeeper::{Gatekeeper, WatchBans};
use crate::listener::{Listener, Worker};
use crate::observability::admin::{AdminEndpoint, Routes};
use crate::observability::health::Readiness;
use crate::observability::metrics::Metrics;
use crate::observability::xferlog::XferLog;
use crate::session::{Recorders, Services};
use actix::prelude::*;
use actix_rt::Arbiter;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// A started server. Dropping it leaves the actors running until the System stops.
pub struct Running {
    pub local_addr: SocketAddr,
    pub listener: Addr<Listener>,
    /// The implicit-TLS listener, when one was asked for.
    pub implicit: Option<Addr<Listener>>,
    pub store: Addr<FileStore>,
    /// The users file in force for new logins: SIGHUP's reload replaces it here.
    pub users: Arc<crate::swap::Shared<UserDb>>,
    /// What `/ready` answers; SIGTERM turns it off first.
    pub readiness: Arc<Readiness>,
    workers: Vec<Arbiter>,
}

impl Running {
    /// Stops the worker Arbiters (their sessions end with them).
    pub fn stop_workers(&self) {
        for w in &self.workers {
            w.stop();
        }
    }
}

/// The services every Session shares: the FileStore and Authenticator pools for `config` and
/// `users`, and a Resolver on the current Arbiter for the Sessions started there (actor tests run
/// a Session without a Listener). Must run inside an actix System. The daemon (`start`) gives
/// each worker's Sessions that worker's own Resolver instead.
pub fn services(config: Config, users: UserDb, recorders: Recorders) -> Services {
    shared_services(config, users, recorders, |pool| Resolver::new(pool).start())
}

/// `services`, with the Resolver that `resolver` starts for the FileStore pool.
fn shared_services(
    config: Config,
    users: UserDb,
    recorders: Recorders,
    resolver: impl FnOnce(Addr<FileStore>) -> Addr<Resolver>,
) -> Services {
    let users = Arc::new(crate::swap::Shared::new(Arc::new(users)));
    let pool = FileStore::start_pool(config.store_threads);
    let passive_range = config.passive_ports.clone().unwrap_or_else(|| {
        crate::gatekeeper::ports::default_range(&crate::gatekeeper::ports::ephemeral_range())
    });
    let passive = crate::gatekeeper::PassiveBook::new(passive_range, config.limits.ipv6_prefix);
    let auth = Authenticator::start_pool(users.clone(), crate::config::default_workers());
    Services {
        transfer_threads: Arc::new(tokio::sync::Semaphore::new(
            config.limits.transfer_threads.max(1),
        )),
        store: Store::new(pool.clone(), resolver(pool)),
        config: Arc::new(config),
        users,
        auth,
        recorders,
        gatekeeper: None,
        passive,
    }
}

/// Binds a control address. Done before the actors start so a bad address is reported as one
/// clear line.
pub fn bind(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // `[::]` means IPv6 only; listen on 0.0.0.0 as well for IPv4.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The sockets the daemon serves, bound before the actors start.
pub struct Sockets {
    pub control: std::net::TcpListener,
    pub implicit_tls: Option<std::net::TcpListener>,
    /// `/sessions` (and `/metrics` when metrics are on).
    pub admin: Option<std::net::TcpListener>,
    /// `/metrics` only.
    pub metrics: Option<std::net::TcpListener>,
}

/// SECURITY: raises the soft open-file limit to the hard one, then lowers `max_sessions` (one
/// warning line) if that many sessions could need more descriptors than the limit leaves: past
/// the limit, sessions get 421 instead of logged-in ones failing to open data connections and
/// new clients waiting on an accept that cannot succeed. Call before any thread is started:
/// what is open now counts as the daemon's own.
pub fn fit_descriptor_limit(mut config: Config) -> Config {
    let raised = fdlimit::raise_soft_limit();
    let show = |l: Option<u64>| l.map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    if raised.now != raised.before {
        log::info!(
            "open-file limit raised from {} to {}",
            show(raised.before),
            show(raised.now)
        );
    }
    // Without /proc, assume the standard streams and a few listening sockets.
    let open_now = fdlimit::open_descriptors().unwrap_or(16);
    let fixed = fdlimit::fixed_descriptors(open_now, config.workers.max(1), config.store_threads);
    let fit = fdlimit::sessions_that_fit(raised.now, fixed, config.limits.max_sessions);
    if let Some(note) = fit.note {
        log::warn!("{note}");
    }
    config.limits.max_sessions = fit.max_sessions;
    config
}

/// Starts the FileStore pool, the recorders, one worker Arbiter (with its Resolver) per
/// configured worker, the Listener(s) and the admin endpoints. Must run inside an actix System.
/// First fits `--max-sessions` to the open-file limit (`fit_descriptor_limit`).
pub fn start(config: Config, users: UserDb, sockets: Sockets) -> Result<Running, String> {
    let Sockets {
        control: listener,
        implicit_tls,
        admin,
        metrics: metrics_socket,
    } = sockets;
    let config = fit_descriptor_limit(config);
    let local_addr = listener.local_addr().map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let async_socket =
        |l: std::net::TcpListener| tokio::net::TcpListener::from_std(l).map_err(|e| e.to_string());
    let implicit_tls = match implicit_tls {
        Some(l) if config.tls.is_some() => Some(async_socket(l)?),
        Some(_) => return Err("implicit TLS needs --tls-cert and --tls-key".into()),
        None => None,
    };
    let metrics =
        (metrics_socket.is_some() || config.metrics_enabled).then(|| Metrics::default().start());
    let xferlog = match &config.xferlog {
        Some(path) => Some(XferLog::start(path)?),
        None => None,
    };
    let workers: Vec<Arbiter> = (0..config.workers.max(1)).map(|_| Arbiter::new()).collect();
    let gatekeeper = Gatekeeper::new(config.limits.clone(), config.login.clone()).start();
    let admin_token = config.admin_token.clone();
    let upload_hooks = crate::hooks::UploadHooks::start(&config.upload_hook)?;
    let readiness = Readiness::new(storage_probe(&users));
    let mut worker_set = Vec::new();
    let mut services = shared_services(
        config,
        users,
        Recorders {
            metrics: metrics.clone(),
            xferlog,
            upload_hooks,
        },
        |pool| {
            worker_set = workers
                .iter()
                .map(|arbiter| Worker {
                    arbiter: arbiter.handle(),
                    resolver: Resolver::start_in_arbiter(&arbiter.handle(), {
                        let pool = pool.clone();
                        move |_| Resolver::new(pool)
                    }),
                })
                .collect();
            // Each Session gets its own worker's Resolver (`Services::with_resolver`).
            worker_set[0].resolver.clone()
        },
    );
    services.gatekeeper = Some(gatekeeper.clone());
    let store = services.store.pool().clone();
    let users = services.users.clone();
    // Both Listeners share the one Gatekeeper: limits and bans hold across ports.
    let implicit = implicit_tls.map(|l| {
        Listener::new(l, worker_set.clone(), services.clone(), gatekeeper.clone())
            .implicit_tls()
            .start()
    });
    let listener = Listener::new(listener, worker_set, services, gatekeeper.clone()).start();
    for l in std::iter::once(&listener).chain(implicit.iter()) {
        gatekeeper.do_send(WatchBans(l.clone().recipient()));
    }
    let mut sessions_from = vec![listener.clone()];
    sessions_from.extend(implicit.clone());
    if let Some(l) = admin {
        let routes = Routes {
            sessions: sessions_from,
            metrics: metrics.clone(),
            token: admin_token,
            readiness: Some(readiness.clone()),
        };
        AdminEndpoint::new(async_socket(l)?, routes).start();
    }
    if let Some(l) = metrics_socket {
        let routes = Routes {
            sessions: Vec::new(),
            metrics,
            // Counters only: no names or addresses, so no token (see `admin`).
            token: None,
            readiness: None,
        };
        AdminEndpoint::new(async_socket(l)?, routes).start();
    }
    Ok(Running {
        local_addr,
        listener,
        implicit,
        store,
        users,
        readiness,
        workers,
    })
}

/// `/ready`'s storage probe: every local root is a folder, every bucket answers a listing.
fn storage_probe(users: &UserDb) -> crate::observability::health::Probe {
    let roots: Vec<std::path::PathBuf> = users.roots().into_iter().map(Into::into).collect();
    let buckets = users.buckets();
    Box::new(move || {
        for root in &roots {
            if !root.is_dir() {
                return Err(format!("root {} is not reachable", root.display()));
            }
        }
        buckets.iter().try_for_each(|b| b.check())
    })
}
