//! curl beyond the basic round trips (tests/curl.rs): `-C -` resume of downloads (REST + RETR)
//! and uploads (SIZE + APPE), and `-Q` quote commands for RNFR/RNTO before and after a transfer.
//! Active mode (`-P`, `--disable-eprt`) and `--ftp-pasv` are in tests/active_mode.rs.
//! Every call has `--max-time` and runs under `run_with_timeout`.

mod common;

use std::path::Path;

use common::*;

const USER: &str = "alice";
const PASS: &str = "alice-pass";
const CURLE_QUOTE_ERROR: i32 = 21;

fn curl(args: &[&str]) -> ClientOutput {
    curl_as(USER, PASS, args)
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// Commands curl sent, from its verbose output (`> VERB ...`).
fn sent(out: &ClientOutput) -> Vec<String> {
    out.stderr_text()
        .lines()
        .filter_map(|l| l.strip_prefix("> "))
        .map(str::to_string)
        .collect()
}

#[test]
fn curl_resumes_a_download_with_c_dash_using_rest() {
    if !require_tool("curl") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let data = random_bytes_seeded(70, 3 * MIB + 99);
    write_file(&d.root(USER).join("resume me.bin"), &data);
    let cut = MIB + 7;
    let local = d.tmp().join("partial.bin");
    write_file(&local, &data[..cut]);
    let url = format!("ftp://127.0.0.1:{}/resume%20me.bin", d.port());

    let out = curl(&["-C", "-", "-o", path_str(&local), url.as_str()]);
    out.assert_success("curl -C - -o");
    let cmds = sent(&out);
    assert!(
        cmds.iter().any(|c| c == &format!("REST {cut}")),
        "curl -C - sent REST {cut}: {cmds:?}"
    );
    assert_eq!(
        file_sha256(&local),
        sha256_hex(&data),
        "resumed download is the whole file"
    );

    // Resuming a complete file transfers nothing and keeps it intact.
    let out = curl(&["-C", "-", "-o", path_str(&local), url.as_str()]);
    out.assert_success("curl -C - of a complete file");
    assert_eq!(file_sha256(&local), sha256_hex(&data));
}

#[test]
fn curl_resumes_an_upload_with_c_dash_using_size_and_appe() {
    if !require_tool("curl") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let data = random_bytes_seeded(71, 4 * MIB + 5);
    let cut = 2 * MIB + 333;
    let remote = d.root(USER).join("up load.bin");
    write_file(&remote, &data[..cut]);
    let local = d.tmp().join("full.bin");
    write_file(&local, &data);
    let url = format!("ftp://127.0.0.1:{}/up%20load.bin", d.port());

    let out = curl(&["-C", "-", "-T", path_str(&local), url.as_str()]);
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
    assert_eq!(
        file_sha256(&remote),
        sha256_hex(&data),
        "resumed upload completed the file on the server"
    );
}

#[test]
fn curl_quote_rnfr_rnto_renames_before_and_after_the_transfer() {
    if !require_tool("curl") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let root = d.root(USER);
    let data = random_bytes_seeded(72, 200_000);
    write_file(&root.join("a.bin"), &data);
    let base = format!("ftp://127.0.0.1:{}/", d.port());

    // Before the listing: the listing already shows the new name.
    let out = curl(&["-Q", "RNFR a.bin", "-Q", "RNTO b c.bin", base.as_str()]);
    out.assert_success("curl -Q RNFR -Q RNTO");
    assert!(!root.join("a.bin").exists());
    assert_eq!(file_sha256(&root.join("b c.bin")), sha256_hex(&data));
    let listing = out.stdout_text();
    assert!(
        listing.lines().any(|l| l.trim_end().ends_with(" b c.bin"))
            && !listing.lines().any(|l| l.trim_end().ends_with(" a.bin")),
        "{listing}"
    );

    // After a download (`-Q -CMD`): the file is fetched under its old name, then renamed.
    let got = d.tmp().join("got.bin");
    let url = format!("{base}b%20c.bin");
    let out = curl(&[
        "-o",
        path_str(&got),
        "-Q",
        "-RNFR b c.bin",
        "-Q",
        "-RNTO renamed/after.bin",
        url.as_str(),
    ]);
    // The target directory does not exist: the post-quote RNTO fails with 550.
    assert_eq!(
        out.status.code(),
        Some(CURLE_QUOTE_ERROR),
        "RNTO into a missing directory: {}",
        out.stderr_text()
    );
    assert!(out.stderr_text().contains("550"), "{}", out.stderr_text());
    assert_eq!(
        file_sha256(&got),
        sha256_hex(&data),
        "the download itself worked"
    );
    assert!(
        root.join("b c.bin").exists(),
        "a failed RNTO leaves the source"
    );

    std::fs::create_dir_all(root.join("renamed")).expect("mkdir");
    let out = curl(&[
        "-o",
        path_str(&got),
        "-Q",
        "-RNFR b c.bin",
        "-Q",
        "-RNTO renamed/after.bin",
        url.as_str(),
    ]);
    out.assert_success("curl post-quote RNFR/RNTO");
    assert_eq!(file_sha256(&got), sha256_hex(&data));
    assert_eq!(
        file_sha256(&root.join("renamed/after.bin")),
        sha256_hex(&data)
    );
    assert!(!root.join("b c.bin").exists());

    // RNTO alone is a sequence error: curl reports the 503.
    let out = curl(&["-Q", "RNTO x.bin", base.as_str()]);
    assert_eq!(out.status.code(), Some(CURLE_QUOTE_ERROR));
    assert!(out.stderr_text().contains("503"), "{}", out.stderr_text());
}

#[test]
fn curl_quote_site_help_and_stat_are_accepted() {
    if !require_tool("curl") {
        return;
    }
    let d = Daemon::start(&[(USER, PASS)]);
    let base = format!("ftp://127.0.0.1:{}/", d.port());
    let out = curl(&[
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
    let out = curl(&["-Q", "SITE FOO", base.as_str()]);
    assert_eq!(out.status.code(), Some(CURLE_QUOTE_ERROR));
    assert!(out.stderr_text().contains("502"), "{}", out.stderr_text());
}
