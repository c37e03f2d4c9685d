//! Passwords and credentials: a password type whose `Debug` never shows it, Argon2 (PHC)
//! verification with a reusable work area, decoys that cost what a real check costs, and
//! hashing, random passwords and reading a new one for `actorftpd hash-password` and `user`.
//! No users and no actors here.

use std::fmt;

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
    /// A plain password: only the embedded default's one-off user, never from a file.
    Plain(Password),
    /// An Argon2 PHC string (`$argon2id$v=19$...`).
    Argon2(String),
}

/// Argon2's work area (19 MiB with the default parameters), kept and reused by one thread.
/// Allocating it per check made every hashing thread's malloc arena hold freed work areas for
/// good (hundreds of MiB after a login storm).
#[derive(Default)]
pub struct Argon2Memory(Vec<argon2::Block>);

impl Argon2Memory {
    /// A work area of `blocks` KiB, allocated (and touched) now.
    pub fn with_blocks(blocks: usize) -> Argon2Memory {
        Argon2Memory(vec![argon2::Block::default(); blocks])
    }
}

impl Credential {
    /// Checks a password. Plain passwords are compared in constant time.
    pub fn verify(&self, given: &str) -> bool {
        self.verify_with(given, &mut Argon2Memory::default())
    }

    /// Checks a password using `memory` as Argon2's work area.
    pub fn verify_with(&self, given: &str, memory: &mut Argon2Memory) -> bool {
        match self {
            Credential::Plain(p) => constant_time_eq(p.expose().as_bytes(), given.as_bytes()),
            Credential::Argon2(phc) => verify_argon2(phc, given, memory).unwrap_or(false),
        }
    }
}

/// Recomputes an Argon2 PHC hash for `given` (same algorithm, version, parameters and salt) in
/// `memory`, and compares in constant time. `None` if the stored string cannot be used.
fn verify_argon2(phc: &str, given: &str, memory: &mut Argon2Memory) -> Option<bool> {
    use argon2::password_hash::PasswordHash;
    let hash = PasswordHash::new(phc).ok()?;
    let algorithm = argon2::Algorithm::try_from(hash.algorithm).ok()?;
    let version = match hash.version {
        Some(v) => argon2::Version::try_from(v).ok()?,
        None => argon2::Version::default(),
    };
    let params = argon2::Params::try_from(&hash).ok()?;
    let expected = hash.hash?;
    let mut salt_buf = [0u8; 64];
    let salt = hash.salt?.decode_b64(&mut salt_buf).ok()?;
    let blocks = params.block_count();
    if memory.0.len() < blocks {
        memory.0.resize(blocks, argon2::Block::default());
    }
    let mut out_buf = [0u8; 64];
    let out = out_buf.get_mut(..expected.len())?;
    argon2::Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(given.as_bytes(), salt, out, &mut memory.0[..blocks])
        .ok()?;
    Some(constant_time_eq(out, expected.as_bytes()))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        diff |= x ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// How much work checking `c` takes, to compare credentials (Argon2: memory × passes × lanes).
pub(super) fn check_cost(c: &Credential) -> u64 {
    match c {
        Credential::Plain(_) => 0,
        Credential::Argon2(phc) => argon2::password_hash::PasswordHash::new(phc)
            .ok()
            .and_then(|h| argon2::Params::try_from(&h).ok())
            .map(|p| u64::from(p.m_cost()) * u64::from(p.t_cost()) * u64::from(p.p_cost()))
            .unwrap_or(0),
    }
}

/// A decoy of the same kind, and so the same cost, as a real credential.
pub(super) fn decoy_like(c: &Credential) -> Credential {
    const DECOY: &str = "\u{0}decoy";
    match c {
        Credential::Plain(_) => Credential::Plain(Password::new(DECOY)),
        Credential::Argon2(phc) => {
            let params = argon2::password_hash::PasswordHash::new(phc)
                .ok()
                .and_then(|h| argon2::Params::try_from(&h).ok())
                .unwrap_or_default();
            let hasher =
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            match hash_with(&hasher, DECOY) {
                Ok(h) => Credential::Argon2(h),
                Err(_) => Credential::Plain(Password::new(DECOY)),
            }
        }
    }
}

/// An Argon2id PHC string for `password` with the crate's default parameters (OWASP's
/// m=19 MiB, t=2, p=1) and a random salt. `actorftpd hash-password` prints this.
pub fn hash_password(password: &str) -> Result<String, String> {
    hash_with(&argon2::Argon2::default(), password)
}

pub(super) fn hash_with(hasher: &argon2::Argon2<'_>, password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    hasher
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// A new password from the terminal without echo (asked twice), or from one line of standard
/// input; never from the command line, where `ps` would show it. Refuses an empty one.
/// For `actorftpd hash-password` and `actorftpd user add|passwd`.
pub fn read_new_password() -> Result<String, String> {
    use std::io::{BufRead, IsTerminal};
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.is_empty() {
        return Err("an empty password is refused (give one line on standard input)".into());
    }
    Ok(password)
}

/// A random password of `len` letters and digits from the OS generator.
pub fn random_password(len: usize) -> Result<String, String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    // Rejection sampling keeps every character equally likely.
    let limit = 256 - 256 % ALPHABET.len();
    while out.len() < len {
        getrandom::getrandom(&mut buf).map_err(|e| format!("no randomness from the OS: {e}"))?;
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

    #[test]
    fn reused_work_area_verifies_like_the_crate() {
        use argon2::password_hash::{PasswordHash, PasswordVerifier};
        let mut memory = Argon2Memory::default();
        // Two parameter sets through one work area, checked against the crate's own verifier.
        let small = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(64, 1, 1, None).expect("params"),
        );
        for phc in [
            hash_password("s3cret").expect("hash"),
            hash_with(&small, "s3cret").expect("hash"),
        ] {
            let c = Credential::Argon2(phc.clone());
            let parsed = PasswordHash::new(&phc).expect("phc");
            for given in ["s3cret", "s3cre", "S3cret", ""] {
                let want = argon2::Argon2::default()
                    .verify_password(given.as_bytes(), &parsed)
                    .is_ok();
                assert_eq!(c.verify_with(given, &mut memory), want, "{phc} {given:?}");
            }
        }
        assert!(!Credential::Argon2("$argon2id$garbage".into()).verify_with("x", &mut memory));
    }

    #[test]
    fn hashes_verify_and_debug_is_redacted() {
        let phc = hash_password("hunter2").expect("hash");
        assert!(phc.starts_with("$argon2id$"));
        let c = Credential::Argon2(phc);
        assert!(c.verify("hunter2"));
        assert!(!c.verify("hunter3"));
        let p = Credential::Plain(Password::new("hunter2"));
        assert!(!format!("{p:?}").contains("hunter2"));
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
