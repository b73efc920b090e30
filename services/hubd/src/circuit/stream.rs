//! [`CircuitStream`]: one circuit's QUIC stream as one byte stream, what the end-to-end TLS
//! session runs over.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use quinn::{RecvStream, SendStream, VarInt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::counters::Active;

/// The QUIC application error code a circuit stream is reset or stopped with when the circuit
/// is torn down (a link lost on the way, a hub giving up).
pub const CIRCUIT_TORN_DOWN: VarInt = VarInt::from_u32(1);

/// The two halves of a bidirectional QUIC stream joined into one [`AsyncRead`] +
/// [`AsyncWrite`]. Shutting down writing finishes the sending half (a clean end); dropping it
/// without that ends it cleanly too, so use [`abort`](Self::abort) to tell the other end the
/// circuit failed. A circuit's stream counts as active in the relay's counters while it lives.
#[derive(Debug)]
pub struct CircuitStream {
    send: SendStream,
    recv: RecvStream,
    active: Option<Active>,
}

impl CircuitStream {
    /// Joins the two halves.
    pub fn new(send: SendStream, recv: RecvStream) -> Self {
        Self {
            send,
            recv,
            active: None,
        }
    }

    /// Counted as active until dropped.
    pub(crate) fn count_as(&mut self, active: Active) {
        self.active = Some(active);
    }

    /// The halves again.
    pub fn into_parts(self) -> (SendStream, RecvStream) {
        (self.send, self.recv)
    }

    /// Resets the sending half and stops the receiving half: the other end's reads and writes
    /// fail at once instead of seeing a clean end.
    pub fn abort(&mut self) {
        // Either half may already be closed; then there is nothing left to tell.
        let _ = self.send.reset(CIRCUIT_TORN_DOWN);
        let _ = self.recv.stop(CIRCUIT_TORN_DOWN);
    }
}

impl AsyncRead for CircuitStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.recv).poll_read(cx, buf)
    }
}

impl AsyncWrite for CircuitStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx)
    }
}
