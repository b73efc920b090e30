//! Proof bundles: everything an offline verifier needs, in one JSON document.
//!
//! `bunkerctl ca log verify` reads a bundle and the CA's public key and answers two questions
//! without trusting trustd, the network or the operator:
//!
//! - *is this certificate in the log?* — the bundle's entry, its index and inclusion path lead to
//!   the root of a tree head the CA key signed;
//! - *is today's log an extension of the one I saw before?* — the consistency path leads from an
//!   older signed tree head (one the verifier kept) to the current one.
//!
//! ```json
//! {
//!   "format": "bunkeros-translog-proof-v1",
//!   "tree_head": {"size": 8, "timestamp_ms": 1767225600000, "root": "<hex>", "signature": "<hex>"},
//!   "inclusion": {"index": 5, "entry": "<hex of the leaf bytes>", "path": ["<hex>", "..."]},
//!   "consistency": {"old_tree_head": {"size": 6, "...": "..."}, "path": ["<hex>", "..."]}
//! }
//! ```
//!
//! `inclusion` and `consistency` are each optional; a bundle with neither only proves that the CA
//! signed the tree head. Parsing ([`parse_proof_bundle`]) and checking ([`ProofBundle::verify`])
//! are separate, pure functions: the first is the fuzzing entry point for hostile bytes, the
//! second holds all the cryptography.

use thiserror::Error;

use super::entry::LogEntry;
use super::json::{
    BundleWire, ConsistencyWire, InclusionWire, TreeHeadWire, WireError, check_len, decode_entry,
    decode_path,
};
use super::merkle::MerkleHash;
use super::proof::{
    MAX_CONSISTENCY_PATH, MAX_INCLUSION_PATH, ProofError, verify_consistency, verify_inclusion,
};
use super::tree_head::{SignedTreeHead, TreeHeadError};

/// The `format` value of the bundles this build writes and reads.
pub const PROOF_BUNDLE_FORMAT: &str = "bunkeros-translog-proof-v1";

/// Largest bundle accepted: a maximal entry in hex, two full paths and two tree heads fit with
/// room to spare.
pub const MAX_PROOF_BUNDLE_LEN: usize = 256 * 1024;

/// Why a well-formed bundle does not prove what it claims.
#[derive(Debug, Error)]
pub enum BundleVerifyError {
    /// The current tree head is not signed by the CA key.
    #[error("the tree head of size {size}: {source}")]
    TreeHead {
        /// Size the head claims.
        size: u64,
        /// Why its signature failed.
        source: TreeHeadError,
    },
    /// The older tree head is not signed by the CA key.
    #[error("the old tree head of size {size}: {source}")]
    OldTreeHead {
        /// Size the head claims.
        size: u64,
        /// Why its signature failed.
        source: TreeHeadError,
    },
    /// The entry is not in the signed tree.
    #[error("entry {index} in the tree of {tree_size} entries: {source}")]
    Inclusion {
        /// Index the bundle claims.
        index: u64,
        /// Size of the signed tree.
        tree_size: u64,
        /// Why the proof failed.
        source: ProofError,
    },
    /// The current tree does not extend the old one.
    #[error("from {old_size} to {new_size} entries: {source}")]
    Consistency {
        /// Size of the old tree.
        old_size: u64,
        /// Size of the current tree.
        new_size: u64,
        /// Why the proof failed.
        source: ProofError,
    },
}

/// A parsed proof bundle (see the module documentation for the JSON form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofBundle {
    /// The tree head everything is proved against.
    pub tree_head: SignedTreeHead,
    /// An entry and its inclusion path in [`Self::tree_head`].
    pub inclusion: Option<EntryInclusion>,
    /// An older tree head and the consistency path to [`Self::tree_head`].
    pub consistency: Option<HeadConsistency>,
}

/// A log entry at a claimed index, with its audit path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInclusion {
    /// Index of the entry in the log.
    pub index: u64,
    /// The entry itself: the verifier compares its certificate with the one it holds.
    pub entry: LogEntry,
    /// RFC 9162 inclusion path.
    pub path: Vec<MerkleHash>,
}

/// An older signed tree head with the consistency path to the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadConsistency {
    /// The older head, as the verifier saw it before.
    pub old_tree_head: SignedTreeHead,
    /// RFC 9162 consistency path.
    pub path: Vec<MerkleHash>,
}

/// Parses a proof bundle from untrusted bytes: strict, total, and free of cryptography.
///
/// This is the fuzzing entry point: any input gives `Ok` or a [`WireError`], never a panic, and
/// never an allocation larger than a few times [`MAX_PROOF_BUNDLE_LEN`]. A parsed bundle proves
/// nothing until [`ProofBundle::verify`] accepts it.
pub fn parse_proof_bundle(bytes: &[u8]) -> Result<ProofBundle, WireError> {
    check_len(bytes, MAX_PROOF_BUNDLE_LEN)?;
    let wire: BundleWire = serde_json::from_slice(bytes)?;
    if wire.format != PROOF_BUNDLE_FORMAT {
        return Err(WireError::UnknownFormat {
            found: wire.format.chars().take(64).collect(),
            expected: PROOF_BUNDLE_FORMAT,
        });
    }
    let tree_head = wire.tree_head.into_signed("tree_head")?;
    let inclusion = wire
        .inclusion
        .map(|inclusion| -> Result<_, WireError> {
            Ok(EntryInclusion {
                index: inclusion.index,
                entry: decode_entry("inclusion.entry", &inclusion.entry)?,
                path: decode_path("inclusion.path", &inclusion.path, MAX_INCLUSION_PATH)?,
            })
        })
        .transpose()?;
    let consistency = wire
        .consistency
        .map(|consistency| -> Result<_, WireError> {
            Ok(HeadConsistency {
                old_tree_head: consistency
                    .old_tree_head
                    .into_signed("consistency.old_tree_head")?,
                path: decode_path("consistency.path", &consistency.path, MAX_CONSISTENCY_PATH)?,
            })
        })
        .transpose()?;
    Ok(ProofBundle {
        tree_head,
        inclusion,
        consistency,
    })
}

impl ProofBundle {
    /// The JSON form, compact; [`parse_proof_bundle`] reads it back unchanged.
    pub fn to_json(&self) -> String {
        let wire = BundleWire {
            format: PROOF_BUNDLE_FORMAT.to_string(),
            tree_head: TreeHeadWire::from_signed(&self.tree_head),
            inclusion: self.inclusion.as_ref().map(|inclusion| InclusionWire {
                index: inclusion.index,
                entry: hex::encode(inclusion.entry.encode()),
                path: inclusion.path.iter().map(hex::encode).collect(),
            }),
            consistency: self
                .consistency
                .as_ref()
                .map(|consistency| ConsistencyWire {
                    old_tree_head: TreeHeadWire::from_signed(&consistency.old_tree_head),
                    path: consistency.path.iter().map(hex::encode).collect(),
                }),
        };
        serde_json::to_string(&wire).expect("a proof bundle serialises: integers and strings only")
    }

    /// Checks everything the bundle claims against the CA public key (SEC1 bytes): both tree
    /// head signatures, the entry's inclusion and the consistency of the two heads.
    ///
    /// Sizes and roots are only trusted once their signatures verify; proofs are checked against
    /// those signed values, which is what binds the tree sizes (see [`super::proof`]).
    pub fn verify(&self, ca_public_key_sec1: &[u8]) -> Result<(), BundleVerifyError> {
        let head = &self.tree_head.head;
        self.tree_head
            .verify(ca_public_key_sec1)
            .map_err(|source| BundleVerifyError::TreeHead {
                size: head.size,
                source,
            })?;
        if let Some(consistency) = &self.consistency {
            let old = &consistency.old_tree_head.head;
            consistency
                .old_tree_head
                .verify(ca_public_key_sec1)
                .map_err(|source| BundleVerifyError::OldTreeHead {
                    size: old.size,
                    source,
                })?;
            verify_consistency(
                old.size,
                head.size,
                &old.root,
                &head.root,
                &consistency.path,
            )
            .map_err(|source| BundleVerifyError::Consistency {
                old_size: old.size,
                new_size: head.size,
                source,
            })?;
        }
        if let Some(inclusion) = &self.inclusion {
            verify_inclusion(
                &inclusion.entry.leaf_hash(),
                inclusion.index,
                head.size,
                &inclusion.path,
                &head.root,
            )
            .map_err(|source| BundleVerifyError::Inclusion {
                index: inclusion.index,
                tree_size: head.size,
                source,
            })?;
        }
        Ok(())
    }
}
