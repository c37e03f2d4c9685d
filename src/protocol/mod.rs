//! The FTP protocol, pure: bytes to `Command`, `Reply` to bytes.
//!
//! Nothing here knows about actix, sockets or the file system, so every rule can be
//! table-tested and fuzzed on its own.

pub mod codec;
pub mod command;
pub mod glob;
pub mod rawname;
pub mod reply;

pub use codec::{FtpCodec, MAX_LINE_LEN};
pub use command::{Command, EpsvArg, ParseError, TransferType};
pub use reply::{quote_path, Reply, ReplyCode};
