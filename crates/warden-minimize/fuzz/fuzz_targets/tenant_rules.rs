//! Fuzz target: `warden_minimize::fuzzing::tenant_rules` on arbitrary bytes (no panic, invariants hold).
//! Run with `cargo +nightly fuzz run tenant_rules` from crates/warden-minimize.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| warden_minimize::fuzzing::tenant_rules(data));
