//! Passive ports (issue 20): the default range lies outside the kernel's ephemeral range, ports
//! stay random within it, a configured range that overlaps the ephemeral one is logged at start,
//! and a port of the range another program holds is skipped rather than refused.

mod common;
mod rawftp;

use actorftpd::gatekeeper::ports::{default_range, parse_ephemeral};
use common::{random_bytes, require_tool, run_with_timeout, sha256_hex, Daemon, CLIENT_DEADLINE};
use rawftp::{read_all, Ctrl};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::process::Command;

const USER: &str = "alice";
const PASS: &str = "pw";

/// The kernel's ephemeral range, read here without the daemon's code.
fn ephemeral() -> RangeInclusive<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .expect("read net.ipv4.ip_local_port_range");
    parse_ephemeral(&text).expect("two ports")
}

/// python3 ftplib: log in, `n` RETRs of f.bin through PASV; prints each download's sha256 and
/// the port of every PASV reply.
const RETR_LOOP: &str = r#"
import ftplib, hashlib, sys
host, port, user, pw, n = sys.argv[1:6]
ports = []
class F(ftplib.FTP):
    def makepasv(self):
        h, p = super().makepasv()
        ports.append(p)
        return h, p
f = F()
f.connect(host, int(port), timeout=30)
f.login(user, pw)
for _ in range(int(n)):
    buf = bytearray()
    f.retrbinary("RETR f.bin", buf.extend)
    print("sha256", hashlib.sha256(buf).hexdigest())
print("ports", " ".join(map(str, ports)))
f.quit()
"#;

#[test]
fn the_default_range_avoids_the_ephemeral_range_and_ports_stay_random() {
    if !require_tool("python3") {
        return;
    }
    let d = Daemon::start_with_args(&[(USER, PASS, "srv")], &[]);
    let data = random_bytes(40_000);
    std::fs::write(d.root(USER).join("f.bin"), &data).expect("write");
    let n = 40;
    let out = run_with_timeout(
        Command::new("python3").args([
            "-c",
            RETR_LOOP,
            &d.addr().ip().to_string(),
            &d.port().to_string(),
            USER,
            PASS,
            &n.to_string(),
        ]),
        CLIENT_DEADLINE,
    );
    assert!(out.status.success(), "ftplib: {}", out.stderr_text());
    let text = out.stdout_text();
    let sums: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("sha256 "))
        .collect();
    assert_eq!(sums.len(), n, "{text}");
    assert!(sums.iter().all(|s| *s == sha256_hex(&data)), "{text}");
    let ports: Vec<u16> = text
        .lines()
        .find_map(|l| l.strip_prefix("ports "))
        .expect("ports line")
        .split_whitespace()
        .map(|p| p.parse().expect("port"))
        .collect();
    assert_eq!(ports.len(), n);

    let eph = ephemeral();
    let range = default_range(&eph);
    for p in &ports {
        assert!(
            !eph.contains(p),
            "PASV port {p} is in the ephemeral range {eph:?}"
        );
        assert!(
            range.contains(p),
            "PASV port {p} outside the default {range:?}"
        );
        assert!(*p >= 1024);
    }
    if *eph.start() <= 60999 && *eph.end() >= 32768 && *eph.end() < 64000 {
        assert!(
            *range.start() > *eph.end(),
            "room above the ephemeral range: the default lies there"
        );
    }
    // Random, not a walk: forty picks of thousands of ports (4536 on Linux's default) spread
    // over most of the range, hardly repeat, and do not step by a constant.
    let span = usize::from(range.end() - range.start()) + 1;
    let (lo, hi) = (ports.iter().min(), ports.iter().max());
    let spread = usize::from(hi.expect("max") - lo.expect("min")) + 1;
    assert!(
        spread > span / 4,
        "ports {ports:?} bunch in {spread} of {span}"
    );
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() >= n - 5, "ports repeat: {ports:?}");
    let steps: Vec<i32> = ports
        .windows(2)
        .map(|w| i32::from(w[1]) - i32::from(w[0]))
        .collect();
    assert!(
        steps.iter().any(|s| *s != steps[0]),
        "ports step evenly: {ports:?}"
    );
    // What is on disk is untouched.
    let on_disk = std::fs::read(d.root(USER).join("f.bin")).expect("read back");
    assert_eq!(sha256_hex(&on_disk), sha256_hex(&data));
}

/// Sixteen consecutive ports nobody listens on, below the ephemeral range.
fn free_ports() -> (u16, u16) {
    let seed = std::process::id();
    for i in 0..200u32 {
        let base = 20_000 + (seed.wrapping_add(i.wrapping_mul(7919)) % 9_000) as u16;
        let held: Vec<_> = (base..base + 16)
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == 16 {
            return (base, base + 15);
        }
    }
    panic!("no sixteen consecutive free ports found in 20000-29015");
}

#[test]
fn a_port_of_the_range_another_program_holds_is_skipped_not_refused() {
    let (lo, hi) = free_ports();
    let d = Daemon::start_with_args(
        &[(USER, PASS, "srv")],
        &["--passive-ports", &format!("{lo}-{hi}")],
    );
    let data = random_bytes(9_000);
    std::fs::write(d.root(USER).join("f.bin"), &data).expect("write");
    // Another program listens on one port of the range, on the daemon's address.
    let taken = lo + 7;
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", taken)).expect("squat");
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    // Each EPSV replaces the last; one in sixteen picks the taken port first and must go on to
    // another. Two hundred make that near certain (1 - (15/16)^200).
    for _ in 0..200 {
        let port = c.epsv_port();
        assert!((lo..=hi).contains(&port), "port {port} outside {lo}-{hi}");
        assert_ne!(port, taken, "the daemon offered a port it could not bind");
    }
    let port = c.epsv_port();
    let sock = rawftp::tcp_connect(SocketAddr::new(c.server_addr().ip(), port));
    c.expect("RETR f.bin", 150);
    assert_eq!(sha256_hex(&read_all(sock)), sha256_hex(&data));
    c.expect_reply(226);
}

#[test]
fn a_configured_range_over_the_ephemeral_range_is_logged_once_at_start() {
    let eph = ephemeral();
    let logs = tempfile::TempDir::new().expect("tmp");
    let warning = "overlaps the kernel's ephemeral port range";
    let lines_of = |log: &std::path::Path| -> usize {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(warning))
            .count()
    };
    // Straddling the ephemeral range's start.
    let over = format!(
        "{}-{}",
        eph.start().saturating_sub(8).max(1024),
        eph.start().saturating_add(8)
    );
    let log = logs.path().join("over.log");
    let d = Daemon::start_with_args(
        &[(USER, PASS, "srv")],
        &[
            "--passive-ports",
            &over,
            "--log-file",
            log.to_str().expect("utf-8"),
        ],
    );
    // Logged before the listening line is printed.
    assert_eq!(
        lines_of(&log),
        1,
        "{over}: {:?}",
        std::fs::read_to_string(&log)
    );
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    let port = c.epsv_port();
    let (lo, hi) = over.split_once('-').expect("range");
    let range = lo.parse::<u16>().expect("lo")..=hi.parse::<u16>().expect("hi");
    assert!(range.contains(&port), "{port} outside {over}");
    drop(c);
    drop(d);

    // A range clear of it: no such line.
    let (lo, hi) = free_ports();
    let log = logs.path().join("clear.log");
    let _d = Daemon::start_with_args(
        &[(USER, PASS, "srv")],
        &[
            "--passive-ports",
            &format!("{lo}-{hi}"),
            "--log-file",
            log.to_str().expect("utf-8"),
        ],
    );
    assert!(
        !eph.contains(&lo) && !eph.contains(&hi),
        "test range {lo}-{hi}"
    );
    assert_eq!(lines_of(&log), 0);
}
