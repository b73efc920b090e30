//! The frames a session sends on each transport: bounded, one canonical encoding, decoded by hand.
//!
//! All integers are big-endian.
//!
//! ```text
//! length  bytes after this field (1 to MAX_BODY_LEN)   u32
//! kind                                                  u8
//! body, by kind:
//!   1 Resume  received u64, window u32
//!   2 Data    offset u64, then 1 to MAX_DATA_LEN bytes of the stream (the rest of the frame)
//!   3 Ack     received u64, window u32, flags u8 (bit 0 = finished; other bits must be 0)
//!   4 Finish  length u64
//!   5 Abort   reason: 0 to MAX_REASON_LEN bytes of UTF-8 (the rest of the frame)
//! ```
//!
//! `received` is how much of the peer's stream this side has taken (it never needs those bytes
//! again), `window` how many bytes past `received` the peer may send before the next
//! acknowledgement: the receiver's memory bound, which is also what keeps a slow reader at one end
//! from stalling the acknowledgements of the other direction. An acknowledgement with `finished`
//! says the peer's [`SessionFrame::Finish`] arrived with every byte before it.
//!
//! The length is checked before the body is read, so a peer cannot make this side buffer more
//! than [`MAX_FRAME_LEN`] bytes for one frame.

use crate::advertisement::wire::{ReadError, Reader};

/// Most stream bytes one [`SessionFrame::Data`] carries.
pub const MAX_DATA_LEN: usize = 16 * 1024;
/// Longest [`SessionFrame::Abort`] reason, in bytes.
pub const MAX_REASON_LEN: usize = 512;
/// Longest body (kind and fields): a full data frame.
pub const MAX_BODY_LEN: usize = 1 + 8 + MAX_DATA_LEN;
/// Length of the length field.
pub const HEADER_LEN: usize = 4;
/// Longest frame, length field included.
pub const MAX_FRAME_LEN: usize = HEADER_LEN + MAX_BODY_LEN;

const RESUME: u8 = 1;
const DATA: u8 = 2;
const ACK: u8 = 3;
const FINISH: u8 = 4;
const ABORT: u8 = 5;

const ACK_FINISHED: u8 = 0b1;

/// One frame of the session protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionFrame {
    /// The first frame each side sends on a transport.
    Resume {
        /// Bytes of the peer's stream taken so far (0 on the first transport).
        received: u64,
        /// Bytes the peer may send past `received`.
        window: u32,
    },
    /// Bytes of the stream, starting at `offset`.
    Data {
        /// Position of the first byte in the sender's stream.
        offset: u64,
        /// 1 to [`MAX_DATA_LEN`] bytes.
        bytes: Vec<u8>,
    },
    /// How much of the peer's stream was taken, and how much more may come.
    Ack {
        /// Bytes of the peer's stream taken so far.
        received: u64,
        /// Bytes the peer may send past `received`.
        window: u32,
        /// The peer's [`SessionFrame::Finish`] arrived, and every byte before it.
        finished: bool,
    },
    /// The sender's local side reached its end: the stream is `length` bytes long.
    Finish {
        /// The whole length of the sender's stream.
        length: u64,
    },
    /// The sender's local connection failed; the session ends with this reason.
    Abort {
        /// Why, for the log at the other end.
        reason: String,
    },
}

/// Why bytes are not a session frame; [`DecodeError::label`] names each case for metrics and
/// tests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A length field of 0.
    #[error("an empty session frame")]
    Empty,
    /// A length field over [`MAX_BODY_LEN`].
    #[error("a session frame of {0} bytes is over the limit of {MAX_BODY_LEN}")]
    TooLarge(u64),
    /// A kind this version does not know.
    #[error("session frame kind {0} is not known")]
    UnknownKind(u8),
    /// The input ends inside this field.
    #[error("the session frame ends inside its {0}")]
    Truncated(&'static str),
    /// Bytes after the frame's last field.
    #[error("{0} bytes follow the session frame's last field")]
    TrailingBytes(usize),
    /// A data frame without data.
    #[error("a data frame carries no bytes")]
    EmptyData,
    /// A data frame whose end is past the largest stream offset.
    #[error("a data frame ends past the largest stream offset")]
    OffsetOverflow,
    /// Acknowledgement flags this version does not know.
    #[error("unknown acknowledgement flags {0:#04x}")]
    UnknownFlags(u8),
    /// An abort reason longer than [`MAX_REASON_LEN`].
    #[error("an abort reason of {0} bytes is over the limit of {MAX_REASON_LEN}")]
    ReasonTooLong(usize),
    /// An abort reason that is not UTF-8.
    #[error("the abort reason is not UTF-8")]
    ReasonNotUtf8,
}

impl DecodeError {
    /// A stable label: `empty_frame`, `frame_too_large`, `unknown_kind`, `truncated`,
    /// `trailing_bytes`, `empty_data`, `offset_overflow`, `unknown_flags`, `reason_too_long`,
    /// `reason_not_utf8`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Empty => "empty_frame",
            Self::TooLarge(_) => "frame_too_large",
            Self::UnknownKind(_) => "unknown_kind",
            Self::Truncated(_) => "truncated",
            Self::TrailingBytes(_) => "trailing_bytes",
            Self::EmptyData => "empty_data",
            Self::OffsetOverflow => "offset_overflow",
            Self::UnknownFlags(_) => "unknown_flags",
            Self::ReasonTooLong(_) => "reason_too_long",
            Self::ReasonNotUtf8 => "reason_not_utf8",
        }
    }
}

impl From<ReadError> for DecodeError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Truncated(what) => Self::Truncated(what),
            // Session frames hold no hub ids, country codes or counts.
            ReadError::HubId { field, .. } => Self::Truncated(field),
            ReadError::Jurisdiction(_) => Self::Truncated("jurisdiction"),
            ReadError::TooMany { what, .. } => Self::Truncated(what),
        }
    }
}

/// The body length a frame's length field announces, refused before the body is read when it
/// is 0 or over [`MAX_BODY_LEN`].
pub fn body_len(header: [u8; HEADER_LEN]) -> Result<usize, DecodeError> {
    let len = u32::from_be_bytes(header);
    match usize::try_from(len) {
        Ok(0) => Err(DecodeError::Empty),
        Ok(len) if len <= MAX_BODY_LEN => Ok(len),
        _ => Err(DecodeError::TooLarge(u64::from(len))),
    }
}

impl SessionFrame {
    /// The frame's encoding, length field included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the frame's encoding, length field included, to `out`.
    ///
    /// # Panics
    /// If a data frame is empty or longer than [`MAX_DATA_LEN`], or an abort reason longer than
    /// [`MAX_REASON_LEN`]: the session never builds one, and the peer would refuse it.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        match self {
            Self::Resume { received, window } => {
                out.push(RESUME);
                out.extend_from_slice(&received.to_be_bytes());
                out.extend_from_slice(&window.to_be_bytes());
            }
            Self::Data { offset, bytes } => {
                assert!(
                    (1..=MAX_DATA_LEN).contains(&bytes.len()),
                    "a data frame carries 1 to {MAX_DATA_LEN} bytes"
                );
                out.push(DATA);
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(bytes);
            }
            Self::Ack {
                received,
                window,
                finished,
            } => {
                out.push(ACK);
                out.extend_from_slice(&received.to_be_bytes());
                out.extend_from_slice(&window.to_be_bytes());
                out.push(if *finished { ACK_FINISHED } else { 0 });
            }
            Self::Finish { length } => {
                out.push(FINISH);
                out.extend_from_slice(&length.to_be_bytes());
            }
            Self::Abort { reason } => {
                assert!(
                    reason.len() <= MAX_REASON_LEN,
                    "abort reasons are cut to {MAX_REASON_LEN} bytes"
                );
                out.push(ABORT);
                out.extend_from_slice(reason.as_bytes());
            }
        }
        let body = u32::try_from(out.len() - start - HEADER_LEN)
            .expect("frame bodies are bounded by MAX_BODY_LEN");
        out[start..start + HEADER_LEN].copy_from_slice(&body.to_be_bytes());
    }

    /// Decodes exactly one whole frame, length field included.
    pub fn decode(frame: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(frame);
        let len = body_len(reader.array("length")?)?;
        match reader.remaining() {
            rest if rest < len => return Err(DecodeError::Truncated("body")),
            rest if rest > len => return Err(DecodeError::TrailingBytes(rest - len)),
            _ => {}
        }
        let decoded = match reader.u8("kind")? {
            RESUME => Self::Resume {
                received: reader.u64("received")?,
                window: reader.u32("window")?,
            },
            DATA => data(&mut reader)?,
            ACK => Self::Ack {
                received: reader.u64("received")?,
                window: reader.u32("window")?,
                finished: match reader.u8("flags")? {
                    0 => false,
                    ACK_FINISHED => true,
                    other => return Err(DecodeError::UnknownFlags(other)),
                },
            },
            FINISH => Self::Finish {
                length: reader.u64("length")?,
            },
            ABORT => abort(&mut reader)?,
            other => return Err(DecodeError::UnknownKind(other)),
        };
        match reader.remaining() {
            0 => Ok(decoded),
            rest => Err(DecodeError::TrailingBytes(rest)),
        }
    }

    /// A short name for logs and errors: `resume`, `data`, `ack`, `finish`, `abort`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Resume { .. } => "resume",
            Self::Data { .. } => "data",
            Self::Ack { .. } => "ack",
            Self::Finish { .. } => "finish",
            Self::Abort { .. } => "abort",
        }
    }
}

fn data(reader: &mut Reader<'_>) -> Result<SessionFrame, DecodeError> {
    let offset = reader.u64("offset")?;
    let bytes = reader.take(reader.remaining(), "data")?;
    if bytes.is_empty() {
        return Err(DecodeError::EmptyData);
    }
    // The length field bounds the body, so `bytes` is at most MAX_DATA_LEN long here.
    let len = u64::try_from(bytes.len()).expect("data frames are bounded by MAX_DATA_LEN");
    offset.checked_add(len).ok_or(DecodeError::OffsetOverflow)?;
    Ok(SessionFrame::Data {
        offset,
        bytes: bytes.to_vec(),
    })
}

fn abort(reader: &mut Reader<'_>) -> Result<SessionFrame, DecodeError> {
    let reason = reader.take(reader.remaining(), "reason")?;
    if reason.len() > MAX_REASON_LEN {
        return Err(DecodeError::ReasonTooLong(reason.len()));
    }
    let reason = std::str::from_utf8(reason).map_err(|_| DecodeError::ReasonNotUtf8)?;
    Ok(SessionFrame::Abort {
        reason: reason.to_owned(),
    })
}

/// `reason` cut to at most [`MAX_REASON_LEN`] bytes, on a character boundary.
pub(super) fn bounded_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_kind() -> Vec<SessionFrame> {
        vec![
            SessionFrame::Resume {
                received: 0,
                window: 4 << 20,
            },
            SessionFrame::Data {
                offset: u64::MAX - MAX_DATA_LEN as u64,
                bytes: vec![0xa5; MAX_DATA_LEN],
            },
            SessionFrame::Data {
                offset: 7,
                bytes: b"x".to_vec(),
            },
            SessionFrame::Ack {
                received: 1 << 40,
                window: 0,
                finished: true,
            },
            SessionFrame::Ack {
                received: 3,
                window: u32::MAX,
                finished: false,
            },
            SessionFrame::Finish { length: 12 },
            SessionFrame::Abort {
                reason: String::new(),
            },
            SessionFrame::Abort {
                reason: "é".repeat(MAX_REASON_LEN / 2),
            },
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for frame in every_kind() {
            let bytes = frame.encode();
            assert!(bytes.len() <= MAX_FRAME_LEN);
            assert_eq!(
                body_len(bytes[..4].try_into().unwrap()),
                Ok(bytes.len() - 4)
            );
            assert_eq!(SessionFrame::decode(&bytes), Ok(frame));
        }
    }

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn malformed_frames_are_refused_with_their_label() {
        let mut oversized = (MAX_BODY_LEN as u32 + 1).to_be_bytes().to_vec();
        oversized.resize(MAX_BODY_LEN + 5, 2);
        let mut long_reason = vec![ABORT];
        long_reason.resize(MAX_REASON_LEN + 2, b'a');
        let mut overflow = vec![DATA];
        overflow.extend_from_slice(&u64::MAX.to_be_bytes());
        overflow.push(1);
        let mut bad_flags = vec![ACK];
        bad_flags.extend_from_slice(&[0; 12]);
        bad_flags.push(2);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "truncated"),
            (vec![0, 0], "truncated"),
            (frame(&[]), "empty_frame"),
            (oversized, "frame_too_large"),
            (u32::MAX.to_be_bytes().to_vec(), "frame_too_large"),
            (frame(&[9]), "unknown_kind"),
            (frame(&[RESUME, 0, 0, 0]), "truncated"),
            (vec![0, 0, 0, 9, RESUME, 0], "truncated"),
            (
                frame(&[FINISH, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
                "trailing_bytes",
            ),
            (
                [frame(&[FINISH, 0, 0, 0, 0, 0, 0, 0, 1]), vec![0]].concat(),
                "trailing_bytes",
            ),
            (frame(&[DATA, 0, 0, 0, 0, 0, 0, 0, 1]), "empty_data"),
            (frame(&overflow), "offset_overflow"),
            (frame(&bad_flags), "unknown_flags"),
            (frame(&long_reason), "reason_too_long"),
            (frame(&[ABORT, 0xff, 0xfe]), "reason_not_utf8"),
        ];
        for (bytes, label) in cases {
            let err = SessionFrame::decode(&bytes).unwrap_err();
            assert_eq!(err.label(), label, "{bytes:?}: {err}");
        }
    }

    #[test]
    fn reasons_are_cut_on_a_character_boundary() {
        let cut = bounded_reason(&"é".repeat(MAX_REASON_LEN));
        assert_eq!(cut.len(), MAX_REASON_LEN);
        let cut = bounded_reason(&format!("a{}", "é".repeat(MAX_REASON_LEN)));
        assert_eq!(cut.len(), MAX_REASON_LEN - 1);
        assert_eq!(bounded_reason("short"), "short");
    }
}
