//! Keep-alives, loss detection and RTT: what each link reports to the rest of hubd.
//!
//! QUIC does the measuring. A keep-alive is sent whenever a link has been quiet for
//! [`LinkTiming::keep_alive`], so an idle link still gets RTT samples and acknowledgements; a
//! link on which nothing at all has arrived for [`LinkTiming::idle_timeout`] is dead, and QUIC
//! closes it. Each link has a monitor task that turns this into [`LinkEvent`]s: `Up` once,
//! `Rtt` every [`LinkTiming::rtt_report`] from QUIC's smoothed RTT estimate, `Down` once with
//! the reason. The failover goal is a loss seen within 300 ms, hence the defaults.
//!
//! quinn never times out sooner than three probe timeouts, 3 × (RTT + 4 × RTT variation + 25 ms),
//! so on slower paths the effective bound is larger than configured.

use std::sync::Arc;
use std::time::Duration;

use quinn::{ConnectionError, IdleTimeout, TransportConfig, VarInt};
use tokio::sync::mpsc;

use super::LinkKey;
use crate::link::Latency;

/// Circuits (data-plane streams) one link carries at once in each direction; a peer opening
/// more waits (QUIC flow control), it cannot exhaust this hub.
pub const MAX_CIRCUITS_PER_LINK: u32 = 4096;

/// Bytes of one circuit a link takes ahead of its reader (QUIC stream flow control): as much as
/// a session keeps unacknowledged ([`crate::session::SessionSettings`], 4 MiB), so that the
/// session's own window, not QUIC's, is what limits a long path (4 MiB is 330 Mbit/s at 100 ms).
pub const CIRCUIT_WINDOW: u32 = 4 << 20;
/// Bytes of all circuits together a link takes ahead of their readers, and sends ahead of the
/// peer's acknowledgements: the memory one link may hold each way. Circuits whose readers stall
/// (a transit hub's next link is slow) hold their share; 16 full ones are needed to stall the
/// link.
pub const LINK_WINDOW: u32 = 64 << 20;

/// How a link is kept alive and when it is declared down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkTiming {
    /// Send a keep-alive after this long without sending anything.
    pub keep_alive: Duration,
    /// Declare the link down after this long without receiving anything.
    pub idle_timeout: Duration,
    /// Report the RTT this often.
    pub rtt_report: Duration,
    /// Give up on a handshake (TLS and the link hello) after this long.
    pub handshake_timeout: Duration,
}

impl Default for LinkTiming {
    /// Keep-alive every 50 ms, down after 250 ms of silence (within the 300 ms failover goal),
    /// RTT reported every second, handshakes abandoned after 5 s.
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_millis(50),
            idle_timeout: Duration::from_millis(250),
            rtt_report: Duration::from_secs(1),
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

impl LinkTiming {
    /// quinn's transport configuration for these timings.
    pub(crate) fn transport(&self) -> Arc<TransportConfig> {
        let idle = VarInt::try_from(self.idle_timeout.as_millis())
            .map(IdleTimeout::from)
            .unwrap_or_else(|_| IdleTimeout::from(VarInt::MAX));
        let mut transport = TransportConfig::default();
        transport
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(Some(idle))
            // One control stream (frames), then one bidirectional stream per circuit of the data
            // plane in each direction; no unidirectional streams.
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .max_concurrent_bidi_streams(VarInt::from_u32(MAX_CIRCUITS_PER_LINK + 1))
            // Bounded: quinn's default connection window is unlimited (up to 4,097 streams of
            // 1.25 MB each here, about 5 GB a peer could make this hub hold).
            .stream_receive_window(VarInt::from_u32(CIRCUIT_WINDOW))
            .receive_window(VarInt::from_u32(LINK_WINDOW))
            .send_window(u64::from(LINK_WINDOW));
        Arc::new(transport)
    }
}

/// Why a link went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// Nothing arrived within the idle timeout: cable cut, peer dead or unreachable.
    TimedOut,
    /// The peer closed the link (its reason, as it sent it).
    ClosedByPeer(String),
    /// This hub closed it.
    ClosedLocally,
    /// The peer no longer knows the connection (it restarted).
    Reset,
    /// A protocol or transport error.
    Failed(String),
}

impl DownReason {
    /// A short label for the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TimedOut => "timed_out",
            Self::ClosedByPeer(_) => "closed_by_peer",
            Self::ClosedLocally => "closed_locally",
            Self::Reset => "reset",
            Self::Failed(_) => "failed",
        }
    }

    fn of(error: &ConnectionError) -> Self {
        match error {
            ConnectionError::TimedOut => Self::TimedOut,
            ConnectionError::ApplicationClosed(close) => {
                Self::ClosedByPeer(String::from_utf8_lossy(&close.reason).into_owned())
            }
            ConnectionError::ConnectionClosed(close) => {
                Self::ClosedByPeer(String::from_utf8_lossy(&close.reason).into_owned())
            }
            ConnectionError::LocallyClosed => Self::ClosedLocally,
            ConnectionError::Reset => Self::Reset,
            other => Self::Failed(other.to_string()),
        }
    }
}

/// What happened to a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The link is authenticated and carries frames; `rtt` is QUIC's first estimate.
    Up {
        /// The link.
        key: LinkKey,
        /// Round-trip time.
        rtt: Duration,
    },
    /// A fresh RTT estimate for a link that is up.
    Rtt {
        /// The link.
        key: LinkKey,
        /// Round-trip time (QUIC's smoothed estimate).
        rtt: Duration,
    },
    /// The link is gone; no further event follows for this connection.
    Down {
        /// The link.
        key: LinkKey,
        /// Why.
        reason: DownReason,
    },
}

impl LinkEvent {
    /// The link the event is about.
    pub fn key(&self) -> &LinkKey {
        match self {
            Self::Up { key, .. } | Self::Rtt { key, .. } | Self::Down { key, .. } => key,
        }
    }

    /// The one-way latency an advertisement carries for an RTT: half of it, at least 1 µs.
    pub fn latency_of(rtt: Duration) -> Latency {
        let micros = u64::try_from(rtt.as_micros() / 2).unwrap_or(u64::MAX);
        Latency::from_micros(micros.max(1))
    }
}

/// How many RTT reports may wait unread before new ones are dropped (`Up` and `Down` never are).
const EVENT_QUEUE: usize = 1024;

/// The stream of [`LinkEvent`]s of every link of one endpoint.
#[derive(Debug)]
pub struct LinkEvents(mpsc::Receiver<LinkEvent>);

impl LinkEvents {
    /// The next event; `None` once the endpoint and all its links are gone.
    pub async fn next(&mut self) -> Option<LinkEvent> {
        self.0.recv().await
    }

    /// The events of several endpoints (a hub listening on several addresses) as one stream,
    /// each endpoint's in order. Must be called inside a tokio runtime.
    pub fn merge(all: Vec<LinkEvents>) -> LinkEvents {
        let (sender, merged) = mpsc::channel(EVENT_QUEUE);
        for mut events in all {
            let sender = sender.clone();
            tokio::spawn(async move {
                while let Some(event) = events.next().await {
                    if sender.send(event).await.is_err() {
                        return;
                    }
                }
            });
        }
        LinkEvents(merged)
    }
}

/// The sending side, held by the endpoint and each link's monitor.
#[derive(Debug, Clone)]
pub(crate) struct EventSink(mpsc::Sender<LinkEvent>);

pub(crate) fn channel() -> (EventSink, LinkEvents) {
    let (sender, receiver) = mpsc::channel(EVENT_QUEUE);
    (EventSink(sender), LinkEvents(receiver))
}

/// Watches one link: `Up` now, `Rtt` every `timing.rtt_report`, `Down` when QUIC closes it.
pub(crate) fn monitor(
    connection: quinn::Connection,
    key: LinkKey,
    timing: LinkTiming,
    events: EventSink,
) {
    tokio::spawn(async move {
        let up = LinkEvent::Up {
            key: key.clone(),
            rtt: connection.rtt(),
        };
        // A receiver that is gone means no one listens; the link itself keeps working.
        let _ = events.0.send(up).await;
        let mut reports = tokio::time::interval(timing.rtt_report);
        reports.tick().await;
        let error = loop {
            tokio::select! {
                error = connection.closed() => break error,
                _ = reports.tick() => {
                    let rtt = LinkEvent::Rtt { key: key.clone(), rtt: connection.rtt() };
                    let _ = events.0.try_send(rtt);
                }
            }
        };
        let reason = DownReason::of(&error);
        tracing::info!(link = %key, reason = reason.label(), "link down: {error}");
        let _ = events.0.send(LinkEvent::Down { key, reason }).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_timing_detects_a_loss_within_300_ms() {
        let timing = LinkTiming::default();
        assert!(timing.keep_alive < timing.idle_timeout);
        assert!(timing.idle_timeout <= Duration::from_millis(300));
    }

    #[test]
    fn latency_is_half_the_rtt_and_never_zero() {
        assert_eq!(
            LinkEvent::latency_of(Duration::from_millis(80)),
            Latency::from_millis(40)
        );
        assert_eq!(
            LinkEvent::latency_of(Duration::ZERO),
            Latency::from_micros(1)
        );
    }
}
