//! Every FTP command against both storage back-ends: a local root folder and a prefix in an
//! S3 bucket (moto, started by the harness). Each test body runs twice (`backend_tests!`);
//! every transferred byte is checked by sha256, and what is stored afterwards is read behind
//! the daemon's back (on the disk, or in the bucket with the harness's own S3 client). The rows
//! of the command mapping in diagrams/SPEC.md ("Object storage") are the tests below.

mod common;
mod rawftp;

use common::backend::{Kind, Served, TestUser, ALICE, BOB};
use common::*;
use rawftp::*;
use std::io::Write;
use std::time::Duration;

/// How long a failed upload may take to be cleaned up (a multipart upload aborted in S3).
const CLEANUP_DEADLINE: Duration = Duration::from_secs(20);

fn login(s: &Served, user: &TestUser) -> Ctrl {
    Ctrl::login(s.daemon.addr(), user.name, user.password)
}

#[track_caller]
fn assert_stored(s: &Served, user: &str, rel: &str, want: &[u8]) {
    match s.read(user, rel) {
        Some(got) => assert_eq!(
            sha256_hex(&got),
            sha256_hex(want),
            "{rel} stored ({:?}): {} bytes, want {}",
            s.kind,
            got.len(),
            want.len()
        ),
        None => panic!("{rel} is not stored ({:?})", s.kind),
    }
}

#[track_caller]
fn assert_nothing_left(s: &Served, user: &str) {
    wait_until(CLEANUP_DEADLINE, "failed uploads are cleaned up", || {
        s.leftovers(user).is_empty()
    });
}

backend_tests! {
    /// STOR then RETR of sizes around every boundary: empty, one byte, the in-memory limit of
    /// small files (64 KiB), and several 8 MiB multipart parts.
    fn stor_and_retr_round_trip_every_size(kind) {
        let Some(s) = Served::start(kind, &[ALICE], &[]) else { return };
        let mut c = login(&s, &ALICE);
        for (i, n) in [0, 1, 64 * KIB, 64 * KIB + 1, 8 * MIB + 3, 17 * MIB].into_iter().enumerate() {
            let data = random_bytes_seeded(i as u64, n);
            let name = format!("f{i}.bin");
            c.upload(&format!("STOR {name}"), &data);
            assert_stored(&s, "alice", &name, &data);
            let got = c.download(&format!("RETR {name}"));
            assert_eq!(sha256_hex(&got), sha256_hex(&data), "RETR {name} ({n} bytes)");
            let size = c.expect(&format!("SIZE {name}"), 213);
            assert_eq!(size.text().trim(), n.to_string(), "SIZE {name}");
        }
        assert!(s.leftovers("alice").is_empty(), "no upload left in progress");
    }

    /// REST + RETR resumes; APPE appends (to a small file, and to one above S3's 5 MiB part
    /// minimum, which S3 copies server-side); REST + STOR rewrites from an offset.
    fn rest_appe_and_rest_stor(kind) {
        let Some(s) = Served::start(kind, &[ALICE], &[]) else { return };
        let mut c = login(&s, &ALICE);
        let big = random_bytes_seeded(7, 6 * MIB + 5);
        s.write("alice", "big.bin", &big);
        c.expect("REST 5000000", 350);
        let tail = c.download("RETR big.bin");
        assert_eq!(sha256_hex(&tail), sha256_hex(&big[5_000_000..]), "REST + RETR");

        let more = random_bytes_seeded(8, 300 * KIB);
        c.upload("APPE big.bin", &more);
        let mut want = big.clone();
        want.extend_from_slice(&more);
        assert_stored(&s, "alice", "big.bin", &want);

        s.write("alice", "small.txt", b"abc");
        c.upload("APPE small.txt", b"def");
        assert_stored(&s, "alice", "small.txt", b"abcdef");
        c.upload("APPE new.txt", b"fresh");
        assert_stored(&s, "alice", "new.txt", b"fresh");

        // A resumed upload: the first bytes kept, the rest written from the offset on.
        c.expect("REST 2", 350);
        c.upload("STOR small.txt", b"XYZW");
        assert_stored(&s, "alice", "small.txt", b"abXYZW");
        c.expect("REST 99", 350);
        let t = c.transfer("STOR small.txt", Some(b"no"));
        assert_eq!(t.code(), 554, "REST past the end is refused before anything changes");
        assert_stored(&s, "alice", "small.txt", b"abXYZW");
        assert!(s.leftovers("alice").is_empty(), "no upload left in progress");
    }

    /// MKD, CWD, RMD (empty only), DELE, and RNFR/RNTO of files and folders.
    fn folders_delete_and_rename(kind) {
        let Some(s) = Served::start(kind, &[ALICE], &[]) else { return };
        let mut c = login(&s, &ALICE);
        c.expect("MKD docs", 257);
        assert!(s.exists("alice", "docs"), "MKD made the folder");
        c.expect("MKD docs", 550);
        c.expect("MKD missing/child", 550);
        c.expect("CWD docs", 250);
        let pwd = c.expect("PWD", 257);
        assert!(pwd.text().contains("\"/docs\""), "{}", pwd.text());
        c.upload("STOR a.txt", b"alpha");
        c.expect("CDUP", 250);
        assert_stored(&s, "alice", "docs/a.txt", b"alpha");
        c.expect("RMD docs", 550);
        c.expect("CWD docs/a.txt", 550);
        c.expect("DELE docs", 550);

        c.expect("RNFR docs/a.txt", 350);
        c.expect("RNTO b.txt", 250);
        assert_stored(&s, "alice", "b.txt", b"alpha");
        assert!(s.read("alice", "docs/a.txt").is_none(), "RNTO moved the file");
        s.write("alice", "c.txt", b"gamma");
        c.expect("RNFR c.txt", 350);
        c.expect("RNTO b.txt", 250);
        assert_stored(&s, "alice", "b.txt", b"gamma");

        c.expect("RMD docs", 250);
        assert!(!s.exists("alice", "docs"), "RMD removed the empty folder");
        c.expect("MKD e", 257);
        c.expect("RNFR e", 350);
        c.expect("RNTO f", 250);
        assert!(s.exists("alice", "f") && !s.exists("alice", "e"), "empty folder renamed");

        s.write("alice", "full/inside.txt", b"x");
        c.expect("RNFR full", 350);
        match kind {
            Kind::Local => {
                c.expect("RNTO moved", 250);
                assert_stored(&s, "alice", "moved/inside.txt", b"x");
            }
            Kind::S3 => {
                let r = c.expect("RNTO moved", 550);
                assert!(r.text().contains("not empty"), "a clear reason: {}", r.text());
                assert_stored(&s, "alice", "full/inside.txt", b"x");
            }
        }
        c.expect("DELE b.txt", 250);
        assert!(s.read("alice", "b.txt").is_none(), "DELE removed the file");
        c.expect("DELE b.txt", 550);
        c.expect("RMD nothing", 550);
    }

    /// LIST, NLST, MLSD, MLST, STAT and MDTM show what is stored, and a folder of more entries
    /// than one page of an S3 listing (1000) lists completely, in order.
    fn listings_show_what_is_stored(kind) {
        let Some(s) = Served::start(kind, &[ALICE], &[]) else { return };
        s.write("alice", "dir/one.txt", b"1");
        s.write("alice", "dir/two.bin", &random_bytes(70_000));
        s.mkdir("alice", "dir/sub");
        let mut c = login(&s, &ALICE);
        let names = c.listing("NLST dir");
        let mut got: Vec<&str> = names.lines().collect();
        got.sort();
        assert_eq!(got, ["one.txt", "sub", "two.bin"], "NLST");
        let list = c.listing("LIST dir");
        let two = list.lines().find(|l| l.ends_with(" two.bin")).expect("LIST has two.bin");
        assert!(two.starts_with("-rw-") && two.contains(" 70000 "), "LIST line: {two}");
        let sub = list.lines().find(|l| l.ends_with(" sub")).expect("LIST has sub");
        assert!(sub.starts_with('d'), "folder line: {sub}");
        let mlsd = c.listing("MLSD dir");
        let entry = mlsd.lines().find(|l| l.ends_with(" two.bin")).expect("MLSD two.bin");
        assert!(entry.contains("type=file;") && entry.contains("size=70000;"), "{entry}");
        assert!(mlsd.lines().any(|l| l.contains("type=dir;") && l.ends_with(" sub")), "{mlsd}");
        let mlst = c.expect("MLST dir/one.txt", 250).wire();
        assert!(mlst.contains("size=1;"), "{mlst}");
        let mdtm = c.expect("MDTM dir/one.txt", 213);
        assert_eq!(mdtm.text().trim().len(), 14, "YYYYMMDDHHMMSS: {}", mdtm.text());
        let stat = c.expect("STAT dir", 213).wire();
        assert!(stat.contains("one.txt"), "{stat}");
        let t = c.transfer("MLSD dir/one.txt", None);
        assert_eq!(t.code(), 501, "MLSD of a file");
        c.expect("SIZE dir", 550);
        c.expect("SIZE nothing", 550);

        for i in 0..1100 {
            s.write("alice", &format!("many/f{i:04}"), b"");
        }
        let names = c.listing("NLST many");
        let got: Vec<&str> = names.lines().collect();
        let want: Vec<String> = (0..1100).map(|i| format!("f{i:04}")).collect();
        assert_eq!(got, want, "every entry, in order");
    }

    /// TYPE A: CRLF on the wire, LF stored, SIZE as transferred.
    fn type_a_converts_line_ends(kind) {
        let Some(s) = Served::start(kind, &[ALICE], &[]) else { return };
        let mut c = login(&s, &ALICE);
        c.expect("TYPE A", 200);
        c.upload("STOR text.txt", b"one\r\ntwo\r\n");
        assert_stored(&s, "alice", "text.txt", b"one\ntwo\n");
        assert_eq!(c.download("RETR text.txt"), b"one\r\ntwo\r\n", "RETR in TYPE A");
        assert_eq!(c.expect("SIZE text.txt", 213).text().trim(), "10", "SIZE in TYPE A");
    }

    /// SECURITY: whatever a client sends, names stay inside its own root (prefix).
    fn hostile_names_stay_in_the_root(kind) {
        let Some(s) = Served::start(kind, &[ALICE, BOB], &[]) else { return };
        s.write("bob", "secret.txt", b"bob's");
        let mut c = login(&s, &ALICE);
        for name in ["../bob/secret.txt", "../../users/bob/secret.txt", "/../bob/secret.txt"] {
            let t = c.transfer(&format!("RETR {name}"), None);
            assert_eq!(t.code(), 550, "RETR {name}");
        }
        c.upload("STOR ../../escape.txt", b"in");
        assert_stored(&s, "alice", "escape.txt", b"in");
        assert_eq!(s.names("bob", ""), ["secret.txt"], "bob's root unchanged");
        c.upload("STOR %2e%2e%2fpct.txt", b"pct");
        assert_stored(&s, "alice", "%2e%2e%2fpct.txt", b"pct");
        let long = "n".repeat(1100);
        let t = c.transfer(&format!("STOR {long}"), Some(b"x"));
        assert_eq!(t.code(), 553, "a name longer than the store allows");
        c.upload("STOR sp ace & ünïcödé.txt", b"u");
        assert_stored(&s, "alice", "sp ace & ünïcödé.txt", b"u");
        assert_eq!(
            c.download("RETR sp ace & ünïcödé.txt"), b"u", "and back by the same name"
        );
        assert_stored(&s, "bob", "secret.txt", b"bob's");
    }

    /// Without the overwrite permission an existing file is never replaced, not even by two
    /// uploads racing for a new name: exactly one wins, the other gets 553.
    fn no_overwrite_holds_against_a_race(kind) {
        const CAROL: TestUser<'static> = TestUser {
            name: "carol",
            password: "carol-pw",
            permissions: Some(&["read", "upload", "mkdir"]),
        };
        let Some(s) = Served::start(kind, &[CAROL], &[]) else { return };
        s.write("carol", "kept.txt", b"original");
        let mut c = login(&s, &CAROL);
        let t = c.transfer("STOR kept.txt", Some(b"replacement"));
        assert_eq!(t.code(), 550, "STOR over an existing file");
        assert_stored(&s, "carol", "kept.txt", b"original");

        let mut a = login(&s, &CAROL);
        let mut b = login(&s, &CAROL);
        let (a_data, b_data) = (random_bytes_seeded(1, 9 * MIB), random_bytes_seeded(2, 100));
        let a_conn = a.epsv();
        a.expect("STOR race.bin", 150);
        let b_conn = b.epsv();
        b.expect("STOR race.bin", 150);
        write_all_close(a_conn, &a_data);
        let a_end = a.reply().code;
        write_all_close(b_conn, &b_data);
        let b_end = b.reply().code;
        let mut ends = [a_end, b_end];
        ends.sort();
        assert_eq!(ends, [226, 553], "one upload wins, the other is refused");
        let winner = if a_end == 226 { &a_data } else { &b_data };
        assert_stored(&s, "carol", "race.bin", winner);
        assert_nothing_left(&s, "carol");
    }

    /// ABOR mid-upload, a client that resets the data connection, and one that vanishes
    /// altogether: nothing partial is stored, and nothing is left in progress.
    fn failed_uploads_leave_nothing(kind) {
        let Some(s) = Served::start(kind, &[ALICE], &[]) else { return };
        let part = random_bytes(12 * MIB);

        let mut c = login(&s, &ALICE);
        let mut data = c.epsv();
        c.expect("STOR aborted.bin", 150);
        data.write_all(&part).expect("send part of the upload");
        c.send("ABOR");
        let first = c.reply().code;
        assert!(first == 426 || first == 226, "ABOR answers 426 (then 226): {first}");
        if first == 426 {
            c.expect_reply(226);
        }
        drop(data);

        let mut c2 = login(&s, &ALICE);
        let mut data = c2.epsv();
        c2.expect("STOR reset.bin", 150);
        data.write_all(&part).expect("send part of the upload");
        reset(data);
        c2.expect_reply(426);

        let mut c3 = login(&s, &ALICE);
        let mut data = c3.epsv();
        c3.expect("STOR vanished.bin", 150);
        data.write_all(&part).expect("send part of the upload");
        c3.reset();
        reset(data);

        assert_nothing_left(&s, "alice");
        for name in ["aborted.bin", "reset.bin", "vanished.bin"] {
            assert!(s.read("alice", name).is_none(), "{name} must not be stored");
        }
        // The session that sent ABOR still works.
        c.upload("STOR after.bin", b"fine");
        assert_stored(&s, "alice", "after.bin", b"fine");
    }
}
