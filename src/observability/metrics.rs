//! Counters for the Prometheus text endpoint (`/metrics`).
//!
//! Sessions send `Count(MetricEvent)` notifications; the `Metrics` actor adds them up and
//! renders the exposition format on request. Nothing is shared or locked: when metrics are
//! off, no event is sent at all.

use actix::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write;

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

#[derive(Debug, Default)]
pub struct Metrics {
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
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
