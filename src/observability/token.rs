//! The admin endpoint's secret: parsed, generated, read from and written to its token file.
//!
//! It never shows the secret (`Debug` masks it) and compares it in constant time. It must not
//! know the endpoint's HTTP or the daemon's actors: the configuration holds a token, and `who`
//! reads one.

use crate::auth::password::constant_time_eq;
use std::path::Path;

/// Shortest token accepted from a token file (a generated one is 40 characters).
const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted (and most of a token file read).
const MAX_TOKEN_LEN: usize = 1024;
/// Characters in a generated token (from a 57-letter alphabet: about 233 bits).
const GENERATED_TOKEN_LEN: usize = 40;

/// The secret the admin endpoint asks for. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(****)")
    }
}

impl AdminToken {
    /// A token as written in a file: its first line, trimmed.
    /// SECURITY: long enough to resist guessing, and only visible ASCII so that it fits in a
    /// header as it is and cannot smuggle a line break into the request `who` sends.
    pub fn parse(text: &str) -> Result<AdminToken, String> {
        let token = text.lines().next().unwrap_or("").trim();
        if token.len() < MIN_TOKEN_LEN || token.len() > MAX_TOKEN_LEN {
            return Err(format!(
                "the token must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters long"
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be printable ASCII without spaces".into());
        }
        Ok(AdminToken(token.to_owned()))
    }

    /// A fresh random token.
    pub fn generate() -> Result<AdminToken, String> {
        crate::auth::random_password(GENERATED_TOKEN_LEN).map(AdminToken)
    }

    /// What `who` sends.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), presented)
    }

    /// Reads a token file (for `who`): whatever its owner and mode, the daemon checked those.
    pub fn read(path: &Path) -> Result<AdminToken, String> {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("cannot read admin token file {}: {e}", path.display()))?;
        let text = read_small(file, path)?;
        AdminToken::parse(&text).map_err(|e| format!("admin token file {}: {e}", path.display()))
    }

    /// The daemon's token: read from `path`, or generated and written there (mode 0600) when no
    /// such file exists.
    ///
    /// SECURITY: like sshd with its keys, refuse a file that others could read or write (the
    /// secret would protect nothing), and one owned by another user (who knows it, then).
    pub fn load_or_create(path: &Path) -> Result<AdminToken, String> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let shown = path.display();
        let token = AdminToken::generate()?;
        // create_new is O_CREAT|O_EXCL: it never follows a symlink planted at `path`.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut f) => {
                use std::io::Write;
                writeln!(f, "{}", token.0)
                    .and_then(|()| f.sync_all())
                    .map_err(|e| format!("cannot write admin token file {shown}: {e}"))?;
                log::info!("created admin token file {shown} (mode 0600)");
                return Ok(token);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create admin token file {shown}: {e}")),
        }
        // SECURITY: the checks and the read are made on one handle, opened without following a
        // symlink, so a link planted at `path` cannot swap another file in between.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(|e| format!("cannot open admin token file {shown} (not a symlink): {e}"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("admin token file {shown}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("admin token file {shown} is not a regular file"));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "admin token file {shown} is accessible by others (mode {mode:03o}); chmod 600 it"
            ));
        }
        let me = rustix::process::geteuid().as_raw();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(format!(
                "admin token file {shown} belongs to uid {}, not to this user ({me}) or root",
                meta.uid()
            ));
        }
        let text = read_small(file, path)?;
        AdminToken::parse(&text).map_err(|e| format!("admin token file {shown}: {e}"))
    }
}

/// At most `MAX_TOKEN_LEN` and a line ending of an open file, as text.
fn read_small(f: std::fs::File, path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut text = String::new();
    f.take(MAX_TOKEN_LEN as u64 + 2)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read admin token file {}: {e}", path.display()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_printable_and_never_shown() {
        assert!(AdminToken::parse("short").is_err());
        assert!(AdminToken::parse("with a space inside it").is_err());
        assert!(AdminToken::parse("0123456789abcdef\x1b[2J").is_err());
        assert!(AdminToken::parse(&"x".repeat(MAX_TOKEN_LEN + 1)).is_err());
        let t = AdminToken::parse("  0123456789abcdef  \nsecond line").expect("first line");
        assert_eq!(t.as_str(), "0123456789abcdef");
        assert_eq!(format!("{t:?}"), "AdminToken(****)");
        let g = AdminToken::generate().expect("random");
        assert_eq!(g.as_str().len(), GENERATED_TOKEN_LEN);
        assert_ne!(g, AdminToken::generate().expect("random"));
    }

    #[test]
    fn token_file_is_created_private_and_refused_when_others_can_read_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("admin-token");
        let created = AdminToken::load_or_create(&path).expect("created");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            AdminToken::load_or_create(&path).expect("read back"),
            created
        );
        assert_eq!(AdminToken::read(&path).expect("who reads it"), created);
        for loose in [0o640, 0o604, 0o620] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).expect("chmod");
            let err = AdminToken::load_or_create(&path).expect_err("refused");
            assert!(err.contains("chmod 600"), "{err}");
        }
        // A symlink planted where the file should be is not followed to create a file.
        let target = dir.path().join("elsewhere");
        let link = dir.path().join("planted");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        assert!(AdminToken::load_or_create(&link).is_err());
        assert!(!target.exists(), "nothing written through the symlink");
    }
}
