//! Circuits: the hop-by-hop part of the data plane.
//!
//! A circuit carries one session from a source hub to a destination hub along the path the
//! source chose ([`crate::path_selection`]), through transit hubs, as one bidirectional QUIC
//! stream per link ([`crate::links::LinkStreams`]). Data flows one way through these modules:
//!
//! - [`route`]: the hubs of the path and the link between each pair, as the circuit names them;
//! - [`wire`]: the frames that open a circuit ([`CircuitOpen`]) and answer it ([`CircuitReply`]),
//!   bounded and decoded by hand, each refusal carrying a [`CircuitRefusal`] label;
//! - [`admission`]: what a hub checks before it carries a circuit, as destination or transit;
//! - [`receipt`]: every hub after the source signs a [`TransitReceipt`] (proof of transit), and
//!   the source verifies them against what the control plane vouches for ([`VouchedHubs`]);
//! - [`end_to_end`]: the TLS 1.3 session between source and destination that runs inside the
//!   circuit, authenticated with the hubs' own certificates: transit hubs forward ciphertext
//!   they cannot read;
//! - [`transit`]: the byte relay of a transit hub, which tears both sides down at once when
//!   either fails, so the ends learn of a lost link within its loss-detection time;
//! - [`relay`]: the [`Relay`] the daemon owns: it opens circuits, accepts them on every link up,
//!   and counts what it did; `inbound` handles each circuit that arrives on a link.

pub mod admission;
mod counters;
pub mod end_to_end;
mod inbound;
pub mod receipt;
pub mod refusal;
pub mod relay;
pub mod route;
pub mod stream;
pub mod transit;
pub mod vouched;
pub mod wire;

#[cfg(test)]
mod tests;

pub use counters::{CircuitCount, RelayCounters};
pub use receipt::{Hop, ReceiptError, TransitReceipt, verify_receipts};
pub use refusal::CircuitRefusal;
pub use relay::{CircuitError, InboundCircuit, OutboundCircuit, Relay, RelaySettings};
pub use route::{Route, RouteError};
pub use stream::CircuitStream;
pub use vouched::VouchedHubs;
pub use wire::{CircuitOpen, CircuitReply, DecodeError};
