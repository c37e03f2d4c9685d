//! The one door to the file store: `Store`, the handle every Session asks.
//!
//! Each request goes by its jail's back-end, then by its type (`Request`): a root in object
//! storage to the ObjectStore; on the local disk, `Stat` and `OpenRead` to this worker's
//! Resolver, which answers from the kernel's caches when it can and asks the pool otherwise,
//! and everything else straight to the FileStore pool. Handlers just `ask`: which way a
//! request travels is decided here, once, not in every handler. This module holds no
//! file-system code.

use super::object::ObjectStore;
use super::{
    AsciiSize, FileDigest, FileStore, FinishUpload, HashFile, Jail, List, ListSelected, MakeDir,
    OpenJail, OpenRead, OpenWrite, ReadHandle, ReadSource, RemoveDir, RemoveFile, Rename, Resolver,
    SetAttributes, Stat, Upload,
};
use crate::error::StoreError;
use crate::listing::EntryInfo;
use actix::prelude::*;
use futures_util::future::Either;
use std::future::Future;

/// The file store as a Session sees it: the shared pool and its worker's Resolver for local
/// roots, the ObjectStore for roots in object storage.
#[derive(Clone)]
pub struct Store {
    pool: Addr<FileStore>,
    resolver: Addr<Resolver>,
    objects: Addr<ObjectStore>,
}

impl Store {
    /// Must run inside an actix System: the ObjectStore starts on the current Arbiter.
    pub fn new(pool: Addr<FileStore>, resolver: Addr<Resolver>) -> Store {
        Store {
            pool,
            resolver,
            objects: ObjectStore.start(),
        }
    }

    /// The same store, through another worker's Resolver (the one on the Session's thread).
    pub fn on_worker(&self, resolver: Addr<Resolver>) -> Store {
        Store {
            pool: self.pool.clone(),
            resolver,
            objects: self.objects.clone(),
        }
    }

    /// The FileStore pool itself (for starting Resolvers).
    pub fn pool(&self) -> &Addr<FileStore> {
        &self.pool
    }

    /// Sends `request` the way its type goes and waits for the answer. A store that is not
    /// running answers as an I/O error.
    pub fn ask<R: Request>(
        &self,
        request: R,
    ) -> impl Future<Output = Result<R::Answer, StoreError>> + 'static {
        let sent = request.send_to(self);
        async move { delivered(sent.await) }
    }
}

/// A request to the file store, and the way it goes.
pub trait Request:
    Message<Result = Result<Self::Answer, StoreError>> + Send + Sized + 'static
{
    type Answer: Send + 'static;
    /// The mailbox request of the actor that answers it.
    type Sent: Future<Output = Result<Result<Self::Answer, StoreError>, MailboxError>> + 'static;

    /// Sends this request to the actor that answers it.
    fn send_to(self, store: &Store) -> Self::Sent;
}

/// An answer from an actor's mailbox: a store that is gone answers as an I/O error.
pub(crate) fn delivered<T>(
    answer: Result<Result<T, StoreError>, MailboxError>,
) -> Result<T, StoreError> {
    answer.unwrap_or_else(|_| Err(StoreError::Io("file store is not running".into())))
}

/// The jail a request names: its back-end.
trait NamesJail {
    fn jail(&self) -> &Jail;
}

macro_rules! names_jail {
    ($($request:ty),+) => {$(
        impl NamesJail for $request {
            fn jail(&self) -> &Jail {
                &self.jail
            }
        }
    )+};
}

names_jail!(
    Stat,
    OpenRead,
    AsciiSize,
    List,
    OpenWrite,
    FinishUpload,
    MakeDir,
    RemoveDir,
    RemoveFile,
    Rename,
    SetAttributes,
    HashFile
);

impl NamesJail for ListSelected {
    fn jail(&self) -> &Jail {
        &self.list.jail
    }
}

/// Requests that name a jail go to the ObjectStore when it is a bucket, otherwise to the local
/// actor given (`$via`).
macro_rules! route {
    ($via:ident: $actor:ty, $($request:ty => $answer:ty),+ $(,)?) => {$(
        impl Request for $request {
            type Answer = $answer;
            type Sent = Either<
                actix::dev::Request<$actor, $request>,
                actix::dev::Request<ObjectStore, $request>,
            >;

            fn send_to(self, store: &Store) -> Self::Sent {
                if NamesJail::jail(&self).bucket().is_some() {
                    Either::Right(store.objects.send(self))
                } else {
                    Either::Left(store.$via.send(self))
                }
            }
        }
    )+};
}

// The commonest requests, which the kernel's caches usually answer on the Session's thread.
route!(resolver: Resolver, Stat => EntryInfo, OpenRead => ReadHandle);
// Everything that changes the disk, reads a directory or opens for writing: the pool.
route!(pool: FileStore,
    AsciiSize => Option<u64>,
    List => ReadSource,
    OpenWrite => Upload,
    FinishUpload => (),
    MakeDir => (),
    RemoveDir => (),
    RemoveFile => (),
    Rename => (),
    ListSelected => ReadSource,
    SetAttributes => EntryInfo,
    HashFile => FileDigest,
);

/// Opening a local root at login (a root in object storage is opened at start-up).
impl Request for OpenJail {
    type Answer = Jail;
    type Sent = actix::dev::Request<FileStore, OpenJail>;

    fn send_to(self, store: &Store) -> Self::Sent {
        store.pool.send(self)
    }
}
