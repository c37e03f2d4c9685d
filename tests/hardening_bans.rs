//! Bans and session limits hold for the whole daemon: across connections opened before a ban,
//! across the plain and the implicit-TLS port, and against many connections guessing at once.
//! Each test runs the real daemon and real sockets.

mod common;
mod rawftp;

use common::tls::{client_config, make_cert, tls_client, Cert};
use common::Daemon;
use rawftp::{tcp_connect, Ctrl};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(15);

fn daemon(extra: &[&str]) -> Daemon {
    let mut args = vec!["--login-failure-delay-ms", "0"];
    args.extend_from_slice(extra);
    Daemon::start_with_args(&[("alice", "pw", "srv")], &args)
}

/// Reads one reply line, or `None` at EOF.
fn line(r: &mut BufReader<TcpStream>) -> Option<String> {
    let mut l = String::new();
    match r.read_line(&mut l) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(l),
    }
}

/// A connection that has sent USER alice and read the 331.
fn awaiting_password(addr: SocketAddr) -> (BufReader<TcpStream>, TcpStream) {
    let s = tcp_connect(addr);
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    assert!(line(&mut r).is_some_and(|l| l.starts_with("220")));
    w.write_all(b"USER alice\r\n").expect("send");
    assert!(line(&mut r).is_some_and(|l| l.starts_with("331")));
    (r, w)
}

/// Connects until the daemon refuses with a 421 about failed logins (the ban is recorded by
/// message, so the first connections after the failing PASS may still be admitted).
fn wait_for_ban(addr: SocketAddr) {
    for _ in 0..200 {
        let mut r = BufReader::new(tcp_connect(addr));
        match line(&mut r) {
            Some(l) if l.starts_with("421") && l.contains("failed logins") => return,
            Some(l) if l.starts_with("220") || l.starts_with("421") => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
    panic!("{addr} never refused the banned source");
}

#[test]
fn many_connections_guessing_at_once_get_no_more_than_the_ban_allows() {
    // 15 connections, 3 tries each: 45 guesses without a shared count; the ban allows 10.
    let d = daemon(&["--ban-failures", "10", "--max-sessions-per-ip", "100"]);
    let mut conns: Vec<_> = (0..15).map(|_| awaiting_password(d.addr())).collect();
    let mut checked = 0;
    let mut refused = 0;
    for _round in 0..3 {
        // Every connection guesses at once, then the answers are read.
        for (_, w) in conns.iter_mut() {
            let _ = w.write_all(b"PASS wrong\r\nUSER alice\r\n");
        }
        let mut open = Vec::new();
        for (mut r, w) in conns {
            match line(&mut r) {
                Some(l) if l.starts_with("530") => {
                    checked += 1;
                    match line(&mut r) {
                        Some(l) if l.starts_with("331") => open.push((r, w)),
                        // The ban closed it, or its own limit of three.
                        Some(l) if l.starts_with("421") => refused += 1,
                        _ => {}
                    }
                }
                Some(l) if l.starts_with("421") => refused += 1,
                Some(l) => panic!("unexpected {l:?}"),
                None => {}
            }
        }
        conns = open;
    }
    assert!(checked <= 10, "{checked} wrong passwords were checked");
    assert!(checked > 0, "no password was checked at all");
    assert!(refused >= 5, "only {refused} connections were told 421");
    assert!(
        conns.is_empty(),
        "{} connections still guessing",
        conns.len()
    );
    wait_for_ban(d.addr());
}

#[test]
fn a_ban_closes_the_sources_connections_that_have_not_logged_in() {
    let d = daemon(&["--ban-failures", "2"]);
    // Logged in before the ban: keeps working.
    let mut working = Ctrl::login(d.addr(), "alice", "pw");
    let mut waiting: Vec<_> = (0..3).map(|_| awaiting_password(d.addr())).collect();
    let mut guesser = Ctrl::connect(d.addr());
    guesser.expect("USER alice", 331);
    guesser.expect("PASS wrong", 530);
    guesser.expect("USER alice", 331);
    guesser.expect("PASS wrong", 530);
    // Every connection from the source that has not logged in is told 421 and closed, without
    // sending anything more.
    for (r, _) in waiting.iter_mut() {
        let l = line(r).expect("a 421 before the close");
        assert!(l.starts_with("421") && l.contains("failed logins"), "{l:?}");
        assert_eq!(line(r), None, "still open after the 421");
    }
    let l = guesser.reply();
    assert_eq!(l.code, 421, "{l}");
    working.expect("NOOP", 200);
    working.expect("PWD", 257);
    // And a new connection from it is refused before it can send a password.
    wait_for_ban(d.addr());
}

/// A daemon with an implicit-TLS port beside the plain one; returns both addresses.
fn two_ports(cert: &Cert, extra: &[&str]) -> (Daemon, SocketAddr) {
    let mut args = vec![
        "--tls-cert",
        cert.cert_arg(),
        "--tls-key",
        cert.key_arg(),
        "--implicit-tls-listen",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    let mut d = daemon(&args);
    let line = d
        .wait_for_stdout_line(|l| l.starts_with("actorftpd implicit TLS on "), DEADLINE)
        .expect("implicit address");
    let implicit = line
        .trim_start_matches("actorftpd implicit TLS on ")
        .trim()
        .parse()
        .expect("implicit address");
    (d, implicit)
}

/// An implicit-TLS control connection that has read its 220.
fn implicit_session(
    addr: SocketAddr,
    cert: &Cert,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut tls = tls_client(tcp_connect(addr), client_config(cert));
    let mut greeting = [0u8; 4];
    tls.read_exact(&mut greeting).expect("220 over TLS");
    assert_eq!(&greeting, b"220 ");
    tls
}

#[test]
fn session_limits_and_bans_are_one_table_for_both_ports() {
    let cert = make_cert();
    let (d, implicit) = two_ports(&cert, &["--max-sessions", "2", "--ban-failures", "2"]);
    // One session on each port fills the daemon's limit of two: a third on either is refused.
    let tls = implicit_session(implicit, &cert);
    let mut plain = Ctrl::connect(d.addr());
    let mut third = BufReader::new(tcp_connect(d.addr()));
    let l = line(&mut third).expect("a reply");
    assert!(
        l.starts_with("421") && l.contains("Too many users"),
        "{l:?}"
    );
    let mut third = BufReader::new(tcp_connect(implicit));
    let l = line(&mut third).expect("a reply");
    assert!(
        l.starts_with("421") && l.contains("Too many users"),
        "{l:?}"
    );
    drop(tls);
    // A ban earned on the plain port holds on the implicit-TLS port.
    plain.expect("USER alice", 331);
    plain.expect("PASS wrong", 530);
    plain.expect("USER alice", 331);
    plain.expect("PASS wrong", 530);
    wait_for_ban(d.addr());
    // The plain port has the ban, so the one table has it: the implicit-TLS port refuses at once
    // (in clear, before any handshake).
    let mut r = BufReader::new(tcp_connect(implicit));
    let l = line(&mut r).expect("a reply");
    assert!(l.starts_with("421") && l.contains("failed logins"), "{l:?}");
}
