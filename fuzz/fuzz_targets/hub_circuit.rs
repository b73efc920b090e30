//! hubd's circuit frame decoders (bytes from any peer link, or relayed from further away):
//! hostile bytes must give an error, never a panic, a hang or unbounded memory; and whatever
//! decodes must re-encode to exactly the same bytes and decode again to the same frame.
#![no_main]

use hubd::circuit::{CircuitOpen, CircuitReply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(open) = CircuitOpen::decode(data) {
        let bytes = open.encode();
        assert_eq!(bytes, data, "a decoded open re-encodes differently");
        assert_eq!(CircuitOpen::decode(&bytes).as_ref(), Ok(&open));
    }
    if let Ok(reply) = CircuitReply::decode(data) {
        let bytes = reply.encode();
        assert_eq!(bytes, data, "a decoded reply re-encodes differently");
        assert_eq!(CircuitReply::decode(&bytes).as_ref(), Ok(&reply));
    }
});
