//! Framing: Stratum V1 is one JSON object per line. A line is bounded before it is parsed, so a
//! peer that never sends a newline, or sends one huge line, costs a bounded buffer and one
//! error rather than memory and parse time.

use super::message::MessageError;

/// The longest line accepted. A `mining.notify` with a large coinbase and a 12-level merkle
/// branch stays under 4 KiB; 16 KiB leaves room for pools with big coinbases while keeping
/// one misbehaving miner's buffer small among thousands.
pub const MAX_LINE_LEN: usize = 16 * 1024;

/// Splits a byte stream into lines, refusing a line that grows past `max` before it is whole,
/// so a peer that never sends a newline cannot make the buffer grow. After an over-long line
/// the rest of it is skipped up to its newline.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max: usize,
    skipping: bool,
}

impl LineBuffer {
    pub fn new(max: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            max,
            skipping: false,
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line (newline and a trailing `\r` removed), an error for an over-long
    /// line (reported once), or `None` until more bytes arrive. Empty lines are skipped.
    pub fn next_line(&mut self) -> Option<Result<Vec<u8>, MessageError>> {
        loop {
            match self.buf.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if std::mem::take(&mut self.skipping) || line.is_empty() {
                        continue;
                    }
                    if line.len() > self.max {
                        return Some(Err(MessageError::LineTooLong {
                            len: line.len(),
                            max: self.max,
                        }));
                    }
                    return Some(Ok(line));
                }
                None if self.buf.len() > self.max => {
                    let len = self.buf.len();
                    self.buf.clear();
                    if std::mem::replace(&mut self.skipping, true) {
                        return None;
                    }
                    return Some(Err(MessageError::LineTooLong { len, max: self.max }));
                }
                None => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_buffer_splits_and_bounds_lines() {
        let mut lines = LineBuffer::new(32);
        lines.extend(b"{\"a\":1}\r\n\n{\"b\"");
        assert_eq!(lines.next_line(), Some(Ok(b"{\"a\":1}".to_vec())));
        assert_eq!(lines.next_line(), None);
        lines.extend(b":2}\n");
        assert_eq!(lines.next_line(), Some(Ok(b"{\"b\":2}".to_vec())));

        // A line that never ends is refused once it passes the bound, and its tail is skipped.
        lines.extend(&[b'x'; 40]);
        assert!(matches!(
            lines.next_line(),
            Some(Err(MessageError::LineTooLong { len: 40, max: 32 }))
        ));
        lines.extend(&[b'x'; 40]);
        assert_eq!(lines.next_line(), None);
        lines.extend(b"tail\n{\"c\":3}\n");
        assert_eq!(lines.next_line(), Some(Ok(b"{\"c\":3}".to_vec())));

        // An over-long line that arrives whole in one read is refused too.
        lines.extend(&[b'y'; 33]);
        lines.extend(b"\nok\n");
        assert!(matches!(
            lines.next_line(),
            Some(Err(MessageError::LineTooLong { .. }))
        ));
        assert_eq!(lines.next_line(), Some(Ok(b"ok".to_vec())));
        assert_eq!(lines.next_line(), None);
    }
}
