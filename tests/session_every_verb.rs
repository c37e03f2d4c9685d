//! Every verb is answered exactly once, on its success path and on its error path.
//!
//! One table row per (verb, path): a fresh Session (actor harness, synthetic `Command`s), the
//! setup the row needs, the command, and the answer it must get: one reply, a transfer's 150
//! followed by exactly one final reply, the last reply and a close, or the 234 and the TLS
//! upgrade. After each row a NOOP marker must get the very next reply (200): a second answer,
//! or none, shows up there. `every_variant_has_rows` makes the table cover every `Command`
//! variant (the match in `variant` has no wildcard, so a new verb does not compile until it
//! is listed).

#[allow(dead_code)] // The harness serves several test files; this one uses part of it.
mod actor_harness;

use actor_harness::{epsv_port, local, write, Harness, REPLY_DEADLINE};
use actorftpd::auth::Permissions;
use actorftpd::config::Config;
use actorftpd::protocol::command::{parse_time_val, ByteRange, FactChanges, HashAlgo, Timestamp};
use actorftpd::protocol::{Command, EpsvArg, TransferType};
use actorftpd::session::SinkItem;
use actorftpd::tls::{load_config, TlsPolicy};
use std::io::{Read, Write};
use std::time::Duration;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Path {
    Success,
    Failure,
}

/// What the command must be answered with.
enum Expect {
    Reply(u16),
    /// 150, the data connection (an upload sends bytes, a download reads to the end), then one
    /// final reply.
    Transfer {
        upload: bool,
        end: u16,
    },
    /// The reply, then the close of the control connection.
    Close(u16),
    /// The 234, then the TLS upgrade of the control connection.
    StartTls(u16),
}

enum Step {
    /// A command and the code it must get.
    Cmd(Command, u16),
    /// EPSV; its port is where the row's transfer connects.
    Passive,
}

struct Row {
    verb: &'static str,
    path: Path,
    /// TLS configured (AUTH, PBSZ, PROT).
    tls: bool,
    logged_in: bool,
    setup: Vec<Step>,
    cmd: Command,
    expect: Expect,
}

fn row(verb: &'static str, path: Path, cmd: Command, expect: Expect) -> Row {
    Row {
        verb,
        path,
        tls: false,
        logged_in: true,
        setup: Vec::new(),
        cmd,
        expect,
    }
}

impl Row {
    fn logged_out(mut self) -> Row {
        self.logged_in = false;
        self
    }

    fn tls(mut self) -> Row {
        self.tls = true;
        self
    }

    fn after(mut self, steps: Vec<Step>) -> Row {
        self.setup = steps;
        self
    }
}

use Expect::{Close, Reply, StartTls, Transfer};
use Path::{Failure, Success};
use Step::{Cmd, Passive};

fn s(v: &str) -> String {
    v.to_owned()
}

fn ts() -> Timestamp {
    parse_time_val("20200102030405").expect("time")
}

fn modify() -> FactChanges {
    FactChanges {
        modify: Some(ts()),
        mode: None,
    }
}

fn x_hash(name: &str) -> Command {
    Command::XHash(HashAlgo::Crc32, s(name), ByteRange::default())
}

fn binary() -> Step {
    Cmd(Command::Type(TransferType::Image), 200)
}

fn rows() -> Vec<Row> {
    let port_ok: std::net::SocketAddr = "127.0.0.1:40001".parse().expect("addr");
    let port_low: std::net::SocketAddr = "127.0.0.1:21".parse().expect("addr");
    let tls_ready = || {
        vec![
            Cmd(Command::Auth(s("TLS")), 234),
            Cmd(Command::Pbsz(s("0")), 200),
        ]
    };
    vec![
        // Login and the control connection.
        row("USER", Success, Command::User(s("alice")), Reply(331)).logged_out(),
        row("USER", Failure, Command::User(s("alice")), Reply(530)),
        row("PASS", Success, Command::Pass(s("secret")), Reply(230))
            .logged_out()
            .after(vec![Cmd(Command::User(s("alice")), 331)]),
        row("PASS", Failure, Command::Pass(s("wrong")), Reply(530))
            .logged_out()
            .after(vec![Cmd(Command::User(s("alice")), 331)]),
        row("ACCT", Success, Command::Acct(s("x")), Reply(202)),
        row("ACCT", Failure, Command::Acct(s("x")), Reply(530)).logged_out(),
        row("QUIT", Success, Command::Quit, Close(221)),
        row("REIN", Success, Command::Rein, Reply(220)),
        row("REIN", Failure, Command::Rein, Reply(530)).logged_out(),
        row("AUTH", Success, Command::Auth(s("TLS")), StartTls(234))
            .logged_out()
            .tls(),
        row("AUTH", Failure, Command::Auth(s("TLS")), Reply(502)).logged_out(),
        row("PBSZ", Success, Command::Pbsz(s("0")), Reply(200))
            .logged_out()
            .tls()
            .after(vec![Cmd(Command::Auth(s("TLS")), 234)]),
        row("PBSZ", Failure, Command::Pbsz(s("0")), Reply(503)).logged_out(),
        row("PROT", Success, Command::Prot(s("P")), Reply(200))
            .logged_out()
            .tls()
            .after(tls_ready()),
        row("PROT", Failure, Command::Prot(s("P")), Reply(503))
            .logged_out()
            .tls()
            .after(vec![Cmd(Command::Auth(s("TLS")), 234)]),
        row("CCC", Success, Command::Ccc, Reply(502)),
        // Fixed answers and information.
        row("NOOP", Success, Command::Noop, Reply(200)).logged_out(),
        row("SYST", Success, Command::Syst, Reply(215)).logged_out(),
        row("FEAT", Success, Command::Feat, Reply(211)).logged_out(),
        row("HELP", Success, Command::Help(None), Reply(214)).logged_out(),
        row("HELP", Failure, Command::Help(Some(s("XYZZ"))), Reply(502)).logged_out(),
        row(
            "OPTS",
            Success,
            Command::Opts(s("UTF8"), Some(s("ON"))),
            Reply(200),
        )
        .logged_out(),
        row("OPTS", Failure, Command::Opts(s("XYZZ"), None), Reply(501)).logged_out(),
        row("SITE", Success, Command::Site(s("HELP")), Reply(214)),
        row("SITE", Failure, Command::Site(s("FOO f.txt")), Reply(502)),
        // File attributes and digests (issue 18).
        row("MFMT", Success, Command::Mfmt(ts(), s("f.txt")), Reply(213)),
        row("MFMT", Failure, Command::Mfmt(ts(), s("nope")), Reply(550)),
        row(
            "MFF",
            Success,
            Command::Mff(modify(), s("f.txt")),
            Reply(213),
        ),
        row(
            "MFF",
            Failure,
            Command::Mff(modify(), s("nope")),
            Reply(550),
        ),
        row("HASH", Success, Command::Hash(s("f.txt")), Reply(213)),
        row("HASH", Failure, Command::Hash(s("nope")), Reply(550)),
        row("RANG", Success, Command::Rang(None), Reply(350)),
        row("RANG", Failure, Command::Rang(None), Reply(530)).logged_out(),
        row("XHASH", Success, x_hash("f.txt"), Reply(250)),
        row("XHASH", Failure, x_hash("nope"), Reply(550)),
        row("STAT", Success, Command::Stat(None), Reply(211)),
        row("STAT", Failure, Command::Stat(None), Reply(530)).logged_out(),
        row(
            "STAT path",
            Success,
            Command::Stat(Some(s("sub"))),
            Reply(213),
        ),
        row(
            "STAT path",
            Failure,
            Command::Stat(Some(s("nope"))),
            Reply(550),
        ),
        row("SMNT", Failure, Command::Smnt(s("/x")), Reply(502)),
        row("ALLO", Success, Command::Allo, Reply(202)),
        row("ALLO", Failure, Command::Allo, Reply(530)).logged_out(),
        row("MODE", Success, Command::Mode('S'), Reply(200)),
        row("MODE", Failure, Command::Mode('S'), Reply(530)).logged_out(),
        row("STRU", Success, Command::Stru('F'), Reply(200)),
        row("STRU", Failure, Command::Stru('F'), Reply(530)).logged_out(),
        row(
            "TYPE",
            Success,
            Command::Type(TransferType::Image),
            Reply(200),
        ),
        row(
            "TYPE",
            Failure,
            Command::Type(TransferType::Image),
            Reply(530),
        )
        .logged_out(),
        // Paths.
        row("PWD", Success, Command::Pwd, Reply(257)),
        row("PWD", Failure, Command::Pwd, Reply(530)).logged_out(),
        row("CWD", Success, Command::Cwd(s("sub")), Reply(250)),
        row("CWD", Failure, Command::Cwd(s("nope")), Reply(550)),
        row("CDUP", Success, Command::Cdup, Reply(250)),
        row("CDUP", Failure, Command::Cdup, Reply(530)).logged_out(),
        row("SIZE", Success, Command::Size(s("f.txt")), Reply(213)).after(vec![binary()]),
        row("SIZE", Failure, Command::Size(s("missing.txt")), Reply(550)),
        row("MDTM", Success, Command::Mdtm(s("f.txt")), Reply(213)),
        row("MDTM", Failure, Command::Mdtm(s("nope")), Reply(550)),
        row("DELE", Success, Command::Dele(s("f.txt")), Reply(250)),
        row("DELE", Failure, Command::Dele(s("nope")), Reply(550)),
        row("MKD", Success, Command::Mkd(s("new")), Reply(257)),
        row("MKD", Failure, Command::Mkd(s("sub")), Reply(550)),
        row("RMD", Success, Command::Rmd(s("empty")), Reply(250)),
        row("RMD", Failure, Command::Rmd(s("nope")), Reply(550)),
        row("RNFR", Success, Command::Rnfr(s("f.txt")), Reply(350)),
        row("RNFR", Failure, Command::Rnfr(s("nope")), Reply(550)),
        row("RNTO", Success, Command::Rnto(s("g.txt")), Reply(250))
            .after(vec![Cmd(Command::Rnfr(s("f.txt")), 350)]),
        row("RNTO", Failure, Command::Rnto(s("g.txt")), Reply(503)),
        row("MLST", Success, Command::Mlst(Some(s("f.txt"))), Reply(250)),
        row("MLST", Failure, Command::Mlst(Some(s("nope"))), Reply(550)),
        // Data connection setup.
        row("PASV", Success, Command::Pasv, Reply(227)),
        row("PASV", Failure, Command::Pasv, Reply(503))
            .after(vec![Cmd(Command::Epsv(EpsvArg::All), 200)]),
        row("EPSV", Success, Command::Epsv(EpsvArg::Any), Reply(229)),
        row(
            "EPSV",
            Failure,
            Command::Epsv(EpsvArg::Protocol(2)),
            Reply(522),
        ),
        row("EPSV ALL", Success, Command::Epsv(EpsvArg::All), Reply(200)),
        row("PORT", Success, Command::Port(port_ok), Reply(200)),
        row("PORT", Failure, Command::Port(port_low), Reply(501)),
        row("EPRT", Success, Command::Eprt(port_ok), Reply(200)),
        row("EPRT", Failure, Command::Port(port_ok), Reply(503))
            .after(vec![Cmd(Command::Epsv(EpsvArg::All), 200)]),
        // Transfers.
        row(
            "LIST",
            Success,
            Command::List(None),
            Transfer {
                upload: false,
                end: 226,
            },
        )
        .after(vec![Passive]),
        row("LIST", Failure, Command::List(None), Reply(425)),
        row(
            "NLST",
            Success,
            Command::Nlst(None),
            Transfer {
                upload: false,
                end: 226,
            },
        )
        .after(vec![Passive]),
        row("NLST", Failure, Command::Nlst(Some(s("nope"))), Reply(550)).after(vec![Passive]),
        row(
            "MLSD",
            Success,
            Command::Mlsd(None),
            Transfer {
                upload: false,
                end: 226,
            },
        )
        .after(vec![Passive]),
        row("MLSD", Failure, Command::Mlsd(Some(s("f.txt"))), Reply(501)).after(vec![Passive]),
        row(
            "RETR",
            Success,
            Command::Retr(s("f.txt")),
            Transfer {
                upload: false,
                end: 226,
            },
        )
        .after(vec![Passive]),
        row("RETR", Failure, Command::Retr(s("nope")), Reply(550)).after(vec![Passive]),
        row(
            "STOR",
            Success,
            Command::Stor(s("up.txt")),
            Transfer {
                upload: true,
                end: 226,
            },
        )
        .after(vec![Passive]),
        row("STOR", Failure, Command::Stor(s("up.txt")), Reply(425)),
        row(
            "APPE",
            Success,
            Command::Appe(s("f.txt")),
            Transfer {
                upload: true,
                end: 226,
            },
        )
        .after(vec![Passive]),
        row("APPE", Failure, Command::Appe(s("sub")), Reply(550)).after(vec![Passive]),
        row(
            "STOU",
            Success,
            Command::Stou,
            Transfer {
                upload: true,
                end: 226,
            },
        )
        .after(vec![Passive]),
        row("STOU", Failure, Command::Stou, Reply(425)),
        row("REST", Success, Command::Rest(3), Reply(350)).after(vec![binary()]),
        row("REST", Failure, Command::Rest(3), Reply(501)),
        row("ABOR", Success, Command::Abor, Reply(225)),
        row("ABOR", Failure, Command::Abor, Reply(530)).logged_out(),
    ]
}

/// Every verb, indexed by `variant`.
const VERBS: [&str; 52] = [
    "USER",
    "PASS",
    "ACCT",
    "QUIT",
    "REIN",
    "NOOP",
    "SYST",
    "FEAT",
    "HELP",
    "OPTS",
    "PWD",
    "CWD",
    "CDUP",
    "TYPE",
    "MODE",
    "STRU",
    "PASV",
    "EPSV ALL",
    "EPSV",
    "PORT",
    "EPRT",
    "LIST",
    "NLST",
    "MLSD",
    "MLST",
    "RETR",
    "STOR",
    "APPE",
    "STOU",
    "REST",
    "DELE",
    "MKD",
    "RMD",
    "RNFR",
    "RNTO",
    "SIZE",
    "MDTM",
    "ALLO",
    "ABOR",
    "STAT",
    "STAT path",
    "SITE",
    "SMNT",
    "AUTH",
    "PBSZ",
    "PROT",
    "CCC",
    "MFMT",
    "MFF",
    "HASH",
    "RANG",
    "XHASH",
];

/// The index of `cmd`'s verb in `VERBS`. No wildcard: a new `Command` variant does not compile
/// until it has an arm here, and its new index needs a name in `VERBS` and rows in the table.
fn variant(cmd: &Command) -> usize {
    match cmd {
        Command::User(_) => 0,
        Command::Pass(_) => 1,
        Command::Acct(_) => 2,
        Command::Quit => 3,
        Command::Rein => 4,
        Command::Noop => 5,
        Command::Syst => 6,
        Command::Feat => 7,
        Command::Help(_) => 8,
        Command::Opts(..) => 9,
        Command::Pwd => 10,
        Command::Cwd(_) => 11,
        Command::Cdup => 12,
        Command::Type(_) => 13,
        Command::Mode(_) => 14,
        Command::Stru(_) => 15,
        Command::Pasv => 16,
        Command::Epsv(EpsvArg::All) => 17,
        Command::Epsv(_) => 18,
        Command::Port(_) => 19,
        Command::Eprt(_) => 20,
        Command::List(_) => 21,
        Command::Nlst(_) => 22,
        Command::Mlsd(_) => 23,
        Command::Mlst(_) => 24,
        Command::Retr(_) => 25,
        Command::Stor(_) => 26,
        Command::Appe(_) => 27,
        Command::Stou => 28,
        Command::Rest(_) => 29,
        Command::Dele(_) => 30,
        Command::Mkd(_) => 31,
        Command::Rmd(_) => 32,
        Command::Rnfr(_) => 33,
        Command::Rnto(_) => 34,
        Command::Size(_) => 35,
        Command::Mdtm(_) => 36,
        Command::Allo => 37,
        Command::Abor => 38,
        Command::Stat(None) => 39,
        Command::Stat(Some(_)) => 40,
        Command::Site(_) => 41,
        Command::Smnt(_) => 42,
        Command::Auth(_) => 43,
        Command::Pbsz(_) => 44,
        Command::Prot(_) => 45,
        Command::Ccc => 46,
        Command::Mfmt(..) => 47,
        Command::Mff(..) => 48,
        Command::Hash(_) => 49,
        Command::Rang(_) => 50,
        Command::XHash(..) => 51,
    }
}

/// Verbs that answer the same whatever the state: no error path to show.
const NO_FAILURE_PATH: &[&str] = &["QUIT", "NOOP", "SYST", "FEAT", "CCC", "EPSV ALL"];
/// Verbs that are always refused: no success path to show.
const NO_SUCCESS_PATH: &[&str] = &["SMNT"];

/// Runs one row; returns what went wrong.
async fn run(row: Row, cert: &std::path::Path, key: &std::path::Path) -> Result<(), String> {
    let mut config = Config::default();
    config.login.failure_delay = Duration::ZERO;
    if row.tls {
        config.tls = Some(TlsPolicy {
            config: std::sync::Arc::new(actorftpd::swap::Shared::new(load_config(cert, key)?)),
            require_control: false,
            require_data: false,
            require_session_reuse: false,
        });
    }
    let mut h = Harness::start_with(config, Permissions::ALL).await;
    write(&h.root, "f.txt", b"hello\nworld\n");
    std::fs::create_dir(h.root.join("sub")).map_err(|e| e.to_string())?;
    std::fs::create_dir(h.root.join("empty")).map_err(|e| e.to_string())?;
    if row.logged_in {
        h.login().await;
    }
    let mut passive = None;
    for step in row.setup {
        match step {
            Cmd(cmd, code) => {
                h.send(cmd).await;
                expect_code(&mut h, code, "setup").await?;
                if code == 234 {
                    expect_upgrade(&mut h).await?;
                }
            }
            Passive => {
                let r = h.cmd(Command::Epsv(EpsvArg::Any), 229).await;
                passive = Some(epsv_port(&r));
            }
        }
    }
    match row.expect {
        // The Session stops on its own: it cannot also acknowledge the message.
        Close(_) => h.session.do_send(row.cmd),
        _ => h.send(row.cmd).await,
    }
    match row.expect {
        Reply(code) => expect_code(&mut h, code, "answer").await?,
        Close(code) => {
            expect_code(&mut h, code, "last reply").await?;
            match h.next().await {
                SinkItem::Close => {}
                other => return Err(format!("{other:?} instead of the close")),
            }
            // Nothing after the close: the Session stops and drops its sender.
            return match tokio::time::timeout(REPLY_DEADLINE, h.replies.recv()).await {
                Ok(None) => Ok(()),
                other => Err(format!("after the close: {other:?}")),
            };
        }
        StartTls(code) => {
            expect_code(&mut h, code, "answer").await?;
            expect_upgrade(&mut h).await?;
        }
        Transfer { upload, end } => {
            expect_code(&mut h, 150, "preliminary").await?;
            let port = passive.ok_or("transfer row without Passive")?;
            let mut data =
                std::net::TcpStream::connect(local(port)).map_err(|e| format!("connect: {e}"))?;
            data.set_read_timeout(Some(REPLY_DEADLINE))
                .map_err(|e| e.to_string())?;
            tokio::task::spawn_blocking(move || {
                if upload {
                    let _ = data.write_all(b"uploaded\n");
                } else {
                    let _ = data.read_to_end(&mut Vec::new());
                }
            })
            .await
            .map_err(|e| e.to_string())?;
            expect_code(&mut h, end, "end of transfer").await?;
        }
    }
    // Exactly once: the marker's 200 is the next reply.
    h.send(Command::Noop).await;
    expect_code(&mut h, 200, "NOOP marker (a second answer came first?)").await
}

async fn expect_code(h: &mut Harness, code: u16, what: &str) -> Result<(), String> {
    match h.next().await {
        SinkItem::Reply(r) if r.code.as_u16() == code => Ok(()),
        other => Err(format!("{what}: expected {code}, got {other:?}")),
    }
}

async fn expect_upgrade(h: &mut Harness) -> Result<(), String> {
    match h.next().await {
        SinkItem::StartTls(_) => Ok(()),
        other => Err(format!("{other:?} instead of the TLS upgrade")),
    }
}

#[test]
fn every_variant_has_rows() {
    let rows = rows();
    for r in &rows {
        // EPRT's error row sends PORT: the same handler, refused the same way.
        let sent = VERBS[variant(&r.cmd)];
        assert!(
            sent == r.verb || (r.verb, sent) == ("EPRT", "PORT"),
            "row {} sends {sent}",
            r.verb
        );
    }
    let has = |verb: &str, path: Path| rows.iter().any(|r| r.verb == verb && r.path == path);
    for verb in VERBS {
        assert!(
            NO_SUCCESS_PATH.contains(&verb) || has(verb, Path::Success),
            "{verb} has no success row"
        );
        assert!(
            NO_FAILURE_PATH.contains(&verb) || has(verb, Path::Failure),
            "{verb} has no failure row"
        );
    }
}

#[test]
fn every_verb_is_answered_exactly_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, ck.cert.pem()).expect("cert");
    std::fs::write(&key, ck.key_pair.serialize_pem()).expect("key");
    let mut failures = Vec::new();
    for row in rows() {
        let shown = format!("{} ({:?} path)", row.verb, row.path);
        // Each row in its own System: its Session, pools and threads end with it.
        let outcome = actix::System::new().block_on(run(row, &cert, &key));
        if let Err(why) = outcome {
            failures.push(format!("{shown}: {why}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
