//! Fuzz target: `warden_minimize::fuzzing::json` on arbitrary bytes (valid JSON stays valid
//! through redaction and restore). Run with `cargo +nightly fuzz run json` from crates/warden-minimize.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| warden_minimize::fuzzing::json(data));
