//! [`ByteQueue`]: a run of stream bytes with a hard limit, the one shape of memory a session
//! holds (bytes kept for retransmission, bytes waiting for the local side).

use std::collections::VecDeque;

/// Bytes in stream order, never more than the limit, with the most it ever held.
#[derive(Debug)]
pub(super) struct ByteQueue {
    bytes: VecDeque<u8>,
    limit: usize,
    peak: usize,
}

impl ByteQueue {
    /// An empty queue that refuses to grow past `limit` bytes; it allocates as it fills.
    pub(super) fn new(limit: usize) -> Self {
        Self {
            bytes: VecDeque::new(),
            limit,
            peak: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.bytes.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// How many more bytes fit.
    pub(super) fn room(&self) -> usize {
        self.limit - self.bytes.len()
    }

    /// The most bytes the queue has held.
    pub(super) fn peak(&self) -> usize {
        self.peak
    }

    /// Appends `data`, which the caller has checked fits in [`ByteQueue::room`].
    ///
    /// Capacity grows by doubling, but never past the limit: the allocation is bounded too.
    pub(super) fn push(&mut self, data: &[u8]) {
        assert!(
            data.len() <= self.room(),
            "the caller keeps within the limit"
        );
        let needed = self.bytes.len() + data.len();
        if needed > self.bytes.capacity() {
            let target = (self.bytes.capacity() * 2).clamp(needed, self.limit);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend(data);
        self.peak = self.peak.max(self.bytes.len());
    }

    /// Drops the first `count` bytes.
    pub(super) fn consume(&mut self, count: usize) {
        self.bytes.drain(..count);
    }

    /// The first bytes, as one contiguous slice (empty only when the queue is).
    pub(super) fn front(&self) -> &[u8] {
        let (first, second) = self.bytes.as_slices();
        if first.is_empty() { second } else { first }
    }

    /// A copy of at most `max` bytes starting `skip` bytes in.
    pub(super) fn copy_from(&self, skip: usize, max: usize) -> Vec<u8> {
        let end = self.bytes.len().min(skip.saturating_add(max));
        let start = skip.min(end);
        let (first, second) = self.bytes.as_slices();
        let mut copy = Vec::with_capacity(end - start);
        copy.extend_from_slice(&first[start.min(first.len())..end.min(first.len())]);
        let (start, end) = (
            start.saturating_sub(first.len()),
            end.saturating_sub(first.len()),
        );
        copy.extend_from_slice(&second[start..end]);
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_length_and_allocation() {
        let mut queue = ByteQueue::new(1000);
        for round in 0..10u8 {
            queue.push(&[round; 300]);
            assert!(queue.len() <= 1000 && queue.bytes.capacity() <= 1000);
            if queue.room() < 300 {
                assert_eq!(queue.front()[0], queue.copy_from(0, 1)[0]);
                queue.consume(300);
            }
        }
        assert_eq!(queue.peak(), 900);
        assert_eq!(queue.copy_from(250, 100), [[8; 50], [9; 50]].concat());
        assert_eq!(queue.copy_from(550, 100), [9; 50]);
        assert!(queue.copy_from(900, 100).is_empty());
    }

    #[test]
    #[should_panic(expected = "within the limit")]
    fn refuses_to_grow_past_its_limit() {
        ByteQueue::new(10).push(&[0; 11]);
    }
}
