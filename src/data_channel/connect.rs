//! Opening the data connection: accepting the passive one (SECURITY: only from the control
//! connection's peer, unless FXP is allowed) or connecting to the active target, within the
//! data-connection timeout. With `--proxy-protocol`, a passive connection from a trusted proxy
//! (a load balancer forwarding the passive ports) has its PROXY header read first: exactly its
//! bytes, so none reaches an uploaded file, and the client in it is the one compared.

use super::{DataSocket, TransferError, QUICK_ACCEPTS};
use crate::proxy::ProxyProtocol;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Accepts the first connection from the control peer; others are closed untouched. A client
/// normally connects before it sends RETR, so the first try usually finds the connection
/// waiting; only otherwise is the listener registered with the reactor and awaited.
pub(super) async fn accept_from(
    listener: std::net::TcpListener,
    peer: Option<IpAddr>,
    proxies: Option<&ProxyProtocol>,
    timeout: Duration,
) -> Result<DataSocket, TransferError> {
    let failed = |e: io::Error| TransferError::NoConnection(format!("accept failed: {e}"));
    let accept = async {
        // A few tries at most: a host that keeps the backlog full of foreign connections must
        // not hold this thread (and every session on it) in a loop that never yields; the
        // reactor's accept below is bounded by tokio's cooperative budget.
        for _ in 0..QUICK_ACCEPTS {
            match accept_nonblocking(&listener) {
                Ok((sock, from)) => {
                    if let Some(sock) = admit(sock, from, peer, proxies).await {
                        return Ok(sock);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(failed(e)),
            }
        }
        let listener = TcpListener::from_std(listener).map_err(failed)?;
        loop {
            let (stream, from) = listener.accept().await.map_err(failed)?;
            let sock = stream.into_std().map_err(failed)?;
            if let Some(sock) = admit(sock, from, peer, proxies).await {
                return Ok(sock);
            }
        }
    };
    match tokio::time::timeout(timeout, accept).await {
        Ok(r) => r,
        Err(_) => Err(TransferError::NoConnection(
            "nobody connected to the passive port in time".into(),
        )),
    }
}

/// The data socket if the connection from `from` may be this transfer's; `None` (and it is
/// closed) if not.
async fn admit(
    sock: DataSocket,
    from: SocketAddr,
    peer: Option<IpAddr>,
    proxies: Option<&ProxyProtocol>,
) -> Option<DataSocket> {
    let (sock, client) = match proxies {
        // SECURITY: a trusted proxy's connection starts with a PROXY header, required and read
        // (bounded in size and time) whether or not the peer is checked, so it can never end
        // up in an uploaded file; the client it names is the one checked below.
        Some(proxies) if proxies.trusts(from.ip()) => {
            let header = async {
                let mut stream = TcpStream::from_std(sock)?;
                let origin = crate::proxy::read_header(&mut stream, proxies.header_timeout)
                    .await
                    .map_err(|e| io::Error::other(e.to_string()))?;
                Ok::<_, io::Error>((stream.into_std()?, origin.client(from)))
            };
            match header.await {
                Ok(v) => v,
                Err(e) => {
                    log::warn!("data connection from trusted proxy {from} refused: {e}");
                    return None;
                }
            }
        }
        _ => (sock, from),
    };
    // SECURITY: a passive port is guessable; only the control connection's peer may use it.
    match peer {
        Some(peer) if !same_ip(client.ip(), peer) => {
            let through = if client == from {
                String::new()
            } else {
                format!(" through proxy {from}")
            };
            log::warn!(
                "data connection from {client}{through} refused: control connection is from {peer}"
            );
            None
        }
        _ => Some(sock),
    }
}

/// `accept4` with `SOCK_NONBLOCK`: the socket comes out ready for `send_bytes`, without the
/// extra `ioctl` that `std`'s accept followed by `set_nonblocking` costs.
pub(super) fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> io::Result<(DataSocket, SocketAddr)> {
    use rustix::net::{acceptfrom_with, SocketFlags};
    let (fd, from) = acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let from = from
        .and_then(|a| SocketAddr::try_from(a).ok())
        .ok_or_else(|| io::Error::other("accepted a connection without an IP address"))?;
    Ok((DataSocket::from(fd), from))
}

pub(super) async fn connect_to(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<DataSocket, TransferError> {
    let failed =
        |e: io::Error| TransferError::NoConnection(format!("connect to {addr} failed: {e}"));
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s.into_std().map_err(failed),
        Ok(Err(e)) => Err(failed(e)),
        Err(_) => Err(TransferError::NoConnection(format!(
            "connect to {addr} timed out"
        ))),
    }
}

/// Compares addresses, treating an IPv4-mapped IPv6 address as its IPv4 form.
pub fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    canonical_ip(a) == canonical_ip(b)
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 form; any other as it is. Every
/// place that compares or counts client addresses goes through this, so a dual-stack socket
/// cannot make one client look like two.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_mapped_addresses_compare_equal() {
        let v4: IpAddr = "127.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        let other: IpAddr = "127.0.0.2".parse().expect("ip");
        assert!(same_ip(v4, mapped));
        assert!(!same_ip(v4, other));
    }
}
