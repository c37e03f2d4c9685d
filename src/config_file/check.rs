//! `actorftpd check-config`, and the users-file checks a start and a reload share: everything
//! a start would check without binding a socket or touching the roots.

use super::{line_of, resolve, Options};
use crate::auth::db::DbUrl;
use crate::auth::UserDb;
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// Loads the users file and refuses users that need TLS when none is configured.
pub fn load_users(path: &Path, tls_on: bool) -> Result<UserDb, String> {
    let users = UserDb::load(path)?;
    if !tls_on {
        if let Some((line, name)) = first_tls_only_user(path)? {
            return Err(format!(
                "users file {} line {line}: user {name:?} has require_tls = true, but no TLS \
                 is configured (--tls-cert and --tls-key)",
                path.display()
            ));
        }
    }
    Ok(users)
}

/// The first `[[user]]` with `require_tls = true`: its line and name. Reads only those two keys
/// of a file `UserDb::load` has already accepted.
fn first_tls_only_user(path: &Path) -> Result<Option<(usize, String)>, String> {
    #[derive(Deserialize)]
    struct Users {
        #[serde(default)]
        user: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        name: Spanned<String>,
        #[serde(default)]
        require_tls: bool,
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("users file {}: {e}", path.display()))?;
    let users: Users =
        toml::from_str(&text).map_err(|e| format!("users file {}: {e}", path.display()))?;
    Ok(users.user.into_iter().find(|u| u.require_tls).map(|u| {
        let line = line_of(&text, u.name.span().start);
        (line, u.name.into_inner())
    }))
}

/// `actorftpd check-config FILE`: everything a start would check without binding a socket or
/// touching the roots: the file, the users file it names, the TLS files, the `run_as` account.
/// Returns a one-line summary.
pub fn check(path: &Path) -> Result<String, String> {
    let settings = resolve(Options::load(path)?)?;
    let tls_on = settings.tls.is_some();
    let mut summary = format!("{}: ok", path.display());
    if let Some(url) = settings.users.as_ref().filter(|u| DbUrl::is_database(u)) {
        let url = DbUrl::parse(&url.display().to_string())?;
        summary.push_str(&format!("; users in {} (opened at start)", url.shown()));
    } else if let Some(users) = &settings.users {
        let db = load_users(users, tls_on)?;
        summary.push_str(&format!("; {} account(s) in {}", db.len(), users.display()));
    }
    if let Some(files) = &settings.tls {
        crate::tls::load_config(&files.cert, &files.key)?;
        summary.push_str("; TLS certificate and key fit");
    }
    if let Some(spec) = &settings.run_as {
        let who = crate::privileges::RunAs::parse(spec)?.lookup()?;
        summary.push_str(&format!("; runs as {who}"));
    }
    Ok(summary)
}
