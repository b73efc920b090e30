//! [`Session`]: the loop that moves bytes between the local side and the current transport.
//!
//! Everything happens in one task, one step at a time: read the local side, write to it, step
//! the transport (a frame in, or queued bytes out), take a transport handed in, or wake for an
//! acknowledgement or the resume deadline. Every step is cancel safe, so whichever is ready
//! first wins and the others lose nothing. Before each step the next frame is queued if the
//! transport has nothing queued, so at most one frame (two with an Abort) waits per transport.

use std::io;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::frame::{MAX_DATA_LEN, SessionFrame, bounded_reason};
use super::inbound::Inbound;
use super::outbound::Outbound;
use super::transport::{Transport, TransportStep};
use super::{ProtocolError, SessionError, SessionEvent, SessionReport, SessionSettings};

/// One session's state across its transports.
pub(super) struct Session {
    settings: SessionSettings,
    events: mpsc::Sender<SessionEvent>,
    outbound: Outbound,
    inbound: Inbound,
    /// Transports taken so far; the current one's number.
    generation: u64,
    retransmitted: u64,
    /// A transport must resume the session by then; none while one has.
    resume_by: Option<Instant>,
}

/// The step that came first.
enum Step<T> {
    LocalRead(io::Result<usize>),
    LocalWrite(io::Result<Delivery>),
    Transport(TransportStep),
    HandedIn(Option<T>),
    AckDue,
    ResumeTimeout,
}

/// What was done to the local side's writing.
enum Delivery {
    Wrote(usize),
    Flushed,
    Closed,
}

impl Session {
    pub(super) fn new(settings: SessionSettings, events: mpsc::Sender<SessionEvent>) -> Self {
        let window = settings.max_unacknowledged.max(1);
        Self {
            outbound: Outbound::new(window),
            inbound: Inbound::new(window, settings.ack_after, settings.ack_interval),
            settings,
            events,
            generation: 0,
            retransmitted: 0,
            resume_by: None,
        }
    }

    pub(super) async fn run<L, T>(
        mut self,
        local: L,
        mut transports: mpsc::Receiver<T>,
    ) -> Result<SessionReport, SessionError>
    where
        L: AsyncRead + AsyncWrite + Unpin + Send,
        T: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let (mut local_in, mut local_out) = tokio::io::split(local);
        let mut scratch = vec![0; MAX_DATA_LEN];
        let mut local_unflushed = false;
        let mut transport: Option<Transport<T>> = None;
        let mut handing_in = true;
        // The peer closed its last transport between frames: it ended the session.
        let mut peer_closed = false;
        self.resume_by = Some(Instant::now() + self.settings.resume_within);
        loop {
            if transport.is_none() && peer_closed && self.is_settled() && !local_unflushed {
                // The peer closed its last transport once it had everything; so have we now.
                return Ok(self.report());
            }
            if let Some(current) = &mut transport {
                self.queue_next_frame(current, Instant::now());
                if self.is_complete() && current.is_idle() && !local_unflushed {
                    let current = transport.take().expect("checked above");
                    current.close(self.settings.resume_within).await;
                    return Ok(self.report());
                }
            }
            let read_room = self.outbound.room().min(scratch.len());
            let to_deliver = self.inbound.to_deliver();
            let close_local = self.inbound.should_close_local();
            let ack_at = transport
                .as_ref()
                .filter(|current| current.peer_resumed && current.outbox_is_empty())
                .and(self.inbound.ack_deadline());
            let resume_by = self.resume_by;
            let step = tokio::select! {
                read = local_in.read(&mut scratch[..read_room]), if read_room > 0 => {
                    Step::LocalRead(read)
                }
                wrote = deliver(&mut local_out, to_deliver, local_unflushed),
                    if !to_deliver.is_empty() || local_unflushed || close_local => {
                    Step::LocalWrite(wrote)
                }
                step = step_transport(&mut transport) => Step::Transport(step),
                handed = transports.recv(), if handing_in => Step::HandedIn(handed),
                () = sleep_until(ack_at), if ack_at.is_some() => Step::AckDue,
                () = sleep_until(resume_by), if resume_by.is_some() => Step::ResumeTimeout,
            };
            let now = Instant::now();
            match step {
                Step::LocalRead(Ok(0)) => self.outbound.local_ended(),
                Step::LocalRead(Ok(read)) => self.outbound.take(&scratch[..read]),
                Step::LocalWrite(Ok(Delivery::Wrote(wrote))) => {
                    self.inbound.delivered_locally(wrote, now);
                    local_unflushed = true;
                }
                Step::LocalWrite(Ok(Delivery::Flushed)) => local_unflushed = false,
                Step::LocalWrite(Ok(Delivery::Closed)) => self.inbound.local_closed(),
                Step::LocalRead(Err(error)) | Step::LocalWrite(Err(error)) => {
                    // The peer must hear of it: over the next transport if none is up.
                    if transport.is_none() && handing_in {
                        transport = self.next_transport(&mut transports).await;
                    }
                    return Err(self.fail(transport, SessionError::Local(error)).await);
                }
                Step::Transport(TransportStep::Frame(frame)) => {
                    let current = transport.as_mut().expect("only a transport steps");
                    if let Err(error) = self.take_frame(frame, current, now) {
                        return Err(self.fail(transport, error).await);
                    }
                }
                Step::Transport(TransportStep::Wrote) | Step::AckDue => {}
                Step::Transport(TransportStep::Ended) if self.peer_may_close() => {
                    transport = None;
                    peer_closed = true;
                }
                Step::Transport(TransportStep::Ended) => {
                    self.lose(&mut transport, "the transport ended".to_owned(), now);
                    if !handing_in {
                        return self.without_transport();
                    }
                }
                Step::Transport(TransportStep::Failed(error)) => {
                    self.lose(&mut transport, error.to_string(), now);
                    if !handing_in {
                        return self.without_transport();
                    }
                }
                Step::Transport(TransportStep::Malformed(error)) => {
                    let error = SessionError::Protocol(ProtocolError::Malformed(error));
                    return Err(self.fail(transport, error).await);
                }
                Step::HandedIn(Some(io)) => self.take_transport(&mut transport, io, now),
                Step::HandedIn(None) => {
                    handing_in = false;
                    if transport.is_none() {
                        return self.without_transport();
                    }
                }
                Step::ResumeTimeout => return self.without_transport(),
            }
        }
    }

    /// Both directions ended, and the peer knows.
    fn is_complete(&self) -> bool {
        self.outbound.is_complete() && self.inbound.is_complete()
    }

    /// Every byte arrived both ways: the peer acknowledged this side's whole stream, and the
    /// peer's whole stream was delivered to the local side. Only whether the peer heard the last
    /// acknowledgement is unknown; the local connection lost nothing.
    fn is_settled(&self) -> bool {
        self.outbound.is_complete() && self.inbound.is_delivered_whole()
    }

    /// The peer acknowledged this side's whole stream and sent its own whole: a transport it
    /// closes between frames then means it ended the session well (it closes only once it heard
    /// this side's last acknowledgement, on this transport or an earlier one), not that the
    /// transport failed. A circuit that breaks ends its TLS stream without a close_notify,
    /// which is a failure, not an end.
    fn peer_may_close(&self) -> bool {
        self.outbound.is_complete() && self.inbound.is_whole()
    }

    /// Queues the frame due next if the transport has nothing queued: this side's Resume first,
    /// then (once the peer's Resume is in) an acknowledgement when due, else data or the Finish.
    fn queue_next_frame<T: AsyncRead + AsyncWrite>(
        &mut self,
        current: &mut Transport<T>,
        now: Instant,
    ) {
        if !current.outbox_is_empty() {
            return;
        }
        let frame = if !current.resume_sent {
            current.resume_sent = true;
            Some(self.inbound.resume_frame())
        } else if !current.peer_resumed {
            None
        } else if self.inbound.ack_due(now) {
            Some(self.inbound.ack_frame())
        } else {
            self.outbound.next_frame()
        };
        if let Some(frame) = frame {
            current.queue(&frame);
        }
    }

    fn take_frame<T>(
        &mut self,
        frame: SessionFrame,
        current: &mut Transport<T>,
        now: Instant,
    ) -> Result<(), SessionError> {
        match frame {
            SessionFrame::Abort { reason } => return Err(SessionError::Aborted { reason }),
            SessionFrame::Resume { received, window } if !current.peer_resumed => {
                let again = self.outbound.resume(received, window)?;
                current.peer_resumed = true;
                self.resume_by = None;
                self.retransmitted += again;
                if current.generation > 1 {
                    self.report_event(SessionEvent::Resumed {
                        generation: current.generation,
                        retransmitted: again,
                    });
                }
            }
            other if !current.peer_resumed => {
                let kind = other.kind();
                return Err(ProtocolError::ExpectedResume { kind }.into());
            }
            SessionFrame::Resume { .. } => return Err(ProtocolError::RepeatedResume.into()),
            SessionFrame::Data { offset, bytes } => self.inbound.data(offset, &bytes, now)?,
            SessionFrame::Ack {
                received,
                window,
                finished,
            } => self.outbound.acknowledged(received, window, finished)?,
            SessionFrame::Finish { length } => self.inbound.finish(length, now)?,
        }
        Ok(())
    }

    /// The transport failed or ended early: the owner hears of it, and another must resume
    /// the session in time (counted from the first loss since a transport last resumed it).
    fn lose<T>(&mut self, transport: &mut Option<Transport<T>>, reason: String, now: Instant) {
        if let Some(lost) = transport.take() {
            tracing::debug!(generation = lost.generation, %reason, "session transport lost");
            self.report_event(SessionEvent::TransportLost {
                reason,
                generation: lost.generation,
            });
        }
        self.outbound.transport_lost();
        self.inbound.transport_lost();
        self.resume_by
            .get_or_insert(now + self.settings.resume_within);
    }

    /// A transport handed in: the next to carry the session, replacing any current one.
    fn take_transport<T: AsyncRead + AsyncWrite>(
        &mut self,
        transport: &mut Option<Transport<T>>,
        io: T,
        now: Instant,
    ) {
        self.lose(transport, "replaced by a newer transport".to_owned(), now);
        self.generation += 1;
        *transport = Some(Transport::new(io, self.generation));
    }

    /// The next transport handed in, if one is within the resume time.
    async fn next_transport<T: AsyncRead + AsyncWrite>(
        &mut self,
        transports: &mut mpsc::Receiver<T>,
    ) -> Option<Transport<T>> {
        let within = self.settings.resume_within;
        let io = tokio::time::timeout(within, transports.recv())
            .await
            .ok()??;
        self.generation += 1;
        Some(Transport::new(io, self.generation))
    }

    /// Ends the session with `error`, telling the peer why unless the peer ended it.
    async fn fail<T: AsyncRead + AsyncWrite>(
        &self,
        transport: Option<Transport<T>>,
        error: SessionError,
    ) -> SessionError {
        if let Some(mut current) = transport
            && !matches!(error, SessionError::Aborted { .. })
        {
            let reason = bounded_reason(&error.to_string());
            current.queue(&SessionFrame::Abort { reason });
            current.close(self.settings.resume_within).await;
        }
        error
    }

    /// No transport is left, nor will one come in time: a settled session ends well (the peer
    /// ended first, or never heard this side's last acknowledgement and gave up on it; either
    /// way every byte arrived), any other fails.
    fn without_transport(&self) -> Result<SessionReport, SessionError> {
        if self.is_settled() {
            tracing::debug!("session settled; no transport came to hear its last acknowledgement");
            Ok(self.report())
        } else {
            Err(SessionError::NoTransport {
                waited: self.settings.resume_within,
            })
        }
    }

    /// Never waits: a full or closed channel loses the event.
    fn report_event(&self, event: SessionEvent) {
        let _ = self.events.try_send(event);
    }

    fn report(&self) -> SessionReport {
        SessionReport {
            sent: self.outbound.taken(),
            received: self.inbound.delivered(),
            transports: self.generation,
            retransmitted: self.retransmitted,
            peak_unacknowledged: self.outbound.peak(),
            peak_undelivered: self.inbound.peak(),
        }
    }
}

/// Writes some of `bytes` to the local side; with none to write, flushes, then shuts its writing
/// down (the caller asks for that only once the peer's stream is whole).
async fn deliver<W: AsyncWrite + Unpin>(
    local: &mut W,
    bytes: &[u8],
    unflushed: bool,
) -> io::Result<Delivery> {
    if !bytes.is_empty() {
        match local.write(bytes).await? {
            0 => Err(io::ErrorKind::WriteZero.into()),
            wrote => Ok(Delivery::Wrote(wrote)),
        }
    } else if unflushed {
        local.flush().await?;
        Ok(Delivery::Flushed)
    } else {
        local.shutdown().await?;
        Ok(Delivery::Closed)
    }
}

async fn step_transport<T: AsyncRead + AsyncWrite>(
    transport: &mut Option<Transport<T>>,
) -> TransportStep {
    match transport {
        Some(current) => current.step().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`; never returns without one (its branch is then disabled anyway).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
