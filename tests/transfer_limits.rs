//! What a transfer may hold, against the real daemon: a trickle that keeps just ahead of the
//! stall timeout is ended by the minimum rate (`--min-rate`, `--min-rate-window`), and the
//! transfers copying on threads are bounded (`--max-transfer-threads`), with the ones waiting
//! for a thread refused within the data timeout instead of hanging.
//!
//! Each test sets a stall timeout far above the moment its reply is due, so the reply can only
//! come from the rule under test; timing is checked against deadlines, never slept for. A
//! trickling client paces itself by waiting on its stop signal, so it ends as soon as the test
//! has its answer.

mod common;
mod rawftp;

use common::{dir_names, sha256_hex, Daemon, MIB};
use rawftp::{read_all, Ctrl};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The stall timeout in these tests: far above every reply they wait for.
const STALL: &str = "60";
/// A reply must come well before the stall timeout could have sent it.
const DEADLINE: Duration = Duration::from_secs(20);
/// How long a trickling client waits between its tiny reads or writes.
const TRICKLE_PAUSE: Duration = Duration::from_millis(250);

fn daemon(extra: &[&str]) -> Daemon {
    Daemon::start_with_args(&[("alice", "pw", "srv")], extra)
}

/// A client that moves a few bytes on its data connection, pauses, and again, until stopped
/// or the server closes the connection. Returns the bytes it moved.
struct Trickle {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<usize>,
}

impl Trickle {
    /// Reads at most `chunk` bytes per pause.
    fn reading(mut data: TcpStream, chunk: usize) -> Trickle {
        Trickle::start(move || {
            let mut buf = vec![0u8; chunk];
            match data.read(&mut buf) {
                Ok(n) if n > 0 => Some(n),
                _ => None,
            }
        })
    }

    /// Writes one byte per pause.
    fn writing(mut data: TcpStream) -> Trickle {
        Trickle::start(move || data.write(b"x").ok().filter(|&n| n > 0))
    }

    fn start(mut step: impl FnMut() -> Option<usize> + Send + 'static) -> Trickle {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            let mut moved = 0;
            loop {
                match step() {
                    Some(n) => moved += n,
                    None => return moved,
                }
                // The pause, ended early by the test's stop signal.
                match stopped.recv_timeout(TRICKLE_PAUSE) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return moved,
                }
            }
        });
        Trickle { stop, thread }
    }

    fn stop(self) -> usize {
        let _ = self.stop.send(());
        self.thread.join().expect("trickle thread")
    }
}

/// EPSV, then a data connection with the smallest receive buffer the kernel allows, so the
/// server's writes wait on the client's reads.
fn narrow_data_connection(c: &mut Ctrl) -> TcpStream {
    let target = SocketAddr::new(c.server_addr().ip(), c.epsv_port());
    let s =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    s.set_recv_buffer_size(1024).expect("SO_RCVBUF");
    s.connect(&target.into()).expect("data connect");
    let sock: TcpStream = s.into();
    rawftp::set_timeouts(&sock);
    sock
}

#[test]
fn a_download_that_trickles_is_ended_with_426_after_a_window_below_the_minimum_rate() {
    let d = daemon(&[
        "--min-rate",
        "4096",
        "--min-rate-window",
        "2",
        "--stall-timeout",
        STALL,
    ]);
    std::fs::write(d.root("alice").join("big.bin"), vec![7u8; 32 * MIB]).expect("fixture");
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    let data = narrow_data_connection(&mut c);
    c.expect("RETR big.bin", 150);
    let started = Instant::now();
    // A few bytes every pause: always some progress, so the stall timeout never fires.
    let trickle = Trickle::reading(data, 64);
    let r = c.expect_reply(426);
    let took = started.elapsed();
    let moved = trickle.stop();
    assert!(
        moved > 0,
        "the client never got a byte: it was a stall, not a trickle"
    );
    assert!(
        took < DEADLINE,
        "426 came after {took:?}: the stall timeout ({STALL} s), not the minimum rate"
    );
    assert!(r.text().contains("transfer aborted"), "{r}");
    // The session goes on; a normal download still works.
    std::fs::write(d.root("alice").join("small.bin"), vec![1u8; 300_000]).expect("fixture");
    assert_eq!(c.download("RETR small.bin").len(), 300_000);
}

#[test]
fn an_upload_that_trickles_is_ended_with_426_and_leaves_no_file() {
    let d = daemon(&[
        "--min-rate",
        "1024",
        "--min-rate-window",
        "2",
        "--stall-timeout",
        STALL,
    ]);
    let root = d.root("alice");
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    let data = c.epsv();
    c.expect("STOR up.bin", 150);
    let started = Instant::now();
    // One byte every pause: under the old stall-only rule this upload lived forever.
    let trickle = Trickle::writing(data);
    let r = c.expect_reply(426);
    let took = started.elapsed();
    let moved = trickle.stop();
    assert!(moved > 0, "the client never sent a byte");
    assert!(
        took < DEADLINE,
        "426 came after {took:?}: the stall timeout ({STALL} s), not the minimum rate"
    );
    assert!(r.text().contains("transfer aborted"), "{r}");
    // The Session removes a failed upload's temporary file before it sends the 426.
    assert_eq!(dir_names(&root), Vec::<String>::new(), "upload left a file");
    // A normal upload afterwards completes.
    c.upload("STOR ok.bin", &[5u8; 200_000]);
    assert_eq!(dir_names(&root), vec!["ok.bin".to_owned()]);
}

#[test]
fn a_steady_slow_upload_above_the_minimum_rate_completes() {
    // The minimum rate must not cut a slow but honest client: 64 bytes every pause (256 B/s)
    // against a floor of 32 B/s.
    let d = daemon(&[
        "--min-rate",
        "32",
        "--min-rate-window",
        "1",
        "--stall-timeout",
        STALL,
    ]);
    let root = d.root("alice");
    let mut c = Ctrl::login(d.addr(), "alice", "pw");
    let mut data = c.epsv();
    c.expect("STOR slow.bin", 150);
    let (stop, stopped) = mpsc::channel::<()>();
    let mut sent = Vec::new();
    // Four seconds of 64-byte writes: four windows.
    for i in 0..16u8 {
        let chunk = [i; 64];
        data.write_all(&chunk).expect("write chunk");
        sent.extend_from_slice(&chunk);
        let _ = stopped.recv_timeout(TRICKLE_PAUSE);
    }
    drop(stop);
    data.shutdown(std::net::Shutdown::Write).expect("shutdown");
    c.expect_reply(226);
    assert_eq!(
        sha256_hex(&std::fs::read(root.join("slow.bin")).expect("uploaded file")),
        sha256_hex(&sent)
    );
}

#[test]
fn with_one_transfer_thread_a_second_transfer_waits_then_gets_425_and_the_first_finishes() {
    let d = daemon(&[
        "--max-transfer-threads",
        "1",
        "--data-timeout",
        "2",
        "--min-rate",
        "0",
        "--stall-timeout",
        STALL,
    ]);
    let content = common::random_bytes(16 * MIB);
    std::fs::write(d.root("alice").join("big.bin"), &content).expect("fixture");
    // The first transfer takes the only thread and keeps it: its client does not read yet.
    let mut first = Ctrl::login(d.addr(), "alice", "pw");
    let first_data = first.epsv();
    first.expect("RETR big.bin", 150);
    // The second is connected and waits for a thread; within the data timeout it gets 425.
    let mut second = Ctrl::login(d.addr(), "alice", "pw");
    let second_data = second.epsv();
    second.expect("RETR big.bin", 150);
    let started = Instant::now();
    let r = second.expect_reply(425);
    let took = started.elapsed();
    assert!(took < DEADLINE, "425 came after {took:?}");
    assert!(r.text().contains("data connection"), "{r}");
    assert!(
        took >= Duration::from_millis(1500),
        "425 after {took:?}, before the 2 s data timeout: the second transfer never waited"
    );
    drop(second_data);
    second.expect("NOOP", 200);
    // The first was untouched by all this.
    assert_eq!(sha256_hex(&read_all(first_data)), sha256_hex(&content));
    first.expect_reply(226);
    // Its thread is free again: the second client's next try runs.
    assert_eq!(
        sha256_hex(&second.download("RETR big.bin")),
        sha256_hex(&content)
    );
    // Listings and small files need no thread: they run even while one is held.
    let held = first.epsv();
    first.expect("RETR big.bin", 150);
    std::fs::write(d.root("alice").join("small.txt"), b"hello").expect("fixture");
    assert_eq!(second.download("RETR small.txt"), b"hello");
    assert!(second.listing("NLST").contains("big.bin"));
    drop(held);
    let end = first.reply();
    assert!(
        end.code == 426 || end.code == 226,
        "first transfer ended with {end}"
    );
}
