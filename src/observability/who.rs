//! `actorftpd who`: the live view of sessions and transfers, like `pure-ftpwho` or `ftptop`.
//!
//! It fetches `/sessions` from the running daemon's admin endpoint and draws a table with a
//! progress bar, percentage, rate and ETA per transfer (an upload, whose size nobody knows in
//! advance, shows what has arrived and its rate), refreshing every second until interrupted.
//! `--once` draws one snapshot. `--json --once` prints the snapshot (an array of sessions);
//! `--json` alone streams one line per second, `{"time": UNIX_SECONDS, "sessions": [...]}`,
//! with no screen-control bytes, and ends quietly when its reader goes away (`| head`). The
//! table clears the screen between frames only on a terminal. Rendering is a pure function of
//! the snapshot so it is table-tested.
//!
//! SECURITY: every string in a snapshot came over the network, most of it from FTP clients (user
//! names, commands, paths). Nothing from it reaches the terminal unescaped: the table passes each
//! field through `printable::escape_controls`, the JSON is re-serialised with the C1 and bidi
//! controls serde_json leaves alone written as `\uXXXX`.

use crate::observability::token::AdminToken;
use crate::printable::{escape_controls, escape_json_controls};
use crate::session::SessionSnapshot;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BAR: usize = 24;
const TIMEOUT: Duration = Duration::from_secs(5);

/// GETs a path from the admin endpoint, presenting `token`; the body of a 200 answer.
pub fn fetch(addr: SocketAddr, path: &str, token: Option<&AdminToken>) -> Result<String, String> {
    request(addr, "GET", path, token)
}

/// Sends one request (`GET`, or `POST` for `kick`) to the admin endpoint; the body of a 200.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&AdminToken>,
) -> Result<String, String> {
    // An endpoint bound to 0.0.0.0 or [::] is reached (and named in `Host`) on loopback: the
    // endpoint refuses a `Host` that is not one of its addresses.
    let addr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port()))
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    };
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| {
        format!("cannot reach the admin endpoint at {addr}: {e} (is the daemon running with --admin-listen?)")
    })?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    // The token is visible ASCII (checked by AdminToken::parse): it cannot break the header.
    let auth = token
        .map(|t| format!("Authorization: Bearer {}\r\n", t.as_str()))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("malformed answer from the admin endpoint")?;
    let status = head.lines().next().unwrap_or("");
    if !status.contains(" 200 ") {
        // SECURITY: whatever answers on that port chose this line.
        let status = escape_controls(status);
        let hint = if status.contains(" 401 ") {
            match token {
                Some(_) => " (the token differs from the daemon's --admin-token-file)",
                None => " (pass --admin-token-file, the daemon's token file)",
            }
        } else {
            ""
        };
        return Err(format!("admin endpoint answered {status}{hint}"));
    }
    Ok(body.to_owned())
}

pub fn fetch_sessions(
    addr: SocketAddr,
    token: Option<&AdminToken>,
) -> Result<Vec<SessionSnapshot>, String> {
    let body = fetch(addr, "/sessions", token)?;
    serde_json::from_str(&body).map_err(|e| format!("bad snapshot from the admin endpoint: {e}"))
}

/// The snapshot as JSON that is safe to print: parsed (so nothing but JSON passes), written
/// compactly again, then the controls serde_json writes raw turned into `\uXXXX` escapes.
pub fn printable_json(body: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| format!("bad snapshot from the admin endpoint: {e}"))?;
    let compact = serde_json::to_string(&value).map_err(|e| e.to_string())?;
    Ok(escape_json_controls(&compact).into_owned())
}

/// One line of the `--json` stream: the snapshot and when it was taken, as printable JSON.
pub fn stream_line(body: &str, time: u64) -> Result<String, String> {
    let sessions: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| format!("bad snapshot from the admin endpoint: {e}"))?;
    let line = serde_json::json!({ "time": time, "sessions": sessions });
    printable_json(&line.to_string())
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
        // SECURITY: every string field is escaped; clients chose most of them.
        let user = escape_controls(s.user.as_deref().unwrap_or("-"));
        let user = if s.tls {
            format!("{user}*")
        } else {
            user.into_owned()
        };
        out.push_str(&format!(
            "{:>6}  {:<22} {:<12} {:>6}  {}\n",
            s.id,
            escape_controls(&s.peer),
            user,
            clock(s.idle_secs),
            escape_controls(&s.command)
        ));
        if let Some(t) = &s.transfer {
            let known = t.size.filter(|n| *n > 0);
            if known.is_none() {
                // An upload (or a listing): no size to measure against, so no bar, percentage
                // or ETA; what has moved, how fast, for how long.
                out.push_str(&format!(
                    "        {} {} {} {} at {}/s for {}\n",
                    escape_controls(&t.direction),
                    escape_controls(&t.path),
                    human_bytes(t.bytes as f64),
                    if t.direction == "upload" {
                        "received"
                    } else {
                        "sent"
                    },
                    human_bytes(t.rate),
                    clock(t.elapsed_secs.max(0.0) as u64),
                ));
                continue;
            }
            let (bar, pct, eta) = match known {
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
                escape_controls(&t.direction),
                escape_controls(&t.path),
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
    out.push_str("(* TLS control connection; IDLE: since the last command or bytes moved)\n");
    out
}

/// Runs the live view, presenting the token in `token_file` when one is given.
pub fn run(
    addr: SocketAddr,
    token_file: Option<&Path>,
    once: bool,
    json: bool,
) -> Result<(), String> {
    use std::io::IsTerminal;
    let token = token_file.map(AdminToken::read).transpose()?;
    let token = token.as_ref();
    let mut stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    loop {
        let text = match (json, once) {
            (true, true) => {
                let mut body = printable_json(&fetch(addr, "/sessions", token)?)?;
                body.push('\n');
                body
            }
            (true, false) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let mut line = stream_line(&fetch(addr, "/sessions", token)?, now)?;
                line.push('\n');
                line
            }
            (false, true) => render(&fetch_sessions(addr, token)?),
            // Clear the screen and redraw (ANSI) on a terminal; frames one after another, a
            // blank line apart, into a pipe or file.
            (false, false) if terminal => {
                format!("\x1b[2J\x1b[H{}", render(&fetch_sessions(addr, token)?))
            }
            (false, false) => format!("{}\n", render(&fetch_sessions(addr, token)?)),
        };
        match stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => {}
            // The reader is gone (`who --json | head -1`): done, not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        if once {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::TransferSnapshot;

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
    fn client_chosen_text_is_escaped_in_the_table() {
        let hostile = "\x1b]0;pwned\x07\x1b[2J\u{9b}H\r\n     1  fake";
        let mut s = session(1, None);
        s.user = Some(hostile.into());
        s.command = format!("USER {hostile}");
        s.transfer = Some(TransferSnapshot {
            verb: "RETR".into(),
            path: format!("/{hostile}"),
            direction: "download".into(),
            bytes: 1,
            size: Some(2),
            elapsed_secs: 1.0,
            rate: 1.0,
        });
        let text = render(&[s]);
        let raw = |c: char| c != '\n' && crate::printable::needs_escape(c);
        assert!(!text.chars().any(raw), "{text:?}");
        assert_eq!(text.lines().count(), 5, "no forged lines: {text}");
        assert!(
            text.contains("USER \\x1b]0;pwned\\x07\\x1b[2J\\u{9b}H\\r\\n     1  fake"),
            "{text}"
        );
        assert!(text.contains("download /\\x1b]0;pwned"), "{text}");
    }

    #[test]
    fn json_output_is_still_json_without_raw_controls() {
        let mut s = session(1, None);
        s.command = "USER \u{9b}2J\u{7f}\x1b[H".into();
        let body = serde_json::to_string(&[&s]).expect("json");
        let shown = printable_json(&body).expect("valid");
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        let back: Vec<SessionSnapshot> = serde_json::from_str(&shown).expect("still JSON");
        assert_eq!(back, vec![s]);
        assert!(printable_json("\x1b[2Jnot json").is_err());
    }

    #[test]
    fn the_json_stream_is_one_timed_line_without_controls() {
        let mut s = session(1, None);
        s.command = "USER \u{9b}2J\x1b[H".into();
        let body = serde_json::to_string(&[&s]).expect("json");
        let line = stream_line(&body, 1_795_608_000).expect("valid");
        assert!(!line.chars().any(char::is_control), "{line:?}");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(v["time"], 1_795_608_000u64);
        let back: Vec<SessionSnapshot> =
            serde_json::from_value(v["sessions"].clone()).expect("sessions");
        assert_eq!(back, vec![s]);
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
        assert!(
            text.contains("upload /up 999 B received at 999 B/s for 0:01"),
            "no bar or ETA without a size: {text}"
        );
        assert!(!text.contains("??") && !text.contains("ETA"), "{text}");
        assert_eq!(
            render(&[]).lines().next(),
            Some("actorftpd: 0 sessions, 0 transfers")
        );
    }
}
