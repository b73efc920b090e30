//! trustd's ACME request parsing (every POST body from the network): a hostile JWS or JWK must
//! give an RFC 8555 problem, never a panic. When the JWS embeds its own key, the signature check
//! runs too, as it does for newAccount.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trustd::acme::jws::{Signer, parse_jws};
use trustd::acme::parse_jwk;

fuzz_target!(|data: &[u8]| {
    let _ = parse_jwk(data);
    if let Ok(jws) = parse_jws(data) {
        let _ = jws.json();
        if let Signer::Key(key) = &jws.header.signer {
            let _ = jws.verify(key);
        }
    }
});
