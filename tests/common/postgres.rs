//! A throw-away PostgreSQL server for the tests: `initdb` into a temporary folder, `pg_ctl
//! start` on a free loopback port (and a Unix socket in that folder), one database created, and
//! `pg_ctl stop` when dropped. Debian's `postgresql` package puts the server programs in
//! /usr/lib/postgresql/VERSION/bin, off PATH: they are looked for there too.
//!
//! PostgreSQL refuses to run as root: when the tests run as root, the server runs as `nobody`
//! (through `runuser`), in a folder given to it. Missing programs are a loud skip locally and a
//! failure under CI (`cannot_run`).

use super::cannot_run;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tempfile::TempDir;

/// The account the server runs as when the tests run as root.
const UNPRIVILEGED: &str = "nobody";

pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_user: Option<String>,
    stopped: bool,
    // Last: removed after the server has stopped.
    dir: TempDir,
}

/// Where the server programs are: PATH, else the newest /usr/lib/postgresql/*/bin.
fn server_bin() -> Option<PathBuf> {
    if let Some(initdb) = super::find_on_path("initdb") {
        let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        return real.parent().map(Path::to_path_buf);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn show(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl Postgres {
    /// Starts a server with a database named `ftp`; `None` (after a loud skip) if PostgreSQL is
    /// not installed and CI is not set.
    pub fn start() -> Option<Postgres> {
        let Some(bin) = server_bin() else {
            cannot_run(
                "PostgreSQL (initdb, pg_ctl) is required by this test: apt-get install postgresql",
                "postgresql not installed",
            );
            return None;
        };
        let root = rustix::process::geteuid().is_root();
        if root && super::find_on_path("runuser").is_none() {
            cannot_run(
                "runuser is required to run PostgreSQL as root",
                "runuser missing",
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let as_user = root.then(|| UNPRIVILEGED.to_owned());
        if root {
            // The server's account owns the folder (the temporary folder is 0700 root's).
            let out = Command::new("chown")
                .args([UNPRIVILEGED, &dir.path().display().to_string()])
                .output()
                .expect("run chown");
            assert!(out.status.success(), "chown: {}", show(&out));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let pg = Postgres {
            bin,
            data: dir.path().join("data"),
            port,
            as_user,
            stopped: false,
            dir,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data.display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            pg.dir.path().display()
        );
        let log = pg.dir.path().join("server.log").display().to_string();
        pg.run(
            "pg_ctl",
            &[
                "-D",
                &pg.data.display().to_string(),
                "-l",
                &log,
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        pg.sql("postgres", "CREATE DATABASE ftp");
        Some(pg)
    }

    /// A command of the server's, as its account; panics with its output if it fails.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let path = self.bin.join(program);
        let mut cmd = match &self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        // Its own folder as working directory: the account may not read the tests' one.
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", path.display()));
        assert!(out.status.success(), "{program}: {}", show(&out));
        out
    }

    /// Runs one statement with psql over TCP.
    pub fn sql(&self, database: &str, statement: &str) -> String {
        let port = self.port.to_string();
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
                "-c",
                statement,
            ],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The URL of the `ftp` database for `--users`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/ftp", self.port)
    }
}

impl Postgres {
    /// Stops the server now (fast shutdown: clients are disconnected).
    pub fn stop(&mut self) {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
        self.stopped = true;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        let path = self.bin.join("pg_ctl");
        let mut cmd = match &self.as_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        let _ = cmd
            .args([
                "-D",
                &self.data.display().to_string(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .current_dir(self.dir.path())
            .output();
    }
}
