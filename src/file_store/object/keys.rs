//! Keys in a user's prefix, from client paths.
//!
//! SECURITY: a `VirtualPath` is already normalised (absolute, no `.`, `..` or empty component),
//! so the key made from it names something under the prefix and nowhere else; opendal roots
//! every key at the prefix and percent-encodes it in the request. S3 limits a key to 1024
//! bytes: a longer one is refused here as a bad name, before any request.

use crate::error::StoreError;
use crate::file_store::VirtualPath;

/// The most bytes of a key S3 accepts.
const MAX_KEY: usize = 1024;

/// The key of a file at `path`, relative to the prefix (opendal adds the prefix).
/// SECURITY: the same invisibility of upload temporary names as on the disk.
pub fn file_key(path: &VirtualPath, prefix: &str) -> Result<String, StoreError> {
    if path.names_temp() {
        return Err(StoreError::NotFound);
    }
    let key = path.as_str().trim_start_matches('/').to_owned();
    // The full key is PREFIX/KEY, plus the `/` of a folder marker.
    if prefix.len() + 1 + key.len() + 1 > MAX_KEY {
        return Err(StoreError::InvalidName);
    }
    Ok(key)
}

/// The key of the folder at `path` (`""` for the root), ending in `/`: the folder's marker and
/// the prefix of its contents.
pub fn dir_key(path: &VirtualPath, prefix: &str) -> Result<String, StoreError> {
    if path.is_root() {
        return Ok(String::new());
    }
    let mut key = file_key(path, prefix)?;
    key.push('/');
    Ok(key)
}

#[cfg(test)]
mod key_tests {
    use super::*;

    #[test]
    fn keys_never_leave_the_prefix() {
        let root = VirtualPath::root();
        for hostile in [
            "../../other-user/x",
            "/../x",
            "a/../../x",
            "//x",
            "a//b",
            "./x",
            "%2e%2e/x",
        ] {
            let key = file_key(&root.join(hostile), "users/alice").unwrap_or_default();
            assert!(!key.starts_with('/'), "{hostile} -> {key}");
            assert!(
                key.split('/')
                    .all(|c| !c.is_empty() && c != ".." && c != "."),
                "{hostile} -> {key}"
            );
        }
        // Percent signs are names, not escapes: opendal encodes them for the request.
        assert_eq!(
            file_key(&root.join("%2e%2e/x"), "p").unwrap_or_default(),
            "%2e%2e/x"
        );
    }

    #[test]
    fn a_key_longer_than_s3_allows_is_a_bad_name() {
        let long = "n".repeat(1100);
        assert_eq!(
            file_key(&VirtualPath::root().join(&long), "p"),
            Err(StoreError::InvalidName)
        );
        assert_eq!(dir_key(&VirtualPath::root(), "p"), Ok(String::new()));
        assert_eq!(
            dir_key(&VirtualPath::root().join("a/b"), "p"),
            Ok("a/b/".to_owned())
        );
    }
}
