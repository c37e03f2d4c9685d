//! `actorftpd user add|passwd|del|list|disable|enable NAME`: edits the users in a database.
//!
//! Every argument is checked before a password is asked or the database is opened, and a
//! mistake is one line. Passwords come from the terminal without echo or one line of standard
//! input (`read_new_password`), never from the command line, and are stored as Argon2id hashes;
//! `list` never shows a hash. Opening the database runs the same migrations the daemon runs, so
//! users can be added before the first start. Running daemons see each change at the next login.

use super::{parse_networks, parse_permissions, Database, DbUrl, Row};
use crate::auth::password::{hash_password, read_new_password};
use crate::auth::roots::{root_or_storage, StorageEntry};
use crate::printable::escape_controls;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What `actorftpd user` was asked, as given on the command line (checked by `run`).
#[derive(Debug, Default)]
pub struct UserCommand {
    /// `sqlite:PATH` or `postgres://...` (from `--users`, or the `users` of `--config`).
    pub database: String,
    pub action: String,
    pub name: Option<String>,
    pub root: Option<PathBuf>,
    pub storage: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Comma-separated permission names.
    pub permissions: Option<String>,
    /// Comma-separated CIDR networks.
    pub allowed_networks: Option<String>,
    pub require_tls: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Add,
    Passwd,
    Del,
    List,
    Disable,
    Enable,
}

/// A checked command: what to do, to whom, and the row `add` inserts (its hash still empty).
#[derive(Debug)]
struct Plan {
    action: Action,
    name: String,
    row: Option<Row>,
}

/// SECURITY: a name as the users file accepts it (no spaces or control characters, which would
/// end up in logs and replies), not a reserved anonymous name, and of a sane length.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 255
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "user name {:?}: 1 to 255 bytes, without spaces or control characters",
            escape_controls(name)
        ));
    }
    if crate::auth::ANONYMOUS_NAMES.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "user name {name:?} is reserved for anonymous access (configure it in a users file)"
        ));
    }
    Ok(())
}

impl UserCommand {
    fn plan(&self) -> Result<Plan, String> {
        let action = match self.action.as_str() {
            "add" => Action::Add,
            "passwd" => Action::Passwd,
            "del" => Action::Del,
            "list" => Action::List,
            "disable" => Action::Disable,
            "enable" => Action::Enable,
            other => {
                return Err(format!(
                    "unknown action {:?}: use add, passwd, del, list, disable or enable",
                    escape_controls(other)
                ))
            }
        };
        let name = match (&self.name, action) {
            (None, Action::List) => String::new(),
            (Some(_), Action::List) => return Err("list takes no user name".into()),
            (None, _) => return Err(format!("{} needs a user name", self.action)),
            (Some(name), _) => {
                check_name(name)?;
                name.clone()
            }
        };
        let details = self.root.is_some()
            || self.storage.is_some()
            || self.endpoint.is_some()
            || self.region.is_some()
            || self.permissions.is_some()
            || self.allowed_networks.is_some()
            || self.require_tls;
        if action != Action::Add {
            if details {
                return Err(format!(
                    "--root, --storage, --endpoint, --region, --permissions, --allowed-networks \
                     and --require-tls go with add, not {}",
                    self.action
                ));
            }
            return Ok(Plan {
                action,
                name,
                row: None,
            });
        }
        if self.root.as_ref().is_some_and(|r| !r.is_absolute()) {
            return Err("--root must be an absolute path (each daemon opens it as given)".into());
        }
        let fail = |e: String| format!("user {name:?}: {e}");
        // The same rules as a users-file entry: one root, a folder that exists, or a valid URL.
        let (root, location) = root_or_storage(
            self.root.clone(),
            StorageEntry {
                storage: self.storage.clone(),
                endpoint: self.endpoint.clone(),
                region: self.region.clone(),
            },
            Path::new("/"),
        )
        .map_err(|e| {
            fail(
                e.replace("root (a folder)", "--root DIR")
                    .replace("storage (", "--storage ("),
            )
        })?;
        let permissions = self.permissions.clone().unwrap_or_else(|| "all".into());
        parse_permissions(&permissions).map_err(fail)?;
        let networks = self.allowed_networks.clone().unwrap_or_default();
        parse_networks(&networks).map_err(fail)?;
        let (root, storage, endpoint, region) = match location {
            Some(l) => (None, Some(l.url()), l.endpoint, l.region),
            None => (Some(root.display().to_string()), None, None, None),
        };
        let row = (
            name.clone(),
            String::new(),
            root,
            storage,
            endpoint,
            region,
            permissions,
            networks,
            true,
            self.require_tls,
        );
        Ok(Plan {
            action,
            name,
            row: Some(row),
        })
    }

    /// Checks the arguments, asks for a password if needed, and edits the database. Prints one
    /// line (or the list) on standard output.
    pub fn run(self) -> Result<(), String> {
        let url = DbUrl::parse(&self.database)?;
        let plan = self.plan()?;
        let password = match plan.action {
            Action::Add | Action::Passwd => Some(hash_password(&read_new_password()?)?),
            _ => None,
        };
        let db = Database::open(&url)?;
        let name = &plan.name;
        let missing = || format!("no user {name:?} in {}", url.shown());
        let said = match plan.action {
            Action::Add => {
                let mut row = plan.row.ok_or("nothing to add")?;
                row.1 = password.unwrap_or_default();
                if !db.insert(&row)? {
                    return Err(format!("user {name:?} already exists in {}", url.shown()));
                }
                format!("user {name:?} added")
            }
            Action::Passwd => {
                let hash = password.unwrap_or_default();
                db.set_password(name, &hash)?
                    .then(|| format!("password of {name:?} changed"))
                    .ok_or_else(missing)?
            }
            Action::Del => db
                .delete(name)?
                .then(|| format!("user {name:?} deleted"))
                .ok_or_else(missing)?,
            Action::Disable | Action::Enable => {
                let on = plan.action == Action::Enable;
                db.set_enabled(name, on)?
                    .then(|| format!("user {name:?} {}", if on { "enabled" } else { "disabled" }))
                    .ok_or_else(missing)?
            }
            Action::List => list_text(&db.list()?),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", said.trim_end()).map_err(|e| e.to_string())
    }
}

/// One line per user: name, state, root, permissions, networks (tab-separated; never a hash).
fn list_text(rows: &[Row]) -> String {
    let mut text = String::from("NAME\tSTATE\tROOT\tPERMISSIONS\tNETWORKS\n");
    for (name, _hash, root, storage, _endpoint, _region, permissions, networks, enabled, tls) in
        rows
    {
        let state = match (enabled, tls) {
            (true, false) => "enabled",
            (true, true) => "enabled,tls",
            (false, _) => "disabled",
        };
        let root = root.as_deref().or(storage.as_deref()).unwrap_or("-");
        let networks = if networks.is_empty() { "any" } else { networks };
        let fields = [name.as_str(), state, root, permissions, networks];
        let fields: Vec<_> = fields.iter().map(|f| escape_controls(f)).collect();
        text.push_str(&fields.join("\t"));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(action: &str, name: Option<&str>) -> UserCommand {
        UserCommand {
            database: "sqlite:/nonexistent/u.db".into(),
            action: action.into(),
            name: name.map(str::to_owned),
            ..UserCommand::default()
        }
    }

    #[test]
    fn bad_input_is_refused_before_any_password_or_database() {
        let tmp = std::env::temp_dir();
        let cases: Vec<(UserCommand, &str)> = vec![
            (cmd("frobnicate", Some("a")), "unknown action"),
            (cmd("add", None), "needs a user name"),
            (cmd("list", Some("a")), "no user name"),
            (cmd("del", Some("bad name")), "without spaces"),
            (cmd("del", Some("a\u{7}")), "without spaces"),
            (cmd("add", Some("anonymous")), "reserved"),
            (cmd("add", Some("a")), "--root DIR"),
            (
                UserCommand {
                    root: Some("rel".into()),
                    ..cmd("add", Some("a"))
                },
                "absolute",
            ),
            (
                UserCommand {
                    root: Some(tmp.clone()),
                    storage: Some("s3://b/p".into()),
                    ..cmd("add", Some("a"))
                },
                "not both",
            ),
            (
                UserCommand {
                    root: Some(tmp.clone()),
                    permissions: Some("read,fly".into()),
                    ..cmd("add", Some("a"))
                },
                "unknown permission",
            ),
            (
                UserCommand {
                    root: Some(tmp.clone()),
                    allowed_networks: Some("10.0.0.0/40".into()),
                    ..cmd("add", Some("a"))
                },
                "10.0.0.0/40",
            ),
            (
                UserCommand {
                    root: Some(tmp.clone()),
                    ..cmd("disable", Some("a"))
                },
                "go with add",
            ),
        ];
        for (c, want) in cases {
            let err = c.plan().expect_err(want);
            assert!(err.contains(want) && !err.contains('\n'), "{want}: {err}");
        }
        let ok = UserCommand {
            storage: Some("s3://bucket/pre/fix".into()),
            region: Some("eu-west-1".into()),
            permissions: Some("read,upload".into()),
            ..cmd("add", Some("alice"))
        }
        .plan()
        .expect("valid");
        let row = ok.row.expect("row");
        assert_eq!(row.3.as_deref(), Some("s3://bucket/pre/fix"));
        assert_eq!((row.2, row.5.as_deref()), (None, Some("eu-west-1")));
    }

    #[test]
    fn the_list_shows_no_hash() {
        let row: Row = (
            "alice".into(),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            Some("/srv/alice".into()),
            None,
            None,
            None,
            "all".into(),
            String::new(),
            false,
            false,
        );
        let text = list_text(&[row]);
        assert_eq!(
            text,
            "NAME\tSTATE\tROOT\tPERMISSIONS\tNETWORKS\nalice\tdisabled\t/srv/alice\tall\tany\n"
        );
    }
}
