//! A lean FTP load generator for scenario C of `../shared/bench/ftpbench.py`: N clients, each
//! logged in once, then M times `EPSV` (or `PASV`), data connect, `RETR`, data to EOF, `150` and
//! `226`. The Python client uses so much CPU on a 2-core machine that the server is not the
//! bottleneck; this one runs on a single-threaded tokio runtime by default.
//!
//! ```sh
//! cargo bench --bench loadgen -- --port 30040 --clients 50 --retrs 50 --server-pid PID
//! ```
//!
//! Options (`--name value` or `--name=value`; `--bench`, which cargo passes, is ignored):
//!
//! | option | default | meaning |
//! |---|---|---|
//! | `--host H` | 127.0.0.1 | server address |
//! | `--port N` | 30030 | control port (`tests/bench/run_actorftpd.sh`'s default) |
//! | `--user U` / `--pass P` | ftpbench / ftpbench | login (the harness's test user) |
//! | `--clients N` | 50 | concurrent sessions |
//! | `--retrs M` | 50 | RETRs per session |
//! | `--file NAME` | bench_4k.bin | file to fetch (ftpbench.py's `FIX_SMALL`) |
//! | `--expect-sha256 HEX` | none | every transfer must have this sha256; otherwise every transfer must match the first one (length and sha256) |
//! | `--pasv` / `--epsv` | EPSV | passive command |
//! | `--commands` | off | instead of RETRs, `--retrs` command round trips per session: NOOP, PWD, `CWD bench_dir`, `CWD ..` in turn (scenario E's mix, on many sessions at once); latencies and CPU are per command |
//! | `--threads T` | 1 | tokio worker threads (1: a current-thread runtime) |
//! | `--server-pid P` | none | also report the CPU time of that process and of its live descendants (`/proc/*/stat`, all threads), so a forking server's session processes count |
//! | `--timeout S` | 60 | per login and per RETR (EPSV to 226); a timed-out session is abandoned |
//! | `--login-concurrency N` | 32 | logins in flight at once |
//!
//! The logins happen first and are not timed; the clock and the CPU meters run from the first
//! EPSV to the last 226, and the sessions QUIT after the meters are read (as ftpbench.py does).
//! Output: one JSON line on stdout; a human line and the first distinct errors on stderr. The
//! exit status is 1 if any transfer or login failed.
//!
//! Nothing read from the network is unwrapped: every failure is a counted error with its message.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// ftpbench.py's `FIX_SMALL`: the 4 KiB fixture of scenario C.
const FIX_SMALL: &str = "bench_4k.bin";
/// Longest control line accepted from the server.
const MAX_LINE: u64 = 8192;
/// Data read buffer per client.
const DATA_BUF: usize = 16 * 1024;
/// Distinct error messages printed on stderr.
const SHOW_ERRORS: usize = 5;

struct Opts {
    host: String,
    port: u16,
    user: String,
    pass: String,
    clients: usize,
    retrs: usize,
    file: String,
    expect_sha256: Option<[u8; 32]>,
    pasv: bool,
    commands: bool,
    threads: usize,
    server_pid: Option<u32>,
    timeout: Duration,
    login_concurrency: usize,
}

const USAGE: &str = "usage: cargo bench --bench loadgen -- [--host H] [--port N] [--user U] \
[--pass P] [--clients N] [--retrs M] [--file NAME] [--expect-sha256 HEX] [--pasv|--epsv] [--commands] \
[--threads T] [--server-pid P] [--timeout S] [--login-concurrency N]";

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        host: "127.0.0.1".into(),
        port: 30030,
        user: "ftpbench".into(),
        pass: "ftpbench".into(),
        clients: 50,
        retrs: 50,
        file: FIX_SMALL.into(),
        expect_sha256: None,
        pasv: false,
        commands: false,
        threads: 1,
        server_pid: None,
        timeout: Duration::from_secs(60),
        login_concurrency: 32,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{key} needs a value"))
        };
        fn num<T: std::str::FromStr>(key: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{key}: not a valid number: {v:?}"))
        }
        match key.as_str() {
            "--bench" => {}
            "--pasv" => o.pasv = true,
            "--epsv" => o.pasv = false,
            "--commands" => o.commands = true,
            "--host" => o.host = value()?,
            "--port" => o.port = num(&key, value()?)?,
            "--user" => o.user = value()?,
            "--pass" => o.pass = value()?,
            "--clients" => o.clients = num(&key, value()?)?,
            "--retrs" => o.retrs = num(&key, value()?)?,
            "--file" => o.file = value()?,
            "--expect-sha256" => o.expect_sha256 = Some(parse_hex32(&value()?)?),
            "--threads" => o.threads = num(&key, value()?)?,
            "--server-pid" => o.server_pid = Some(num(&key, value()?)?),
            "--timeout" => {
                let s: f64 = num(&key, value()?)?;
                o.timeout = Duration::try_from_secs_f64(s).map_err(|e| format!("{key}: {e}"))?;
            }
            "--login-concurrency" => o.login_concurrency = num(&key, value()?)?,
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown option {arg:?}")),
        }
    }
    if o.clients == 0 || o.login_concurrency == 0 {
        return Err("--clients and --login-concurrency must be at least 1".into());
    }
    for (what, s) in [
        ("--user", &o.user),
        ("--pass", &o.pass),
        ("--file", &o.file),
    ] {
        if s.contains(['\r', '\n']) {
            return Err(format!("{what} must not contain CR or LF"));
        }
    }
    Ok(o)
}

fn parse_hex32(s: &str) -> Result<[u8; 32], String> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return Err(format!("--expect-sha256: want 64 hex digits, got {s:?}"));
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16)
            .map_err(|_| format!("--expect-sha256: not hex: {s:?}"))?;
    }
    Ok(out)
}

fn hex(h: &[u8]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// At most `n` characters of server-supplied text, for error messages.
fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Control connection

struct Reply {
    code: u16,
    /// The first line, as received.
    text: String,
}

/// `Some((code, more))` for a line that starts a reply (`ddd ` / `ddd-` / bare `ddd`).
fn reply_code(line: &str) -> Option<(u16, bool)> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = b[..3]
        .iter()
        .fold(0u16, |a, d| a * 10 + u16::from(d - b'0'));
    match b.get(3) {
        None | Some(b' ') => Some((code, false)),
        Some(b'-') => Some((code, true)),
        _ => None,
    }
}

struct Ctrl {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
    line: Vec<u8>,
    peer: IpAddr,
}

impl Ctrl {
    async fn open(host: &str, port: u16) -> Result<Ctrl, String> {
        let s = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connect: {e}"))?;
        // Each command is one write; asyncio (ftpbench.py) sets TCP_NODELAY too.
        s.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        let peer = s.peer_addr().map_err(|e| format!("peer_addr: {e}"))?.ip();
        let (r, w) = s.into_split();
        Ok(Ctrl {
            r: BufReader::with_capacity(1024, r),
            w,
            line: Vec::with_capacity(256),
            peer,
        })
    }

    async fn send(&mut self, cmd: &str) -> Result<(), String> {
        let mut buf = Vec::with_capacity(cmd.len() + 2);
        buf.extend_from_slice(cmd.as_bytes());
        buf.extend_from_slice(b"\r\n");
        self.w
            .write_all(&buf)
            .await
            .map_err(|e| format!("control write: {e}"))
    }

    async fn read_line(&mut self) -> Result<String, String> {
        self.line.clear();
        let n = (&mut self.r)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)
            .await
            .map_err(|e| format!("control read: {e}"))?;
        if n == 0 {
            return Err("control connection closed by the server".into());
        }
        if self.line.last() != Some(&b'\n') {
            return Err(if n as u64 >= MAX_LINE {
                "control line too long".into()
            } else {
                "control connection closed mid-line".into()
            });
        }
        let mut end = self.line.len() - 1;
        if end > 0 && self.line[end - 1] == b'\r' {
            end -= 1;
        }
        Ok(String::from_utf8_lossy(&self.line[..end]).into_owned())
    }

    /// One whole reply, multi-line ones included (RFC 959 4.2: `ddd-` ... `ddd `).
    async fn reply(&mut self) -> Result<Reply, String> {
        let first = self.read_line().await?;
        let (code, mut more) =
            reply_code(&first).ok_or_else(|| format!("bad reply line {:?}", clip(&first, 80)))?;
        while more {
            let l = self.read_line().await?;
            more = !matches!(reply_code(&l), Some((c, false)) if c == code);
        }
        Ok(Reply { code, text: first })
    }

    async fn cmd(&mut self, cmd: &str) -> Result<Reply, String> {
        self.send(cmd).await?;
        self.reply().await
    }
}

fn want(r: &Reply, code: u16, what: &str) -> Result<(), String> {
    if r.code == code {
        Ok(())
    } else {
        Err(format!("{what} -> {}", clip(&r.text, 100)))
    }
}

async fn login(o: &Opts) -> Result<Ctrl, String> {
    let mut c = Ctrl::open(&o.host, o.port).await?;
    want(&c.reply().await?, 220, "greeting")?;
    let r = c.cmd(&format!("USER {}", o.user)).await?;
    match r.code {
        230 => {}
        331 => want(&c.cmd(&format!("PASS {}", o.pass)).await?, 230, "PASS")?,
        _ => return Err(format!("USER -> {}", clip(&r.text, 100))),
    }
    want(&c.cmd("TYPE I").await?, 200, "TYPE I")?;
    Ok(c)
}

// ---------------------------------------------------------------------------------------------
// One transfer

/// A failed transfer. `Synced`: every reply was read, the session can go on. `Broken`: the
/// control connection is in an unknown state (I/O error, timeout), the session is abandoned.
enum Fail {
    Synced(String),
    Broken(String),
}

/// `229 Entering Extended Passive Mode (|||port|)` (RFC 2428).
fn parse_epsv(text: &str) -> Option<u16> {
    let inner = &text[text.find('(')? + 1..];
    let inner = &inner[..inner.find(')')?];
    let d = inner.chars().next()?;
    let parts: Vec<&str> = inner.split(d).collect();
    if parts.len() != 5 || !parts[1].is_empty() || !parts[2].is_empty() {
        return None;
    }
    parts[3].parse().ok()
}

/// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`: the six numbers after the code.
fn parse_pasv(text: &str) -> Option<SocketAddr> {
    let rest = text.get(3..)?;
    let start = rest.find(|c: char| c.is_ascii_digit())?;
    let rest = &rest[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == ','))
        .unwrap_or(rest.len());
    let n: Vec<u8> = rest[..end]
        .split(',')
        .map(|x| x.parse::<u8>().ok())
        .collect::<Option<_>>()?;
    if n.len() != 6 {
        return None;
    }
    let ip = Ipv4Addr::new(n[0], n[1], n[2], n[3]);
    Some(SocketAddr::new(
        ip.into(),
        (u16::from(n[4]) << 8) | u16::from(n[5]),
    ))
}

async fn read_to_eof(mut s: TcpStream, buf: &mut [u8]) -> Result<(u64, [u8; 32]), String> {
    let mut h = Sha256::new();
    let mut n = 0u64;
    loop {
        let k = s.read(buf).await.map_err(|e| format!("data read: {e}"))?;
        if k == 0 {
            return Ok((n, h.finalize().into()));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// EPSV/PASV, data connect, RETR; the data (to EOF) and the replies (150, 226) are read
/// concurrently, so either order of 226 and data EOF works.
async fn retr(c: &mut Ctrl, o: &Opts, buf: &mut [u8]) -> Result<(u64, [u8; 32]), Fail> {
    let addr = if o.pasv {
        let r = c.cmd("PASV").await.map_err(Fail::Broken)?;
        if r.code != 227 {
            return Err(Fail::Synced(format!("PASV -> {}", clip(&r.text, 100))));
        }
        parse_pasv(&r.text)
            .ok_or_else(|| Fail::Synced(format!("PASV: unparsable {:?}", clip(&r.text, 100))))?
    } else {
        let r = c.cmd("EPSV").await.map_err(Fail::Broken)?;
        if r.code != 229 {
            return Err(Fail::Synced(format!("EPSV -> {}", clip(&r.text, 100))));
        }
        let port = parse_epsv(&r.text)
            .ok_or_else(|| Fail::Synced(format!("EPSV: unparsable {:?}", clip(&r.text, 100))))?;
        SocketAddr::new(c.peer, port)
    };
    let data = TcpStream::connect(addr)
        .await
        .map_err(|e| Fail::Synced(format!("data connect: {e}")))?;
    c.send(&format!("RETR {}", o.file))
        .await
        .map_err(Fail::Broken)?;

    let data_fut = read_to_eof(data, buf);
    // Outer Err: the control connection failed. Inner Err: RETR refused (all read, in sync).
    let ctrl_fut = async {
        let first = c.reply().await?;
        if first.code != 150 && first.code != 125 {
            return Ok(Err(first));
        }
        c.reply().await.map(Ok)
    };
    tokio::pin!(data_fut, ctrl_fut);
    let (mut data_res, mut end) = (None, None);
    while data_res.is_none() || end.is_none() {
        tokio::select! {
            r = &mut data_fut, if data_res.is_none() => data_res = Some(r),
            r = &mut ctrl_fut, if end.is_none() => match r {
                Err(e) => return Err(Fail::Broken(e)),
                Ok(Err(refused)) => {
                    return Err(Fail::Synced(format!("RETR -> {}", clip(&refused.text, 100))))
                }
                Ok(Ok(fin)) => end = Some(fin),
            },
        }
    }
    let (Some(data_res), Some(end)) = (data_res, end) else {
        return Err(Fail::Broken("internal: RETR loop ended early".into()));
    };
    if end.code != 226 && end.code != 250 {
        return Err(Fail::Synced(format!(
            "RETR end -> {}",
            clip(&end.text, 100)
        )));
    }
    data_res.map_err(Fail::Synced)
}

/// One command of scenario E's mix (the i-th of the session), checked for its reply code.
async fn command(c: &mut Ctrl, i: usize) -> Result<(), Fail> {
    let (cmd, code) = match i % 4 {
        0 => ("NOOP", 200),
        1 => ("PWD", 257),
        2 => ("CWD bench_dir", 250),
        _ => ("CWD ..", 250),
    };
    let r = c.cmd(cmd).await.map_err(Fail::Broken)?;
    want(&r, code, cmd).map_err(Fail::Synced)
}

/// Every transfer against `--expect-sha256`, and against the first transfer that completed.
struct Check {
    expect: Option<[u8; 32]>,
    first: OnceLock<(u64, [u8; 32])>,
}

impl Check {
    fn verify(&self, n: u64, h: &[u8; 32]) -> Result<(), String> {
        if let Some(e) = &self.expect {
            if e != h {
                return Err(format!("sha256 differs from --expect-sha256 ({n} bytes)"));
            }
        }
        let (n0, h0) = self.first.get_or_init(|| (n, *h));
        if *n0 != n {
            return Err(format!("length {n} differs from the first transfer's {n0}"));
        }
        if h0 != h {
            return Err("sha256 differs from the first transfer".into());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Clients and the run

#[derive(Default)]
struct Tally {
    lat: Vec<Duration>,
    errors: Vec<String>,
    not_attempted: usize,
}

/// M transfers on one session; hands the session back for QUIT unless it broke.
async fn client(mut c: Ctrl, o: Arc<Opts>, check: Arc<Check>) -> (Tally, Option<Ctrl>) {
    let mut t = Tally {
        lat: Vec::with_capacity(o.retrs),
        ..Tally::default()
    };
    let mut buf = vec![0u8; DATA_BUF];
    for i in 0..o.retrs {
        let t0 = Instant::now();
        let r = if o.commands {
            match tokio::time::timeout(o.timeout, command(&mut c, i)).await {
                Ok(r) => r.map(|()| None),
                Err(_) => Err(Fail::Broken(format!("command timeout ({:?})", o.timeout))),
            }
        } else {
            match tokio::time::timeout(o.timeout, retr(&mut c, &o, &mut buf)).await {
                Ok(r) => r.map(Some),
                Err(_) => Err(Fail::Broken(format!("RETR timeout ({:?})", o.timeout))),
            }
        };
        match r {
            Ok(None) => t.lat.push(t0.elapsed()),
            Ok(Some((n, h))) => match check.verify(n, &h) {
                Ok(()) => t.lat.push(t0.elapsed()),
                Err(e) => t.errors.push(e),
            },
            Err(Fail::Synced(e)) => t.errors.push(e),
            Err(Fail::Broken(e)) => {
                t.errors.push(e);
                t.not_attempted = o.retrs - i - 1;
                return (t, None);
            }
        }
    }
    (t, Some(c))
}

/// (parent pid, utime + stime in clock ticks) of a /proc/PID/stat, all threads of the process.
fn proc_stat(pid: &str) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let rest = s.get(s.rfind(')')? + 1..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state), f[1] field 4 (ppid); utime and stime are fields 14 and 15.
    let ppid = f.get(1)?.parse::<u32>().ok()?;
    Some((
        ppid,
        f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    ))
}

fn proc_ticks(pid: &str) -> Option<u64> {
    proc_stat(pid).map(|(_, t)| t)
}

/// CPU ticks of `root` and every live descendant. A forking server (pure-ftpd, vsftpd,
/// ProFTPD) does its work in per-session processes, which are alive from the logins to the
/// QUITs, so both readings see the same processes.
fn tree_ticks(root: u32) -> Option<u64> {
    let own = proc_ticks(&root.to_string())?;
    let mut parent: HashMap<u32, (u32, u64)> = HashMap::new();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(st) = proc_stat(&pid.to_string()) {
            parent.insert(pid, st);
        }
    }
    let descends = |mut pid: u32| {
        for _ in 0..64 {
            match parent.get(&pid) {
                Some(&(pp, _)) if pp == root => return true,
                Some(&(pp, _)) if pp > 1 => pid = pp,
                _ => return false,
            }
        }
        false
    };
    let kids: u64 = parent
        .iter()
        .filter(|(&pid, _)| pid != root && descends(pid))
        .map(|(_, &(_, t))| t)
        .sum();
    Some(own + kids)
}

fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// Percentile with linear interpolation, as ftpbench.py's `pct`; milliseconds.
fn pct_ms(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let k = (sorted.len() - 1) as f64 * p / 100.0;
    let (f, c) = (k.floor() as usize, k.ceil() as usize);
    let (a, b) = (sorted[f].as_secs_f64(), sorted[c].as_secs_f64());
    Some((a + (b - a) * (k - f as f64)) * 1e3)
}

/// Error messages with counts, in order of first occurrence.
#[derive(Default)]
struct Errors {
    order: Vec<String>,
    count: HashMap<String, usize>,
}

impl Errors {
    fn add(&mut self, e: String) {
        let n = self.count.entry(e.clone()).or_insert(0);
        if *n == 0 {
            self.order.push(e);
        }
        *n += 1;
    }
    fn total(&self) -> usize {
        self.count.values().sum()
    }
}

async fn run(o: Arc<Opts>) -> ExitCode {
    let tick = clk_tck();
    let mut errors = Errors::default();

    // Log in every session first (not timed).
    let sem = Arc::new(Semaphore::new(o.login_concurrency));
    let logins: Vec<_> = (0..o.clients)
        .map(|_| {
            let (o, sem) = (o.clone(), sem.clone());
            tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.map_err(|e| e.to_string())?;
                match tokio::time::timeout(o.timeout, login(&o)).await {
                    Ok(r) => r,
                    Err(_) => Err("timeout".into()),
                }
            })
        })
        .collect();
    let mut ctrls = Vec::with_capacity(o.clients);
    for h in logins {
        match h.await {
            Ok(Ok(c)) => ctrls.push(c),
            Ok(Err(e)) => errors.add(format!("login: {e}")),
            Err(e) => errors.add(format!("login task: {e}")),
        }
    }
    let logged_in = ctrls.len();
    let mut not_attempted = (o.clients - logged_in) * o.retrs;

    // The transfers, timed and metered.
    let check = Arc::new(Check {
        expect: o.expect_sha256,
        first: OnceLock::new(),
    });
    let c0 = proc_ticks("self");
    let s0 = o.server_pid.and_then(tree_ticks);
    let t0 = Instant::now();
    let tasks: Vec<_> = ctrls
        .into_iter()
        .map(|c| tokio::spawn(client(c, o.clone(), check.clone())))
        .collect();
    let mut lat = Vec::with_capacity(o.clients * o.retrs);
    let mut open = Vec::with_capacity(tasks.len());
    for h in tasks {
        match h.await {
            Ok((t, c)) => {
                lat.extend(t.lat);
                t.errors.into_iter().for_each(|e| errors.add(e));
                not_attempted += t.not_attempted;
                open.extend(c);
            }
            Err(e) => {
                errors.add(format!("client task: {e}"));
                not_attempted += o.retrs;
            }
        }
    }
    let wall = t0.elapsed().as_secs_f64();
    let c1 = proc_ticks("self");
    let s1 = o.server_pid.and_then(tree_ticks);

    // QUIT, after the meters were read.
    let quits: Vec<_> = open
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), c.cmd("QUIT")).await;
            })
        })
        .collect();
    for q in quits {
        let _ = q.await;
    }

    lat.sort_unstable();
    let ok = lat.len();
    let nerr = errors.total();
    let tps = if wall > 0.0 { ok as f64 / wall } else { 0.0 };
    let cpu = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / tick),
        _ => None,
    };
    let client_cpu = cpu(c0, c1);
    let server_cpu = cpu(s0, s1);
    let per_us = |s: Option<f64>| s.filter(|_| ok > 0).map(|s| s / ok as f64 * 1e6);
    let (p50, p90, p99) = (pct_ms(&lat, 50.0), pct_ms(&lat, 90.0), pct_ms(&lat, 99.0));
    let max = lat.last().map(|d| d.as_secs_f64() * 1e3);
    let reference = check.first.get().copied();
    let kinds: serde_json::Map<String, serde_json::Value> = errors
        .order
        .iter()
        .take(20)
        .map(|e| (e.clone(), errors.count[e].into()))
        .collect();

    let json = serde_json::json!({
        "tool": "loadgen",
        "mode": if o.commands { "commands" } else if o.pasv { "PASV" } else { "EPSV" },
        "file": o.file,
        "bytes": reference.map(|r| r.0),
        "sha256": reference.map(|r| hex(&r.1)),
        "clients": o.clients,
        "logged_in": logged_in,
        "retrs_per_client": o.retrs,
        "expected": o.clients * o.retrs,
        "transfers": ok,
        "errors": nerr,
        "not_attempted": not_attempted,
        "error_kinds": kinds,
        "wall_s": wall,
        "transfers_per_s": tps,
        "p50_ms": p50,
        "p90_ms": p90,
        "p99_ms": p99,
        "max_ms": max,
        "threads": o.threads,
        "client_cpu_s": client_cpu,
        "client_cpu_us_per_transfer": per_us(client_cpu),
        "server_pid": o.server_pid,
        "server_cpu_s": server_cpu,
        "server_cpu_us_per_transfer": per_us(server_cpu),
        "clk_tck": tick,
    });
    println!("{json}");

    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    let server = match server_cpu {
        Some(s) => format!(
            ", server CPU {s:.2} s ({} us/transfer)",
            f(per_us(Some(s)), 1)
        ),
        None => String::new(),
    };
    eprintln!(
        "loadgen: {} clients ({} logged in) x {} RETR {} ({}), {} thread(s): {ok}/{} ok, \
         {nerr} errors, {not_attempted} not attempted, in {wall:.3} s = {tps:.0} transfers/s, \
         latency p50 {} ms p99 {} ms; client CPU {} s ({} us/transfer){server}",
        o.clients,
        logged_in,
        o.retrs,
        o.file,
        if o.pasv { "PASV" } else { "EPSV" },
        o.threads,
        o.clients * o.retrs,
        f(p50, 2),
        f(p99, 2),
        f(client_cpu, 2),
        f(per_us(client_cpu), 1),
    );
    for e in errors.order.iter().take(SHOW_ERRORS) {
        eprintln!("  error x{}: {e}", errors.count[e]);
    }
    if errors.order.len() > SHOW_ERRORS {
        eprintln!(
            "  ... {} more distinct errors",
            errors.order.len() - SHOW_ERRORS
        );
    }
    if nerr == 0 && ok == o.clients * o.retrs {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    // A plain `cargo bench` runs every bench target: without options there is no server to
    // load, so this one says how to use it and gets out of the way.
    if std::env::args().skip(1).all(|a| a == "--bench") {
        eprintln!("loadgen: needs a running FTP server and options; skipped.\n{USAGE}");
        return ExitCode::SUCCESS;
    }
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("loadgen: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = if o.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.threads)
            .enable_all()
            .build()
    };
    match rt {
        Ok(rt) => rt.block_on(run(Arc::new(o))),
        Err(e) => {
            eprintln!("loadgen: tokio runtime: {e}");
            ExitCode::from(2)
        }
    }
}
