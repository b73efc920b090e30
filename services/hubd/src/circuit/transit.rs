//! The byte relay of a transit hub: what comes from the hub before it on the route goes to the
//! hub after it, and back, unread (end-to-end TLS records after the reply frame).
//!
//! A direction that ends cleanly finishes the other side's stream in that direction (half
//! close). A direction that fails (a link lost, a stream reset or stopped) tears the whole
//! circuit down at once: both sending halves are reset and both receiving halves stopped, so the
//! source and the destination learn of a lost link within that link's loss-detection time
//! instead of waiting on a stream that will never carry anything again.

use std::sync::atomic::{AtomicU64, Ordering};

use quinn::{RecvStream, SendStream};

use super::stream::CIRCUIT_TORN_DOWN;

/// Largest chunk read at once from one side.
const CHUNK: usize = 64 * 1024;

/// Counts what transit forwarded; in tests, can also keep a copy of every byte.
#[derive(Debug, Default)]
pub struct TransitMeter {
    bytes: AtomicU64,
    #[cfg(test)]
    tap: std::sync::Mutex<Option<Tap>>,
}

/// A copy of every byte a transit hub forwarded, both directions in arrival order.
#[cfg(test)]
pub(crate) type Tap = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

impl TransitMeter {
    /// Bytes forwarded so far, both directions.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// From now on, keeps a copy of every byte forwarded.
    #[cfg(test)]
    pub(crate) fn tap(&self) -> Tap {
        let tap = Tap::default();
        *self.tap.lock().unwrap() = Some(std::sync::Arc::clone(&tap));
        tap
    }

    fn record(&self, chunk: &[u8]) {
        self.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        #[cfg(test)]
        if let Some(tap) = self.tap.lock().unwrap().as_ref() {
            tap.lock().unwrap().extend_from_slice(chunk);
        }
    }
}

/// One side of the relay: the stream to one neighbour on the route.
pub type Side = (SendStream, RecvStream);

/// How a relayed circuit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitEnd {
    /// Both directions ended cleanly.
    Finished,
    /// One side failed; the circuit was torn down both ways.
    TornDown,
}

/// Forwards between `upstream` (toward the source) and `downstream` (toward the destination)
/// until both directions end, or tears both down when either fails.
pub async fn forward(upstream: Side, downstream: Side, meter: &TransitMeter) -> TransitEnd {
    let (mut up_send, mut up_recv) = upstream;
    let (mut down_send, mut down_recv) = downstream;
    let both = tokio::try_join!(
        pipe(&mut up_recv, &mut down_send, meter),
        pipe(&mut down_recv, &mut up_send, meter),
    );
    match both {
        Ok(_) => TransitEnd::Finished,
        Err(()) => {
            // Halves already closed have nothing left to tell; the others fail at once.
            for send in [&mut up_send, &mut down_send] {
                let _ = send.reset(CIRCUIT_TORN_DOWN);
            }
            for recv in [&mut up_recv, &mut down_recv] {
                let _ = recv.stop(CIRCUIT_TORN_DOWN);
            }
            TransitEnd::TornDown
        }
    }
}

/// Copies one direction; `Err` when either stream fails.
async fn pipe(from: &mut RecvStream, to: &mut SendStream, meter: &TransitMeter) -> Result<(), ()> {
    loop {
        match from.read_chunk(CHUNK, true).await {
            Ok(Some(chunk)) => {
                meter.record(&chunk.bytes);
                to.write_chunk(chunk.bytes).await.map_err(|_| ())?;
            }
            Ok(None) => {
                return to.finish().map_err(|_| ());
            }
            Err(_) => return Err(()),
        }
    }
}
