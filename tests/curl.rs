//! Scenarios driven with the `curl` command-line client in passive mode (EPSV, or PASV with
//! `--disable-epsv`): round trips of every size, listings, `--ftp-create-dirs`, `-Q` quote
//! commands (DELE/MKD/RMD, RNFR/RNTO before and after a transfer, SITE/STAT/ALLO), `-C -`
//! resume of downloads (REST + RETR) and uploads (SIZE + APPE), refused logins and paths, and
//! the URL the daemon prints in its default mode. Active mode (`-P`, `--disable-eprt`) and
//! `--ftp-pasv` are in tests/active_mode.rs. Every call has `--max-time` and runs under
//! `run_with_timeout`.

mod common;

use std::time::Duration;

use common::*;

const USER: &str = "alice";
const PASS: &str = "alice-pass";
/// curl exit codes we assert on.
const CURLE_QUOTE_ERROR: i32 = 21;
const CURLE_LOGIN_DENIED: i32 = 67;

fn base_url(d: &Daemon) -> String {
    format!("ftp://127.0.0.1:{}/", d.port())
}

/// Runs curl with `-sS --max-time`, credentials of alice, and `args`.
fn curl(args: &[&str]) -> ClientOutput {
    curl_with(Some((USER, PASS)), false, args)
}

/// Like [`curl`] with `-v`; see [`sent`].
fn curl_verbose(args: &[&str]) -> ClientOutput {
    curl_with(Some((USER, PASS)), true, args)
}

/// curl failed on a `-Q` command (CURLE_QUOTE_ERROR) and reports the server's `reply` code.
#[track_caller]
fn assert_quote_refused(out: &ClientOutput, reply: &str, what: &str) {
    out.assert_exit(CURLE_QUOTE_ERROR, what)
        .assert_stderr_has(reply, &format!("curl reports the {reply}"));
}

/// Commands curl sent, from its verbose output (`> VERB ...`).
fn sent(out: &ClientOutput) -> Vec<String> {
    out.stderr_text()
        .lines()
        .filter_map(|l| l.strip_prefix("> "))
        .map(str::to_string)
        .collect()
}

/// Uploads `n` random bytes with `-T`, downloads them with `-o`, checks disk and download.
fn curl_round_trip(n: usize, extra: &[&str]) {
    let d = Daemon::start(&[(USER, PASS)]);
    let data = random_bytes(n);
    let want = sha256_hex(&data);
    let local = d.tmp().join("local.bin");
    write_file(&local, &data);
    let name = format!("curl-{n}.bin");
    let url = format!("{}{name}", base_url(&d));

    let mut args = vec!["-T", path_str(&local), url.as_str()];
    args.extend(extra);
    curl(&args).assert_success(&format!("curl -T of {}", size_label(n)));
    assert_eq!(
        file_sha256(&d.root(USER).join(&name)),
        want,
        "{} uploaded by curl differs on the server's disk",
        size_label(n)
    );

    let got = d.tmp().join("got.bin");
    let mut args = vec!["-o", path_str(&got), url.as_str()];
    args.extend(extra);
    curl(&args).assert_success(&format!("curl -o of {}", size_label(n)));
    assert_eq!(
        file_sha256(&got),
        want,
        "{} downloaded by curl differs from the upload",
        size_label(n)
    );
}

#[test]
fn curl_upload_then_download_0_bytes_is_byte_exact() {
    if require_tool("curl") {
        curl_round_trip(0, &[]);
    }
}

#[test]
fn curl_upload_then_download_1_byte_is_byte_exact() {
    if require_tool("curl") {
        curl_round_trip(1, &[]);
    }
}

#[test]
fn curl_upload_then_download_1_mib_is_byte_exact() {
    if require_tool("curl") {
        curl_round_trip(MIB, &[]);
    }
}

#[test]
fn curl_upload_then_download_64_mib_is_byte_exact() {
    if require_tool("curl") {
        curl_round_trip(64 * MIB, &[]);
    }
}

#[test]
fn curl_round_trip_over_pasv_with_disable_epsv_is_byte_exact() {
    if require_tool("curl") {
        curl_round_trip(MIB + 5, &["--disable-epsv"]);
    }
}

#[test]
fn curl_round_trip_with_full_path_nocwd_is_byte_exact() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let data = random_bytes(200 * KIB + 1);
    write_file(&d.root(USER).join("deep/er/file.bin"), &data);
    let got = d.tmp().join("got.bin");
    for method in ["nocwd", "singlecwd", "multicwd"] {
        let url = format!("{}deep/er/file.bin", base_url(&d));
        curl(&["--ftp-method", method, "-o", path_str(&got), url.as_str()])
            .assert_success(&format!("curl --ftp-method {method}"));
        assert_file_holds(&got, &data, &format!("download with --ftp-method {method}"));
    }
}

#[test]
fn curl_lists_directory_with_trailing_slash() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let names = ["first.txt", "second file.bin", "third.dat"];
    for (i, name) in names.iter().enumerate() {
        write_file(
            &d.root(USER).join("dir").join(name),
            &random_bytes_seeded(i as u64, 10 + i),
        );
    }
    std::fs::create_dir_all(d.root(USER).join("dir/sub")).expect("mkdir sub");
    let url = format!("{}dir/", base_url(&d));

    let list = curl(&[url.as_str()]);
    list.assert_success("curl LIST of dir/");
    let text = list.stdout_text();
    for name in names.iter().chain(&["sub"]) {
        assert!(
            text.lines().any(|l| l.trim_end().ends_with(name)),
            "LIST via curl shows {name:?}:\n{text}"
        );
    }

    let nlst = curl(&["--list-only", url.as_str()]);
    nlst.assert_success("curl --list-only (NLST) of dir/");
    let text = nlst.stdout_text();
    let got = text
        .lines()
        .map(|l| l.trim_end().rsplit('/').next().unwrap_or(""))
        .filter(|l| !l.is_empty());
    let want: Vec<&str> = names.iter().chain(&["sub"]).copied().collect();
    assert_same_names(got, &want, "NLST via curl --list-only");
}

#[test]
fn curl_ftp_create_dirs_makes_nested_directories() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let data = random_bytes(123_457);
    let local = d.tmp().join("local.bin");
    write_file(&local, &data);
    let url = format!("{}made/by%20curl/deep%20er/uploaded.bin", base_url(&d));
    curl(&["--ftp-create-dirs", "-T", path_str(&local), url.as_str()])
        .assert_success("curl -T --ftp-create-dirs");
    let on_disk = d.root(USER).join("made/by curl/deep er/uploaded.bin");
    assert_file_holds(&on_disk, &data, "file uploaded under new directories");

    // Without --ftp-create-dirs a missing directory is an error, and nothing is created.
    let url = format!("{}missing/uploaded.bin", base_url(&d));
    let out = curl(&["-T", path_str(&local), url.as_str()]);
    assert!(
        !out.status.success(),
        "upload into a missing directory without --ftp-create-dirs should fail"
    );
    assert!(!d.root(USER).join("missing").exists());
}

#[test]
fn curl_quote_commands_dele_mkd_rmd() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let root = d.root(USER);
    write_file(&root.join("x"), b"to be deleted");
    write_file(&root.join("keep.bin"), b"kept");
    let url = base_url(&d);

    let out = curl(&["-Q", "DELE x", "-Q", "MKD quoted dir", url.as_str()]);
    out.assert_success("curl -Q 'DELE x' -Q 'MKD quoted dir'");
    assert!(!root.join("x").exists(), "-Q 'DELE x' removed x");
    assert!(
        root.join("quoted dir").is_dir(),
        "-Q MKD created the directory"
    );
    assert!(root.join("keep.bin").is_file(), "other files untouched");
    let listing = out.stdout_text();
    assert!(
        listing.contains("keep.bin") && !listing.lines().any(|l| l.trim_end().ends_with(" x")),
        "the listing after the quote commands reflects them:\n{listing}"
    );

    curl(&["-Q", "RMD quoted dir", url.as_str()]).assert_success("curl -Q RMD");
    assert!(
        !root.join("quoted dir").exists(),
        "-Q RMD removed the directory"
    );

    // A failing quote command makes curl fail (550 → CURLE_QUOTE_ERROR).
    let out = curl(&["-Q", "DELE no-such-file", url.as_str()]);
    assert_quote_refused(&out, "550", "DELE of a missing file");
}

#[test]
fn curl_wrong_password_is_login_denied() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let out = curl_with(Some((USER, "wrong")), false, &[base_url(&d).as_str()]);
    out.assert_exit(CURLE_LOGIN_DENIED, "curl with a wrong password");
}

#[test]
fn curl_download_outside_root_is_refused() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let secret = b"outside every root";
    write_file(&d.tmp().join("roots/outside.txt"), secret);
    let got = d.tmp().join("got.bin");
    for path in [
        "../outside.txt",
        "%2E%2E/outside.txt",
        "%2F..%2F..%2Foutside.txt",
    ] {
        let url = format!("{}{path}", base_url(&d));
        let out = curl(&[
            "--path-as-is",
            "--ftp-method",
            "nocwd",
            "-o",
            path_str(&got),
            url.as_str(),
        ]);
        assert!(!out.status.success(), "curl RETR {path} must fail");
        if got.exists() {
            let content = std::fs::read(&got).expect("read got.bin");
            assert_ne!(content, secret, "curl {path} downloaded the outside file");
        }
    }
}

/// Starts the daemon with `--root` and no `--users`, and uses the URL it prints with curl.
#[test]
fn default_mode_prints_url_that_works_with_curl() {
    if !require_tool("curl") {
        return;
    }
    let tmp = tempfile::TempDir::new().expect("temporary directory");
    let share = tmp.path().join("share");
    std::fs::create_dir_all(&share).expect("mkdir share");
    let share_arg = share.clone().into_os_string();
    let args: [std::ffi::OsString; 4] = [
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--root".into(),
        share_arg,
    ];
    let mut d = Daemon::start_custom(tmp, &args, Vec::new());

    let line = d
        .wait_for_stdout_line(|l| find_ftp_url(l).is_some(), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("no ftp://USER:PASSWORD@HOST:PORT/ URL on stdout: {e}"));
    let url = find_ftp_url(&line).expect("URL parsed from its line");
    assert_eq!(
        url.port,
        d.port(),
        "URL port matches the listening line: {line:?}"
    );
    assert_eq!(url.host, "127.0.0.1", "URL host: {line:?}");
    let pw = url.password.clone();
    d.wait_for_stdout_line(
        |l| l.contains("curl") && l.contains(&pw),
        Duration::from_secs(10),
    )
    .expect("a curl line with the credentials on stdout");
    d.wait_for_stdout_line(
        |l| l.contains("lftp") && l.contains(&pw),
        Duration::from_secs(10),
    )
    .expect("an lftp line with the credentials on stdout");

    let data = random_bytes(MIB + 77);
    let local = d.tmp().join("local.bin");
    write_file(&local, &data);
    let target = format!("{}from-default-mode.bin", url.url);
    let out = curl_with(None, false, &["-T", path_str(&local), target.as_str()]);
    out.assert_success("curl -T to the printed URL");
    assert_file_holds(
        &share.join("from-default-mode.bin"),
        &data,
        "upload through the printed URL lands in --root",
    );
    let got = d.tmp().join("got.bin");
    curl_with(None, false, &["-o", path_str(&got), target.as_str()])
        .assert_success("curl -o from the printed URL");
    assert_file_holds(&got, &data, "download via printed URL");

    let listing = curl_with(None, false, &[url.url.as_str()]);
    listing.assert_success("curl listing of the printed URL");
    assert!(listing.stdout_text().contains("from-default-mode.bin"));

    // The one-off credentials are required: a wrong password and anonymous are refused.
    let base = format!("ftp://127.0.0.1:{}/", d.port());
    let out = curl_with(
        Some((url.user.as_str(), "not-the-password")),
        false,
        &[base.as_str()],
    );
    out.assert_exit(CURLE_LOGIN_DENIED, "wrong password");
    let out = curl_with(
        Some(("anonymous", "guest@example.com")),
        false,
        &[base.as_str()],
    );
    out.assert_exit(CURLE_LOGIN_DENIED, "anonymous login");
}

#[test]
fn curl_resumes_a_download_with_c_dash_using_rest() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let data = random_bytes_seeded(70, 3 * MIB + 99);
    write_file(&d.root(USER).join("resume me.bin"), &data);
    let cut = MIB + 7;
    let local = d.tmp().join("partial.bin");
    write_file(&local, &data[..cut]);
    let url = format!("{}resume%20me.bin", base_url(&d));

    let out = curl_verbose(&["-C", "-", "-o", path_str(&local), url.as_str()]);
    out.assert_success("curl -C - -o");
    let cmds = sent(&out);
    assert!(
        cmds.iter().any(|c| c == &format!("REST {cut}")),
        "curl -C - sent REST {cut}: {cmds:?}"
    );
    assert_file_holds(&local, &data, "resumed download is the whole file");

    // Resuming a complete file transfers nothing and keeps it intact.
    let out = curl_verbose(&["-C", "-", "-o", path_str(&local), url.as_str()]);
    out.assert_success("curl -C - of a complete file");
    assert_file_holds(&local, &data, "");
}

#[test]
fn curl_resumes_an_upload_with_c_dash_using_size_and_appe() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let data = random_bytes_seeded(71, 4 * MIB + 5);
    let cut = 2 * MIB + 333;
    let remote = d.root(USER).join("up load.bin");
    write_file(&remote, &data[..cut]);
    let local = d.tmp().join("full.bin");
    write_file(&local, &data);
    let url = format!("{}up%20load.bin", base_url(&d));

    let out = curl_verbose(&["-C", "-", "-T", path_str(&local), url.as_str()]);
    out.assert_success("curl -C - -T");
    let cmds = sent(&out);
    assert!(
        cmds.iter().any(|c| c == "SIZE up load.bin"),
        "curl asked SIZE: {cmds:?}"
    );
    assert!(
        cmds.iter().any(|c| c == "APPE up load.bin"),
        "curl resumed with APPE: {cmds:?}"
    );
    assert_file_holds(
        &remote,
        &data,
        "resumed upload completed the file on the server",
    );
}

#[test]
fn curl_quote_rnfr_rnto_renames_before_and_after_the_transfer() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let root = d.root(USER);
    let data = random_bytes_seeded(72, 200_000);
    write_file(&root.join("a.bin"), &data);
    let base = base_url(&d);

    // Before the listing: the listing already shows the new name.
    let out = curl_verbose(&["-Q", "RNFR a.bin", "-Q", "RNTO b c.bin", base.as_str()]);
    out.assert_success("curl -Q RNFR -Q RNTO");
    assert!(!root.join("a.bin").exists());
    assert_file_holds(&root.join("b c.bin"), &data, "");
    let listing = out.stdout_text();
    assert!(
        listing.lines().any(|l| l.trim_end().ends_with(" b c.bin"))
            && !listing.lines().any(|l| l.trim_end().ends_with(" a.bin")),
        "{listing}"
    );

    // After a download (`-Q -CMD`): the file is fetched under its old name, then renamed.
    let got = d.tmp().join("got.bin");
    let url = format!("{base}b%20c.bin");
    let out = curl_verbose(&[
        "-o",
        path_str(&got),
        "-Q",
        "-RNFR b c.bin",
        "-Q",
        "-RNTO renamed/after.bin",
        url.as_str(),
    ]);
    // The target directory does not exist: the post-quote RNTO fails with 550.
    assert_quote_refused(&out, "550", "RNTO into a missing directory");
    assert_file_holds(&got, &data, "the download itself worked");
    assert!(
        root.join("b c.bin").exists(),
        "a failed RNTO leaves the source"
    );

    std::fs::create_dir_all(root.join("renamed")).expect("mkdir");
    let out = curl_verbose(&[
        "-o",
        path_str(&got),
        "-Q",
        "-RNFR b c.bin",
        "-Q",
        "-RNTO renamed/after.bin",
        url.as_str(),
    ]);
    out.assert_success("curl post-quote RNFR/RNTO");
    assert_file_holds(&got, &data, "");
    assert_file_holds(&root.join("renamed/after.bin"), &data, "");
    assert!(!root.join("b c.bin").exists());

    // RNTO alone is a sequence error: curl reports the 503.
    let out = curl_verbose(&["-Q", "RNTO x.bin", base.as_str()]);
    assert_quote_refused(&out, "503", "RNTO alone");
}

#[test]
fn curl_quote_site_help_and_stat_are_accepted() {
    let Some(d) = daemon_if_tool("curl", USER, PASS) else {
        return;
    };
    let base = base_url(&d);
    let out = curl_verbose(&[
        "-Q",
        "SITE HELP",
        "-Q",
        "STAT",
        "-Q",
        "ALLO 10",
        base.as_str(),
    ]);
    out.assert_success("curl -Q SITE HELP -Q STAT -Q ALLO");
    let err = out.stderr_text();
    assert!(err.contains("< 214"), "{err}");
    assert!(err.contains("< 211"), "{err}");
    assert!(err.contains("< 202"), "{err}");
    let out = curl_verbose(&["-Q", "SITE FOO", base.as_str()]);
    assert_quote_refused(&out, "502", "SITE FOO");
}
