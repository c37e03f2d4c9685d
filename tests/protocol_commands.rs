//! Exact replies of the "Complete protocol" commands, over a raw control connection to the real
//! daemon: APPE, STOU, REST, RNFR/RNTO, ALLO, ACCT, REIN, SITE, STAT, SMNT, SIZE, MDTM, MLST,
//! MLSD, OPTS MLST, FEAT, EPSV ALL, PORT/EPRT refusals, 425 without a data setup, PASV
//! replacement, LIST formats and awkward names. Every transferred byte is sha256-checked.

mod common;
mod rawftp;

use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use rawftp::*;

const USER: &str = "alice";
const PASS: &str = "alice-pass";

/// Sets the modification time of `path` to `secs` after the epoch.
fn set_mtime(path: &Path, secs: u64) {
    let f = File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} to set its mtime: {e}", path.display()));
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// 2001-02-03 04:05:06 UTC.
const OLD_MTIME: u64 = 981_173_106;

#[test]
fn feat_lists_every_extension_with_exact_framing_before_and_after_login() {
    let d = Daemon::start(&[(USER, PASS)]);
    let want = "211-Features:\r\n EPRT\r\n EPSV\r\n HASH SHA-256*;SHA-1;MD5;CRC32\r\n \
                MDTM\r\n MFF modify;UNIX.mode;\r\n MFMT\r\n \
                MLST type*;size*;modify*;perm*;unique*;UNIX.mode*;\r\n PASV\r\n RANG STREAM\r\n \
                REST STREAM\r\n SIZE\r\n TVFS\r\n UTF8\r\n XCRC\r\n XMD5\r\n XSHA1\r\n \
                XSHA256\r\n211 End\r\n";
    let mut c = Ctrl::connect(d.addr());
    assert_eq!(c.expect("FEAT", 211).wire(), want, "FEAT before login");
    c.expect("OPTS UTF8 ON", 200);
    c.expect(&format!("USER {USER}"), 331);
    c.expect(&format!("PASS {PASS}"), 230);
    assert_eq!(c.expect("FEAT", 211).wire(), want, "FEAT after login");
    // OPTS MLST changes which facts carry the `*`.
    let opts = c.expect("OPTS MLST type;size;", 200);
    assert_eq!(opts.lines, vec!["200 MLST OPTS type;size;"]);
    let feat = c.expect("FEAT", 211);
    assert!(
        feat.lines
            .contains(&" MLST type*;size*;modify;perm;unique;UNIX.mode;".to_string()),
        "FEAT after OPTS MLST type;size;: {feat}"
    );
}

#[test]
fn opts_utf8_on_is_200_and_unknown_option_is_501() {
    let (_d, mut c) = daemon_and_login(USER, PASS);
    c.expect("OPTS UTF8 ON", 200);
    c.expect("OPTS UTF8", 200);
    c.expect("OPTS NOSUCH ON", 501);
}

#[test]
fn appe_appends_to_an_existing_file_and_creates_a_missing_one() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    let first = random_bytes_seeded(1, 300 * KIB + 3);
    let second = random_bytes_seeded(2, 200 * KIB + 9);
    write_file(&root.join("log.bin"), &first);
    let ino = std::fs::metadata(root.join("log.bin")).expect("meta").ino();

    c.upload("APPE log.bin", &second);
    let mut want = first.clone();
    want.extend_from_slice(&second);
    assert_file_holds(
        &root.join("log.bin"),
        &want,
        "APPE result is the old bytes followed by the new ones",
    );
    assert_eq!(
        std::fs::metadata(root.join("log.bin")).expect("meta").ino(),
        ino,
        "APPE works in place (same inode)"
    );
    assert_eq!(
        sha256_hex(&c.download("RETR log.bin")),
        sha256_hex(&want),
        "appended file downloads intact"
    );

    c.upload("APPE new file.bin", &second);
    assert_file_holds(
        &root.join("new file.bin"),
        &second,
        "APPE to a missing file creates it",
    );
    c.expect("APPE", 501);
}

#[test]
fn stou_names_the_new_file_in_its_150_reply_and_never_overwrites() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    write_file(&root.join("existing.bin"), b"keep me");
    let mut names = Vec::new();
    for i in 0..3u64 {
        let data = random_bytes_seeded(10 + i, 64 * KIB + i as usize);
        let opening = c.upload("STOU", &data);
        let name = opening
            .text()
            .strip_prefix("FILE: ")
            .unwrap_or_else(|| panic!("STOU 150 reply must be `150 FILE: name`, got {opening}"))
            .to_string();
        assert!(
            !name.is_empty() && !name.contains('/'),
            "STOU name {name:?}"
        );
        assert_file_holds(
            &root.join(&name),
            &data,
            "the file STOU named holds the uploaded bytes",
        );
        assert_eq!(
            sha256_hex(&c.download(&format!("RETR {name}"))),
            sha256_hex(&data)
        );
        names.push(name);
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "every STOU picked a new name: {names:?}");
    assert_eq!(
        std::fs::read(root.join("existing.bin")).expect("read"),
        b"keep me"
    );
}

#[test]
fn rest_then_retr_resumes_at_the_offset_and_rest_survives_non_transfer_commands() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let data = random_bytes_seeded(3, 2 * MIB + 333);
    write_file(&d.root(USER).join("big.bin"), &data);

    for offset in [0usize, 1, 1000, MIB + 17, data.len() - 1, data.len()] {
        let r = c.expect(&format!("REST {offset}"), 350);
        assert!(r.text().contains(&offset.to_string()), "{r}");
        let got = c.download("RETR big.bin");
        assert_eq!(
            sha256_hex(&got),
            sha256_hex(&data[offset..]),
            "REST {offset} + RETR returns the tail from the offset ({} bytes)",
            data.len() - offset
        );
    }

    // The offset is held across commands that do not transfer...
    c.expect("REST 100", 350);
    c.expect("NOOP", 200);
    c.expect("PWD", 257);
    c.expect("SIZE big.bin", 213);
    let got = c.download("RETR big.bin");
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&data[100..]),
        "REST held across NOOP/PWD/SIZE"
    );
    // ...used once...
    let got = c.download("RETR big.bin");
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&data),
        "REST is used only once"
    );
    // ...and consumed by a listing.
    c.expect("REST 100", 350);
    c.listing("LIST");
    let got = c.download("RETR big.bin");
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&data),
        "LIST consumed the REST offset"
    );
}

#[test]
fn rest_then_stor_resumes_an_upload_in_place() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    let data = random_bytes_seeded(4, 3 * MIB + 5);
    let cut = MIB + 12_345;
    write_file(&root.join("partial.bin"), &data[..cut]);
    let ino = std::fs::metadata(root.join("partial.bin"))
        .expect("meta")
        .ino();

    c.expect(&format!("REST {cut}"), 350);
    c.upload("STOR partial.bin", &data[cut..]);
    assert_file_holds(
        &root.join("partial.bin"),
        &data,
        &format!("REST {cut} + STOR of the rest completes the file"),
    );
    assert_eq!(
        std::fs::metadata(root.join("partial.bin"))
            .expect("meta")
            .ino(),
        ino,
        "REST+STOR writes in place (same inode)"
    );
    assert_eq!(
        sha256_hex(&c.download("RETR partial.bin")),
        sha256_hex(&data)
    );

    // REST equal to the size is a pure append.
    let more = random_bytes_seeded(5, 1000);
    c.expect(&format!("REST {}", data.len()), 350);
    c.upload("STOR partial.bin", &more);
    let mut want = data.clone();
    want.extend_from_slice(&more);
    assert_file_holds(&root.join("partial.bin"), &want, "");
}

#[test]
fn rest_past_the_end_of_the_file_is_554_at_retr_and_stor_and_changes_nothing() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    let data = random_bytes_seeded(6, 10_000);
    write_file(&root.join("f.bin"), &data);

    c.expect("REST 10001", 350);
    let _data_conn = c.epsv();
    c.expect("RETR f.bin", 554);

    c.expect("REST 20000", 350);
    let _data_conn = c.epsv();
    c.expect("STOR f.bin", 554);
    assert_file_holds(
        &root.join("f.bin"),
        &data,
        "a refused REST+STOR leaves the file alone",
    );

    // The refused offset is gone; the session carries on.
    assert_eq!(sha256_hex(&c.download("RETR f.bin")), sha256_hex(&data));
}

#[test]
fn rest_past_the_end_of_a_missing_file_is_554_and_creates_nothing() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    c.expect("REST 10", 350);
    let _data_conn = c.epsv();
    c.expect("STOR missing.bin", 554);
    assert!(
        !d.root(USER).join("missing.bin").exists(),
        "a refused STOR must not create missing.bin"
    );
}

#[test]
fn rest_with_an_offset_in_type_a_is_501_and_rest_0_is_accepted() {
    let (_d, mut c) = daemon_and_login(USER, PASS);
    c.expect("TYPE A", 200);
    c.expect("REST 5", 501);
    c.expect("REST 0", 350);
    c.expect("TYPE I", 200);
    c.expect("REST 5", 350);
    c.expect("REST", 501);
    c.expect("REST -1", 501);
    c.expect("REST abc", 501);
}

#[test]
fn rnfr_rnto_renames_files_and_directories_and_rnto_needs_rnfr() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    let data = random_bytes_seeded(7, 12_345);
    write_file(&root.join("old name.bin"), &data);
    write_file(&root.join("old dir/inner.bin"), &data);

    c.expect("RNTO anything", 503);

    let r = c.expect("RNFR old name.bin", 350);
    assert_eq!(r.lines.len(), 1, "{r}");
    c.expect("RNTO new name.bin", 250);
    assert!(!root.join("old name.bin").exists());
    assert_file_holds(&root.join("new name.bin"), &data, "");

    c.expect("RNFR old dir", 350);
    c.expect("RNTO new dir", 250);
    assert!(!root.join("old dir").exists());
    assert_file_holds(
        &root.join("new dir/inner.bin"),
        &data,
        "the directory moved with its contents",
    );

    // Into another directory, by path.
    c.expect("RNFR new name.bin", 350);
    c.expect("RNTO /new dir/moved.bin", 250);
    assert_file_holds(&root.join("new dir/moved.bin"), &data, "");

    // RNTO must follow RNFR at once: any other command in between forgets the RNFR.
    c.expect("RNFR new dir/moved.bin", 350);
    c.expect("NOOP", 200);
    c.expect("RNTO back.bin", 503);
    assert!(root.join("new dir/moved.bin").exists());

    // RNTO consumes the RNFR.
    c.expect("RNFR new dir/moved.bin", 350);
    c.expect("RNTO once.bin", 250);
    c.expect("RNTO twice.bin", 503);

    c.expect("RNFR no such file", 550);
    c.expect("RNTO x", 503);
    // A target in a missing directory fails and the source stays.
    c.expect("RNFR once.bin", 350);
    c.expect("RNTO no/such/dir/x.bin", 550);
    assert_file_holds(&root.join("once.bin"), &data, "");
    c.expect("RNFR", 501);
}

#[test]
fn allo_and_acct_are_superfluous_202() {
    let (_d, mut c) = daemon_and_login(USER, PASS);
    assert_eq!(c.expect("ALLO 1000000", 202).lines.len(), 1);
    c.expect("ALLO", 202);
    c.expect("ACCT billing", 202);
}

#[test]
fn rein_logs_out_resets_the_session_and_a_new_login_works() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    write_file(&d.root(USER).join("sub/f.bin"), b"12345");
    c.expect("CWD sub", 250);
    c.expect("OPTS MLST type;", 200);
    let _pending = c.epsv();
    c.expect("EPSV ALL", 200);

    let r = c.expect("REIN", 220);
    assert_eq!(r.lines.len(), 1, "{r}");
    for cmd in [
        "PWD",
        "CWD /",
        "LIST",
        "RETR sub/f.bin",
        "SIZE sub/f.bin",
        "MLST",
    ] {
        c.expect(cmd, 530);
    }
    c.expect(&format!("USER {USER}"), 331);
    c.expect(&format!("PASS {PASS}"), 230);
    let pwd = c.expect("PWD", 257);
    assert!(
        pwd.text().starts_with("\"/\" "),
        "cwd back at / after REIN: {pwd}"
    );
    c.expect("TYPE I", 200);
    c.expect("SIZE sub/f.bin", 213);
    c.expect("RETR sub/f.bin", 425); // the EPSV listener from before REIN is gone
    c.expect("PORT 127,0,0,1,200,10", 200); // EPSV ALL was reset
    let mlst = c.expect("MLST sub/f.bin", 250);
    assert!(
        mlst.lines[1].contains("size=5;") && mlst.lines[1].contains("modify="),
        "OPTS MLST was reset to all facts: {mlst}"
    );
}

#[test]
fn rein_during_an_upload_still_completes_it() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    write_file(&root.join("keep.bin"), b"old");
    let data = random_bytes_seeded(8, 100_000);
    let conn = c.epsv();
    c.expect("STOR keep.bin", 150);
    c.expect("REIN", 220);
    write_all_close(conn, &data);
    c.expect_reply(226);
    let leftovers: Vec<String> = dir_names(&root)
        .into_iter()
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary upload files left: {leftovers:?}"
    );
    assert_file_holds(
        &root.join("keep.bin"),
        &data,
        "a STOR answered 226 must have replaced the file",
    );
}

#[test]
fn site_help_is_214_multiline_and_other_site_commands_are_502() {
    let (_d, mut c) = daemon_and_login(USER, PASS);
    let help = c.expect("SITE HELP", 214);
    assert!(help.is_multi(), "{help}");
    assert!(help.lines[0].starts_with("214-"), "{help}");
    assert!(
        help.lines.last().expect("last").starts_with("214 "),
        "{help}"
    );
    assert!(
        help.middle().iter().any(|l| l.trim() == "HELP"),
        "SITE HELP names HELP: {help}"
    );
    c.expect("site help", 214);
    c.expect("SITE FOO", 502);
    // SITE CHMOD is offered (issue 18): a missing file is 550.
    c.expect("SITE CHMOD 777 x", 550);
    c.expect("SITE", 501);
}

#[test]
fn smnt_is_502() {
    let (_d, mut c) = daemon_and_login(USER, PASS);
    c.expect("SMNT /mnt", 502);
}

#[test]
fn stat_without_argument_is_a_211_multiline_status() {
    let (_d, mut c) = daemon_and_login(USER, PASS);
    let r = c.expect("STAT", 211);
    assert!(r.lines.len() >= 3, "{r}");
    assert!(r.lines[0].starts_with("211-"), "{r}");
    assert!(r.lines.last().expect("last").starts_with("211 "), "{r}");
    for line in r.middle() {
        assert!(
            !line.starts_with("211"),
            "a middle line must not look like the end: {r}"
        );
    }
    let body = r.middle().join("\n");
    assert!(body.contains(USER), "status names the user: {r}");
    assert!(body.contains("BINARY"), "status shows TYPE I: {r}");
    assert!(body.contains("No data transfer in progress"), "{r}");
    c.expect("TYPE A", 200);
    let r = c.expect("STAT", 211);
    assert!(r.middle().join("\n").contains("ASCII"), "{r}");
}

#[test]
fn stat_with_a_path_is_a_213_listing_over_the_control_connection() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    write_file(&root.join("dir/a file.bin"), &random_bytes(1234));
    write_file(&root.join("dir/b.txt"), b"hello");
    std::fs::create_dir_all(root.join("dir/sub")).expect("mkdir");

    let r = c.expect("STAT dir", 213);
    assert!(r.lines[0].starts_with("213-"), "{r}");
    assert!(r.lines.last().expect("last").starts_with("213 "), "{r}");
    let list = c.listing("LIST dir");
    let from_list: Vec<&str> = list.lines().collect();
    let from_stat: Vec<&str> = r.middle().iter().map(String::as_str).collect();
    // The data-connection LIST and STAT show the same entries (dates may tick over a minute).
    let names = |lines: &[&str]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.starts_with(['-', 'd', 'l']))
            .map(|l| l.split_whitespace().skip(8).collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(
        names(&from_stat),
        names(&from_list),
        "STAT dir vs LIST dir:\n{r}\n{list}"
    );
    assert_eq!(names(&from_stat), vec!["a file.bin", "b.txt", "sub"]);
    let file_line = from_stat
        .iter()
        .find(|l| l.ends_with(" a file.bin"))
        .expect("line for a file.bin");
    assert!(
        file_line.starts_with("-rw") && file_line.split_whitespace().nth(4) == Some("1234"),
        "{file_line}"
    );

    let r = c.expect("STAT dir/b.txt", 213);
    let lines: Vec<&String> = r.middle().iter().filter(|l| l.starts_with('-')).collect();
    assert_eq!(lines.len(), 1, "STAT of a file shows one line: {r}");
    assert!(lines[0].ends_with(" b.txt"), "{r}");

    c.expect("STAT no such path", 550);
}

#[test]
fn size_is_the_size_as_transferred_in_either_type_and_550_for_directories() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    // Random bytes hold bare LFs and CR LFs; TYPE A sends each bare LF as CR LF.
    let data = random_bytes(123_457);
    write_file(&d.root(USER).join("s.bin"), &data);
    std::fs::create_dir_all(d.root(USER).join("dir")).expect("mkdir");
    let r = c.expect("SIZE s.bin", 213);
    assert_eq!(r.lines, vec!["213 123457"]);
    c.expect("SIZE dir", 550);
    c.expect("SIZE missing", 550);
    // RFC 3659 §4: in TYPE A, SIZE is what RETR in TYPE A sends (ftplib's size() after nlst()).
    c.expect("TYPE A", 200);
    let ascii: u64 = c
        .expect("SIZE s.bin", 213)
        .text()
        .parse()
        .expect("a number");
    let sent = c.download("RETR s.bin");
    assert_eq!(
        ascii,
        sent.len() as u64,
        "SIZE in TYPE A and RETR in TYPE A disagree"
    );
    assert!(ascii > data.len() as u64, "no line ending was counted");
    c.expect("SIZE dir", 550);
}

#[test]
fn mdtm_is_yyyymmddhhmmss_in_utc() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    write_file(&root.join("old.bin"), b"x");
    set_mtime(&root.join("old.bin"), OLD_MTIME);
    let r = c.expect("MDTM old.bin", 213);
    assert_eq!(r.lines, vec!["213 20010203040506"]);

    write_file(&root.join("now.bin"), b"y");
    let before = now_secs();
    let r = c.expect("MDTM now.bin", 213);
    let ts = r.text();
    assert_eq!(ts.len(), 14, "{r}");
    assert!(ts.bytes().all(|b| b.is_ascii_digit()), "{r}");
    // 1705314030 = 2024-01-15 10:20:30 UTC: a second known point, set on the same file.
    set_mtime(&root.join("now.bin"), 1_705_314_030);
    assert_eq!(
        c.expect("MDTM now.bin", 213).lines,
        vec!["213 20240115102030"]
    );
    assert!(before > 1_705_314_030, "clock sanity");

    std::fs::create_dir_all(root.join("dir")).expect("mkdir");
    c.expect("MDTM dir", 550);
    c.expect("MDTM missing", 550);
    // TYPE does not matter for MDTM.
    c.expect("TYPE A", 200);
    c.expect("MDTM old.bin", 213);
}

/// Facts of an MLSx line as a map-like list, panicking with the line when malformed.
fn facts_of(line: &str) -> (Vec<(String, String)>, String) {
    parse_mlsx(line).unwrap_or_else(|e| panic!("malformed MLSx line: {e}"))
}

fn fact<'a>(facts: &'a [(String, String)], name: &str) -> Option<&'a str> {
    facts
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[test]
fn mlst_replies_250_with_one_fact_line_that_starts_with_one_space() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    write_file(&root.join("m file.bin"), &random_bytes(4242));
    set_mtime(&root.join("m file.bin"), OLD_MTIME);

    let r = c.expect("MLST m file.bin", 250);
    assert_eq!(r.lines.len(), 3, "MLST is a three-line reply: {r}");
    assert!(r.lines[0].starts_with("250-"), "{r}");
    assert!(r.lines[2].starts_with("250 "), "{r}");
    let line = &r.lines[1];
    assert!(
        line.starts_with(' ') && !line.starts_with("  "),
        "the fact line starts with exactly one space: {line:?}"
    );
    let (facts, name) = facts_of(&line[1..]);
    assert_eq!(name, "/m file.bin");
    let keys: Vec<&str> = facts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        vec!["type", "size", "modify", "perm", "unique", "UNIX.mode"]
    );
    assert_eq!(fact(&facts, "type"), Some("file"));
    assert_eq!(fact(&facts, "size"), Some("4242"));
    assert_eq!(fact(&facts, "modify"), Some("20010203040506"));
    assert_eq!(fact(&facts, "UNIX.mode"), Some("0644"));
    let perm = fact(&facts, "perm").expect("perm");
    for p in ['r', 'w', 'a', 'd', 'f'] {
        assert!(
            perm.contains(p),
            "perm={perm} for a user with all permissions"
        );
    }

    let r = c.expect("MLST", 250);
    let (facts, name) = facts_of(&r.lines[1][1..]);
    assert_eq!(name, "/");
    assert_eq!(fact(&facts, "type"), Some("dir"));
    c.expect("MLST missing", 550);
}

#[test]
fn mlsd_lists_every_entry_with_terminated_facts_and_one_space_before_the_name() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    let files = [
        ("a.bin", 0usize),
        ("b c.bin", 77),
        ("semi;colon.txt", 5),
        ("ünï.bin", 1024),
    ];
    for (i, (name, n)) in files.iter().enumerate() {
        write_file(
            &root.join("dir").join(name),
            &random_bytes_seeded(i as u64, *n),
        );
    }
    std::fs::create_dir_all(root.join("dir/sub dir")).expect("mkdir");
    set_mtime(&root.join("dir/b c.bin"), OLD_MTIME);

    let body = c.listing("MLSD dir");
    assert!(body.ends_with("\r\n"), "MLSD lines end with CRLF: {body:?}");
    let mut seen = Vec::new();
    let mut uniques = Vec::new();
    for line in body.split("\r\n").filter(|l| !l.is_empty()) {
        let (facts, name) = facts_of(line);
        let keys: Vec<&str> = facts.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec!["type", "size", "modify", "perm", "unique", "UNIX.mode"],
            "{line}"
        );
        let modify = fact(&facts, "modify").expect("modify");
        assert!(
            modify.len() == 14 && modify.bytes().all(|b| b.is_ascii_digit()),
            "{line}"
        );
        uniques.push(fact(&facts, "unique").expect("unique").to_string());
        match files.iter().find(|(n, _)| *n == name) {
            Some((_, n)) => {
                assert_eq!(fact(&facts, "type"), Some("file"), "{line}");
                assert_eq!(fact(&facts, "size"), Some(n.to_string().as_str()), "{line}");
            }
            None => {
                assert_eq!(name, "sub dir", "unexpected entry {line:?}");
                assert_eq!(fact(&facts, "type"), Some("dir"), "{line}");
            }
        }
        if name == "b c.bin" {
            assert_eq!(modify, "20010203040506", "{line}");
        }
        seen.push(name);
    }
    seen.sort();
    let mut want: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    want.push("sub dir".into());
    want.sort();
    assert_eq!(seen, want, "MLSD names every entry once (no . or ..)");
    uniques.sort();
    uniques.dedup();
    assert_eq!(uniques.len(), want.len(), "unique facts differ per entry");

    // Without an argument MLSD lists the current directory.
    c.expect("CWD dir", 250);
    assert_eq!(c.listing("MLSD"), body);
}

#[test]
fn opts_mlst_selects_the_facts_that_mlst_and_mlsd_show() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    write_file(&d.root(USER).join("f.bin"), &random_bytes(99));
    let r = c.expect("OPTS MLST type;size;", 200);
    assert_eq!(r.lines, vec!["200 MLST OPTS type;size;"]);
    let r = c.expect("MLST f.bin", 250);
    assert_eq!(r.lines[1], " type=file;size=99; /f.bin");
    let body = c.listing("MLSD");
    assert_eq!(body, "type=file;size=99; f.bin\r\n");

    // Unknown names are ignored; case does not matter; the reply lists the selection.
    let r = c.expect("OPTS MLST Modify;bogus;UNIX.mode;", 200);
    assert_eq!(r.lines, vec!["200 MLST OPTS modify;UNIX.mode;"]);
    let r = c.expect("MLST f.bin", 250);
    let (facts, _) = facts_of(&r.lines[1][1..]);
    let keys: Vec<&str> = facts.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec!["modify", "UNIX.mode"], "{r}");
}

#[test]
fn mlsd_on_a_file_is_501_and_on_a_missing_path_is_550() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    write_file(&d.root(USER).join("f.bin"), b"x");
    let _conn = c.epsv();
    c.expect("MLSD f.bin", 501);
    let _conn = c.epsv();
    c.expect("MLSD missing", 550);
    // The session is fine afterwards.
    assert!(c.listing("MLSD").contains(" f.bin\r\n"));
}

#[test]
fn epsv_all_refuses_port_pasv_and_eprt_with_503_but_epsv_still_works() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let data = random_bytes(50_000);
    write_file(&d.root(USER).join("f.bin"), &data);
    c.expect("EPSV ALL", 200);
    c.expect("PASV", 503);
    c.expect("PORT 127,0,0,1,200,10", 503);
    c.expect("EPRT |1|127.0.0.1|51210|", 503);
    assert_eq!(sha256_hex(&c.download("RETR f.bin")), sha256_hex(&data));
    c.expect("PASV", 503);
}

#[test]
fn port_and_eprt_to_another_ip_or_a_privileged_port_are_501() {
    let (_d, mut c) = daemon_and_login(USER, PASS);
    c.expect("PORT 127,0,0,2,200,10", 501);
    c.expect("PORT 10,0,0,1,200,10", 501);
    c.expect("PORT 127,0,0,1,0,80", 501);
    c.expect("PORT 127,0,0,1,3,255", 501); // 1023
    c.expect("EPRT |1|127.0.0.2|51210|", 501);
    c.expect("EPRT |1|127.0.0.1|80|", 501);
    c.expect("EPRT |2|::1|51210|", 501); // not the client's address family/IP
                                         // The refused commands set nothing up.
    c.expect("RETR x", 425);
    // The client's own IP and port 1024 are fine.
    c.expect("PORT 127,0,0,1,4,0", 200);
    c.expect("EPRT |1|127.0.0.1|1024|", 200);
    c.expect("PORT 1,2,3", 501);
}

#[test]
fn data_commands_without_pasv_or_port_get_425_and_touch_nothing() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    write_file(&d.root(USER).join("f.bin"), b"content");
    for cmd in [
        "RETR f.bin",
        "STOR new.bin",
        "APPE f.bin",
        "STOU",
        "LIST",
        "NLST",
        "MLSD",
    ] {
        c.expect(cmd, 425);
    }
    assert!(!d.root(USER).join("new.bin").exists());
    assert_eq!(
        std::fs::read(d.root(USER).join("f.bin")).expect("read"),
        b"content"
    );
    // A PASV port is used by exactly one data command.
    let data = c.download("RETR f.bin");
    assert_eq!(data, b"content");
    c.expect("RETR f.bin", 425);
}

/// Whether a TCP connection to `addr` is refused (the listener is closed).
fn refused(addr: SocketAddr) -> bool {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

#[test]
fn a_new_pasv_replaces_the_previous_listener() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let data = random_bytes(77_777);
    write_file(&d.root(USER).join("f.bin"), &data);

    let old = c.pasv_addr();
    let mut new = c.pasv_addr();
    if new == old {
        // The kernel may hand out the freed port again; one more PASV tells them apart.
        new = c.pasv_addr();
    }
    assert_ne!(new, old, "three PASVs in a row got the same port");
    assert!(
        refused(old),
        "the replaced PASV port {old} still accepts connections"
    );
    let conn = tcp_connect(new);
    c.expect("RETR f.bin", 150);
    assert_eq!(sha256_hex(&read_all(conn)), sha256_hex(&data));
    c.expect_reply(226);

    // EPSV replaces a PASV listener too (and the other way round).
    let old = c.pasv_addr();
    let port = c.epsv_port();
    if port != old.port() {
        assert!(refused(old), "PASV port {old} still open after EPSV");
    }
    let ip = d.addr().ip();
    let old = SocketAddr::new(ip, c.epsv_port());
    let new = c.pasv_addr();
    if new.port() != old.port() {
        assert!(refused(old), "EPSV port {old} still open after PASV");
    }
    let conn = tcp_connect(new);
    c.expect("RETR f.bin", 150);
    assert_eq!(sha256_hex(&read_all(conn)), sha256_hex(&data));
    c.expect_reply(226);
}

#[test]
fn pasv_reply_names_the_control_address() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let addr = c.pasv_addr();
    assert_eq!(
        addr.ip(),
        d.addr().ip(),
        "PASV names the control connection's IP"
    );
    assert!(addr.port() > 0);
    let r = c.expect("EPSV", 229);
    assert!(
        r.text().starts_with("Entering Extended Passive Mode (|||") && r.text().ends_with("|)"),
        "{r}"
    );
    c.expect("EPSV 1", 229);
    // RFC 2428 §3: an unknown network protocol is 522 with the ones supported, as for EPRT.
    let r = c.expect("EPSV 9", 522);
    assert!(r.text().contains("(1,2)"), "{r}");
    c.expect("EPSV foo", 501);
}

#[test]
fn names_with_spaces_quotes_and_non_ascii_round_trip() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    let names = [
        "two  spaces.bin",
        "say \"hi\".txt",
        "it's.dat",
        "ünïcødé ファイル.bin",
        "Ωmega £ €.txt",
        "#hash%percent&amp.bin",
    ];
    let mut expected = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let data = random_bytes_seeded(100 + i as u64, 1000 + i * 333);
        c.upload(&format!("STOR {name}"), &data);
        assert_file_holds(&root.join(name), &data, &format!("{name:?} on disk"));
        expected.push((name.to_string(), data));
    }
    let nlst = c.listing("NLST");
    let mut got: Vec<&str> = nlst.split("\r\n").filter(|l| !l.is_empty()).collect();
    got.sort();
    let mut want: Vec<&str> = names.to_vec();
    want.sort();
    assert_eq!(got, want, "NLST shows each name exactly");
    let list = c.listing("LIST");
    for name in names {
        assert!(
            list.lines()
                .any(|l| l.trim_end_matches('\r').ends_with(&format!(" {name}"))),
            "LIST shows {name:?}:\n{list}"
        );
    }
    let mlsd = c.listing("MLSD");
    for name in names {
        assert!(
            mlsd.split("\r\n")
                .any(|l| facts_of_opt(l).as_deref() == Some(name)),
            "MLSD shows {name:?}:\n{mlsd}"
        );
    }
    for (name, data) in &expected {
        assert_eq!(
            c.expect(&format!("SIZE {name}"), 213).text(),
            data.len().to_string()
        );
        assert_eq!(
            sha256_hex(&c.download(&format!("RETR {name}"))),
            sha256_hex(data),
            "RETR {name:?}"
        );
    }

    // Directory names with quotes are doubled in 257 replies (RFC 959 appendix II).
    let mkd = c.expect("MKD a \"q\" dïr", 257);
    assert!(mkd.text().starts_with("\"/a \"\"q\"\" dïr\" "), "{mkd}");
    c.expect("CWD a \"q\" dïr", 250);
    let pwd = c.expect("PWD", 257);
    assert!(pwd.text().starts_with("\"/a \"\"q\"\" dïr\" "), "{pwd}");
    c.upload("STOR in dir ü.bin", b"inner");
    c.expect("CDUP", 250);
    assert_eq!(
        std::fs::read(root.join("a \"q\" dïr/in dir ü.bin")).expect("read"),
        b"inner"
    );

    // Rename and delete with such names.
    c.expect("RNFR say \"hi\".txt", 350);
    c.expect("RNTO a \"q\" dïr/ünï \"moved\".txt", 250);
    assert_file_holds(
        &root.join("a \"q\" dïr/ünï \"moved\".txt"),
        &expected[1].1,
        "",
    );
    c.expect("DELE ünïcødé ファイル.bin", 250);
    assert!(!root.join("ünïcødé ファイル.bin").exists());
}

fn facts_of_opt(line: &str) -> Option<String> {
    parse_mlsx(line).ok().map(|(_, name)| name)
}

/// The fields of one `ls -l` line: mode, links, uid, gid, size, date (3 words), name.
struct LsLine {
    mode: String,
    links: String,
    size: u64,
    month: String,
    day: String,
    time_or_year: String,
    name: String,
}

fn parse_ls(line: &str) -> LsLine {
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(words.len() >= 9, "too few fields in LIST line {line:?}");
    // The name is everything after the 8th field, spaces kept: find it after the date.
    let date_end = {
        let mut idx = 0;
        let mut count = 0;
        let bytes = line.as_bytes();
        let mut in_word = false;
        while idx < bytes.len() {
            let space = bytes[idx] == b' ';
            if !space && !in_word {
                count += 1;
                if count == 9 {
                    break;
                }
            }
            in_word = !space;
            idx += 1;
        }
        idx
    };
    LsLine {
        mode: words[0].to_string(),
        links: words[1].to_string(),
        size: words[4]
            .parse()
            .unwrap_or_else(|_| panic!("size field in {line:?}")),
        month: words[5].to_string(),
        day: words[6].to_string(),
        time_or_year: words[7].to_string(),
        name: line[date_end..].to_string(),
    }
}

#[test]
fn list_lines_look_like_ls_l_and_options_are_accepted() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let root = d.root(USER);
    write_file(&root.join("dir/recent file.bin"), &random_bytes(5000));
    write_file(&root.join("dir/old.bin"), &random_bytes(10));
    set_mtime(&root.join("dir/old.bin"), OLD_MTIME);
    write_file(&root.join("dir/future.bin"), &random_bytes(20));
    set_mtime(&root.join("dir/future.bin"), now_secs() + 400 * 86_400);
    std::fs::create_dir_all(root.join("dir/sub")).expect("mkdir");
    std::os::unix::fs::symlink("recent file.bin", root.join("dir/link")).expect("symlink");

    let list = c.listing("LIST dir");
    assert!(list.ends_with("\r\n"), "{list:?}");
    let lines: Vec<&str> = list.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 5, "{list}");
    for line in &lines {
        let l = parse_ls(line);
        assert_eq!(l.mode.len(), 10, "{line}");
        assert!(l.links.parse::<u64>().is_ok(), "{line}");
        assert!(
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
                .contains(&l.month.as_str()),
            "{line}"
        );
        assert!(
            l.day.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d)),
            "{line}"
        );
    }
    let by_name = |n: &str| -> LsLine {
        parse_ls(
            lines
                .iter()
                .find(|l| parse_ls(l).name.starts_with(n))
                .unwrap_or_else(|| panic!("no LIST line for {n}: {list}")),
        )
    };
    let recent = by_name("recent file.bin");
    assert_eq!(recent.name, "recent file.bin");
    assert!(recent.mode.starts_with('-'), "{}", recent.mode);
    assert_eq!(recent.size, 5000);
    let mdtm = c.expect("MDTM dir/recent file.bin", 213).text().to_string();
    assert_eq!(
        recent.time_or_year,
        format!("{}:{}", &mdtm[8..10], &mdtm[10..12]),
        "a recent file shows HH:MM (UTC)"
    );
    assert_eq!(recent.day, mdtm[6..8].trim_start_matches('0'));
    let old = by_name("old.bin");
    assert_eq!(
        (
            old.month.as_str(),
            old.day.as_str(),
            old.time_or_year.as_str()
        ),
        ("Feb", "3", "2001")
    );
    assert!(
        lines.iter().any(|l| l.contains(" Feb  3  2001 old.bin")),
        "old date is `Mon DD  YYYY`: {list}"
    );
    let future = by_name("future.bin");
    assert_eq!(
        future.time_or_year.len(),
        4,
        "a future date shows the year: {list}"
    );
    let sub = by_name("sub");
    assert!(sub.mode.starts_with('d'), "{}", sub.mode);
    let link = by_name("link");
    assert!(link.mode.starts_with('l'), "{}", link.mode);
    assert_eq!(link.name, "link -> recent file.bin");

    // ls options are accepted and do not change what is listed.
    c.expect("CWD dir", 250);
    let plain = c.listing("LIST");
    for opts in ["LIST -a", "LIST -l", "LIST -la", "LIST -al", "LIST -a /dir"] {
        let got = c.listing(opts);
        assert_eq!(
            names_of(&got),
            names_of(&plain),
            "{opts} lists the same entries as LIST"
        );
    }
    c.expect("CWD /", 250);
    assert_eq!(names_of(&c.listing("LIST -a dir")), names_of(&plain));

    // NLST: bare names, no directory prefix, no `ls -l` fields.
    let nlst = c.listing("NLST dir");
    let mut names: Vec<&str> = nlst.split("\r\n").filter(|l| !l.is_empty()).collect();
    names.sort();
    assert_eq!(
        names,
        vec!["future.bin", "link", "old.bin", "recent file.bin", "sub"]
    );

    // LIST of a file lists that file.
    let one = c.listing("LIST dir/old.bin");
    assert_eq!(
        one.split("\r\n").filter(|l| !l.is_empty()).count(),
        1,
        "{one}"
    );
    assert!(one.trim_end().ends_with(" old.bin"), "{one}");
    let _conn = c.epsv();
    c.expect("LIST missing", 550);
}

fn names_of(list: &str) -> Vec<String> {
    let mut v: Vec<String> = list
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| parse_ls(l).name)
        .collect();
    v.sort();
    v
}

#[test]
fn help_answers_214_and_unknown_commands_get_500() {
    let (_d, mut c) = daemon_and_login(USER, PASS);
    let help = c.expect("HELP", 214);
    assert!(help.is_multi(), "{help}");
    c.expect("HELP RETR", 214);
    c.expect("XYZZY", 500);
    c.expect("NOOP", 200);
}

#[test]
fn help_knows_every_implemented_verb() {
    let (_d, mut c) = daemon_and_login(USER, PASS);
    for verb in ["MLSD", "MLST", "SITE", "REIN", "ACCT"] {
        c.expect(&format!("HELP {verb}"), 214);
    }
}

/// Starts the daemon on 127.0.0.1:0 for alice with extra command-line options.
fn start_with_options(options: &[&str]) -> Daemon {
    let root = format!("roots/{USER}");
    Daemon::start_with_args(&[(USER, PASS, &root)], options)
}

/// Reads the control connection to EOF; panics if anything but EOF comes.
fn assert_closed(c: &Ctrl) {
    let mut rest = Vec::new();
    let mut sock = c.socket().try_clone().expect("clone control socket");
    match std::io::Read::read_to_end(&mut sock, &mut rest) {
        Ok(_) => assert!(
            rest.is_empty(),
            "bytes after the last reply: {:?}",
            String::from_utf8_lossy(&rest)
        ),
        Err(e) => panic!("control connection not closed by the server: {e}"),
    }
}

#[test]
fn daemon_idle_and_login_timeouts_send_421_and_close_the_connection() {
    let d = start_with_options(&["--idle-timeout", "1", "--login-timeout", "1"]);
    let mut idle = Ctrl::login(d.addr(), USER, PASS);
    let mut never = Ctrl::connect(d.addr());
    let started = std::time::Instant::now();
    let r = idle.expect_reply(421);
    assert!(r.text().contains("Idle timeout"), "{r}");
    let r = never.expect_reply(421);
    assert!(r.text().contains("Login timeout"), "{r}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_closed(&idle);
    assert_closed(&never);
    // The daemon itself carries on.
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    c.expect("NOOP", 200);
}

#[test]
fn daemon_data_timeout_ends_a_transfer_nobody_connects_to_with_425() {
    let d = start_with_options(&["--data-timeout", "1"]);
    write_file(&d.root(USER).join("f.bin"), b"data");
    let mut c = Ctrl::login(d.addr(), USER, PASS);
    let _port = c.epsv_port(); // nobody connects
    let started = std::time::Instant::now();
    c.expect("RETR f.bin", 150);
    c.expect_reply(425);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    c.expect("NOOP", 200);
    assert_eq!(c.download("RETR f.bin"), b"data");
}
