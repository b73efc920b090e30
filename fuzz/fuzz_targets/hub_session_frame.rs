//! hubd's session frame decoder (bytes from the far end of a circuit: a peer hub, or whoever
//! holds the circuit): hostile bytes must give an error, never a panic, a hang or unbounded
//! memory; and whatever decodes must re-encode to exactly the same bytes, since every frame has
//! one encoding. The length field is checked on its own first, as the transport reader does.
#![no_main]

use hubd::session::SessionFrame;
use hubd::session::frame::{HEADER_LEN, body_len};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = SessionFrame::decode(data);
    if let Ok(frame) = &decoded {
        assert_eq!(
            frame.encode(),
            data,
            "a decoded session frame re-encodes differently"
        );
    }
    // The reader's early refusal agrees with the decoder: a refused length is never a frame.
    if let Some(header) = data.first_chunk::<HEADER_LEN>()
        && body_len(*header).is_err()
    {
        assert!(decoded.is_err(), "a frame decoded past a refused length");
    }
});
