//! The admin endpoint: a tiny read-only HTTP server, on loopback unless forced.
//!
//! `GET /sessions` answers a JSON list of session snapshots (what `actorftpd who` shows): the
//! endpoint asks each Listener for its sessions and each Session for its `SessionStatus`, by
//! message, so nothing is read from shared state. `GET /metrics` answers the Prometheus text
//! from the Metrics actor. The same actor serves the metrics-only endpoint. It accepts no
//! input beyond one request line and never changes anything.

use crate::listener::{ListSessions, Listener};
use crate::metrics::{Metrics, RenderMetrics};
use crate::session::SessionStatus;
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head we read; anything longer is refused.
const MAX_REQUEST: usize = 8 * 1024;
/// A client gets this long to send its request and read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one Session may take to describe itself.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// One session as the live view shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSnapshot {
    pub id: u64,
    pub peer: String,
    pub user: Option<String>,
    /// Seconds since the last command.
    pub idle_secs: u64,
    /// The last command (passwords masked).
    pub command: String,
    pub tls: bool,
    pub transfer: Option<TransferSnapshot>,
}

/// A running transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferSnapshot {
    pub verb: String,
    pub path: String,
    /// `download`, `upload` or `listing`.
    pub direction: String,
    pub bytes: u64,
    pub size: Option<u64>,
    pub elapsed_secs: f64,
    /// Bytes per second so far.
    pub rate: f64,
}

/// What one endpoint serves.
pub struct Routes {
    /// `/sessions`, from these Listeners (control and implicit TLS).
    pub sessions: Vec<Addr<Listener>>,
    /// `/metrics`.
    pub metrics: Option<Addr<Metrics>>,
}

pub struct AdminEndpoint {
    listener: Option<TcpListener>,
    routes: std::rc::Rc<Routes>,
}

impl AdminEndpoint {
    pub fn new(listener: TcpListener, routes: Routes) -> AdminEndpoint {
        AdminEndpoint {
            listener: Some(listener),
            routes: std::rc::Rc::new(routes),
        }
    }
}

impl Actor for AdminEndpoint {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let routes = self.routes.clone();
        ctx.spawn(
            async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, peer)) => {
                            actix_rt::spawn(serve(stream, peer, routes.clone()));
                        }
                        Err(e) => {
                            log::warn!("admin accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            .into_actor(self),
        );
    }
}

async fn serve(mut stream: TcpStream, peer: SocketAddr, routes: std::rc::Rc<Routes>) {
    let work = async {
        let path = match read_request(&mut stream).await {
            Ok(p) => p,
            Err(status) => return respond(&mut stream, status, "text/plain", status).await,
        };
        match path.as_str() {
            "/sessions" if !routes.sessions.is_empty() => {
                let snapshots = snapshot(&routes.sessions).await;
                let body = serde_json::to_string(&snapshots).unwrap_or_else(|_| "[]".into());
                respond(&mut stream, "200 OK", "application/json", &body).await
            }
            "/metrics" => match &routes.metrics {
                Some(m) => {
                    let body = m.send(RenderMetrics).await.unwrap_or_default();
                    respond(&mut stream, "200 OK", "text/plain; version=0.0.4", &body).await
                }
                None => respond(&mut stream, "404 Not Found", "text/plain", "metrics off").await,
            },
            _ => respond(&mut stream, "404 Not Found", "text/plain", "not found").await,
        }
    };
    if tokio::time::timeout(REQUEST_TIMEOUT, work).await.is_err() {
        log::debug!("admin request from {peer} timed out");
    }
}

/// Reads the request head; returns the path of a GET, or the status to refuse with.
/// SECURITY: bounded size, GET only, the path is compared, never used to open anything.
async fn read_request(stream: &mut TcpStream) -> Result<String, &'static str> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| "400 Bad Request")?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            return Err("431 Request Header Fields Too Large");
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut words = head.lines().next().unwrap_or("").split_whitespace();
    match (words.next(), words.next()) {
        (Some("GET"), Some(path)) => Ok(path.split('?').next().unwrap_or("").to_owned()),
        (Some(_), Some(_)) => Err("405 Method Not Allowed"),
        _ => Err("400 Bad Request"),
    }
}

async fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Asks every Listener for its sessions, then every Session for its status.
async fn snapshot(listeners: &[Addr<Listener>]) -> Vec<SessionSnapshot> {
    let mut sessions = Vec::new();
    for l in listeners {
        if let Ok(list) = l.send(ListSessions).await {
            sessions.extend(list);
        }
    }
    let asks = sessions
        .into_iter()
        .map(|s| tokio::time::timeout(STATUS_TIMEOUT, s.send(SessionStatus)));
    let mut out: Vec<SessionSnapshot> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(|r| r.ok().and_then(Result::ok))
        .collect();
    out.sort_by_key(|s| s.id);
    out
}

/// SECURITY: the admin and metrics endpoints show who is connected; they bind only to loopback
/// unless the operator forces otherwise.
pub fn check_bind(addr: SocketAddr, what: &str, forced: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || forced {
        Ok(())
    } else {
        Err(format!(
            "{what} address {addr} is not loopback; pass --{what}-allow-remote to expose it"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_refuse_non_loopback_unless_forced() {
        let lo: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let lo6: SocketAddr = "[::1]:9".parse().expect("addr");
        let any: SocketAddr = "0.0.0.0:9".parse().expect("addr");
        assert!(check_bind(lo, "admin", false).is_ok());
        assert!(check_bind(lo6, "metrics", false).is_ok());
        let err = check_bind(any, "admin", false).expect_err("refused");
        assert!(err.contains("--admin-allow-remote"), "{err}");
        assert!(check_bind(any, "admin", true).is_ok());
    }

    #[test]
    fn snapshots_round_trip_through_json() {
        let s = SessionSnapshot {
            id: 7,
            peer: "127.0.0.1:5000".into(),
            user: Some("alice".into()),
            idle_secs: 3,
            command: "RETR /big.bin".into(),
            tls: false,
            transfer: Some(TransferSnapshot {
                verb: "RETR".into(),
                path: "/big.bin".into(),
                direction: "download".into(),
                bytes: 10,
                size: Some(100),
                elapsed_secs: 1.5,
                rate: 6.6,
            }),
        };
        let json = serde_json::to_string(&[&s]).expect("json");
        let back: Vec<SessionSnapshot> = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, vec![s]);
    }
}
