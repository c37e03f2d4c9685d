//! Users in a database: `--users sqlite:PATH` (one machine) or `--users postgres://...` (several
//! replicas sharing one set of users), instead of the users file.
//!
//! The daemon runs the embedded schema migrations (`migrations/`, one schema for both engines)
//! when it opens the database, and looks each user up at each login, so what `actorftpd user`
//! changes takes effect at the next login on every replica, without a restart or SIGHUP. It
//! never caches a user; only the object-storage clients of `storage` roots are kept (one per
//! location). sqlx is async: its connections live on this module's own small tokio runtime,
//! and the callers (the Authenticator's threads, the `user` subcommand) block on it; nothing here
//! runs on a session's Arbiter. auth/users.rs turns a row into a `User`, checked as a users-file
//! entry is: an entry that fails is refused at login and logged.

use super::password::{hash_password, Credential};
use super::permissions::{IpNet, Permissions};
use crate::file_store::object::{Bucket, Location};
use crate::file_store::Jail;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub mod command;

/// How long one query may take, connecting included, before a login is refused.
const QUERY_DEADLINE: Duration = Duration::from_secs(5);
/// Connections per daemon: the Authenticator has one thread per core; a few are enough.
const POOL_SIZE: u32 = 4;
/// The runtime's threads: the queries are small, the waiting is the database's.
const RUNTIME_THREADS: usize = 1;

/// The columns a login reads, in this order.
const COLUMNS: &str = "name, password_hash, root, storage, endpoint, region, permissions, \
                       allowed_networks, enabled, require_tls";

/// One user as stored (no hash leaves this module except into a `Credential`).
pub type Row = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    bool,
    bool,
);

/// Where the users are: `sqlite:PATH` or `postgres://USER@HOST[:PORT]/DB[?...]`.
#[derive(Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl DbUrl {
    /// Whether a `--users` value names a database rather than a users file.
    pub fn is_database(setting: &Path) -> bool {
        setting.to_str().is_some_and(|s| {
            ["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|p| s.starts_with(p))
        })
    }

    /// Parses `sqlite:PATH` (or `sqlite://PATH`) and `postgres[ql]://...`.
    pub fn parse(url: &str) -> Result<DbUrl, String> {
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            // SECURITY: the users would live in memory and be gone at the next start.
            if path.is_empty() || path.starts_with(":memory:") || path.contains('?') {
                return Err(format!(
                    "users database {url:?}: give a file, sqlite:PATH (no options, not :memory:)"
                ));
            }
            return Ok(DbUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.parse::<PgConnectOptions>()
                .map_err(|e| format!("users database {}: {e}", shown(url)))?;
            return Ok(DbUrl::Postgres(url.to_owned()));
        }
        Err(format!(
            "users database {:?}: use sqlite:PATH or postgres://USER@HOST/DB",
            shown(url)
        ))
    }

    /// For logs: the URL without a password.
    pub fn shown(&self) -> String {
        match self {
            DbUrl::Sqlite(path) => format!("sqlite:{}", path.display()),
            DbUrl::Postgres(url) => shown(url),
        }
    }
}

impl std::fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

/// SECURITY: a password in a URL (`postgres://u:secret@h/db`) never reaches a log line.
fn shown(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:****@{host}")
        }
        _ => url.to_owned(),
    }
}

/// The runtime the database connections live on (started at the first use, after `--run-as`).
fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(RUNTIME_THREADS)
                .thread_name("user-db")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the user database's runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Runs `work` on the database runtime with the query deadline, blocking this thread (never an
/// Arbiter's: the Authenticator's pool and the `user` subcommand call this).
fn block_on<T>(
    what: &str,
    work: impl Future<Output = Result<T, sqlx::Error>> + Send,
) -> Result<T, String> {
    let rt = runtime()?;
    match rt.block_on(async { tokio::time::timeout(QUERY_DEADLINE, work).await }) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer in {} s",
            QUERY_DEADLINE.as_secs()
        )),
    }
}

/// The schema, embedded in the binary and run by sqlx's migrator.
#[derive(Debug)]
struct Embedded;

impl<'s> sqlx::migrate::MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<Vec<sqlx::migrate::Migration>, sqlx::error::BoxDynError>>
                + Send
                + 's,
        >,
    > {
        use sqlx::migrate::{Migration, MigrationType};
        let users = Migration::new(
            1,
            "users".into(),
            MigrationType::Simple,
            include_str!("migrations/0001_users.sql").into(),
            false,
        );
        Box::pin(async move { Ok(vec![users]) })
    }
}

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The same statement on either engine (`$1`, `$2`... work on both).
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            Pool::Sqlite($p) => $body,
            Pool::Postgres($p) => $body,
        }
    };
}

/// An open users database: a connection pool, migrated.
pub struct Database {
    url: DbUrl,
    pool: Pool,
    /// What an unknown name is checked against: a hash as costly as `actorftpd user add` makes.
    decoy: Credential,
    /// Object-storage clients of `storage` roots, one per location, made at first use.
    jails: Mutex<HashMap<Location, Jail>>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({})", self.url.shown())
    }
}

impl Database {
    /// Connects and runs the schema migrations. Starts the runtime's thread: call after
    /// `--run-as`. Errors are one line naming the database (without its password).
    pub fn open(url: &DbUrl) -> Result<Database, String> {
        let name = url.shown();
        let pool = match url {
            DbUrl::Sqlite(path) => {
                create_private(path).map_err(|e| format!("users database {name}: {e}"))?;
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(QUERY_DEADLINE);
                let connect = SqlitePoolOptions::new()
                    .max_connections(POOL_SIZE)
                    .acquire_timeout(QUERY_DEADLINE)
                    .connect_with(options);
                Pool::Sqlite(block_on(&format!("users database {name}"), connect)?)
            }
            DbUrl::Postgres(text) => {
                let options: PgConnectOptions = text
                    .parse()
                    .map_err(|e| format!("users database {name}: {e}"))?;
                let connect = PgPoolOptions::new()
                    .max_connections(POOL_SIZE)
                    .acquire_timeout(QUERY_DEADLINE)
                    .connect_with(options);
                Pool::Postgres(block_on(&format!("users database {name}"), connect)?)
            }
        };
        let migrate = async {
            let migrator = sqlx::migrate::Migrator::new(Embedded).await?;
            on_pool!(&pool, p => migrator.run(p).await)?;
            Ok::<(), sqlx::migrate::MigrateError>(())
        };
        let what = format!("users database {name}: schema migration");
        block_on(&what, async { migrate.await.map_err(sqlx::Error::from) })?;
        Ok(Database {
            url: url.clone(),
            pool,
            decoy: Credential::Argon2(hash_password("\u{0}decoy")?),
            jails: Mutex::new(HashMap::new()),
        })
    }

    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// The credential checked for a name that is not in the database (costs what a real one
    /// made by `actorftpd user add` costs).
    pub fn decoy(&self) -> &Credential {
        &self.decoy
    }

    /// The stored row of `name`, if any. Blocking.
    pub fn find(&self, name: &str) -> Result<Option<Row>, String> {
        let sql = format!("SELECT {COLUMNS} FROM ftp_users WHERE name = $1");
        block_on("user database lookup", async {
            on_pool!(&self.pool, p => {
                sqlx::query_as::<_, Row>(&sql).bind(name).fetch_optional(p).await
            })
        })
    }

    /// Every row, by name. Blocking.
    pub fn list(&self) -> Result<Vec<Row>, String> {
        let sql = format!("SELECT {COLUMNS} FROM ftp_users ORDER BY name");
        block_on("user database list", async {
            on_pool!(&self.pool, p => {
                sqlx::query_as::<_, Row>(&sql).fetch_all(p).await
            })
        })
    }

    /// Adds a user; false if the name is taken. Blocking.
    pub fn insert(&self, row: &Row) -> Result<bool, String> {
        let sql = format!(
            "INSERT INTO ftp_users ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (name) DO NOTHING"
        );
        let done = block_on("user database insert", async {
            on_pool!(&self.pool, p => {
                sqlx::query(&sql)
                    .bind(&row.0).bind(&row.1).bind(&row.2).bind(&row.3).bind(&row.4)
                    .bind(&row.5).bind(&row.6).bind(&row.7).bind(row.8).bind(row.9)
                    .execute(p).await.map(|r| r.rows_affected())
            })
        })?;
        Ok(done == 1)
    }

    /// Sets a new password hash; false if there is no such user. Blocking.
    pub fn set_password(&self, name: &str, hash: &str) -> Result<bool, String> {
        self.update(
            "UPDATE ftp_users SET password_hash = $2 WHERE name = $1",
            name,
            hash,
        )
    }

    /// Enables or disables a user; false if there is no such user. Blocking.
    pub fn set_enabled(&self, name: &str, enabled: bool) -> Result<bool, String> {
        let sql = "UPDATE ftp_users SET enabled = $2 WHERE name = $1";
        let done = block_on("user database update", async {
            on_pool!(&self.pool, p => {
                sqlx::query(sql).bind(name).bind(enabled).execute(p).await.map(|r| r.rows_affected())
            })
        })?;
        Ok(done == 1)
    }

    /// Removes a user; false if there is no such user. Blocking.
    pub fn delete(&self, name: &str) -> Result<bool, String> {
        let sql = "DELETE FROM ftp_users WHERE name = $1";
        let done = block_on("user database delete", async {
            on_pool!(&self.pool, p => {
                sqlx::query(sql).bind(name).execute(p).await.map(|r| r.rows_affected())
            })
        })?;
        Ok(done == 1)
    }

    fn update(&self, sql: &str, name: &str, value: &str) -> Result<bool, String> {
        let done = block_on("user database update", async {
            on_pool!(&self.pool, p => {
                sqlx::query(sql).bind(name).bind(value).execute(p).await.map(|r| r.rows_affected())
            })
        })?;
        Ok(done == 1)
    }

    /// The object-storage root of `location`: the client made for it before, or a new one.
    pub fn jail_for(&self, location: &Location) -> Result<Jail, String> {
        let mut jails = self.jails.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(jail) = jails.get(location) {
            return Ok(jail.clone());
        }
        let jail = Jail::object(Bucket::open(location)?);
        jails.insert(location.clone(), jail.clone());
        Ok(jail)
    }
}

/// Creates the SQLite file readable by its owner only (it holds password hashes); an existing
/// file is left as it is.
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

/// `all`, `read,upload`...: the stored comma-separated list.
pub fn parse_permissions(list: &str) -> Result<Permissions, String> {
    let names: Vec<String> = split_list(list).map(str::to_owned).collect();
    Permissions::from_names(&names)
}

/// `10.0.0.0/8,::1`: the stored comma-separated list; empty is any network.
pub fn parse_networks(list: &str) -> Result<Vec<IpNet>, String> {
    split_list(list).map(IpNet::parse).collect()
}

fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_files_and_passwords_never_shown() {
        assert!(DbUrl::is_database(Path::new("sqlite:/var/lib/u.db")));
        assert!(DbUrl::is_database(Path::new("postgres://h/db")));
        assert!(!DbUrl::is_database(Path::new("/etc/actorftpd/users.toml")));
        assert_eq!(
            DbUrl::parse("sqlite:///var/lib/u.db"),
            Ok(DbUrl::Sqlite("/var/lib/u.db".into()))
        );
        assert_eq!(
            DbUrl::parse("sqlite:rel.db"),
            Ok(DbUrl::Sqlite("rel.db".into()))
        );
        for bad in [
            "sqlite:",
            "sqlite::memory:",
            "sqlite:a.db?mode=ro",
            "mysql://h/db",
        ] {
            assert!(DbUrl::parse(bad).is_err(), "{bad}");
        }
        let pg = DbUrl::parse("postgres://ftp:s3cret@db.example:5432/ftp").expect("valid");
        assert_eq!(pg.shown(), "postgres://ftp:****@db.example:5432/ftp");
        assert!(!format!("{pg:?}").contains("s3cret"));
        let err = DbUrl::parse("postgres://ftp:s3cret@db.example:notaport/ftp").expect_err("bad");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn lists_parse_like_the_users_file() {
        assert_eq!(parse_permissions("all"), Ok(Permissions::ALL));
        assert_eq!(parse_permissions(" read-only "), Ok(Permissions::READ_ONLY));
        assert!(parse_permissions("read,fly").is_err());
        assert_eq!(parse_networks("").map(|n| n.len()), Ok(0));
        assert_eq!(parse_networks("10.0.0.0/8, ::1").map(|n| n.len()), Ok(2));
        assert!(parse_networks("10.0.0.0/33").is_err());
    }
}
