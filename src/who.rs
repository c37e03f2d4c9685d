//! `actorftpd who`: the live view of sessions and transfers, like `pure-ftpwho` or `ftptop`.
//!
//! It fetches `/sessions` from the running daemon's admin endpoint and draws a table with a
//! progress bar, percentage, rate and ETA per transfer, refreshing every second until
//! interrupted (`--once` draws one snapshot, `--json` prints the raw snapshot). Rendering is a
//! pure function of the snapshot so it is table-tested.

use crate::admin::SessionSnapshot;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const BAR: usize = 24;
const TIMEOUT: Duration = Duration::from_secs(5);

/// GETs a path from the admin endpoint; the body of a 200 answer.
pub fn fetch(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| {
        format!("cannot reach the admin endpoint at {addr}: {e} (is the daemon running with --admin-listen?)")
    })?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("malformed answer from the admin endpoint")?;
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        return Err(format!("admin endpoint answered {status}"));
    }
    Ok(body.to_owned())
}

pub fn fetch_sessions(addr: SocketAddr) -> Result<Vec<SessionSnapshot>, String> {
    let body = fetch(addr, "/sessions")?;
    serde_json::from_str(&body).map_err(|e| format!("bad snapshot from the admin endpoint: {e}"))
}

fn human_bytes(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn clock(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}

/// The table for one snapshot.
pub fn render(sessions: &[SessionSnapshot]) -> String {
    let transfers = sessions.iter().filter(|s| s.transfer.is_some()).count();
    let mut out = format!(
        "actorftpd: {} session{}, {} transfer{}\n",
        sessions.len(),
        if sessions.len() == 1 { "" } else { "s" },
        transfers,
        if transfers == 1 { "" } else { "s" }
    );
    out.push_str(&format!(
        "{:>6}  {:<22} {:<12} {:>6}  {}\n",
        "ID", "PEER", "USER", "IDLE", "COMMAND"
    ));
    for s in sessions {
        let user = s.user.as_deref().unwrap_or("-");
        let user = if s.tls {
            format!("{user}*")
        } else {
            user.to_owned()
        };
        out.push_str(&format!(
            "{:>6}  {:<22} {:<12} {:>6}  {}\n",
            s.id,
            s.peer,
            user,
            clock(s.idle_secs),
            s.command
        ));
        if let Some(t) = &s.transfer {
            let (bar, pct, eta) = match t.size.filter(|n| *n > 0) {
                Some(size) => {
                    let frac = (t.bytes as f64 / size as f64).clamp(0.0, 1.0);
                    let filled = (frac * BAR as f64).round() as usize;
                    let eta = if t.rate > 0.0 {
                        clock(((size.saturating_sub(t.bytes)) as f64 / t.rate).round() as u64)
                    } else {
                        "--:--".to_owned()
                    };
                    (
                        format!("[{}{}]", "#".repeat(filled), ".".repeat(BAR - filled)),
                        format!("{:>3.0}%", frac * 100.0),
                        eta,
                    )
                }
                None => (
                    format!("[{}]", "?".repeat(BAR)),
                    " ?? ".to_owned(),
                    "--:--".to_owned(),
                ),
            };
            out.push_str(&format!(
                "        {} {} {} {} {}/s ETA {} ({} of {})\n",
                t.direction,
                t.path,
                bar,
                pct,
                human_bytes(t.rate),
                eta,
                human_bytes(t.bytes as f64),
                t.size
                    .map(|n| human_bytes(n as f64))
                    .unwrap_or_else(|| "?".into()),
            ));
        }
    }
    out
}

/// Runs the live view.
pub fn run(addr: SocketAddr, once: bool, json: bool) -> Result<(), String> {
    let mut stdout = std::io::stdout();
    loop {
        let text = if json {
            let mut body = fetch(addr, "/sessions")?;
            body.push('\n');
            body
        } else {
            render(&fetch_sessions(addr)?)
        };
        if once {
            return stdout.write_all(text.as_bytes()).map_err(|e| e.to_string());
        }
        // Clear the screen and redraw (ANSI), once a second until Ctrl-C.
        let frame = format!("\x1b[2J\x1b[H{text}");
        stdout
            .write_all(frame.as_bytes())
            .map_err(|e| e.to_string())?;
        stdout.flush().map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::TransferSnapshot;

    fn session(id: u64, transfer: Option<TransferSnapshot>) -> SessionSnapshot {
        SessionSnapshot {
            id,
            peer: "127.0.0.1:50000".into(),
            user: Some("alice".into()),
            idle_secs: 65,
            command: "RETR /big.bin".into(),
            tls: id == 2,
            transfer,
        }
    }

    #[test]
    fn renders_sessions_bars_rates_and_eta() {
        let t = TransferSnapshot {
            verb: "RETR".into(),
            path: "/big.bin".into(),
            direction: "download".into(),
            bytes: 250_000_000,
            size: Some(1_000_000_000),
            elapsed_secs: 2.5,
            rate: 100_000_000.0,
        };
        let text = render(&[session(1, Some(t)), session(2, None)]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "actorftpd: 2 sessions, 1 transfer");
        assert!(
            lines[2].contains("alice") && lines[2].contains("1:05"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].contains("[######..................]"),
            "{}",
            lines[3]
        );
        assert!(lines[3].contains(" 25%"), "{}", lines[3]);
        assert!(lines[3].contains("100.0 MB/s ETA 0:08"), "{}", lines[3]);
        assert!(lines[3].contains("(250.0 MB of 1.0 GB)"), "{}", lines[3]);
        assert!(
            lines[4].contains("alice*"),
            "TLS sessions are starred: {}",
            lines[4]
        );
    }

    #[test]
    fn unknown_size_and_empty_list() {
        let t = TransferSnapshot {
            verb: "STOR".into(),
            path: "/up".into(),
            direction: "upload".into(),
            bytes: 999,
            size: None,
            elapsed_secs: 1.0,
            rate: 999.0,
        };
        let text = render(&[session(3, Some(t))]);
        assert!(text.contains("upload /up [????"), "{text}");
        assert!(text.contains("999 B/s"), "{text}");
        assert_eq!(
            render(&[]).lines().next(),
            Some("actorftpd: 0 sessions, 0 transfers")
        );
    }
}
