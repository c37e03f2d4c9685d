//! Commands that describe the server or the session and change nothing on disk: FEAT, HELP,
//! OPTS and STAT without a path; SITE HELP, and the routing of the SITE verbs that change a file
//! (CHMOD, UTIME: files.rs).

use super::dispatch::{reply, Answer, Handled};
use super::transfer::{mode_name, rate};
use super::Session;
use crate::error::FtpError;
use crate::listing::MlsxFacts;
use crate::protocol::command::{parse_site, HashAlgo, SiteCommand};
use crate::protocol::{ParseError, Reply, ReplyCode};
use actix::{Context, Handler, Message};

/// FEAT lines (RFC 2389): exactly what is implemented, one space indent.
pub(super) const FEATURES: &[&str] = &[
    " EPRT",
    " EPSV",
    " MDTM",
    " MFF modify;UNIX.mode;",
    " MFMT",
    " PASV",
    " RANG STREAM",
    " REST STREAM",
    " SIZE",
    " TVFS",
    " UTF8",
    " XCRC",
    " XMD5",
    " XSHA1",
    " XSHA256",
];

/// HELP lists the verbs we answer.
pub(super) const HELP_VERBS: &str =
    "ABOR ACCT ALLO APPE CDUP CWD DELE EPRT EPSV FEAT HASH HELP LIST MDTM MFF MFMT MKD MLSD MLST \
MODE NLST NOOP OPTS PASS PASV PORT PWD QUIT RANG REIN REST RETR RMD RNFR RNTO SITE SIZE STAT \
STOR STOU STRU SYST TYPE USER XCRC XCUP XCWD XMD5 XMKD XPWD XRMD XSHA1 XSHA256";

/// SITE HELP: the SITE verbs, with their arguments.
pub(super) const SITE_VERBS: &[&str] = &[
    " CHMOD <octal mode 0-777> <path>",
    " HELP",
    " UTIME <YYYYMMDDHHMMSS> <path>",
    " UTIME <path> <atime> <mtime> <ctime> UTC",
];

/// Answered only when TLS is configured.
pub(super) const HELP_TLS_VERBS: &str = "AUTH PBSZ PROT";

pub(super) fn help(topic: Option<String>, tls: bool) -> Reply {
    let known = |t: &str| {
        HELP_VERBS.split(' ').any(|v| v == t) || (tls && HELP_TLS_VERBS.split(' ').any(|v| v == t))
    };
    match topic {
        None => Reply::multi(
            ReplyCode::HelpMessage,
            vec![
                "The following commands are recognized:".to_owned(),
                if tls {
                    format!(" {HELP_VERBS} {HELP_TLS_VERBS}")
                } else {
                    format!(" {HELP_VERBS}")
                },
                "Help OK".to_owned(),
            ],
        ),
        Some(t) if known(&t) => Reply::new(
            ReplyCode::HelpMessage,
            format!("{t} is supported; see RFC 959"),
        ),
        Some(t) => Reply::new(ReplyCode::NotImplemented, format!("Unknown command {t}")),
    }
}

/// SITE HELP (RFC 959 §4.1.3): the SITE verbs offered.
pub(super) fn site_help() -> Reply {
    let mut lines = vec!["SITE commands recognized:".to_owned()];
    lines.extend(SITE_VERBS.iter().map(|v| (*v).to_owned()));
    lines.push("End".to_owned());
    Reply::multi(ReplyCode::HelpMessage, lines)
}

/// RFC 2389 OPTS; RFC 2640 §3.3 UTF8 (MLST is handled by the Session, which holds the facts).
pub(super) fn opts(name: &str, value: Option<&str>) -> Result<Reply, FtpError> {
    match (name, value.map(str::to_ascii_uppercase).as_deref()) {
        ("UTF8", None | Some("ON")) => Ok(Reply::new(ReplyCode::CommandOk, "Always in UTF8 mode")),
        ("UTF8", Some("OFF")) => Ok(Reply::new(
            ReplyCode::ParameterNotImplemented,
            "UTF8 cannot be turned off: names are UTF-8",
        )),
        _ => Err(FtpError::Parse(ParseError::BadArgument(
            "OPTS",
            "option not understood",
        ))),
    }
}

impl Session {
    /// FEAT (RFC 2389): what is implemented, TLS only when configured.
    pub(super) fn cmd_feat(&mut self) -> Handled {
        let mut features: Vec<String> = FEATURES.iter().map(|f| (*f).to_owned()).collect();
        if self.tls_policy().is_some() {
            features.extend([
                " AUTH TLS".to_owned(),
                " PBSZ".to_owned(),
                " PROT".to_owned(),
            ]);
        }
        features.push(format!(" MLST {}", self.mlst_facts.feat()));
        features.push(format!(" HASH {}", hash_feat(self.hashing.algo)));
        features.sort();
        let mut lines = vec!["Features:".to_owned()];
        lines.extend(features);
        lines.push("End".to_owned());
        Ok(Reply::multi(ReplyCode::SystemStatus, lines).into())
    }

    pub(super) fn cmd_help(&mut self, topic: Option<String>) -> Handled {
        Ok(help(topic, self.tls_policy().is_some()).into())
    }

    /// SITE (RFC 959 §4.1.3): HELP, CHMOD and UTIME; any other verb is 502.
    pub(super) fn cmd_site(&mut self, arg: &str) -> Handled {
        match parse_site(arg)? {
            SiteCommand::Help => Ok(site_help().into()),
            SiteCommand::Chmod(mode, path) => self.cmd_site_chmod(mode, self.cwd.join(&path)),
            SiteCommand::Utime(time, path) => self.cmd_site_utime(time, self.cwd.join(&path)),
            SiteCommand::Unknown(sub) => reply(
                ReplyCode::NotImplemented,
                format!("SITE {sub} not implemented"),
            ),
        }
    }

    pub(super) fn cmd_opts(&mut self, name: &str, value: Option<&str>) -> Handled {
        if name == "HASH" {
            return self.cmd_opts_hash(value);
        }
        if name != "MLST" {
            return opts(name, value).map(Answer::Reply);
        }
        // RFC 3659 §7.9: the reply lists the facts now selected.
        self.mlst_facts = MlsxFacts::parse(value.unwrap_or(""));
        reply(
            ReplyCode::CommandOk,
            format!("MLST OPTS {}", self.mlst_facts.selected()),
        )
    }

    /// STAT without argument (RFC 959 §4.1.3): session status, and the transfer if one runs.
    pub(super) fn cmd_stat(&mut self) -> Handled {
        let mut lines = vec![format!("actorftpd status for {}", self.peer.remote)];
        match self.user() {
            Some(u) => lines.push(format!("Logged in as {}", u.name)),
            None => lines.push("Not logged in".to_owned()),
        }
        lines.push(format!(
            "TYPE: {}, STRUcture: File, MODE: Stream",
            mode_name(self.transfer_type)
        ));
        match &self.transfer {
            Some(t) => {
                let secs = t.started.elapsed().as_secs_f64();
                let (total, pct) = match t.size {
                    Some(s) if s > 0 => (
                        format!(" of {s}"),
                        format!(" ({:.0}%)", t.bytes as f64 * 100.0 / s as f64),
                    ),
                    Some(s) => (format!(" of {s}"), String::new()),
                    None => (String::new(), String::new()),
                };
                lines.push(format!(
                    "Transfer in progress: {} {} ({}) {}{} bytes{}, {:.1} s, {}",
                    t.verb,
                    t.path,
                    t.direction(),
                    t.bytes,
                    total,
                    pct,
                    secs,
                    rate(t.bytes, secs)
                ));
            }
            None => lines.push("No data transfer in progress".to_owned()),
        }
        lines.push("End of status".to_owned());
        Ok(Reply::multi(ReplyCode::SystemStatus, lines).into())
    }
}

/// The FEAT line body for HASH: every algorithm, `*` on the selected one.
fn hash_feat(selected: HashAlgo) -> String {
    HashAlgo::ALL
        .iter()
        .map(|&a| {
            if a == selected {
                format!("{}*", a.name())
            } else {
                a.name().to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

impl Session {
    /// OPTS HASH (draft-bryan-ftpext-hash §4): without a value, the selected algorithm; with
    /// one, select it (504 for one we do not have).
    fn cmd_opts_hash(&mut self, value: Option<&str>) -> Handled {
        if let Some(name) = value {
            let algo = HashAlgo::from_name(name).ok_or(FtpError::Parse(
                ParseError::UnsupportedParameter("OPTS HASH"),
            ))?;
            self.hashing.algo = algo;
        }
        reply(ReplyCode::CommandOk, self.hashing.algo.name())
    }
}

/// The operator ends this session (`actorftpd kick`): it gets 421 and is closed; a running
/// upload is aborted, so its temporary file (or multipart upload) is discarded. Answers whether
/// the session was still open.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Kick;

impl Handler<Kick> for Session {
    type Result = bool;

    fn handle(&mut self, _: Kick, ctx: &mut Context<Self>) -> bool {
        if self.closing {
            return false;
        }
        log::info!("[{}] kicked by the administrator", self.tag);
        if let Some(t) = self.transfer.as_mut() {
            t.discard_upload = true;
        }
        self.close(
            ctx,
            Some(Reply::new(
                ReplyCode::ServiceNotAvailable,
                "Disconnected by the administrator, closing control connection",
            )),
        );
        true
    }
}
