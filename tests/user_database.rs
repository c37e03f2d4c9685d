//! Users in a database (issue 16 item 3): `actorftpd user add|passwd|del|list|disable|enable`
//! edits SQLite (always runs) or PostgreSQL (a throw-away server, tests/common/postgres.rs), and
//! real daemons see each change at the next login, without a restart. Two daemons sharing one
//! database both follow it. Refusals look the same whatever the reason.

mod common;

use common::postgres::Postgres;
use common::{ftp_connect, get, put, random_bytes, sha256_hex, Daemon};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `actorftpd user ARGS --users DB`, with `stdin` as its standard input.
fn user_cmd(db: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
        .arg("user")
        .args(args)
        .args(["--users", db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn actorftpd user");
    let mut input = child.stdin.take().expect("stdin");
    // The command may refuse before reading: a closed pipe is fine.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().expect("actorftpd user")
}

#[track_caller]
fn user_ok(db: &str, args: &[&str], stdin: &str) -> String {
    let out = user_cmd(db, args, stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "user {args:?}: {err}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A daemon serving the users in `db`, with its own temporary folder.
fn daemon_on(db: &str) -> Daemon {
    let tmp = tempfile::tempdir().expect("tmp");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--users",
        db,
        "--login-failure-delay-ms",
        "0",
        "--ban-failures",
        "1000",
    ];
    Daemon::start_custom(tmp, &args, Vec::new())
}

/// The reply text of a refused login (a fresh connection each time).
fn refused(daemon: &Daemon, name: &str, password: &str) -> String {
    let mut ftp = ftp_connect(daemon.addr());
    let err = ftp.login(name, password).expect_err("login refused");
    assert_eq!(common::reply_code(&err), Some(530), "{name}: {err}");
    err.to_string()
}

/// Logs in, uploads `name` and downloads it again: every byte checked by sha256, and on disk.
fn round_trip(daemon: &Daemon, user: &str, password: &str, root: &Path, name: &str) {
    let mut ftp = ftp_connect(daemon.addr());
    ftp.login(user, password)
        .unwrap_or_else(|e| panic!("{user} logs in on {}: {e}", daemon.addr()));
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .expect("TYPE I");
    let data = random_bytes(100_000);
    put(&mut ftp, name, &data);
    assert_eq!(sha256_hex(&get(&mut ftp, name)), sha256_hex(&data));
    common::assert_file_holds(&root.join(name), &data, "uploaded file on disk");
    let _ = ftp.quit();
}

/// Every step of an account's life, seen by every daemon in `daemons` at the next login.
fn lifecycle(db: &str, daemons: &[Daemon], root: &Path) {
    let root_arg = root.display().to_string();
    let said = user_ok(db, &["add", "alice", "--root", &root_arg], "first pw\n");
    assert_eq!(said.trim(), "user \"alice\" added");
    for (i, d) in daemons.iter().enumerate() {
        round_trip(d, "alice", "first pw", root, &format!("a{i}.bin"));
    }
    // Wrong password and unknown name: the same reply.
    for d in daemons {
        assert_eq!(
            refused(d, "alice", "wrong"),
            refused(d, "nobody-here", "wrong")
        );
    }
    user_ok(db, &["passwd", "alice"], "second pw\n");
    for (i, d) in daemons.iter().enumerate() {
        refused(d, "alice", "first pw");
        round_trip(d, "alice", "second pw", root, &format!("b{i}.bin"));
    }
    user_ok(db, &["disable", "alice"], "");
    for d in daemons {
        // The right password of a disabled account: refused exactly as a wrong one.
        assert_eq!(
            refused(d, "alice", "second pw"),
            refused(d, "alice", "wrong")
        );
    }
    let list = user_ok(db, &["list"], "");
    assert!(list.contains("alice\tdisabled\t"), "{list}");
    assert!(!list.contains("argon2"), "list shows no hash: {list}");
    user_ok(db, &["enable", "alice"], "");
    round_trip(&daemons[0], "alice", "second pw", root, "c.bin");
    user_ok(db, &["del", "alice"], "");
    for d in daemons {
        refused(d, "alice", "second pw");
    }
    let list = user_ok(db, &["list"], "");
    assert!(!list.lines().any(|l| l.starts_with("alice\t")), "{list}");
}

#[test]
fn sqlite_users_change_at_the_next_login_on_two_daemons() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("alice");
    std::fs::create_dir(&root).expect("root");
    let db = format!("sqlite:{}", dir.path().join("users.db").display());
    // Users added before any daemon started: the subcommand runs the migrations too.
    user_ok(
        &db,
        &["add", "early", "--root", &root.display().to_string()],
        "pw\n",
    );
    let daemons = [daemon_on(&db), daemon_on(&db)];
    round_trip(&daemons[1], "early", "pw", &root, "early.bin");
    lifecycle(&db, &daemons, &root);
    let mode = std::fs::metadata(dir.path().join("users.db"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .expect("db file");
    assert_eq!(mode, 0o600, "the database holds hashes: owner only");
}

#[test]
fn postgres_users_are_shared_by_two_daemons_without_restart() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("alice");
    std::fs::create_dir(&root).expect("root");
    let db = pg.url();
    let daemons = [daemon_on(&db), daemon_on(&db)];
    lifecycle(&db, &daemons, &root);
    // The schema is the migrator's: one applied migration, recorded.
    let applied = pg.sql(
        "ftp",
        "SELECT version FROM _sqlx_migrations ORDER BY version",
    );
    assert_eq!(applied.trim(), "1");
    // A database that is gone refuses logins (within the query deadline), as a wrong password.
    user_ok(
        &db,
        &["add", "bob", "--root", &root.display().to_string()],
        "pw\n",
    );
    round_trip(&daemons[0], "bob", "pw", &root, "bob.bin");
    pg.stop();
    for d in &daemons {
        assert_eq!(refused(d, "bob", "pw"), refused(d, "bob", "wrong"));
    }
}

#[test]
fn the_user_subcommand_refuses_bad_input_in_one_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let db_path: PathBuf = dir.path().join("users.db");
    let db = format!("sqlite:{}", db_path.display());
    let root = dir.path().display().to_string();
    let cases: [(&[&str], &str, &str); 7] = [
        (&["frobnicate", "a"], "", "unknown action"),
        (&["add"], "", "needs a user name"),
        (&["add", "a", "--root", "relative"], "pw\n", "absolute"),
        (
            &["add", "bad name", "--root", &root],
            "pw\n",
            "without spaces",
        ),
        (&["add", "ftp", "--root", &root], "pw\n", "reserved"),
        (&["add", "a", "--root", &root], "\n", "empty password"),
        (&["passwd", "ghost"], "pw\n", "no user \"ghost\""),
    ];
    for (args, stdin, want) in cases {
        let out = user_cmd(&db, args, stdin);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: no {want:?} in {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: one line: {err}");
    }
    user_ok(&db, &["add", "a", "--root", &root], "pw\n");
    let out = user_cmd(&db, &["add", "a", "--root", &root], "pw\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = user_cmd("mysql://h/db", &["list"], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("sqlite:PATH or postgres://"));
    // Nothing else was added by the refused commands.
    let list = user_ok(&db, &["list"], "");
    assert_eq!(
        list.lines().skip(1).collect::<Vec<_>>(),
        vec![format!("a\tenabled\t{root}\tall\tany")]
    );
}

#[test]
fn a_daemon_whose_database_cannot_be_opened_says_so_in_one_line() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = format!(
        "sqlite:{}",
        dir.path().join("no/such/folder/users.db").display()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
        .args(["--listen", "127.0.0.1:0", "--users", &db])
        .output()
        .expect("run");
    common::assert_refused_in_one_line(out.status, &out.stderr, "users database", "bad db");
}

#[test]
fn a_database_user_with_a_root_in_object_storage() {
    let Some(bucket) = common::s3::bucket() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite:{}", dir.path().join("users.db").display());
    let storage = bucket.storage_arg("bob");
    let endpoint = bucket.endpoint();
    let args = ["add", "bob", "--storage", &storage, "--endpoint", &endpoint];
    user_ok(&db, &args, "pw\n");
    let listed = user_ok(&db, &["list"], "");
    assert!(listed.contains(&format!("bob\tenabled\t{}", storage.trim_end_matches('/'))));
    let tmp = tempfile::tempdir().expect("tmp");
    let daemon_args = ["--listen", "127.0.0.1:0", "--users", &db];
    let daemon =
        Daemon::start_configured(tmp, &daemon_args, Vec::new(), |cmd| bucket.apply_env(cmd));
    let mut ftp = ftp_connect(daemon.addr());
    ftp.login("bob", "pw").expect("bob logs in");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .expect("TYPE I");
    let data = random_bytes(300_000);
    put(&mut ftp, "in-s3.bin", &data);
    assert_eq!(sha256_hex(&get(&mut ftp, "in-s3.bin")), sha256_hex(&data));
    assert_eq!(bucket.sha256("bob/in-s3.bin"), Some(sha256_hex(&data)));
}
