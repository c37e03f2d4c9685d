//! Arguments of the commands real clients send beyond RFC 959: `ls` options and glob patterns
//! of LIST/NLST, MFMT and MFF (draft-somers-ftp-mfxx), SITE CHMOD and SITE UTIME (both forms),
//! HASH with `OPTS HASH` and RANG (draft-bryan-ftpext-hash), and the older XCRC, XMD5, XSHA1
//! and XSHA256. Pure, like the rest of the parser: text in, typed values or a `ParseError` out.

use super::ParseError;

/// A point in time from an RFC 3659 `time-val` (`YYYYMMDDHHMMSS[.sss]`, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (negative before 1970).
    pub secs: i64,
    pub nanos: u32,
}

/// Parses an RFC 3659 §2.3 `time-val`: 14 digits, then optionally `.` and 1-9 digits of a
/// fraction. Every field is checked (month 1-12, a day that exists in that month, no second 60).
pub fn parse_time_val(s: &str) -> Option<Timestamp> {
    let (whole, fraction) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| whole[r].parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(8..10)?, num(10..12)?, num(12..14)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            let digits: u32 = f.parse().ok()?;
            digits * 10u32.pow(9 - f.len() as u32)
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(Timestamp {
        secs: days * 86_400 + hour * 3600 + minute * 60 + second,
        nanos,
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days-from-civil).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `LIST`/`NLST` arguments: leading `ls` options, then the path (or pattern), if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListArgs {
    /// `-a` (or `-la`, `-al`, `-A`...): names starting with `.` are listed too.
    pub all: bool,
    pub path: Option<String>,
}

impl ListArgs {
    /// Clients send `ls` options with LIST/NLST (`LIST -la`, `LIST -a /dir`): leading words that
    /// start with `-` are options, not paths. Only `a`/`A` change what is listed; the others
    /// (`-l`, `-t`, ...) are accepted and ignored, as vsftpd does.
    pub fn parse(arg: Option<&str>) -> ListArgs {
        let mut all = false;
        let Some(mut rest) = arg else {
            return ListArgs::default();
        };
        loop {
            let trimmed = rest.trim_start();
            if trimmed.starts_with('-') && trimmed.len() > 1 {
                let (word, after) = match trimmed.find(' ') {
                    Some(i) => (&trimmed[..i], Some(&trimmed[i + 1..])),
                    None => (trimmed, None),
                };
                all |= word.contains(['a', 'A']);
                match after {
                    Some(after) => rest = after,
                    None => return ListArgs { all, path: None },
                }
            } else {
                rest = trimmed;
                break;
            }
        }
        ListArgs {
            all,
            path: (!rest.is_empty()).then(|| rest.to_owned()),
        }
    }
}

/// Changes MFF may make (draft-somers-ftp-mfxx §4): the facts that map onto this file system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FactChanges {
    /// `modify=`: the modification time.
    pub modify: Option<Timestamp>,
    /// `UNIX.mode=`: permission bits, as SITE CHMOD sets them.
    pub mode: Option<u32>,
}

/// `MFMT <time-val> <path>`.
pub(super) fn parse_mfmt(arg: &str) -> Result<(Timestamp, String), ParseError> {
    const WHY: &str = "expected YYYYMMDDHHMMSS[.sss] and a path";
    let (time, path) = arg
        .split_once(' ')
        .ok_or(ParseError::BadArgument("MFMT", WHY))?;
    let time = parse_time_val(time).ok_or(ParseError::BadArgument("MFMT", WHY))?;
    if path.is_empty() {
        return Err(ParseError::BadArgument("MFMT", WHY));
    }
    Ok((time, path.to_owned()))
}

/// `MFF fact=value;fact=value; <path>`. Facts that cannot be set here (`create`, `perm`,
/// `UNIX.owner`, ...) are 504, as the draft asks; a malformed list is 501.
pub(super) fn parse_mff(arg: &str) -> Result<(FactChanges, String), ParseError> {
    const WHY: &str = "expected fact=value; pairs and a path";
    let (facts, path) = arg
        .split_once(' ')
        .ok_or(ParseError::BadArgument("MFF", WHY))?;
    if path.is_empty() || facts.is_empty() {
        return Err(ParseError::BadArgument("MFF", WHY));
    }
    let mut changes = FactChanges::default();
    for fact in facts.split(';').filter(|f| !f.is_empty()) {
        let (name, value) = fact
            .split_once('=')
            .ok_or(ParseError::BadArgument("MFF", WHY))?;
        if name.eq_ignore_ascii_case("modify") {
            changes.modify = Some(
                parse_time_val(value).ok_or(ParseError::BadArgument("MFF", "bad modify time"))?,
            );
        } else if name.eq_ignore_ascii_case("UNIX.mode") {
            changes.mode = Some(parse_mode(value, "MFF")?);
        } else {
            return Err(ParseError::UnsupportedParameter("MFF"));
        }
    }
    Ok((changes, path.to_owned()))
}

/// An octal mode of permission bits only. SECURITY: set-user-ID, set-group-ID and sticky bits
/// (anything above 0777) are refused, so no client can make a set-ID file.
fn parse_mode(s: &str, verb: &'static str) -> Result<u32, ParseError> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(ParseError::BadArgument(verb, "mode must be octal, 0-777"));
    }
    let mode = u32::from_str_radix(s, 8)
        .map_err(|_| ParseError::BadArgument(verb, "mode must be octal, 0-777"))?;
    if mode > 0o777 {
        return Err(ParseError::BadArgument(
            verb,
            "only permission bits (0-777) can be set",
        ));
    }
    Ok(mode)
}

/// A SITE subcommand (RFC 959 §4.1.3 leaves them to the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SiteCommand {
    Help,
    /// `SITE CHMOD <octal> <path>`.
    Chmod(u32, String),
    /// `SITE UTIME <time-val> <path>` (ProFTPD's short form) or
    /// `SITE UTIME <path> <atime> <mtime> <ctime> UTC` (the form lftp and others send): the
    /// modification time to set.
    Utime(Timestamp, String),
    /// A subcommand we do not offer, upper-cased.
    Unknown(String),
}

/// Parses a SITE argument.
pub fn parse_site(arg: &str) -> Result<SiteCommand, ParseError> {
    let arg = arg.trim_start();
    let (sub, rest) = match arg.split_once(' ') {
        Some((s, r)) => (s, r),
        None => (arg, ""),
    };
    let sub = sub.to_ascii_uppercase();
    match sub.as_str() {
        "HELP" => Ok(SiteCommand::Help),
        "CHMOD" => {
            const WHY: &str = "expected SITE CHMOD <octal mode> <path>";
            let (mode, path) = rest
                .split_once(' ')
                .ok_or(ParseError::BadArgument("SITE CHMOD", WHY))?;
            if path.is_empty() {
                return Err(ParseError::BadArgument("SITE CHMOD", WHY));
            }
            Ok(SiteCommand::Chmod(
                parse_mode(mode, "SITE CHMOD")?,
                path.to_owned(),
            ))
        }
        "UTIME" => parse_utime(rest),
        _ => Ok(SiteCommand::Unknown(
            sub.chars().filter(|c| !c.is_control()).take(16).collect(),
        )),
    }
}

fn parse_utime(rest: &str) -> Result<SiteCommand, ParseError> {
    const WHY: &str = "expected SITE UTIME <YYYYMMDDHHMMSS> <path> or \
                       SITE UTIME <path> <atime> <mtime> <ctime> UTC";
    let bad = ParseError::BadArgument("SITE UTIME", WHY);
    // The long form, read from the end so the path may contain spaces.
    let words: Vec<&str> = rest.rsplitn(5, ' ').collect();
    if let [utc, _ctime, mtime, _atime, path] = words.as_slice() {
        if utc.eq_ignore_ascii_case("UTC") {
            let mtime = parse_time_val(mtime).ok_or(bad.clone())?;
            if path.is_empty() {
                return Err(bad);
            }
            return Ok(SiteCommand::Utime(mtime, (*path).to_owned()));
        }
    }
    let (time, path) = rest.split_once(' ').ok_or(bad.clone())?;
    let time = parse_time_val(time).ok_or(bad.clone())?;
    if path.is_empty() {
        return Err(bad);
    }
    Ok(SiteCommand::Utime(time, path.to_owned()))
}

/// The digests HASH and its older cousins compute. SHA-256 is the default (`OPTS HASH`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    #[default]
    Sha256,
    Sha1,
    Md5,
    Crc32,
}

impl HashAlgo {
    /// In the order FEAT lists them; the first is the default.
    pub const ALL: [HashAlgo; 4] = [
        HashAlgo::Sha256,
        HashAlgo::Sha1,
        HashAlgo::Md5,
        HashAlgo::Crc32,
    ];

    /// The draft's IANA-style name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Sha256 => "SHA-256",
            HashAlgo::Sha1 => "SHA-1",
            HashAlgo::Md5 => "MD5",
            HashAlgo::Crc32 => "CRC32",
        }
    }

    /// `OPTS HASH <name>`: case-insensitive.
    pub fn from_name(name: &str) -> Option<HashAlgo> {
        HashAlgo::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name.trim()))
    }
}

/// A byte range to hash: `start`, up to `end` (exclusive) or the end of the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: Option<u64>,
}

/// `RANG <start> <end>` (draft-bryan-ftpext-hash §3.2): bytes `start` up to `end`, the same
/// numbers the HASH reply shows; `RANG 1 0` clears the range.
pub(super) fn parse_rang(arg: &str) -> Result<Option<ByteRange>, ParseError> {
    const WHY: &str = "expected RANG <start> <end>";
    let mut words = arg.split_whitespace();
    let (Some(a), Some(b), None) = (words.next(), words.next(), words.next()) else {
        return Err(ParseError::BadArgument("RANG", WHY));
    };
    let start: u64 = a
        .parse()
        .map_err(|_| ParseError::BadArgument("RANG", WHY))?;
    let end: u64 = b
        .parse()
        .map_err(|_| ParseError::BadArgument("RANG", WHY))?;
    match (start, end) {
        (1, 0) => Ok(None),
        (s, e) if s <= e => Ok(Some(ByteRange {
            start: s,
            end: Some(e),
        })),
        _ => Err(ParseError::BadArgument("RANG", "start is after end")),
    }
}

/// `XCRC <path> [<start> [<end>]]` and its siblings (ProFTPD mod_digest, FileZilla): a path,
/// optionally quoted, optionally followed by a start and an end offset. A trailing number counts
/// as an offset only when a quoted path or a non-empty path remains before it.
pub(super) fn parse_x_hash(
    verb: &'static str,
    arg: &str,
) -> Result<(String, ByteRange), ParseError> {
    let bad = || ParseError::BadArgument(verb, "expected a path and optional start and end");
    if let Some(quoted) = arg.strip_prefix('"') {
        let (path, rest) = quoted.split_once('"').ok_or_else(bad)?;
        if path.is_empty() {
            return Err(bad());
        }
        let nums: Vec<&str> = rest.split_whitespace().collect();
        return Ok((path.to_owned(), offsets(&nums).ok_or_else(bad)?));
    }
    let mut path = arg;
    let mut nums: Vec<&str> = Vec::new();
    while nums.len() < 2 {
        match path.rsplit_once(' ') {
            Some((before, last))
                if !before.trim().is_empty()
                    && !last.is_empty()
                    && last.bytes().all(|b| b.is_ascii_digit()) =>
            {
                nums.insert(0, last);
                path = before.trim_end();
            }
            _ => break,
        }
    }
    Ok((path.to_owned(), offsets(&nums).ok_or_else(bad)?))
}

fn offsets(nums: &[&str]) -> Option<ByteRange> {
    let parse = |s: &str| s.parse::<u64>().ok();
    match nums {
        [] => Some(ByteRange::default()),
        [start] => Some(ByteRange {
            start: parse(start)?,
            end: None,
        }),
        [start, end] => {
            let (start, end) = (parse(start)?, parse(end)?);
            (start <= end).then_some(ByteRange {
                start,
                end: Some(end),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_vals_are_checked_field_by_field() {
        let t = |s: &str| parse_time_val(s).map(|t| (t.secs, t.nanos));
        assert_eq!(t("19700101000000"), Some((0, 0)));
        assert_eq!(t("20000229123456"), Some((951_827_696, 0)));
        assert_eq!(t("20261125120000.5"), Some((1_795_608_000, 500_000_000)));
        assert_eq!(t("20261125120000.123"), Some((1_795_608_000, 123_000_000)));
        assert_eq!(t("19691231235959"), Some((-1, 0)));
        for bad in [
            "",
            "2026112512000",
            "202611251200000",
            "20261325120000",
            "20260230120000",
            "20250229120000",
            "20261125240000",
            "20261125126000",
            "20261125120060",
            "20261125120000.",
            "20261125120000.1234567890",
            "2026112512000x",
            "+0261125120000",
        ] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn list_options_are_read_and_removed() {
        let cases = [
            (None, false, None),
            (Some("-la"), true, None),
            (Some("-l"), false, None),
            (Some("-a -l /dir"), true, Some("/dir")),
            (Some("-A x"), true, Some("x")),
            (Some("*.txt"), false, Some("*.txt")),
            (Some("-"), false, Some("-")),
            (Some("-l  sp ace"), false, Some("sp ace")),
        ];
        for (arg, all, path) in cases {
            let got = ListArgs::parse(arg);
            assert_eq!((got.all, got.path.as_deref()), (all, path), "{arg:?}");
        }
    }

    #[test]
    fn site_subcommands() {
        let ts = parse_time_val("20200102030405").expect("time");
        let cases = [
            ("HELP", Ok(SiteCommand::Help)),
            ("help", Ok(SiteCommand::Help)),
            (
                "CHMOD 644 a b.txt",
                Ok(SiteCommand::Chmod(0o644, "a b.txt".into())),
            ),
            ("chmod 0755 d", Ok(SiteCommand::Chmod(0o755, "d".into()))),
            (
                "UTIME 20200102030405 a b",
                Ok(SiteCommand::Utime(ts, "a b".into())),
            ),
            (
                "UTIME a b 20200102030405 20200102030405 20200102030405 UTC",
                Ok(SiteCommand::Utime(ts, "a b".into())),
            ),
            ("FOO bar", Ok(SiteCommand::Unknown("FOO".into()))),
        ];
        for (arg, want) in cases {
            assert_eq!(parse_site(arg), want, "{arg:?}");
        }
        for bad in [
            "CHMOD 4755 x",
            "CHMOD 999 x",
            "CHMOD 644",
            "CHMOD rw x",
            "CHMOD 12345 x",
            "UTIME 2020 x",
            "UTIME x",
            "UTIME 20201332000000 x",
        ] {
            assert!(
                matches!(parse_site(bad), Err(ParseError::BadArgument(..))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn mff_maps_modify_and_mode_and_refuses_the_rest() {
        let (changes, path) = parse_mff("modify=20200102030405;UNIX.mode=0640; my file").unwrap();
        assert_eq!(path, "my file");
        assert_eq!(changes.mode, Some(0o640));
        assert_eq!(changes.modify, parse_time_val("20200102030405"));
        assert_eq!(
            parse_mff("create=20200102030405; f"),
            Err(ParseError::UnsupportedParameter("MFF"))
        );
        assert!(matches!(
            parse_mff("modify=x; f"),
            Err(ParseError::BadArgument(..))
        ));
        assert!(matches!(parse_mff("f"), Err(ParseError::BadArgument(..))));
        assert!(matches!(
            parse_mff("UNIX.mode=4755; f"),
            Err(ParseError::BadArgument(..))
        ));
    }

    #[test]
    fn x_hash_offsets_and_rang() {
        let r = |s, e| ByteRange { start: s, end: e };
        let cases = [
            ("a.txt", "a.txt", r(0, None)),
            ("a b.txt", "a b.txt", r(0, None)),
            ("a.txt 10", "a.txt", r(10, None)),
            ("a.txt 10 20", "a.txt", r(10, Some(20))),
            ("\"a 1 2\" 3", "a 1 2", r(3, None)),
            ("123", "123", r(0, None)),
            ("x 1 2 3", "x 1", r(2, Some(3))),
        ];
        for (arg, path, range) in cases {
            assert_eq!(
                parse_x_hash("XCRC", arg),
                Ok((path.into(), range)),
                "{arg:?}"
            );
        }
        assert!(parse_x_hash("XCRC", "a 20 10").is_err());
        assert!(parse_x_hash("XCRC", "\"unterminated").is_err());
        assert_eq!(parse_rang("1 0"), Ok(None));
        assert_eq!(parse_rang("0 49"), Ok(Some(r(0, Some(49)))));
        assert!(parse_rang("5 4").is_err());
        assert!(parse_rang("5").is_err());
        assert!(parse_rang("-1 4").is_err());
        assert_eq!(HashAlgo::from_name("sha-1"), Some(HashAlgo::Sha1));
        assert_eq!(HashAlgo::from_name("SHA-512"), None);
    }
}
