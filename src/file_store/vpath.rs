//! `VirtualPath`: a client-visible path, resolved lexically inside the user's root.
//!
//! This is the first half of the jail: whatever the client sends (`..`, `//`, absolute paths),
//! the result is a normalised absolute path that never climbs above `/`. The second half is
//! the FileStore opening that path relative to the root directory handle, so a symlink cannot
//! lead outside either.

use std::fmt;
use std::path::PathBuf;

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

    /// The path relative to the root handle, as the FileStore opens it (`.` for the root).
    pub fn to_relative(&self) -> PathBuf {
        if self.is_root() {
            PathBuf::from(".")
        } else {
            PathBuf::from(&self.0[1..])
        }
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
        f.write_str(&self.0)
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
    fn relative_form_and_names() {
        let p = VirtualPath::root().join("/a/b.txt");
        assert_eq!(p.to_relative(), PathBuf::from("a/b.txt"));
        assert_eq!(p.file_name(), "b.txt");
        assert_eq!(p.parent().as_str(), "/a");
        assert_eq!(VirtualPath::root().to_relative(), PathBuf::from("."));
        assert_eq!(VirtualPath::root().file_name(), "/");
        assert_eq!(VirtualPath::root().parent(), VirtualPath::root());
    }
}
