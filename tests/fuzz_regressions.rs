//! Replays saved fuzz inputs through the fuzz targets' own checks, on the stable toolchain.
//!
//! `tests/fuzz/regressions/<target>/*` holds seeds worth keeping (over-long lines, IAC and CR at
//! chunk ends, reply injection attempts) and every input a fuzzer ever failed on once its bug is
//! fixed; all of them must pass. An input that finds a new bug goes there with its fix. How to run
//! the fuzzers: `tests/fuzz/README.md`.

#[path = "fuzz/checks.rs"]
mod checks;

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 3] = [
    ("parse_command", checks::check_parse),
    ("codec", checks::check_codec),
    ("reply_encode", checks::check_reply),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz")
}

/// Replays every file under `dir/<target>/`; returns how many ran and the failures.
fn replay(dir: &Path) -> (usize, Vec<String>) {
    let mut ran = 0;
    let mut failures = Vec::new();
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let sub = entry.expect("directory entry").path();
        let name = sub.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some((_, check)) = TARGETS.iter().find(|(t, _)| *t == name) else {
            panic!(
                "{}: not a fuzz target (expected one of parse_command, codec, reply_encode)",
                sub.display()
            );
        };
        let mut files: Vec<PathBuf> = fs::read_dir(&sub)
            .expect("read target directory")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        for file in files {
            let data = fs::read(&file).expect("read input");
            ran += 1;
            if let Err(p) = panic::catch_unwind(|| check(&data)) {
                let why = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {why}", file.display()));
            }
        }
    }
    (ran, failures)
}

#[test]
fn every_saved_fuzz_input_passes_its_target_checks() {
    let (ran, failures) = replay(&fuzz_dir().join("regressions"));
    assert!(ran >= 20, "only {ran} saved inputs found");
    assert!(
        failures.is_empty(),
        "{} of {ran} saved inputs fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A zero line limit is not reachable from the command line (`Limits::max_line` is a constant),
/// but `FtpCodec::new` is public and takes any `usize`.
#[test]
fn codec_with_zero_line_limit_does_not_panic() {
    use actorftpd::protocol::FtpCodec;
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;
    let mut codec = FtpCodec::new(0);
    let mut buf = BytesMut::from(&b"NOOP\r\n"[..]);
    while let Some(item) = codec.decode(&mut buf).expect("decode never fails") {
        assert!(item.is_err(), "nothing fits in a zero limit: {item:?}");
    }
}
