//! Kicking sessions: `POST /kick?session=ID` or `POST /kick?user=NAME` on the admin endpoint
//! (token required, like `/sessions`), and `actorftpd kick`, its client. The endpoint finds the
//! sessions as `/sessions` does (Listeners, then each Session's status) and sends each match
//! `Kick`: 421, its transfer aborted and an unfinished upload discarded.

use crate::listener::{ListSessions, Listener};
use crate::observability::token::AdminToken;
use crate::session::{Kick, SessionStatus};
use actix::prelude::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// How long one Session may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest user name accepted in a kick request.
const MAX_NAME: usize = 256;

/// Which sessions to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KickTarget {
    Session(u64),
    User(String),
}

impl KickTarget {
    /// The query string of a kick request: `session=ID` or `user=NAME` (percent-decoded).
    /// SECURITY: the query comes from the request; it is only compared, never used as a path.
    pub fn from_query(query: &str) -> Option<KickTarget> {
        let (key, value) = query.split_once('=')?;
        match key {
            "session" => value.parse().ok().map(KickTarget::Session),
            "user" => {
                let name = percent_decode(value)?;
                (!name.is_empty() && name.len() <= MAX_NAME).then_some(KickTarget::User(name))
            }
            _ => None,
        }
    }

    /// The request path for this target.
    pub fn path(&self) -> String {
        match self {
            KickTarget::Session(id) => format!("/kick?session={id}"),
            KickTarget::User(name) => format!("/kick?user={}", percent_encode(name)),
        }
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Sends `Kick` to every session that matches; returns how many were ended.
pub async fn kick(listeners: &[Addr<Listener>], target: &KickTarget) -> usize {
    let mut sessions = Vec::new();
    for l in listeners {
        if let Ok(list) = l.send(ListSessions).await {
            sessions.extend(list);
        }
    }
    let mut kicked = 0;
    for s in sessions {
        let Ok(Ok(status)) = tokio::time::timeout(ASK_TIMEOUT, s.send(SessionStatus)).await else {
            continue;
        };
        let matches = match target {
            KickTarget::Session(id) => status.id == *id,
            KickTarget::User(name) => status.user.as_deref() == Some(name.as_str()),
        };
        if matches && matches!(s.send(Kick).await, Ok(true)) {
            kicked += 1;
        }
    }
    kicked
}

/// `actorftpd kick`: asks the daemon's admin endpoint; prints how many sessions were ended.
pub fn run(addr: SocketAddr, token_file: Option<&Path>, target: &KickTarget) -> Result<(), String> {
    let token = token_file.map(AdminToken::read).transpose()?;
    let body = super::who::request(addr, "POST", &target.path(), token.as_ref())?;
    let answer: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| "malformed answer from the admin endpoint")?;
    let n = answer.get("kicked").and_then(|v| v.as_u64()).unwrap_or(0);
    println!("{n} session(s) disconnected");
    if n == 0 {
        return Err("no such session".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kick_queries_round_trip_and_junk_is_refused() {
        for t in [
            KickTarget::Session(42),
            KickTarget::User("alice".into()),
            KickTarget::User("a b/é%".into()),
        ] {
            let path = t.path();
            let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
            assert_eq!(KickTarget::from_query(query), Some(t), "{path}");
        }
        for bad in [
            "",
            "session=",
            "session=x",
            "user=",
            "user=%zz",
            "who=1",
            "user=%ff",
        ] {
            assert_eq!(KickTarget::from_query(bad), None, "{bad}");
        }
    }
}
