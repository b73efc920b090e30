//! [`Inbound`]: the peer's stream, from the transports to the local side, and the
//! acknowledgements that tell the peer what it may forget and how much more it may send.

use std::time::{Duration, Instant};

use super::ProtocolError;
use super::byte_queue::ByteQueue;
use super::frame::SessionFrame;

/// The peer's stream on its way to the local side.
#[derive(Debug)]
pub(super) struct Inbound {
    /// Bytes `received - len..received`: taken from a transport, not yet written locally.
    undelivered: ByteQueue,
    /// Bytes of the peer's stream taken so far.
    received: u64,
    /// The peer's stream length, once its Finish arrived.
    length: Option<u64>,
    local_closed: bool,
    acknowledgement: Acknowledgement,
}

/// What the last acknowledgement said, and when the next one is due.
#[derive(Debug)]
struct Acknowledgement {
    /// `received` as last told to the peer.
    received: u64,
    /// `received + window` as last told to the peer.
    limit: u64,
    /// The peer has been told, on this transport, that its whole stream arrived.
    finished: bool,
    /// Since when the peer has not been told of some progress.
    stale_since: Option<Instant>,
    /// Progress that makes an acknowledgement due at once.
    after: u64,
    /// Delay after which any progress is acknowledged.
    interval: Duration,
}

impl Inbound {
    /// `window` bytes may wait for the local side; an acknowledgement is due after `ack_after`
    /// bytes of progress (or half the window, if smaller) or `ack_interval` after any.
    pub(super) fn new(window: usize, ack_after: usize, ack_interval: Duration) -> Self {
        let after = ack_after.min(window / 2).max(1);
        Self {
            undelivered: ByteQueue::new(window),
            received: 0,
            length: None,
            local_closed: false,
            acknowledgement: Acknowledgement {
                received: 0,
                limit: 0,
                finished: false,
                stale_since: None,
                after: after as u64,
                interval: ack_interval,
            },
        }
    }

    /// Bytes written to the local side.
    pub(super) fn delivered(&self) -> u64 {
        self.received - self.undelivered.len() as u64
    }

    /// The most bytes that waited for the local side at any time.
    pub(super) fn peak(&self) -> usize {
        self.undelivered.peak()
    }

    /// What the local side should be given next (empty when nothing waits).
    pub(super) fn to_deliver(&self) -> &[u8] {
        self.undelivered.front()
    }

    /// `count` bytes of [`Inbound::to_deliver`] were written to the local side.
    pub(super) fn delivered_locally(&mut self, count: usize, now: Instant) {
        self.undelivered.consume(count);
        self.progressed(now);
    }

    /// The peer's stream is whole and delivered: time to shut the local side's writing down.
    pub(super) fn should_close_local(&self) -> bool {
        !self.local_closed && self.undelivered.is_empty() && self.length == Some(self.received)
    }

    /// The local side's writing was shut down.
    pub(super) fn local_closed(&mut self) {
        self.local_closed = true;
    }

    /// The peer's stream was delivered whole, and the peer was told on this transport.
    pub(super) fn is_complete(&self) -> bool {
        self.local_closed && self.acknowledgement.finished
    }

    /// The peer's stream arrived whole and was delivered, and the local side's writing shut.
    pub(super) fn is_delivered_whole(&self) -> bool {
        self.local_closed
    }

    /// The peer's stream is whole here (not necessarily delivered yet).
    pub(super) fn is_whole(&self) -> bool {
        self.length == Some(self.received)
    }

    /// A data frame: the part not seen before is kept for the local side.
    pub(super) fn data(
        &mut self,
        offset: u64,
        bytes: &[u8],
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let end = offset.saturating_add(bytes.len() as u64);
        if offset > self.received {
            return Err(ProtocolError::DataGap {
                offset,
                received: self.received,
            });
        }
        if let Some(length) = self.length
            && end > length
        {
            return Err(ProtocolError::DataBeyondFinish { end, length });
        }
        if end <= self.received {
            return Ok(());
        }
        let fresh = &bytes[usize::try_from(self.received - offset).expect("within the frame")..];
        if fresh.len() > self.undelivered.room() {
            return Err(ProtocolError::WindowExceeded {
                end,
                limit: self.limit(),
            });
        }
        self.undelivered.push(fresh);
        self.received = end;
        self.progressed(now);
        Ok(())
    }

    /// The peer's Finish: it comes after the last byte, on whichever transport.
    pub(super) fn finish(&mut self, length: u64, now: Instant) -> Result<(), ProtocolError> {
        if let Some(known) = self.length
            && known != length
        {
            return Err(ProtocolError::FinishChanged { was: known, length });
        }
        if length != self.received {
            return Err(ProtocolError::FinishMismatch {
                length,
                received: self.received,
            });
        }
        self.length = Some(length);
        // Said again even if said before: the peer asks because it did not hear.
        self.acknowledgement.finished = false;
        self.progressed(now);
        Ok(())
    }

    /// The transport is gone: the next one starts with a Resume, and the peer hears again
    /// that its stream is whole.
    pub(super) fn transport_lost(&mut self) {
        self.acknowledgement.finished = false;
    }

    /// The Resume that opens a transport.
    pub(super) fn resume_frame(&mut self) -> SessionFrame {
        let (received, window) = self.acknowledge();
        SessionFrame::Resume { received, window }
    }

    /// Whether an acknowledgement should go out now.
    pub(super) fn ack_due(&self, now: Instant) -> bool {
        let said = &self.acknowledgement;
        (self.length == Some(self.received) && !said.finished)
            || self.received - said.received >= said.after
            || self.limit() - said.limit >= said.after
            || self.ack_deadline().is_some_and(|deadline| now >= deadline)
    }

    /// When an acknowledgement falls due if nothing else makes it due sooner.
    pub(super) fn ack_deadline(&self) -> Option<Instant> {
        let said = &self.acknowledgement;
        said.stale_since.map(|since| since + said.interval)
    }

    /// The acknowledgement of everything so far.
    pub(super) fn ack_frame(&mut self) -> SessionFrame {
        let finished = self.length == Some(self.received);
        let (received, window) = self.acknowledge();
        self.acknowledgement.finished = finished;
        SessionFrame::Ack {
            received,
            window,
            finished,
        }
    }

    /// How far the peer may send: as much as waits for the local side may grow to.
    fn limit(&self) -> u64 {
        self.received + self.undelivered.room() as u64
    }

    fn acknowledge(&mut self) -> (u64, u32) {
        let window = u32::try_from(self.undelivered.room()).unwrap_or(u32::MAX);
        let said = &mut self.acknowledgement;
        said.received = self.received;
        said.limit = self.received + u64::from(window);
        said.stale_since = None;
        (self.received, window)
    }

    fn progressed(&mut self, now: Instant) {
        self.acknowledgement.stale_since.get_or_insert(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_new_bytes_drops_duplicates_and_refuses_gaps() {
        let now = Instant::now();
        let mut inbound = Inbound::new(100, 64, Duration::from_millis(20));
        inbound.data(0, b"hello", now).unwrap();
        inbound.data(3, b"lo world", now).unwrap();
        inbound.data(0, b"he", now).unwrap();
        assert_eq!(inbound.to_deliver(), b"hello world");
        let err = inbound.data(12, b"!", now).unwrap_err();
        assert_eq!(err.label(), "data_gap");
        let err = inbound.data(11, &[0; 90], now).unwrap_err();
        assert_eq!(err.label(), "window_exceeded");
        inbound.delivered_locally(11, now);
        inbound.data(11, &[0; 90], now).unwrap();
        assert_eq!(inbound.delivered(), 11);
    }

    #[test]
    fn finish_must_follow_the_last_byte_and_never_change() {
        let now = Instant::now();
        let mut inbound = Inbound::new(100, 64, Duration::from_millis(20));
        inbound.data(0, b"abc", now).unwrap();
        assert_eq!(
            inbound.finish(4, now).unwrap_err().label(),
            "finish_mismatch"
        );
        assert_eq!(
            inbound.finish(2, now).unwrap_err().label(),
            "finish_mismatch"
        );
        inbound.finish(3, now).unwrap();
        assert_eq!(
            inbound.finish(5, now).unwrap_err().label(),
            "finish_changed"
        );
        let err = inbound.data(2, b"cd", now).unwrap_err();
        assert_eq!(err.label(), "data_beyond_finish");
        assert!(!inbound.should_close_local(), "bytes still wait");
        inbound.delivered_locally(3, now);
        assert!(inbound.should_close_local());
    }

    #[test]
    fn acknowledgements_fall_due_by_progress_time_and_finish() {
        let now = Instant::now();
        let interval = Duration::from_millis(20);
        let mut inbound = Inbound::new(1000, 64, interval);
        assert_eq!(
            inbound.resume_frame(),
            SessionFrame::Resume {
                received: 0,
                window: 1000
            }
        );
        assert!(!inbound.ack_due(now));
        inbound.data(0, &[0; 10], now).unwrap();
        assert!(!inbound.ack_due(now));
        assert!(
            inbound.ack_due(now + interval),
            "any progress, after the interval"
        );
        inbound.data(10, &[0; 60], now).unwrap();
        assert!(inbound.ack_due(now), "64 bytes of progress");
        assert_eq!(
            inbound.ack_frame(),
            SessionFrame::Ack {
                received: 70,
                window: 930,
                finished: false
            }
        );
        inbound.delivered_locally(70, now);
        assert!(inbound.ack_due(now), "the window opened by 70 bytes");
        inbound.ack_frame();
        inbound.finish(70, now).unwrap();
        assert!(inbound.ack_due(now), "the Finish is acknowledged at once");
        assert!(matches!(
            inbound.ack_frame(),
            SessionFrame::Ack { finished: true, .. }
        ));
        inbound.local_closed();
        assert!(inbound.is_complete());
        inbound.transport_lost();
        assert!(!inbound.is_complete() && inbound.ack_due(now));
    }
}
