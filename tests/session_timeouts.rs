//! Actor-level timeout tests: a Session with a channel as its reply sink (the harness shared
//! with tests/session_actor.rs, tests/actor_harness/) and a Config with the timeouts under test.
//!
//! The data-connection timeout runs on tokio timers, so it is tested with paused time
//! (`tokio::time::pause()` + `advance()`): no test waits 30 s. While time is paused, replies are
//! awaited by polling the channel and yielding (bounded by a real-clock deadline) instead of
//! `tokio::time::timeout`, because an idle runtime would auto-advance the paused clock to the
//! next timer and fire timeouts the test did not ask for.
//!
//! The idle and login timeouts compare tokio `Instant`s inside the Session, so paused time moves
//! them too: each has a paused-time test, and a real-clock twin with 1-second timeouts checks the
//! same behaviour end to end.

mod actor_harness;

use actor_harness::{
    epsv_port, expect_reply, local, random_bytes, read_to_eof, sha256, write, Harness,
    REPLY_DEADLINE,
};
use actorftpd::auth::Permissions;
use actorftpd::config::{Config, Timeouts};
use actorftpd::protocol::{Command, EpsvArg, Reply, TransferType};
use actorftpd::session::SinkItem;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

fn config(idle: u64, login: u64, data: u64) -> Config {
    Config {
        timeouts: Timeouts {
            idle: Duration::from_secs(idle),
            login: Duration::from_secs(login),
            data_connect: Duration::from_secs(data),
            data_stall: Duration::from_secs(120),
            ..Timeouts::default()
        },
        ..Config::default()
    }
}

impl Harness {
    async fn start(config: Config) -> Harness {
        Harness::start_with(config, Permissions::ALL).await
    }

    async fn logged_in(config: Config) -> Harness {
        let mut h = Harness::start(config).await;
        h.login().await;
        h.cmd(Command::Type(TransferType::Image), 200).await;
        h
    }

    /// Next outbound item while tokio time may be paused: poll and yield, never sleep, so the
    /// runtime is never idle and the paused clock moves only when the test advances it.
    async fn next_spin(&mut self) -> SinkItem {
        let deadline = Instant::now() + REPLY_DEADLINE;
        loop {
            match self.replies.try_recv() {
                Ok(out) => return out,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    panic!("session stopped without replying")
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    assert!(
                        Instant::now() < deadline,
                        "no reply within {REPLY_DEADLINE:?} (real time)"
                    );
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    async fn expect_spin(&mut self, code: u16) -> Reply {
        let out = self.next_spin().await;
        expect_reply(out, code)
    }

    async fn cmd_spin(&mut self, cmd: Command, code: u16) -> Reply {
        self.send(cmd).await;
        self.expect_spin(code).await
    }

    /// RETR `name` through the port of the 229 `epsv`: 150, every byte (sha256), then 226.
    async fn retr_through(&mut self, epsv: &Reply, name: &str, data: &[u8], port_open: &str) {
        let sock = TcpStream::connect(local(epsv_port(epsv))).expect(port_open);
        let got = read_in_thread(sock);
        self.cmd_spin(Command::Retr(name.into()), 150).await;
        self.expect_spin(226).await;
        assert_eq!(
            sha256(&got.recv_timeout(REPLY_DEADLINE).expect("data")),
            sha256(data)
        );
    }

    /// Pauses time and moves it on by `secs`: the session must send 421, then close.
    async fn closed_with_421_after_paused(&mut self, secs: u64) {
        tokio::time::pause();
        tokio::time::advance(Duration::from_secs(secs)).await;
        self.expect_spin(421).await;
        assert_eq!(self.next_spin().await, SinkItem::Close);
    }

    /// With time paused and a data setup nobody completes: RETR f.bin gets 150, nothing more
    /// within 29 s, 425 once the 30 s data timeout has passed, and the session is free again.
    async fn retr_gets_425_after_the_data_timeout(&mut self) {
        self.cmd_spin(Command::Retr("f.bin".into()), 150).await;
        tokio::time::advance(Duration::from_secs(29)).await;
        self.cmd_spin(Command::Noop, 200).await;
        self.assert_quiet("before the data timeout");
        tokio::time::advance(Duration::from_secs(2)).await;
        self.expect_spin(425).await;
        self.cmd_spin(Command::Noop, 200).await;
    }

    /// No reply is queued right now.
    fn assert_quiet(&mut self, what: &str) {
        if let Ok(out) = self.replies.try_recv() {
            panic!("{what}: unexpected {out:?}");
        }
    }
}

/// The stream this file has always used: for the (even) lengths used here the seed is already
/// odd, so `random_bytes`'s `| 1` leaves it unchanged.
fn data_of(n: usize) -> Vec<u8> {
    random_bytes(n, 0x9E37_79B9_7F4A_7C15 ^ n as u64)
}

/// Reads a data socket to EOF on a plain thread (not the runtime's blocking pool, so the test
/// can keep polling the session meanwhile); the result comes back through a channel.
fn read_in_thread(sock: TcpStream) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read_to_eof(sock));
    });
    rx
}

#[actix::test]
async fn passive_listener_expires_after_the_data_timeout_and_retr_gets_425() {
    let mut h = Harness::logged_in(config(300, 60, 30)).await;
    write(&h.root, "f.bin", b"data");
    tokio::time::pause();
    let r = h.cmd_spin(Command::Epsv(EpsvArg::Any), 229).await;
    let port = epsv_port(&r);
    tokio::time::advance(Duration::from_secs(31)).await;
    // A command after the advance runs once the expiry timer has had its turn.
    h.cmd_spin(Command::Noop, 200).await;
    assert!(
        TcpStream::connect(local(port)).is_err(),
        "the expired passive port {port} still accepts connections"
    );
    // 425 at once, not a hang.
    h.cmd_spin(Command::Retr("f.bin".into()), 425).await;
    h.cmd_spin(Command::List(None), 425).await;
    // A fresh EPSV works.
    let r = h.cmd_spin(Command::Epsv(EpsvArg::Any), 229).await;
    let sock = TcpStream::connect(local(epsv_port(&r))).expect("connect to the new port");
    let got = read_in_thread(sock);
    h.cmd_spin(Command::Retr("f.bin".into()), 150).await;
    h.expect_spin(226).await;
    assert_eq!(got.recv_timeout(REPLY_DEADLINE).expect("data"), b"data");
}

#[actix::test]
async fn passive_listener_is_kept_until_the_data_timeout() {
    let mut h = Harness::logged_in(config(300, 60, 30)).await;
    let data = data_of(100_000);
    write(&h.root, "f.bin", &data);
    tokio::time::pause();
    let r = h.cmd_spin(Command::Epsv(EpsvArg::Any), 229).await;
    tokio::time::advance(Duration::from_secs(29)).await;
    h.cmd_spin(Command::Noop, 200).await;
    h.retr_through(&r, "f.bin", &data, "port still open after 29 s")
        .await;
}

#[actix::test]
async fn a_new_epsv_restarts_the_expiry_and_the_old_timer_leaves_it_alone() {
    let mut h = Harness::logged_in(config(300, 60, 30)).await;
    let data = data_of(50_000);
    write(&h.root, "f.bin", &data);
    tokio::time::pause();
    // Many EPSVs, each replacing the last: only the newest port's timer may run.
    for _ in 0..20 {
        h.cmd_spin(Command::Epsv(EpsvArg::Any), 229).await;
    }
    tokio::time::advance(Duration::from_secs(20)).await;
    let r = h.cmd_spin(Command::Epsv(EpsvArg::Any), 229).await;
    // 35 s after the first EPSVs, 15 s after the newest: their timers are due, its is not.
    tokio::time::advance(Duration::from_secs(15)).await;
    h.cmd_spin(Command::Noop, 200).await;
    h.retr_through(&r, "f.bin", &data, "newest port still open")
        .await;
    // And the newest one still expires on time when unused.
    let r = h.cmd_spin(Command::Epsv(EpsvArg::Any), 229).await;
    tokio::time::advance(Duration::from_secs(31)).await;
    h.cmd_spin(Command::Noop, 200).await;
    assert!(
        TcpStream::connect(local(epsv_port(&r))).is_err(),
        "an unused passive port outlived its timeout"
    );
}

#[actix::test]
async fn retr_whose_data_connection_never_comes_gets_425_after_the_data_timeout() {
    let mut h = Harness::logged_in(config(300, 60, 30)).await;
    write(&h.root, "f.bin", b"data");
    tokio::time::pause();
    h.cmd_spin(Command::Epsv(EpsvArg::Any), 229).await; // nobody connects
    h.retr_gets_425_after_the_data_timeout().await;
    h.cmd_spin(Command::Abor, 225).await;
}

#[actix::test]
async fn active_target_that_never_accepts_gets_425_after_the_data_timeout() {
    let mut h = Harness::logged_in(config(300, 60, 30)).await;
    write(&h.root, "f.bin", b"data");
    // A listener whose accept queue is full: further SYNs are dropped, so a connect to it
    // neither succeeds nor fails until the connecting side gives up.
    let listener =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    listener.bind(&local(0).into()).expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("addr")
        .as_socket()
        .expect("inet address");
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        s.set_nonblocking(true).expect("nonblocking");
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    tokio::time::pause();
    h.cmd_spin(Command::Port(addr), 200).await;
    h.retr_gets_425_after_the_data_timeout().await;
    drop(fillers);
}

#[actix::test]
async fn idle_timeout_closes_a_logged_in_session_with_421_under_paused_time() {
    let mut h = Harness::logged_in(config(300, 60, 30)).await;
    h.closed_with_421_after_paused(301).await;
}

#[actix::test]
async fn login_timeout_closes_an_unauthenticated_session_with_421_under_paused_time() {
    let mut h = Harness::start(config(300, 60, 30)).await;
    h.closed_with_421_after_paused(61).await;
}

#[actix::test]
async fn idle_timeout_closes_a_logged_in_idle_session_with_421_then_close() {
    let mut h = Harness::logged_in(config(1, 60, 30)).await;
    let last_command = Instant::now();
    h.cmd(Command::Noop, 200).await;
    let r = h.expect(421).await;
    let waited = last_command.elapsed();
    assert!(r.text().contains("Idle timeout"), "{r}");
    assert!(
        waited >= Duration::from_millis(950),
        "421 came {waited:?} after the last command, before the 1 s idle timeout"
    );
    assert_eq!(h.next().await, SinkItem::Close);
    // Nothing after Close; the session has stopped.
    match tokio::time::timeout(REPLY_DEADLINE, h.replies.recv()).await {
        Ok(None) => {}
        other => panic!("expected the session to stop after Close, got {other:?}"),
    }
}

#[actix::test]
async fn login_timeout_closes_a_session_that_never_logs_in_with_421_then_close() {
    let connected = Instant::now();
    let mut h = Harness::start(config(300, 1, 30)).await;
    // USER without PASS does not count as logged in.
    h.cmd(Command::User("alice".into()), 331).await;
    let r = h.expect(421).await;
    assert!(r.text().contains("Login timeout"), "{r}");
    assert!(
        connected.elapsed() >= Duration::from_millis(950),
        "421 before the 1 s login timeout: {:?}",
        connected.elapsed()
    );
    assert_eq!(h.next().await, SinkItem::Close);
}

#[actix::test]
async fn idle_timeout_does_not_fire_while_a_transfer_runs() {
    let mut h = Harness::logged_in(config(1, 60, 30)).await;
    // Far larger than the socket buffers: the transfer cannot finish while nobody reads.
    let data = data_of(64 * 1024 * 1024);
    write(&h.root, "big.bin", &data);
    let sock = h.passive().await;
    h.cmd(Command::Retr("big.bin".into()), 150).await;
    // Two and a half idle periods with the transfer stalled on the client: no 421.
    match tokio::time::timeout(Duration::from_millis(2500), h.replies.recv()).await {
        Err(_) => {}
        Ok(out) => panic!("reply during the transfer: {out:?}"),
    }
    let got = read_in_thread(sock);
    let done = h.expect(226).await;
    // Idle from here on: now the timeout applies.
    let idle_from = Instant::now();
    assert!(done.text().contains(&data.len().to_string()), "{done}");
    assert_eq!(
        sha256(&got.recv_timeout(REPLY_DEADLINE).expect("data")),
        sha256(&data)
    );
    h.expect(421).await;
    assert!(
        idle_from.elapsed() >= Duration::from_millis(500),
        "{:?}",
        idle_from.elapsed()
    );
    assert_eq!(h.next().await, SinkItem::Close);
}
