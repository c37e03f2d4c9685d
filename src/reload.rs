//! SIGHUP's re-reading of the users file and the TLS certificate: each is read and validated
//! again as at start; a file with a mistake is refused with one log line and the one in force
//! stays. What was accepted is handed to `Reloader::on_users` / `on_tls`: `main` installs hooks
//! that `Shared::set` the users file the Sessions and the Authenticator read at each login, and
//! the TLS configuration read at each AUTH TLS and implicit-TLS connection (`crate::swap`).
//!
//! It never touches sessions: sessions that are running keep what they started with.

use crate::auth::UserDb;
use crate::config_file::TlsFiles;
use rustls::ServerConfig;
use std::path::PathBuf;
use std::sync::Arc;

type Hook<T> = Box<dyn Fn(Arc<T>) + Send + Sync>;

/// What SIGHUP re-reads, and what it last accepted (to say whether anything changed).
pub struct Reloader {
    users: Option<PathBuf>,
    tls: Option<TlsFiles>,
    tls_on: bool,
    users_text: Option<Vec<u8>>,
    tls_text: Option<(Vec<u8>, Vec<u8>)>,
    on_users: Option<Hook<UserDb>>,
    on_tls: Option<Hook<ServerConfig>>,
}

fn read(path: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

impl Reloader {
    /// Remembers the files as they are now (what the daemon started with).
    pub fn new(users: Option<PathBuf>, tls: Option<TlsFiles>) -> Reloader {
        let users_text = users.as_deref().and_then(read);
        let tls_text = tls
            .as_ref()
            .and_then(|t| Some((read(&t.cert)?, read(&t.key)?)));
        Reloader {
            tls_on: tls.is_some(),
            users,
            tls,
            users_text,
            tls_text,
            on_users: None,
            on_tls: None,
        }
    }

    /// THE HOOK: called with each accepted new users file (e.g. `move |db| shared.set(db)`).
    pub fn on_users(mut self, hook: impl Fn(Arc<UserDb>) + Send + Sync + 'static) -> Self {
        self.on_users = Some(Box::new(hook));
        self
    }

    /// THE HOOK: called with each accepted new TLS configuration (certificate and key).
    pub fn on_tls(mut self, hook: impl Fn(Arc<ServerConfig>) + Send + Sync + 'static) -> Self {
        self.on_tls = Some(Box::new(hook));
        self
    }

    /// Re-reads what changed and returns one line per file: unchanged, taken, or refused and
    /// why. Blocks on the disk (and Argon2 parameters parsing): run it off the actor threads.
    pub fn hangup(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(path) = &self.users {
            let text = read(path);
            if text.is_some() && text == self.users_text {
                lines.push(format!("users file {} unchanged", path.display()));
            } else {
                match crate::config_file::load_users(path, self.tls_on) {
                    Ok(db) => {
                        let n = db.len();
                        self.users_text = text;
                        match &self.on_users {
                            Some(hook) => {
                                hook(Arc::new(db));
                                lines.push(format!(
                                    "users file {} reloaded: {n} account(s) for new logins",
                                    path.display()
                                ));
                            }
                            None => lines.push(format!(
                                "users file {} changed and is valid ({n} account(s)); it takes \
                                 effect at the next restart",
                                path.display()
                            )),
                        }
                    }
                    Err(e) => lines.push(format!("refused, the previous one stays: {e}")),
                }
            }
        }
        if let Some(files) = &self.tls {
            let text = read(&files.cert).zip(read(&files.key));
            if text.is_some() && text == self.tls_text {
                lines.push(format!(
                    "TLS certificate {} unchanged",
                    files.cert.display()
                ));
            } else {
                match crate::tls::load_config(&files.cert, &files.key) {
                    Ok(config) => {
                        self.tls_text = text;
                        match &self.on_tls {
                            Some(hook) => {
                                hook(config);
                                lines.push(format!(
                                    "TLS certificate {} reloaded for new connections",
                                    files.cert.display()
                                ));
                            }
                            None => lines.push(format!(
                                "TLS certificate {} changed and is valid; it takes effect at the \
                                 next restart",
                                files.cert.display()
                            )),
                        }
                    }
                    Err(e) => lines.push(format!("refused, the previous one stays: {e}")),
                }
            }
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_users_file_is_refused_and_a_good_one_taken() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("r");
        std::fs::create_dir(&root).expect("root");
        let users = dir.path().join("users.toml");
        let hash = crate::auth::hash_password("pw").expect("hash");
        let good = format!("[[user]]\nname = \"a\"\npassword_hash = \"{hash}\"\nroot = \"r\"\n");
        std::fs::write(&users, &good).expect("write");
        let taken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = taken.clone();
        let mut r = Reloader::new(Some(users.clone()), None).on_users(move |db| {
            seen.store(db.len(), std::sync::atomic::Ordering::SeqCst);
        });
        assert!(r.hangup()[0].contains("unchanged"));
        std::fs::write(&users, format!("{good}\nbogus = 1\n")).expect("write");
        let line = &r.hangup()[0];
        assert!(
            line.contains("refused") && line.contains("line 6"),
            "{line}"
        );
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 0);
        std::fs::write(&users, good.replace("\"a\"", "\"b\"")).expect("write");
        assert!(r.hangup()[0].contains("reloaded"));
        assert_eq!(taken.load(std::sync::atomic::Ordering::SeqCst), 1);
        let tls_only = good.replace("root", "require_tls = true\nroot");
        std::fs::write(&users, tls_only).expect("write");
        let line = &r.hangup()[0];
        assert!(line.contains("require_tls"), "{line}");
    }
}
