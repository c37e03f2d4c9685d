//! FTPS (RFC 4217) with real clients and a certificate made at test time: suppaftp's rustls
//! mode, curl (explicit and implicit), Python's FTP_TLS, lftp, plus the protocol edges
//! (pipelined plaintext after AUTH, policies, PBSZ/PROT order, session reuse).

mod common;

use common::tls::{client_config, make_cert, tls_client, Cert};
use common::{
    assert_file_holds, random_bytes, require_tool, run_with_timeout, sha256_hex, Daemon,
    CLIENT_DEADLINE,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(20);

fn tls_daemon(cert: &Cert, extra: &[&str]) -> Daemon {
    let mut args = vec![
        "--tls-cert",
        cert.cert_arg(),
        "--tls-key",
        cert.key_arg(),
        "--login-failure-delay-ms",
        "0",
    ];
    args.extend_from_slice(extra);
    Daemon::start_with_args(&[("alice", "pw", "srv")], &args)
}

/// suppaftp over rustls: AUTH TLS, logged in as alice, TYPE I.
fn suppaftp_tls_login(d: &Daemon, cert: &Cert) -> suppaftp::RustlsFtpStream {
    let ftp = suppaftp::RustlsFtpStream::connect(d.addr()).expect("connect");
    let mut ftp = ftp
        .into_secure(
            suppaftp::RustlsConnector::from(client_config(cert)),
            "localhost",
        )
        .expect("AUTH TLS");
    ftp.login("alice", "pw").expect("login over TLS");
    ftp.transfer_type(suppaftp::types::FileType::Binary)
        .expect("TYPE I");
    ftp
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A control connection that can switch to TLS and shows exact replies.
struct Raw {
    reader: BufReader<Box<dyn Stream>>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> (Raw, TcpStream) {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let keep = s.try_clone().expect("clone");
        (
            Raw {
                reader: BufReader::new(Box::new(s)),
            },
            keep,
        )
    }

    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).expect("read reply") > 0,
                "connection closed; so far {text:?}"
            );
            text.push_str(&line);
            let code = &text[..3];
            if line.starts_with(code) && line.as_bytes().get(3) == Some(&b' ') {
                return (code.parse().expect("code"), text);
            }
        }
    }

    fn expect(&mut self, code: u16) -> String {
        let (c, text) = self.reply();
        assert_eq!(c, code, "unexpected reply {text:?}");
        text
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        let s = self.reader.get_mut();
        s.write_all(bytes).expect("send");
        s.flush().expect("flush");
    }

    fn cmd(&mut self, line: &str, code: u16) -> String {
        self.send_raw(format!("{line}\r\n").as_bytes());
        self.expect(code)
    }

    /// Runs the TLS handshake on the plain socket `sock` (after a 234).
    fn into_tls(sock: TcpStream, config: Arc<rustls::ClientConfig>) -> Raw {
        Raw {
            reader: BufReader::new(Box::new(tls_client(sock, config))),
        }
    }
}

fn tls_login(d: &Daemon, cert: &Cert) -> Raw {
    let (mut plain, sock) = Raw::connect(d.addr());
    plain.expect(220);
    plain.cmd("AUTH TLS", 234);
    drop(plain);
    let mut c = Raw::into_tls(sock, client_config(cert));
    c.cmd("USER alice", 331);
    c.cmd("PASS pw", 230);
    c
}

fn curl(args: &[&str]) -> common::ClientOutput {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "60"]).args(args);
    run_with_timeout(&mut cmd, CLIENT_DEADLINE)
}

#[test]
fn suppaftp_rustls_round_trip_is_byte_exact() {
    let cert = make_cert();
    let d = tls_daemon(&cert, &[]);
    let mut ftp = suppaftp_tls_login(&d, &cert);
    for (name, size) in [("empty", 0), ("one", 1), ("mib", 1024 * 1024 + 5)] {
        let data = random_bytes(size);
        ftp.put_file(name, &mut data.as_slice())
            .expect("STOR over TLS");
        let back = ftp
            .retr_as_buffer(name)
            .expect("RETR over TLS")
            .into_inner();
        assert_eq!(sha256_hex(&back), sha256_hex(&data), "{name}");
        assert_eq!(
            common::file_sha256(&d.root("alice").join(name)),
            sha256_hex(&data)
        );
    }
    let names = ftp.nlst(None).expect("NLST over TLS");
    assert!(names.iter().any(|n| n.ends_with("mib")), "{names:?}");
    ftp.quit().expect("QUIT");
}

#[test]
fn curl_explicit_tls_lists_downloads_and_uploads() {
    if !require_tool("curl") {
        return;
    }
    let cert = make_cert();
    let d = tls_daemon(&cert, &["--require-tls-control", "--require-tls-data"]);
    let data = random_bytes(2 * 1024 * 1024 + 3);
    std::fs::write(d.root("alice").join("down.bin"), &data).expect("fixture");
    let base = format!("ftp://alice:pw@{}/", d.addr());
    let cafile = cert.cert.to_str().expect("utf8");
    let list = curl(&["--ssl-reqd", "--cacert", cafile, &base]);
    list.assert_success("curl list over TLS");
    assert!(list.stdout_text().contains("down.bin"));
    let got = curl(&["--ssl-reqd", "--cacert", cafile, &format!("{base}down.bin")]);
    got.assert_success("curl download over TLS");
    assert_eq!(sha256_hex(&got.stdout), sha256_hex(&data));
    let up = d.tmp().join("up-src.bin");
    std::fs::write(&up, &data).expect("upload source");
    curl(&[
        "--ssl-reqd",
        "--cacert",
        cafile,
        "-T",
        up.to_str().expect("utf8"),
        &format!("{base}up.bin"),
    ])
    .assert_success("curl upload over TLS");
    assert_eq!(
        common::file_sha256(&d.root("alice").join("up.bin")),
        sha256_hex(&data)
    );
    // Plain curl is refused by the policy.
    let plain = curl(&[&base]);
    assert!(!plain.status.success(), "plaintext login was accepted");
}

#[test]
fn curl_implicit_tls_downloads() {
    if !require_tool("curl") {
        return;
    }
    let cert = make_cert();
    let mut d = tls_daemon(&cert, &["--implicit-tls-listen", "127.0.0.1:0"]);
    let line = d
        .wait_for_stdout_line(|l| l.starts_with("actorftpd implicit TLS on "), DEADLINE)
        .expect("implicit address");
    let implicit = line.trim_start_matches("actorftpd implicit TLS on ").trim();
    let data = random_bytes(1024 * 1024);
    std::fs::write(d.root("alice").join("f.bin"), &data).expect("fixture");
    let got = curl(&[
        "--cacert",
        cert.cert.to_str().expect("utf8"),
        &format!("ftps://alice:pw@{implicit}/f.bin"),
    ]);
    got.assert_success("curl ftps://");
    assert_eq!(sha256_hex(&got.stdout), sha256_hex(&data));
}

const FTPLIB_TLS: &str = r#"
import ftplib, hashlib, io, ssl, sys
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=sys.argv[4])
ctx.check_hostname = False
ftp = ftplib.FTP_TLS(context=ctx, timeout=30)
ftp.connect(host, port)
ftp.login("alice", "pw")
ftp.prot_p()
data = bytes((i * 7 + 3) % 251 for i in range(3 * 1024 * 1024))
if mode == "roundtrip":
    ftp.storbinary("STOR py.bin", io.BytesIO(data))
    out = io.BytesIO()
    ftp.retrbinary("RETR py.bin", out.write)
    print("up", hashlib.sha256(data).hexdigest())
    print("down", hashlib.sha256(out.getvalue()).hexdigest())
elif mode == "abort":
    ftp.voidcmd("TYPE I")
    conn = ftp.transfercmd("RETR big.bin")
    conn.recv(65536)
    first = ftp.abort()
    print("abort", first[:3])
    if first.startswith("426"):
        print("then", ftp.getresp()[:3])
    conn.close()
    out = io.BytesIO()
    ftp.retrbinary("RETR small.bin", out.write)
    print("after", hashlib.sha256(out.getvalue()).hexdigest())
elif mode == "reuse":
    try:
        ftp.retrlines("LIST", lambda l: None)
        print("list ok")
    except ftplib.error_temp as e:
        print("refused", str(e)[:3])
    except (OSError, EOFError) as e:
        # The data connection was dropped under the client; the 425 follows on control.
        try:
            ftp.getresp()
            print("no refusal")
        except ftplib.error_temp as e:
            print("refused", str(e)[:3])
ftp.quit()
"#;

fn ftplib(d: &Daemon, cert: &Cert, mode: &str) -> Option<String> {
    if !require_tool("python3") {
        return None;
    }
    let mut cmd = Command::new("python3");
    cmd.args(["-c", FTPLIB_TLS])
        .arg("127.0.0.1")
        .arg(d.port().to_string())
        .arg(mode)
        .arg(&cert.cert);
    let out = run_with_timeout(&mut cmd, CLIENT_DEADLINE);
    out.assert_success("python FTP_TLS");
    Some(out.stdout_text())
}

#[test]
fn python_ftp_tls_prot_p_round_trip_is_byte_exact() {
    let cert = make_cert();
    let d = tls_daemon(&cert, &[]);
    let Some(out) = ftplib(&d, &cert, "roundtrip") else {
        return;
    };
    let up = out.lines().find_map(|l| l.strip_prefix("up ")).expect("up");
    let down = out
        .lines()
        .find_map(|l| l.strip_prefix("down "))
        .expect("down");
    assert_eq!(up, down);
    assert_eq!(common::file_sha256(&d.root("alice").join("py.bin")), up);
}

#[test]
fn abor_during_a_tls_download_leaves_the_session_usable() {
    let cert = make_cert();
    let d = tls_daemon(&cert, &[]);
    std::fs::write(
        d.root("alice").join("big.bin"),
        random_bytes(64 * 1024 * 1024),
    )
    .expect("big");
    let small = random_bytes(10_000);
    std::fs::write(d.root("alice").join("small.bin"), &small).expect("small");
    let Some(out) = ftplib(&d, &cert, "abort") else {
        return;
    };
    let first = out
        .lines()
        .find_map(|l| l.strip_prefix("abort "))
        .expect("abort reply");
    assert!(["426", "226", "225"].contains(&first), "{out}");
    if first == "426" {
        assert!(out.contains("then 226"), "{out}");
    }
    assert!(
        out.contains(&format!("after {}", sha256_hex(&small))),
        "{out}"
    );
}

#[test]
fn lftp_with_forced_tls_round_trips() {
    if !require_tool("lftp") {
        return;
    }
    let cert = make_cert();
    let d = tls_daemon(&cert, &["--require-tls-control", "--require-tls-data"]);
    let data = random_bytes(1024 * 1024 + 11);
    let src = d.tmp().join("lftp-src.bin");
    std::fs::write(&src, &data).expect("src");
    let dst = d.tmp().join("lftp-dst.bin");
    let script = format!(
        "set net:max-retries 1; set net:timeout 10; set ftp:ssl-force true; \
         set ftp:ssl-protect-data true; set ssl:verify-certificate no; \
         open -u alice,pw -p {} 127.0.0.1; put {} -o up.bin; get up.bin -o {}; bye",
        d.port(),
        src.display(),
        dst.display()
    );
    let mut cmd = Command::new("lftp");
    cmd.args(["-c", &script]);
    run_with_timeout(&mut cmd, CLIENT_DEADLINE).assert_success("lftp over TLS");
    assert_eq!(
        common::file_sha256(&d.root("alice").join("up.bin")),
        sha256_hex(&data)
    );
    assert_file_holds(&dst, &data, "");
}

#[test]
fn plaintext_pipelined_after_auth_tls_is_not_executed() {
    let cert = make_cert();
    let d = tls_daemon(&cert, &[]);
    let victim = d.root("alice").join("victim.txt");
    std::fs::write(&victim, b"keep me").expect("victim");
    let (mut plain, sock) = Raw::connect(d.addr());
    plain.expect(220);
    // One write: AUTH and, in clear behind it, commands an attacker on the path injected.
    plain.send_raw(b"AUTH TLS\r\nUSER alice\r\nPASS pw\r\nDELE victim.txt\r\n");
    plain.expect(234);
    drop(plain);
    let mut c = Raw::into_tls(sock, client_config(&cert));
    // The first reply over TLS answers our NOOP: nothing pipelined was run or answered.
    c.cmd("NOOP", 200);
    c.cmd("PWD", 530);
    c.cmd("USER alice", 331);
    c.cmd("PASS pw", 230);
    c.cmd("NOOP", 200);
    assert_eq!(std::fs::read(&victim).expect("victim"), b"keep me");
}

#[test]
fn tls_required_policy_refuses_plaintext_login_and_clear_data() {
    let cert = make_cert();
    let d = tls_daemon(&cert, &["--require-tls-control", "--require-tls-data"]);
    let (mut plain, _) = Raw::connect(d.addr());
    plain.expect(220);
    let text = plain.cmd("USER alice", 530);
    assert!(text.contains("TLS"), "{text:?}");
    let mut c = tls_login(&d, &cert);
    c.cmd("PBSZ 0", 200);
    c.cmd("PROT C", 534);
    c.cmd("EPSV", 229);
    let text = c.cmd("LIST", 521);
    assert!(text.contains("PROT P"), "{text:?}");
    c.cmd("PROT P", 200);
}

#[test]
fn pbsz_prot_ccc_and_auth_replies() {
    let cert = make_cert();
    let d = tls_daemon(&cert, &[]);
    let (mut plain, _) = Raw::connect(d.addr());
    plain.expect(220);
    plain.cmd("PBSZ 0", 503);
    plain.cmd("PROT P", 503);
    plain.cmd("AUTH KERBEROS_V4", 504);
    let feat = plain.cmd("FEAT", 211);
    for f in [" AUTH TLS", " PBSZ", " PROT"] {
        assert!(feat.lines().any(|l| l == f), "FEAT lacks {f:?}: {feat}");
    }
    let mut c = tls_login(&d, &cert);
    c.cmd("AUTH TLS", 503);
    c.cmd("PROT P", 503);
    c.cmd("PBSZ 0", 200);
    c.cmd("PROT S", 536);
    c.cmd("PROT X", 501);
    c.cmd("PROT P", 200);
    c.cmd("CCC", 502);

    // Without a certificate there is no TLS, and FEAT does not offer it.
    let no_tls = Daemon::start(&[("alice", "pw")]);
    let (mut c, _) = Raw::connect(no_tls.addr());
    c.expect(220);
    let feat = c.cmd("FEAT", 211);
    assert!(
        !feat.contains("AUTH TLS") && !feat.contains("PROT"),
        "{feat}"
    );
    c.cmd("AUTH TLS", 502);
}

#[test]
fn session_reuse_policy_admits_resuming_clients_only() {
    let cert = make_cert();
    let d = tls_daemon(&cert, &["--require-tls-session-reuse"]);
    let data = random_bytes(300_000);
    std::fs::write(d.root("alice").join("f.bin"), &data).expect("fixture");
    // rustls resumes with the ticket it got on the control connection: admitted.
    let mut ftp = suppaftp_tls_login(&d, &cert);
    let back = ftp
        .retr_as_buffer("f.bin")
        .expect("RETR with resumption")
        .into_inner();
    assert_eq!(sha256_hex(&back), sha256_hex(&data));
    // curl (OpenSSL) resumes the control session on its data connections, with TLS 1.2 and
    // 1.3 alike: admitted.
    if require_tool("curl") {
        let url = format!("ftp://alice:pw@127.0.0.1:{}/f.bin", d.port());
        for version in ["1.2", "1.3"] {
            let min = format!("--tlsv{version}");
            let got = curl(&[
                "--ssl-reqd",
                "--cacert",
                cert.cert_arg(),
                &min,
                "--tls-max",
                version,
                &url,
            ]);
            got.assert_success(&format!(
                "curl over TLS {version} with session reuse required"
            ));
            assert_eq!(sha256_hex(&got.stdout), sha256_hex(&data), "TLS {version}");
        }
    }
    // Python's ftplib does not reuse the session: its data connection is refused with 425.
    if let Some(out) = ftplib(&d, &cert, "reuse") {
        assert!(out.contains("refused 425"), "{out}");
    }
}

#[test]
fn unreadable_or_mismatched_certificates_stop_the_daemon_with_one_line() {
    let a = make_cert();
    let b = make_cert();
    let missing = a.cert.with_file_name("missing.pem");
    let cases = [
        (&a.cert, &b.key, "does not fit"),
        (&missing, &a.key, "missing.pem"),
        (&a.key, &a.key, "no CERTIFICATE"),
    ];
    for (cert, key, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_actorftpd"))
            .args(["--listen", "127.0.0.1:0", "--tls-cert"])
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run daemon");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "started with {cert:?} / {key:?}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(want), "{want:?} not in {stderr}");
    }
}
