//! Arbitrary text into `Reply::new(..).encode` and `Reply::multi(..).encode`.
//! The checks live in `../checks.rs`, shared with `tests/fuzz_regressions.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_reply(data));
