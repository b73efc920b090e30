//! `trustd`: the site's certificate authority, with its signing key created and sealed in the TPM.
//!
//! Modules, in the order data flows: [`tpm`] (the CA key inside the TPM, usable only under the
//! boot-measurement policy) → [`ca_key`] (the signing seam everything else uses) → [`ca`] (the
//! CA hierarchy, certificate profiles, hostile-CSR checks and issuance) → [`translog`] (the
//! append-only transparency log of every issued certificate) → [`authority`] (the issuance
//! pipeline over all of them: issued-certificate store, crash recovery, revocation and CRL,
//! sealed and lockdown states, audit signatures). Beside them, [`acme`]: the RFC 8555 server
//! through which devices and services obtain certificates, over the issuance seam it defines,
//! and [`site_lockdown`]: lockdown driven by the site's state as `sited` publishes it.

pub mod acme;
pub mod acme_backend;
pub mod authority;
pub mod ca;
pub mod ca_key;
pub mod config;
pub mod daemon;
pub mod dbus;
pub mod enrolment;
pub mod http;
pub mod metrics;
pub mod site_lockdown;
pub mod status_report;
pub mod tpm;
pub mod translog;
