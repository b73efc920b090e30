//! The exchange between hubs: the coordinating hub serves its [`DirectoryExchange`] to the
//! hubs of its rollouts, which reach it through hubd's links (a `[[service]]` published at the
//! coordinator and reached at every other hub), so plans, instructions and reports travel the
//! same paths, with the same path policies, as the rest of the hub network's traffic.
//!
//! Inside hubd's session the two updated daemons speak HTTP/1.1 over their own mutual TLS, so
//! the coordinator knows which hub is asking without trusting hubd or anything else on its
//! loopback:
//! - the coordinator presents a `service` certificate from its trustd for a DNS name of its
//!   site (`[rollout.serve] name`); a hub checks it against the coordinator's root it pinned
//!   (`[rollout.coordinator] root`) and that name;
//! - a hub presents a `hub` certificate from its own trustd (`bunkeros:hub:<id>`); the
//!   coordinator knows the hub by the root it chains to (`[rollout.serve] hub_roots`, one
//!   `<hub>.pem` per hub, as hubd pins one root per peer) and lets it read only its own
//!   instructions and write only its own report.
//!
//! Keys are made in memory and never written ([`ExchangeCertificate`]). The documents are the
//! directory exchange's, checked by the same parsers on both ends; a report's evidence is then
//! judged by the coordinator as always, so a hub can at worst send a report that is refused.
//!
//! ```text
//! GET /v1/rollout/instructions/<hub>          → 200 JSON array of the hub's instructions
//! GET /v1/rollout/plans/<plan>                → 200 the plan's TOML | 404
//! PUT /v1/rollout/plans/<plan>/reports/<hub>  → 204 | 400 malformed | 403 another hub's | 404 no such plan | 413
//! ```
//!
//! [`DirectoryExchange`]: super::DirectoryExchange

mod certificate;
mod client;
mod server;

#[cfg(any(test, feature = "test-support"))]
pub mod test_pki;
#[cfg(test)]
mod tests;

pub use certificate::ExchangeCertificate;
pub use client::{CoordinatorExchange, RemoteError};
pub use server::{ExchangeServer, load_hub_roots};

use std::time::Duration;

/// The trustd profile of the coordinator's server certificate (a DNS name of its site).
pub const SERVER_PROFILE: &str = "service";
/// The trustd profile of a hub's client certificate (`bunkeros:hub:<id>`, as hubd's).
pub const CLIENT_PROFILE: &str = "hub";
/// The URI a hub's client certificate names.
pub fn hub_uri(hub: &str) -> String {
    format!("bunkeros:hub:{hub}")
}

/// A TLS handshake or a whole request must finish within this, or the peer is dropped.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

fn instructions_path(hub: &str) -> String {
    format!("/v1/rollout/instructions/{hub}")
}

fn plan_path(plan: &str) -> String {
    format!("/v1/rollout/plans/{plan}")
}

fn report_path(plan: &str, hub: &str) -> String {
    format!("/v1/rollout/plans/{plan}/reports/{hub}")
}
