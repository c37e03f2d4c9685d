//! Commands about one path, answered over the control connection: CWD/CDUP, SIZE, MDTM, DELE,
//! MKD, RMD, RNFR/RNTO, MLST and STAT of a path. Each asks the file store once and replies; none
//! opens a data connection.

use super::dispatch::{reply, Handled};
use super::transfer::unix_now;
use super::Session;
use crate::auth::Permissions;
use crate::error::{FtpError, StoreError};
use crate::file_store::{
    AsciiSize, Jail, List, ListFormat, MakeDir, ReadSource, RemoveDir, RemoveFile, Rename, Stat,
    VirtualPath, ASCII_SIZE_LIMIT,
};
use crate::listing::{mlsx_line, CivilTime, EntryKind, PermFact};
use crate::protocol::{quote_path, Reply, ReplyCode, TransferType};

impl Session {
    pub(super) fn cmd_pwd(&mut self) -> Handled {
        reply(
            ReplyCode::PathCreated,
            format!("{} is the current directory", quote_path(self.cwd.as_str())),
        )
    }

    /// The user's jail for a file command, if its permission allows it.
    pub(super) fn permitted_jail(
        &self,
        allowed: impl Fn(&Permissions) -> bool,
    ) -> Result<Jail, FtpError> {
        self.require(allowed)?;
        self.jail()
    }

    pub(super) fn cmd_cwd(&mut self, path: VirtualPath) -> Handled {
        // SECURITY: no permission needed: moving around is what an upload-only user does too,
        // and CWD tells only whether a folder exists, which STOR or MKD into it tells as well.
        // Everything that shows a file (its size, time, contents or a listing) needs `read`.
        let jail = self.permitted_jail(|_| true)?;
        self.ask(
            Stat {
                jail,
                path: path.clone(),
            },
            move |act, res, _| {
                let info = res?;
                if info.kind != EntryKind::Dir {
                    return Err(StoreError::NotADirectory.into());
                }
                let text = format!("Directory changed to {}", path);
                act.cwd = path;
                Ok(Reply::new(ReplyCode::FileActionOk, text))
            },
        )
    }

    pub(super) fn cmd_size(&mut self, path: VirtualPath) -> Handled {
        let jail = self.permitted_jail(|p| p.read)?;
        if self.transfer_type == TransferType::Ascii {
            // RFC 3659 §4: the size as transferred, counting the line endings TYPE A adds; the
            // pool scans the file (up to ASCII_SIZE_LIMIT) so that RETR's count agrees.
            return self.ask(AsciiSize { jail, path }, |_, res, _| match res? {
                Some(size) => Ok(Reply::new(ReplyCode::FileStatus, size.to_string())),
                None => Ok(Reply::new(
                    ReplyCode::FileUnavailable,
                    format!(
                        "SIZE in ASCII mode is given for files up to {} MiB; use TYPE I",
                        ASCII_SIZE_LIMIT / (1024 * 1024)
                    ),
                )),
            });
        }
        self.ask(Stat { jail, path }, |_, res, _| {
            let info = res?;
            if info.kind != EntryKind::File {
                return Err(FtpError::Store(StoreError::IsADirectory));
            }
            Ok(Reply::new(ReplyCode::FileStatus, info.size.to_string()))
        })
    }

    pub(super) fn cmd_mdtm(&mut self, path: VirtualPath) -> Handled {
        let jail = self.permitted_jail(|p| p.read)?;
        self.ask(Stat { jail, path }, |_, res, _| {
            let info = res?;
            if info.kind != EntryKind::File {
                return Err(FtpError::Store(StoreError::IsADirectory));
            }
            Ok(Reply::new(
                ReplyCode::FileStatus,
                CivilTime::from_unix(info.mtime).to_mdtm(),
            ))
        })
    }

    pub(super) fn cmd_dele(&mut self, path: VirtualPath) -> Handled {
        let jail = self.permitted_jail(|p| p.delete)?;
        self.ask(RemoveFile { jail, path }, |_, res, _| {
            res?;
            Ok(Reply::new(ReplyCode::FileActionOk, "File deleted"))
        })
    }

    pub(super) fn cmd_mkd(&mut self, path: VirtualPath) -> Handled {
        let jail = self.permitted_jail(|p| p.mkdir)?;
        self.ask(
            MakeDir {
                jail,
                path: path.clone(),
            },
            move |_, res, _| {
                res?;
                Ok(Reply::new(
                    ReplyCode::PathCreated,
                    format!("{} created", quote_path(path.as_str())),
                ))
            },
        )
    }

    pub(super) fn cmd_rmd(&mut self, path: VirtualPath) -> Handled {
        let jail = self.permitted_jail(|p| p.mkdir)?;
        self.ask(RemoveDir { jail, path }, |_, res, _| {
            res?;
            Ok(Reply::new(ReplyCode::FileActionOk, "Directory removed"))
        })
    }

    pub(super) fn cmd_rnfr(&mut self, path: VirtualPath) -> Handled {
        let jail = self.permitted_jail(|p| p.rename)?;
        self.ask(
            Stat {
                jail,
                path: path.clone(),
            },
            move |act, res, _| {
                res?;
                act.rename_from = Some(path);
                Ok(Reply::new(ReplyCode::FileActionPending, "Ready for RNTO"))
            },
        )
    }

    pub(super) fn cmd_rnto(&mut self, from: Option<VirtualPath>, to: VirtualPath) -> Handled {
        // RFC 959 §4.1.3: RNTO must immediately follow RNFR.
        let from = from.ok_or(FtpError::BadSequence("RNFR required first"))?;
        let jail = self.permitted_jail(|p| p.rename)?;
        let allow_overwrite = self.permissions().overwrite;
        self.ask(
            Rename {
                jail,
                from,
                to,
                allow_overwrite,
            },
            |_, res, _| {
                res?;
                Ok(Reply::new(ReplyCode::FileActionOk, "Rename successful"))
            },
        )
    }

    pub(super) fn perm_fact(&self) -> PermFact {
        let p = self.permissions();
        PermFact {
            read: p.read,
            write: p.upload && p.overwrite,
            delete: p.delete,
            rename: p.rename,
            mkdir: p.mkdir,
        }
    }

    /// MLST (RFC 3659 §7): facts of one path over the control connection.
    pub(super) fn cmd_mlst(&mut self, arg: Option<String>) -> Handled {
        let jail = self.permitted_jail(|p| p.read)?;
        let path = match &arg {
            Some(a) => self.cwd.join(a),
            None => self.cwd.clone(),
        };
        let (facts, perm) = (self.mlst_facts, self.perm_fact());
        self.ask(
            Stat {
                jail,
                path: path.clone(),
            },
            move |_, res, _| {
                let info = res?;
                let line = format!(" {}", mlsx_line(&info, facts, perm, path.as_str()));
                Ok(Reply::multi(
                    ReplyCode::FileActionOk,
                    vec![format!("Listing {path}"), line, "End".to_owned()],
                ))
            },
        )
    }

    /// STAT with a path (RFC 959 §4.1.3): the listing, over the control connection.
    pub(super) fn cmd_stat_path(&mut self, path: VirtualPath) -> Handled {
        let jail = self.permitted_jail(|p| p.read)?;
        let list = List {
            jail,
            path: path.clone(),
            format: ListFormat::Long,
            now: unix_now(),
        };
        self.ask(list, move |_, res, _| {
            let ReadSource::Bytes(body) = res? else {
                // A folder in object storage too large to list in one batch: not over the
                // control connection.
                return Err(FtpError::Store(StoreError::Unsupported(
                    "Folder too large to list over the control connection; use LIST",
                )));
            };
            let mut lines = vec![format!("Status of {path}:")];
            lines.extend(String::from_utf8_lossy(&body).lines().map(str::to_owned));
            lines.push("End of status".to_owned());
            Ok(Reply::multi(ReplyCode::FileStatus, lines))
        })
    }
}
