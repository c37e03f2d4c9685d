//! Starting the actors: worker Arbiters, the FileStore pool and the Listener(s).
//!
//! Used by `main.rs` and by tests that want a real daemon inside their own process.

use crate::auth::UserDb;
use crate::config::Config;
use crate::file_store::FileStore;
use crate::listener::Listener;
use crate::session::Services;
use actix::prelude::*;
use actix_rt::{Arbiter, ArbiterHandle};
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

fn handles(workers: &[Arbiter]) -> Vec<ArbiterHandle> {
    workers.iter().map(Arbiter::handle).collect()
}

/// Starts the FileStore pool, one worker Arbiter per configured worker, and the Listener(s).
/// Must run inside an actix System.
pub fn start(
    config: Config,
    users: UserDb,
    listener: std::net::TcpListener,
    implicit_tls: Option<std::net::TcpListener>,
) -> io::Result<Running> {
    let local_addr = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let implicit_tls = match implicit_tls {
        Some(l) if config.tls.is_some() => Some(tokio::net::TcpListener::from_std(l)?),
        Some(_) => {
            return Err(io::Error::other(
                "implicit TLS needs --tls-cert and --tls-key",
            ))
        }
        None => None,
    };
    let store = FileStore::start_pool(config.store_threads);
    let workers: Vec<Arbiter> = (0..config.workers.max(1)).map(|_| Arbiter::new()).collect();
    let services = Services {
        config: Arc::new(config),
        users: Arc::new(users),
        store: store.clone(),
    };
    let implicit = implicit_tls.map(|l| {
        Listener::new(l, handles(&workers), services.clone())
            .implicit_tls()
            .start()
    });
    let listener = Listener::new(listener, handles(&workers), services).start();
    Ok(Running {
        local_addr,
        listener,
        implicit,
        store,
        workers,
    })
}
