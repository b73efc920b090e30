//! The audit log verifier (appliance::audit_log), which reads a file an attacker may have
//! edited, truncated or replaced: any bytes give a verdict (verified or a typed error), never a
//! panic, a hang or unbounded memory; and a verified log's counts add up.
#![no_main]

use appliance::audit_log::{VerifyOptions, verify_bytes};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let options = VerifyOptions {
        service: Some("minerd".to_owned()),
        ..VerifyOptions::default()
    };
    if let Ok(log) = verify_bytes(data, &options) {
        assert!(log.seals + log.unchecked_seals <= log.records);
        assert!(log.unsealed_records <= log.records);
        assert_eq!(log.records == 0, log.head.is_none());
    }
});
