//! Proptest strategies shared by the property tests (tests/properties.rs) and the Session fuzz
//! test (tests/session_fuzz.rs). A directory module, so only the crates that declare
//! `mod strategies;` compile it; it must not know the daemon or the harness.

use proptest::prelude::*;

/// One of `names`, each as likely as any other. Give it the weight `names.len()` in a
/// `prop_oneof!` beside weight-1 arms to keep every name exactly as likely as each other arm.
pub fn one_of(names: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::select(names).prop_map(str::to_owned)
}
