//! Preparing the data connection: PASV, EPSV, PORT and EPRT, the one pending endpoint (a
//! passive listener with the lease on its port, or an active target) and its expiry, and binding
//! the passive port the daemon's `PassiveBook` hands out. It never moves data: the DataChannel
//! does.

use super::dispatch::{reply, Answer, Handled};
use super::Session;
use crate::data_channel;
use crate::data_channel::DataEndpoint;
use crate::error::FtpError;
use crate::gatekeeper::PassiveLease;
use crate::protocol::{ParseError, Reply, ReplyCode};
use actix::prelude::*;
use std::net::{IpAddr, SocketAddr};

pub(super) enum DataSetup {
    None,
    /// A passive listener, and the lease on its port in the daemon's `PassiveBook`.
    Passive(std::net::TcpListener, PassiveLease),
    Active(SocketAddr),
}

/// The data endpoint a transfer command took, with the passive port's lease (released when the
/// transfer ends, or when this is dropped because the command failed first).
pub(super) struct Endpoint {
    pub(super) to: DataEndpoint,
    pub(super) lease: Option<PassiveLease>,
}

/// An IPv4 address, or the IPv4 address inside an IPv4-mapped IPv6 one.
pub(super) fn as_v4(ip: IpAddr) -> Option<std::net::Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// Loopback, private (RFC 1918, ULA) and link-local peers are "local": they get the control
/// connection's own address in PASV replies, never the NAT address.
fn is_local_peer(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_local_peer(IpAddr::V4(v4)),
            None => {
                let first = v6.segments()[0];
                v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
            }
        },
    }
}

/// Binds a passive listener on the control connection's local address, on `port`.
fn bind_passive(ip: IpAddr, port: u16) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    // Non-blocking from the start, and not registered with the reactor: the DataChannel
    // does that only if it has to wait for the client. SO_REUSEADDR: the port's earlier data
    // connections in TIME_WAIT do not keep it from being bound again.
    let addr = SocketAddr::new(ip, port);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(8)?;
    Ok(socket.into())
}

/// Ports of the passive range tried per PASV: a port can still be taken by another program
/// (the range is the daemon's by convention only); each try is a different port.
const BIND_TRIES: usize = 4;

impl Session {
    /// PASV and EPSV: open one passive listener (closing any earlier one).
    pub(super) fn cmd_pasv(
        &mut self,
        ctx: &mut Context<Self>,
        extended: bool,
        family: Option<u8>,
    ) -> Handled {
        if self.epsv_all && !extended {
            // RFC 2428 §4: after EPSV ALL only EPSV may set up data connections.
            return Err(FtpError::BadSequence("EPSV ALL in effect; use EPSV"));
        }
        let local_ip = self.peer.local.ip();
        let local_family = if local_ip.is_ipv4() { 1 } else { 2 };
        if family.is_some_and(|f| f != local_family) {
            // RFC 2428 §3: 522 names the protocols that can be used.
            return reply(
                ReplyCode::NetworkProtocolNotSupported,
                format!("Network protocol not supported, use ({local_family})"),
            );
        }
        if !extended && as_v4(local_ip).is_none() {
            return Err(FtpError::NoDataConnection(
                "PASV works over IPv4 only; use EPSV",
            ));
        }
        // A new PASV replaces (and closes) the previous listener, and gives back its port.
        self.data = DataSetup::None;
        let local_ip = self.peer.local.ip();
        // The book picks the port (at random, among those the daemon does not hold); the bind
        // is ours. A port another program holds is kept out of the next try by keeping its
        // lease until a bind succeeds.
        let mut busy = Vec::new();
        for _ in 0..BIND_TRIES {
            // SECURITY: the passive range is shared; one source (all its sessions together)
            // may hold only its share of it.
            let lease = self
                .services
                .passive
                .hold(self.peer.remote.ip())
                .map_err(|refusal| {
                    log::warn!("[{}] no passive port: {refusal}", self.tag);
                    FtpError::NoDataConnection(refusal)
                })?;
            match bind_passive(local_ip, lease.port()) {
                Ok(listener) => {
                    return Ok(Answer::Reply(
                        self.open_passive(ctx, listener, lease, extended),
                    ))
                }
                Err(e) => {
                    log::warn!("[{}] passive port {} is taken: {e}", self.tag, lease.port());
                    busy.push(lease);
                }
            }
        }
        Err(FtpError::NoDataConnection("Cannot open a passive port"))
    }

    /// EPSV ALL (RFC 2428 §4): from now on only EPSV sets up data connections.
    pub(super) fn cmd_epsv_all(&mut self) -> Handled {
        self.epsv_all = true;
        reply(
            ReplyCode::CommandOk,
            "EPSV ALL ok: only EPSV will set up data connections",
        )
    }

    /// Makes a bound passive listener the data endpoint, and says where it is.
    pub(super) fn open_passive(
        &mut self,
        ctx: &mut Context<Self>,
        listener: std::net::TcpListener,
        lease: PassiveLease,
        extended: bool,
    ) -> Reply {
        let local_ip = self.peer.local.ip();
        let port = lease.port();
        self.set_data(ctx, DataSetup::Passive(listener, lease));
        if extended {
            return Reply::new(
                ReplyCode::EnteringExtendedPassiveMode,
                format!("Entering Extended Passive Mode (|||{port}|)"),
            );
        }
        // Behind NAT the outside world must be told the public address; local peers
        // (loopback, private networks) keep the address they connected to, unless a load
        // balancer (--proxy-protocol) stands in front of every replica's passive ports.
        let behind_proxy = self.services.config.proxy_protocol.is_some();
        let advertised = match self.services.config.passive_address {
            Some(IpAddr::V4(public)) if behind_proxy || !is_local_peer(self.peer.remote.ip()) => {
                Some(public)
            }
            _ => as_v4(local_ip),
        };
        let o = advertised.map(|a| a.octets()).unwrap_or([127, 0, 0, 1]);
        Reply::new(
            ReplyCode::EnteringPassiveMode,
            format!(
                "Entering Passive Mode ({},{},{},{},{},{})",
                o[0],
                o[1],
                o[2],
                o[3],
                port >> 8,
                port & 0xff
            ),
        )
    }

    /// PORT and EPRT: remember where to connect for the next transfer.
    pub(super) fn cmd_port(&mut self, addr: SocketAddr) -> Handled {
        if self.epsv_all {
            return Err(FtpError::BadSequence("EPSV ALL in effect; use EPSV"));
        }
        // SECURITY: no bounce attacks (RFC 2577 §3): only the client's own address, and no
        // privileged ports.
        if !data_channel::same_ip(addr.ip(), self.peer.remote.ip()) {
            return Err(FtpError::Parse(ParseError::BadArgument(
                "PORT",
                "address must be the client's own",
            )));
        }
        if addr.port() < 1024 {
            return Err(FtpError::Parse(ParseError::BadArgument(
                "PORT",
                "port must be 1024 or above",
            )));
        }
        self.data = DataSetup::Active(addr);
        reply(ReplyCode::CommandOk, "PORT command successful")
    }

    pub(super) fn set_data(&mut self, ctx: &mut Context<Self>, setup: DataSetup) {
        self.data = setup;
        if let Some(old) = self.passive_expiry.take() {
            ctx.cancel_future(old);
        }
        // SECURITY: a passive port nobody uses is closed after the data-connect timeout.
        // Only `set_data` makes `data` passive, and it cancels the previous timer, so a
        // passive `data` when this fires is the one it was set for.
        let expiry = ctx.run_later(self.services.config.timeouts.data_connect, |act, _| {
            act.passive_expiry = None;
            if matches!(act.data, DataSetup::Passive(..)) {
                log::debug!("[{}] passive port expired unused", act.tag);
                act.data = DataSetup::None;
            }
        });
        self.passive_expiry = Some(expiry);
    }

    /// Takes the prepared data endpoint for a transfer command (RFC 959 §3.2: 425 without one).
    pub(super) fn take_endpoint(&mut self) -> Result<Endpoint, FtpError> {
        // SECURITY: with data protection required, nothing is sent in clear.
        if self.data_protection_required() && !self.prot_private {
            return Err(FtpError::ProtectionRequired);
        }
        if self.transfer.is_some() {
            return Err(FtpError::BadSequence("A transfer is already running"));
        }
        match std::mem::replace(&mut self.data, DataSetup::None) {
            DataSetup::Passive(l, lease) => Ok(Endpoint {
                to: DataEndpoint::Passive(l),
                lease: Some(lease),
            }),
            DataSetup::Active(a) => Ok(Endpoint {
                to: DataEndpoint::Active(a),
                lease: None,
            }),
            DataSetup::None => Err(FtpError::NoDataConnection(
                "Use PASV, EPSV, PORT or EPRT first",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_peers() {
        let cases = [
            ("127.0.0.1", true),
            ("10.1.1.1", true),
            ("192.168.0.9", true),
            ("172.16.0.1", true),
            ("169.254.1.1", true),
            ("8.8.8.8", false),
            ("::1", true),
            ("fd00::1", true),
            ("fe80::1", true),
            ("2001:db8::1", false),
            ("::ffff:10.0.0.1", true),
            ("::ffff:1.1.1.1", false),
        ];
        for (ip, want) in cases {
            assert_eq!(is_local_peer(ip.parse().expect("ip")), want, "{ip}");
        }
    }
}
