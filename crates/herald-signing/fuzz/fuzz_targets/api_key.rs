//! Arbitrary headers, body and URL through the API key verifier: it must
//! answer `Ok` or `Err`, never panic. Input layout: `herald_signing::fuzzing`.
#![no_main]

use herald_signing::fuzzing::{run, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _verdict = run(Target::ApiKey, data);
});
