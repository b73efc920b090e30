//! Links: the QUIC connections between this hub and its direct peers.
//!
//! Beside the control plane, not inside it: [`endpoint`] accepts and dials links (TLS 1.3,
//! mutual authentication against *that* peer's pinned site root, the hub id in the certificate
//! checked against the peering file), [`peer_verifier`] says why a peer is refused,
//! [`keepalive`] turns QUIC keep-alives, idle timeouts and RTT estimates into [`LinkEvent`]s, and
//! [`frame`] bounds the frames a link carries. Measured latencies reach the advertisements later
//! through those events; nothing here reads or changes the topology.
//!
//! Several cables to one peer are several links: each is its own QUIC connection, named by
//! [`LinkKey`] (peer hub id, link number from the peering files).

pub mod endpoint;
pub mod frame;
pub mod keepalive;
pub mod peer_verifier;

#[cfg(test)]
mod tests;

use std::fmt;

use crate::hub_id::HubId;
use crate::link::LinkId;

pub use endpoint::{
    IncomingLink, Link, LinkCloser, LinkEndpoint, LinkError, LinkReceiver, LinkSender, LinkStreams,
};
pub use frame::{FrameError, MAX_FRAME_LEN};
pub use keepalive::{DownReason, LinkEvent, LinkEvents, LinkTiming, MAX_CIRCUITS_PER_LINK};
pub use peer_verifier::LinkRefusal;

/// The ALPN protocol every hub link speaks; a peer offering anything else is refused.
pub const LINK_ALPN: &[u8] = b"bunkeros-hub/1";

/// Which link: the peer hub and the link number both peering files give that cable.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkKey {
    /// The peer hub at the other end.
    pub peer: HubId,
    /// The link number.
    pub link: LinkId,
}

impl fmt::Display for LinkKey {
    /// `paris-1 #2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.peer, self.link)
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkKey({self})")
    }
}
