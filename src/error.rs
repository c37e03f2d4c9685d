//! Typed errors per boundary, and the one table from failure to FTP reply.
//!
//! Replies never carry OS error text or real paths: those go to the log. `FtpError::reply`
//! is the only place a failure becomes a reply code.

use crate::data_channel::TransferError;
use crate::protocol::{ParseError, Reply, ReplyCode};
use std::fmt;
use std::io;

/// What went wrong in the FileStore (the file system behind the jail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    NotFound,
    /// Includes every attempt to leave the jail through a symlink.
    PermissionDenied,
    NotADirectory,
    IsADirectory,
    AlreadyExists,
    NotEmpty,
    InvalidName,
    NoSpace,
    /// A REST offset past the end of the file.
    BadOffset,
    /// A request the store's policy refuses (too many glob matches, a file too large to hash):
    /// 550 with this text, which must not carry paths or OS text.
    Refused(&'static str),
    /// The store is busy with this kind of request; try again later: 450 with this text.
    Busy(&'static str),
    /// Anything else; the text is for the log only.
    Io(String),
    /// The storage back-end (object storage) is unreachable, timing out or throttling after
    /// retries; the text is ours, safe to show the client.
    Unavailable(String),
    /// Something this back-end cannot do (renaming a non-empty folder on object storage); the
    /// text says what, for the client.
    Unsupported(&'static str),
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> StoreError {
        // Linux errno values for the cases io::ErrorKind does not name on our MSRV.
        match e.raw_os_error() {
            Some(20) => return StoreError::NotADirectory,
            Some(21) => return StoreError::IsADirectory,
            Some(28) | Some(122) => return StoreError::NoSpace,
            Some(36) | Some(22) => return StoreError::InvalidName,
            Some(39) => return StoreError::NotEmpty,
            // ELOOP: a symlink loop, or O_NOFOLLOW met a link.
            Some(40) => return StoreError::PermissionDenied,
            _ => {}
        }
        match e.kind() {
            io::ErrorKind::NotFound => StoreError::NotFound,
            io::ErrorKind::PermissionDenied => StoreError::PermissionDenied,
            io::ErrorKind::AlreadyExists => StoreError::AlreadyExists,
            io::ErrorKind::InvalidInput => StoreError::InvalidName,
            _ => StoreError::Io(e.to_string()),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreError::NotFound => "No such file or directory",
            StoreError::PermissionDenied => "Permission denied",
            StoreError::NotADirectory => "Not a directory",
            StoreError::IsADirectory => "Is a directory",
            StoreError::AlreadyExists => "File exists",
            StoreError::NotEmpty => "Directory not empty",
            StoreError::InvalidName => "File name not allowed",
            StoreError::NoSpace => "Insufficient storage space",
            StoreError::BadOffset => "Restart offset is past the end of the file",
            StoreError::Refused(why) | StoreError::Busy(why) => why,
            StoreError::Io(_) => "Local error in processing",
            StoreError::Unavailable(why) => return write!(f, "Storage unavailable: {why}"),
            StoreError::Unsupported(what) => return write!(f, "{what}"),
        })
    }
}

impl StoreError {
    /// For the log (never a reply): the reply's words, with the OS's own text for `Io`.
    pub fn log_text(&self) -> String {
        match self {
            StoreError::Io(detail) => format!("{self}: {detail}"),
            other => other.to_string(),
        }
    }
}

/// For the log (never a reply): what happened to a transfer, with the detail the reply leaves
/// out (the OS's text, the TLS alert), in words rather than as the enum's debug form.
impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::NoConnection(why) => write!(f, "no data connection: {why}"),
            TransferError::TlsHandshake(why) => write!(f, "data connection TLS handshake: {why}"),
            TransferError::TlsNotResumed => {
                f.write_str("data connection did not resume the control connection's TLS session")
            }
            TransferError::Aborted => f.write_str("aborted"),
            TransferError::ConnectionLost(why) => write!(f, "data connection lost: {why}"),
            TransferError::Stalled => f.write_str("data connection stalled"),
            TransferError::NoSpace => f.write_str("no space left on the device"),
            TransferError::LocalIo(why) => write!(f, "local I/O error: {why}"),
            TransferError::NameTaken => {
                f.write_str("the name was taken while the upload ran; upload discarded")
            }
        }
    }
}

/// Every failure a command handler can end in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FtpError {
    Parse(ParseError),
    Store(StoreError),
    /// Before login, or login failed.
    NotLoggedIn(&'static str),
    /// Commands out of order (PASS before USER, RNTO before RNFR).
    BadSequence(&'static str),
    /// A valid command we do not offer.
    NotImplemented(&'static str),
    /// The user's permissions do not allow this.
    Forbidden,
    /// No data connection set up, or it could not be opened.
    NoDataConnection(&'static str),
    /// A transfer that did not complete.
    Transfer(TransferError),
    /// Data connections must be protected (PROT P) under the TLS policy.
    ProtectionRequired,
    /// A server-side failure that is not the client's fault (a stopped actor, a join error).
    Internal,
}

impl From<StoreError> for FtpError {
    fn from(e: StoreError) -> FtpError {
        FtpError::Store(e)
    }
}

impl From<ParseError> for FtpError {
    fn from(e: ParseError) -> FtpError {
        FtpError::Parse(e)
    }
}

impl FtpError {
    /// The one table from failure to reply (RFC 959 §4.2, §5.4).
    pub fn reply(&self) -> Reply {
        use ReplyCode::*;
        let (code, text): (ReplyCode, String) = match self {
            FtpError::Parse(p) => (
                match p {
                    ParseError::UnknownCommand(_)
                    | ParseError::LineTooLong
                    | ParseError::LineTooLongContinues => SyntaxError,
                    ParseError::NotUtf8
                    | ParseError::MissingArgument(_)
                    | ParseError::BadArgument(..) => ArgumentSyntaxError,
                    ParseError::UnsupportedParameter(_) => ParameterNotImplemented,
                    ParseError::UnsupportedNetworkProtocol => NetworkProtocolNotSupported,
                },
                p.to_string(),
            ),
            FtpError::Store(s) => (
                match s {
                    StoreError::InvalidName => BadFileName,
                    StoreError::NoSpace => InsufficientStorage,
                    // RFC 3659 §5.5 (and RFC 1123 §4.1.3.4): an unusable REST offset is 554.
                    StoreError::BadOffset => InvalidRestParameter,
                    StoreError::Io(_) | StoreError::Unavailable(_) => LocalError,
                    StoreError::Busy(_) => FileUnavailableBusy,
                    _ => FileUnavailable,
                },
                s.to_string(),
            ),
            FtpError::NotLoggedIn(why) => (NotLoggedIn, (*why).to_owned()),
            FtpError::BadSequence(why) => (BadSequence, (*why).to_owned()),
            FtpError::NotImplemented(what) => (NotImplemented, format!("{what} not implemented")),
            FtpError::Forbidden => (FileUnavailable, "Permission denied".to_owned()),
            FtpError::NoDataConnection(why) => (CantOpenDataConnection, (*why).to_owned()),
            FtpError::Transfer(t) => match t {
                TransferError::NoConnection(_) => (
                    CantOpenDataConnection,
                    "Can't open data connection".to_owned(),
                ),
                TransferError::TlsNotResumed => (
                    CantOpenDataConnection,
                    "Can't open data connection: it must resume the control connection's TLS \
                     session (this server requires TLS session reuse)"
                        .to_owned(),
                ),
                TransferError::TlsHandshake(_) => (
                    CantOpenDataConnection,
                    "Can't open data connection: TLS handshake failed or not completed in time"
                        .to_owned(),
                ),
                TransferError::Aborted => (TransferAborted, "Transfer aborted".to_owned()),
                TransferError::ConnectionLost(_) => (
                    TransferAborted,
                    "Data connection closed; transfer aborted".to_owned(),
                ),
                TransferError::Stalled => (
                    TransferAborted,
                    "Data connection stalled; transfer aborted".to_owned(),
                ),
                TransferError::NoSpace => {
                    (InsufficientStorage, "Insufficient storage space".to_owned())
                }
                TransferError::LocalIo(_) => (LocalError, "Local error in processing".to_owned()),
                TransferError::NameTaken => (
                    BadFileName,
                    "File exists (stored meanwhile); not replaced".to_owned(),
                ),
            },
            FtpError::ProtectionRequired => (
                DataProtectionRequired,
                "Data connections must be protected: send PBSZ 0 and PROT P".to_owned(),
            ),
            FtpError::Internal => (LocalError, "Local error in processing".to_owned()),
        };
        Reply::new(code, text)
    }
}

impl fmt::Display for FtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FtpError::Store(StoreError::Io(detail)) => write!(f, "I/O error: {detail}"),
            other => write!(f, "{}", other.reply()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_reply_code() {
        let cases: Vec<(FtpError, u16)> = vec![
            (FtpError::Parse(ParseError::UnknownCommand("X".into())), 500),
            (FtpError::Parse(ParseError::LineTooLong), 500),
            (FtpError::Parse(ParseError::MissingArgument("RETR")), 501),
            (FtpError::Parse(ParseError::NotUtf8), 501),
            (
                FtpError::Parse(ParseError::UnsupportedParameter("MODE")),
                504,
            ),
            (FtpError::Parse(ParseError::UnsupportedNetworkProtocol), 522),
            (FtpError::Store(StoreError::NotFound), 550),
            (FtpError::Store(StoreError::PermissionDenied), 550),
            (FtpError::Store(StoreError::InvalidName), 553),
            (FtpError::Store(StoreError::NoSpace), 452),
            (FtpError::Store(StoreError::BadOffset), 554),
            (FtpError::Store(StoreError::Refused("too many")), 550),
            (FtpError::Store(StoreError::Busy("busy")), 450),
            (FtpError::Store(StoreError::Io("disk on fire".into())), 451),
            (
                FtpError::Store(StoreError::Unavailable("no answer in time".into())),
                451,
            ),
            (FtpError::Store(StoreError::Unsupported("not here")), 550),
            (FtpError::NotLoggedIn("Please login"), 530),
            (FtpError::BadSequence("RNFR first"), 503),
            (FtpError::NotImplemented("SMNT"), 502),
            (FtpError::Forbidden, 550),
            (FtpError::NoDataConnection("PASV first"), 425),
            (
                FtpError::Transfer(TransferError::NoConnection("x".into())),
                425,
            ),
            (FtpError::Transfer(TransferError::Aborted), 426),
            (
                FtpError::Transfer(TransferError::ConnectionLost("reset".into())),
                426,
            ),
            (FtpError::Transfer(TransferError::Stalled), 426),
            (FtpError::Transfer(TransferError::NoSpace), 452),
            (FtpError::Transfer(TransferError::LocalIo("x".into())), 451),
            (FtpError::Transfer(TransferError::NameTaken), 553),
            (FtpError::Transfer(TransferError::TlsNotResumed), 425),
            (
                FtpError::Transfer(TransferError::TlsHandshake("x".into())),
                425,
            ),
            (FtpError::ProtectionRequired, 521),
            (FtpError::Internal, 451),
        ];
        for (err, code) in cases {
            assert_eq!(err.reply().code.as_u16(), code, "{err:?}");
        }
    }

    #[test]
    fn os_error_text_never_reaches_the_reply() {
        let err = FtpError::Store(StoreError::from(io::Error::other(
            "/secret/real/path: broken",
        )));
        assert!(!err.reply().text().contains("/secret"));
        assert!(
            err.to_string().contains("/secret"),
            "but the log line keeps it"
        );
    }

    #[test]
    fn io_errors_map_to_store_errors() {
        let cases = [
            (
                io::Error::from(io::ErrorKind::NotFound),
                StoreError::NotFound,
            ),
            (io::Error::from_raw_os_error(39), StoreError::NotEmpty),
            (io::Error::from_raw_os_error(20), StoreError::NotADirectory),
            (io::Error::from_raw_os_error(28), StoreError::NoSpace),
            (
                io::Error::from_raw_os_error(40),
                StoreError::PermissionDenied,
            ),
            (
                io::Error::from(io::ErrorKind::AlreadyExists),
                StoreError::AlreadyExists,
            ),
        ];
        for (io_err, want) in cases {
            assert_eq!(StoreError::from(io_err), want);
        }
    }
}
