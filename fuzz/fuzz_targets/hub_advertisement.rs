//! hubd's link-state advertisement decoder (bytes from any peer link): hostile bytes must give
//! an error, never a panic, a hang or unbounded memory; and whatever decodes must re-encode to
//! exactly the same bytes, since the signature covers the canonical encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(advertisement) = hubd::advertisement::SignedAdvertisement::decode(data) {
        assert_eq!(advertisement.encode(), data, "a decoded advertisement re-encodes differently");
    }
});
