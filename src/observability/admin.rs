//! The admin endpoint: a tiny read-only HTTP server, on loopback unless forced.
//!
//! `GET /sessions` answers a JSON list of session snapshots (what `actorftpd who` shows): the
//! endpoint asks each Listener for its sessions and each Session for its `SessionStatus`, by
//! message, so nothing is read from shared state. `GET /metrics` answers the Prometheus text
//! from the Metrics actor. `GET /health` and `GET /ready` answer load-balancer checks and
//! Kubernetes probes without a token (`health.rs`: they reveal nothing). `POST /kick?session=ID`
//! or `?user=NAME` ends sessions (`kick.rs`), the one request that changes anything. The same
//! actor serves the metrics-only endpoint. It reads one request head (its request line and the
//! `Host` and `Authorization` headers).
//!
//! Who may ask (SECURITY):
//! - Bind: loopback unless the operator forces otherwise (`check_bind`).
//! - `Host`: a browser tricked by DNS rebinding sends the attacker's host name, so a request
//!   whose `Host` names anything but `localhost`, a loopback address or the address the
//!   connection arrived on is answered `421 Misdirected Request`. No `Host` at all (HTTP/1.0,
//!   scripts) is accepted: every browser sends one. The port in `Host` is not compared, so an
//!   `ssh -L` tunnel to another local port still works.
//! - Token: the admin endpoint (`--admin-listen`) requires `Authorization: Bearer TOKEN` on every
//!   path, `/metrics` included (Prometheus sends it with `authorization: credentials_file`), and
//!   answers `401` otherwise. The token comes from `--admin-token-file`, which must be readable by
//!   its owner only; the daemon creates it (mode 0600, a fresh random token) when it does not
//!   exist. The metrics-only endpoint (`--metrics-listen`) serves counters without names or
//!   addresses and asks for no token.

// Requests served at once by one endpoint: counted in the descriptors the daemon keeps.
use crate::fdlimit::ENDPOINT_REQUESTS_AT_ONCE;
use crate::listener::{ListSessions, Listener};
use crate::observability::health::Readiness;
use crate::observability::kick::{kick, KickTarget};
use crate::observability::metrics::{Metrics, RenderMetrics};
use crate::observability::token::AdminToken;
use crate::printable::escape_json_controls;
use crate::session::{SessionSnapshot, SessionStatus};
use actix::prelude::*;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head we read; anything longer is refused.
const MAX_REQUEST: usize = 8 * 1024;
/// A client gets this long to send its request and read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one Session may take to describe itself.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

/// What one endpoint serves.
pub struct Routes {
    /// `/sessions`, from these Listeners (control and implicit TLS).
    pub sessions: Vec<Addr<Listener>>,
    /// `/metrics`.
    pub metrics: Option<Addr<Metrics>>,
    /// When present, every request must carry `Authorization: Bearer TOKEN` (but `/health`
    /// and `/ready`).
    pub token: Option<AdminToken>,
    /// `/health` and `/ready` (the admin endpoint only).
    pub readiness: Option<Arc<Readiness>>,
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
        // SECURITY: a bounded number of requests at once; the rest are closed unanswered, so
        // idle connections to this port cannot use up the daemon's file descriptors.
        let open = std::rc::Rc::new(std::cell::Cell::new(0usize));
        ctx.spawn(
            async move {
                loop {
                    match listener.accept().await {
                        Ok((stream, peer)) => {
                            if open.get() >= ENDPOINT_REQUESTS_AT_ONCE {
                                log::warn!("admin request from {peer} refused: too many at once");
                                drop(stream);
                                continue;
                            }
                            open.set(open.get() + 1);
                            let open = open.clone();
                            let routes = routes.clone();
                            actix_rt::spawn(async move {
                                serve(stream, peer, routes).await;
                                open.set(open.get().saturating_sub(1));
                            });
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
        let request = match read_request(&mut stream).await {
            Ok(r) => r,
            Err(status) => return respond(&mut stream, status, "text/plain", "", status).await,
        };
        let local = match stream.local_addr() {
            Ok(a) => a.ip(),
            Err(_) => return,
        };
        // SECURITY: DNS rebinding; see the module documentation.
        if !host_allowed(request.host.as_deref(), local) {
            let shown: String = request
                .host
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect();
            log::warn!("admin request from {peer} refused: Host {shown:?} is not this endpoint");
            let status = "421 Misdirected Request";
            return respond(&mut stream, status, "text/plain", "", status).await;
        }
        // Probes carry no token: these two answers reveal nothing but up or down.
        if let (Some(ready), "GET") = (&routes.readiness, request.method.as_str()) {
            match request.path.as_str() {
                "/health" => return respond(&mut stream, "200 OK", "text/plain", "", "ok\n").await,
                "/ready" => {
                    return match ready.check().await {
                        Ok(()) => respond(&mut stream, "200 OK", "text/plain", "", "ready\n").await,
                        Err(why) => {
                            log::debug!("/ready: not ready: {why}");
                            let status = "503 Service Unavailable";
                            respond(&mut stream, status, "text/plain", "", "not ready\n").await
                        }
                    };
                }
                _ => {}
            }
        }
        // SECURITY: the token, on every path when one is configured.
        if let Some(token) = &routes.token {
            if !bearer_matches(request.authorization.as_deref(), token) {
                log::warn!("admin request from {peer} refused: no valid token");
                let status = "401 Unauthorized";
                let challenge = "WWW-Authenticate: Bearer realm=\"actorftpd\"\r\n";
                return respond(&mut stream, status, "text/plain", challenge, status).await;
            }
        }
        match (request.method.as_str(), request.path.as_str()) {
            ("POST", "/kick") if !routes.sessions.is_empty() => {
                let Some(target) = KickTarget::from_query(&request.query) else {
                    let status = "400 Bad Request";
                    return respond(&mut stream, status, "text/plain", "", status).await;
                };
                let kicked = kick(&routes.sessions, &target).await;
                log::info!("admin request from {peer}: kick {target:?}: {kicked} session(s)");
                let body = format!("{{\"kicked\":{kicked}}}");
                respond(&mut stream, "200 OK", "application/json", "", &body).await
            }
            ("POST", _) => {
                // The metrics-only endpoint kicks nobody.
                let status = "405 Method Not Allowed";
                respond(&mut stream, status, "text/plain", "", status).await
            }
            (_, "/sessions") if !routes.sessions.is_empty() => {
                let snapshots = snapshot(&routes.sessions).await;
                let body = serde_json::to_string(&snapshots).unwrap_or_else(|_| "[]".into());
                // SECURITY: names and commands came from clients; no raw C1 or bidi controls.
                let body = escape_json_controls(&body);
                respond(&mut stream, "200 OK", "application/json", "", &body).await
            }
            (_, "/metrics") => match &routes.metrics {
                Some(m) => {
                    let body = m.send(RenderMetrics).await.unwrap_or_default();
                    let kind = "text/plain; version=0.0.4";
                    respond(&mut stream, "200 OK", kind, "", &body).await
                }
                None => {
                    let status = "404 Not Found";
                    respond(&mut stream, status, "text/plain", "", "metrics off").await
                }
            },
            _ => respond(&mut stream, "404 Not Found", "text/plain", "", "not found").await,
        }
    };
    if tokio::time::timeout(REQUEST_TIMEOUT, work).await.is_err() {
        log::debug!("admin request from {peer} timed out");
    }
}

/// What the endpoint looks at in a request.
#[derive(Debug, Default, PartialEq)]
struct Request {
    /// `GET` or `POST`.
    method: String,
    path: String,
    /// What follows `?` in the target (kick's parameters).
    query: String,
    host: Option<String>,
    authorization: Option<String>,
}

/// Reads the request head; returns the path of a GET and the headers we look at, or the status
/// to refuse with.
/// SECURITY: bounded size, GET only, the path is compared, never used to open anything.
async fn read_request(stream: &mut TcpStream) -> Result<Request, &'static str> {
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
    parse_head(&String::from_utf8_lossy(&buf))
}

/// The pure half of `read_request`.
fn parse_head(head: &str) -> Result<Request, &'static str> {
    let mut lines = head.lines();
    let mut words = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = match (words.next(), words.next()) {
        (Some(m @ ("GET" | "POST")), Some(target)) => (m, target),
        (Some(_), Some(_)) => return Err("405 Method Not Allowed"),
        _ => return Err("400 Bad Request"),
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // POST is for kicking only; anything else that would change state does not exist.
    if method == "POST" && path != "/kick" {
        return Err("405 Method Not Allowed");
    }
    let mut request = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        ..Request::default()
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let slot = if name.eq_ignore_ascii_case("host") {
            &mut request.host
        } else if name.eq_ignore_ascii_case("authorization") {
            &mut request.authorization
        } else {
            continue;
        };
        // SECURITY: two of either would let a proxy and this endpoint disagree (RFC 9112 3.2).
        if slot.replace(value.trim().to_owned()).is_some() {
            return Err("400 Bad Request");
        }
    }
    Ok(request)
}

/// SECURITY (DNS rebinding): whether `Host` names this endpoint. Absent is allowed; otherwise
/// the host part must be `localhost`, a loopback address or `local` (the address the connection
/// arrived on), as an IP literal. The port is not compared (tunnels forward other ports).
fn host_allowed(host: Option<&str>, local: IpAddr) -> bool {
    let Some(host) = host else {
        return true;
    };
    // `[v6]` or `[v6]:port`; `name` or `name:port`. `port` keeps its colon.
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some(parts) => parts,
            None => return false,
        },
        None => host.find(':').map_or((host, ""), |i| host.split_at(i)),
    };
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|digits| {
            (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
        });
    if !port_ok {
        return false;
    }
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bracketed = host.starts_with('[');
    let ip = match (bracketed, name.parse::<IpAddr>()) {
        (true, Ok(IpAddr::V6(v6))) => IpAddr::V6(v6),
        (false, Ok(IpAddr::V4(v4))) => IpAddr::V4(v4),
        _ => return false,
    };
    ip.is_loopback() || crate::data_channel::same_ip(ip, local)
}

/// SECURITY: `Authorization: Bearer TOKEN` with the right token (scheme case-insensitive,
/// RFC 6750 2.1), compared in constant time.
fn bearer_matches(header: Option<&str>, token: &AdminToken) -> bool {
    let Some((scheme, presented)) = header.and_then(|h| h.split_once(' ')) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && token.matches(presented.trim().as_bytes())
}

/// Writes one answer; `extra` is more header lines, each ending in CRLF.
async fn respond(stream: &mut TcpStream, status: &str, kind: &str, extra: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{extra}Connection: close\r\n\r\n",
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
    fn host_must_name_this_endpoint() {
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        let lan: IpAddr = "192.0.2.10".parse().expect("ip");
        let cases: &[(Option<&str>, IpAddr, bool)] = &[
            (None, lo, true),
            (Some("127.0.0.1:2122"), lo, true),
            (Some("127.0.0.1"), lo, true),
            (Some("localhost:2122"), lo, true),
            (Some("LocalHost:9000"), lo, true),
            (Some("[::1]:2122"), lo, true),
            (Some("127.0.0.2:2122"), lo, true),
            (Some("192.0.2.10:2122"), lan, true),
            (Some("[::ffff:192.0.2.10]:2122"), lan, true),
            // DNS rebinding: the attacker's name, resolved to loopback by the browser.
            (Some("evil.example:2122"), lo, false),
            (Some("localhost.evil.example:2122"), lo, false),
            (Some("127.0.0.1.nip.io:2122"), lo, false),
            (Some("192.0.2.11:2122"), lan, false),
            (Some(""), lo, false),
            (Some("[::1"), lo, false),
            (Some("::1"), lo, false),
            (Some("[127.0.0.1]:2122"), lo, false),
            (Some("127.0.0.1:"), lo, false),
            (Some("127.0.0.1:x"), lo, false),
            (Some("127.0.0.1:2122@evil.example"), lo, false),
        ];
        for (host, local, want) in cases {
            assert_eq!(host_allowed(*host, *local), *want, "{host:?} on {local}");
        }
    }

    #[test]
    fn request_heads_are_parsed_strictly() {
        let r = parse_head(
            "GET /sessions?x=1 HTTP/1.1\r\nhOsT: localhost:1\r\nAuthorization: Bearer abc\r\n\r\n",
        )
        .expect("valid");
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/sessions"));
        assert_eq!(r.query, "x=1");
        assert_eq!(r.host.as_deref(), Some("localhost:1"));
        assert_eq!(r.authorization.as_deref(), Some("Bearer abc"));
        let bare = parse_head("GET /metrics HTTP/1.0\r\n\r\n").expect("valid");
        assert_eq!((bare.host, bare.authorization), (None, None));
        assert_eq!(
            parse_head("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err("400 Bad Request")
        );
        assert_eq!(
            parse_head("GET / HTTP/1.1\r\nAuthorization: a\r\nauthorization: b\r\n\r\n"),
            Err("400 Bad Request")
        );
        assert_eq!(
            parse_head("PUT / HTTP/1.1\r\n\r\n"),
            Err("405 Method Not Allowed")
        );
        assert_eq!(
            parse_head("POST /sessions HTTP/1.1\r\n\r\n"),
            Err("405 Method Not Allowed")
        );
        let kick = parse_head("POST /kick?user=bob HTTP/1.0\r\n\r\n").expect("valid");
        assert_eq!(
            (kick.method.as_str(), kick.query.as_str()),
            ("POST", "user=bob")
        );
        assert_eq!(parse_head("\r\n"), Err("400 Bad Request"));
    }

    #[test]
    fn bearer_token_must_match_exactly() {
        let token = AdminToken::parse("0123456789abcdefXYZ\n").expect("valid");
        assert!(bearer_matches(Some("Bearer 0123456789abcdefXYZ"), &token));
        assert!(bearer_matches(Some("bearer 0123456789abcdefXYZ"), &token));
        for bad in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic 0123456789abcdefXYZ"),
            Some("Bearer 0123456789abcdefXY"),
            Some("Bearer 0123456789abcdefXYZZ"),
            Some("Bearer 0123456789abcdefXYz"),
            Some("0123456789abcdefXYZ"),
        ] {
            assert!(!bearer_matches(bad, &token), "{bad:?}");
        }
    }

    #[test]
    fn snapshots_round_trip_through_json() {
        use crate::session::TransferSnapshot;
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
