//! trustd's CSR parser (ACME finalize, D-Bus Issue): hostile bytes must give an error, never a
//! panic, a hang or unbounded memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = trustd::ca::parse_csr(data);
});
