//! Scenarios driven with the `suppaftp` client (sync API, passive mode).

mod common;

use common::*;
use suppaftp::types::{FileType, FormatControl};
use suppaftp::{FtpStream, Mode, Status};

const ALICE: (&str, &str) = ("alice", "alice-pass");

fn alice() -> Daemon {
    Daemon::start(&[ALICE])
}

/// Uploads `n` random bytes, checks the file on disk and the bytes downloaded back.
fn round_trip(n: usize, mode: Mode) {
    let d = alice();
    let mut ftp = d.login("alice");
    ftp.set_mode(mode);
    let data = random_bytes(n);
    let want = sha256_hex(&data);
    let name = format!("blob-{n}.bin");

    put(&mut ftp, &name, &data);
    assert_eq!(
        file_sha256(&d.root("alice").join(&name)),
        want,
        "{} upload: file on disk differs from what was sent",
        size_label(n)
    );
    assert_eq!(
        ftp.size(&name).expect("SIZE of the uploaded file"),
        n,
        "SIZE after a {} upload",
        size_label(n)
    );
    let back = get(&mut ftp, &name);
    assert_eq!(back.len(), n, "{} download length", size_label(n));
    assert_eq!(
        sha256_hex(&back),
        want,
        "{} download differs from upload",
        size_label(n)
    );
    ftp.noop().expect("NOOP after the transfers");
    ftp.quit().expect("QUIT answers 221");
}

#[test]
fn upload_then_download_0_bytes_is_byte_exact() {
    round_trip(0, Mode::Passive);
}

#[test]
fn upload_then_download_1_byte_is_byte_exact() {
    round_trip(1, Mode::Passive);
}

#[test]
fn upload_then_download_1_mib_is_byte_exact() {
    round_trip(MIB, Mode::Passive);
}

#[test]
fn upload_then_download_64_mib_is_byte_exact() {
    round_trip(64 * MIB, Mode::Passive);
}

#[test]
fn upload_then_download_over_epsv_is_byte_exact() {
    round_trip(MIB + 123, Mode::ExtendedPassive);
}

#[test]
fn download_of_file_placed_on_disk_is_byte_exact() {
    let d = alice();
    let data = random_bytes_seeded(7, 3 * MIB + 17);
    write_file(&d.root("alice").join("sub dir/placed.bin"), &data);
    let mut ftp = d.login("alice");
    let back = get(&mut ftp, "sub dir/placed.bin");
    assert_eq!(
        sha256_hex(&back),
        sha256_hex(&data),
        "RETR of a file put on disk"
    );
    let back = get(&mut ftp, "/sub dir/placed.bin");
    assert_eq!(
        sha256_hex(&back),
        sha256_hex(&data),
        "RETR by absolute path"
    );
}

#[test]
fn stor_over_existing_file_replaces_it_completely() {
    let d = alice();
    let mut ftp = d.login("alice");
    put(&mut ftp, "over.bin", &random_bytes(MIB));
    let small = random_bytes_seeded(99, 10);
    put(&mut ftp, "over.bin", &small);
    let on_disk = d.root("alice").join("over.bin");
    assert_eq!(
        std::fs::metadata(&on_disk).expect("stat over.bin").len(),
        small.len() as u64,
        "overwriting STOR must truncate the old content"
    );
    assert_file_holds(&on_disk, &small, "content after overwrite");
    let back = get(&mut ftp, "over.bin");
    assert_eq!(back.len(), small.len(), "RETR length after overwrite");
    assert_eq!(
        sha256_hex(&back),
        sha256_hex(&small),
        "RETR after overwrite"
    );
}

#[test]
fn login_with_correct_password_succeeds() {
    let d = alice();
    let mut ftp = d.connect();
    assert!(
        ftp.get_welcome_msg().is_some(),
        "the connection must open with a 220 greeting"
    );
    ftp.login("alice", "alice-pass")
        .expect("USER/PASS with the right password gives 230");
    ftp.noop().expect("NOOP after login");
}

/// A connection whose first login, with a wrong password, got 530.
fn refused_once(d: &Daemon) -> FtpStream {
    let mut ftp = d.connect();
    assert_reply(
        ftp.login("alice", "not-the-password"),
        530,
        "wrong password",
    );
    ftp
}

#[test]
fn login_with_wrong_password_is_refused_with_530() {
    let d = alice();
    let mut ftp = refused_once(&d);
    assert_reply(ftp.pwd(), 530, "PWD after a failed login");
}

#[test]
fn failed_login_can_be_retried_on_the_same_connection() {
    let d = alice();
    let mut ftp = refused_once(&d);
    ftp.login("alice", "alice-pass")
        .expect("login with the right password after one failed attempt");
    assert_eq!(ftp.pwd().expect("PWD"), "/");
}

#[test]
fn login_as_unknown_user_is_refused_with_530() {
    let d = alice();
    let mut ftp = d.connect();
    assert_reply(ftp.login("mallory", "alice-pass"), 530, "unknown user");
}

#[test]
fn user_cannot_log_in_with_another_users_password() {
    let d = Daemon::start(&[ALICE, ("bob", "bob-pass")]);
    let mut ftp = d.connect();
    assert_reply(
        ftp.login("alice", "bob-pass"),
        530,
        "alice with bob's password",
    );
}

#[test]
fn commands_before_login_are_refused_with_530() {
    let d = alice();
    let mut ftp = d.connect();
    for cmd in [
        "PWD", "LIST", "NLST", "CWD /", "RETR x", "STOR x", "MKD x", "SIZE x",
    ] {
        expect_code(&mut ftp, cmd, Status::NotLoggedIn);
    }
    assert_reply(ftp.pwd(), 530, "PWD before login");
    assert_reply(ftp.list(None), 530, "LIST (with PASV) before login");
    assert!(
        std::fs::read_dir(d.root("alice"))
            .expect("read root")
            .next()
            .is_none(),
        "nothing may be created before login"
    );
}

#[test]
fn pwd_is_root_after_login() {
    let d = alice();
    let mut ftp = d.login("alice");
    assert_eq!(ftp.pwd().expect("PWD after login"), "/");
    let reply = expect_code(&mut ftp, "XPWD", Status::PathCreated);
    assert!(reply.contains("\"/\""), "XPWD reply {reply:?} names \"/\"");
}

#[test]
fn basic_commands_answer_with_rfc959_codes() {
    let d = alice();
    let mut ftp = d.login("alice");
    expect_code(&mut ftp, "NOOP", Status::CommandOk);
    expect_code(&mut ftp, "SYST", Status::Name);
    expect_code(&mut ftp, "HELP", Status::Help);
    expect_code(&mut ftp, "TYPE A", Status::CommandOk);
    expect_code(&mut ftp, "TYPE I", Status::CommandOk);
    expect_code(&mut ftp, "MODE S", Status::CommandOk);
    expect_code(&mut ftp, "STRU F", Status::CommandOk);
    let feat = ftp.feat().expect("FEAT answers 211");
    // RFC 3659 §4: a server implementing SIZE lists it in FEAT.
    assert!(
        feat.keys().any(|k| k.eq_ignore_ascii_case("SIZE")),
        "FEAT lists SIZE: {feat:?}"
    );
    ftp.transfer_type(FileType::Image)
        .expect("TYPE I via the client API");
    ftp.quit().expect("QUIT answers 221");
}

/// RFC 959 §5.1 minimum implementation is "TYPE - ASCII Non-print", and suppaftp spells ASCII as
/// `TYPE A N`, so a server that only accepts the bare `TYPE A` breaks this client's ASCII mode.
#[test]
fn type_a_with_nonprint_format_is_accepted() {
    let d = alice();
    let mut ftp = d.login("alice");
    ftp.transfer_type(FileType::Ascii(FormatControl::Default))
        .expect("TYPE A N (suppaftp's ASCII) is accepted");
    ftp.transfer_type(FileType::Image).expect("back to TYPE I");
}

#[test]
fn list_and_nlst_show_uploaded_names() {
    let d = alice();
    let mut ftp = d.login("alice");
    let names = ["alpha.bin", "beta.txt", "with space.dat"];
    for (i, name) in names.iter().enumerate() {
        put(&mut ftp, name, &random_bytes_seeded(i as u64, 100 + i));
    }
    ftp.mkdir("subdir").expect("MKD subdir");
    put(&mut ftp, "subdir/inner.bin", &random_bytes(5));

    let nlst = ftp
        .nlst(None)
        .expect("NLST")
        .into_iter()
        .map(|n| basename(&n));
    let want: Vec<&str> = names.iter().chain(&["subdir"]).copied().collect();
    assert_same_names(nlst, &want, "NLST of / lists exactly the uploaded names");

    let list = ftp.list(None).expect("LIST");
    for name in want.iter() {
        assert!(
            list.iter().any(|l| l.ends_with(name)),
            "LIST shows {name:?}: {list:#?}"
        );
    }
    let dir_line = list
        .iter()
        .find(|l| l.ends_with("subdir"))
        .expect("LIST line for subdir");
    assert!(
        dir_line.starts_with('d'),
        "subdir is listed as a directory: {dir_line:?}"
    );

    let sub: Vec<String> = ftp
        .nlst(Some("subdir"))
        .expect("NLST subdir")
        .into_iter()
        .map(|n| basename(&n))
        .collect();
    assert_eq!(sub, vec!["inner.bin".to_string()], "NLST subdir");
    let sub_list = ftp.list(Some("subdir")).expect("LIST subdir");
    assert!(
        sub_list.iter().any(|l| l.ends_with("inner.bin")),
        "LIST subdir: {sub_list:#?}"
    );

    ftp.set_mode(Mode::ExtendedPassive);
    let epsv = ftp
        .nlst(None)
        .expect("NLST over EPSV")
        .into_iter()
        .map(|n| basename(&n));
    assert_same_names(epsv, &want, "NLST over EPSV");
}

fn basename(name: &str) -> String {
    name.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(name)
        .to_string()
}

#[test]
fn mkd_cwd_pwd_cdup_rmd_round_trip() {
    let d = alice();
    let root = d.root("alice");
    let mut ftp = d.login("alice");

    let reply = expect_code(&mut ftp, "MKD docs", Status::PathCreated);
    assert!(
        reply.contains("docs"),
        "MKD reply names the directory: {reply:?}"
    );
    assert!(root.join("docs").is_dir(), "MKD created docs on disk");

    expect_code(&mut ftp, "CWD docs", Status::RequestedFileActionOk);
    assert_eq!(ftp.pwd().expect("PWD"), "/docs");
    ftp.mkdir("inner").expect("MKD relative to the cwd");
    assert!(
        root.join("docs/inner").is_dir(),
        "MKD inner is relative to /docs"
    );
    ftp.cwd("inner").expect("CWD inner");
    assert_eq!(ftp.pwd().expect("PWD"), "/docs/inner");
    put(&mut ftp, "here.bin", b"here");
    assert_eq!(
        std::fs::read(root.join("docs/inner/here.bin")).expect("read here.bin"),
        b"here",
        "STOR relative to the cwd"
    );

    // RFC 959 lists 200 for CDUP; 250 is what most servers send. Both are fine.
    expect_codes(
        &mut ftp,
        "CDUP",
        &[Status::CommandOk, Status::RequestedFileActionOk],
    );
    assert_eq!(ftp.pwd().expect("PWD"), "/docs");
    ftp.cdup().expect("CDUP");
    assert_eq!(ftp.pwd().expect("PWD"), "/");
    ftp.cwd("/docs/inner").expect("CWD absolute");
    assert_eq!(ftp.pwd().expect("PWD"), "/docs/inner");
    ftp.cwd("/").expect("CWD /");

    // A non-empty directory is not removed.
    let err = ftp
        .custom_command("RMD docs/inner", &[Status::RequestedFileActionOk])
        .expect_err("RMD of a non-empty directory must fail");
    let code = reply_code(&err).unwrap_or(0);
    assert!((400..600).contains(&code), "RMD non-empty: {err}");
    assert!(
        root.join("docs/inner/here.bin").is_file(),
        "content survived"
    );

    ftp.rm("docs/inner/here.bin").expect("DELE here.bin");
    expect_code(&mut ftp, "RMD docs/inner", Status::RequestedFileActionOk);
    assert!(!root.join("docs/inner").exists(), "RMD removed inner");
    ftp.rmdir("docs").expect("RMD docs");
    assert!(!root.join("docs").exists(), "RMD removed docs");

    assert_reply(ftp.cwd("docs"), 550, "CWD into a removed directory");
    assert_reply(ftp.rmdir("docs"), 550, "RMD of a missing directory");
    assert_eq!(
        ftp.pwd().expect("PWD"),
        "/",
        "failed CWD leaves the cwd alone"
    );
}

#[test]
fn x_aliases_behave_like_their_rfc959_counterparts() {
    let d = alice();
    let root = d.root("alice");
    let mut ftp = d.login("alice");
    expect_code(&mut ftp, "XMKD xdir", Status::PathCreated);
    assert!(root.join("xdir").is_dir(), "XMKD created xdir");
    expect_code(&mut ftp, "XCWD xdir", Status::RequestedFileActionOk);
    let pwd = expect_code(&mut ftp, "XPWD", Status::PathCreated);
    assert!(pwd.contains("\"/xdir\""), "XPWD reply: {pwd:?}");
    expect_codes(
        &mut ftp,
        "XCUP",
        &[Status::CommandOk, Status::RequestedFileActionOk],
    );
    assert_eq!(ftp.pwd().expect("PWD"), "/");
    expect_code(&mut ftp, "XRMD xdir", Status::RequestedFileActionOk);
    assert!(!root.join("xdir").exists(), "XRMD removed xdir");
}

#[test]
fn dele_removes_file_and_missing_file_gives_550() {
    let d = alice();
    let root = d.root("alice");
    let mut ftp = d.login("alice");
    put(&mut ftp, "doomed.bin", &random_bytes(1000));
    assert!(root.join("doomed.bin").is_file());
    expect_code(&mut ftp, "DELE doomed.bin", Status::RequestedFileActionOk);
    assert!(
        !root.join("doomed.bin").exists(),
        "DELE removed the file on disk"
    );
    assert_reply(ftp.rm("doomed.bin"), 550, "DELE of a deleted file");
    assert_reply(
        ftp.retr_as_buffer("doomed.bin"),
        550,
        "RETR of a deleted file",
    );
    assert_reply(ftp.size("doomed.bin"), 550, "SIZE of a deleted file");
    ftp.noop().expect("session still usable after 550s");
}

#[test]
fn size_reports_exact_byte_count() {
    let d = alice();
    let mut ftp = d.login("alice");
    for n in [0usize, 1, 4097, MIB + 1] {
        let name = format!("s{n}.bin");
        put(&mut ftp, &name, &random_bytes(n));
        let reply = expect_code(&mut ftp, &format!("SIZE {name}"), Status::File);
        assert!(
            reply.ends_with(&n.to_string()),
            "SIZE {name} reply {reply:?}"
        );
        assert_eq!(ftp.size(&name).expect("SIZE"), n, "SIZE {name}");
    }
    assert_reply(ftp.size("nope.bin"), 550, "SIZE of a missing file");
}

#[test]
fn retr_of_missing_file_gives_550() {
    let d = alice();
    let mut ftp = d.login("alice");
    assert_reply(ftp.retr_as_buffer("missing.bin"), 550, "RETR missing file");
    assert_reply(ftp.cwd("missing-dir"), 550, "CWD missing dir");
    ftp.noop().expect("session still usable");
}

#[test]
fn cwd_dotdot_from_root_stays_at_root() {
    let d = alice();
    write_file(&d.tmp().join("roots/outside.txt"), b"outside");
    let mut ftp = d.login("alice");
    put(&mut ftp, "inside.txt", b"inside");

    for attempt in [
        "..",
        "../..",
        "/..",
        "/../../..",
        "../../../../../../../../..",
    ] {
        let _ = ftp.cwd(attempt); // refusing or clamping to "/" are both fine
        assert_eq!(ftp.pwd().expect("PWD"), "/", "after CWD {attempt:?}");
    }
    let _ = ftp.cdup();
    assert_eq!(ftp.pwd().expect("PWD"), "/", "after CDUP at /");
    let names: Vec<String> = ftp
        .nlst(None)
        .expect("NLST")
        .into_iter()
        .map(|n| basename(&n))
        .collect();
    assert_eq!(
        names,
        vec!["inside.txt".to_string()],
        "still listing the root"
    );
}

/// Content of the file placed just outside alice's root (a sibling of her root directory).
const SECRET: &[u8] = b"TOP SECRET: this file lives outside every FTP root\n";

fn assert_never_served(ftp: &mut suppaftp::FtpStream, path: &str) {
    match ftp.retr_as_buffer(path) {
        Ok(buf) => {
            let buf = buf.into_inner();
            assert!(
                buf != SECRET,
                "RETR {path:?} served the file outside the root!"
            );
            panic!(
                "RETR {path:?} should have failed with 550, got {} bytes",
                buf.len()
            );
        }
        Err(e) => assert_eq!(reply_code(&e), Some(550), "RETR {path:?}: {e}"),
    }
}

#[test]
fn retr_outside_root_is_refused() {
    let d = alice();
    write_file(&d.tmp().join("roots/outside.txt"), SECRET);
    write_file(&d.tmp().join("outside.txt"), SECRET);
    let mut ftp = d.login("alice");
    for path in [
        "../outside.txt",
        "/../outside.txt",
        "../../outside.txt",
        "/../../etc/passwd",
        "../../../../../../../../etc/passwd",
        "/etc/passwd",
        &format!("{}/roots/outside.txt", d.tmp().display()),
    ] {
        assert_never_served(&mut ftp, path);
        assert_reply(ftp.size(path), 550, &format!("SIZE {path:?}"));
    }
    ftp.mkdir("sub").expect("MKD sub");
    ftp.cwd("sub").expect("CWD sub");
    assert_never_served(&mut ftp, "../../outside.txt");
    assert_never_served(&mut ftp, "../../../outside.txt");
    ftp.noop()
        .expect("session still usable after refused RETRs");
}

#[test]
fn writes_with_dotdot_never_land_outside_root() {
    let d = alice();
    let roots = d.tmp().join("roots");
    write_file(&roots.join("keep.txt"), SECRET);
    std::fs::create_dir_all(roots.join("keepdir")).expect("mkdir keepdir");
    let before = tree_hashes(d.tmp());
    let mut ftp = d.login("alice");

    for path in ["../evil.bin", "/../evil.bin", "../../evil.bin"] {
        let _ = ftp.put_file(path, &mut &b"evil"[..]);
    }
    for path in ["../evildir", "/../../evildir"] {
        let _ = ftp.mkdir(path);
    }
    let _ = ftp.rm("../keep.txt");
    let _ = ftp.rm("/../keep.txt");
    let _ = ftp.rmdir("../keepdir");
    ftp.noop().expect("session still usable");

    assert!(
        roots.join("keep.txt").is_file(),
        "DELE reached outside the root"
    );
    assert!(
        roots.join("keepdir").is_dir(),
        "RMD reached outside the root"
    );
    // Anything the server created must be inside alice's root.
    let root = d.root("alice");
    let outside_after: Vec<_> = tree_hashes(d.tmp())
        .into_iter()
        .filter(|(p, _)| !d.tmp().join(p).starts_with(&root))
        .collect();
    assert_eq!(outside_after, before, "files outside the root changed");
    for dir in ["evildir", "../evildir"] {
        assert!(
            !roots.join(dir).exists(),
            "MKD created {dir} outside the root"
        );
    }
    assert!(!d.tmp().join("evildir").exists(), "MKD escaped two levels");
}

#[test]
fn symlink_pointing_outside_root_cannot_be_read_or_listed() {
    let d = alice();
    let root = d.root("alice");
    let secret_dir = d.tmp().join("secret dir");
    write_file(&secret_dir.join("secret.txt"), SECRET);
    write_file(&d.tmp().join("secret.txt"), SECRET);
    std::os::unix::fs::symlink(d.tmp().join("secret.txt"), root.join("link-file"))
        .expect("symlink file");
    std::os::unix::fs::symlink(&secret_dir, root.join("link-dir")).expect("symlink dir");
    std::os::unix::fs::symlink("../../secret.txt", root.join("rel-link")).expect("relative link");
    let mut ftp = d.login("alice");

    for path in [
        "link-file",
        "/link-file",
        "rel-link",
        "link-dir/secret.txt",
        "/link-dir/secret.txt",
    ] {
        assert_never_served(&mut ftp, path);
    }
    assert!(
        ftp.cwd("link-dir").is_err(),
        "CWD through a symlink out of the root"
    );
    assert_eq!(ftp.pwd().expect("PWD"), "/");
    for path in ["link-dir", "link-dir/"] {
        if let Ok(names) = ftp.nlst(Some(path)) {
            assert!(
                !names.iter().any(|n| n.contains("secret.txt")),
                "NLST {path:?} listed the outside directory: {names:?}"
            );
        }
        if let Ok(lines) = ftp.list(Some(path)) {
            assert!(
                !lines.iter().any(|l| l.contains("secret.txt")),
                "LIST {path:?} listed the outside directory: {lines:?}"
            );
        }
    }
    let _ = ftp.put_file("link-dir/planted.txt", &mut &b"planted"[..]);
    assert!(
        !secret_dir.join("planted.txt").exists(),
        "STOR through a symlink wrote outside the root"
    );
    let _ = ftp.rm("link-dir/secret.txt");
    assert!(
        secret_dir.join("secret.txt").is_file(),
        "DELE through a symlink deleted outside the root"
    );
    ftp.noop().expect("session still usable");
}

#[test]
fn user_cannot_reach_sibling_root_with_common_prefix() {
    let d =
        Daemon::start_with_roots(&[("alice", "alice-pass", "srv"), ("bob", "bob-pass", "srv2")]);
    write_file(&d.root("bob").join("bob-secret.txt"), SECRET);
    std::fs::create_dir_all(d.root("bob").join("bobdir")).expect("mkdir bobdir");

    let mut bob = d.login("bob");
    assert_eq!(
        get(&mut bob, "bob-secret.txt"),
        SECRET,
        "bob reads his own file"
    );

    let mut ftp = d.login("alice");
    for path in ["../srv2", "/../srv2", "../srv2/bobdir", "../../srv2"] {
        assert_reply(ftp.cwd(path), 550, &format!("CWD {path:?}"));
        assert_eq!(ftp.pwd().expect("PWD"), "/");
    }
    for path in [
        "../srv2/bob-secret.txt",
        "/../srv2/bob-secret.txt",
        "../../srv2/bob-secret.txt",
    ] {
        assert_never_served(&mut ftp, path);
    }
    if let Ok(names) = ftp.nlst(Some("../srv2")) {
        assert!(
            !names.iter().any(|n| n.contains("bob-secret")),
            "NLST ../srv2 showed bob's files: {names:?}"
        );
    }
    let _ = ftp.put_file("../srv2/from-alice.txt", &mut &b"x"[..]);
    assert!(
        !d.root("bob").join("from-alice.txt").exists(),
        "alice wrote into bob's root"
    );
}
