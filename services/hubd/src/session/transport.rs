//! [`Transport`]: one byte pipe between the two ends of a session (a circuit's TLS stream), seen
//! as frames in and frames out.
//!
//! [`Transport::step`] reads a frame or writes what is queued, whichever is ready first. Both
//! keep their progress in the transport, not in the future, so the session may drop a step at
//! any await (to deliver bytes locally, or to take a newer transport) and lose nothing.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use super::frame::{self, DecodeError, HEADER_LEN, MAX_FRAME_LEN, SessionFrame};

/// What one [`Transport::step`] came to.
#[derive(Debug)]
pub(super) enum TransportStep {
    /// A whole frame arrived.
    Frame(SessionFrame),
    /// Some queued bytes were written, or flushed.
    Wrote,
    /// The peer closed the transport between frames.
    Ended,
    /// Reading or writing failed, or the transport ended inside a frame.
    Failed(io::Error),
    /// The peer sent bytes that are not a frame.
    Malformed(DecodeError),
}

/// One transport of a session, numbered from 1 in the order the session took them.
pub(super) struct Transport<T> {
    pub(super) generation: u64,
    /// This side's Resume is queued.
    pub(super) resume_sent: bool,
    /// The peer's Resume arrived.
    pub(super) peer_resumed: bool,
    reader: ReadHalf<T>,
    writer: WriteHalf<T>,
    inbox: Inbox,
    outbox: Outbox,
    /// Writing failed; the frames that had already arrived are taken before this is reported.
    write_failed: Option<io::Error>,
}

/// Bytes read and not yet taken as frames: at most one frame's worth.
struct Inbox {
    bytes: Box<[u8]>,
    filled: usize,
}

/// Encoded frames not yet written.
struct Outbox {
    bytes: Vec<u8>,
    written: usize,
    unflushed: bool,
}

impl<T: AsyncRead + AsyncWrite> Transport<T> {
    pub(super) fn new(io: T, generation: u64) -> Self {
        let (reader, writer) = tokio::io::split(io);
        Self {
            generation,
            resume_sent: false,
            peer_resumed: false,
            reader,
            writer,
            inbox: Inbox {
                bytes: vec![0; MAX_FRAME_LEN].into_boxed_slice(),
                filled: 0,
            },
            outbox: Outbox {
                bytes: Vec::new(),
                written: 0,
                unflushed: false,
            },
            write_failed: None,
        }
    }

    /// Nothing waits to be written: the next frame may be queued.
    pub(super) fn outbox_is_empty(&self) -> bool {
        self.outbox.bytes.is_empty()
    }

    /// Everything queued is written and flushed.
    pub(super) fn is_idle(&self) -> bool {
        self.outbox_is_empty() && !self.outbox.unflushed
    }

    /// Queues `frame` after whatever is queued.
    pub(super) fn queue(&mut self, frame: &SessionFrame) {
        frame.encode_into(&mut self.outbox.bytes);
    }

    /// Reads a frame or writes queued bytes, whichever is ready first. Cancel safe.
    ///
    /// When writing fails, the frames the peer had already sent still count (its Abort, say,
    /// before it closed): they come first, then the failure.
    pub(super) async fn step(&mut self) -> TransportStep {
        if self.write_failed.is_some() {
            let arrived = self.inbox.next_frame(&mut self.reader);
            return match tokio::time::timeout(Duration::ZERO, arrived).await {
                Ok(Ok(Some(frame))) => TransportStep::Frame(frame),
                Ok(Err(ReadFailure::Malformed(error))) => TransportStep::Malformed(error),
                _ => TransportStep::Failed(self.write_failed.take().expect("checked above")),
            };
        }
        let idle = self.is_idle();
        let Self {
            reader,
            writer,
            inbox,
            outbox,
            write_failed,
            ..
        } = self;
        tokio::select! {
            read = inbox.next_frame(reader) => match read {
                Ok(Some(frame)) => TransportStep::Frame(frame),
                Ok(None) => TransportStep::Ended,
                Err(ReadFailure::Io(error)) => TransportStep::Failed(error),
                Err(ReadFailure::Malformed(error)) => TransportStep::Malformed(error),
            },
            wrote = outbox.write_some(writer), if !idle => match wrote {
                Ok(()) => TransportStep::Wrote,
                Err(error) => {
                    *write_failed = Some(error);
                    TransportStep::Wrote
                }
            },
        }
    }

    /// Writes out what is queued, says this side is done writing, then waits for the peer to do
    /// the same (so that closing never cuts the peer's last frames short), for at most `within`.
    pub(super) async fn close(mut self, within: Duration) {
        let closing = async {
            while !self.is_idle() {
                self.outbox.write_some(&mut self.writer).await?;
            }
            self.writer.shutdown().await?;
            // Whatever still arrives is read and dropped; the session is over.
            while let Ok(Some(_)) = self.inbox.next_frame(&mut self.reader).await {}
            Ok::<(), io::Error>(())
        };
        let _ = tokio::time::timeout(within, closing).await;
    }
}

enum ReadFailure {
    Io(io::Error),
    Malformed(DecodeError),
}

impl Inbox {
    /// The next whole frame; `None` when the peer closed between frames. Cancel safe: bytes are
    /// kept in the inbox as soon as they are read.
    async fn next_frame<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<SessionFrame>, ReadFailure> {
        loop {
            if let Some(frame) = self.take_frame()? {
                return Ok(Some(frame));
            }
            let read = reader
                .read(&mut self.bytes[self.filled..])
                .await
                .map_err(ReadFailure::Io)?;
            if read == 0 {
                return match self.filled {
                    0 => Ok(None),
                    _ => Err(ReadFailure::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the transport ended inside a frame",
                    ))),
                };
            }
            self.filled += read;
        }
    }

    /// The first frame of the inbox, if it is whole; its length is checked as soon as it is in.
    fn take_frame(&mut self) -> Result<Option<SessionFrame>, ReadFailure> {
        let Some(header) = self.bytes[..self.filled].first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = HEADER_LEN + frame::body_len(*header).map_err(ReadFailure::Malformed)?;
        if self.filled < len {
            return Ok(None);
        }
        let frame = SessionFrame::decode(&self.bytes[..len]).map_err(ReadFailure::Malformed)?;
        self.bytes.copy_within(len..self.filled, 0);
        self.filled -= len;
        Ok(Some(frame))
    }
}

impl Outbox {
    /// Writes some of what is queued, or flushes once all is written. Cancel safe.
    async fn write_some<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> io::Result<()> {
        if self.written < self.bytes.len() {
            let wrote = writer.write(&self.bytes[self.written..]).await?;
            if wrote == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += wrote;
            if self.written == self.bytes.len() {
                self.bytes.clear();
                self.written = 0;
                self.unflushed = true;
            }
        } else if self.unflushed {
            writer.flush().await?;
            self.unflushed = false;
        }
        Ok(())
    }
}
