//! minerd's Stratum V1 line parsers, both directions (lines from miners, lines from pools), and
//! the line splitter in front of them: hostile bytes must give an error, never a panic, a hang or
//! unbounded memory; and whatever parses must encode to a line that parses to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use minerd::stratum::{ClientMessage, LineBuffer, MAX_LINE_LEN, ServerMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = ClientMessage::parse(data) {
        let again = ClientMessage::parse(message.encode().as_bytes());
        assert!(
            again.is_ok(),
            "an encoded client message does not parse: {again:?}"
        );
        // Floats (suggested difficulty) may round through JSON; everything else is exact.
        if !matches!(
            message.request,
            minerd::stratum::ClientRequest::SuggestDifficulty(_)
        ) {
            assert_eq!(again.as_ref().ok(), Some(&message));
        }
    }
    if let Ok(message) = ServerMessage::parse(data) {
        let again = ServerMessage::parse(message.encode().as_bytes());
        assert!(
            again.is_ok(),
            "an encoded server message does not parse: {again:?}"
        );
        if matches!(
            message,
            ServerMessage::Notify(_)
                | ServerMessage::SetVersionMask(_)
                | ServerMessage::SetExtranonce { .. }
        ) {
            assert_eq!(again.as_ref().ok(), Some(&message));
        }
    }
    let mut lines = LineBuffer::new(MAX_LINE_LEN);
    for chunk in data.chunks(97) {
        lines.extend(chunk);
        while let Some(line) = lines.next_line() {
            if let Ok(line) = line {
                assert!(line.len() <= MAX_LINE_LEN);
                let _ = ClientMessage::parse(&line);
            }
        }
    }
});
