//! Counters for the Prometheus text endpoint (`/metrics`).
//!
//! Sessions send `Count(MetricEvent)` notifications; the `Metrics` actor adds them up and
//! renders the exposition format on request. Nothing is shared or locked: when metrics are
//! off, no event is sent at all.
//!
//! Besides the counters: how long the daemon has run (`actorftpd_uptime_seconds`, and
//! `actorftpd_start_time_seconds` for `time() - ...` queries) and what was built
//! (`actorftpd_build_info{version, commit} 1`). The commit is what the environment variable
//! `ACTORFTPD_GIT_COMMIT` held at build time (CI and packaging set it; no build script, so a
//! build from a tarball without git works the same), `unknown` otherwise.

use actix::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The version control commit this binary was built from, when the build said
/// (`ACTORFTPD_GIT_COMMIT=$(git rev-parse --short HEAD) cargo build --release`).
pub fn build_commit() -> &'static str {
    match option_env!("ACTORFTPD_GIT_COMMIT") {
        // Only what a commit id or `git describe` is made of: it goes into a label value.
        Some(c)
            if !c.is_empty()
                && c.len() <= 64
                && c.chars().all(|ch| {
                    ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_' | '+')
                }) =>
        {
            c
        }
        _ => "unknown",
    }
}

/// Something worth counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricEvent {
    SessionOpened,
    SessionClosed,
    Login {
        ok: bool,
    },
    Command(&'static str),
    Reply(u16),
    TransferStarted,
    TransferEnded {
        incoming: bool,
        bytes: u64,
        ok: bool,
    },
}

/// Count this event (a notification from a Session).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Count(pub MetricEvent);

/// Asks for the current counters in Prometheus text format.
#[derive(Debug, Message)]
#[rtype(result = "String")]
pub struct RenderMetrics;

#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// The start as wall-clock time, seconds since the epoch.
    started_unix: f64,
    sessions_open: i64,
    sessions_total: u64,
    logins: BTreeMap<&'static str, u64>,
    commands: BTreeMap<&'static str, u64>,
    replies: BTreeMap<u16, u64>,
    bytes_in: u64,
    bytes_out: u64,
    transfers: BTreeMap<&'static str, u64>,
    transfers_active: i64,
}

impl Default for Metrics {
    /// Counters at zero; the uptime counts from now (the daemon starts this with its listeners).
    fn default() -> Metrics {
        Metrics {
            started: Instant::now(),
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            sessions_open: 0,
            sessions_total: 0,
            logins: BTreeMap::new(),
            commands: BTreeMap::new(),
            replies: BTreeMap::new(),
            bytes_in: 0,
            bytes_out: 0,
            transfers: BTreeMap::new(),
            transfers_active: 0,
        }
    }
}

impl Actor for Metrics {
    type Context = Context<Self>;
}

impl Metrics {
    pub fn record(&mut self, event: MetricEvent) {
        match event {
            MetricEvent::SessionOpened => {
                self.sessions_open += 1;
                self.sessions_total += 1;
            }
            MetricEvent::SessionClosed => self.sessions_open -= 1,
            MetricEvent::Login { ok } => {
                *self
                    .logins
                    .entry(if ok { "success" } else { "failure" })
                    .or_default() += 1
            }
            MetricEvent::Command(verb) => *self.commands.entry(verb).or_default() += 1,
            MetricEvent::Reply(code) => *self.replies.entry(code).or_default() += 1,
            MetricEvent::TransferStarted => self.transfers_active += 1,
            MetricEvent::TransferEnded {
                incoming,
                bytes,
                ok,
            } => {
                self.transfers_active -= 1;
                if incoming {
                    self.bytes_in += bytes;
                } else {
                    self.bytes_out += bytes;
                }
                *self
                    .transfers
                    .entry(if ok { "complete" } else { "failed" })
                    .or_default() += 1;
            }
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut metric = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in rows {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let plain = |v: String| vec![(String::new(), v)];
        metric(
            "actorftpd_build_info",
            "gauge",
            "The running build: version and commit, always 1.",
            vec![(
                format!(
                    "{{version=\"{}\",commit=\"{}\"}}",
                    env!("CARGO_PKG_VERSION"),
                    build_commit()
                ),
                "1".into(),
            )],
        );
        metric(
            "actorftpd_start_time_seconds",
            "gauge",
            "When the daemon started, seconds since the Unix epoch.",
            plain(format!("{:.3}", self.started_unix)),
        );
        metric(
            "actorftpd_uptime_seconds",
            "gauge",
            "Seconds since the daemon started.",
            plain(format!("{:.3}", self.started.elapsed().as_secs_f64())),
        );
        metric(
            "actorftpd_sessions_open",
            "gauge",
            "Control connections open now.",
            plain(self.sessions_open.to_string()),
        );
        metric(
            "actorftpd_sessions_total",
            "counter",
            "Control connections accepted.",
            plain(self.sessions_total.to_string()),
        );
        metric(
            "actorftpd_logins_total",
            "counter",
            "Login attempts by result.",
            ["success", "failure"]
                .iter()
                .map(|r| {
                    let n = self.logins.get(r).copied().unwrap_or(0);
                    (format!("{{result=\"{r}\"}}"), n.to_string())
                })
                .collect(),
        );
        metric(
            "actorftpd_commands_total",
            "counter",
            "Commands received, by verb.",
            self.commands
                .iter()
                .map(|(v, n)| (format!("{{verb=\"{v}\"}}"), n.to_string()))
                .collect(),
        );
        metric(
            "actorftpd_replies_total",
            "counter",
            "Replies sent, by code.",
            self.replies
                .iter()
                .map(|(c, n)| (format!("{{code=\"{c}\"}}"), n.to_string()))
                .collect(),
        );
        metric(
            "actorftpd_transfer_bytes_total",
            "counter",
            "File bytes moved, by direction.",
            vec![
                ("{direction=\"in\"}".into(), self.bytes_in.to_string()),
                ("{direction=\"out\"}".into(), self.bytes_out.to_string()),
            ],
        );
        metric(
            "actorftpd_transfers_total",
            "counter",
            "Finished transfers, by result.",
            ["complete", "failed"]
                .iter()
                .map(|r| {
                    let n = self.transfers.get(r).copied().unwrap_or(0);
                    (format!("{{result=\"{r}\"}}"), n.to_string())
                })
                .collect(),
        );
        metric(
            "actorftpd_transfers_active",
            "gauge",
            "Transfers running now.",
            plain(self.transfers_active.to_string()),
        );
        out
    }
}

impl Handler<Count> for Metrics {
    type Result = ();

    fn handle(&mut self, msg: Count, _: &mut Context<Self>) {
        self.record(msg.0);
    }
}

impl Handler<RenderMetrics> for Metrics {
    type Result = String;

    fn handle(&mut self, _: RenderMetrics, _: &mut Context<Self>) -> String {
        self.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_prometheus_text_format() {
        let mut m = Metrics::default();
        for e in [
            MetricEvent::SessionOpened,
            MetricEvent::SessionOpened,
            MetricEvent::SessionClosed,
            MetricEvent::Login { ok: true },
            MetricEvent::Login { ok: false },
            MetricEvent::Login { ok: false },
            MetricEvent::Command("NOOP"),
            MetricEvent::Command("NOOP"),
            MetricEvent::Command("RETR"),
            MetricEvent::Reply(200),
            MetricEvent::Reply(226),
            MetricEvent::TransferStarted,
            MetricEvent::TransferEnded {
                incoming: false,
                bytes: 10,
                ok: true,
            },
            MetricEvent::TransferStarted,
        ] {
            m.record(e);
        }
        let text = m.render();
        for line in [
            "actorftpd_sessions_open 1",
            "actorftpd_sessions_total 2",
            "actorftpd_logins_total{result=\"success\"} 1",
            "actorftpd_logins_total{result=\"failure\"} 2",
            "actorftpd_commands_total{verb=\"NOOP\"} 2",
            "actorftpd_commands_total{verb=\"RETR\"} 1",
            "actorftpd_replies_total{code=\"226\"} 1",
            "actorftpd_transfer_bytes_total{direction=\"out\"} 10",
            "actorftpd_transfer_bytes_total{direction=\"in\"} 0",
            "actorftpd_transfers_total{result=\"complete\"} 1",
            "actorftpd_transfers_active 1",
            "# TYPE actorftpd_commands_total counter",
            "# TYPE actorftpd_uptime_seconds gauge",
            &format!(
                "actorftpd_build_info{{version=\"{}\",commit=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION"),
                build_commit()
            ),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let value = |name: &str| -> f64 {
            let line = text.lines().find(|l| l.starts_with(name)).expect(name);
            line[name.len()..].trim().parse().expect("a number")
        };
        assert!(value("actorftpd_uptime_seconds ") >= 0.0);
        // Started after 2020 and not in the future.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let start = value("actorftpd_start_time_seconds ");
        // (Written to the millisecond, so possibly rounded up by half of one.)
        assert!(start > 1.5e9 && start <= now + 0.001, "{start}");
    }
}
