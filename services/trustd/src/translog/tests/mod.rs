//! Tests of the transparency log, with the shared fixtures: a software CA key (tests only),
//! a textbook RFC 6962 implementation to compare against, and synthetic certificates.

mod bundle;
mod entry;
mod proofs;
mod store;
mod tree_head;
mod vectors;

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};

use super::merkle::{MerkleHash, empty_root, leaf_hash, node_hash};
use super::{LogEntry, MerkleTree};
use crate::ca_key::{CaKey, SignError};

/// A P-256 key in memory, standing in for the TPM-held CA key.
///
/// Test-only by construction (this module is `cfg(test)`): production code has no software
/// [`CaKey`], so a sealed TPM can never be bypassed by one.
pub(super) struct SoftwareCaKey {
    signing: SigningKey,
    public: Vec<u8>,
}

impl SoftwareCaKey {
    /// A deterministic key: the same `seed` gives the same key, different seeds different keys.
    pub(super) fn new(seed: u8) -> Self {
        let signing = SigningKey::from_slice(&[seed; 32]).expect("a valid P-256 scalar");
        let public = signing
            .verifying_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        Self { signing, public }
    }

    /// Signs arbitrary bytes, bypassing the tree head encoding (to forge cross-domain signatures).
    pub(super) fn sign_raw(&self, message: &[u8]) -> Vec<u8> {
        let signature: Signature = self.signing.sign(message);
        signature.to_der().as_bytes().to_vec()
    }
}

impl CaKey for SoftwareCaKey {
    fn public_key_sec1(&self) -> &[u8] {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        Ok(self.sign_raw(message))
    }
}

/// `MTH(D[n])` exactly as RFC 9162 §2.1.1 writes it, recursively, with no caching: the yardstick
/// for [`MerkleTree`].
pub(super) fn reference_root(leaves: &[MerkleHash]) -> MerkleHash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = reference_split(n);
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

/// RFC 9162 §2.1.3.1 `PATH(m, D[n])`, textbook recursion.
pub(super) fn reference_path(m: usize, leaves: &[MerkleHash]) -> Vec<MerkleHash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = reference_split(n);
    if m < k {
        let mut path = reference_path(m, &leaves[..k]);
        path.push(reference_root(&leaves[k..]));
        path
    } else {
        let mut path = reference_path(m - k, &leaves[k..]);
        path.push(reference_root(&leaves[..k]));
        path
    }
}

/// RFC 9162 §2.1.4.1 `PROOF(m, D[n])`, textbook recursion, for `0 < m < n`.
pub(super) fn reference_consistency(m: usize, leaves: &[MerkleHash]) -> Vec<MerkleHash> {
    fn subproof(m: usize, leaves: &[MerkleHash], b: bool) -> Vec<MerkleHash> {
        let n = leaves.len();
        if m == n {
            return if b {
                Vec::new()
            } else {
                vec![reference_root(leaves)]
            };
        }
        let k = reference_split(n);
        if m <= k {
            let mut proof = subproof(m, &leaves[..k], b);
            proof.push(reference_root(&leaves[k..]));
            proof
        } else {
            let mut proof = subproof(m - k, &leaves[k..], false);
            proof.push(reference_root(&leaves[..k]));
            proof
        }
    }
    subproof(m, leaves, true)
}

/// The largest power of two smaller than `n`, by counting rather than by bit tricks.
fn reference_split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// Distinct leaf hashes for synthetic trees.
pub(super) fn synthetic_leaves(n: usize) -> Vec<MerkleHash> {
    (0..n as u64)
        .map(|i| leaf_hash(format!("leaf {i}").as_bytes()))
        .collect()
}

/// A tree over [`synthetic_leaves`].
pub(super) fn synthetic_tree(n: usize) -> MerkleTree {
    MerkleTree::from_leaf_hashes(synthetic_leaves(n))
}

/// A DER `SEQUENCE` of `content_len` bytes that differ with `seed`: certificate-shaped bytes.
pub(super) fn certificate(seed: u64, content_len: usize) -> Vec<u8> {
    let mut der = vec![0x30];
    match content_len {
        0..=0x7f => der.push(content_len as u8),
        0x80..=0xff => der.extend_from_slice(&[0x81, content_len as u8]),
        _ => der.extend_from_slice(&[0x82, (content_len >> 8) as u8, content_len as u8]),
    }
    let seed = seed.to_be_bytes();
    der.extend((0..content_len).map(|i| seed[i % 8] ^ (i as u8)));
    der
}

/// Entry `i` of a test log: a certificate of a size that varies with `i`.
pub(super) fn test_entry(i: u64) -> LogEntry {
    LogEntry::new(
        1_767_225_600_000 + i,
        certificate(i, 300 + (i as usize % 700)),
    )
    .expect("test certificates are framed correctly")
}

/// Every value `bytes` takes with exactly one bit flipped.
pub(super) fn single_bit_flips(bytes: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    (0..bytes.len() * 8).map(move |bit| {
        let mut flipped = bytes.to_vec();
        flipped[bit / 8] ^= 1 << (bit % 8);
        flipped
    })
}

/// Every hash that differs from `hash` in exactly one bit.
pub(super) fn hash_flips(hash: &MerkleHash) -> impl Iterator<Item = MerkleHash> + '_ {
    single_bit_flips(hash).map(|bytes| bytes.try_into().expect("32 bytes"))
}
