//! Logging in and securing the control connection: USER, PASS (through the Gatekeeper and the
//! Authenticator pool), AUTH TLS, PBSZ and PROT (RFC 4217). It decides who the user is; it never
//! touches a file. REIN and QUIT end a login or the session.

use super::data_setup::DataSetup;
use super::dispatch::{reply, Answer, Handled};
use super::{Login, Session};
use crate::auth::Password;
use crate::auth::{Authenticate, LoginRefused};
use crate::error::FtpError;
use crate::file_store::{OpenJail, VirtualPath};
use crate::gatekeeper::{BeginLogin, LoginAttempt};
use crate::listing::MlsxFacts;
use crate::observability::metrics::MetricEvent;
use crate::protocol::{ParseError, Reply, ReplyCode, TransferType};
use crate::tls::{data_config, SessionTls, TlsPolicy};
use actix::prelude::*;
use tokio::time::Instant;

/// Why PASS was refused, in the log's words: an account that requires TLS, asked in clear.
const TLS_REQUIRED: &str = "TLS required: the account needs AUTH TLS first";

/// How a PASS check ended without a login.
enum Refused {
    /// The credentials (the reason is for the log only): 530.
    Login(&'static str),
    /// The Gatekeeper's refusal of the source, said to the client: 421 and close.
    Gatekeeper(&'static str),
}

impl Session {
    pub(super) fn cmd_user(&mut self, name: String) -> Handled {
        // SECURITY: with TLS required, no name or password crosses the wire in clear.
        if self.tls_policy().is_some_and(|p| p.require_control) && !self.control_tls {
            return Err(FtpError::NotLoggedIn(
                "TLS required: send AUTH TLS before USER",
            ));
        }
        if matches!(self.login, Login::LoggedIn { .. }) {
            return Err(FtpError::NotLoggedIn(
                "Already logged in; cannot change user",
            ));
        }
        // An account that requires TLS gets the same 331 as any other name (refusing it here
        // would tell which names exist); PASS refuses it without checking the password.
        let text = if self.services.users.get().is_anonymous_name(&name) {
            "Anonymous login ok, send your e-mail address as password".to_owned()
        } else {
            format!("Password required for {name}")
        };
        self.login = Login::AwaitingPassword(name);
        reply(ReplyCode::NeedPassword, text)
    }

    pub(super) fn cmd_pass(&mut self, password: String) -> Handled {
        let name = match std::mem::replace(&mut self.login, Login::Connected) {
            Login::AwaitingPassword(name) => name,
            other => {
                let already = matches!(other, Login::LoggedIn { .. });
                self.login = other;
                return Err(if already {
                    FtpError::BadSequence("Already logged in")
                } else {
                    FtpError::BadSequence("Login with USER first")
                });
            }
        };
        let auth = self.services.auth.clone();
        let store = self.services.store.clone();
        let ask = Authenticate {
            name: name.clone(),
            password: Password::new(password),
            source: Some(self.peer.remote.ip()),
        };
        let delay = self.services.config.login.failure_delay;
        // SECURITY: an account that requires TLS, in clear, is refused without its password
        // being checked, exactly as a wrong password is (same 530, same time, same count
        // towards the limits): neither the password nor the account's existence shows.
        let tls_only = !self.control_tls && self.services.users.get().requires_tls(&name);
        let gatekeeper = self.services.gatekeeper.clone();
        let ip = self.peer.remote.ip();
        let check = async move {
            let started = Instant::now();
            // SECURITY: no password is checked for a banned source, nor beyond the number of
            // guesses its ban allows, whichever connection it comes on.
            let attempt = match gatekeeper {
                Some(g) => match g.send(BeginLogin { ip }).await {
                    Ok(Ok(())) => Some(LoginAttempt::new(g, ip)),
                    Ok(Err(why)) => return Err(Refused::Gatekeeper(why)),
                    Err(_) => return Err(Refused::Gatekeeper("Service not available")),
                },
                None => None,
            };
            // Argon2 is CPU-heavy: the Authenticator pool runs it, never this Arbiter. Why a
            // login failed goes to the log only; the client gets the same 530 for each reason.
            let found = if tls_only {
                Err(TLS_REQUIRED)
            } else {
                match auth.send(ask).await {
                    Ok(answer) => answer.map_err(LoginRefused::as_str),
                    Err(_) => Err("the authenticator is not running"),
                }
            };
            if let Some(attempt) = attempt {
                attempt.end(found.is_err());
            }
            match found {
                Ok(user) => match user.jail.clone() {
                    // Opened at start-up and shared by the user's sessions.
                    Some(jail) => Ok((user, Ok(jail))),
                    None => {
                        let root = user.root.clone();
                        Ok((user, store.ask(OpenJail { root }).await))
                    }
                },
                Err(why) => {
                    // SECURITY: each failure costs the guesser time; only this session waits.
                    // The 530 leaves at a fixed time after the PASS, not a fixed time after the
                    // check, so how long the check took (one user's hash parameters against
                    // another's, or the decoy's) does not show.
                    tokio::time::sleep_until(started + delay).await;
                    Err(Refused::Login(why))
                }
            }
        };
        Ok(Answer::Later(Box::pin(check.into_actor(self).map(
            move |outcome, act, _| match outcome {
                // Reached only when a SIGHUP reload made the account TLS-only between the check
                // above and the password check: refused like any wrong password, so even then
                // the reply does not tell that the password was right.
                Ok((user, Ok(_))) if user.require_tls && !act.control_tls => {
                    act.login_failed(&name, TLS_REQUIRED)
                }
                Ok((user, Ok(jail))) => {
                    log::info!("[{}] login ok as {}", act.tag, user.name);
                    act.count(MetricEvent::Login { ok: true });
                    act.tag = format!("#{} {} {}", act.peer.id, act.peer.remote, user.name);
                    act.cwd = VirtualPath::root();
                    // The user's welcome message (users file) before the final 230 line; the
                    // encoder frames and sanitises each line (RFC 959 §4.2).
                    let mut lines: Vec<String> = user
                        .welcome
                        .as_deref()
                        .map(|w| w.lines().map(str::to_owned).collect())
                        .unwrap_or_default();
                    lines.push("Login successful".to_owned());
                    act.login = Login::LoggedIn { user, jail };
                    Ok(Answer::Reply(Reply::multi(ReplyCode::LoggedIn, lines)))
                }
                Ok((user, Err(e))) => {
                    log::error!(
                        "[{}] root {} of {} cannot be opened: {}",
                        act.tag,
                        user.root.display(),
                        user.name,
                        e.log_text()
                    );
                    Err(FtpError::NotLoggedIn(
                        "Login failed: home directory unavailable",
                    ))
                }
                Err(Refused::Login(why)) => act.login_failed(&name, why),
                Err(Refused::Gatekeeper(why)) => {
                    log::warn!("[{}] PASS for {name} not checked: {why}", act.tag);
                    Ok(Answer::Close(Reply::new(
                        ReplyCode::ServiceNotAvailable,
                        why,
                    )))
                }
            },
        ))))
    }

    /// A failed PASS (the Gatekeeper, which bans repeat offenders, has been told): 530, and
    /// after `max_failures` on this connection, close it.
    fn login_failed(&mut self, name: &str, why: &str) -> Handled {
        self.login_failures += 1;
        self.count(MetricEvent::Login { ok: false });
        log::warn!(
            "[{}] login failed for {name} ({} on this connection): {why}",
            self.tag,
            self.login_failures
        );
        let incorrect = FtpError::NotLoggedIn("Login incorrect");
        // SECURITY: a connection gets a bounded number of guesses.
        if self.login_failures >= self.services.config.login.max_failures {
            return Ok(Answer::ReplyThenClose(
                incorrect.reply(),
                Reply::new(
                    ReplyCode::ServiceNotAvailable,
                    "Too many failed logins, closing control connection",
                ),
            ));
        }
        Err(incorrect)
    }

    pub(super) fn tls_policy(&self) -> Option<&TlsPolicy> {
        self.services.config.tls.as_ref()
    }

    pub(super) fn data_protection_required(&self) -> bool {
        self.tls_policy().is_some_and(|p| p.require_data)
            || self.user().is_some_and(|u| u.require_tls)
    }

    /// AUTH TLS (RFC 4217 §4): the 234, then the handshake.
    pub(super) fn cmd_auth(&mut self, mechanism: &str) -> Handled {
        let Some(policy) = self.tls_policy() else {
            return Err(FtpError::NotImplemented("AUTH (TLS is not configured)"));
        };
        if !matches!(mechanism, "TLS" | "SSL" | "TLS-C" | "TLS-P") {
            return reply(
                ReplyCode::ParameterNotImplemented,
                "AUTH mechanism not supported; use AUTH TLS",
            );
        }
        if self.control_tls {
            return Err(FtpError::BadSequence("TLS is already in use"));
        }
        if matches!(self.login, Login::LoggedIn { .. }) {
            return Err(FtpError::BadSequence("AUTH must come before login"));
        }
        let config = policy.session_config();
        self.tls_config = Some(SessionTls {
            data: data_config(&config),
            control: config.clone(),
        });
        self.control_tls = true;
        // A USER sent in clear before AUTH does not carry over (RFC 4217 §4).
        self.login = Login::Connected;
        Ok(Answer::StartTls(
            Reply::new(
                ReplyCode::AuthOk,
                "AUTH TLS successful, start TLS negotiation",
            ),
            config,
        ))
    }

    /// PBSZ (RFC 4217 §8): TLS has no buffer size; 0 is the only answer.
    pub(super) fn cmd_pbsz(&mut self) -> Handled {
        if !self.control_tls {
            return Err(FtpError::BadSequence("PBSZ needs AUTH TLS first"));
        }
        self.pbsz = true;
        reply(ReplyCode::CommandOk, "PBSZ=0")
    }

    /// PROT (RFC 4217 §9): P protects data connections, C leaves them clear.
    pub(super) fn cmd_prot(&mut self, level: &str) -> Handled {
        if !self.control_tls {
            return Err(FtpError::BadSequence("PROT needs AUTH TLS first"));
        }
        if !self.pbsz {
            return Err(FtpError::BadSequence("PROT needs PBSZ first"));
        }
        match level {
            "P" => {
                self.prot_private = true;
                reply(ReplyCode::CommandOk, "Protection level set to Private")
            }
            "C" if self.data_protection_required() => reply(
                ReplyCode::PolicyRequiresTls,
                "Policy requires protected data connections (PROT P)",
            ),
            "C" => {
                self.prot_private = false;
                reply(ReplyCode::CommandOk, "Protection level set to Clear")
            }
            "S" | "E" => reply(
                ReplyCode::ProtLevelNotSupported,
                "Protection level not supported; use P or C",
            ),
            _ => Err(FtpError::Parse(ParseError::BadArgument(
                "PROT",
                "unknown protection level",
            ))),
        }
    }
}

impl Session {
    /// REIN (RFC 959 §4.1.1): back to the state of a new connection; a running transfer still
    /// completes and is answered.
    pub(super) fn cmd_rein(&mut self) -> Handled {
        self.login = Login::Connected;
        self.tag = format!("#{} {}", self.peer.id, self.peer.remote);
        self.cwd = VirtualPath::root();
        self.transfer_type = TransferType::Ascii;
        self.rest = 0;
        self.data = DataSetup::None;
        self.epsv_all = false;
        self.mlst_facts = MlsxFacts::default();
        self.hashing = super::files::HashState::default();
        self.connected_at = Instant::now();
        reply(ReplyCode::ServiceReady, "Ready for a new user")
    }

    /// QUIT: 221 and close; during a transfer, RFC 959 §4.1.1 lets it finish first.
    pub(super) fn cmd_quit(&mut self) -> Handled {
        if self.transfer.is_some() {
            self.quit_after_transfer = true;
            return Ok(Answer::AfterTransfer);
        }
        Ok(Answer::Close(Reply::new(
            ReplyCode::ClosingControl,
            "Goodbye",
        )))
    }
}
