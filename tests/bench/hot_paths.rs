//! Micro-benchmarks of actorftpd's hot pure paths (`cargo bench --bench hot_paths`).
//!
//! What every control command goes through (the codec's byte state machine, `command::parse`,
//! building and encoding its `Reply`), the LIST formatting (`listing::list_line`, `list_body`,
//! and MLSD's `mlsd_body` for comparison), and one Argon2 verification with the daemon's
//! default parameters (what one login costs; scenario F's ceiling is cores / this time).
//! Results and their interpretation: tests/bench/BENCHMARKS.md.
//!
//! Filter like any criterion bench: `cargo bench --bench hot_paths -- parse`.

use actorftpd::auth::Credential;
use actorftpd::listing::{self, EntryInfo, EntryKind, MlsxFacts, PermFact};
use actorftpd::protocol::command;
use actorftpd::protocol::{FtpCodec, Reply, ReplyCode};
use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::time::Duration;
use tokio_util::codec::Decoder;

/// Lines a benchmark client (ftpbench C/E/F) and ordinary clients send most.
const LINES: &[(&str, &[u8])] = &[
    ("noop", b"NOOP"),
    ("pwd", b"PWD"),
    ("cwd", b"CWD bench_dir"),
    ("type", b"TYPE I"),
    ("pasv", b"PASV"),
    ("retr", b"RETR bench_4k.bin"),
    ("user", b"USER ftpbench"),
    ("port", b"PORT 127,0,0,1,117,48"),
    (
        "stor_long",
        b"STOR some/deeper/directory/with a long file name that has spaces.tar.gz",
    ),
    ("unknown", b"XYZZY plugh"),
];

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, line) in LINES {
        g.bench_function(*name, |b| b.iter(|| command::parse(black_box(line))));
    }
    g.finish();
}

/// The whole decode step per line: IAC/CRLF state machine + parse, as `Framed` calls it.
fn bench_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("codec_decode");
    for (name, line) in [
        ("noop", &b"NOOP\r\n"[..]),
        ("retr", &b"RETR bench_4k.bin\r\n"[..]),
        (
            "stor_long",
            &b"STOR some/deeper/directory/with a long file name that has spaces.tar.gz\r\n"[..],
        ),
    ] {
        g.throughput(Throughput::Bytes(line.len() as u64));
        let mut codec = FtpCodec::default();
        let mut buf = BytesMut::with_capacity(256);
        g.bench_function(name, |b| {
            b.iter(|| {
                buf.extend_from_slice(line);
                let item = codec.decode(&mut buf).expect("decode never fails");
                black_box(item)
            })
        });
    }
    g.finish();
}

fn sample_replies() -> Vec<(&'static str, Reply)> {
    vec![
        ("noop_200", Reply::new(ReplyCode::CommandOk, "NOOP ok")),
        (
            "pwd_257",
            Reply::new(
                ReplyCode::PathCreated,
                "\"/bench_dir\" is the current directory",
            ),
        ),
        (
            "pasv_227",
            Reply::new(
                ReplyCode::EnteringPassiveMode,
                "Entering Passive Mode (127,0,0,1,117,48)",
            ),
        ),
        (
            "transfer_226",
            Reply::new(
                ReplyCode::ClosingDataConnection,
                "Transfer complete: 4096 bytes in 0.000 s (12.3 MB/s)",
            ),
        ),
        (
            "feat_211",
            Reply::multi(
                ReplyCode::SystemStatus,
                [
                    "Features:",
                    " EPRT",
                    " EPSV",
                    " MDTM",
                    " MLST type*;size*;modify*;perm*;unique*;UNIX.mode*;",
                    " PASV",
                    " REST STREAM",
                    " SIZE",
                    " TVFS",
                    " UTF8",
                    "End",
                ]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            ),
        ),
    ]
}

fn bench_reply(c: &mut Criterion) {
    let mut g = c.benchmark_group("reply_encode");
    for (name, reply) in sample_replies() {
        let mut dst = BytesMut::with_capacity(1024);
        g.bench_function(name, |b| {
            b.iter(|| {
                dst.clear();
                black_box(&reply).encode(&mut dst);
                black_box(dst.len())
            })
        });
    }
    // What the Session pays per NOOP: build the Reply (Vec<String> + String), then encode.
    let mut dst = BytesMut::with_capacity(1024);
    g.bench_function("noop_200_new_and_encode", |b| {
        b.iter(|| {
            dst.clear();
            let r = Reply::new(ReplyCode::CommandOk, black_box("NOOP ok"));
            r.encode(&mut dst);
            black_box(dst.len())
        })
    });
    g.finish();
}

/// 2026-11-25 12:00:00 UTC.
const NOW: i64 = 1_795_608_000;

fn entry(i: usize) -> EntryInfo {
    let kind = match i % 10 {
        0 => EntryKind::Dir,
        7 => EntryKind::Symlink {
            target: "../elsewhere/target.bin".to_owned(),
        },
        _ => EntryKind::File,
    };
    EntryInfo {
        name: format!("file_{i:05}_with_a_typical_name.dat"),
        kind,
        size: (i as u64 * 7919) % 10_000_000,
        mode: 0o644,
        nlink: 1,
        uid: 1000,
        gid: 1000,
        // Half recent (time shown), half older than six months (year shown).
        mtime: if i.is_multiple_of(2) {
            NOW - 3600 * i as i64
        } else {
            NOW - 400 * 86_400
        },
        dev: 2049,
        ino: 100_000 + i as u64,
    }
}

fn bench_listing(c: &mut Criterion) {
    let mut g = c.benchmark_group("listing");
    let file = entry(1);
    let recent = entry(2);
    let dir = entry(10);
    g.bench_function("list_line_file_old", |b| {
        b.iter(|| listing::list_line(black_box(&file), NOW))
    });
    g.bench_function("list_line_file_recent", |b| {
        b.iter(|| listing::list_line(black_box(&recent), NOW))
    });
    g.bench_function("list_line_dir", |b| {
        b.iter(|| listing::list_line(black_box(&dir), NOW))
    });
    for n in [10usize, 100, 1000] {
        let entries: Vec<EntryInfo> = (0..n).map(entry).collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("list_body_{n}"), |b| {
            b.iter(|| listing::list_body(black_box(&entries), NOW))
        });
        let perm = PermFact {
            read: true,
            write: true,
            delete: true,
            rename: true,
            mkdir: true,
        };
        g.bench_function(format!("mlsd_body_{n}"), |b| {
            b.iter(|| listing::mlsd_body(black_box(&entries), MlsxFacts::default(), perm))
        });
        g.bench_function(format!("nlst_body_{n}"), |b| {
            b.iter(|| listing::nlst_body(black_box(&entries)))
        });
    }
    g.finish();
}

/// `echo ftpbench | actorftpd hash-password`: Argon2id, the argon2 crate's defaults
/// (m=19456 KiB, t=2, p=1), as every users file made with the daemon's tool has.
const PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$Uac7IOz6yAMgVIS1aOO0fQ$2nUYpQu9x85OGl/UpBc1gUnpHT+kPMSUf7fMR1EXXLA";

fn bench_login_hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("login");
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));
    let cred = Credential::Argon2(PHC.to_owned());
    assert!(cred.verify("ftpbench"), "fixture hash must verify");
    g.bench_function("argon2id_verify_default_params", |b| {
        b.iter_batched(
            || (),
            |_| cred.verify(black_box("ftpbench")),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(
    hot,
    bench_parse,
    bench_codec,
    bench_reply,
    bench_listing,
    bench_login_hash
);
criterion_main!(hot);
