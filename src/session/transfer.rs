//! Transfers: LIST, NLST, MLSD, RETR, STOR, APPE, STOU and ABOR start or stop a DataChannel,
//! and `Progress` / `TransferDone` from it end in the 226 (or 426/451), the transfer log and the
//! metrics. The Session never waits on a transfer.

use super::data_setup::Endpoint;
use super::dispatch::{reply, Answer, Handled};
use super::messages::TransferSnapshot;
use super::{shutdown_reply, Session};
use crate::data_channel::{
    tighter, Abort, DataChannel, DataTls, MinRate, Payload, Progress, TransferDone, TransferError,
    TransferResult, TransferSpec,
};
use crate::error::{FtpError, StoreError};
use crate::file_store::{
    FinishUpload, Jail, List, ListFormat, ListSelected, OpenRead, OpenWrite, ReadSource, Selection,
    UploadSink, UploadTarget, VirtualPath, WriteMode,
};
use crate::gatekeeper::PassiveLease;
use crate::observability::metrics::MetricEvent;
use crate::observability::xferlog::XferRecord;
use crate::protocol::{ParseError, Reply, ReplyCode, TransferType};
use actix::prelude::*;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// How often a long transfer writes a progress line to the log.
pub(super) const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(10);

pub(super) struct Transfer {
    pub(super) id: u64,
    pub(super) channel: Addr<DataChannel>,
    pub(super) verb: &'static str,
    pub(super) path: VirtualPath,
    pub(super) bytes: u64,
    pub(super) size: Option<u64>,
    pub(super) started: Instant,
    pub(super) upload: Option<(Jail, UploadTarget)>,
    pub(super) abort_requested: bool,
    /// The operator kicked the session: an upload is discarded even if its client closed the
    /// data connection (EOF) before the DataChannel saw the Abort.
    pub(super) discard_upload: bool,
    pub(super) ascii: bool,
    pub(super) last_log: Instant,
    /// Held for the whole transfer: its passive port counts against the source's share.
    pub(super) _lease: Option<PassiveLease>,
}

impl Transfer {
    pub(super) fn direction(&self) -> &'static str {
        match self.verb {
            "RETR" => "download",
            "STOR" | "APPE" | "STOU" => "upload",
            _ => "listing",
        }
    }

    pub(super) fn snapshot(&self) -> TransferSnapshot {
        let elapsed = self.started.elapsed().as_secs_f64();
        TransferSnapshot {
            verb: self.verb.to_owned(),
            path: self.path.to_string(),
            direction: self.direction().to_owned(),
            bytes: self.bytes,
            size: self.size,
            elapsed_secs: elapsed,
            rate: if elapsed > 0.0 {
                self.bytes as f64 / elapsed
            } else {
                0.0
            },
        }
    }
}

impl Handler<Progress> for Session {
    type Result = ();

    fn handle(&mut self, msg: Progress, _: &mut Context<Self>) {
        let Some(t) = self.transfer.as_mut().filter(|t| t.id == msg.id) else {
            return;
        };
        t.bytes = msg.bytes;
        // Bytes moved: the session is busy, not idle (the live view's IDLE column).
        self.last_active = Instant::now();
        // A steady progress line for long transfers, not one per chunk.
        if t.last_log.elapsed() >= PROGRESS_LOG_INTERVAL {
            t.last_log = Instant::now();
            let snap = t.snapshot();
            log::info!(
                "[{}] {} {} in progress: {} of {} bytes, {:.0} s, {}",
                self.tag,
                snap.verb,
                snap.path,
                snap.bytes,
                snap.size
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "?".into()),
                snap.elapsed_secs,
                rate(snap.bytes, snap.elapsed_secs)
            );
        }
    }
}

impl Handler<TransferDone> for Session {
    type Result = ();

    fn handle(&mut self, mut msg: TransferDone, ctx: &mut Context<Self>) {
        let Some(mut t) = self.transfer.take_if(|t| t.id == msg.id) else {
            return;
        };
        if t.discard_upload && t.upload.is_some() && msg.result.is_ok() {
            msg.result = Err(TransferError::Aborted);
        }
        if let Ok(bytes) = msg.result {
            t.bytes = bytes;
        }
        self.last_active = Instant::now();
        let Some((jail, target)) = t.upload.take() else {
            self.finish_transfer(ctx, t, msg.result);
            return;
        };
        // An upload is renamed into place only when it completed; otherwise its temporary
        // file is removed, so a failed STOR never leaves a truncated file under the real name.
        let keep = msg.result.is_ok();
        let finish = self.services.store.ask(FinishUpload { jail, target, keep });
        ctx.wait(finish.into_actor(self).map(move |answer, act, ctx| {
            let result = match (msg.result, answer) {
                (Ok(bytes), Ok(())) => Ok(bytes),
                (Ok(_), Err(StoreError::NoSpace)) => Err(TransferError::NoSpace),
                // SECURITY: the final rename would have replaced a file that appeared while
                // the upload ran, and the user may not overwrite: the other file stays.
                (Ok(_), Err(StoreError::AlreadyExists)) => Err(TransferError::NameTaken),
                (Ok(_), Err(e)) => Err(TransferError::LocalIo(format!(
                    "cannot move the upload into place: {}",
                    e.log_text()
                ))),
                (Err(e), _) => Err(e),
            };
            act.finish_transfer(ctx, t, result);
        }));
    }
}

pub(super) fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) fn mode_name(t: TransferType) -> &'static str {
    match t {
        TransferType::Ascii => "ASCII",
        TransferType::Image => "BINARY",
    }
}

/// A human rate: `12.3 MB/s`.
pub fn rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "n/a".to_owned();
    }
    let bps = bytes as f64 / secs;
    if bps >= 1e6 {
        format!("{:.1} MB/s", bps / 1e6)
    } else {
        format!("{:.1} kB/s", bps / 1e3)
    }
}

impl Session {
    /// The jail and the prepared data endpoint for a transfer command, given its permission
    /// check.
    fn transfer_setup(
        &mut self,
        allowed: Result<(), FtpError>,
    ) -> Result<(Jail, Endpoint), FtpError> {
        allowed?;
        let jail = self.jail()?;
        Ok((jail, self.take_endpoint()?))
    }

    /// TYPE: A or I, for the transfers that follow.
    pub(super) fn cmd_type(&mut self, t: TransferType) -> Handled {
        self.transfer_type = t;
        reply(
            ReplyCode::CommandOk,
            match t {
                TransferType::Ascii => "Switching to ASCII mode",
                TransferType::Image => "Switching to Binary mode",
            },
        )
    }

    /// REST (RFC 3659 §5): the offset the next RETR or STOR starts at.
    pub(super) fn cmd_rest(&mut self, offset: u64) -> Handled {
        if self.transfer_type == TransferType::Ascii && offset > 0 {
            // Offsets in TYPE A would need a scan of the file to map wire bytes to disk bytes.
            return Err(FtpError::Parse(ParseError::BadArgument(
                "REST",
                "not supported in ASCII mode; use TYPE I",
            )));
        }
        self.rest = offset;
        reply(
            ReplyCode::FileActionPending,
            format!("Restarting at {offset}. Send STOR or RETR to initiate transfer"),
        )
    }

    /// ABOR: when a transfer is running, RFC 959 §4.1.3 has the transfer answer 426 first and
    /// ABOR 226 after it, both sent when the DataChannel reports.
    pub(super) fn cmd_abor(&mut self) -> Handled {
        match &mut self.transfer {
            Some(t) => {
                t.abort_requested = true;
                t.channel.do_send(Abort);
                Ok(Answer::AfterTransfer)
            }
            None => reply(
                ReplyCode::DataConnectionOpenNoTransfer,
                "No transfer to abort",
            ),
        }
    }

    /// LIST, NLST and MLSD: the listing, over a data connection; LIST and NLST show only what
    /// `select` picks (files.rs `list_selection`), MLSD every entry.
    pub(super) fn cmd_list(
        &mut self,
        arg: Option<String>,
        format: ListFormat,
        select: Option<Selection>,
    ) -> Handled {
        self.rest = 0;
        let (jail, endpoint) = self.transfer_setup(self.require(|p| p.read))?;
        let path = match &arg {
            Some(a) => self.cwd.join(a),
            None => self.cwd.clone(),
        };
        let verb = match format {
            ListFormat::Long => "LIST",
            ListFormat::Names => "NLST",
            ListFormat::Machine(..) => "MLSD",
        };
        let list = List {
            jail,
            path: path.clone(),
            format,
            now: unix_now(),
        };
        let then = move |act: &mut Session,
                         res: Result<ReadSource, StoreError>,
                         ctx: &mut Context<Session>| {
            {
                let body = match res {
                    // RFC 3659 §7.2: MLSD of something that is not a directory is 501.
                    Err(StoreError::NotADirectory) if verb == "MLSD" => {
                        return Err(FtpError::Parse(ParseError::BadArgument(
                            "MLSD",
                            "not a directory",
                        )))
                    }
                    other => other?,
                };
                let (payload, len) = match body {
                    ReadSource::Bytes(bytes) => {
                        let len = bytes.len() as u64;
                        (Payload::SendBytes(bytes), Some(len))
                    }
                    ReadSource::Stream(stream) => (Payload::SendStream(Box::new(stream)), None),
                    ReadSource::File(file) => (Payload::SendFile(file), None),
                };
                act.start_transfer(ctx, verb, path, endpoint, payload, len, None)?;
                Ok(Reply::new(
                    ReplyCode::OpeningDataConnection,
                    "Here comes the directory listing",
                ))
            }
        };
        match select {
            Some(select) => self.ask(ListSelected { list, select }, then),
            None => self.ask(list, then),
        }
    }

    pub(super) fn cmd_retr(&mut self, arg: String) -> Handled {
        let offset = std::mem::take(&mut self.rest);
        let (jail, endpoint) = self.transfer_setup(self.require(|p| p.read))?;
        let path = self.cwd.join(&arg);
        self.ask(
            OpenRead {
                jail,
                path: path.clone(),
                offset,
            },
            move |act, res, ctx| {
                let handle = res?;
                let left = handle.size - offset;
                let mode = mode_name(act.transfer_type);
                let text = format!(
                    "Opening {mode} mode data connection for {} ({} bytes)",
                    crate::protocol::rawname::shown(path.file_name()),
                    handle.size
                );
                act.start_transfer(
                    ctx,
                    "RETR",
                    path,
                    endpoint,
                    match handle.source {
                        ReadSource::File(file) => Payload::SendFile(file),
                        ReadSource::Bytes(bytes) => Payload::SendBytes(bytes),
                        ReadSource::Stream(stream) => Payload::SendStream(Box::new(stream)),
                    },
                    Some(left),
                    None,
                )?;
                Ok(Reply::new(ReplyCode::OpeningDataConnection, text))
            },
        )
    }

    pub(super) fn cmd_stor(&mut self, arg: String) -> Handled {
        let rest = std::mem::take(&mut self.rest);
        let mode = if rest > 0 {
            WriteMode::At(rest)
        } else {
            WriteMode::Replace {
                allow_overwrite: self.permissions().overwrite,
            }
        };
        self.store(self.cwd.join(&arg), mode, "STOR")
    }

    pub(super) fn cmd_appe(&mut self, arg: String) -> Handled {
        self.rest = 0;
        self.store(self.cwd.join(&arg), WriteMode::Append, "APPE")
    }

    /// STOR, APPE and STOU: an upload, over a data connection.
    fn store(&mut self, path: VirtualPath, mode: WriteMode, verb: &'static str) -> Handled {
        let allowed = match mode {
            WriteMode::Replace { .. } => self.require(|p| p.upload),
            WriteMode::Append | WriteMode::At(_) => self.require(|p| p.upload && p.overwrite),
        };
        let (jail, endpoint) = self.transfer_setup(allowed)?;
        // The upload keeps its own jail handle: after REIN (or anything else that changes the
        // login) the temporary file is still renamed into place or removed in the right root.
        let upload_jail = jail.clone();
        self.ask(
            OpenWrite {
                jail,
                path: path.clone(),
                mode,
            },
            move |act, res, ctx| {
                let upload = res?;
                let mode = mode_name(act.transfer_type);
                let text = if verb == "STOU" {
                    // RFC 1123 §4.1.2.9: STOU names the file in its 150 reply.
                    format!("FILE: {}", path.file_name())
                } else {
                    format!(
                        "Opening {mode} mode data connection for {}",
                        path.file_name()
                    )
                };
                act.start_transfer(
                    ctx,
                    verb,
                    path,
                    endpoint,
                    match upload.sink {
                        UploadSink::File(file) => Payload::Receive(file),
                        UploadSink::Object(sink) => Payload::ReceiveStream(Box::new(sink)),
                    },
                    None,
                    Some((upload_jail, upload.target)),
                )?;
                Ok(Reply::new(ReplyCode::OpeningDataConnection, text))
            },
        )
    }

    pub(super) fn cmd_stou(&mut self) -> Handled {
        self.rest = 0;
        let mut rnd = [0u8; 6];
        getrandom::getrandom(&mut rnd).map_err(|_| FtpError::Internal)?;
        let name: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let path = self.cwd.join(&format!("stou-{name}"));
        self.store(
            path,
            WriteMode::Replace {
                allow_overwrite: false,
            },
            "STOU",
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_transfer(
        &mut self,
        ctx: &mut Context<Self>,
        verb: &'static str,
        path: VirtualPath,
        endpoint: Endpoint,
        payload: Payload,
        size: Option<u64>,
        upload: Option<(Jail, UploadTarget)>,
    ) -> Result<(), FtpError> {
        let config = &self.services.config;
        let id = self.next_transfer_id;
        self.next_transfer_id += 1;
        let Endpoint {
            to: endpoint,
            lease,
        } = endpoint;
        // Bandwidth: the tighter of the daemon's and the user's limit for this direction;
        // listings are not limited.
        let max_rate = match (verb, upload.is_some(), self.user()) {
            ("LIST" | "NLST" | "MLSD", _, _) => None,
            (_, true, user) => tighter(
                config.limits.max_upload_rate,
                user.and_then(|u| u.max_upload_rate),
            ),
            (_, false, user) => tighter(
                config.limits.max_download_rate,
                user.and_then(|u| u.max_download_rate),
            ),
        };
        let spec = TransferSpec {
            id,
            endpoint,
            payload,
            ascii: self.transfer_type == TransferType::Ascii
                && !matches!(verb, "LIST" | "NLST" | "MLSD"),
            tls: match (&self.tls_config, self.prot_private) {
                (Some(tls), true) => Some(DataTls {
                    config: tls.data.clone(),
                    require_resumption: self.tls_policy().is_some_and(|p| p.require_session_reuse),
                }),
                _ => None,
            },
            control_peer: if config.allow_fxp {
                None
            } else {
                Some(self.peer.remote.ip())
            },
            proxies: config.proxy_protocol.clone(),
            size_hint: size,
            connect_timeout: config.timeouts.data_connect,
            stall_timeout: config.timeouts.data_stall,
            buffer_size: config.limits.transfer_buffer,
            min_rate: MinRate {
                bytes_per_sec: config.timeouts.data_min_rate,
                window: config.timeouts.data_min_rate_window,
                threads: config.limits.transfer_threads.max(1),
            },
            threads: self.services.transfer_threads.clone(),
            max_rate,
        };
        let me = ctx.address();
        let channel = DataChannel::new(spec, me.clone().recipient(), me.recipient()).start();
        log::info!(
            "[{}] {verb} {path} started ({} bytes expected)",
            self.tag,
            size.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
        );
        self.count(MetricEvent::TransferStarted);
        self.transfer = Some(Transfer {
            id,
            channel,
            verb,
            path,
            bytes: 0,
            size,
            started: Instant::now(),
            upload,
            abort_requested: false,
            discard_upload: false,
            ascii: self.transfer_type == TransferType::Ascii,
            last_log: Instant::now(),
            _lease: lease,
        });
        Ok(())
    }

    /// Replies to the end of a transfer, in RFC 959 order, then any QUIT or close that waited.
    pub(super) fn finish_transfer(
        &mut self,
        ctx: &mut Context<Self>,
        t: Transfer,
        result: TransferResult,
    ) {
        let secs = t.started.elapsed().as_secs_f64();
        let bytes = *result.as_ref().unwrap_or(&t.bytes);
        self.count(MetricEvent::TransferEnded {
            incoming: t.direction() == "upload",
            bytes,
            ok: result.is_ok(),
        });
        if let (Some(log), Some(user), "download" | "upload") =
            (&self.services.recorders.xferlog, self.user(), t.direction())
        {
            log.do_send(XferRecord {
                when: unix_now(),
                seconds: secs,
                remote: self.peer.remote.ip(),
                bytes,
                root: user.root.clone(),
                path: t.path.to_relative(),
                binary: !t.ascii,
                incoming: t.direction() == "upload",
                anonymous: user.anonymous,
                user: user.name.clone(),
                complete: result.is_ok(),
            });
        }
        if let (Some(hooks), Some(user), Ok(bytes), "upload") = (
            &self.services.recorders.upload_hooks,
            self.user(),
            &result,
            t.direction(),
        ) {
            // Exactly one event per completed upload (it is in place by now); none for one
            // that failed or was aborted.
            hooks.notify(crate::hooks::UploadEvent {
                event: "upload",
                path: user.root.join(t.path.to_relative()).display().to_string(),
                virtual_path: t.path.to_string(),
                user: user.name.clone(),
                size: *bytes,
                session: self.peer.id,
                remote: self.peer.remote.ip().to_string(),
                time: unix_now(),
            });
        }
        let reply = match &result {
            Ok(bytes) => {
                log::info!(
                    "[{}] {} {} ok: {bytes} bytes in {secs:.3} s ({})",
                    self.tag,
                    t.verb,
                    t.path,
                    rate(*bytes, secs)
                );
                Ok(Reply::new(
                    ReplyCode::ClosingDataConnection,
                    format!(
                        "Transfer complete: {bytes} bytes in {secs:.3} s ({})",
                        rate(*bytes, secs)
                    ),
                ))
            }
            Err(e) => {
                log::info!(
                    "[{}] {} {} failed after {} bytes: {e}",
                    self.tag,
                    t.verb,
                    t.path,
                    t.bytes
                );
                Err(FtpError::Transfer(e.clone()))
            }
        };
        self.respond(reply);
        if t.abort_requested {
            self.reply(ReplyCode::ClosingDataConnection, "ABOR command successful");
        }
        if self.closing {
            ctx.stop();
        } else if self.quit_after_transfer {
            self.close(ctx, Some(Reply::new(ReplyCode::ClosingControl, "Goodbye")));
        } else if self.shutting_down {
            self.close(ctx, Some(shutdown_reply()));
        }
    }
}
