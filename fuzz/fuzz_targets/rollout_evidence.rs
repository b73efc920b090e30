//! A hub's rollout evidence (updated::rollout::evidence), which arrives from another hub: any
//! bytes give a verdict (verified or a typed refusal), never a panic. The key, PCR 11 and nonce
//! are those of the seed (a real evidence from trustd on swtpm), so mutations of it reach the
//! quote's signature, attestation parser and gate checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use updated::rollout::evidence::{HealthEvidence, HubCaKey, verify_evidence};

/// The seed's hub CA key (SEC1 hex), PCR 11 (swtpm's, never extended) and nonce.
const HUB_KEY: &str = "0499720ba9b7782672668c642ffeba65ab7e101ab4e81f5ee4a99df6b5f4e5905147f2db36ed1b02e8613e53745d247614d68f71f0eec72d4d57f7fb9fa4716190";
const PCR11: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const NONCE: &[u8] = b"coordinator nonce for zurich-1, wave 0";

fuzz_target!(|data: &[u8]| {
    let key = HubCaKey::from_sec1_hex(HUB_KEY).expect("the seed's key is a P-256 point");
    if let Ok(evidence) = HealthEvidence::from_json(data) {
        let verdict = verify_evidence(&evidence, &key, PCR11, NONCE);
        // Only a healthy verdict can pass, and a refusal always has a sentence.
        match verdict {
            Ok(()) => assert!(evidence.verdict.is_healthy()),
            Err(refused) => assert!(!refused.to_string().is_empty()),
        }
        // What parsed serialises and parses back to the same evidence.
        let again = HealthEvidence::from_json(evidence.to_json().as_bytes());
        assert_eq!(again.as_ref().ok(), Some(&evidence));
    }
});
