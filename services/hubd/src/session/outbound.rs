//! [`Outbound`]: this side's stream, from the local side to the peer. Bytes are kept from the
//! moment they are read until the peer acknowledges them, so any transport can resend them.

use super::ProtocolError;
use super::byte_queue::ByteQueue;
use super::frame::{MAX_DATA_LEN, SessionFrame};

/// The local side's stream on its way to the peer.
#[derive(Debug)]
pub(super) struct Outbound {
    /// Bytes `acknowledged..taken`: read from the local side, not yet acknowledged.
    unacknowledged: ByteQueue,
    /// Bytes the peer has taken; they are gone from here.
    acknowledged: u64,
    /// Where the next data frame on this transport starts.
    next: u64,
    /// The furthest any data frame has reached, on any transport.
    sent: u64,
    /// The peer takes nothing at or past this offset (its memory bound) until it says so.
    peer_limit: u64,
    /// The stream's length, once the local side has ended.
    length: Option<u64>,
    finish_sent_here: bool,
    finish_acknowledged: bool,
}

impl Outbound {
    pub(super) fn new(max_unacknowledged: usize) -> Self {
        Self {
            unacknowledged: ByteQueue::new(max_unacknowledged),
            acknowledged: 0,
            next: 0,
            sent: 0,
            peer_limit: 0,
            length: None,
            finish_sent_here: false,
            finish_acknowledged: false,
        }
    }

    /// Everything read from the local side.
    pub(super) fn taken(&self) -> u64 {
        self.acknowledged + self.unacknowledged.len() as u64
    }

    /// The most bytes kept for retransmission at any time.
    pub(super) fn peak(&self) -> usize {
        self.unacknowledged.peak()
    }

    /// How many bytes may be read from the local side now: none once it has ended, none while
    /// the retransmission buffer is full (backpressure).
    pub(super) fn room(&self) -> usize {
        if self.length.is_some() {
            0
        } else {
            self.unacknowledged.room()
        }
    }

    /// Bytes read from the local side; at most [`Outbound::room`].
    pub(super) fn take(&mut self, bytes: &[u8]) {
        self.unacknowledged.push(bytes);
    }

    /// The local side ended: the stream is as long as what was taken.
    pub(super) fn local_ended(&mut self) {
        self.length = Some(self.taken());
    }

    /// The stream is whole at the peer and the peer knows it ended.
    pub(super) fn is_complete(&self) -> bool {
        self.finish_acknowledged
    }

    /// The transport carrying the stream is gone; whatever was in flight is resent after the
    /// next [`SessionFrame::Resume`].
    pub(super) fn transport_lost(&mut self) {
        self.finish_sent_here = false;
        self.peer_limit = self.acknowledged;
    }

    /// The peer's Resume on a new transport: drops what it has, resends from there. Returns how
    /// many bytes will be sent again.
    pub(super) fn resume(&mut self, received: u64, window: u32) -> Result<u64, ProtocolError> {
        self.check_received(received)
            .map_err(|(acknowledged, sent)| ProtocolError::ResumeOutOfRange {
                received,
                acknowledged,
                sent,
            })?;
        self.acknowledge(received, window);
        self.next = received;
        Ok(self.sent - received)
    }

    /// The peer's acknowledgement.
    pub(super) fn acknowledged(
        &mut self,
        received: u64,
        window: u32,
        finished: bool,
    ) -> Result<(), ProtocolError> {
        self.check_received(received)
            .map_err(|(acknowledged, sent)| ProtocolError::AckOutOfRange {
                received,
                acknowledged,
                sent,
            })?;
        if finished && self.length != Some(received) {
            return Err(ProtocolError::UnexpectedFinishAck {
                received,
                length: self.length,
            });
        }
        self.acknowledge(received, window);
        self.finish_acknowledged |= finished;
        Ok(())
    }

    /// The next data frame, or the Finish once every byte has been sent on this transport; none
    /// while the peer's window is full or nothing is left to send.
    pub(super) fn next_frame(&mut self) -> Option<SessionFrame> {
        let end = self
            .taken()
            .min(self.peer_limit)
            .min(self.next + MAX_DATA_LEN as u64);
        if self.next < end {
            let skip = usize::try_from(self.next - self.acknowledged)
                .expect("the retransmission buffer is bounded by a usize");
            let len = usize::try_from(end - self.next).expect("at most MAX_DATA_LEN");
            let frame = SessionFrame::Data {
                offset: self.next,
                bytes: self.unacknowledged.copy_from(skip, len),
            };
            self.next = end;
            self.sent = self.sent.max(end);
            return Some(frame);
        }
        match self.length {
            Some(length)
                if self.next == length && !self.finish_sent_here && !self.finish_acknowledged =>
            {
                self.finish_sent_here = true;
                Some(SessionFrame::Finish { length })
            }
            _ => None,
        }
    }

    /// `received` is within what the peer can have: from what it acknowledged to what was sent.
    fn check_received(&self, received: u64) -> Result<(), (u64, u64)> {
        if (self.acknowledged..=self.sent).contains(&received) {
            Ok(())
        } else {
            Err((self.acknowledged, self.sent))
        }
    }

    fn acknowledge(&mut self, received: u64, window: u32) {
        let newly = usize::try_from(received - self.acknowledged)
            .expect("acknowledged bytes were in the buffer");
        self.unacknowledged.consume(newly);
        self.acknowledged = received;
        // After a Resume, the peer may acknowledge bytes it had before: never resend those.
        self.next = self.next.max(received);
        self.peer_limit = received.saturating_add(u64::from(window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(frame: Option<SessionFrame>) -> (u64, usize) {
        match frame {
            Some(SessionFrame::Data { offset, bytes }) => (offset, bytes.len()),
            other => panic!("expected data, got {other:?}"),
        }
    }

    #[test]
    fn sends_within_the_peer_window_and_resends_after_a_resume() {
        let mut outbound = Outbound::new(100_000);
        outbound.take(&[1; 40_000]);
        assert_eq!(
            outbound.next_frame(),
            None,
            "nothing before the peer's Resume"
        );
        assert_eq!(outbound.resume(0, 20_000), Ok(0));
        assert_eq!(data(outbound.next_frame()), (0, MAX_DATA_LEN));
        assert_eq!(data(outbound.next_frame()), (16_384, 20_000 - 16_384));
        assert_eq!(outbound.next_frame(), None, "the window is full");
        outbound.acknowledged(10_000, 20_000, false).unwrap();
        assert_eq!(data(outbound.next_frame()), (20_000, 10_000));
        outbound.transport_lost();
        assert_eq!(outbound.next_frame(), None);
        assert_eq!(outbound.resume(15_000, 50_000), Ok(15_000));
        assert_eq!(data(outbound.next_frame()), (15_000, MAX_DATA_LEN));
        assert_eq!(outbound.room(), 100_000 - 25_000);
    }

    #[test]
    fn an_acknowledgement_past_what_was_resent_moves_the_next_frame_on() {
        let mut outbound = Outbound::new(1000);
        outbound.take(&[1; 10]);
        outbound.resume(0, 1000).unwrap();
        assert_eq!(data(outbound.next_frame()), (0, 10));
        outbound.transport_lost();
        outbound.resume(4, 1000).unwrap();
        outbound.acknowledged(10, 1000, false).unwrap();
        assert_eq!(outbound.next_frame(), None, "nothing left to send");
        outbound.take(&[2; 5]);
        assert_eq!(data(outbound.next_frame()), (10, 5));
    }

    #[test]
    fn refuses_acknowledgements_outside_what_was_sent() {
        let mut outbound = Outbound::new(1000);
        outbound.take(&[1; 500]);
        outbound.resume(0, 300).unwrap();
        data(outbound.next_frame());
        let err = outbound.acknowledged(301, 0, false).unwrap_err();
        assert_eq!(err.label(), "ack_out_of_range", "past what was sent");
        outbound.acknowledged(200, 300, false).unwrap();
        assert_eq!(
            outbound.acknowledged(100, 0, false).unwrap_err().label(),
            "ack_out_of_range"
        );
        assert_eq!(
            outbound.resume(199, 0).unwrap_err().label(),
            "resume_out_of_range"
        );
        assert_eq!(
            outbound.acknowledged(300, 0, true).unwrap_err().label(),
            "unexpected_finish_ack"
        );
    }

    #[test]
    fn finish_follows_the_last_byte_once_per_transport_until_acknowledged() {
        let mut outbound = Outbound::new(1000);
        outbound.take(b"abc");
        outbound.local_ended();
        assert_eq!(outbound.room(), 0);
        outbound.resume(0, 1000).unwrap();
        assert_eq!(data(outbound.next_frame()), (0, 3));
        assert_eq!(
            outbound.next_frame(),
            Some(SessionFrame::Finish { length: 3 })
        );
        assert_eq!(outbound.next_frame(), None);
        outbound.transport_lost();
        outbound.resume(3, 1000).unwrap();
        assert_eq!(
            outbound.next_frame(),
            Some(SessionFrame::Finish { length: 3 })
        );
        outbound.acknowledged(3, 1000, true).unwrap();
        assert!(outbound.is_complete());
        outbound.transport_lost();
        outbound.resume(3, 1000).unwrap();
        assert_eq!(outbound.next_frame(), None);
    }
}
