//! The typed `Command` enum and its parser.
//!
//! A control line is parsed completely into a `Command` before anything runs, so the
//! Session never sees raw text. Parsing is pure: it never touches the file system or a
//! socket, and it never panics on any input (see the table tests below and the fuzz target).

mod extensions;

pub use extensions::{
    parse_site, parse_time_val, ByteRange, FactChanges, HashAlgo, ListArgs, SiteCommand, Timestamp,
};

use super::rawname;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// TYPE argument (RFC 959 §3.1.1). Only the two types real clients use are supported;
/// `TYPE A N` and `TYPE L 8` are accepted as their equivalents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferType {
    Ascii,
    Image,
}

/// Which address family EPSV may be asked for (RFC 2428 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsvArg {
    /// Plain `EPSV`: the family of the control connection.
    Any,
    /// `EPSV 1` or `EPSV 2`.
    Protocol(u8),
    /// `EPSV ALL`: from now on only EPSV may set up data connections.
    All,
}

/// A fully parsed FTP command. Variants are the RFC verbs; X-prefixed aliases
/// (XPWD, XCWD, ...) map to the same variant.
///
/// Arguments that name an existing file are decoded losslessly (`rawname`): a name that is not
/// UTF-8, as a listing showed it, can be sent back. Arguments that create a name (STOR, APPE,
/// MKD, RNTO) must have a UTF-8 last component; every other argument must be UTF-8.
#[derive(Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(String),
    Acct(String),
    Quit,
    Rein,
    Noop,
    Syst,
    Feat,
    Help(Option<String>),
    /// `OPTS name [value]`: name upper-cased, value as given.
    Opts(String, Option<String>),
    Pwd,
    Cwd(String),
    Cdup,
    Type(TransferType),
    Mode(char),
    Stru(char),
    Pasv,
    Epsv(EpsvArg),
    Port(SocketAddr),
    Eprt(SocketAddr),
    /// LIST with its argument as sent: `ls` options and a path or pattern (`ListArgs::parse`).
    List(Option<String>),
    Nlst(Option<String>),
    Mlsd(Option<String>),
    Mlst(Option<String>),
    Retr(String),
    Stor(String),
    Appe(String),
    Stou,
    Rest(u64),
    Dele(String),
    Mkd(String),
    Rmd(String),
    Rnfr(String),
    Rnto(String),
    Size(String),
    Mdtm(String),
    /// MFMT (draft-somers-ftp-mfxx): set a file's modification time.
    Mfmt(Timestamp, String),
    /// MFF: set the facts that map onto this file system (`modify`, `UNIX.mode`).
    Mff(FactChanges, String),
    /// HASH (draft-bryan-ftpext-hash): the selected algorithm over the RANG range.
    Hash(String),
    /// RANG: the byte range for the next HASH; `None` clears it (`RANG 1 0`).
    Rang(Option<ByteRange>),
    /// XCRC, XMD5, XSHA1 (and XSHA), XSHA256: one algorithm, optional offsets.
    XHash(HashAlgo, String, ByteRange),
    Allo,
    Abor,
    Stat(Option<String>),
    Site(String),
    Smnt(String),
    Auth(String),
    Pbsz(String),
    Prot(String),
    Ccc,
}

impl fmt::Debug for Command {
    /// SECURITY: the password never reaches a log line, even at trace level.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Pass(_) => f.write_str("Pass(****)"),
            other => fmt::Display::fmt(other, f),
        }
    }
}

impl fmt::Display for Command {
    /// The command as a log line shows it: verb and argument, the password masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = self.verb();
        let arg: Option<String> = match self {
            Command::Pass(_) => Some("****".into()),
            Command::User(a)
            | Command::Acct(a)
            | Command::Cwd(a)
            | Command::Retr(a)
            | Command::Stor(a)
            | Command::Appe(a)
            | Command::Dele(a)
            | Command::Mkd(a)
            | Command::Rmd(a)
            | Command::Rnfr(a)
            | Command::Rnto(a)
            | Command::Size(a)
            | Command::Mdtm(a)
            | Command::Hash(a)
            | Command::Site(a)
            | Command::Smnt(a)
            | Command::Auth(a)
            | Command::Pbsz(a)
            | Command::Prot(a) => Some(a.clone()),
            Command::Help(a)
            | Command::List(a)
            | Command::Nlst(a)
            | Command::Mlsd(a)
            | Command::Mlst(a)
            | Command::Stat(a) => a.clone(),
            Command::Opts(n, v) => Some(match v {
                Some(v) => format!("{n} {v}"),
                None => n.clone(),
            }),
            Command::Type(t) => Some(match t {
                TransferType::Ascii => "A".into(),
                TransferType::Image => "I".into(),
            }),
            Command::Mode(c) | Command::Stru(c) => Some(c.to_string()),
            Command::Epsv(EpsvArg::Any) => None,
            Command::Epsv(EpsvArg::All) => Some("ALL".into()),
            Command::Epsv(EpsvArg::Protocol(p)) => Some(p.to_string()),
            Command::Port(a) | Command::Eprt(a) => Some(a.to_string()),
            Command::Rest(n) => Some(n.to_string()),
            Command::Mfmt(t, a) => Some(format!("{} {a}", t.secs)),
            Command::Mff(_, a) => Some(format!("(facts) {a}")),
            Command::Rang(Some(r)) => Some(format!("{} {}", r.start, r.end.unwrap_or(0))),
            Command::Rang(None) => Some("1 0".into()),
            Command::XHash(_, a, r) => Some(match r.end {
                Some(e) => format!("{a} {} {e}", r.start),
                None if r.start > 0 => format!("{a} {}", r.start),
                None => a.clone(),
            }),
            _ => None,
        };
        match arg {
            Some(a) => write!(f, "{verb} {a}"),
            None => f.write_str(verb),
        }
    }
}

impl Command {
    /// The canonical verb, as FEAT/HELP and the logs name it.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Acct(_) => "ACCT",
            Command::Quit => "QUIT",
            Command::Rein => "REIN",
            Command::Noop => "NOOP",
            Command::Syst => "SYST",
            Command::Feat => "FEAT",
            Command::Help(_) => "HELP",
            Command::Opts(..) => "OPTS",
            Command::Pwd => "PWD",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Type(_) => "TYPE",
            Command::Mode(_) => "MODE",
            Command::Stru(_) => "STRU",
            Command::Pasv => "PASV",
            Command::Epsv(_) => "EPSV",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Mlsd(_) => "MLSD",
            Command::Mlst(_) => "MLST",
            Command::Retr(_) => "RETR",
            Command::Stor(_) => "STOR",
            Command::Appe(_) => "APPE",
            Command::Stou => "STOU",
            Command::Rest(_) => "REST",
            Command::Dele(_) => "DELE",
            Command::Mkd(_) => "MKD",
            Command::Rmd(_) => "RMD",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::Mfmt(..) => "MFMT",
            Command::Mff(..) => "MFF",
            Command::Hash(_) => "HASH",
            Command::Rang(_) => "RANG",
            Command::XHash(HashAlgo::Crc32, ..) => "XCRC",
            Command::XHash(HashAlgo::Md5, ..) => "XMD5",
            Command::XHash(HashAlgo::Sha1, ..) => "XSHA1",
            Command::XHash(HashAlgo::Sha256, ..) => "XSHA256",
            Command::Allo => "ALLO",
            Command::Abor => "ABOR",
            Command::Stat(_) => "STAT",
            Command::Site(_) => "SITE",
            Command::Smnt(_) => "SMNT",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Ccc => "CCC",
        }
    }
}

/// Why a line is not a command we can run. Each maps to one reply code
/// (see `error::FtpError::reply`): the session answers and carries on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// An empty line or a verb we do not know: 500.
    UnknownCommand(String),
    /// A line longer than the codec's maximum: 500; repeated, the session is closed.
    LineTooLong,
    /// The same over-long line goes on (another `codec::DISCARD_REPORT` bytes dropped):
    /// counted against the session, not answered.
    LineTooLongContinues,
    /// The argument is not UTF-8 (RFC 2640 names are UTF-8): 501.
    NotUtf8,
    /// The verb needs an argument and none was given: 501.
    MissingArgument(&'static str),
    /// The argument is malformed: 501.
    BadArgument(&'static str, &'static str),
    /// A valid parameter we do not implement (TYPE E, MODE B, STRU R): 504.
    UnsupportedParameter(&'static str),
    /// EPRT with a network protocol other than 1 (IPv4) or 2 (IPv6): 522 (RFC 2428 §2).
    UnsupportedNetworkProtocol,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::UnknownCommand(v) if v.is_empty() => f.write_str("Empty command line"),
            ParseError::UnknownCommand(v) => write!(f, "Unknown command {v}"),
            ParseError::LineTooLong | ParseError::LineTooLongContinues => {
                f.write_str("Command line too long")
            }
            ParseError::NotUtf8 => f.write_str("Command arguments must be UTF-8"),
            ParseError::MissingArgument(v) => write!(f, "{v} needs an argument"),
            ParseError::BadArgument(v, why) => write!(f, "{v}: {why}"),
            ParseError::UnsupportedParameter(v) => write!(f, "{v}: parameter not implemented"),
            ParseError::UnsupportedNetworkProtocol => {
                f.write_str("Network protocol not supported, use (1,2)")
            }
        }
    }
}

/// The longest verb we look at (XSHA256); anything longer is an unknown command.
const MAX_VERB_LEN: usize = 7;

/// Parses one control line (without its line ending, Telnet sequences already removed).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let (verb_bytes, arg_bytes) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    // SECURITY: the verb is echoed in the 500 reply; keep it short and printable. Verbs are
    // letters, and digits after the first letter (XSHA256).
    if verb_bytes.is_empty()
        || verb_bytes.len() > MAX_VERB_LEN
        || !verb_bytes[0].is_ascii_alphabetic()
        || !verb_bytes.iter().all(u8::is_ascii_alphanumeric)
    {
        let shown: String = String::from_utf8_lossy(&verb_bytes[..verb_bytes.len().min(16)])
            .chars()
            .filter(|c| !c.is_control())
            .collect();
        return Err(ParseError::UnknownCommand(shown));
    }
    let mut verb_buf = [0u8; MAX_VERB_LEN];
    let verb_buf = &mut verb_buf[..verb_bytes.len()];
    verb_buf.copy_from_slice(verb_bytes);
    verb_buf.make_ascii_uppercase();
    // Checked above: ASCII letters and digits only.
    let verb = std::str::from_utf8(verb_buf).map_err(|_| ParseError::NotUtf8)?;

    // A path argument that names an existing file: any bytes, decoded losslessly (RFC 2640
    // §3.2: names that are not UTF-8 are sent as they are, and come back the same way).
    let raw_arg = arg_bytes
        .map(rawname::decode)
        .filter(|a| !a.trim().is_empty());
    if is_path_verb(verb) {
        return parse_path_command(verb, raw_arg, arg_bytes);
    }

    let arg: Option<&str> = match arg_bytes {
        None => None,
        Some(b) => Some(std::str::from_utf8(b).map_err(|_| ParseError::NotUtf8)?),
    };
    // An argument made only of spaces counts as none.
    let arg = arg.filter(|a| !a.trim().is_empty());

    // Needs a non-empty argument, returned as given.
    let required = |name: &'static str| -> Result<String, ParseError> {
        arg.map(str::to_owned)
            .ok_or(ParseError::MissingArgument(name))
    };
    let none = |cmd: Command, name: &'static str| -> Result<Command, ParseError> {
        match arg {
            None => Ok(cmd),
            Some(_) => Err(ParseError::BadArgument(name, "takes no argument")),
        }
    };

    Ok(match verb {
        "USER" => Command::User(required("USER")?),
        // A password may legitimately be empty (anonymous clients send "PASS ").
        "PASS" => Command::Pass(
            arg_bytes
                .map(|_| arg.unwrap_or("").to_owned())
                .unwrap_or_default(),
        ),
        "ACCT" => Command::Acct(required("ACCT")?),
        "QUIT" => none(Command::Quit, "QUIT")?,
        "REIN" => none(Command::Rein, "REIN")?,
        // NOOP with an argument is harmless; some keep-alive clients send one.
        "NOOP" => Command::Noop,
        "SYST" => none(Command::Syst, "SYST")?,
        "FEAT" => none(Command::Feat, "FEAT")?,
        "HELP" => Command::Help(arg.map(|a| a.trim().to_ascii_uppercase())),
        "OPTS" => parse_opts(&required("OPTS")?),
        "PWD" | "XPWD" => none(Command::Pwd, "PWD")?,
        "CDUP" | "XCUP" => none(Command::Cdup, "CDUP")?,
        "TYPE" => Command::Type(parse_type(&required("TYPE")?)?),
        "MODE" => Command::Mode(parse_single(&required("MODE")?, "MODE", "S", &["B", "C"])?),
        "STRU" => Command::Stru(parse_single(&required("STRU")?, "STRU", "F", &["R", "P"])?),
        "PASV" => none(Command::Pasv, "PASV")?,
        "EPSV" => Command::Epsv(parse_epsv(arg)?),
        "PORT" => Command::Port(parse_port(&required("PORT")?)?),
        "EPRT" => Command::Eprt(parse_eprt(&required("EPRT")?)?),
        "STOU" => Command::Stou,
        "REST" => Command::Rest(required("REST")?.trim().parse().map_err(|_| {
            ParseError::BadArgument("REST", "offset must be a non-negative number")
        })?),
        // RFC 959 §4.1.3: ALLO is accepted and its argument is not needed by us.
        "ALLO" => Command::Allo,
        "ABOR" => none(Command::Abor, "ABOR")?,
        "SMNT" => Command::Smnt(required("SMNT")?),
        "AUTH" => Command::Auth(required("AUTH")?.trim().to_ascii_uppercase()),
        "PBSZ" => Command::Pbsz(required("PBSZ")?.trim().to_owned()),
        "PROT" => Command::Prot(required("PROT")?.trim().to_ascii_uppercase()),
        "CCC" => none(Command::Ccc, "CCC")?,
        "RANG" => Command::Rang(extensions::parse_rang(&required("RANG")?)?),
        _ => return Err(ParseError::UnknownCommand(verb.to_owned())),
    })
}

/// Verbs whose argument is a path (or carries one): parsed by `parse_path_command`.
fn is_path_verb(verb: &str) -> bool {
    matches!(
        verb,
        "CWD"
            | "XCWD"
            | "LIST"
            | "NLST"
            | "MLSD"
            | "MLST"
            | "RETR"
            | "STOR"
            | "APPE"
            | "DELE"
            | "MKD"
            | "XMKD"
            | "RMD"
            | "XRMD"
            | "RNFR"
            | "RNTO"
            | "SIZE"
            | "MDTM"
            | "STAT"
            | "SITE"
            | "MFMT"
            | "MFF"
            | "HASH"
            | "XCRC"
            | "XMD5"
            | "XSHA"
            | "XSHA1"
            | "XSHA256"
    )
}

/// The commands whose argument names a file, given losslessly decoded (`rawname`).
fn parse_path_command(
    verb: &str,
    arg: Option<String>,
    bytes: Option<&[u8]>,
) -> Result<Command, ParseError> {
    let required = |name: &'static str| arg.clone().ok_or(ParseError::MissingArgument(name));
    // SECURITY: a command that creates a name creates a UTF-8 one (RFC 2640): bytes that are not
    // UTF-8 may name the folders on the way, which already exist, but not the new last component.
    let creates = |name: &'static str| -> Result<String, ParseError> {
        let path = required(name)?;
        let raw = bytes.unwrap_or_default();
        let last = raw.rsplit(|&b| b == b'/').next().unwrap_or_default();
        if std::str::from_utf8(last).is_err() {
            return Err(ParseError::NotUtf8);
        }
        Ok(path)
    };
    Ok(match verb {
        "CWD" | "XCWD" => Command::Cwd(required("CWD")?),
        "LIST" => Command::List(arg),
        "NLST" => Command::Nlst(arg),
        "MLSD" => Command::Mlsd(arg),
        "MLST" => Command::Mlst(arg),
        "RETR" => Command::Retr(required("RETR")?),
        "STOR" => Command::Stor(creates("STOR")?),
        "APPE" => Command::Appe(creates("APPE")?),
        "DELE" => Command::Dele(required("DELE")?),
        "MKD" | "XMKD" => Command::Mkd(creates("MKD")?),
        "RMD" | "XRMD" => Command::Rmd(required("RMD")?),
        "RNFR" => Command::Rnfr(required("RNFR")?),
        "RNTO" => Command::Rnto(creates("RNTO")?),
        "SIZE" => Command::Size(required("SIZE")?),
        "MDTM" => Command::Mdtm(required("MDTM")?),
        "STAT" => Command::Stat(arg),
        "SITE" => Command::Site(required("SITE")?),
        "MFMT" => {
            let (time, path) = extensions::parse_mfmt(&required("MFMT")?)?;
            Command::Mfmt(time, path)
        }
        "MFF" => {
            let (facts, path) = extensions::parse_mff(&required("MFF")?)?;
            Command::Mff(facts, path)
        }
        "HASH" => Command::Hash(required("HASH")?),
        _ => {
            let (algo, name) = match verb {
                "XCRC" => (HashAlgo::Crc32, "XCRC"),
                "XMD5" => (HashAlgo::Md5, "XMD5"),
                "XSHA256" => (HashAlgo::Sha256, "XSHA256"),
                _ => (HashAlgo::Sha1, "XSHA1"),
            };
            let (path, range) = extensions::parse_x_hash(name, &required(name)?)?;
            Command::XHash(algo, path, range)
        }
    })
}

fn parse_opts(arg: &str) -> Command {
    let arg = arg.trim();
    match arg.split_once(' ') {
        Some((name, value)) => {
            Command::Opts(name.to_ascii_uppercase(), Some(value.trim().to_owned()))
        }
        None => Command::Opts(arg.to_ascii_uppercase(), None),
    }
}

/// RFC 959 §4.1.2: `TYPE A [N]`, `TYPE I`, `TYPE L 8`; TYPE E and other forms are 504.
fn parse_type(arg: &str) -> Result<TransferType, ParseError> {
    let parts: Vec<String> = arg
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    match parts
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["A"] | ["A", "N"] => Ok(TransferType::Ascii),
        ["I"] | ["L", "8"] => Ok(TransferType::Image),
        ["E"] | ["E", _] | ["A", "T" | "C"] | ["L", _] => {
            Err(ParseError::UnsupportedParameter("TYPE"))
        }
        _ => Err(ParseError::BadArgument("TYPE", "unknown type")),
    }
}

/// One-letter argument: `ok` is the one we implement, `known` are valid but refused (504).
fn parse_single(
    arg: &str,
    name: &'static str,
    ok: &str,
    known: &[&str],
) -> Result<char, ParseError> {
    let a = arg.trim().to_ascii_uppercase();
    if a == ok {
        Ok(ok.chars().next().unwrap_or('?'))
    } else if known.contains(&a.as_str()) {
        Err(ParseError::UnsupportedParameter(name))
    } else {
        Err(ParseError::BadArgument(name, "unknown parameter"))
    }
}

fn parse_epsv(arg: Option<&str>) -> Result<EpsvArg, ParseError> {
    match arg.map(str::trim) {
        None => Ok(EpsvArg::Any),
        Some(a) if a.eq_ignore_ascii_case("ALL") => Ok(EpsvArg::All),
        Some("1") => Ok(EpsvArg::Protocol(1)),
        Some("2") => Ok(EpsvArg::Protocol(2)),
        // RFC 2428 §3: a well-formed but unknown network protocol is 522, naming the ones we
        // support, as for EPRT; only a malformed argument is a syntax error.
        Some(a) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => {
            Err(ParseError::UnsupportedNetworkProtocol)
        }
        Some(_) => Err(ParseError::BadArgument(
            "EPSV",
            "network protocol must be 1, 2 or ALL",
        )),
    }
}

/// RFC 959 §4.1.2: `PORT h1,h2,h3,h4,p1,p2`.
fn parse_port(arg: &str) -> Result<SocketAddr, ParseError> {
    const WHY: &str = "expected h1,h2,h3,h4,p1,p2";
    let mut nums = [0u8; 6];
    let mut count = 0;
    for part in arg.trim().split(',') {
        if count == 6 {
            return Err(ParseError::BadArgument("PORT", WHY));
        }
        nums[count] = part
            .trim()
            .parse()
            .map_err(|_| ParseError::BadArgument("PORT", WHY))?;
        count += 1;
    }
    if count != 6 {
        return Err(ParseError::BadArgument("PORT", WHY));
    }
    let ip = Ipv4Addr::new(nums[0], nums[1], nums[2], nums[3]);
    let port = u16::from(nums[4]) << 8 | u16::from(nums[5]);
    Ok(SocketAddr::new(IpAddr::V4(ip), port))
}

/// RFC 2428 §2: `EPRT |1|132.235.1.2|6275|`; any printable delimiter.
fn parse_eprt(arg: &str) -> Result<SocketAddr, ParseError> {
    const WHY: &str = "expected |proto|address|port|";
    let arg = arg.trim();
    let delim = arg
        .chars()
        .next()
        .ok_or(ParseError::BadArgument("EPRT", WHY))?;
    if !(33..=126).contains(&(delim as u32)) {
        return Err(ParseError::BadArgument("EPRT", WHY));
    }
    let fields: Vec<&str> = arg.split(delim).collect();
    // "|1|addr|port|" splits into ["", "1", "addr", "port", ""].
    if fields.len() != 5 || !fields[0].is_empty() || !fields[4].is_empty() {
        return Err(ParseError::BadArgument("EPRT", WHY));
    }
    let port: u16 = fields[3]
        .parse()
        .map_err(|_| ParseError::BadArgument("EPRT", "bad port"))?;
    let ip: IpAddr = match fields[1] {
        "1" => IpAddr::V4(
            fields[2]
                .parse::<Ipv4Addr>()
                .map_err(|_| ParseError::BadArgument("EPRT", "bad IPv4 address"))?,
        ),
        "2" => IpAddr::V6(
            fields[2]
                .parse::<Ipv6Addr>()
                .map_err(|_| ParseError::BadArgument("EPRT", "bad IPv6 address"))?,
        ),
        _ => return Err(ParseError::UnsupportedNetworkProtocol),
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests;
