//! `trustd`: the site's certificate authority, with its signing key created and sealed in the TPM.
//!
//! Modules, in the order data flows: [`tpm`] (the CA key inside the TPM, usable only under the
//! boot-measurement policy) → [`ca_key`] (the signing seam everything else uses) → [`ca`] (the
//! CA hierarchy, certificate profiles, hostile-CSR checks and issuance) → [`translog`] (the
//! append-only transparency log of every issued certificate).

pub mod ca;
pub mod ca_key;
pub mod config;
pub mod tpm;
pub mod translog;
