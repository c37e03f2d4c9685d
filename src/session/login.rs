//! Logging in and securing the control connection: USER, PASS (through the Gatekeeper and the
//! Authenticator pool), AUTH TLS, PBSZ and PROT (RFC 4217). It decides who the user is; it never
//! touches a file.

use super::*;

impl Session {
    pub(super) fn cmd_user(&mut self, name: String) -> Result<Reply, FtpError> {
        if matches!(self.login, Login::LoggedIn { .. }) {
            return Err(FtpError::NotLoggedIn(
                "Already logged in; cannot change user",
            ));
        }
        // SECURITY: an account that requires TLS is refused here, in clear, before a password
        // is sent: refusing it at PASS answered fast for the right password and after the
        // failure delay for a wrong one, an oracle for guessing.
        if !self.control_tls && self.services.users.requires_tls(&name) {
            log::warn!("[{}] USER refused in clear: account requires TLS", self.tag);
            return Err(FtpError::NotLoggedIn(
                "This account requires TLS: send AUTH TLS first",
            ));
        }
        let text = if self.services.users.is_anonymous_name(&name) {
            "Anonymous login ok, send your e-mail address as password".to_owned()
        } else {
            format!("Password required for {name}")
        };
        self.login = Login::AwaitingPassword(name);
        Ok(Reply::new(ReplyCode::NeedPassword, text))
    }

    pub(super) fn cmd_pass(&mut self, password: String) -> Flow {
        let name = match std::mem::replace(&mut self.login, Login::Connected) {
            Login::AwaitingPassword(name) => name,
            other => {
                let already = matches!(other, Login::LoggedIn { .. });
                self.login = other;
                let err = if already {
                    FtpError::BadSequence("Already logged in")
                } else {
                    FtpError::BadSequence("Login with USER first")
                };
                self.respond(Err(err));
                return done();
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
        let gatekeeper = self.services.gatekeeper.clone();
        let ip = self.peer.remote.ip();
        let check = async move {
            let started = Instant::now();
            // SECURITY: no password is checked for a banned source, nor beyond the number of
            // guesses its ban allows, whichever connection it comes on.
            let attempt = match gatekeeper {
                Some(g) => match g.send(BeginLogin { ip }).await {
                    Ok(Ok(())) => Some(LoginAttempt::new(g, ip)),
                    Ok(Err(why)) => return Err(Some(why)),
                    Err(_) => return Err(Some("Service not available")),
                },
                None => None,
            };
            // Argon2 is CPU-heavy: the Authenticator pool runs it, never this Arbiter.
            let found = auth.send(ask).await.ok().flatten();
            if let Some(attempt) = attempt {
                attempt.end(found.is_none());
            }
            match found {
                Some(user) => match user.jail.clone() {
                    // Opened at start-up and shared by the user's sessions.
                    Some(jail) => Ok((user, Ok(jail))),
                    None => {
                        let root = user.root.clone();
                        Ok((user, store.ask(OpenJail { root }).await))
                    }
                },
                None => {
                    // SECURITY: each failure costs the guesser time; only this session waits.
                    // The 530 leaves at a fixed time after the PASS, not a fixed time after the
                    // check, so how long the check took (one user's hash parameters against
                    // another's, or the decoy's) does not show.
                    tokio::time::sleep_until(started + delay).await;
                    Err(None)
                }
            }
        };
        Box::pin(
            check
                .into_actor(self)
                .map(move |outcome, act, ctx| match outcome {
                    Ok((user, Ok(_))) if user.require_tls && !act.control_tls => {
                        log::warn!("[{}] {} refused: account requires TLS", act.tag, user.name);
                        act.respond(Err(FtpError::NotLoggedIn(
                            "This account requires TLS: send AUTH TLS first",
                        )));
                    }
                    Ok((user, Ok(jail))) => {
                        log::info!("[{}] login ok as {}", act.tag, user.name);
                        act.observe(Observe::Login { ok: true });
                        act.tag = format!("#{} {} {}", act.peer.id, act.peer.remote, user.name);
                        act.cwd = VirtualPath::root();
                        act.login = Login::LoggedIn { user, jail };
                        act.reply(ReplyCode::LoggedIn, "Login successful");
                    }
                    Ok((user, jail)) => {
                        log::error!(
                            "[{}] root of {} cannot be opened: {:?}",
                            act.tag,
                            user.name,
                            jail.err()
                        );
                        act.respond(Err(FtpError::NotLoggedIn(
                            "Login failed: home directory unavailable",
                        )));
                    }
                    Err(None) => act.login_failed(ctx, &name),
                    Err(Some(why)) => {
                        log::warn!("[{}] PASS for {name} not checked: {why}", act.tag);
                        act.close(ctx, Some(Reply::new(ReplyCode::ServiceNotAvailable, why)));
                    }
                }),
        )
    }

    /// A failed PASS (the Gatekeeper, which bans repeat offenders, has been told): 530, and
    /// after `max_failures` on this connection, close it.
    pub(super) fn login_failed(&mut self, ctx: &mut Context<Self>, name: &str) {
        self.login_failures += 1;
        self.observe(Observe::Login { ok: false });
        log::warn!(
            "[{}] login failed for {name} ({} on this connection)",
            self.tag,
            self.login_failures
        );
        self.respond(Err(FtpError::NotLoggedIn("Login incorrect")));
        // SECURITY: a connection gets a bounded number of guesses.
        if self.login_failures >= self.services.config.login.max_failures {
            self.close(
                ctx,
                Some(Reply::new(
                    ReplyCode::ServiceNotAvailable,
                    "Too many failed logins, closing control connection",
                )),
            );
        }
    }

    pub(super) fn tls_policy(&self) -> Option<&TlsPolicy> {
        self.services.config.tls.as_ref()
    }

    pub(super) fn data_protection_required(&self) -> bool {
        self.tls_policy().is_some_and(|p| p.require_data)
            || self.user().is_some_and(|u| u.require_tls)
    }

    /// AUTH TLS (RFC 4217 §4): `None` when the 234 and the upgrade were queued.
    pub(super) fn cmd_auth(&mut self, mechanism: &str) -> Result<Option<Reply>, FtpError> {
        let Some(policy) = self.tls_policy() else {
            return Err(FtpError::NotImplemented("AUTH (TLS is not configured)"));
        };
        if !matches!(mechanism, "TLS" | "SSL" | "TLS-C" | "TLS-P") {
            return Ok(Some(Reply::new(
                ReplyCode::ParameterNotImplemented,
                "AUTH mechanism not supported; use AUTH TLS",
            )));
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
        self.reply(
            ReplyCode::AuthOk,
            "AUTH TLS successful, start TLS negotiation",
        );
        let _ = self.out.send(Outbound::StartTls(config));
        Ok(None)
    }

    /// PBSZ (RFC 4217 §8): TLS has no buffer size; 0 is the only answer.
    pub(super) fn cmd_pbsz(&mut self) -> Result<Reply, FtpError> {
        if !self.control_tls {
            return Err(FtpError::BadSequence("PBSZ needs AUTH TLS first"));
        }
        self.pbsz = true;
        Ok(Reply::new(ReplyCode::CommandOk, "PBSZ=0"))
    }

    /// PROT (RFC 4217 §9): P protects data connections, C leaves them clear.
    pub(super) fn cmd_prot(&mut self, level: &str) -> Result<Reply, FtpError> {
        if !self.control_tls {
            return Err(FtpError::BadSequence("PROT needs AUTH TLS first"));
        }
        if !self.pbsz {
            return Err(FtpError::BadSequence("PROT needs PBSZ first"));
        }
        match level {
            "P" => {
                self.prot_private = true;
                Ok(Reply::new(
                    ReplyCode::CommandOk,
                    "Protection level set to Private",
                ))
            }
            "C" if self.data_protection_required() => Ok(Reply::new(
                ReplyCode::PolicyRequiresTls,
                "Policy requires protected data connections (PROT P)",
            )),
            "C" => {
                self.prot_private = false;
                Ok(Reply::new(
                    ReplyCode::CommandOk,
                    "Protection level set to Clear",
                ))
            }
            "S" | "E" => Ok(Reply::new(
                ReplyCode::ProtLevelNotSupported,
                "Protection level not supported; use P or C",
            )),
            _ => Err(FtpError::Parse(ParseError::BadArgument(
                "PROT",
                "unknown protection level",
            ))),
        }
    }
}
