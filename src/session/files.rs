//! Commands about one path, answered over the control connection: CWD/CDUP, SIZE, MDTM, DELE,
//! MKD, RMD, RNFR/RNTO, MLST and STAT of a path; MFMT, MFF, SITE UTIME and SITE CHMOD (which
//! change a file's time or mode); HASH, RANG and the X-digests. Each asks the file store once
//! and replies; none opens a data connection. `list_selection` reads LIST/NLST arguments
//! (options, dotfiles, glob patterns) for transfer.rs.

use super::dispatch::{reply, Handled};
use super::transfer::unix_now;
use super::Session;
use crate::auth::Permissions;
use crate::error::{FtpError, StoreError};
use crate::file_store::{
    AsciiSize, HashFile, Jail, List, ListFormat, ListSelected, MakeDir, ReadSource, RemoveDir,
    RemoveFile, Rename, Selection, SetAttributes, Stat, VirtualPath, ASCII_SIZE_LIMIT,
};
use crate::listing::{mlsx_line, CivilTime, EntryInfo, EntryKind, PermFact};
use crate::protocol::command::{ByteRange, FactChanges, HashAlgo, ListArgs, Timestamp};
use crate::protocol::glob::{has_glob, MAX_PATTERN_LEN};
use crate::protocol::{quote_path, rawname, Reply, ReplyCode, TransferType};

/// What HASH uses (draft-bryan-ftpext-hash): the algorithm `OPTS HASH` chose, and the range the
/// last RANG set, which only the next command may use.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct HashState {
    pub(super) algo: HashAlgo,
    pub(super) range: Option<ByteRange>,
}

impl Session {
    pub(super) fn cmd_pwd(&mut self) -> Handled {
        reply(
            ReplyCode::PathCreated,
            format!("{} is the current directory", quote_path(&self.cwd.shown())),
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
                    format!("{} created", quote_path(&path.shown())),
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
                let line = format!(" {}", mlsx_line(&info, facts, perm, &path.shown()));
                Ok(Reply::multi(
                    ReplyCode::FileActionOk,
                    vec![format!("Listing {path}"), line, "End".to_owned()],
                ))
            },
        )
    }

    /// STAT with a path (RFC 959 §4.1.3): the listing, over the control connection, with the
    /// same options, dotfile rule and patterns as LIST.
    pub(super) fn cmd_stat_path(&mut self, arg: &str) -> Handled {
        let jail = self.permitted_jail(|p| p.read)?;
        let (arg, select) = self.list_selection(Some(arg));
        let path = match &arg {
            Some(a) => self.cwd.join(a),
            None => self.cwd.clone(),
        };
        let list = List {
            jail,
            path: path.clone(),
            format: ListFormat::Long,
            now: unix_now(),
        };
        self.ask(ListSelected { list, select }, move |_, res, _| {
            let ReadSource::Bytes(body) = res? else {
                // A folder in object storage too large to list in one batch: not over the
                // control connection.
                return Err(FtpError::Store(StoreError::Unsupported(
                    "Folder too large to list over the control connection; use LIST",
                )));
            };
            let mut lines = vec![format!("Status of {path}:")];
            // Replies stay UTF-8: a name that is not is shown with U+FFFD here.
            let text = rawname::decode(&body);
            lines.extend(rawname::shown(&text).lines().map(str::to_owned));
            lines.push("End of status".to_owned());
            Ok(Reply::multi(ReplyCode::FileStatus, lines))
        })
    }

    /// LIST, NLST and STAT arguments: the folder to list (`None`: the current one) and what to
    /// show of it. A glob in the last component (`*.txt`, `dir/file?.[ch]`) selects names in
    /// that folder; a pattern anywhere else is an ordinary name, so no pattern walks a tree.
    pub(super) fn list_selection(&self, arg: Option<&str>) -> (Option<String>, Selection) {
        let args = ListArgs::parse(arg);
        let show_hidden = args.all || self.services.config.show_dotfiles;
        let plain = |path| {
            (
                path,
                Selection {
                    show_hidden,
                    ..Selection::default()
                },
            )
        };
        let Some(path) = args.path else {
            return plain(None);
        };
        let last = path.rsplit('/').next().unwrap_or_default();
        // SECURITY: a pattern is bounded in length; the matcher's time is pattern x name.
        if last.len() > MAX_PATTERN_LEN || !has_glob(last) {
            return plain(Some(path));
        }
        let folder = &path[..path.len() - last.len()];
        let select = Selection {
            show_hidden,
            pattern: Some(last.to_owned()),
            prefix: (!folder.is_empty()).then(|| folder.to_owned()),
        };
        ((!folder.is_empty()).then(|| folder.to_owned()), select)
    }

    /// The jail for MFMT, MFF and SITE UTIME/CHMOD. A file's time is changed by whoever may
    /// replace the file; its mode only with the `chmod` permission, never by anonymous users.
    fn attribute_jail(&self, changes: FactChanges) -> Result<Jail, FtpError> {
        // SECURITY: the permission checks of every command that changes a file's metadata.
        let anonymous = self.user().is_some_and(|u| u.anonymous);
        self.permitted_jail(|p| {
            (changes.modify.is_none() || p.overwrite)
                && (changes.mode.is_none() || (p.chmod && !anonymous))
        })
    }

    /// MFMT (draft-somers-ftp-mfxx §3): `213 Modify=<time>; <path>`, the time as it now is.
    pub(super) fn cmd_mfmt(&mut self, time: Timestamp, path: VirtualPath) -> Handled {
        let changes = FactChanges {
            modify: Some(time),
            mode: None,
        };
        self.set_attributes(changes, path, |info, path| {
            Reply::new(
                ReplyCode::FileStatus,
                format!(
                    "Modify={}; {path}",
                    CivilTime::from_unix(info.mtime).to_mdtm()
                ),
            )
        })
    }

    /// MFF (draft-somers-ftp-mfxx §4): `213 <facts set>; <path>`.
    pub(super) fn cmd_mff(&mut self, changes: FactChanges, path: VirtualPath) -> Handled {
        self.set_attributes(changes, path, move |info, path| {
            let mut facts = String::new();
            if changes.modify.is_some() {
                let time = CivilTime::from_unix(info.mtime).to_mdtm();
                facts.push_str(&format!("modify={time};"));
            }
            if changes.mode.is_some() {
                facts.push_str(&format!("UNIX.mode=0{:o};", info.mode & 0o777));
            }
            Reply::new(ReplyCode::FileStatus, format!("{facts} {path}"))
        })
    }

    /// SITE UTIME: the modification time, answered 200 as ProFTPD does.
    pub(super) fn cmd_site_utime(&mut self, time: Timestamp, path: VirtualPath) -> Handled {
        let changes = FactChanges {
            modify: Some(time),
            mode: None,
        };
        self.set_attributes(changes, path, |_, _| {
            Reply::new(ReplyCode::CommandOk, "SITE UTIME command successful")
        })
    }

    /// SITE CHMOD: permission bits only (the parser refused the rest).
    pub(super) fn cmd_site_chmod(&mut self, mode: u32, path: VirtualPath) -> Handled {
        let changes = FactChanges {
            modify: None,
            mode: Some(mode),
        };
        self.set_attributes(changes, path, |_, _| {
            Reply::new(ReplyCode::CommandOk, "SITE CHMOD command successful")
        })
    }

    fn set_attributes(
        &mut self,
        changes: FactChanges,
        path: VirtualPath,
        answer: impl FnOnce(&EntryInfo, &VirtualPath) -> Reply + 'static,
    ) -> Handled {
        let jail = self.attribute_jail(changes)?;
        let request = SetAttributes {
            jail,
            path: path.clone(),
            modified: changes.modify,
            mode: changes.mode,
        };
        self.ask(request, move |_, res, _| Ok(answer(&res?, &path)))
    }

    /// RANG (draft-bryan-ftpext-hash §3.2): the range of the next HASH.
    pub(super) fn cmd_rang(&mut self, range: Option<ByteRange>) -> Handled {
        self.hashing.range = range;
        match range {
            Some(r) => reply(
                ReplyCode::FileActionPending,
                format!(
                    "Restarting at {}. Ending byte at {}",
                    r.start,
                    r.end.unwrap_or(0)
                ),
            ),
            None => reply(ReplyCode::FileActionPending, "Byte range cleared"),
        }
    }

    /// HASH (draft-bryan-ftpext-hash §3): `213 <algorithm> <start>-<end> <hex> <path>`, over the
    /// range RANG set (given here) or the whole file. The same permission as RETR.
    pub(super) fn cmd_hash(&mut self, path: VirtualPath, range: Option<ByteRange>) -> Handled {
        let algo = self.hashing.algo;
        let range = range.unwrap_or_default();
        self.digest(path, algo, range, move |d, path| {
            Reply::new(
                ReplyCode::FileStatus,
                format!("{} {}-{} {} {path}", algo.name(), d.start, d.end, d.hex),
            )
        })
    }

    /// XCRC, XMD5, XSHA1, XSHA256: `250 <hex>`, as ProFTPD's mod_digest answers (CRC in
    /// upper case, as the clients that send XCRC print it).
    pub(super) fn cmd_x_hash(
        &mut self,
        algo: HashAlgo,
        path: VirtualPath,
        range: ByteRange,
    ) -> Handled {
        self.digest(path, algo, range, move |d, _| {
            let hex = match algo {
                HashAlgo::Crc32 => d.hex.to_ascii_uppercase(),
                _ => d.hex.clone(),
            };
            Reply::new(ReplyCode::FileActionOk, hex)
        })
    }

    fn digest(
        &mut self,
        path: VirtualPath,
        algo: HashAlgo,
        range: ByteRange,
        answer: impl FnOnce(&crate::file_store::FileDigest, &VirtualPath) -> Reply + 'static,
    ) -> Handled {
        let jail = self.permitted_jail(|p| p.read)?;
        let request = HashFile {
            jail,
            path: path.clone(),
            algo,
            range,
        };
        self.ask(request, move |_, res, _| Ok(answer(&res?, &path)))
    }
}
