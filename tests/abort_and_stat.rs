//! The control connection during a transfer: NOOP and STAT answer while a large RETR runs (the
//! client reads slowly or not at all), STAT's byte count grows, ABOR (plain, as Telnet IP +
//! Synch urgent data, and through Python's `ftplib.FTP.abort()`) ends it with 426 then 226, a
//! client closing the data socket gets 426, and QUIT lets a transfer finish before 221.
//! Every byte that arrives is checked against the file (sha256 of the received prefix).

mod common;
mod rawftp;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use rawftp::*;

const USER: &str = "alice";
const PASS: &str = "alice-pass";
/// Far more than loopback socket buffers hold, so a RETR nobody reads keeps running.
const BIG: usize = 64 * MIB;
/// How long a condition that depends on the server's progress reports may take to show.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(20);
/// Telnet (RFC 854): Interpret As Command, Interrupt Process, Data Mark.
const IAC: u8 = 255;
const IP: u8 = 244;
const DM: u8 = 242;

/// 64 MiB quickly: one random MiB repeated, each copy stamped with its index so offsets differ.
fn big_data() -> Vec<u8> {
    let block = random_bytes_seeded(41, MIB);
    let mut out = Vec::with_capacity(BIG);
    for i in 0..(BIG / MIB) as u64 {
        let start = out.len();
        out.extend_from_slice(&block);
        out[start..start + 8].copy_from_slice(&i.to_le_bytes());
    }
    out
}

fn start_with_big() -> (Daemon, Ctrl, Vec<u8>) {
    let d = Daemon::start(&[(USER, PASS)]);
    let data = big_data();
    write_file(&d.root(USER).join("big.bin"), &data);
    let c = Ctrl::login(d.addr(), USER, PASS);
    (d, c, data)
}

/// What STAT says about the running transfer.
struct StatProgress {
    done: u64,
    total: u64,
    secs: f64,
}

/// Parses STAT's `Transfer in progress: RETR /big.bin N of M bytes, S s, rate`.
#[track_caller]
fn stat_progress(c: &mut Ctrl, path: &str) -> StatProgress {
    let r = c.expect("STAT", 211);
    let prefix = format!("Transfer in progress: RETR {path} (download) ");
    let line = r
        .middle()
        .iter()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| c.fail(&format!("no `{prefix}N of M bytes` line in STAT: {r}")));
    // `N of M bytes (P%), S s, rate`
    let words: Vec<&str> = line.split_whitespace().collect();
    let pct_ok = words
        .get(4)
        .and_then(|w| {
            w.strip_prefix('(')?
                .strip_suffix("%),")?
                .parse::<u32>()
                .ok()
        })
        .is_some_and(|p| p <= 100);
    match (
        words.first().and_then(|w| w.parse().ok()),
        words.get(1),
        words.get(2).and_then(|w| w.parse().ok()),
        words.get(3),
        words.get(5).and_then(|w| w.parse().ok()),
        words.get(6),
    ) {
        (Some(done), Some(&"of"), Some(total), Some(&"bytes"), Some(secs), Some(&"s,"))
            if pct_ok =>
        {
            StatProgress { done, total, secs }
        }
        _ => c.fail(&format!(
            "STAT transfer line not `N of M bytes (P%), S s, rate`: {line:?}"
        )),
    }
}

/// Reads exactly `n` bytes from the data connection and appends them to `got`.
fn read_some(data: &mut TcpStream, n: usize, got: &mut Vec<u8>) {
    let start = got.len();
    got.resize(start + n, 0);
    data.read_exact(&mut got[start..])
        .unwrap_or_else(|e| panic!("read {n} bytes of the download: {e}"));
}

/// Reads what is left until EOF or an error (the server shut the connection down).
fn drain(data: &mut TcpStream, got: &mut Vec<u8>) {
    let mut buf = vec![0u8; 256 * KIB];
    loop {
        match data.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Starts `RETR big.bin` over EPSV and reads its first `n` bytes.
fn retr_big_first(c: &mut Ctrl, n: usize) -> (TcpStream, Vec<u8>) {
    let mut conn = c.epsv();
    c.expect("RETR big.bin", 150);
    let mut got = Vec::new();
    read_some(&mut conn, n, &mut got);
    (conn, got)
}

/// Reads what the server still sends after an abort: less than the whole file, and its start.
#[track_caller]
fn assert_cut_short(mut conn: TcpStream, mut got: Vec<u8>, data: &[u8]) {
    drain(&mut conn, &mut got);
    assert!(got.len() < BIG, "the abort ended the transfer early");
    assert_prefix(&got, data);
}

#[track_caller]
fn assert_prefix(got: &[u8], data: &[u8]) {
    assert!(got.len() <= data.len(), "more bytes than the file has");
    assert_eq!(
        sha256_hex(got),
        sha256_hex(&data[..got.len()]),
        "the {} bytes received are the start of the file",
        got.len()
    );
}

/// Starts `STOR name` over EPSV and sends the first 2 MiB (random, from `seed`) of the upload.
fn stor_part_sent(c: &mut Ctrl, name: &str, seed: u64) -> TcpStream {
    let mut conn = c.epsv();
    c.expect(&format!("STOR {name}"), 150);
    conn.write_all(&random_bytes_seeded(seed, 2 * MIB))
        .expect("part of the upload");
    conn
}

#[track_caller]
fn assert_no_temporary_file(root: &Path) {
    let leftovers: Vec<String> = dir_names(root)
        .into_iter()
        .filter(|n| n.contains(".part"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// The session still works: NOOP, ABOR with nothing running, and a transfer sha-checked.
fn assert_session_usable(c: &mut Ctrl, root: &Path) {
    c.expect("NOOP", 200);
    c.expect("ABOR", 225);
    let small = random_bytes_seeded(42, 123_457);
    write_file(&root.join("small.bin"), &small);
    assert_eq!(
        sha256_hex(&c.download("RETR small.bin")),
        sha256_hex(&small)
    );
}

#[test]
fn noop_and_stat_answer_during_a_large_retr_and_the_byte_count_grows() {
    let (d, mut c, data) = start_with_big();
    let mut conn = c.epsv();
    c.expect("RETR big.bin", 150);
    // Nobody reads yet: the server is blocked on a full socket, the control channel is not.
    c.expect("NOOP", 200);
    c.expect("PWD", 257);
    let first = stat_progress(&mut c, "/big.bin");
    assert_eq!(first.total, BIG as u64, "STAT names the size");
    assert!(first.done < first.total);
    // Another data command while one runs is refused.
    c.expect("RETR big.bin", 503);

    // Progress reports are rate-limited (every 250 ms at most, when a write completes). Let the
    // transfer run that long by STAT's own clock, then let data flow and watch the count grow.
    let deadline = Instant::now() + PROGRESS_DEADLINE;
    while stat_progress(&mut c, "/big.bin").secs < 0.4 {
        if Instant::now() > deadline {
            c.fail("STAT's elapsed time never reached 0.4 s");
        }
    }
    let mut got = Vec::new();
    read_some(&mut conn, 2 * MIB, &mut got);
    let mut last = stat_progress(&mut c, "/big.bin");
    while last.done <= first.done {
        if Instant::now() > deadline {
            c.fail(&format!(
                "STAT byte count stayed at {} after reading {} bytes",
                first.done,
                got.len()
            ));
        }
        if got.len() < BIG / 2 {
            read_some(&mut conn, 64 * KIB, &mut got);
        }
        c.expect("NOOP", 200);
        last = stat_progress(&mut c, "/big.bin");
    }
    assert!(
        last.done > first.done && last.done <= last.total,
        "{} -> {} of {}",
        first.done,
        last.done,
        last.total
    );
    assert!(last.secs >= first.secs, "elapsed time goes forward");
    let again = stat_progress(&mut c, "/big.bin");
    assert!(
        again.done >= last.done,
        "the count never goes down: {} then {}",
        last.done,
        again.done
    );

    c.send("ABOR");
    c.expect_reply(426);
    c.expect_reply(226);
    assert_cut_short(conn, got, &data);
    let r = c.expect("STAT", 211);
    assert!(
        r.middle()
            .iter()
            .any(|l| l == "No data transfer in progress"),
        "{r}"
    );
    assert_session_usable(&mut c, &d.root(USER));
}

#[test]
fn plain_abor_during_a_retr_nobody_reads_is_426_then_226() {
    let (d, mut c, data) = start_with_big();
    let (conn, got) = retr_big_first(&mut c, MIB);
    c.send("ABOR");
    let transfer = c.expect_reply(426);
    let abor = c.expect_reply(226);
    assert_ne!(transfer.lines, abor.lines);
    assert_cut_short(conn, got, &data);
    assert_session_usable(&mut c, &d.root(USER));
}

#[test]
fn abor_while_the_server_waits_for_the_data_connection_is_426_then_226() {
    let (d, mut c, _data) = start_with_big();
    let _port = c.epsv_port(); // nobody connects
    c.expect("RETR big.bin", 150);
    c.send("ABOR");
    c.expect_reply(426);
    c.expect_reply(226);
    assert_session_usable(&mut c, &d.root(USER));
}

#[test]
fn urgent_abor_with_telnet_ip_and_synch_aborts_a_large_retr() {
    let (d, mut c, data) = start_with_big();
    let (conn, got) = retr_big_first(&mut c, MIB);
    // RFC 959 §4.1.3: Telnet IP, then Synch (IAC DM with DM as TCP urgent data), then ABOR.
    c.send_raw(&[IAC, IP]);
    let sent = socket2::SockRef::from(c.socket())
        .send_out_of_band(&[IAC, DM])
        .expect("send IAC DM as urgent data");
    assert_eq!(sent, 2);
    c.send("ABOR");
    c.expect_reply(426);
    c.expect_reply(226);
    assert_cut_short(conn, got, &data);
    assert_session_usable(&mut c, &d.root(USER));
}

/// A line, then an urgent ABOR, sent in one burst with no transfer running: the read that
/// stops at the urgent mark must not be taken for an empty socket (the ABOR would never be
/// answered). Both urgent styles: Telnet Synch (lftp) and the whole ABOR line (ftplib).
#[test]
fn a_line_pipelined_before_an_urgent_abor_gets_both_replies() {
    let d = Daemon::start(&[(USER, PASS)]);
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    for round in 0..20 {
        let urgent = |c: &Ctrl, bytes: &[u8]| {
            socket2::SockRef::from(c.socket())
                .send_out_of_band(bytes)
                .expect("send urgent data")
        };
        if round % 2 == 0 {
            c.send_raw(b"NOOP\r\n");
            c.send_raw(&[IAC, IP]);
            assert_eq!(urgent(&c, &[IAC, DM]), 2);
            c.send("ABOR");
        } else {
            c.send_raw(b"NOOP\r\n");
            assert_eq!(urgent(&c, b"ABOR\r\n"), 6);
        }
        c.expect_reply(200);
        c.expect_reply(225);
    }
    c.expect("NOOP", 200);
}

#[test]
fn python_ftplib_abort_sends_urgent_abor_during_a_large_retr_and_the_session_stays_usable() {
    let Some(d) = daemon_if_tool("python3", USER, PASS) else {
        return;
    };
    write_file(&d.root(USER).join("big.bin"), &big_data());
    let small = random_bytes_seeded(43, 300 * KIB + 1);
    write_file(&d.root(USER).join("small.bin"), &small);
    let down = d.tmp().join("small-down.bin");
    let r = ftplib_script(
        "ftplib_extras.py",
        "abort",
        &d,
        (USER, PASS),
        &[
            "big.bin",
            &MIB.to_string(),
            "small.bin",
            down.to_str().expect("utf-8 path"),
        ],
    );
    assert_eq!(r.one("read_before_abort"), MIB.to_string());
    r.assert_code("abort_reply", 426);
    r.assert_code("abort_second", 226);
    r.assert_code("noop", 200);
    r.assert_code("retr_after", 226);
    r.assert_code("quit", 221);
    assert_file_holds(&down, &small, "the download after abort() is byte-exact");
}

#[test]
fn client_closing_the_data_socket_mid_retr_gets_426_and_the_session_continues() {
    let (d, mut c, data) = start_with_big();
    let (conn, got) = retr_big_first(&mut c, 2 * MIB);
    assert_prefix(&got, &data);
    drop(conn);
    c.expect_reply(426);
    assert_session_usable(&mut c, &d.root(USER));
    // The file is untouched by the failed download.
    assert_eq!(
        file_sha256(&d.root(USER).join("big.bin")),
        sha256_hex(&data)
    );
}

#[test]
fn quit_during_a_retr_lets_it_finish_then_221() {
    let d = Daemon::start(&[(USER, PASS)]);
    let data = random_bytes_seeded(44, 24 * MIB + 3);
    write_file(&d.root(USER).join("f.bin"), &data);
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    let mut conn = c.epsv();
    c.expect("RETR f.bin", 150);
    let mut got = Vec::new();
    read_some(&mut conn, MIB, &mut got);
    // Still running (not all of it fits in the socket buffers), then QUIT.
    let p = stat_progress(&mut c, "/f.bin");
    assert!(p.done < p.total, "{} of {}", p.done, p.total);
    c.send("QUIT");
    drain(&mut conn, &mut got);
    assert_eq!(got.len(), data.len(), "the whole file arrived after QUIT");
    assert_eq!(sha256_hex(&got), sha256_hex(&data));
    c.expect_reply(226);
    c.expect_reply(221);
    let mut rest = Vec::new();
    let n = c
        .socket()
        .try_clone()
        .expect("clone")
        .read_to_end(&mut rest)
        .expect("read to EOF after 221");
    assert_eq!(
        n,
        0,
        "nothing after 221, then EOF: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[test]
fn quit_during_a_stor_lets_it_finish_then_221() {
    let d = Daemon::start(&[(USER, PASS)]);
    let data = random_bytes_seeded(45, 8 * MIB + 9);
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    let mut conn = c.epsv();
    c.expect("STOR up.bin", 150);
    conn.write_all(&data[..MIB]).expect("first part");
    c.send("QUIT");
    write_all_close(conn, &data[MIB..]);
    c.expect_reply(226);
    c.expect_reply(221);
    assert_eq!(
        file_sha256(&d.root(USER).join("up.bin")),
        sha256_hex(&data),
        "the upload completed after QUIT"
    );
}

#[test]
fn abor_during_a_stor_keeps_the_old_file_and_leaves_no_temporary_file() {
    let d = Daemon::start(&[(USER, PASS)]);
    let root = d.root(USER);
    let old = random_bytes_seeded(46, 50_000);
    write_file(&root.join("keep.bin"), &old);
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    let conn = stor_part_sent(&mut c, "keep.bin", 47);
    // STAT names the upload while it runs.
    let r = c.expect("STAT", 211);
    assert!(
        r.middle()
            .iter()
            .any(|l| l.starts_with("Transfer in progress: STOR /keep.bin ")),
        "{r}"
    );
    c.send("ABOR");
    c.expect_reply(426);
    c.expect_reply(226);
    drop(conn);
    assert_file_holds(&root.join("keep.bin"), &old, "");
    assert_no_temporary_file(&root);
    assert_session_usable(&mut c, &root);
}

#[test]
fn stor_whose_data_connection_is_reset_gets_426_and_never_truncates_the_old_file() {
    let d = Daemon::start(&[(USER, PASS)]);
    let root = d.root(USER);
    let old = random_bytes_seeded(48, 3 * MIB);
    write_file(&root.join("precious.bin"), &old);
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    let conn = stor_part_sent(&mut c, "precious.bin", 49);
    // An abortive close (RST), not a FIN: the upload failed, it did not end.
    socket2::SockRef::from(&conn)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(conn);
    c.expect_reply(426);
    assert_file_holds(
        &root.join("precious.bin"),
        &old,
        "a failed STOR left the old file intact",
    );
    assert_no_temporary_file(&root);
    assert_session_usable(&mut c, &root);
}
