//! The FileStore's handlers that change the disk: uploads (opened under a temporary name and
//! renamed into place, or removed), MKD, RMD, DELE and RNFR/RNTO. Every path relative to the
//! jail; no overwrite without the permission, even of a file that appeared meanwhile.

use super::messages::{
    FinishUpload, MakeDir, OpenWrite, RemoveDir, RemoveFile, Rename, Upload, UploadSink,
    UploadTarget, WriteMode,
};
use super::vpath::{is_temp_name, VirtualPath};
use super::{dispose_later, hold_if_large, visible, vpath, FileStore};
use crate::error::StoreError;
use actix::prelude::*;
use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use std::ffi::OsStr;
use std::io::{self, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// SECURITY: nor can a client create a file or directory under such a name (one that a
/// running upload would collide with, or that the start-up sweep would remove).
pub(super) fn creatable(path: &VirtualPath) -> Result<(), StoreError> {
    if path.names_temp() {
        Err(StoreError::InvalidName)
    } else {
        Ok(())
    }
}

/// The root itself is refused as a target of destructive calls.
pub(super) fn non_root(path: &VirtualPath) -> Result<PathBuf, StoreError> {
    if path.is_root() {
        Err(StoreError::PermissionDenied)
    } else {
        Ok(path.to_relative())
    }
}

/// A fresh temporary name in the same directory as `dest`, so the final rename is atomic.
pub(super) fn temp_name_for(dest: &Path) -> Result<PathBuf, StoreError> {
    let mut rnd = [0u8; 8];
    getrandom::getrandom(&mut rnd).map_err(|e| StoreError::Io(e.to_string()))?;
    let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    let name = format!("{}{hex}{}", vpath::TEMP_PREFIX, vpath::TEMP_SUFFIX);
    debug_assert!(is_temp_name(&name));
    Ok(match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.join(name),
        _ => PathBuf::from(name),
    })
}

impl Handler<OpenWrite> for FileStore {
    type Result = Result<Upload, StoreError>;

    fn handle(&mut self, msg: OpenWrite, ctx: &mut SyncContext<Self>) -> Self::Result {
        creatable(&msg.path)?;
        let dir = msg.jail.dir()?;
        let dest = non_root(&msg.path)?;
        let allow_overwrite = match msg.mode {
            WriteMode::Replace { allow_overwrite } => allow_overwrite,
            // In-place writes need the overwrite permission to be asked for at all.
            WriteMode::Append | WriteMode::At(_) => true,
        };
        let existing_len = match dir.metadata(&dest) {
            Ok(m) if m.is_dir() => return Err(StoreError::IsADirectory),
            Ok(m) => {
                // An early answer; `FinishUpload` enforces it again at the rename.
                if !allow_overwrite {
                    return Err(StoreError::PermissionDenied);
                }
                m.len()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        // RFC 3659 §5.5: a restart offset past the end is refused before anything is created.
        if let WriteMode::At(offset) = msg.mode {
            if offset > existing_len {
                return Err(StoreError::BadOffset);
            }
        }
        let mut opts = OpenOptions::new();
        opts.write(true).mode(0o644);
        match msg.mode {
            WriteMode::Replace { .. } => {
                let (parent, name) = split_last(&dest)?;
                let folder = std::sync::Arc::new(dir.open_dir(parent)?);
                let dest = PathBuf::from(name);
                let temp = temp_name_for(&dest)?;
                opts.create_new(true);
                let file = folder.open_with(&temp, &opts)?.into_std();
                // The lock lives as long as the upload's file handle (the DataChannel's): the
                // start-up sweep of another daemon on this root leaves a locked file alone.
                // Without lock support on this file system the sweep leaves it alone as well.
                if let Err(e) =
                    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                {
                    log::debug!("upload temporary file not locked: {e}");
                }
                Ok(Upload {
                    sink: UploadSink::File(file),
                    target: UploadTarget {
                        temp: Some(temp),
                        dest,
                        allow_overwrite,
                        abandon: Some((ctx.address(), msg.jail.clone())),
                        folder: Some(folder),
                        object: None,
                    },
                })
            }
            WriteMode::Append => {
                opts.create(true).append(true);
                let file = dir.open_with(&dest, &opts)?.into_std();
                Ok(Upload {
                    sink: UploadSink::File(file),
                    target: UploadTarget::in_place(dest),
                })
            }
            WriteMode::At(offset) => {
                opts.create(true);
                let mut file = dir.open_with(&dest, &opts)?.into_std();
                let len = file.metadata().map_err(StoreError::from)?.len();
                if offset > len {
                    return Err(StoreError::BadOffset);
                }
                file.seek(SeekFrom::Start(offset))
                    .map_err(StoreError::from)?;
                Ok(Upload {
                    sink: UploadSink::File(file),
                    target: UploadTarget::in_place(dest),
                })
            }
        }
    }
}

impl Handler<FinishUpload> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: FinishUpload, ctx: &mut SyncContext<Self>) -> Self::Result {
        let FinishUpload {
            jail,
            mut target,
            keep,
        } = msg;
        // Finished here, whatever the outcome: its drop has nothing left to do.
        target.abandon = None;
        let replaced = finish_upload(jail.dir()?, &target, keep)?;
        dispose_later(ctx, replaced);
        Ok(())
    }
}

/// `FinishUpload` in the pool. Whatever happens, the temporary file is gone afterwards: renamed
/// into place, or removed. Returns the replaced file's handle when it should be freed later.
pub(super) fn finish_upload(
    dir: &Dir,
    target: &UploadTarget,
    keep: bool,
) -> Result<Option<std::fs::File>, StoreError> {
    let Some(temp) = &target.temp else {
        // In-place uploads (APPE, REST+STOR) keep what was written either way.
        return Ok(None);
    };
    let dir = target.folder.as_deref().unwrap_or(dir);
    if !keep {
        dir.remove_file(temp)?;
        return Ok(None);
    }
    let result = if target.allow_overwrite {
        let replaced = dir
            .symlink_metadata(&target.dest)
            .ok()
            .and_then(|meta| hold_if_large(dir, &target.dest, &meta));
        dir.rename(temp, dir, &target.dest)
            .map(|()| replaced)
            .map_err(StoreError::from)
    } else {
        // SECURITY: without the overwrite permission the rename itself refuses to replace: a
        // file stored under this name since the upload began (by another session, say) stays.
        rename_noreplace(dir, temp, &target.dest).map(|()| None)
    };
    if result.is_err() {
        let _ = dir.remove_file(temp);
    }
    result
}

/// Splits a root-relative path into its parent (`.` for the root) and its last component.
/// SECURITY: VirtualPath makes only plain components; anything else (`..`, `.`, `/`) is
/// refused here rather than handed to a system call that would not confine it.
pub(super) fn split_last(rel: &Path) -> Result<(&Path, &OsStr), StoreError> {
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(StoreError::InvalidName);
    }
    let Some(Component::Normal(name)) = rel.components().next_back() else {
        return Err(StoreError::InvalidName);
    };
    let parent = match rel.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((parent, name))
}

/// Renames `from` to `to` (both relative to the root) only if `to` does not exist, atomically:
/// `AlreadyExists` if it does, whenever it appeared.
///
/// SECURITY: `renameat2` is given directory handles that cap-std opened beneath the root and a
/// single final component each, so no symlink in an intermediate component is followed outside
/// (a multi-component path handed to the system call directly would not be confined).
pub(super) fn rename_noreplace(dir: &Dir, from: &Path, to: &Path) -> Result<(), StoreError> {
    use rustix::fs::{renameat_with, RenameFlags};
    use rustix::io::Errno;
    let (from_parent, from_name) = split_last(from)?;
    let (to_parent, to_name) = split_last(to)?;
    let from_dir = dir.open_dir(from_parent)?;
    let to_dir = if to_parent == from_parent {
        None
    } else {
        Some(dir.open_dir(to_parent)?)
    };
    let to_dir = to_dir.as_ref().unwrap_or(&from_dir);
    match renameat_with(
        &from_dir,
        from_name,
        to_dir,
        to_name,
        RenameFlags::NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(StoreError::AlreadyExists),
        // A file system without RENAME_NOREPLACE (EINVAL; some return ENOSYS or EOPNOTSUPP).
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
            link_then_unlink(&from_dir, from_name, to_dir, to_name)
        }
        Err(e) => Err(io::Error::from(e).into()),
    }
}

/// The fallback for `rename_noreplace`: a hard link fails if the new name exists, whenever it
/// appeared; then the old name goes. A directory cannot be hard-linked: it is refused
/// (`InvalidName`) rather than renamed with a check that could race.
pub(super) fn link_then_unlink(
    from_dir: &Dir,
    from_name: &OsStr,
    to_dir: &Dir,
    to_name: &OsStr,
) -> Result<(), StoreError> {
    if from_dir.symlink_metadata(from_name)?.is_dir() {
        return Err(StoreError::InvalidName);
    }
    from_dir.hard_link(from_name, to_dir, to_name)?;
    from_dir.remove_file(from_name)?;
    Ok(())
}

impl Handler<MakeDir> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: MakeDir, _: &mut SyncContext<Self>) -> Self::Result {
        creatable(&msg.path)?;
        Ok(msg.jail.dir()?.create_dir(non_root(&msg.path)?)?)
    }
}

impl Handler<RemoveDir> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: RemoveDir, _: &mut SyncContext<Self>) -> Self::Result {
        visible(&msg.path)?;
        Ok(msg.jail.dir()?.remove_dir(non_root(&msg.path)?)?)
    }
}

impl Handler<RemoveFile> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: RemoveFile, ctx: &mut SyncContext<Self>) -> Self::Result {
        visible(&msg.path)?;
        let dir = msg.jail.dir()?;
        let rel = non_root(&msg.path)?;
        let meta = dir.symlink_metadata(&rel)?;
        if meta.is_dir() {
            return Err(StoreError::IsADirectory);
        }
        let removed = hold_if_large(dir, &rel, &meta);
        dir.remove_file(rel)?;
        dispose_later(ctx, removed);
        Ok(())
    }
}

impl Handler<Rename> for FileStore {
    type Result = Result<(), StoreError>;

    fn handle(&mut self, msg: Rename, ctx: &mut SyncContext<Self>) -> Self::Result {
        visible(&msg.from)?;
        creatable(&msg.to)?;
        let dir = msg.jail.dir()?;
        let from = non_root(&msg.from)?;
        let to = non_root(&msg.to)?;
        dir.symlink_metadata(&from)?;
        let existing = dir.symlink_metadata(&to).ok();
        if !msg.allow_overwrite {
            // The early answer for the common case; the rename itself is the guarantee.
            if existing.is_some() {
                return Err(StoreError::AlreadyExists);
            }
            return rename_noreplace(dir, &from, &to);
        }
        let replaced = existing.and_then(|meta| hold_if_large(dir, &to, &meta));
        dir.rename(from, dir, to)?;
        dispose_later(ctx, replaced);
        Ok(())
    }
}
