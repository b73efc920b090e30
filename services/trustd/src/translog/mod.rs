//! The transparency log: every certificate the CA issues, in an append-only Merkle tree whose
//! heads the TPM-held CA key signs.
//!
//! The log is what makes "nobody, the operator included, can issue silently" checkable: a
//! certificate that is not in the log is suspect by definition, and a log that was rewritten
//! cannot produce a consistency proof to a head anyone saw before. For that to mean anything to a
//! third party, the tree is RFC 6962 / RFC 9162 exactly, and verification needs only the CA's
//! public key.
//!
//! Modules, in the order data flows:
//! - [`entry`]: the leaf, a versioned byte string around the issued certificate's DER;
//! - [`merkle`]: RFC hashing and the in-memory tree (roots at any past size);
//! - [`proof`]: inclusion and consistency proofs, made by the tree and verified by pure functions;
//! - [`store`]: the append-only file in the state directory (durable appends, torn-tail recovery),
//!   laid out as self-checking records (`record`);
//! - [`tree_head`]: tree heads signed through [`crate::ca_key::CaKey`] with a domain prefix;
//! - [`json`] and [`bundle`]: the JSON forms for D-Bus, HTTP and `bunkerctl ca log verify`.
//!
//! Everything except [`store`] is free of I/O and of TPM types, so `bunkerctl` verifies offline
//! with the same code trustd uses to prove.

pub mod bundle;
pub mod entry;
pub mod json;
pub mod merkle;
pub mod proof;
mod record;
pub mod store;
pub mod tree_head;

#[cfg(test)]
mod tests;

pub use bundle::{
    BundleVerifyError, EntryInclusion, HeadConsistency, MAX_PROOF_BUNDLE_LEN, PROOF_BUNDLE_FORMAT,
    ProofBundle, parse_proof_bundle,
};
pub use entry::{ENTRY_VERSION, EntryError, LogEntry, MAX_CERTIFICATE_LEN, MAX_ENTRY_LEN};
pub use json::{MAX_TREE_HEAD_JSON_LEN, WireError};
pub use merkle::{MerkleHash, MerkleTree, empty_root, leaf_hash, node_hash};
pub use proof::{
    ConsistencyProof, InclusionProof, MAX_CONSISTENCY_PATH, MAX_INCLUSION_PATH, ProofError,
    verify_consistency, verify_inclusion,
};
pub use store::{LOG_FILE, LogStore, StoreError, TornTail};
pub use tree_head::{MAX_SIGNATURE_LEN, SignedTreeHead, TREE_HEAD_DOMAIN, TreeHead, TreeHeadError};
