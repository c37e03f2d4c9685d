//! Users, credentials and permissions.
//!
//! The users file is TOML (`[[user]]` tables). A password is held in a type whose `Debug`
//! never shows it. Verification is the same for an unknown user and a wrong password, so
//! replies and timing do not tell which names exist. Argon2 verification is CPU-heavy: the
//! Session runs `verify` on the blocking pool, never on a worker Arbiter.

use serde::Deserialize;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A secret that never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(s: impl Into<String>) -> Password {
        Password(s.into())
    }

    /// The secret itself, for verification and for printing the one-off URL at start-up.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
    }
}

/// How a user's password is checked.
#[derive(Clone, Debug)]
pub enum Credential {
    /// A plain password (the one-off default user, and users files written before hashes).
    Plain(Password),
    /// An Argon2 PHC string (`$argon2id$v=19$...`).
    Argon2(String),
}

impl Credential {
    /// Checks a password. Plain passwords are compared in constant time.
    pub fn verify(&self, given: &str) -> bool {
        match self {
            Credential::Plain(p) => constant_time_eq(p.expose().as_bytes(), given.as_bytes()),
            Credential::Argon2(phc) => {
                use argon2::password_hash::{PasswordHash, PasswordVerifier};
                match PasswordHash::new(phc) {
                    Ok(hash) => argon2::Argon2::default()
                        .verify_password(given.as_bytes(), &hash)
                        .is_ok(),
                    Err(_) => false,
                }
            }
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// What a user may do inside its root. Listing and downloading need `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permissions {
    pub read: bool,
    /// Create new files (STOR of a new name, APPE, STOU).
    pub upload: bool,
    /// Replace or append to existing files.
    pub overwrite: bool,
    pub delete: bool,
    pub rename: bool,
    /// MKD and RMD.
    pub mkdir: bool,
}

impl Permissions {
    pub const ALL: Permissions = Permissions {
        read: true,
        upload: true,
        overwrite: true,
        delete: true,
        rename: true,
        mkdir: true,
    };
    pub const READ_ONLY: Permissions = Permissions {
        read: true,
        upload: false,
        overwrite: false,
        delete: false,
        rename: false,
        mkdir: false,
    };
    const NONE: Permissions = Permissions {
        read: false,
        upload: false,
        overwrite: false,
        delete: false,
        rename: false,
        mkdir: false,
    };

    /// Parses a list of names: `all`, `read-only`, or any of `read upload overwrite delete rename mkdir`.
    pub fn from_names(names: &[String]) -> Result<Permissions, String> {
        let mut p = Permissions::NONE;
        for name in names {
            match name.as_str() {
                "all" => p = Permissions::ALL,
                "read-only" | "read" => p.read = true,
                "upload" => p.upload = true,
                "overwrite" => p.overwrite = true,
                "delete" => p.delete = true,
                "rename" => p.rename = true,
                "mkdir" => p.mkdir = true,
                other => {
                    return Err(format!(
                        "unknown permission {other:?} (known: all, read-only, read, upload, overwrite, delete, rename, mkdir)"
                    ))
                }
            }
        }
        Ok(p)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub credential: Credential,
    pub root: PathBuf,
    pub permissions: Permissions,
}

/// All configured users, by name.
#[derive(Debug, Default)]
pub struct UserDb {
    users: HashMap<String, Arc<User>>,
}

/// Checked against when the user name is unknown, so that case costs what a real check costs.
fn decoy() -> &'static Credential {
    static DECOY: std::sync::OnceLock<Credential> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| Credential::Plain(Password::new("\u{0}decoy")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: String,
    password: Option<String>,
    password_hash: Option<String>,
    root: PathBuf,
    permissions: Option<Vec<String>>,
}

impl UserDb {
    /// One user (the embedded default).
    pub fn single(user: User) -> UserDb {
        let mut users = HashMap::new();
        users.insert(user.name.clone(), Arc::new(user));
        UserDb { users }
    }

    /// Reads and validates a users file. Errors are one line naming the file and the problem.
    pub fn load(path: &Path) -> Result<UserDb, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("users file {}: {e}", path.display()))?;
        UserDb::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| format!("users file {}: {e}", path.display()))
    }

    /// Parses users-file text; relative roots are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<UserDb, String> {
        let file: UsersFile = toml::from_str(text).map_err(|e| e.to_string().replace('\n', " "))?;
        let mut users = HashMap::new();
        for entry in file.user {
            let who = format!("user {:?}", entry.name);
            if entry.name.is_empty() || entry.name.chars().any(|c| c.is_control() || c == ' ') {
                return Err(format!(
                    "{who}: a name must be non-empty, without spaces or control characters"
                ));
            }
            let credential = match (entry.password, entry.password_hash) {
                (Some(p), None) => Credential::Plain(Password::new(p)),
                (None, Some(h)) => {
                    argon2::password_hash::PasswordHash::new(&h)
                        .map_err(|e| format!("{who}: password_hash is not a PHC string: {e}"))?;
                    Credential::Argon2(h)
                }
                _ => {
                    return Err(format!(
                        "{who}: give exactly one of password or password_hash"
                    ))
                }
            };
            let root = if entry.root.is_absolute() {
                entry.root
            } else {
                base.join(entry.root)
            };
            if !root.is_dir() {
                return Err(format!("{who}: root {} is not a directory", root.display()));
            }
            let permissions = match entry.permissions {
                None => Permissions::ALL,
                Some(names) => {
                    Permissions::from_names(&names).map_err(|e| format!("{who}: {e}"))?
                }
            };
            let user = User {
                name: entry.name.clone(),
                credential,
                root,
                permissions,
            };
            if users.insert(entry.name.clone(), Arc::new(user)).is_some() {
                return Err(format!("{who} is listed twice"));
            }
        }
        if users.is_empty() {
            return Err("no [[user]] entries".to_owned());
        }
        Ok(UserDb { users })
    }

    /// Checks a login. The same work is done, and the same `None` returned, for an unknown
    /// name and for a wrong password (no user enumeration). Blocking: may run Argon2.
    pub fn authenticate(&self, name: &str, password: &str) -> Option<Arc<User>> {
        match self.users.get(name) {
            Some(user) if user.credential.verify(password) => Some(user.clone()),
            Some(_) => None,
            None => {
                let _ = decoy().verify(password);
                None
            }
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// A random password of `len` letters and digits from the OS generator.
pub fn random_password(len: usize) -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::getrandom(&mut buf).map_err(|e| format!("no randomness from the OS: {e}"))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(ALPHABET[b as usize % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(text: &str) -> Result<UserDb, String> {
        UserDb::parse(text, &std::env::temp_dir())
    }

    #[test]
    fn users_file_parses_and_authenticates() {
        let dir = std::env::temp_dir();
        let text = format!(
            "[[user]]\nname = \"alice\"\npassword = \"pw\"\nroot = {:?}\n\n[[user]]\nname = \"bob\"\npassword = \"x\"\nroot = {:?}\npermissions = [\"read-only\"]\n",
            dir, dir
        );
        let users = db(&text).expect("valid");
        assert_eq!(users.len(), 2);
        let alice = users.authenticate("alice", "pw").expect("alice logs in");
        assert_eq!(alice.permissions, Permissions::ALL);
        assert!(users.authenticate("alice", "PW").is_none());
        assert!(users.authenticate("nobody", "pw").is_none());
        assert_eq!(
            users.authenticate("bob", "x").map(|u| u.permissions),
            Some(Permissions::READ_ONLY)
        );
    }

    #[test]
    fn bad_users_files_say_what_is_wrong() {
        let dir = format!("{:?}", std::env::temp_dir());
        let cases = [
            ("[[user]]\nname = \"a\"\n".to_owned(), "missing field"),
            (
                format!("[[user]]\nname=\"a\"\nroot={dir}\n"),
                "exactly one of password",
            ),
            (
                format!(
                    "[[user]]\nname=\"a\"\npassword=\"p\"\nroot={dir}\npermissions=[\"fly\"]\n"
                ),
                "unknown permission",
            ),
            (
                "[[user]]\nname=\"a\"\npassword=\"p\"\nroot=\"/no/such/dir/x\"\n".to_owned(),
                "not a directory",
            ),
            (
                format!("[[user]]\nname=\"a\"\npassword_hash=\"plain\"\nroot={dir}\n"),
                "PHC",
            ),
            (
                format!("[[user]]\nname=\"a\"\npassword=\"p\"\nroot={dir}\ncolour=1\n"),
                "unknown field",
            ),
            ("this is = = not toml".to_owned(), "line 1"),
            (String::new(), "no [[user]]"),
        ];
        for (text, want) in cases {
            let err = db(&text).err().unwrap_or_default();
            assert!(err.contains(want), "{text:?} gave {err:?}, wanted {want:?}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }

    #[test]
    fn password_debug_is_redacted() {
        let c = Credential::Plain(Password::new("hunter2"));
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn random_passwords_are_alphanumeric_and_differ() {
        let a = random_password(16).expect("rng");
        let b = random_password(16).expect("rng");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

    #[test]
    fn constant_time_eq_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
