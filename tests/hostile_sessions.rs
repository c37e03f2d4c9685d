//! Hostile clients that come and go badly, against the real daemon: 2,000 abruptly dropped
//! connections, clients vanishing in the middle of an upload, a passive port nobody connects
//! to. Each scenario ends with the fixture's checks (tests/hostile/mod.rs): a normal client is
//! still served byte-exact and nothing outside the root changed. No test sleeps.

mod common;
mod hostile;
mod rawftp;

use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hostile::*;
use rawftp::*;

// ---------------------------------------------------------------------------------------------
// 1. Connection churn.
// ---------------------------------------------------------------------------------------------

const CHURN_CONNECTIONS: usize = 2000;
const CHURN_IN_FLIGHT: usize = 64;

/// One abrupt client; `i` picks how it leaves.
fn abrupt_client(addr: SocketAddr, i: usize) -> io::Result<()> {
    let mut s = TcpStream::connect_timeout(&addr, IO_DEADLINE)?;
    s.set_read_timeout(Some(IO_DEADLINE))?;
    s.set_write_timeout(Some(IO_DEADLINE))?;
    let mut greeting = [0u8; 64];
    match i % 7 {
        // Gone right after connect: FIN, or RST.
        0 => drop(s),
        1 => reset(s),
        // After the 220.
        2 | 3 => {
            let _ = s.read(&mut greeting)?;
            if i % 7 == 2 {
                drop(s)
            } else {
                reset(s)
            }
        }
        // Mid-line (the server sees a last line without its ending), FIN.
        4 => {
            let _ = s.read(&mut greeting)?;
            s.write_all(b"USER ali")?;
            drop(s);
        }
        // Pipelined commands and half a line, then RST with the replies unread.
        5 => {
            let _ = s.read(&mut greeting)?;
            s.write_all(b"NOOP\r\nSYST\r\nFEAT\r\nUSER alice\r\nPASS alice-p")?;
            reset(s);
        }
        // Logged in with a passive port open, then RST.
        _ => {
            s.write_all(b"USER alice\r\nPASS alice-pass\r\nPASV\r\n")?;
            let mut seen = Vec::new();
            while !contains(&seen, "\r\n227 ") {
                let n = s.read(&mut greeting)?;
                if n == 0 {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "closed before 227",
                    ));
                }
                seen.extend_from_slice(&greeting[..n]);
            }
            reset(s);
        }
    }
    Ok(())
}

fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(usize::MAX)
}

#[test]
fn two_thousand_abruptly_dropped_connections_leave_the_daemon_serving_without_leaks() {
    // 64 clients in flight from one address: above the default per-IP cap (50), which has its
    // own test in tests/hardening.rs.
    let fx = Fixture::start(&["--max-sessions-per-ip", "1000"]);
    fx.assert_serves_normal_client("before the churn");
    let pid = fx.daemon_pid();
    let baseline = open_fds(pid);
    let addr = fx.addr();

    let next = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel();
    for _ in 0..CHURN_IN_FLIGHT {
        let next = Arc::clone(&next);
        let done_tx = done_tx.clone();
        thread::spawn(move || {
            let mut failures = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= CHURN_CONNECTIONS {
                    break;
                }
                match std::panic::catch_unwind(|| abrupt_client(addr, i)) {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => failures.push(format!("client {i}: {e}")),
                    Err(_) => failures.push(format!("client {i}: panicked")),
                }
            }
            let _ = done_tx.send(failures);
        });
    }
    drop(done_tx);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut failures = Vec::new();
    for _ in 0..CHURN_IN_FLIGHT {
        let left = deadline.saturating_duration_since(Instant::now());
        let f = done_rx
            .recv_timeout(left)
            .expect("2,000 abrupt connections did not finish within 40 s");
        failures.extend(f);
    }
    // Connects and greetings must all work: an abrupt client is never allowed to hurt the next.
    assert!(
        failures.is_empty(),
        "{} of {CHURN_CONNECTIONS} churn clients failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );

    // Every session has let go of its sockets and passive listeners.
    wait_until(
        Duration::from_secs(15),
        "the daemon's open descriptors are back near the baseline",
        || open_fds(pid) <= baseline + 4,
    );
    fx.finish("after 2,000 abrupt connections");
}

// ---------------------------------------------------------------------------------------------
// 4. A client vanishing in the middle of an upload.
// ---------------------------------------------------------------------------------------------

fn temp_uploads(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .expect("read root")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".actorftpd-upload-") && n.ends_with(".part"))
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Vanish {
    /// Control RST, then data RST.
    ResetBoth,
    /// Control FIN; the client keeps pushing data until the server cuts the data connection.
    ControlGoneDataFlowing,
    /// Data RST; control FIN after the server's 426.
    DataResetFirst,
    /// Control RST after the 150, before any data connection.
    BeforeDataConnection,
}

#[test]
fn client_vanishing_mid_upload_leaves_no_partial_file_and_no_temp_file() {
    let fx = Fixture::start(&[]);
    let old = random_bytes_seeded(41, 200 * KIB + 3);
    write_file(&fx.root().join("victim.bin"), &old);
    let variants = [
        Vanish::ResetBoth,
        Vanish::ControlGoneDataFlowing,
        Vanish::DataResetFirst,
        Vanish::BeforeDataConnection,
    ];
    let chunk = random_bytes_seeded(42, 256 * KIB);
    for (i, variant) in variants.into_iter().enumerate() {
        for name in ["victim.bin".to_owned(), format!("fresh-{i}.bin")] {
            let what = format!("{variant:?} during STOR {name}");
            let mut c = fx.login(ALICE);
            let data_addr = c.pasv_addr();
            let r = c.cmd(&format!("STOR {name}"));
            assert_eq!(r.code, 150, "{what}: {r:?}");
            // The upload is under way, under a temporary name.
            assert_eq!(temp_uploads(fx.root()).len(), 1, "{what}: no temp file");
            if let Vanish::BeforeDataConnection = variant {
                c.reset();
            } else {
                let mut data =
                    TcpStream::connect_timeout(&data_addr, IO_DEADLINE).expect("data connect");
                data.set_write_timeout(Some(IO_DEADLINE)).expect("timeout");
                // 4 MiB: more than the server's 1 MiB copy buffer, so bytes reach the temp file.
                for _ in 0..16 {
                    data.write_all(&chunk).expect("upload chunk");
                }
                match variant {
                    Vanish::ResetBoth => {
                        c.reset();
                        reset(data);
                    }
                    Vanish::ControlGoneDataFlowing => {
                        c.socket().shutdown(Shutdown::Both).expect("close control");
                        drop(c);
                        // Only the server can end this: it must abort the transfer itself.
                        let deadline = Instant::now() + IO_DEADLINE;
                        let cut = loop {
                            if let Err(e) = data.write_all(&chunk) {
                                break e;
                            }
                            assert!(
                                Instant::now() < deadline,
                                "{what}: the server kept receiving after the client left"
                            );
                        };
                        assert!(is_reset(&cut), "{what}: data write failed with {cut}");
                        reset(data);
                    }
                    Vanish::DataResetFirst => {
                        reset(data);
                        let r = c.reply();
                        assert_eq!(r.code, 426, "{what}: after the data reset: {r:?}");
                        drop(c);
                    }
                    Vanish::BeforeDataConnection => unreachable!(),
                }
            }
            wait_until(
                IO_DEADLINE,
                &format!("{what}: the server removed its temp file"),
                || temp_uploads(fx.root()).is_empty(),
            );
            assert_eq!(
                fs::read(fx.root().join("victim.bin")).expect("victim.bin is still there"),
                old,
                "{what}: the older victim.bin was touched"
            );
            assert!(
                !fx.root().join(format!("fresh-{i}.bin")).exists(),
                "{what}: a partial upload appeared under its final name"
            );
        }
    }
    fx.finish("after clients vanished mid-upload");
}

// ---------------------------------------------------------------------------------------------
// 5. A passive port nobody connects to.
// ---------------------------------------------------------------------------------------------

/// Whether a connection to `addr` is refused (nothing listens there any more).
fn refused(addr: SocketAddr) -> bool {
    matches!(
        TcpStream::connect_timeout(&addr, IO_DEADLINE),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused
    )
}

#[test]
fn passive_port_never_connected_expires_and_the_session_carries_on() {
    let fx = Fixture::start(&["--data-timeout", "1"]);
    let mut c = fx.login(ALICE);
    let p1 = c.pasv_addr();
    c.expect("NOOP", 200);
    c.expect("PWD", 257);
    // A second PASV replaces the first, whose port is closed at once.
    let p2 = c.pasv_addr();
    if p2 != p1 {
        assert!(refused(p1), "the replaced passive port {p1} still accepts");
    }
    // A transfer on a port nobody connects to: 150, then 425 after the data timeout.
    let r = c.cmd("LIST");
    assert_eq!(r.code, 150, "LIST: {r:?}");
    let r = c.reply();
    assert_eq!(r.code, 425, "LIST without a data connection: {r:?}");
    c.expect("NOOP", 200);

    // An unused passive port expires after the data timeout. The clock is the server's own
    // answer: a second session's LIST on an unconnected port gets its 425 one data timeout
    // after it started, which is after `p3` was opened.
    let p3 = c.pasv_addr();
    let mut timer = fx.login(BOB);
    let _ = timer.pasv_addr();
    assert_eq!(timer.cmd("LIST").code, 150);
    assert_eq!(timer.reply().code, 425, "the timer session's LIST");
    assert!(refused(p3), "the unused passive port {p3} was not closed");
    let r = c.cmd("LIST");
    assert_eq!(r.code, 425, "LIST after the passive port expired: {r:?}");
    assert!(r.text().contains("PASV"), "425 names the cause: {r:?}");

    // The same session then transfers normally.
    let data = random_bytes(123_457);
    assert_eq!(c.transfer("STOR after-pasv.bin", Some(&data)).code(), 226);
    let back = c.transfer("RETR after-pasv.bin", None);
    assert_eq!(back.code(), 226);
    assert_eq!(sha256_hex(&back.data), sha256_hex(&data));
    c.expect("QUIT", 221);
    timer.expect("QUIT", 221);
    fx.finish("after an unused passive port");
}
