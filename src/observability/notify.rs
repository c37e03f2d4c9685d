//! systemd's readiness protocol (`sd_notify(3)`), written out: when the service manager set
//! `NOTIFY_SOCKET`, one datagram per state change (`READY=1` once listening, `RELOADING=1` and
//! `READY=1` around a SIGHUP reload, `STOPPING=1` at shutdown). Without it, nothing is sent.
//!
//! The protocol is a `KEY=VALUE` text datagram to a Unix socket named by a path or, with a
//! leading `@`, by an abstract name; about twenty lines with std's `UnixDatagram`, so no crate
//! (and no `unsafe`) is needed. A send that fails is logged once per kind and otherwise ignored:
//! the daemon serves the same with or without its supervisor hearing about it.

use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};

/// Where to send state changes; `None` when not run by systemd with `Type=notify`.
pub struct Notifier {
    socket: UnixDatagram,
    to: UnixAddr,
    shown: String,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` (the daemon starts no child process that could inherit it).
    pub fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        let shown = name.to_string_lossy().into_owned();
        let made = Self::to(&name).and_then(|to| Ok((UnixDatagram::unbound()?, to)));
        match made {
            Ok((socket, to)) => Some(Notifier { socket, to, shown }),
            Err(e) => {
                log::warn!(
                    "NOTIFY_SOCKET {shown} is unusable, systemd is not told of readiness: {e}"
                );
                None
            }
        }
    }

    fn to(name: &std::ffi::OsStr) -> std::io::Result<UnixAddr> {
        use std::os::unix::ffi::OsStrExt;
        match name.as_bytes() {
            [b'@', abstract_name @ ..] => {
                use std::os::linux::net::SocketAddrExt;
                UnixAddr::from_abstract_name(abstract_name)
            }
            [b'/', ..] => UnixAddr::from_pathname(name),
            _ => Err(std::io::Error::other("neither an absolute path nor @name")),
        }
    }

    /// Sends one state change, e.g. `"READY=1"`.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.to) {
            log::warn!("cannot tell systemd {state} on {}: {e}", self.shown);
        }
    }
}

/// Sends `state` when there is a notifier.
pub fn notify(notifier: Option<&Notifier>, state: &str) {
    if let Some(n) = notifier {
        n.send(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_reach_a_path_socket_and_bad_names_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier {
            socket: UnixDatagram::unbound().expect("socket"),
            to: Notifier::to(path.as_os_str()).expect("path"),
            shown: path.display().to_string(),
        };
        notifier.send("READY=1");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
        assert!(Notifier::to("relative.sock".as_ref()).is_err());
        assert!(Notifier::to("@abstract".as_ref()).is_ok());
    }
}
