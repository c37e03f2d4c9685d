//! HAProxy in front of actorftpd replicas, for the PROXY protocol tests.
//!
//! It runs `src/dist/haproxy.cfg`, the configuration the README shows operators, as it is: the
//! file takes its addresses from the environment, and this harness sets them. Clients connect to
//! `PUBLIC` (127.0.0.3) from `CLIENT` (127.0.0.2); HAProxy connects to the replicas from
//! 127.0.0.1, the one trusted proxy, so the three addresses differ and every test can tell whose
//! address a replica saw. HAProxy runs in the foreground and is stopped by its PID on drop.

use super::{cannot_run, find_on_path, wait_until, STARTUP_DEADLINE};
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where clients reach the service (HAProxy's frontends).
pub const PUBLIC: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The test client's own source address.
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Another client's source address.
pub const OTHER_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);
/// Where replicas listen, and where HAProxy connects to them from: `--trusted-proxies`.
pub const PROXY: &str = "127.0.0.1";

/// Ports in each replica's passive range.
pub const PASSIVE_PORTS: u16 = 16;

/// One replica as HAProxy sees it: its control port and its passive range.
#[derive(Debug, Clone, Copy)]
pub struct Replica {
    pub port: u16,
    pub passive: (u16, u16),
}

impl Replica {
    /// `LOW-HIGH`, as `--passive-ports` and the configuration take it.
    pub fn passive_ports(&self) -> String {
        format!("{}-{}", self.passive.0, self.passive.1)
    }
}

/// The configuration operators are shown (README: "Running several replicas").
pub fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/dist/haproxy.cfg")
}

/// Whether haproxy is installed: a loud skip locally, a failure under CI.
pub fn available() -> bool {
    find_on_path("haproxy").is_some()
        || cannot_run(
            "haproxy is required by the PROXY protocol tests (Debian: apt-get install haproxy)",
            "haproxy not installed",
        )
}

/// A running HAProxy.
pub struct HaProxy {
    child: Child,
    /// The control frontend: where clients connect.
    pub control: SocketAddr,
}

impl HaProxy {
    /// Starts HAProxy with replicas A and B (they may be one daemon, named twice) and waits
    /// until its control frontend accepts connections.
    pub fn start(a: &Replica, b: &Replica) -> HaProxy {
        let control = free_port(PUBLIC);
        let mut child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(config_path())
            .env("FTP_PUBLIC", PUBLIC.to_string())
            .env("FTP_CONTROL_PORT", control.to_string())
            .env("REPLICA_A", PROXY)
            .env("REPLICA_A_PORT", a.port.to_string())
            .env("REPLICA_A_PASSIVE", a.passive_ports())
            .env("REPLICA_B", PROXY)
            .env("REPLICA_B_PORT", b.port.to_string())
            .env("REPLICA_B_PASSIVE", b.passive_ports())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn haproxy");
        let control = SocketAddr::V4(SocketAddrV4::new(PUBLIC, control));
        let mut exited = None;
        wait_until(STARTUP_DEADLINE, "haproxy to listen", || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return true;
            }
            TcpStream::connect_timeout(&control, Duration::from_secs(1)).is_ok()
        });
        if let Some(status) = exited {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("haproxy exited at start ({status}): {err}");
        }
        HaProxy { child, control }
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        // `Child::kill` signals this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on `ip` now (the kernel's choice).
fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port on {ip}: {e}"))
}

/// Two passive ranges of `PASSIVE_PORTS` ports, one after the other, free both on the replicas'
/// address and on the public one (HAProxy binds the same ports there). They are looked for
/// below Linux's ephemeral range (32768 up), where no outgoing connection and no daemon's
/// default passive port (61000 up) lands, from a random start.
pub fn passive_ranges() -> [(u16, u16); 2] {
    use std::hash::{BuildHasher, Hasher};
    let proxy: Ipv4Addr = PROXY.parse().expect("ip");
    let mut random = std::collections::hash_map::RandomState::new().build_hasher();
    random.write_u32(std::process::id());
    let start = 20_000 + (random.finish() % 12_000) as u16;
    let span = 2 * PASSIVE_PORTS;
    for attempt in 0..200u16 {
        let low = 20_000 + (start - 20_000 + attempt * span) % 12_000;
        let high = low + span - 1;
        let all_free = (low..=high).all(|p| {
            TcpListener::bind((PUBLIC, p)).is_ok() && TcpListener::bind((proxy, p)).is_ok()
        });
        if all_free {
            let mid = low + PASSIVE_PORTS;
            return [(low, mid - 1), (mid, high)];
        }
    }
    panic!("no run of {span} free ports found below 32000")
}

/// A TCP connection from `source` (any port) to `to`.
pub fn connect_from(source: Ipv4Addr, to: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .unwrap_or_else(|e| panic!("bind {source}: {e}"));
    socket
        .connect_timeout(&to.into(), super::SOCKET_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {source} -> {to}: {e}"));
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(super::SOCKET_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(super::SOCKET_TIMEOUT))
        .expect("write timeout");
    stream
}
