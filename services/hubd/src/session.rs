//! Sessions: a client's TCP connection carried between two hubs over circuits that may break and
//! be replaced, without the client seeing a reset.
//!
//! The session sits between the local connection and the transport that currently carries it
//! (a circuit's stream, or any other byte pipe the owner hands in). Each side numbers the bytes
//! it reads from its local side, keeps them until the peer acknowledges them, and when a
//! transport fails, resends from where the peer says it got to on the next one. Both ends run
//! the same [`run`]: the source hub hands in a new circuit after each
//! [`SessionEvent::TransportLost`], the destination hub whichever circuit arrives next for the
//! same [`SessionId`](crate::session_id::SessionId).
//!
//! On each transport ([`frame`] has the encoding), each side first sends `Resume` (how much of
//! the peer's stream it has taken, and how much more it will take), then `Data`, `Ack`, `Finish`
//! (its local side ended: half-close) and `Abort` (its local connection failed) as they come.
//!
//! Memory is bounded by the settings: at most [`SessionSettings::max_unacknowledged`] bytes kept
//! for retransmission (then the local side is no longer read: backpressure), at most as many
//! waiting for the local side (the window each side announces, so a slow local reader slows the
//! peer's sender without stalling the acknowledgements of the other direction), and a frame or
//! two per transport.
//!
//! A transport is replaced, not repaired: a transport that fails, ends without the session
//! ending, or is superseded by a newer one handed in, is dropped. The session itself ends with
//! an error only when no transport resumes it within [`SessionSettings::resume_within`], the
//! peer breaks the protocol, or either local connection fails.
//!
//! The last acknowledgement is the one nobody acknowledges (TCP's TIME-WAIT): a side whose
//! transport fails once it is *settled* (every byte of its own acknowledged, the peer's whole
//! stream delivered) still waits out [`SessionSettings::resume_within`] for a transport that
//! resumes it, so that a peer which missed that acknowledgement hears it again, and then ends
//! well either way: its local connection lost nothing.

mod byte_queue;
mod driver;
pub mod frame;
mod inbound;
mod outbound;
mod transport;

#[cfg(test)]
mod tests;

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

pub use frame::{DecodeError, SessionFrame};

/// The limits and timings of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSettings {
    /// Bytes kept for retransmission; when full, the local side is not read (backpressure). Also
    /// the window: bytes from the peer that may wait for the local side. At least 1.
    pub max_unacknowledged: usize,
    /// Acknowledge after this many bytes of progress (or half the window, if smaller).
    pub ack_after: usize,
    /// Acknowledge any progress after this long.
    pub ack_interval: Duration,
    /// How long to wait for a transport that resumes the session (the first one included), and
    /// for the peer to close a transport at the end.
    pub resume_within: Duration,
}

impl Default for SessionSettings {
    /// 4 MiB kept, acknowledged every 64 KiB or 20 ms, 10 s to resume: a backup path is
    /// usually found well within a second, and 4 MiB covers 100 ms at 300 Mbit/s.
    fn default() -> Self {
        Self {
            max_unacknowledged: 4 << 20,
            ack_after: 64 << 10,
            ack_interval: Duration::from_millis(20),
            resume_within: Duration::from_secs(10),
        }
    }
}

/// What the owner of a session hears while it runs (sent with `try_send`: a full channel loses
/// the event rather than stalling the session, so give it room for a few).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// A transport failed, ended early, or was replaced by a newer one; hand in another within
    /// [`SessionSettings::resume_within`] (the source opens a new circuit).
    TransportLost {
        /// Why, for the log.
        reason: String,
        /// Which transport (1 for the first handed in).
        generation: u64,
    },
    /// The peer resumed the session on a transport after the first.
    Resumed {
        /// Which transport.
        generation: u64,
        /// Bytes already sent once that are sent again.
        retransmitted: u64,
    },
}

/// What a session carried, when it ended well.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// Bytes read from the local side, all acknowledged by the peer.
    pub sent: u64,
    /// Bytes written to the local side.
    pub received: u64,
    /// Transports taken from the owner.
    pub transports: u64,
    /// Bytes sent more than once, after a transport was lost.
    pub retransmitted: u64,
    /// The most bytes kept for retransmission at any time (at most `max_unacknowledged`).
    pub peak_unacknowledged: usize,
    /// The most bytes from the peer that waited for the local side (at most
    /// `max_unacknowledged`).
    pub peak_undelivered: usize,
}

/// Why a session ended without carrying the connection to its end.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No transport resumed the session in time, or the owner closed the channel of transports
    /// while none was left.
    #[error("no transport resumed the session within {waited:?}")]
    NoTransport {
        /// How long the session waited.
        waited: Duration,
    },
    /// The peer broke the session protocol.
    #[error("the peer broke the session protocol: {0}")]
    Protocol(#[from] ProtocolError),
    /// The peer's local connection failed; shut this side's down hard.
    #[error("the peer's local connection failed: {reason}")]
    Aborted {
        /// The peer's reason.
        reason: String,
    },
    /// This side's local connection failed (the peer was told, if a transport was up).
    #[error("the local connection failed: {0}")]
    Local(#[source] io::Error),
}

impl SessionError {
    /// A stable label: `no_transport`, `aborted`, `local`, or the protocol error's own.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NoTransport { .. } => "no_transport",
            Self::Protocol(error) => error.label(),
            Self::Aborted { .. } => "aborted",
            Self::Local(_) => "local",
        }
    }
}

/// How the peer broke the session protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Bytes that are not a frame.
    #[error("a malformed frame: {0}")]
    Malformed(#[from] DecodeError),
    /// A transport whose first frame is not a Resume.
    #[error("a {kind} frame before the Resume")]
    ExpectedResume {
        /// The frame's kind.
        kind: &'static str,
    },
    /// A second Resume on one transport.
    #[error("a second Resume on one transport")]
    RepeatedResume,
    /// A Resume from before what the peer acknowledged, or past what was sent.
    #[error("Resume at {received}, outside {acknowledged}..={sent}")]
    ResumeOutOfRange {
        /// The peer's claim.
        received: u64,
        /// What it had acknowledged.
        acknowledged: u64,
        /// What was sent.
        sent: u64,
    },
    /// An acknowledgement that goes back, or past what was sent.
    #[error("acknowledgement of {received}, outside {acknowledged}..={sent}")]
    AckOutOfRange {
        /// The peer's claim.
        received: u64,
        /// What it had acknowledged.
        acknowledged: u64,
        /// What was sent.
        sent: u64,
    },
    /// An acknowledgement of a Finish at another length, or before this side finished.
    #[error("acknowledgement of a Finish at {received}; this stream's length is {length:?}")]
    UnexpectedFinishAck {
        /// The acknowledged length.
        received: u64,
        /// This stream's length, if it ended.
        length: Option<u64>,
    },
    /// Data that starts past what was received: bytes in between are missing.
    #[error("data at {offset}, past the {received} bytes received")]
    DataGap {
        /// Where the data starts.
        offset: u64,
        /// Bytes received.
        received: u64,
    },
    /// Data past the length the peer's Finish gave.
    #[error("data up to {end}, past the stream's length {length}")]
    DataBeyondFinish {
        /// Where the data ends.
        end: u64,
        /// The length in the Finish.
        length: u64,
    },
    /// Data past the window this side announced.
    #[error("data up to {end}, past the window's end {limit}")]
    WindowExceeded {
        /// Where the data ends.
        end: u64,
        /// Where the window ends.
        limit: u64,
    },
    /// A Finish that does not follow the last byte received.
    #[error("Finish at {length} after {received} bytes")]
    FinishMismatch {
        /// The length in the Finish.
        length: u64,
        /// Bytes received.
        received: u64,
    },
    /// A second Finish at another length.
    #[error("Finish at {length} after a Finish at {was}")]
    FinishChanged {
        /// The first length.
        was: u64,
        /// The new one.
        length: u64,
    },
}

impl ProtocolError {
    /// A stable label: the decode error's for a malformed frame, else `expected_resume`,
    /// `repeated_resume`, `resume_out_of_range`, `ack_out_of_range`, `unexpected_finish_ack`,
    /// `data_gap`, `data_beyond_finish`, `window_exceeded`, `finish_mismatch`, `finish_changed`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Malformed(error) => error.label(),
            Self::ExpectedResume { .. } => "expected_resume",
            Self::RepeatedResume => "repeated_resume",
            Self::ResumeOutOfRange { .. } => "resume_out_of_range",
            Self::AckOutOfRange { .. } => "ack_out_of_range",
            Self::UnexpectedFinishAck { .. } => "unexpected_finish_ack",
            Self::DataGap { .. } => "data_gap",
            Self::DataBeyondFinish { .. } => "data_beyond_finish",
            Self::WindowExceeded { .. } => "window_exceeded",
            Self::FinishMismatch { .. } => "finish_mismatch",
            Self::FinishChanged { .. } => "finish_changed",
        }
    }
}

/// Carries `local` over the transports handed in on `transports` until both directions have
/// ended and every byte is acknowledged.
///
/// Transports are taken one at a time: the first to start, then one after each
/// [`SessionEvent::TransportLost`]; one handed in while another is up replaces it (the peer
/// went over to a new circuit before this side noticed the old one fail). Closing the channel
/// is harmless while a transport is up, and ends the session when one is needed.
///
/// On an error `local` is dropped without being shut down. To reset a TCP client hard when the
/// peer's connection failed ([`SessionError::Aborted`]), pass `&mut stream` and set
/// `SO_LINGER` to 0 on the stream before dropping it.
pub async fn run<L, T>(
    local: L,
    transports: mpsc::Receiver<T>,
    events: mpsc::Sender<SessionEvent>,
    settings: SessionSettings,
) -> Result<SessionReport, SessionError>
where
    L: AsyncRead + AsyncWrite + Unpin + Send,
    T: AsyncRead + AsyncWrite + Unpin + Send,
{
    driver::Session::new(settings, events)
        .run(local, transports)
        .await
}
