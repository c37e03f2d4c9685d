//! Active mode (PORT, EPRT over IPv4 and IPv6) and passive mode over IPv6, with a raw control
//! client and a test-side listener; then curl in active mode (`-P`, EPRT and PORT) and with
//! `--ftp-pasv`. Every transferred byte is sha256-checked.

mod common;
mod rawftp;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use common::*;
use rawftp::*;

const USER: &str = "alice";
const PASS: &str = "alice-pass";
/// How long the server may take to connect to an active-mode listener.
const CONNECT_DEADLINE: Duration = Duration::from_secs(15);

/// A listener for the server's active-mode connection, on `ip` and an ephemeral port.
fn active_listener(ip: &str) -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    let addr = l.local_addr().expect("listener address");
    (l, addr)
}

/// `setup` is PORT or EPRT for `addr`; then RETR/STOR/LIST over the connection the server makes.
fn active_round_trip(c: &mut Ctrl, d: &Daemon, ip: &str, setup: fn(SocketAddr) -> String) {
    let root = d.root(USER);
    let data = random_bytes_seeded(21, 2 * MIB + 77);
    write_file(&root.join("down load.bin"), &data);

    // RETR: the server connects to us.
    let (l, addr) = active_listener(ip);
    c.expect(&setup(addr), 200);
    c.expect("RETR down load.bin", 150);
    let conn = accept_within(&l, CONNECT_DEADLINE);
    assert_eq!(
        conn.peer_addr().expect("peer").ip(),
        d.addr().ip(),
        "the active connection comes from the server's address"
    );
    let got = read_all(conn);
    c.expect_reply(226);
    assert_eq!(sha256_hex(&got), sha256_hex(&data), "active RETR");

    // STOR.
    let up = random_bytes_seeded(22, MIB + 3);
    let (l, addr) = active_listener(ip);
    c.expect(&setup(addr), 200);
    c.expect("STOR up load.bin", 150);
    let conn = accept_within(&l, CONNECT_DEADLINE);
    write_all_close(conn, &up);
    c.expect_reply(226);
    assert_file_holds(&root.join("up load.bin"), &up, "active STOR");

    // LIST and NLST.
    for (verb, needle) in [("LIST", " up load.bin\r\n"), ("NLST", "up load.bin\r\n")] {
        let (l, addr) = active_listener(ip);
        c.expect(&setup(addr), 200);
        c.expect(verb, 150);
        let listing = String::from_utf8(read_all(accept_within(&l, CONNECT_DEADLINE)))
            .expect("listing is UTF-8");
        c.expect_reply(226);
        assert!(
            listing.contains(needle),
            "{verb} over active mode:\n{listing}"
        );
        assert!(listing.contains("down load.bin\r\n"), "{verb}:\n{listing}");
    }

    // One PORT serves one transfer.
    c.expect("RETR down load.bin", 425);
}

#[test]
fn port_active_retr_stor_list_are_byte_exact() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    active_round_trip(&mut c, &d, "127.0.0.1", port_command);
}

#[test]
fn eprt_ipv4_active_retr_stor_list_are_byte_exact() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    active_round_trip(&mut c, &d, "127.0.0.1", eprt_command);
}

#[test]
fn active_target_nobody_listens_on_gets_150_then_425_and_the_session_continues() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let data = random_bytes(10_000);
    write_file(&d.root(USER).join("f.bin"), &data);
    // A port that was just free: nothing listens there any more.
    let (l, addr) = active_listener("127.0.0.1");
    drop(l);
    c.expect(&port_command(addr), 200);
    c.expect("RETR f.bin", 150);
    c.expect_reply(425);
    c.expect("NOOP", 200);
    assert_eq!(sha256_hex(&c.download("RETR f.bin")), sha256_hex(&data));
}

#[test]
fn a_later_port_replaces_an_earlier_pasv_and_the_other_way_round() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let data = random_bytes(20_000);
    write_file(&d.root(USER).join("f.bin"), &data);
    // PASV, then PORT: the transfer goes active.
    let _pasv = c.pasv_addr();
    let (l, addr) = active_listener("127.0.0.1");
    c.expect(&port_command(addr), 200);
    c.expect("RETR f.bin", 150);
    assert_eq!(
        sha256_hex(&read_all(accept_within(&l, CONNECT_DEADLINE))),
        sha256_hex(&data)
    );
    c.expect_reply(226);
    // PORT, then EPSV: the transfer goes passive.
    let (_l, addr) = active_listener("127.0.0.1");
    c.expect(&eprt_command(addr), 200);
    assert_eq!(sha256_hex(&c.download("RETR f.bin")), sha256_hex(&data));
}

/// Whether this machine can bind `[::1]`. Without it the IPv6 tests cannot run: loud skip, or a
/// failure when `CI` is set.
fn require_ipv6() -> bool {
    if TcpListener::bind("[::1]:0").is_ok() {
        return true;
    }
    cannot_run(
        "IPv6 loopback [::1] is required by this test",
        "no IPv6 loopback ([::1])",
    )
}

/// Starts the daemon on `[::1]:0` with user alice.
fn start_ipv6() -> Daemon {
    let root = format!("roots/{USER}");
    let d = Daemon::start_listening("[::1]:0", &[(USER, PASS, &root)], &[]);
    assert!(d.addr().is_ipv6(), "daemon listens on {}", d.addr());
    d
}

#[test]
fn ipv6_eprt_active_retr_stor_list_are_byte_exact() {
    if !require_ipv6() {
        return;
    }
    let d = start_ipv6();
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    active_round_trip(&mut c, &d, "::1", eprt_command);
    // IPv4 targets are not the client's address.
    c.expect("PORT 127,0,0,1,200,10", 501);
    c.expect("EPRT |1|127.0.0.1|51210|", 501);
}

#[test]
fn ipv6_epsv_transfers_are_byte_exact_and_pasv_is_refused() {
    if !require_ipv6() {
        return;
    }
    let d = start_ipv6();
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    let data = random_bytes_seeded(23, 3 * MIB + 1);
    c.upload("STOR v6.bin", &data);
    assert_eq!(file_sha256(&d.root(USER).join("v6.bin")), sha256_hex(&data));
    assert_eq!(sha256_hex(&c.download("RETR v6.bin")), sha256_hex(&data));
    assert!(c.listing("NLST").contains("v6.bin\r\n"));
    c.expect("EPSV 2", 229);
    // PASV cannot name an IPv6 address.
    let r = c.cmd("PASV");
    assert!(r.code >= 400, "PASV over IPv6 must be refused, got {r}");
    c.expect("EPSV ALL", 200);
    assert_eq!(sha256_hex(&c.download("RETR v6.bin")), sha256_hex(&data));
}

const CURLE_OK: i32 = 0;

fn curl(args: &[&str]) -> ClientOutput {
    curl_as(USER, PASS, args)
}

/// Upload, download and listing with curl and `extra` options; returns curl's verbose logs.
fn curl_round_trip(d: &Daemon, host: &str, extra: &[&str]) -> String {
    let data = random_bytes_seeded(24, MIB + 555);
    let local = d.tmp().join("local.bin");
    write_file(&local, &data);
    let url = format!("ftp://{host}:{}/curl%20file.bin", d.port());
    let mut logs = String::new();

    let mut args = vec!["-T", path_str(&local), url.as_str()];
    args.extend(extra);
    let out = curl(&args);
    out.assert_success(&format!("curl -T {extra:?}"));
    logs.push_str(&out.stderr_text());
    assert_eq!(
        file_sha256(&d.root(USER).join("curl file.bin")),
        sha256_hex(&data),
        "upload with curl {extra:?}"
    );

    let got = d.tmp().join("got.bin");
    let mut args = vec!["-o", path_str(&got), url.as_str()];
    args.extend(extra);
    let out = curl(&args);
    out.assert_success(&format!("curl -o {extra:?}"));
    logs.push_str(&out.stderr_text());
    assert_file_holds(&got, &data, &format!("download with curl {extra:?}"));

    let dir_url = format!("ftp://{host}:{}/", d.port());
    let mut args = vec![dir_url.as_str()];
    args.extend(extra);
    let out = curl(&args);
    out.assert_success(&format!("curl LIST {extra:?}"));
    logs.push_str(&out.stderr_text());
    assert!(
        out.stdout_text()
            .lines()
            .any(|l| l.trim_end().ends_with(" curl file.bin")),
        "LIST via curl {extra:?}:\n{}",
        out.stdout_text()
    );
    assert_eq!(out.status.code(), Some(CURLE_OK));
    logs
}

/// Lines curl sent (`> VERB ...` in its verbose output).
fn sent(logs: &str, verb: &str) -> usize {
    logs.lines()
        .filter(|l| l.starts_with(&format!("> {verb}")))
        .count()
}

#[test]
fn curl_active_mode_with_eprt_is_byte_exact() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let logs = curl_round_trip(&d, "127.0.0.1", &["-P", "127.0.0.1"]);
    assert_eq!(
        sent(&logs, "EPRT |1|127.0.0.1|"),
        3,
        "curl -P used EPRT:\n{logs}"
    );
    assert_eq!(sent(&logs, "EPSV") + sent(&logs, "PASV"), 0, "{logs}");
}

#[test]
fn curl_active_mode_with_disable_eprt_uses_port_and_is_byte_exact() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let logs = curl_round_trip(&d, "127.0.0.1", &["-P", "127.0.0.1", "--disable-eprt"]);
    assert_eq!(sent(&logs, "PORT 127,0,0,1,"), 3, "curl used PORT:\n{logs}");
    assert_eq!(sent(&logs, "EPRT"), 0, "{logs}");
}

#[test]
fn curl_ftp_pasv_is_byte_exact() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let logs = curl_round_trip(&d, "127.0.0.1", &["--ftp-pasv"]);
    assert_eq!(sent(&logs, "EPSV"), 3, "curl --ftp-pasv used EPSV:\n{logs}");
    let logs = curl_round_trip(&d, "127.0.0.1", &["--ftp-pasv", "--disable-epsv"]);
    assert_eq!(
        sent(&logs, "PASV"),
        3,
        "curl --disable-epsv used PASV:\n{logs}"
    );
}

#[test]
fn curl_over_ipv6_epsv_and_active_eprt_is_byte_exact() {
    if !require_tool("curl") || !require_ipv6() {
        return;
    }
    let d = start_ipv6();
    let logs = curl_round_trip(&d, "[::1]", &[]);
    assert_eq!(sent(&logs, "EPSV"), 3, "{logs}");
    let logs = curl_round_trip(&d, "[::1]", &["-P", "::1"]);
    assert_eq!(
        sent(&logs, "EPRT |2|::1|"),
        3,
        "curl -P ::1 used EPRT |2|:\n{logs}"
    );
}
