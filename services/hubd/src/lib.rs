//! `hubd`: secure hub routing between BunkerOS sites.
//!
//! The control plane, in the order data flows (advertisements → topology → paths):
//! [`advertisement`] (signed link-state advertisements and their wire encoding) →
//! [`trust`] (who is trusted: pinned peers, then hubs vouched for hop by hop; whether an
//! advertisement is accepted) → [`topology`] (the link-state database and the graph of
//! bidirectional links) → [`path_selection`] (the fastest path that follows a
//! [`path_policy::PathPolicy`], and a link-disjoint backup, or a refusal that says why).
//!
//! Beside them, the vocabulary: [`hub_id`], [`jurisdiction`] (ISO 3166-1 alpha-2), [`link`]
//! (link ids, latencies), [`hub_certificate`] (what a hub certificate chain proves), and the
//! bilateral agreements: [`peering`] (one per peer hub) with the [`grant`] each peer receives.
//! [`config`] reads `hubd.toml` and the peering files. None of these modules touches a socket,
//! D-Bus or the clock: the daemon's edges pass time and bytes in.
//!
//! Apart from the control plane, [`links`]: the QUIC connections to the direct peers (mutual TLS
//! against each peer's pinned root, keep-alives, RTT, loss detection), reported as events; and
//! between links and the topology, [`flooding`]: this hub's own advertisement originated from its
//! links, and every advertisement admitted, stored and forwarded over the links.
//! The data plane's hop-by-hop part, [`circuit`], carries a session along the path its source
//! chose, through transit hubs that forward ciphertext and each sign a receipt.
//! In the data plane, [`session`] keeps a client's TCP connection whole as its circuits change.
//! [`ip_routes`] says which hub an IP packet goes to, from the prefixes trusted hubs announce;
//! [`ip_plane`] carries ordinary IP traffic between the hubs' TUN interfaces over circuits.

pub mod advertisement;
pub mod backoff;
pub mod circuit;
pub mod config;
pub mod daemon;
pub mod flooding;
pub mod forwarding;
pub mod grant;
pub mod hub1;
pub mod hub_certificate;
pub mod hub_id;
pub mod hub_identity;
pub mod ip_plane;
pub mod ip_routes;
pub mod jurisdiction;
pub mod link;
pub mod link_supervisor;
pub mod links;
pub mod metrics;
pub mod path_policy;
pub mod path_selection;
pub mod peering;
pub mod privileges;
pub mod renewal;
pub mod session;
pub mod session_id;
pub mod site_transit;
pub mod snapshot;
pub mod topology;
pub mod trust;

#[cfg(test)]
pub(crate) mod testing;
