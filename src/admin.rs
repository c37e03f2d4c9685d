//! The admin endpoint: a tiny read-only HTTP server, on loopback unless forced.
//!
//! `GET /sessions` answers a JSON list of session snapshots (what `actorftpd who` shows): the
//! endpoint asks each Listener for its sessions and each Session for its `SessionStatus`, by
//! message, so nothing is read from shared state. `GET /metrics` answers the Prometheus text
//! from the Metrics actor. The same actor serves the metrics-only endpoint. It reads one request
//! head (its request line and the `Host` and `Authorization` headers) and never changes anything.
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

use crate::listener::{ListSessions, Listener};
use crate::metrics::{Metrics, RenderMetrics};
use crate::printable::escape_json_controls;
use crate::session::SessionStatus;
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Longest request head we read; anything longer is refused.
const MAX_REQUEST: usize = 8 * 1024;
/// A client gets this long to send its request and read the answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests served at once by one endpoint (each is one socket, counted in the descriptors the
/// daemon keeps for itself: `fdlimit`).
pub const MAX_ADMIN_CONNECTIONS: usize = 16;
/// How long one Session may take to describe itself.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// Shortest token accepted from a token file (a generated one is 40 characters).
const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted (and most of a token file read).
const MAX_TOKEN_LEN: usize = 1024;
/// Characters in a generated token (from a 57-letter alphabet: about 233 bits).
const GENERATED_TOKEN_LEN: usize = 40;

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
    /// When present, every request must carry `Authorization: Bearer TOKEN`.
    pub token: Option<AdminToken>,
}

/// The secret the admin endpoint asks for. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(****)")
    }
}

impl AdminToken {
    /// A token as written in a file: its first line, trimmed.
    /// SECURITY: long enough to resist guessing, and only visible ASCII so that it fits in a
    /// header as it is and cannot smuggle a line break into the request `who` sends.
    pub fn parse(text: &str) -> Result<AdminToken, String> {
        let token = text.lines().next().unwrap_or("").trim();
        if token.len() < MIN_TOKEN_LEN || token.len() > MAX_TOKEN_LEN {
            return Err(format!(
                "the token must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters long"
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be printable ASCII without spaces".into());
        }
        Ok(AdminToken(token.to_owned()))
    }

    /// A fresh random token.
    pub fn generate() -> Result<AdminToken, String> {
        crate::auth::random_password(GENERATED_TOKEN_LEN).map(AdminToken)
    }

    /// What `who` sends.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }

    /// Reads a token file (for `who`): whatever its owner and mode, the daemon checked those.
    pub fn read(path: &Path) -> Result<AdminToken, String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read admin token file {}: {e}", path.display()))?;
        let text = read_small(file, path)?;
        AdminToken::parse(&text).map_err(|e| format!("admin token file {}: {e}", path.display()))
    }

    /// The daemon's token: read from `path`, or generated and written there (mode 0600) when no
    /// such file exists.
    ///
    /// SECURITY: like sshd with its keys, refuse a file that others could read or write (the
    /// secret would protect nothing), and one owned by another user (who knows it, then).
    pub fn load_or_create(path: &Path) -> Result<AdminToken, String> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let shown = path.display();
        let token = AdminToken::generate()?;
        // create_new is O_CREAT|O_EXCL: it never follows a symlink planted at `path`.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut f) => {
                use std::io::Write;
                writeln!(f, "{}", token.0)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("cannot write admin token file {shown}: {e}"))?;
                log::info!("created admin token file {shown} (mode 0600)");
                return Ok(token);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create admin token file {shown}: {e}")),
        }
        // SECURITY: the checks and the read are made on one handle, opened without following a
        // symlink, so a link planted at `path` cannot swap another file in between.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(|e| format!("cannot open admin token file {shown} (not a symlink): {e}"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("admin token file {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("admin token file {shown} is not a regular file"));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "admin token file {shown} is accessible by others (mode {mode:03o}); chmod 600 it"
            ));
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(format!(
                "admin token file {shown} belongs to uid {}, not to this user ({me}) or root",
                meta.uid()
            ));
        }
        let text = read_small(file, path)?;
        AdminToken::parse(&text).map_err(|e| format!("admin token file {shown}: {e}"))
    }
}

/// At most `MAX_TOKEN_LEN` and a line ending of an open file, as text.
fn read_small(f: std::fs::File, path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    f.take(MAX_TOKEN_LEN as u64 + 2)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read admin token file {}: {e}", path.display()))?;
    Ok(text)
}

/// Equal bytes, compared without an early exit (only the length, which is no secret, shows).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
                            if open.get() >= MAX_ADMIN_CONNECTIONS {
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
        // SECURITY: the token, on every path when one is configured.
        if let Some(token) = &routes.token {
            if !bearer_matches(request.authorization.as_deref(), token) {
                log::warn!("admin request from {peer} refused: no valid token");
                let status = "401 Unauthorized";
                let challenge = "WWW-Authenticate: Bearer realm=\"actorftpd\"\r\n";
                return respond(&mut stream, status, "text/plain", challenge, status).await;
            }
        }
        match request.path.as_str() {
            "/sessions" if !routes.sessions.is_empty() => {
                let snapshots = snapshot(&routes.sessions).await;
                let body = serde_json::to_string(&snapshots).unwrap_or_else(|_| "[]".into());
                // SECURITY: names and commands came from clients; no raw C1 or bidi controls.
                let body = escape_json_controls(&body);
                respond(&mut stream, "200 OK", "application/json", "", &body).await
            }
            "/metrics" => match &routes.metrics {
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
    path: String,
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
    let path = match (words.next(), words.next()) {
        (Some("GET"), Some(path)) => path.split('?').next().unwrap_or("").to_owned(),
        (Some(_), Some(_)) => return Err("405 Method Not Allowed"),
        _ => return Err("400 Bad Request"),
    };
    let mut request = Request {
        path,
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
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback() || canonical(ip) == canonical(local)
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
        assert_eq!(r.path, "/sessions");
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
            parse_head("POST / HTTP/1.1\r\n\r\n"),
            Err("405 Method Not Allowed")
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
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b""));
    }

    #[test]
    fn tokens_are_long_printable_and_never_shown() {
        assert!(AdminToken::parse("short").is_err());
        assert!(AdminToken::parse("with a space inside it").is_err());
        assert!(AdminToken::parse("0123456789abcdef\x1b[2J").is_err());
        assert!(AdminToken::parse(&"x".repeat(MAX_TOKEN_LEN + 1)).is_err());
        let t = AdminToken::parse("  0123456789abcdef  \nsecond line").expect("first line");
        assert_eq!(t.as_str(), "0123456789abcdef");
        assert_eq!(format!("{t:?}"), "AdminToken(****)");
        let g = AdminToken::generate().expect("random");
        assert_eq!(g.as_str().len(), GENERATED_TOKEN_LEN);
        assert_ne!(g, AdminToken::generate().expect("random"));
    }

    #[test]
    fn token_file_is_created_private_and_refused_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("admin-token");
        let created = AdminToken::load_or_create(&path).expect("created");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            AdminToken::load_or_create(&path).expect("read back"),
            created
        );
        assert_eq!(AdminToken::read(&path).expect("who reads it"), created);
        for loose in [0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).expect("chmod");
            let err = AdminToken::load_or_create(&path).expect_err("refused");
            assert!(err.contains("chmod 600"), "{err}");
        }
        // A symlink planted where the file should be is not followed to create a file.
        let target = dir.path().join("elsewhere");
        let link = dir.path().join("planted");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(AdminToken::load_or_create(&link).is_err());
        assert!(!target.exists(), "nothing written through the symlink");
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
