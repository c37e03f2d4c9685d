//! actorftpd: a multi-client FTP server built on Actix actors.
#![forbid(unsafe_code)]

pub mod protocol;
