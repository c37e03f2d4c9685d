//! The one way a command is answered: `dispatch` checks login (the one list of commands allowed
//! before it), routes each `Command` to its handler, and sends the handler's `Answer`.
//!
//! Every handler returns `Handled`: an `Answer` (a reply, a last reply and a close, the AUTH TLS
//! upgrade, the running transfer's end, or a future that ends in one of these) or an `FtpError`,
//! which becomes its reply through the one table in error.rs. `ask` is how a handler waits for
//! the file store: its answer is the command's answer. Handlers never send a reply
//! themselves, so each command is answered exactly once, and only here.

use super::{Login, Session};
use crate::error::{FtpError, StoreError};
use crate::file_store::{ListFormat, Request};
use crate::protocol::{Command, EpsvArg, ParseError, Reply, ReplyCode};
use actix::prelude::*;
use rustls::server::ServerConfig;
use std::sync::Arc;

/// What a command handler hands back. An error is answered with its reply.
pub(super) type Handled = Result<Answer, FtpError>;

/// How one command is answered.
pub(super) enum Answer {
    /// One reply, then the next command.
    Reply(Reply),
    /// The last reply, then the control connection closes (QUIT; 421).
    Close(Reply),
    /// The reply, then a closing notice (421) and the close (too many failed logins).
    ReplyThenClose(Reply, Reply),
    /// The 234 of AUTH TLS, then the TLS handshake on the control connection (RFC 4217 §4).
    StartTls(Reply, Arc<ServerConfig>),
    /// The running transfer's end answers: ABOR gets its 226 after the transfer's 426 (RFC 959
    /// §4.1.3), QUIT its 221 after the transfer's reply (§4.1.1).
    AfterTransfer,
    /// The answer once a store or pool has replied. The next command waits for it, so replies
    /// stay in command order.
    Later(ResponseActFuture<Session, Handled>),
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer::Reply(reply)
    }
}

/// What a file-system answer becomes: a reply, or an error that `deliver` turns into one.
pub(super) trait ThenReply<T>:
    FnOnce(&mut Session, Result<T, StoreError>, &mut Context<Session>) -> Result<Reply, FtpError>
    + 'static
{
}

impl<T, F> ThenReply<T> for F where
    F: FnOnce(
            &mut Session,
            Result<T, StoreError>,
            &mut Context<Session>,
        ) -> Result<Reply, FtpError>
        + 'static
{
}

/// A plain reply as a handler's answer.
pub(super) fn reply(code: ReplyCode, text: impl Into<String>) -> Handled {
    Ok(Answer::Reply(Reply::new(code, text)))
}

/// What the Handler of `Command` hands actix: done once the answer has been sent.
pub(super) type Flow = ResponseActFuture<Session, ()>;

pub(super) fn done() -> Flow {
    Box::pin(actix::fut::ready(()))
}

/// Commands allowed before login (RFC 959 §4.1.1 and the security extensions that must
/// precede USER). SECURITY: this is the one list; `dispatch` is the one place it is checked.
fn allowed_before_login(cmd: &Command) -> bool {
    matches!(
        cmd,
        Command::User(_)
            | Command::Pass(_)
            | Command::Quit
            | Command::Feat
            | Command::Syst
            | Command::Noop
            | Command::Help(_)
            | Command::Opts(..)
            | Command::Auth(_)
            | Command::Pbsz(_)
            | Command::Prot(_)
    )
}

impl Session {
    /// SECURITY: the one place that checks login state before a command runs.
    pub(super) fn dispatch(&mut self, cmd: Command, ctx: &mut Context<Self>) -> Flow {
        let handled =
            if !matches!(self.login, Login::LoggedIn { .. }) && !allowed_before_login(&cmd) {
                Err(FtpError::NotLoggedIn("Please login with USER and PASS"))
            } else {
                self.route(cmd, ctx)
            };
        self.answer(handled, ctx)
    }

    /// The routing table: each verb to its handler.
    fn route(&mut self, cmd: Command, ctx: &mut Context<Self>) -> Handled {
        // RFC 959 §4.1.3: RNTO must come right after RNFR; any other command forgets it.
        let rename_from = self.rename_from.take();
        // draft-bryan-ftpext-hash §3.2: a RANG range is for the HASH right after it. A transfer
        // right after it is refused rather than sent whole (ranged RETR is not offered).
        let hash_range = self.hashing.range.take();
        if hash_range.is_some()
            && matches!(
                cmd,
                Command::Retr(_) | Command::Stor(_) | Command::Appe(_) | Command::Stou
            )
        {
            return Err(FtpError::Parse(ParseError::UnsupportedParameter("RANG")));
        }
        match cmd {
            // login.rs
            Command::User(name) => self.cmd_user(name),
            Command::Pass(password) => self.cmd_pass(password),
            Command::Auth(mechanism) => self.cmd_auth(&mechanism),
            Command::Pbsz(_) => self.cmd_pbsz(),
            Command::Prot(level) => self.cmd_prot(&level),
            Command::Rein => self.cmd_rein(),
            Command::Quit => self.cmd_quit(),
            // files.rs
            Command::Pwd => self.cmd_pwd(),
            Command::Cwd(arg) => self.cmd_cwd(self.cwd.join(&arg)),
            Command::Cdup => self.cmd_cwd(self.cwd.parent()),
            Command::Size(arg) => self.cmd_size(self.cwd.join(&arg)),
            Command::Mdtm(arg) => self.cmd_mdtm(self.cwd.join(&arg)),
            Command::Dele(arg) => self.cmd_dele(self.cwd.join(&arg)),
            Command::Mkd(arg) => self.cmd_mkd(self.cwd.join(&arg)),
            Command::Rmd(arg) => self.cmd_rmd(self.cwd.join(&arg)),
            Command::Rnfr(arg) => self.cmd_rnfr(self.cwd.join(&arg)),
            Command::Rnto(arg) => self.cmd_rnto(rename_from, self.cwd.join(&arg)),
            Command::Mlst(arg) => self.cmd_mlst(arg),
            Command::Stat(Some(arg)) => self.cmd_stat_path(&arg),
            Command::Mfmt(time, arg) => self.cmd_mfmt(time, self.cwd.join(&arg)),
            Command::Mff(changes, arg) => self.cmd_mff(changes, self.cwd.join(&arg)),
            Command::Rang(range) => self.cmd_rang(range),
            Command::Hash(arg) => self.cmd_hash(self.cwd.join(&arg), hash_range),
            Command::XHash(algo, arg, range) => self.cmd_x_hash(algo, self.cwd.join(&arg), range),
            // data_setup.rs
            Command::Pasv => self.cmd_pasv(ctx, false, None),
            Command::Epsv(EpsvArg::Any) => self.cmd_pasv(ctx, true, None),
            Command::Epsv(EpsvArg::Protocol(p)) => self.cmd_pasv(ctx, true, Some(p)),
            Command::Epsv(EpsvArg::All) => self.cmd_epsv_all(),
            Command::Port(addr) | Command::Eprt(addr) => self.cmd_port(addr),
            // transfer.rs
            Command::Type(t) => self.cmd_type(t),
            Command::Rest(offset) => self.cmd_rest(offset),
            // RFC 3659 §5.5: a REST offset holds until the next transfer command uses it.
            Command::List(arg) => {
                let (arg, select) = self.list_selection(arg.as_deref());
                self.cmd_list(arg, ListFormat::Long, Some(select))
            }
            Command::Nlst(arg) => {
                let (arg, select) = self.list_selection(arg.as_deref());
                self.cmd_list(arg, ListFormat::Names, Some(select))
            }
            // MLSD is for programs (mirroring): every entry, dotfiles included.
            Command::Mlsd(arg) => {
                let format = ListFormat::Machine(self.mlst_facts, self.perm_fact());
                self.cmd_list(arg, format, None)
            }
            Command::Retr(arg) => self.cmd_retr(arg),
            Command::Stor(arg) => self.cmd_stor(arg),
            Command::Appe(arg) => self.cmd_appe(arg),
            Command::Stou => self.cmd_stou(),
            Command::Abor => self.cmd_abor(),
            // info.rs
            Command::Feat => self.cmd_feat(),
            Command::Help(topic) => self.cmd_help(topic),
            Command::Opts(name, value) => self.cmd_opts(&name, value.as_deref()),
            Command::Site(arg) => self.cmd_site(&arg),
            Command::Stat(None) => self.cmd_stat(),
            // Fixed answers.
            Command::Noop => reply(ReplyCode::CommandOk, "NOOP ok"),
            Command::Syst => reply(ReplyCode::SystemType, "UNIX Type: L8"),
            Command::Mode(_) => reply(ReplyCode::CommandOk, "Mode set to S"),
            Command::Stru(_) => reply(ReplyCode::CommandOk, "Structure set to F"),
            Command::Allo => reply(ReplyCode::NotImplementedSuperfluous, "ALLO not needed"),
            Command::Acct(_) => reply(ReplyCode::NotImplementedSuperfluous, "ACCT not needed"),
            // RFC 4217 §6: clearing the control channel would expose the rest of the session.
            Command::Ccc => reply(
                ReplyCode::NotImplemented,
                "CCC not supported: the control connection stays encrypted",
            ),
            Command::Smnt(_) => Err(FtpError::NotImplemented(cmd.verb())),
        }
    }

    /// Asks the file store (`Store` routes the request), then turns its answer into a reply
    /// with `then`. The next command waits for it, so replies stay in command order.
    pub(super) fn ask<R: Request>(
        &mut self,
        request: R,
        then: impl ThenReply<R::Answer>,
    ) -> Handled {
        let answer = self.services.store.ask(request);
        Ok(Answer::Later(Box::pin(answer.into_actor(self).map(
            move |answer, act, ctx| then(act, answer, ctx).map(Answer::Reply),
        ))))
    }

    /// Sends a handler's answer; for one that comes later, the returned future sends it, and
    /// the next command waits for that.
    fn answer(&mut self, handled: Handled, ctx: &mut Context<Self>) -> Flow {
        match handled {
            Ok(Answer::Later(pending)) => {
                Box::pin(pending.map(|handled, act, ctx| act.deliver(handled, ctx)))
            }
            now => {
                self.deliver(now, ctx);
                done()
            }
        }
    }

    /// The one place a command's answer is sent.
    fn deliver(&mut self, handled: Handled, ctx: &mut Context<Self>) {
        match handled {
            Err(e) => self.respond(Err(e)),
            Ok(Answer::Reply(r)) => self.send(r),
            Ok(Answer::Close(r)) => self.close(ctx, Some(r)),
            Ok(Answer::ReplyThenClose(r, notice)) => {
                self.send(r);
                self.close(ctx, Some(notice));
            }
            Ok(Answer::StartTls(r, config)) => {
                self.send(r);
                self.start_tls(config);
            }
            Ok(Answer::AfterTransfer) => {}
            // A future that ends in another one: the mailbox waits for that too.
            Ok(Answer::Later(pending)) => {
                ctx.wait(pending.map(|handled, act, ctx| act.deliver(handled, ctx)));
            }
        }
    }
}
