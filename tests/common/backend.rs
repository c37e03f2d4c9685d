//! The storage back-end a test runs against: the same test body against a local root folder
//! and against an S3 prefix (moto, see `s3.rs`), never a copy of it.
//!
//! `backend_tests!` turns each `fn name(kind) { ... }` into a module with two tests, `local` and
//! `s3`. The body starts its daemon with [`Served::start`] and checks what is stored with
//! [`Served::read`], [`Served::names`] and [`Served::leftovers`], which look on the disk or in
//! the bucket behind the daemon's back.

use super::s3::{self, Bucket};
use super::Daemon;
use std::path::PathBuf;
use std::process::Command;
use tempfile::TempDir;

/// Which back-end a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Local,
    S3,
}

/// A user of the test daemon: name, password, and the users-file permissions (None: all).
pub struct TestUser<'a> {
    pub name: &'a str,
    pub password: &'a str,
    pub permissions: Option<&'a [&'a str]>,
}

pub const ALICE: TestUser<'static> = TestUser {
    name: "alice",
    password: "alice-pw",
    permissions: None,
};

pub const BOB: TestUser<'static> = TestUser {
    name: "bob",
    password: "bob-pw",
    permissions: None,
};

/// A daemon serving its users from one back-end.
pub struct Served {
    pub daemon: Daemon,
    pub kind: Kind,
    /// For S3: the bucket; each user's root is the prefix `users/NAME`.
    bucket: Option<Bucket>,
}

/// Where `user`'s root is in the bucket.
pub fn prefix_of(user: &str) -> String {
    format!("users/{user}")
}

impl Served {
    /// Starts the daemon with `users` on `kind`, with extra options. `None` when the back-end
    /// cannot be had here (moto missing: a loud skip, a failure under `CI`).
    pub fn start(kind: Kind, users: &[TestUser], extra: &[&str]) -> Option<Served> {
        let bucket = match kind {
            Kind::Local => None,
            Kind::S3 => Some(s3::bucket()?),
        };
        Served::start_on(bucket, users, extra)
    }

    /// [`Served::start`] on `bucket` (a server of the test's own, to break), or on the local
    /// disk for `None`. `Option` like `start`, so callers read the same.
    pub fn start_on(bucket: Option<Bucket>, users: &[TestUser], extra: &[&str]) -> Option<Served> {
        let kind = if bucket.is_some() {
            Kind::S3
        } else {
            Kind::Local
        };
        let tmp = TempDir::new().expect("temporary directory");
        let mut toml = String::new();
        let mut table = Vec::new();
        for u in users {
            let hash = actorftpd::auth::hash_password(u.password).expect("hash password");
            toml.push_str(&format!(
                "[[user]]\nname = {}\npassword_hash = {}\n",
                super::toml_string(u.name),
                super::toml_string(&hash)
            ));
            let root = tmp.path().join("roots").join(u.name);
            match &bucket {
                None => {
                    std::fs::create_dir_all(&root).expect("user root");
                    toml.push_str(&format!(
                        "root = {}\n",
                        super::toml_string(root.to_str().expect("UTF-8 temporary path"))
                    ));
                }
                Some(b) => toml.push_str(&format!(
                    "storage = {}\n",
                    super::toml_string(&b.storage_arg(&prefix_of(u.name)))
                )),
            }
            if let Some(perms) = u.permissions {
                let list: Vec<String> = perms.iter().map(|p| super::toml_string(p)).collect();
                toml.push_str(&format!("permissions = [{}]\n", list.join(", ")));
            }
            toml.push('\n');
            table.push((u.name.to_owned(), u.password.to_owned(), root));
        }
        let users_file = tmp.path().join("users.toml");
        std::fs::write(&users_file, toml).expect("users file");
        let mut args: Vec<String> = vec![
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--users".into(),
            users_file.to_str().expect("UTF-8").into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        if std::env::var_os("ACTORFTPD_TEST_LOG").is_none() {
            args.push("-q".into());
        }
        let configure = |cmd: &mut Command| {
            if let Some(b) = &bucket {
                b.apply_env(cmd);
            }
        };
        let daemon = Daemon::start_configured(tmp, &args, table, configure);
        Some(Served {
            daemon,
            kind,
            bucket,
        })
    }

    /// The bucket, for S3-only checks.
    pub fn bucket(&self) -> Option<&Bucket> {
        self.bucket.as_ref()
    }

    fn path(&self, user: &str, rel: &str) -> PathBuf {
        self.daemon.root(user).join(rel.trim_start_matches('/'))
    }

    fn key(user: &str, rel: &str) -> String {
        format!("{}/{}", prefix_of(user), rel.trim_start_matches('/'))
    }

    /// The stored bytes of `rel` in `user`'s root, if it exists as a file.
    pub fn read(&self, user: &str, rel: &str) -> Option<Vec<u8>> {
        match &self.bucket {
            None => std::fs::read(self.path(user, rel)).ok(),
            Some(b) => b.get(&Served::key(user, rel)),
        }
    }

    /// Stores `data` as `rel` behind the daemon's back (folders created as needed).
    pub fn write(&self, user: &str, rel: &str, data: &[u8]) {
        match &self.bucket {
            None => {
                let path = self.path(user, rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).expect("create folders");
                }
                std::fs::write(path, data).expect("write fixture");
            }
            Some(b) => b.put(&Served::key(user, rel), data),
        }
    }

    /// Creates the folder `rel` behind the daemon's back (a marker in S3).
    pub fn mkdir(&self, user: &str, rel: &str) {
        match &self.bucket {
            None => std::fs::create_dir_all(self.path(user, rel)).expect("create folder"),
            Some(b) => b.put(&format!("{}/", Served::key(user, rel)), b""),
        }
    }

    /// Whether anything (a file or a folder) is stored under `rel`.
    pub fn exists(&self, user: &str, rel: &str) -> bool {
        match &self.bucket {
            None => self.path(user, rel).exists(),
            Some(b) => {
                let key = Served::key(user, rel);
                b.get(&key).is_some() || !b.keys(&format!("{key}/")).is_empty()
            }
        }
    }

    /// Names directly in the folder `rel` (files and folders), sorted.
    pub fn names(&self, user: &str, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = match &self.bucket {
            None => std::fs::read_dir(self.path(user, rel))
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            Some(b) => {
                let dir = format!("{}/", Served::key(user, rel).trim_end_matches('/'));
                let mut names: Vec<String> = b
                    .keys(&dir)
                    .iter()
                    .filter_map(|k| k.strip_prefix(&dir))
                    .filter_map(|rest| rest.split('/').next())
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
                names.dedup();
                names
            }
        };
        names.sort();
        names.dedup();
        names
    }

    /// What an unfinished upload left in `user`'s root: upload temporary files on the disk,
    /// multipart uploads in progress in the bucket. Must be empty after any failed transfer.
    pub fn leftovers(&self, user: &str) -> Vec<String> {
        match &self.bucket {
            None => {
                let mut found = Vec::new();
                let mut dirs = vec![self.daemon.root(user)];
                while let Some(dir) = dirs.pop() {
                    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                        let path = entry.path();
                        if path.is_dir() {
                            dirs.push(path);
                        } else if entry
                            .file_name()
                            .to_string_lossy()
                            .starts_with(".actorftpd-upload-")
                        {
                            found.push(path.display().to_string());
                        }
                    }
                }
                found
            }
            Some(b) => b
                .uploads(&format!("{}/", prefix_of(user)))
                .into_iter()
                .map(|u| u.key)
                .collect(),
        }
    }
}

/// Each `fn name(kind) { body }` becomes `mod name` with a `local` and an `s3` test running the
/// body with `Kind::Local` and `Kind::S3`.
#[macro_export]
macro_rules! backend_tests {
    ($( $(#[$meta:meta])* fn $name:ident($kind:ident) $body:block )*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn run($kind: $crate::common::backend::Kind) $body

            #[test]
            fn local() {
                run($crate::common::backend::Kind::Local)
            }

            #[test]
            fn s3() {
                run($crate::common::backend::Kind::S3)
            }
        }
    )*};
}
