//! ACME (RFC 8555) for the devices and services of the site: directory, nonces, accounts,
//! orders, authorisations, `http-01` and `tls-alpn-01` (RFC 8737) challenges, finalize,
//! certificate download, revocation and account key rollover, tested with certbot and lego.
//!
//! Reading order, following a request: [`server`] (TLS 1.3 and HTTP/1.1; the one listener
//! without client certificates, see there why) → [`service`] (the common path every POST
//! walks: [`jws`] and [`jwk`] parse and verify the signature, [`nonce`] stops replays) → the
//! handlers: [`accounts`], [`orders`], [`challenges`] (which starts [`validation`]) and
//! [`revocation`] → [`backend`] (the hand-over to the issuance pipeline). Beside that path:
//! [`model`] (ACME's objects and their JSON), [`store`] (where they live; accounts are
//! durable), [`resources`] (the URL space), [`problem`] (RFC 8555 error documents), [`config`]
//! (the `[acme]` table and the choice of profile by name).
//!
//! Starting it, as trustd's main does:
//!
//! ```no_run
//! # async fn start(
//! #     site: trustd::ca::DnsName,
//! #     identity: appliance::tls::Identity,
//! #     backend: std::sync::Arc<dyn trustd::acme::AcmeBackend>,
//! #     state: appliance::state::StateDir,
//! #     cancel: tokio_util::sync::CancellationToken,
//! # ) -> Result<(), trustd::acme::AcmeServerError> {
//! use trustd::acme::{AcmeConfig, AcmeServer};
//!
//! let mut config = AcmeConfig::new("[::]:443".parse().unwrap());
//! config.base_url = Some("https://acme.oslo.bunker.example".into());
//! let server = AcmeServer::bind(config, &site, &identity, backend, state).await?;
//! tokio::spawn(server.serve(cancel));
//! # Ok(()) }
//! ```
//!
//! Refusals are RFC 8555 problem documents (`urn:ietf:params:acme:error:*`), and a refused
//! request changes no state: every check runs before anything is written, and even the nonce
//! of a request refused on the common path stays usable. [`parse_jws`] and [`parse_jwk`] are
//! pure functions of their input, for fuzzing.
//!
//! Deliberately left out: `dns-01` (the appliance serves no DNS zone) and with it wildcard
//! names; `newAuthz` pre-authorisation and external account binding (optional in RFC 8555);
//! `notBefore`/`notAfter` in orders (lifetimes belong to the profiles); alternate chains and
//! following redirects during `http-01`.

pub mod accounts;
pub mod backend;
pub mod challenges;
pub mod config;
pub mod encoding;
pub mod jwk;
pub mod jws;
pub mod model;
pub mod nonce;
pub mod orders;
pub mod problem;
pub mod resources;
pub mod revocation;
pub mod server;
pub mod service;
pub mod store;
pub mod validation;

#[cfg(test)]
mod tests;

pub use backend::{AcmeBackend, BackendError, IssuedCert};
pub use config::{AcmeConfig, ConfigError, Limits, ProfileRule, ProfileSelector, ValidationConfig};
pub use jwk::{AccountKey, JwsAlgorithm, parse_jwk};
pub use jws::{Jws, Payload, ProtectedHeader, Signer, parse_jws};
pub use problem::{Problem, ProblemType};
pub use server::{AcmeServer, AcmeServerError};
pub use service::{AcmeResponse, AcmeService};
pub use store::{AcmeStore, StoreError, StoreSummary};
