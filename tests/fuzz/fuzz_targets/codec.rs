//! Arbitrary bytes, in random chunks, through `FtpCodec::decode` and `decode_eof`.
//! The checks live in `../checks.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_codec(data));
