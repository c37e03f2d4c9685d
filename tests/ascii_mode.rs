//! TYPE A and TYPE I over real data connections: LF on disk is CRLF on the wire, a CRLF already
//! on disk is never sent as CRCRLF, uploads in TYPE A turn CRLF into LF even when the pair is split
//! across the server's read buffers or the client's writes, and TYPE I keeps every byte.
//!
//! The expected results come from small reference conversions written here, independent of the
//! server's own functions (which are table-tested in src/data_channel/ascii.rs).

mod common;
mod rawftp;

use std::io::Write;

use actorftpd::config::Limits;
use common::*;
use rawftp::*;

const USER: &str = "alice";
const PASS: &str = "alice-pass";

/// The server's copy buffer for large files: reads and conversions happen in chunks of this size.
fn buffer() -> usize {
    Limits::default().transfer_buffer
}

/// Reference: what TYPE A sends for `disk` (every LF not already after a CR gets a CR).
fn to_wire(disk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(disk.len() * 2);
    for (i, &b) in disk.iter().enumerate() {
        if b == b'\n' && (i == 0 || disk[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

/// Reference: what a TYPE A upload stores for `wire` (CRLF becomes LF; a lone CR stays).
fn to_disk(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    for (i, &b) in wire.iter().enumerate() {
        if b == b'\r' && wire.get(i + 1) == Some(&b'\n') {
            continue;
        }
        out.push(b);
    }
    out
}

/// Deterministic text: letters, with a line ending after every `1..=80` letters (`eol`), and
/// `eol` also placed exactly at each position in `at` (the first byte of `eol` lands there).
fn text_with_endings(len: usize, eol: &[u8], at: &[usize], seed: u64) -> Vec<u8> {
    let noise = random_bytes_seeded(seed, len);
    let mut out = Vec::with_capacity(len + 100);
    let mut targets: Vec<usize> = at.to_vec();
    targets.sort();
    let mut next_target = targets.into_iter().peekable();
    let mut i = 0;
    while out.len() < len {
        let line = 1 + (noise[i % noise.len()] as usize % 80);
        i += 1;
        match next_target.peek().copied() {
            Some(t) if out.len() + line + eol.len() > t => {
                while out.len() < t {
                    out.push(b'a' + (out.len() % 26) as u8);
                }
                out.extend_from_slice(eol);
                next_target.next();
            }
            _ => {
                for _ in 0..line {
                    out.push(b'a' + (noise[(i * 7 + out.len()) % noise.len()] % 26));
                }
                out.extend_from_slice(eol);
            }
        }
    }
    for t in at {
        assert_eq!(
            &out[*t..*t + eol.len()],
            eol,
            "test bug: no line ending at {t}"
        );
    }
    out
}

#[test]
fn type_a_download_of_an_lf_file_arrives_with_crlf() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let mut disk = text_with_endings(300 * KIB, b"\n", &[], 31);
    // A lone CR, a CR at the very end, an empty line and a LF at the very start.
    disk.splice(0..0, b"\nfirst\r second\n\n".iter().copied());
    disk.extend_from_slice(b"last line\r");
    write_file(&d.root(USER).join("unix.txt"), &disk);
    c.expect("TYPE A", 200);
    let got = c.download("RETR unix.txt");
    assert!(got.len() > disk.len(), "TYPE A adds CRs");
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&to_wire(&disk)),
        "TYPE A wire form of an LF file"
    );
    assert!(!got.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'));
    // The same file in TYPE I is the disk bytes.
    c.expect("TYPE I", 200);
    assert_eq!(sha256_hex(&c.download("RETR unix.txt")), sha256_hex(&disk));
}

#[test]
fn type_a_download_of_a_crlf_file_is_never_doubled() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let disk = text_with_endings(200 * KIB, b"\r\n", &[], 32);
    write_file(&d.root(USER).join("dos.txt"), &disk);
    c.expect("TYPE A", 200);
    let got = c.download("RETR dos.txt");
    assert!(
        !got.windows(3).any(|w| w == b"\r\r\n"),
        "CRCRLF on the wire for a CRLF file"
    );
    assert_eq!(
        sha256_hex(&got),
        sha256_hex(&disk),
        "a CRLF file is sent unchanged"
    );
}

#[test]
fn type_a_download_with_crlf_split_across_the_servers_read_buffers() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let b = buffer();
    // On disk: CRLF whose CR is the last byte of one file read and LF the first of the next;
    // and LF-only lines elsewhere, including a LF as the first byte of the third read.
    let mut disk = text_with_endings(3 * b + 5000, b"\n", &[2 * b], 33);
    disk[b - 1] = b'\r';
    disk[b] = b'\n';
    write_file(&d.root(USER).join("mixed.txt"), &disk);
    c.expect("TYPE A", 200);
    let got = c.download("RETR mixed.txt");
    assert!(
        !got.windows(3).any(|w| w == b"\r\r\n"),
        "CRCRLF at a buffer boundary"
    );
    assert_eq!(sha256_hex(&got), sha256_hex(&to_wire(&disk)));
}

#[test]
fn type_a_upload_turns_crlf_into_lf_across_the_servers_read_buffers() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    let b = buffer();
    // On the wire: CRLF pairs whose CR ends one server read buffer and LF starts the next.
    let mut wire = text_with_endings(3 * b + 777, b"\r\n", &[b - 1, 2 * b - 1], 34);
    // Lone CRs are kept, also as the very last byte.
    wire.extend_from_slice(b"lone\rcr\r");
    let want = to_disk(&wire);
    assert!(!want.windows(2).any(|w| w == b"\r\n"));
    c.expect("TYPE A", 200);
    c.upload("STOR up.txt", &wire);
    let disk = std::fs::read(d.root(USER).join("up.txt")).expect("uploaded file");
    assert_eq!(
        disk.iter().filter(|&&x| x == b'\r').count(),
        want.iter().filter(|&&x| x == b'\r').count(),
        "only lone CRs remain on disk"
    );
    assert_eq!(
        sha256_hex(&disk),
        sha256_hex(&want),
        "TYPE A upload on disk"
    );
    // And it comes back as the wire form.
    assert_eq!(
        sha256_hex(&c.download("RETR up.txt")),
        sha256_hex(&to_wire(&want))
    );
}

#[test]
fn type_a_upload_written_in_chunks_that_end_in_cr_lands_with_lf_only() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    // Many small writes, each ending right after a CR, the next starting with its LF; with
    // TCP_NODELAY each write leaves as its own segment, so the server sees the split pairs.
    let lines: Vec<Vec<u8>> = (0..2000)
        .map(|i| format!("line {i} with some text {}", "x".repeat(i % 50)).into_bytes())
        .collect();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let mut chunk = if i == 0 { Vec::new() } else { b"\n".to_vec() };
        chunk.extend_from_slice(line);
        chunk.push(b'\r');
        chunks.push(chunk);
    }
    chunks.push(b"\n".to_vec());
    let wire: Vec<u8> = chunks.concat();
    let mut want = lines.join(&b'\n');
    want.push(b'\n');
    assert_eq!(to_disk(&wire), want, "test bug: reference conversion");

    c.expect("TYPE A", 200);
    let mut data = c.epsv();
    data.set_nodelay(true).expect("TCP_NODELAY");
    c.expect("STOR chunked.txt", 150);
    for chunk in &chunks {
        data.write_all(chunk).expect("write a chunk");
    }
    write_all_close(data, b"");
    c.expect_reply(226);
    let disk = std::fs::read(d.root(USER).join("chunked.txt")).expect("uploaded file");
    assert!(!disk.contains(&b'\r'), "a CR survived on disk");
    assert_eq!(sha256_hex(&disk), sha256_hex(&want));
}

#[test]
fn type_i_keeps_every_byte_including_cr_and_lf() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    // Random bytes, plus CRLF, lone CR and lone LF runs at the read-buffer boundary.
    let b = buffer();
    let mut data = random_bytes_seeded(35, 2 * b + 999);
    data[b - 1] = b'\r';
    data[b] = b'\n';
    data[b + 1] = b'\n';
    data[b + 2] = b'\r';
    data[b + 3] = b'\r';
    assert!(data.windows(2).filter(|w| w == b"\r\n").count() > 10);
    c.expect("TYPE I", 200);
    c.upload("STOR bin.dat", &data);
    assert_eq!(
        file_sha256(&d.root(USER).join("bin.dat")),
        sha256_hex(&data)
    );
    assert_eq!(sha256_hex(&c.download("RETR bin.dat")), sha256_hex(&data));
    // TYPE L 8 is TYPE I.
    c.expect("TYPE L 8", 200);
    assert_eq!(sha256_hex(&c.download("RETR bin.dat")), sha256_hex(&data));
}

#[test]
fn listings_are_the_same_in_type_a_and_type_i() {
    let (d, mut c) = daemon_and_login(USER, PASS);
    write_file(&d.root(USER).join("x.txt"), b"x\n");
    std::fs::create_dir_all(d.root(USER).join("d")).expect("mkdir");
    c.expect("TYPE I", 200);
    let nlst_i = c.listing("NLST");
    let mlsd_i = c.listing("MLSD");
    c.expect("TYPE A", 200);
    assert_eq!(c.listing("NLST"), nlst_i);
    assert_eq!(c.listing("MLSD"), mlsd_i);
    assert!(!c.listing("LIST").contains("\r\r\n"));
}
