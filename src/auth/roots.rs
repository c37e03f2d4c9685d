//! A user's root in the users file: a folder on the local disk (`root`) or a prefix in object
//! storage (`storage = "s3://BUCKET/PREFIX"`, with an optional `endpoint` and `region`).

use crate::file_store::object::Location;
use std::path::{Path, PathBuf};

/// `storage = "s3://BUCKET/PREFIX"`, with an optional `endpoint` and `region`.
pub struct StorageEntry {
    pub storage: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

/// A user's root: a folder (`root`) or object storage (`storage`), exactly one of them.
pub fn root_or_storage(
    root: Option<PathBuf>,
    entry: StorageEntry,
    base: &Path,
) -> Result<(PathBuf, Option<Location>), String> {
    match (root, entry.storage) {
        (Some(root), None) if entry.endpoint.is_none() && entry.region.is_none() => {
            Ok((resolve_root(root, base)?, None))
        }
        (Some(_), None) => Err("endpoint and region go with storage, not root".into()),
        (None, Some(url)) => {
            let mut location = Location::parse(&url)?;
            location.endpoint = entry.endpoint;
            location.region = entry.region;
            // Not a folder: the URL, for logs and the transfer log.
            Ok((PathBuf::from(location.url()), Some(location)))
        }
        (Some(_), Some(_)) => Err("give root or storage, not both".into()),
        (None, None) => Err("root (a folder) or storage (s3://BUCKET/PREFIX) is missing".into()),
    }
}

fn resolve_root(root: PathBuf, base: &Path) -> Result<PathBuf, String> {
    let root = if root.is_absolute() {
        root
    } else {
        base.join(root)
    };
    if !root.is_dir() {
        return Err(format!("root {} is not a directory", root.display()));
    }
    Ok(root)
}
