//! The user database: users, permissions and allowed networks, loaded from the users file.
//!
//! The users file is TOML: `[[user]]` tables with an Argon2 `password_hash` (PHC string), a
//! root, permissions, optional allowed source networks and an `enabled` flag, and an optional
//! `[anonymous]` table. Plain-text passwords are refused at start-up. A password is held in a
//! type whose `Debug` never shows it. Verification does the same work, and gives the same
//! answer, for an unknown user, a disabled user, a disallowed network and a wrong password, so
//! nothing tells which names exist. Argon2 is CPU-heavy: the Session asks the Authenticator
//! pool (auth/authenticator.rs), so it never runs on a worker Arbiter. Passwords and hashing
//! are in auth/password.rs.

use super::db::{parse_networks as parse_list_networks, parse_permissions, Database, Row};
use super::password::{check_cost, decoy_like, Argon2Memory, Credential, Password};
use super::permissions::{IpNet, Permissions};
use super::roots::{root_or_storage, StorageEntry};
use crate::file_store::object::{Bucket, Location};
use crate::file_store::Jail;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml::Spanned;

/// Names that log in as the anonymous user when `[anonymous]` is configured (RFC 1635).
pub const ANONYMOUS_NAMES: [&str; 2] = ["anonymous", "ftp"];

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub credential: Credential,
    /// The root folder on the local disk; with `storage`, its URL (for logs).
    pub root: PathBuf,
    /// The root in object storage (`storage = "s3://BUCKET/PREFIX"`), instead of a folder.
    pub storage: Option<Location>,
    pub permissions: Permissions,
    /// Source networks this user may log in from; empty means any.
    pub allowed_networks: Vec<IpNet>,
    pub enabled: bool,
    /// The anonymous user accepts any password (RFC 1635).
    pub anonymous: bool,
    /// This user logs in only over TLS and transfers only with PROT P.
    pub require_tls: bool,
    /// The root, opened once at start-up and shared by all of the user's sessions (one file
    /// descriptor per user, not per session). `None`: each login opens it (users built in code).
    pub jail: Option<Jail>,
    /// This user's bandwidth limits per transfer (bytes per second; the daemon's apply too).
    pub max_download_rate: crate::data_channel::Rate,
    pub max_upload_rate: crate::data_channel::Rate,
    /// Shown in the 230 after login (lines sanitised by the reply encoder).
    pub welcome: Option<String>,
}

impl User {
    /// An enabled user that may log in from anywhere.
    pub fn new(
        name: &str,
        credential: Credential,
        root: PathBuf,
        permissions: Permissions,
    ) -> User {
        User {
            name: name.to_owned(),
            credential,
            root,
            storage: None,
            permissions,
            allowed_networks: Vec::new(),
            enabled: true,
            anonymous: false,
            require_tls: false,
            jail: None,
            max_download_rate: None,
            max_upload_rate: None,
            welcome: None,
        }
    }

    /// The anonymous user (names `anonymous`, `ftp`): any password, its own root.
    pub fn anonymous(root: PathBuf, permissions: Permissions) -> User {
        let mut anon = User::new(
            "anonymous",
            Credential::Plain(Password::new("")),
            root,
            permissions,
        );
        anon.anonymous = true;
        anon
    }

    /// Opens the root now (start-up), so sessions share one handle and a root that cannot be
    /// opened stops the daemon instead of failing every login.
    /// A root in object storage makes its client here; `UserDb::check_storage` reaches it.
    pub fn open_root(mut self) -> Result<User, String> {
        let jail = match &self.storage {
            Some(location) => Jail::object(Bucket::open(location)?),
            None => Jail::open(&self.root)
                .map_err(|e| format!("root {} cannot be opened: {e}", self.root.display()))?,
        };
        self.jail = Some(jail);
        Ok(self)
    }

    /// SECURITY: a user restricted to networks never logs in from elsewhere.
    fn allows(&self, ip: Option<IpAddr>) -> bool {
        if self.allowed_networks.is_empty() {
            return true;
        }
        ip.is_some_and(|ip| self.allowed_networks.iter().any(|n| n.contains(ip)))
    }
}

/// Why a login was refused: for the operator's log only. The client gets the same reply for
/// every one of them (no user enumeration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginRefused {
    UnknownUser,
    WrongPassword,
    Disabled,
    NetworkNotAllowed,
    /// The users database did not answer, or holds an entry that is not a valid user.
    Unavailable,
}

impl LoginRefused {
    /// The log's words for it.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginRefused::UnknownUser => "unknown user",
            LoginRefused::WrongPassword => "wrong password",
            LoginRefused::Disabled => "account disabled",
            LoginRefused::NetworkNotAllowed => "source network not allowed for this account",
            LoginRefused::Unavailable => "user database unavailable or entry invalid (see above)",
        }
    }
}

/// All configured users, by name.
#[derive(Debug)]
pub struct UserDb {
    users: HashMap<String, Arc<User>>,
    anonymous: Option<Arc<User>>,
    /// Checked when the name is unknown, so that case costs what a real check costs.
    decoy: Credential,
    /// Users in SQLite or PostgreSQL instead (`--users sqlite:PATH|postgres://...`), looked up
    /// at each login.
    database: Option<Arc<Database>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    user: Vec<UserEntry>,
    anonymous: Option<AnonymousEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    name: Spanned<String>,
    password: Option<String>,
    password_hash: Option<String>,
    root: Option<PathBuf>,
    storage: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    permissions: Option<Vec<String>>,
    #[serde(default)]
    allowed_networks: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    require_tls: bool,
    max_download_rate: Option<String>,
    max_upload_rate: Option<String>,
    welcome: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnonymousEntry {
    root: Option<Spanned<PathBuf>>,
    storage: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    permissions: Option<Vec<String>>,
    #[serde(default)]
    allowed_networks: Vec<String>,
}

fn yes() -> bool {
    true
}

/// 1-based line of a byte offset in `text` (the users file and the configuration file name the
/// line of a mistake with it).
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn user_rate(s: Option<&str>) -> Result<crate::data_channel::Rate, String> {
    s.map_or(Ok(None), crate::data_channel::parse_rate)
}

/// The most of a welcome message shown (bytes, and lines): a 230 stays a short reply.
const MAX_WELCOME: usize = 2048;
const MAX_WELCOME_LINES: usize = 16;

fn bounded_welcome(text: String) -> String {
    let mut kept: Vec<&str> = text.lines().take(MAX_WELCOME_LINES).collect();
    while kept.iter().map(|l| l.len() + 1).sum::<usize>() > MAX_WELCOME && kept.len() > 1 {
        kept.pop();
    }
    let mut out = kept.join("\n");
    if out.len() > MAX_WELCOME {
        let mut cut = MAX_WELCOME;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn parse_networks(list: &[String]) -> Result<Vec<IpNet>, String> {
    list.iter().map(|n| IpNet::parse(n)).collect()
}

fn is_anonymous(name: &str) -> bool {
    ANONYMOUS_NAMES.contains(&name.to_ascii_lowercase().as_str())
}

impl UserDb {
    /// One user (the embedded default).
    pub fn single(user: User) -> UserDb {
        let decoy = decoy_like(&user.credential);
        let mut users = HashMap::new();
        users.insert(user.name.clone(), Arc::new(user));
        UserDb {
            users,
            anonymous: None,
            decoy,
            database: None,
        }
    }

    /// No users at all (the daemon's stand-in until its users database is open).
    pub fn empty() -> UserDb {
        UserDb {
            users: HashMap::new(),
            anonymous: None,
            decoy: Credential::Plain(Password::new("\u{0}decoy")),
            database: None,
        }
    }

    /// The users in a database (opened and migrated): each login looks its user up there.
    pub fn in_database(database: Database) -> UserDb {
        UserDb {
            users: HashMap::new(),
            anonymous: None,
            decoy: database.decoy().clone(),
            database: Some(Arc::new(database)),
        }
    }

    /// Adds anonymous access with `permissions` (callers pass read-only unless told otherwise).
    pub fn with_anonymous(mut self, root: PathBuf, permissions: Permissions) -> UserDb {
        self.anonymous = Some(Arc::new(User::anonymous(root, permissions)));
        self
    }

    /// Reads and validates a users file. Errors are one line naming the file, line and problem.
    pub fn load(path: &Path) -> Result<UserDb, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("users file {}: {e}", path.display()))?;
        UserDb::parse(&text, path.parent().unwrap_or(Path::new(".")))
            .map_err(|e| format!("users file {}: {e}", path.display()))
    }

    /// Parses users-file text; relative roots are taken from `base`. Errors name the line.
    pub fn parse(text: &str, base: &Path) -> Result<UserDb, String> {
        let file: UsersFile = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().replace('\n', " ");
            match e.span() {
                Some(span) => format!("line {}: {msg}", line_of(text, span.start)),
                None => msg,
            }
        })?;
        let mut users = HashMap::new();
        for entry in file.user {
            let line = line_of(text, entry.name.span().start);
            let name = entry.name.into_inner();
            let fail = |why: String| format!("line {line}: user {name:?}: {why}");
            if name.is_empty() || name.chars().any(|c| c.is_control() || c == ' ') {
                return Err(fail(
                    "a name must be non-empty, without spaces or control characters".into(),
                ));
            }
            if is_anonymous(&name) {
                return Err(fail(
                    "this name is reserved; configure an [anonymous] table instead".into(),
                ));
            }
            let credential = match (entry.password, entry.password_hash) {
                // SECURITY: a readable users file must not hand out passwords.
                (Some(_), _) => {
                    return Err(fail(
                        "plain-text password refused; store an Argon2 hash as password_hash \
                         (make one with `actorftpd hash-password`)"
                            .into(),
                    ))
                }
                (None, Some(h)) => {
                    argon2::password_hash::PasswordHash::new(&h).map_err(|e| {
                        fail(format!("password_hash is not an Argon2 PHC string: {e}"))
                    })?;
                    Credential::Argon2(h)
                }
                (None, None) => return Err(fail("password_hash is missing".into())),
            };
            let (root, storage) = root_or_storage(
                entry.root,
                StorageEntry {
                    storage: entry.storage,
                    endpoint: entry.endpoint,
                    region: entry.region,
                },
                base,
            )
            .map_err(fail)?;
            let permissions = match entry.permissions {
                None => Permissions::ALL,
                Some(names) => Permissions::from_names(&names).map_err(fail)?,
            };
            let allowed_networks = parse_networks(&entry.allowed_networks).map_err(fail)?;
            let user = User {
                name: name.clone(),
                credential,
                root,
                storage,
                permissions,
                allowed_networks,
                enabled: entry.enabled,
                anonymous: false,
                require_tls: entry.require_tls,
                jail: None,
                max_download_rate: user_rate(entry.max_download_rate.as_deref()).map_err(fail)?,
                max_upload_rate: user_rate(entry.max_upload_rate.as_deref()).map_err(fail)?,
                welcome: entry.welcome.map(bounded_welcome),
            }
            .open_root()
            .map_err(fail)?;
            if users.insert(name.clone(), Arc::new(user)).is_some() {
                return Err(fail("listed twice".into()));
            }
        }
        let anonymous = match file.anonymous {
            None => None,
            Some(a) => {
                let line = text.find("[anonymous]").map_or(0, |at| line_of(text, at));
                let fail = |why: String| format!("line {line}: [anonymous]: {why}");
                let (root, storage) = root_or_storage(
                    a.root.map(Spanned::into_inner),
                    StorageEntry {
                        storage: a.storage,
                        endpoint: a.endpoint,
                        region: a.region,
                    },
                    base,
                )
                .map_err(fail)?;
                // Anonymous users are read-only unless the file grants more, name by name.
                let permissions = match a.permissions {
                    None => Permissions::READ_ONLY,
                    Some(names) => Permissions::from_names(&names).map_err(fail)?,
                };
                let mut anon = User::anonymous(root, permissions);
                anon.storage = storage;
                anon.allowed_networks = parse_networks(&a.allowed_networks).map_err(fail)?;
                Some(Arc::new(anon.open_root().map_err(fail)?))
            }
        };
        if users.is_empty() && anonymous.is_none() {
            return Err("no [[user]] entries and no [anonymous] table".to_owned());
        }
        // SECURITY: an unknown name costs as much as the most expensive real check, so a
        // cheap reply cannot tell that a name does not exist (the 530's fixed deadline in the
        // Session hides the rest of the difference).
        let decoy = users
            .values()
            .max_by_key(|u| check_cost(&u.credential))
            .map(|u| decoy_like(&u.credential))
            .unwrap_or(Credential::Plain(Password::new("\u{0}decoy")));
        Ok(UserDb {
            users,
            anonymous,
            decoy,
            database: None,
        })
    }

    /// Checks a login from `source`. The same work is done, and the same `None` returned, for
    /// an unknown name, a disabled user, a disallowed network and a wrong password (no user
    /// enumeration). Blocking: may run Argon2.
    pub fn authenticate(
        &self,
        name: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Option<Arc<User>> {
        self.authenticate_with(name, password, source, &mut Argon2Memory::default())
            .ok()
    }

    /// `authenticate` with a reused Argon2 work area (the Authenticator's threads keep one),
    /// and why a refused login was refused (for the log: the same work is done for each).
    pub fn authenticate_with(
        &self,
        name: &str,
        password: &str,
        source: Option<IpAddr>,
        memory: &mut Argon2Memory,
    ) -> Result<Arc<User>, LoginRefused> {
        if let Some(anon) = self.anonymous.as_ref().filter(|_| is_anonymous(name)) {
            return match anon.allows(source) {
                true => Ok(anon.clone()),
                false => Err(LoginRefused::NetworkNotAllowed),
            };
        }
        if let Some(db) = &self.database {
            return self.authenticate_in(db, name, password, source, memory);
        }
        self.check(self.users.get(name), password, source, memory)
    }

    /// The same checks, and the same costs, for a user looked up in the database now (so what
    /// `actorftpd user` changed holds at this login). A database that cannot answer, or a row
    /// that is not a valid user, refuses the login (logged; the client sees a wrong password).
    fn authenticate_in(
        &self,
        db: &Database,
        name: &str,
        password: &str,
        source: Option<IpAddr>,
        memory: &mut Argon2Memory,
    ) -> Result<Arc<User>, LoginRefused> {
        let found = db
            .find(name)
            .and_then(|row| row.map(|r| user_of(db, r)).transpose());
        match found {
            Ok(user) => self.check(user.map(Arc::new).as_ref(), password, source, memory),
            Err(e) => {
                log::warn!("login for {name:?} refused: {e}");
                // SECURITY: the same work as any other refusal.
                let _ = self.decoy.verify_with(password, memory);
                Err(LoginRefused::Unavailable)
            }
        }
    }

    /// SECURITY: the password is checked whatever else is wrong, and an unknown name costs a
    /// decoy's check: every refusal costs the same.
    fn check(
        &self,
        user: Option<&Arc<User>>,
        password: &str,
        source: Option<IpAddr>,
        memory: &mut Argon2Memory,
    ) -> Result<Arc<User>, LoginRefused> {
        match user {
            Some(user) => {
                let ok = user.credential.verify_with(password, memory);
                // The account's state first: the operator learns that a disabled account or a
                // closed network was tried, whatever the password.
                if !user.enabled {
                    Err(LoginRefused::Disabled)
                } else if !user.allows(source) {
                    Err(LoginRefused::NetworkNotAllowed)
                } else if !ok {
                    Err(LoginRefused::WrongPassword)
                } else {
                    Ok(user.clone())
                }
            }
            None => {
                let _ = self.decoy.verify_with(password, memory);
                Err(LoginRefused::UnknownUser)
            }
        }
    }

    /// The largest Argon2 work area any configured hash needs, in 1 KiB blocks (0 if none).
    pub fn argon2_blocks(&self) -> usize {
        self.users
            .values()
            .map(|u| &u.credential)
            .chain(self.database.as_ref().map(|_| &self.decoy))
            .filter_map(|c| match c {
                Credential::Argon2(phc) => argon2::password_hash::PasswordHash::new(phc)
                    .ok()
                    .and_then(|h| argon2::Params::try_from(&h).ok())
                    .map(|p| p.block_count()),
                Credential::Plain(_) => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Whether `name` is an account that may log in only over TLS (`require_tls`). Asked at
    /// USER, so such an account is refused in clear before any password is sent or checked.
    /// A database user's flag is read at the password check (the Session refuses it there, as
    /// a wrong password: the same reply and delay).
    pub fn requires_tls(&self, name: &str) -> bool {
        self.users.get(name).is_some_and(|u| u.require_tls)
    }

    /// Every root on the local disk (each user's and the anonymous one), each once, in a
    /// stable order: for start-up housekeeping such as `file_store::sweep_temp_files`.
    pub fn roots(&self) -> Vec<&Path> {
        let mut roots: Vec<&Path> = self
            .users
            .values()
            .chain(self.anonymous.iter())
            .filter(|u| u.storage.is_none())
            .map(|u| u.root.as_path())
            .collect();
        roots.sort();
        roots.dedup();
        roots
    }

    /// Every root in object storage, each once: the start-up check that each is reachable.
    pub fn buckets(&self) -> Vec<Bucket> {
        let mut seen = std::collections::HashSet::new();
        self.users
            .values()
            .chain(self.anonymous.iter())
            .filter_map(|u| u.jail.as_ref()?.bucket().cloned())
            .filter(|b| seen.insert(b.location().clone()))
            .collect()
    }

    /// Whether `name` logs in anonymously (the PASS prompt says so).
    pub fn is_anonymous_name(&self, name: &str) -> bool {
        self.anonymous.is_some() && is_anonymous(name)
    }

    pub fn len(&self) -> usize {
        self.users.len() + usize::from(self.anonymous.is_some())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The `User` a database row describes, checked as a users-file entry is; its object-storage
/// root reuses the client made for the same location before. Blocking (a local root is stat'ed).
fn user_of(db: &Database, row: Row) -> Result<User, String> {
    let (name, hash, root, storage, endpoint, region, permissions, networks, enabled, tls) = row;
    let fail = |e: String| format!("user {name:?}: {e}");
    argon2::password_hash::PasswordHash::new(&hash)
        .map_err(|e| fail(format!("password_hash is not an Argon2 PHC string: {e}")))?;
    let entry = StorageEntry {
        storage,
        endpoint,
        region,
    };
    let (root, location) =
        root_or_storage(root.map(PathBuf::from), entry, Path::new("/")).map_err(fail)?;
    let permissions = parse_permissions(&permissions).map_err(fail)?;
    let mut user = User::new(&name, Credential::Argon2(hash), root, permissions);
    user.allowed_networks = parse_list_networks(&networks).map_err(fail)?;
    user.enabled = enabled;
    user.require_tls = tls;
    if let Some(location) = location {
        user.jail = Some(db.jail_for(&location)?);
        user.storage = Some(location);
    }
    Ok(user)
}

#[cfg(test)]
#[path = "users_tests.rs"]
mod tests;
