//! `VirtualPath`: a client-visible path, resolved lexically inside the user's root.
//!
//! This is the first half of the jail: whatever the client sends (`..`, `//`, absolute paths),
//! the result is a normalised absolute path that never climbs above `/`. The second half is
//! the FileStore opening that path relative to the root directory handle, so a symlink cannot
//! lead outside either.
//!
//! Names that are not UTF-8 travel inside the `String` in the lossless form of
//! `protocol::rawname`; `to_relative` turns them back into the bytes on disk, and `Display`
//! shows them as U+FFFD (replies stay UTF-8).
//!
//! It also owns the one rule for the server's own upload temporary names (`is_temp_name`): a
//! client can never name one, so it can neither see, read, rename, delete nor create one.

use crate::protocol::rawname;
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Upload temporary files are `<TEMP_PREFIX><TEMP_HEX_DIGITS hex digits><TEMP_SUFFIX>`, in the
/// directory of the file they will replace.
pub const TEMP_PREFIX: &str = ".actorftpd-upload-";
pub const TEMP_SUFFIX: &str = ".part";
pub const TEMP_HEX_DIGITS: usize = 16;

/// Whether `name` (one path component) is an upload temporary name of this server. ASCII case is
/// ignored, so that on a case-folding file system (ext4 `casefold`, vfat) no other spelling can
/// reach one either; the names the server makes are lower-case.
pub fn is_temp_name(name: &str) -> bool {
    let b = name.as_bytes();
    let (pre, suf) = (TEMP_PREFIX.len(), TEMP_SUFFIX.len());
    b.len() == pre + TEMP_HEX_DIGITS + suf
        && b[..pre].eq_ignore_ascii_case(TEMP_PREFIX.as_bytes())
        && b[b.len() - suf..].eq_ignore_ascii_case(TEMP_SUFFIX.as_bytes())
        && b[pre..pre + TEMP_HEX_DIGITS]
            .iter()
            .all(u8::is_ascii_hexdigit)
}

/// A normalised absolute path inside a user's root: starts with `/`, no `.`, `..` or empty
/// components. `/` is the user's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VirtualPath(String);

impl Default for VirtualPath {
    fn default() -> Self {
        VirtualPath::root()
    }
}

impl VirtualPath {
    pub fn root() -> VirtualPath {
        VirtualPath("/".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// Resolves a client argument against this directory (RFC 959 pathnames, Unix style).
    /// SECURITY: `..` at the root stays at the root; the result can only name something inside
    /// the jail, however many `..` or `/` the argument has.
    pub fn join(&self, arg: &str) -> VirtualPath {
        let mut parts: Vec<&str> = Vec::new();
        if !arg.starts_with('/') {
            parts.extend(self.components());
        }
        for comp in arg.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name => parts.push(name),
            }
        }
        VirtualPath::from_components(&parts)
    }

    pub fn parent(&self) -> VirtualPath {
        self.join("..")
    }

    /// The last component, or `/` for the root.
    pub fn file_name(&self) -> &str {
        self.0
            .rsplit('/')
            .next()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// SECURITY: whether any component is an upload temporary name. The FileStore answers every
    /// such path as if it did not exist (or refuses to create it), so a client can never see,
    /// read, rename over, delete or plant a file that a running upload will rename into place.
    pub fn names_temp(&self) -> bool {
        self.components().any(is_temp_name)
    }

    /// The path relative to the root handle, as the FileStore opens it (`.` for the root).
    /// Escaped bytes (`rawname`) become the bytes they stand for.
    pub fn to_relative(&self) -> PathBuf {
        if self.is_root() {
            PathBuf::from(".")
        } else {
            PathBuf::from(OsString::from_vec(
                rawname::encode(&self.0[1..]).into_owned(),
            ))
        }
    }

    /// The path for a reply on the control connection: bytes that are not UTF-8 shown as
    /// U+FFFD (the exact bytes go over data connections only).
    pub fn shown(&self) -> std::borrow::Cow<'_, str> {
        rawname::shown(&self.0)
    }

    fn from_components(parts: &[&str]) -> VirtualPath {
        if parts.is_empty() {
            return VirtualPath::root();
        }
        let mut s = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for p in parts {
            s.push('/');
            s.push_str(p);
        }
        VirtualPath(s)
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_resolves_lexically_inside_the_root() {
        let cases = [
            ("/", "a", "/a"),
            ("/", "/a/b/", "/a/b"),
            ("/a", "b/c", "/a/b/c"),
            ("/a", "/x", "/x"),
            ("/a/b", "..", "/a"),
            ("/a/b", "../..", "/"),
            ("/", "..", "/"),
            ("/", "../../../etc/passwd", "/etc/passwd"),
            ("/a", "../../../../x", "/x"),
            ("/a", "./b/./c/..", "/a/b"),
            ("/a", "//b//c", "/b/c"),
            ("/a", "", "/a"),
            ("/a", ".", "/a"),
            ("/", "sp ace/ü", "/sp ace/ü"),
            // Backslashes and URL escapes are ordinary name characters on Unix: no traversal.
            ("/", "..\\..\\etc", "/..\\..\\etc"),
            ("/", "%2e%2e/%2e%2e/etc", "/%2e%2e/%2e%2e/etc"),
        ];
        for (cwd, arg, want) in cases {
            let cwd = VirtualPath::root().join(cwd);
            assert_eq!(cwd.join(arg).as_str(), want, "{cwd} + {arg:?}");
        }
    }

    #[test]
    fn temp_names_are_recognised_exactly() {
        let cases = [
            (".actorftpd-upload-0123456789abcdef.part", true),
            (".actorftpd-upload-0123456789ABCDEF.part", true),
            (".ACTORFTPD-UPLOAD-0123456789abcdef.PART", true),
            (".actorftpd-upload-0123456789abcde.part", false),
            (".actorftpd-upload-0123456789abcdef0.part", false),
            (".actorftpd-upload-0123456789abcdeg.part", false),
            (".actorftpd-upload-0123456789abcdef.part.keep", false),
            ("actorftpd-upload-0123456789abcdef.part", false),
            (".actorftpd-upload-.part", false),
            ("x.part", false),
            ("", false),
            // Multi-byte characters where the digits should be: no panic, no match.
            (".actorftpd-upload-üüüüüüüü.part", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_temp_name(name), want, "{name:?}");
        }
        let vp = |s: &str| VirtualPath::root().join(s);
        assert!(vp("/.actorftpd-upload-0123456789abcdef.part").names_temp());
        assert!(vp("/d/.actorftpd-upload-0123456789abcdef.part/below").names_temp());
        assert!(!vp("/d/.actorftpd-upload-x.part").names_temp());
        assert!(!VirtualPath::root().names_temp());
    }

    #[test]
    fn relative_form_and_names() {
        let p = VirtualPath::root().join("/a/b.txt");
        assert_eq!(p.to_relative(), PathBuf::from("a/b.txt"));
        assert_eq!(p.file_name(), "b.txt");
        assert_eq!(p.parent().as_str(), "/a");
        assert_eq!(VirtualPath::root().to_relative(), PathBuf::from("."));
        assert_eq!(VirtualPath::root().file_name(), "/");
        assert_eq!(VirtualPath::root().parent(), VirtualPath::root());
    }

    #[test]
    fn names_that_are_not_utf8_reach_the_disk_as_their_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let sent = rawname::decode(b"dir/caf\xe9 \xff.txt");
        let p = VirtualPath::root().join(&sent);
        assert_eq!(
            p.to_relative().as_os_str().as_bytes(),
            b"dir/caf\xe9 \xff.txt"
        );
        assert_eq!(p.to_string(), "/dir/caf\u{FFFD} \u{FFFD}.txt");
        // An overlong-encoded slash is two bytes of a name, never a separator.
        let sneaky = VirtualPath::root().join(&rawname::decode(b"a\xc0\xafb"));
        assert_eq!(sneaky.components().count(), 1);
        assert_eq!(sneaky.to_relative().as_os_str().as_bytes(), b"a\xc0\xafb");
    }
}
