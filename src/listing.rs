//! LIST and NLST formatting (pure: metadata in, text out).
//!
//! LIST lines follow `ls -l`, the format FileZilla, WinSCP, lftp, rclone and Python parse:
//! `-rw-r--r-- 1 1000 1000 1234 Nov 25 14:03 name`, with the year instead of the time for
//! entries older than about six months (or in the future), and `name -> target` for symlinks
//! whose target stays inside the user's root (others are listed without the arrow, so a listing
//! never tells where outside the root a link points). Dates are UTC. No external `ls` is ever run.
//!
//! Names that are not UTF-8 reach the data connection as the bytes they are on disk (RFC 2640
//! §3.2; `protocol::rawname`), so a client can send them back. Dotfiles are hidden from LIST
//! and NLST unless asked for (`is_hidden`).

use crate::protocol::rawname;

/// What kind of entry a line describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    /// A symlink shown with its target (the FileStore checked that it stays inside the root).
    Symlink {
        target: String,
    },
    /// A symlink shown without its target: it leads outside the user's root, or nowhere.
    OpaqueLink,
    Other,
}

/// The metadata one listing line needs; the FileStore fills it from the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Permission bits (the low 12 bits of st_mode).
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: i64,
    /// Device and inode, for the MLSx `unique` fact.
    pub dev: u64,
    pub ino: u64,
}

/// Which RFC 3659 facts MLST/MLSD show (`OPTS MLST` selects them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlsxFacts(u8);

/// What the logged-in user may do, for the MLSx `perm` fact (RFC 3659 §7.5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PermFact {
    pub read: bool,
    pub write: bool,
    pub delete: bool,
    pub rename: bool,
    pub mkdir: bool,
}

/// Fact names in the order they are written, with their bit.
const FACT_NAMES: [(&str, u8); 6] = [
    ("type", 1),
    ("size", 2),
    ("modify", 4),
    ("perm", 8),
    ("unique", 16),
    ("UNIX.mode", 32),
];

impl Default for MlsxFacts {
    fn default() -> Self {
        MlsxFacts(0b11_1111)
    }
}

impl MlsxFacts {
    /// Parses an `OPTS MLST` argument (`type;size;`): unknown names are ignored (RFC 3659 §7.9).
    pub fn parse(list: &str) -> MlsxFacts {
        let mut bits = 0;
        for name in list.split(';').map(str::trim).filter(|n| !n.is_empty()) {
            if let Some((_, bit)) = FACT_NAMES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                bits |= bit;
            }
        }
        MlsxFacts(bits)
    }

    /// `type;size;` as the OPTS reply states the selection.
    pub fn selected(self) -> String {
        FACT_NAMES
            .iter()
            .filter(|(_, b)| self.0 & b != 0)
            .map(|(n, _)| format!("{n};"))
            .collect()
    }

    /// The FEAT line body: every supported fact, `*` on the selected ones.
    pub fn feat(self) -> String {
        FACT_NAMES
            .iter()
            .map(|(n, b)| {
                if self.0 & b != 0 {
                    format!("{n}*;")
                } else {
                    format!("{n};")
                }
            })
            .collect()
    }
}

/// One MLSx entry (RFC 3659 §7.2): `fact=value;` for each selected fact, one space, the name.
pub fn mlsx_line(entry: &EntryInfo, facts: MlsxFacts, perm: PermFact, name: &str) -> String {
    let mut out = String::with_capacity(96 + name.len());
    let is_dir = entry.kind == EntryKind::Dir;
    for (fact, bit) in FACT_NAMES {
        if facts.0 & bit == 0 {
            continue;
        }
        let value = match fact {
            "type" => match entry.kind {
                EntryKind::Dir => "dir".to_owned(),
                EntryKind::File => "file".to_owned(),
                // A symlink that resolved is shown as what it points to; others are opaque.
                EntryKind::Symlink { .. } | EntryKind::OpaqueLink => "OS.unix=symlink".to_owned(),
                EntryKind::Other => "OS.unix=special".to_owned(),
            },
            "size" => entry.size.to_string(),
            "modify" => CivilTime::from_unix(entry.mtime).to_mdtm(),
            "perm" => perm_letters(is_dir, perm),
            "unique" => format!("{:x}U{:x}", entry.dev, entry.ino),
            _ => format!("0{:o}", entry.mode & 0o7777),
        };
        out.push_str(fact);
        out.push('=');
        out.push_str(&value);
        out.push(';');
    }
    out.push(' ');
    out.push_str(&shown_name(name));
    out
}

fn perm_letters(is_dir: bool, p: PermFact) -> String {
    let mut s = String::new();
    let mut add = |on: bool, letters: &str| {
        if on {
            s.push_str(letters);
        }
    };
    if is_dir {
        add(p.write, "c");
        add(p.delete, "d");
        add(p.read, "el");
        add(p.rename, "f");
        add(p.mkdir, "m");
        add(p.delete, "p");
    } else {
        add(p.write, "a");
        add(p.delete, "d");
        add(p.rename, "f");
        add(p.read, "r");
        add(p.write, "w");
    }
    s
}

/// The body of an MLSD reply.
pub fn mlsd_body(entries: &[EntryInfo], facts: MlsxFacts, perm: PermFact) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 96);
    for e in entries {
        out.extend_from_slice(&rawname::encode(&mlsx_line(e, facts, perm, &e.name)));
        out.extend_from_slice(b"\r\n");
    }
    out
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// About six months, as `ls` counts it: older (or future) entries show the year.
const RECENT_SECS: i64 = 182 * 24 * 3600;

/// A UTC calendar time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl CivilTime {
    /// Converts seconds since the epoch to a UTC date (H. Hinnant's days-to-civil algorithm).
    pub fn from_unix(secs: i64) -> CivilTime {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        CivilTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }

    /// RFC 3659 time-val: `YYYYMMDDHHMMSS`.
    pub fn to_mdtm(self) -> String {
        format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The ten-character `ls` mode string, e.g. `drwxr-xr-x`.
pub fn mode_string(kind: &EntryKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink { .. } | EntryKind::OpaqueLink => 'l',
        EntryKind::File => '-',
        EntryKind::Other => '?',
    });
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (bit, ch) in bits {
        s.push(if mode & bit != 0 { ch } else { '-' });
    }
    s
}

/// A name as listings show it: control characters (a LF in a file name, say) become `?`, as
/// `ls -q` does, so no name on disk can split a listing line or a multi-line STAT reply.
pub fn shown_name(name: &str) -> std::borrow::Cow<'_, str> {
    if name.chars().any(char::is_control) {
        name.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect::<String>()
            .into()
    } else {
        name.into()
    }
}

/// One LIST line (without its CRLF). `now` is seconds since the epoch.
pub fn list_line(entry: &EntryInfo, now: i64) -> String {
    let t = CivilTime::from_unix(entry.mtime);
    let age = now.saturating_sub(entry.mtime);
    let month = MONTHS[(t.month as usize).saturating_sub(1).min(11)];
    let when = if (0..RECENT_SECS).contains(&age) {
        format!("{month} {:>2} {:02}:{:02}", t.day, t.hour, t.minute)
    } else {
        format!("{month} {:>2}  {}", t.day, t.year)
    };
    let mut line = format!(
        "{} {:>3} {:<8} {:<8} {:>12} {} {}",
        mode_string(&entry.kind, entry.mode),
        entry.nlink,
        entry.uid,
        entry.gid,
        entry.size,
        when,
        shown_name(&entry.name)
    );
    if let EntryKind::Symlink { target } = &entry.kind {
        line.push_str(" -> ");
        line.push_str(&shown_name(target));
    }
    line
}

/// The body of a LIST reply: one CRLF-terminated line per entry, in the given order.
pub fn list_body(entries: &[EntryInfo], now: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 64);
    for e in entries {
        out.extend_from_slice(&rawname::encode(&list_line(e, now)));
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The body of an NLST reply: bare names, CRLF-terminated.
pub fn nlst_body(entries: &[EntryInfo]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 16);
    for e in entries {
        out.extend_from_slice(&rawname::encode(&shown_name(&e.name)));
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Whether a name is a dotfile, which LIST and NLST show only with `-a` (or `--show-dotfiles`).
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-25 12:00:00 UTC.
    const NOW: i64 = 1_795_608_000;

    fn entry(name: &str, kind: EntryKind, size: u64, mode: u32, mtime: i64) -> EntryInfo {
        EntryInfo {
            name: name.into(),
            kind,
            size,
            mode,
            nlink: 1,
            uid: 1000,
            gid: 100,
            mtime,
            dev: 0x803,
            ino: 0x1234,
        }
    }

    #[test]
    fn civil_time_matches_known_dates() {
        let cases = [
            (0, (1970, 1, 1, 0, 0, 0)),
            (951_782_400, (2000, 2, 29, 0, 0, 0)),
            (1_795_608_000, (2026, 11, 25, 12, 0, 0)),
            (4_102_444_799, (2099, 12, 31, 23, 59, 59)),
            (-1, (1969, 12, 31, 23, 59, 59)),
        ];
        for (secs, (y, mo, d, h, mi, s)) in cases {
            let t = CivilTime::from_unix(secs);
            assert_eq!(
                (t.year, t.month, t.day, t.hour, t.minute, t.second),
                (y, mo, d, h, mi, s),
                "{secs}"
            );
        }
        assert_eq!(
            CivilTime::from_unix(1_795_608_000).to_mdtm(),
            "20261125120000"
        );
    }

    #[test]
    fn list_lines_look_like_ls() {
        let cases = [
            (
                entry("a.txt", EntryKind::File, 1234, 0o644, NOW - 3600),
                "-rw-r--r--   1 1000     100              1234 Nov 25 11:00 a.txt",
            ),
            (
                entry("old dir", EntryKind::Dir, 4096, 0o755, NOW - 400 * 86_400),
                "drwxr-xr-x   1 1000     100              4096 Oct 21  2025 old dir",
            ),
            (
                entry("future", EntryKind::File, 0, 0o600, NOW + 86_400),
                "-rw-------   1 1000     100                 0 Nov 26  2026 future",
            ),
            (
                entry(
                    "ln",
                    EntryKind::Symlink {
                        target: "a.txt".into(),
                    },
                    5,
                    0o777,
                    NOW - 60,
                ),
                "lrwxrwxrwx   1 1000     100                 5 Nov 25 11:59 ln -> a.txt",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(list_line(&e, NOW), want);
        }
    }

    #[test]
    fn opaque_links_show_neither_arrow_nor_target() {
        let e = entry("out", EntryKind::OpaqueLink, 0, 0o777, NOW - 60);
        assert_eq!(
            list_line(&e, NOW),
            "lrwxrwxrwx   1 1000     100                 0 Nov 25 11:59 out"
        );
        let all = PermFact::default();
        assert_eq!(
            mlsx_line(&e, MlsxFacts::parse("type;size;"), all, "out"),
            "type=OS.unix=symlink;size=0; out"
        );
        assert_eq!(nlst_body(&[e]), b"out\r\n");
    }

    #[test]
    fn mlsx_lines_have_every_fact_terminated() {
        let all = PermFact {
            read: true,
            write: true,
            delete: true,
            rename: true,
            mkdir: true,
        };
        let f = entry("a b.txt", EntryKind::File, 1234, 0o644, NOW);
        assert_eq!(
            mlsx_line(&f, MlsxFacts::default(), all, "a b.txt"),
            "type=file;size=1234;modify=20261125120000;perm=adfrw;unique=803U1234;UNIX.mode=0644; a b.txt"
        );
        let d = entry("d", EntryKind::Dir, 4096, 0o755, NOW);
        let read_only = PermFact {
            read: true,
            ..PermFact::default()
        };
        assert_eq!(
            mlsx_line(&d, MlsxFacts::parse("type;perm;"), read_only, "/d"),
            "type=dir;perm=el; /d"
        );
        assert_eq!(mlsx_line(&d, MlsxFacts::parse(""), all, "d"), " d");
    }

    #[test]
    fn mlst_fact_selection() {
        assert_eq!(
            MlsxFacts::parse("TYPE;Size;bogus;").selected(),
            "type;size;"
        );
        assert_eq!(
            MlsxFacts::default().feat(),
            "type*;size*;modify*;perm*;unique*;UNIX.mode*;"
        );
        assert_eq!(
            MlsxFacts::parse("size").feat(),
            "type;size*;modify;perm;unique;UNIX.mode;"
        );
    }

    #[test]
    fn control_characters_in_names_are_shown_as_question_marks() {
        let e = entry("evil\n\u{1}213 x", EntryKind::File, 1, 0o644, NOW);
        assert!(list_line(&e, NOW).ends_with(" evil??213 x"));
        assert_eq!(nlst_body(std::slice::from_ref(&e)), b"evil??213 x\r\n");
        let all = PermFact {
            read: true,
            ..PermFact::default()
        };
        assert!(mlsx_line(&e, MlsxFacts::parse("type;"), all, &e.name).ends_with("; evil??213 x"));
        assert_eq!(shown_name("plain ü"), "plain ü");
    }

    #[test]
    fn bodies_are_crlf_terminated() {
        let es = [
            entry("x", EntryKind::File, 1, 0o644, NOW),
            entry("ü y", EntryKind::Dir, 1, 0o755, NOW),
        ];
        assert_eq!(nlst_body(&es), "x\r\nü y\r\n".as_bytes());
        let body = String::from_utf8(list_body(&es, NOW)).expect("utf8");
        assert_eq!(body.matches("\r\n").count(), 2);
        assert!(body.ends_with("ü y\r\n"));
    }
}
