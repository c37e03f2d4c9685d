//! A protected data connection whose TLS handshake never completes is bounded by the
//! data-connection timeout (not the 120 s stall timeout), and the 425 says why. Passive and
//! active alike: the handshake is the same code after the connection exists.

mod common;

use common::tls::{client_config, make_cert, tls_client};
use common::Daemon;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Well under the stall timeout (120 s): the handshake must end by the data timeout (2 s here).
const BOUND: Duration = Duration::from_secs(30);

/// Reads one reply line (the replies here are single-line) and its code.
fn reply(r: &mut impl BufRead) -> (u16, String) {
    let mut line = String::new();
    r.read_line(&mut line).expect("reply");
    (
        line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0),
        line,
    )
}

#[test]
fn a_data_tls_handshake_that_never_completes_gets_425_by_the_data_timeout() {
    let cert = make_cert();
    let d = Daemon::start_with_args(
        &[("alice", "pw", "srv")],
        &[
            "--tls-cert",
            cert.cert_arg(),
            "--tls-key",
            cert.key_arg(),
            "--data-timeout",
            "2",
        ],
    );
    std::fs::write(d.root("alice").join("f.bin"), common::random_bytes(200_000)).expect("file");
    // A control connection in TLS, logged in, PROT P.
    let sock = TcpStream::connect(d.addr()).expect("connect");
    sock.set_read_timeout(Some(BOUND)).expect("timeout");
    let mut plain = BufReader::new(sock.try_clone().expect("clone"));
    assert_eq!(reply(&mut plain).0, 220);
    (&sock).write_all(b"AUTH TLS\r\n").expect("send");
    assert_eq!(reply(&mut plain).0, 234);
    let mut c = BufReader::new(tls_client(sock, client_config(&cert)));
    let cmd = |c: &mut BufReader<_>, line: &str| {
        let s: &mut rustls::StreamOwned<_, _> = c.get_mut();
        s.write_all(format!("{line}\r\n").as_bytes()).expect("send");
        reply(c)
    };
    for (line, code) in [
        ("USER alice", 331),
        ("PASS pw", 230),
        ("PBSZ 0", 200),
        ("PROT P", 200),
        ("TYPE I", 200),
    ] {
        assert_eq!(cmd(&mut c, line).0, code, "{line}");
    }
    for active in [false, true] {
        // The data connection is made, and then the client says nothing.
        let (code, text, _held) = if active {
            let trap = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = trap.local_addr().expect("addr").port();
            let line = format!("EPRT |1|127.0.0.1|{port}|");
            assert_eq!(cmd(&mut c, &line).0, 200);
            let started = Instant::now();
            let (code, _) = cmd(&mut c, "RETR f.bin");
            assert_eq!(code, 150);
            let (held, _) = trap.accept().expect("the server connects");
            let (code, text) = reply(&mut c);
            assert!(
                started.elapsed() < BOUND,
                "active: waited the stall timeout"
            );
            (code, text, held)
        } else {
            let (code, text) = cmd(&mut c, "EPSV");
            assert_eq!(code, 229, "{text}");
            let port: u16 = text
                .split("|||")
                .nth(1)
                .and_then(|p| p.trim_end().trim_end_matches([')', '|']).parse().ok())
                .expect("port");
            let started = Instant::now();
            let held = TcpStream::connect(("127.0.0.1", port)).expect("data connect");
            let (code, _) = cmd(&mut c, "RETR f.bin");
            assert_eq!(code, 150);
            let (code, text) = reply(&mut c);
            assert!(
                started.elapsed() < BOUND,
                "passive: waited the stall timeout"
            );
            (code, text, held)
        };
        assert_eq!(code, 425, "active {active}: {text}");
        assert!(text.contains("TLS handshake"), "the 425 says why: {text}");
    }
    // The session goes on.
    assert_eq!(cmd(&mut c, "NOOP").0, 200);
}
