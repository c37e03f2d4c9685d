//! The PROXY protocol (issue 16): replicas behind the real HAProxy, with the configuration the
//! README shows (`src/dist/haproxy.cfg`), see and count the client's own address; nobody else
//! can claim one; no header ever ends up in a file.
//!
//! Addresses (tests/common/haproxy.rs): the client connects from 127.0.0.2 to HAProxy on
//! 127.0.0.3; HAProxy connects to the replicas from 127.0.0.1, the one trusted proxy. Tests that
//! play the proxy themselves connect from 127.0.0.1 and write the header.

mod common;

use common::haproxy::{self, HaProxy, CLIENT, OTHER_CLIENT, PUBLIC};
use common::{
    random_bytes, require_tool, run_with_timeout, sha256_hex, toml_string, wait_for, Daemon,
    TokenFile, CLIENT_DEADLINE,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const DEADLINE: Duration = Duration::from_secs(20);

/// A replica: a daemon with `--proxy-protocol`, its log, transfer log and admin endpoint.
struct Replica {
    daemon: Daemon,
    admin: SocketAddr,
    token: TokenFile,
    hp: haproxy::Replica,
}

impl Replica {
    /// A daemon serving alice (password `pw`, root `<tmp>/srv`) behind HAProxy, with its passive
    /// range (none: the kernel's ports) and `extra` options.
    fn start(passive: Option<(u16, u16)>, extra: &[&str]) -> Replica {
        Replica::start_with_users(passive, extra, &[])
    }

    /// [`Replica::start`], with more users (password `pw`, alice's root) allowed only from
    /// the networks given.
    fn start_with_users(
        passive: Option<(u16, u16)>,
        extra: &[&str],
        networks: &[(&str, &str)],
    ) -> Replica {
        let tmp = TempDir::new().expect("tmp");
        let root = tmp.path().join("srv");
        std::fs::create_dir_all(&root).expect("root");
        let hash = toml_string(&actorftpd::auth::hash_password("pw").expect("hash"));
        let root_text = toml_string(root.to_str().expect("utf-8"));
        let mut users =
            format!("[[user]]\nname = \"alice\"\npassword_hash = {hash}\nroot = {root_text}\n");
        for (name, net) in networks {
            users.push_str(&format!(
                "[[user]]\nname = \"{name}\"\npassword_hash = {hash}\nroot = {root_text}\n\
                 allowed_networks = [\"{net}\"]\n"
            ));
        }
        std::fs::write(tmp.path().join("users.toml"), users).expect("users file");
        let token = TokenFile::new();
        let path = |name: &str| tmp.path().join(name).to_str().expect("utf-8").to_owned();
        let mut args = vec![
            "--listen".to_owned(),
            format!("{}:0", haproxy::PROXY),
            "--users".to_owned(),
            path("users.toml"),
            "--proxy-protocol".to_owned(),
            "--trusted-proxies".to_owned(),
            format!("{}/32", haproxy::PROXY),
            "--passive-address".to_owned(),
            PUBLIC.to_string(),
            "--log-file".to_owned(),
            path("daemon.log"),
            "--xferlog".to_owned(),
            path("xferlog"),
            "--admin-listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--admin-token-file".to_owned(),
            token.path(),
            "--login-failure-delay-ms".to_owned(),
            "0".to_owned(),
        ];
        if let Some((low, high)) = passive {
            args.extend(["--passive-ports".to_owned(), format!("{low}-{high}")]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut daemon =
            Daemon::start_custom(tmp, &args, vec![("alice".into(), "pw".into(), root)]);
        let admin = daemon.announced("actorftpd admin endpoint on ");
        let hp = haproxy::Replica {
            port: daemon.port(),
            passive: passive.unwrap_or_default(),
        };
        Replica {
            daemon,
            admin,
            token,
            hp,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.daemon.tmp().join("daemon.log")).unwrap_or_default()
    }

    fn xferlog(&self) -> String {
        std::fs::read_to_string(self.daemon.tmp().join("xferlog")).unwrap_or_default()
    }

    fn root(&self) -> PathBuf {
        self.daemon.root("alice")
    }

    /// The peers of the sessions `actorftpd who --once --json` shows.
    fn who(&self) -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
            .arg("who")
            .args(["--admin", &self.admin.to_string()])
            .args(["--admin-token-file", &self.token.path()])
            .args(["--once", "--json"])
            .output()
            .expect("run who");
        assert!(
            out.status.success(),
            "who: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        json.as_array()
            .expect("sessions")
            .iter()
            .map(|s| s["peer"].as_str().unwrap_or("").to_owned())
            .collect()
    }

    /// Waits until the log holds a line with every one of `parts`, and returns that line.
    fn log_line(&self, parts: &[&str]) -> String {
        wait_for(DEADLINE, &format!("a log line with {parts:?}"), || {
            self.log()
                .lines()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .map(str::to_owned)
        })
    }
}

/// A control connection: replies read line by line.
struct Ctrl<S: Read + Write = TcpStream> {
    reader: BufReader<S>,
}

impl Ctrl {
    fn on(stream: TcpStream) -> Ctrl {
        Ctrl {
            reader: BufReader::new(stream),
        }
    }
}

impl<S: Read + Write> Ctrl<S> {
    /// One reply (its last line), or `None` if the server closed first.
    fn reply(&mut self) -> Option<String> {
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let b = line.as_bytes();
            if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
                return Some(line.trim_end().to_owned());
            }
        }
    }

    fn send(&mut self, line: &str) {
        let s = self.reader.get_mut();
        s.write_all(format!("{line}\r\n").as_bytes()).expect("send");
    }

    #[track_caller]
    fn expect(&mut self, line: &str, code: u16) -> String {
        self.send(line);
        let reply = self
            .reply()
            .unwrap_or_else(|| panic!("{line}: connection closed"));
        assert!(reply.starts_with(&code.to_string()), "{line}: {reply}");
        reply
    }

    fn login(&mut self) {
        self.expect("USER alice", 331);
        self.expect("PASS pw", 230);
    }

    /// Whatever the server still sends before it closes.
    fn rest(mut self) -> Vec<u8> {
        let mut out = self.reader.buffer().to_vec();
        let _ = self.reader.get_mut().read_to_end(&mut out);
        out
    }
}

/// A PROXY v2 header saying `client` connected to `to`.
fn v2_header(client: SocketAddr, to: SocketAddr) -> Vec<u8> {
    ppp::v2::Builder::with_addresses(0x21, ppp::v2::Protocol::Stream, (client, to))
        .build()
        .expect("header")
}

fn v4(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

const PROXY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// The one replica (of `replicas`) whose root holds `name`, and the file's bytes.
fn stored<'a>(replicas: &[&'a Replica], name: &str) -> (&'a Replica, Vec<u8>) {
    let found: Vec<_> = replicas
        .iter()
        .filter_map(|r| std::fs::read(r.root().join(name)).ok().map(|b| (*r, b)))
        .collect();
    assert_eq!(found.len(), 1, "{name} is on exactly one replica");
    found.into_iter().next().expect("one")
}

const FTPLIB_ROUND_TRIP: &str = r#"
import ftplib, hashlib, io, os, sys
host, port, source, name, size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
ftp = ftplib.FTP(timeout=30, source_address=(source, 0))
ftp.connect(host, port)
ftp.login("alice", "pw")
data = os.urandom(size)
ftp.storbinary("STOR " + name, io.BytesIO(data))
got = io.BytesIO()
ftp.retrbinary("RETR " + name, got.write)
print("sent", hashlib.sha256(data).hexdigest())
print("got", hashlib.sha256(got.getvalue()).hexdigest())
ftp.quit()
"#;

#[test]
fn through_haproxy_a_client_is_seen_at_its_own_address() {
    if !haproxy::available() || !require_tool("python3") {
        return;
    }
    let [pa, pb] = haproxy::passive_ranges();
    let (a, b) = (Replica::start(Some(pa), &[]), Replica::start(Some(pb), &[]));
    let hp = HaProxy::start(&a.hp, &b.hp);

    // ftplib, passive (PASV: it connects to the control connection's address, HAProxy's),
    // from 127.0.0.2: upload, then download, in one session on one replica.
    let mut cmd = Command::new("python3");
    cmd.args(["-c", FTPLIB_ROUND_TRIP])
        .arg(PUBLIC.to_string())
        .arg(hp.control.port().to_string())
        .arg(CLIENT.to_string())
        .args(["through.bin", "300000"]);
    let out = run_with_timeout(&mut cmd, CLIENT_DEADLINE);
    out.assert_success("ftplib through HAProxy");
    let text = out.stdout_text();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .trim()
            .to_owned()
    };
    assert_eq!(
        field("sent "),
        field("got "),
        "downloaded what was uploaded"
    );
    let (served, bytes) = stored(&[&a, &b], "through.bin");
    assert_eq!(
        sha256_hex(&bytes),
        field("sent "),
        "the file on disk is the upload, no header"
    );

    // The replica's log names the client, and says through which proxy.
    let client = format!("{CLIENT}:");
    served.log_line(&[&client, "through proxy 127.0.0.1:", "PROXY header"]);
    served.log_line(&[&client, "alice"]);
    for line in served.log().lines().filter(|l| l.contains(" alice]")) {
        assert!(
            line.contains(&client),
            "alice's lines carry her address: {line}"
        );
    }
    // The transfer log's remote host is the client.
    let xfer = wait_for(DEADLINE, "the xferlog lines", || {
        let x = served.xferlog();
        (x.lines().filter(|l| l.contains("through.bin")).count() == 2).then_some(x)
    });
    for line in xfer.lines().filter(|l| l.contains("through.bin")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.get(6), Some(&CLIENT.to_string().as_str()), "{line}");
    }

    // `who` shows a session held open through HAProxy at the client's address.
    let mut held = Ctrl::on(haproxy::connect_from(CLIENT, hp.control));
    assert!(held.reply().is_some_and(|r| r.starts_with("220")));
    held.login();
    let peers = wait_for(DEADLINE, "the session in who", || {
        let mut peers = a.who();
        peers.extend(b.who());
        let ours: Vec<String> = peers
            .into_iter()
            .filter(|p| p.starts_with(&client))
            .collect();
        (!ours.is_empty()).then_some(ours)
    });
    assert_eq!(peers.len(), 1, "{peers:?}");
    held.expect("QUIT", 221);
}

/// One replica (named twice in the configuration, so every session lands on it): curl's two
/// sessions, upload then download, find the same files.
#[test]
fn curl_through_haproxy_uploads_and_downloads_in_passive_mode() {
    if !require_tool("curl") {
        return;
    }
    let Some((r, hp)) = one_replica_behind_haproxy(&[]) else {
        return;
    };
    let work = TempDir::new().expect("tmp");
    let data = random_bytes(2 * 1024 * 1024 + 17);
    let up = work.path().join("up.bin");
    std::fs::write(&up, &data).expect("write");
    let url = format!("ftp://{}/curl.bin", hp.control);
    let iface = CLIENT.to_string();
    // EPSV (curl's first choice): the port is the replica's, reached through HAProxy's
    // frontend for that replica's range.
    let curl = |args: &[&str]| {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "--max-time",
            "60",
            "--interface",
            &iface,
            "--user",
            "alice:pw",
        ]);
        cmd.args(args);
        run_with_timeout(&mut cmd, CLIENT_DEADLINE)
    };
    curl(&["-T", up.to_str().expect("utf-8"), &url]).assert_success("curl upload");
    let (_, bytes) = stored(&[&r], "curl.bin");
    assert_eq!(
        sha256_hex(&bytes),
        sha256_hex(&data),
        "stored exactly the upload"
    );
    let down = work.path().join("down.bin");
    curl(&["-o", down.to_str().expect("utf-8"), &url]).assert_success("curl download");
    assert_eq!(
        sha256_hex(&std::fs::read(&down).expect("downloaded")),
        sha256_hex(&data)
    );
    // The data connections came through HAProxy, from the client: none was refused.
    let log = r.log();
    assert!(
        !log.contains("data connection from"),
        "no data connection refused:\n{log}"
    );
    r.log_line(&[&format!("{CLIENT}:"), "alice] STOR /curl.bin ok"]);
    r.log_line(&[&format!("{CLIENT}:"), "alice] RETR /curl.bin ok"]);
}

#[test]
fn a_forged_header_from_an_untrusted_address_is_refused() {
    let d = Replica::start(None, &[]);
    let addr = d.daemon.addr();
    let forged_v1 = b"PROXY TCP4 10.9.8.7 127.0.0.1 5555 21\r\n".to_vec();
    let forged_v2 = v2_header(v4(Ipv4Addr::new(10, 9, 8, 7), 5555), addr);
    for forged in [forged_v1, forged_v2] {
        let mut c = Ctrl::on(haproxy::connect_from(CLIENT, addr));
        assert!(c.reply().is_some_and(|r| r.starts_with("220")), "greeting");
        let s = c.reader.get_mut();
        s.write_all(&forged).expect("send header");
        s.write_all(b"USER alice\r\n").expect("send USER");
        let rest = c.rest();
        assert!(
            rest.is_empty(),
            "closed, nothing answered: {:?}",
            String::from_utf8_lossy(&rest)
        );
    }
    d.log_line(&[
        &format!("{CLIENT}:"),
        "PROXY header from a peer not in --trusted-proxies",
    ]);
    assert!(
        !d.log().contains("10.9.8.7"),
        "the claimed address is never used"
    );
    // The same client without a header is an ordinary direct client.
    let mut c = Ctrl::on(haproxy::connect_from(CLIENT, addr));
    assert!(c.reply().is_some_and(|r| r.starts_with("220")));
    c.login();
    c.expect("QUIT", 221);
}

#[test]
fn a_trusted_proxy_must_send_a_valid_header() {
    let d = Replica::start(None, &[]);
    let addr = d.daemon.addr();
    // No header: the first bytes are a command. Nothing is answered, not even the greeting.
    let mut c = haproxy::connect_from(PROXY_IP, addr);
    c.write_all(b"USER alice\r\n").expect("send");
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    d.log_line(&["trusted proxy 127.0.0.1:", "no PROXY header"]);
    // A broken v1 header (no ports), and a v1 line that never ends.
    for bad in [
        b"PROXY TCP4 192.0.2.9 127.0.0.1\r\n".to_vec(),
        [b"PROXY TCP4 ".to_vec(), vec![b'1'; 200]].concat(),
    ] {
        let mut c = haproxy::connect_from(PROXY_IP, addr);
        let _ = c.write_all(&bad);
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    }
    d.log_line(&["trusted proxy 127.0.0.1:", "longer than 107 bytes"]);
    // Silence: cut off after the header timeout, with nothing sent.
    let started = Instant::now();
    let mut c = haproxy::connect_from(PROXY_IP, addr);
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    assert!(got.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(15),
        "{waited:?}"
    );
    // A good v1 header: the session is the client's.
    let mut c = Ctrl::on(haproxy::connect_from(PROXY_IP, addr));
    c.reader
        .get_mut()
        .write_all(b"PROXY TCP4 192.0.2.9 203.0.113.7 4444 21\r\n")
        .expect("header");
    assert!(c.reply().is_some_and(|r| r.starts_with("220")));
    c.login();
    d.log_line(&["192.0.2.9:4444] login ok as alice"]);
    assert_eq!(d.who(), vec!["192.0.2.9:4444".to_owned()]);
    c.expect("QUIT", 221);
}

/// The test plays the load balancer: control and data connections from 127.0.0.1, each with a
/// v2 header naming the client.
#[test]
fn passive_data_through_a_proxy_is_checked_against_the_client_and_has_no_header() {
    let d = Replica::start(None, &[]);
    let addr = d.daemon.addr();
    let client = v4(CLIENT, 50_000);
    let mut c = Ctrl::on(haproxy::connect_from(PROXY_IP, addr));
    c.reader
        .get_mut()
        .write_all(&v2_header(client, v4(PUBLIC, 21)))
        .expect("header");
    assert!(c.reply().is_some_and(|r| r.starts_with("220")));
    c.login();
    c.expect("TYPE I", 200);
    // PASV names the load balancer (--passive-address), even to a client on a local network.
    let pasv = c.expect("PASV", 227);
    assert!(pasv.contains("(127,0,0,3,"), "{pasv}");
    let epsv = c.expect("EPSV", 229);
    let port: u16 = epsv
        .split('|')
        .nth(3)
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{epsv}"));
    let data_addr = v4(PROXY_IP, port);
    // Another client's connection relayed by the proxy: refused.
    let mut stranger = haproxy::connect_from(PROXY_IP, data_addr);
    stranger
        .write_all(&v2_header(
            v4(Ipv4Addr::new(127, 0, 0, 5), 50_001),
            v4(PUBLIC, port),
        ))
        .expect("header");
    stranger.write_all(b"stranger's bytes").expect("data");
    // The proxy relaying without a header: refused, its bytes are in no file.
    let mut headless = haproxy::connect_from(PROXY_IP, data_addr);
    headless
        .write_all(b"headless bytes, a file's start")
        .expect("data");
    // The client's own, relayed with its header: the file is exactly what follows the header.
    let payload = random_bytes(256 * 1024 + 3);
    let mut own = haproxy::connect_from(PROXY_IP, data_addr);
    own.write_all(&v2_header(v4(CLIENT, 50_002), v4(PUBLIC, port)))
        .expect("header");
    own.write_all(&payload).expect("data");
    own.shutdown(std::net::Shutdown::Write).expect("shutdown");
    c.expect("STOR relayed.bin", 150);
    let done = c.reply().expect("226");
    assert!(done.starts_with("226"), "{done}");
    let stored = std::fs::read(d.root().join("relayed.bin")).expect("stored");
    assert_eq!(
        sha256_hex(&stored),
        sha256_hex(&payload),
        "no header, no stranger's bytes"
    );
    for mut refused in [stranger, headless] {
        let mut got = Vec::new();
        let _ = refused.read_to_end(&mut got);
        assert!(got.is_empty());
    }
    d.log_line(&[
        "data connection from 127.0.0.5:50001 through proxy 127.0.0.1:",
        "refused",
    ]);
    d.log_line(&["data connection from trusted proxy 127.0.0.1:", "refused"]);
    c.expect("QUIT", 221);
}

/// One replica named twice in the configuration: the ban and the per-IP count are its own.
fn one_replica_behind_haproxy(extra: &[&str]) -> Option<(Replica, HaProxy)> {
    if !haproxy::available() {
        return None;
    }
    let [pa, _] = haproxy::passive_ranges();
    let r = Replica::start(Some(pa), extra);
    let hp = HaProxy::start(&r.hp, &r.hp);
    Some((r, hp))
}

/// A fresh control connection from `source` through HAProxy, and its greeting.
fn greet(source: Ipv4Addr, hp: &HaProxy) -> (Ctrl, String) {
    let mut c = Ctrl::on(haproxy::connect_from(source, hp.control));
    let greeting = c.reply().unwrap_or_default();
    (c, greeting)
}

#[test]
fn failed_logins_through_haproxy_ban_the_client_not_the_proxy() {
    let Some((r, hp)) =
        one_replica_behind_haproxy(&["--ban-failures", "2", "--max-login-failures", "1"])
    else {
        return;
    };
    for _ in 0..2 {
        let (mut c, greeting) = greet(CLIENT, &hp);
        assert!(greeting.starts_with("220"), "{greeting}");
        c.expect("USER alice", 331);
        c.expect("PASS wrong", 530);
    }
    r.log_line(&[&format!("banning {CLIENT}")]);
    let (_, greeting) = greet(CLIENT, &hp);
    assert!(
        greeting.starts_with("421"),
        "the client is banned: {greeting}"
    );
    r.log_line(&[
        &format!("refused connection from {CLIENT}:"),
        "through proxy 127.0.0.1:",
    ]);
    // Everyone else still comes in through the same proxy.
    for _ in 0..3 {
        let (mut c, greeting) = greet(OTHER_CLIENT, &hp);
        assert!(greeting.starts_with("220"), "{greeting}");
        c.login();
        c.expect("QUIT", 221);
    }
    assert!(
        !r.log().contains("banning 127.0.0.1"),
        "the proxy is never banned"
    );
}

#[test]
fn the_per_ip_limit_counts_the_client_not_the_proxy() {
    let Some((_r, hp)) = one_replica_behind_haproxy(&["--max-sessions-per-ip", "1"]) else {
        return;
    };
    let (mut first, greeting) = greet(CLIENT, &hp);
    assert!(greeting.starts_with("220"), "{greeting}");
    first.login();
    let (_, greeting) = greet(CLIENT, &hp);
    assert!(
        greeting.starts_with("421"),
        "one session per client address: {greeting}"
    );
    let (mut other, greeting) = greet(OTHER_CLIENT, &hp);
    assert!(
        greeting.starts_with("220"),
        "another client is not counted with it: {greeting}"
    );
    other.login();
    other.expect("QUIT", 221);
    first.expect("QUIT", 221);
}

#[test]
fn the_readme_shows_the_haproxy_configuration_the_tests_use() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    let config = std::fs::read_to_string(haproxy::config_path()).expect("haproxy.cfg");
    let section = &readme[readme
        .find("## Running several replicas")
        .expect("README has the section")..];
    let start = section.find("```haproxy\n").expect("a haproxy block") + "```haproxy\n".len();
    let end = start + section[start..].find("```").expect("block end");
    assert_eq!(
        &section[start..end],
        config,
        "README shows src/dist/haproxy.cfg as it is"
    );
}

/// The test plays the proxy (v1 headers, from 127.0.0.1) for a client at 127.0.0.2: a user's
/// allowed_networks and the PORT/EPRT rule see the client, never the proxy.
#[test]
fn allowed_networks_and_port_see_the_client_behind_the_proxy() {
    let d = Replica::start_with_users(
        None,
        &[],
        &[("near", "127.0.0.2/32"), ("proxyonly", "127.0.0.1/32")],
    );
    let addr = d.daemon.addr();
    let session = || {
        let mut c = Ctrl::on(haproxy::connect_from(PROXY_IP, addr));
        c.reader
            .get_mut()
            .write_all(b"PROXY TCP4 127.0.0.2 127.0.0.3 50010 21\r\n")
            .expect("header");
        assert!(c.reply().is_some_and(|r| r.starts_with("220")));
        c
    };
    let mut c = session();
    c.expect("USER proxyonly", 331);
    c.expect("PASS pw", 530);
    let mut c = session();
    c.expect("USER near", 331);
    c.expect("PASS pw", 230);
    // Active mode: the proxy's address is not the client's; the client's is.
    c.expect("PORT 127,0,0,1,200,10", 501);
    let listener = std::net::TcpListener::bind((CLIENT, 0)).expect("listen on the client");
    let port = listener.local_addr().expect("addr").port();
    c.expect(&format!("EPRT |1|{CLIENT}|{port}|"), 200);
    std::fs::write(d.root().join("seen.txt"), b"x").expect("file");
    c.expect("NLST", 150);
    let (mut data, from) = listener
        .accept()
        .expect("the replica connects to the client");
    let mut names = String::new();
    data.read_to_string(&mut names).expect("listing");
    assert!(names.contains("seen.txt"), "{names}");
    assert_eq!(
        from.ip().to_string(),
        "127.0.0.1",
        "straight from the replica"
    );
    let done = c.reply().expect("226");
    assert!(done.starts_with("226"), "{done}");
    c.expect("QUIT", 221);
}

/// On the implicit-TLS port the header comes first, in clear, then the TLS handshake; the
/// session inside is the client's.
#[test]
fn implicit_tls_behind_a_proxy_reads_the_header_before_the_handshake() {
    let cert = common::tls::make_cert();
    let mut d = Replica::start(
        None,
        &[
            "--tls-cert",
            cert.cert_arg(),
            "--tls-key",
            cert.key_arg(),
            "--implicit-tls-listen",
            "127.0.0.1:0",
        ],
    );
    let implicit = d.daemon.announced("actorftpd implicit TLS on ");
    let mut sock = haproxy::connect_from(PROXY_IP, implicit);
    sock.write_all(&v2_header(v4(CLIENT, 50_020), v4(PUBLIC, 990)))
        .expect("header");
    let tls = common::tls::tls_client(sock, common::tls::client_config(&cert));
    let mut c = Ctrl {
        reader: BufReader::new(tls),
    };
    assert!(
        c.reply().is_some_and(|r| r.starts_with("220")),
        "greeting inside TLS"
    );
    c.login();
    d.log_line(&["127.0.0.2:50020] login ok as alice"]);
    c.expect("QUIT", 221);
}
