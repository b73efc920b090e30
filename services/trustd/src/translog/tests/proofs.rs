//! Proofs for every tree shape up to 64 leaves: generated exactly as the RFC's recursion, verified
//! by the RFC's algorithm, and tampering rejected.
//!
//! Tampering covers every leaf index and tree size pair up to 64. Each hash (leaf, roots, every
//! path element) is tampered in every one of its 256 bits for trees up to [`EXHAUSTIVE_UP_TO`]
//! leaves, and in its first and last bit beyond; indexes and old sizes in all 64 bits everywhere.
//! Debug builds hash some 100 times slower than release ones, so the fully exhaustive run (every
//! bit of every hash, every pair up to 64: about 8 million verifications) is the release one:
//! `cargo nextest run --release -p trustd translog`.

use super::super::merkle::{MerkleHash, empty_root};
use super::super::{MerkleTree, ProofError, verify_consistency, verify_inclusion};
use super::{
    hash_flips, reference_consistency, reference_path, reference_root, synthetic_leaves,
    synthetic_tree,
};

const MAX_LEAVES: usize = 64;

/// Largest tree whose hashes are tampered in every bit (see the module documentation).
const EXHAUSTIVE_UP_TO: usize = if cfg!(debug_assertions) {
    8
} else {
    MAX_LEAVES
};

/// The single-bit tampers of `hash` checked for a tree of `n` leaves.
fn tampered(n: usize, hash: &MerkleHash) -> Vec<MerkleHash> {
    if n <= EXHAUSTIVE_UP_TO {
        return hash_flips(hash).collect();
    }
    let (mut first, mut last) = (*hash, *hash);
    first[0] ^= 0x80;
    last[31] ^= 0x01;
    vec![first, last]
}

/// Leaves and the root at every size 0..=64 of one synthetic tree.
fn fixture() -> (Vec<MerkleHash>, MerkleTree, Vec<MerkleHash>) {
    let leaves = synthetic_leaves(MAX_LEAVES);
    let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
    let roots = (0..=MAX_LEAVES)
        .map(|n| reference_root(&leaves[..n]))
        .collect();
    (leaves, tree, roots)
}

#[test]
fn translog_roots_at_every_size_up_to_64_match_the_textbook_recursion() {
    let (leaves, tree, roots) = fixture();
    for n in 0..=MAX_LEAVES {
        assert_eq!(tree.root_at(n as u64), Some(roots[n]), "size {n}");
        assert_eq!(synthetic_tree(n).root(), roots[n], "grown to {n}");
        assert_eq!(
            MerkleTree::from_leaf_hashes(leaves[..n].iter().copied()).size(),
            n as u64
        );
    }
}

#[test]
fn translog_every_inclusion_proof_up_to_64_leaves_is_the_rfcs_and_verifies() {
    let (leaves, tree, roots) = fixture();
    for n in 1..=MAX_LEAVES {
        for i in 0..n {
            let proof = tree.inclusion_proof(i as u64, n as u64).unwrap();
            assert_eq!(
                proof.path,
                reference_path(i, &leaves[..n]),
                "leaf {i} of {n}"
            );
            proof.verify(&leaves[i], &roots[n]).unwrap();
        }
    }
}

#[test]
fn translog_every_consistency_proof_up_to_64_leaves_is_the_rfcs_and_verifies() {
    let (leaves, tree, roots) = fixture();
    for n in 0..=MAX_LEAVES {
        for m in 0..=n {
            let proof = tree.consistency_proof(m as u64, n as u64).unwrap();
            let expected = if 0 < m && m < n {
                reference_consistency(m, &leaves[..n])
            } else {
                Vec::new()
            };
            assert_eq!(proof.path, expected, "{m} -> {n}");
            proof.verify(&roots[m], &roots[n]).unwrap();
        }
    }
}

/// Single-bit changes of the leaf, the root, any path hash or the index are rejected.
fn check_inclusion_tampering(sizes: std::ops::RangeInclusive<usize>) {
    let (leaves, tree, roots) = fixture();
    for n in sizes {
        for i in 0..n {
            let (index, size) = (i as u64, n as u64);
            let path = tree.inclusion_proof(index, size).unwrap().path;
            let rejects =
                |leaf: &MerkleHash, index: u64, path: &[MerkleHash], root: &MerkleHash| {
                    verify_inclusion(leaf, index, size, path, root).is_err()
                };
            for leaf in tampered(n, &leaves[i]) {
                assert!(
                    rejects(&leaf, index, &path, &roots[n]),
                    "leaf flip, {i} of {n}"
                );
            }
            for root in tampered(n, &roots[n]) {
                assert!(
                    rejects(&leaves[i], index, &path, &root),
                    "root flip, {i} of {n}"
                );
            }
            for at in 0..path.len() {
                for hash in tampered(n, &path[at]) {
                    let mut tampered = path.clone();
                    tampered[at] = hash;
                    assert!(
                        rejects(&leaves[i], index, &tampered, &roots[n]),
                        "path[{at}] flip, {i} of {n}"
                    );
                }
            }
            for bit in 0..u64::BITS {
                assert!(
                    rejects(&leaves[i], index ^ (1 << bit), &path, &roots[n]),
                    "index bit {bit}, {i} of {n}"
                );
            }
            // A path one hash too short or too long, or with a hash repeated, is refused.
            if let Some((_, shorter)) = path.split_last() {
                assert!(rejects(&leaves[i], index, shorter, &roots[n]));
            }
            let mut longer = path.clone();
            longer.push(leaves[0]);
            assert!(rejects(&leaves[i], index, &longer, &roots[n]));
        }
    }
}

#[test]
fn translog_inclusion_rejects_tampering_up_to_64_leaves() {
    check_inclusion_tampering(1..=MAX_LEAVES);
}

/// Single-bit changes of either root, any path hash or the old size are rejected.
fn check_consistency_tampering(sizes: std::ops::RangeInclusive<usize>) {
    let (_, tree, roots) = fixture();
    for n in sizes {
        for m in 1..n {
            let (old, new) = (m as u64, n as u64);
            let path = tree.consistency_proof(old, new).unwrap().path;
            let rejects =
                |old: u64, old_root: &MerkleHash, new_root: &MerkleHash, path: &[MerkleHash]| {
                    verify_consistency(old, new, old_root, new_root, path).is_err()
                };
            for root in tampered(n, &roots[m]) {
                assert!(
                    rejects(old, &root, &roots[n], &path),
                    "old root flip, {m} -> {n}"
                );
            }
            for root in tampered(n, &roots[n]) {
                assert!(
                    rejects(old, &roots[m], &root, &path),
                    "new root flip, {m} -> {n}"
                );
            }
            for at in 0..path.len() {
                for hash in tampered(n, &path[at]) {
                    let mut tampered = path.clone();
                    tampered[at] = hash;
                    assert!(
                        rejects(old, &roots[m], &roots[n], &tampered),
                        "path[{at}] flip, {m} -> {n}"
                    );
                }
            }
            for bit in 0..u64::BITS {
                assert!(
                    rejects(old ^ (1 << bit), &roots[m], &roots[n], &path),
                    "old size bit {bit}, {m} -> {n}"
                );
            }
            if let Some((_, shorter)) = path.split_last() {
                assert!(
                    rejects(old, &roots[m], &roots[n], shorter),
                    "{m} -> {n} shorter"
                );
            }
            let mut longer = path.clone();
            longer.push(roots[1]);
            assert!(
                rejects(old, &roots[m], &roots[n], &longer),
                "{m} -> {n} longer"
            );
        }
    }
}

#[test]
fn translog_consistency_rejects_tampering_up_to_64_leaves() {
    check_consistency_tampering(2..=MAX_LEAVES);
}

/// The sizes themselves are bound by the tree head signature, not by the proof: for some
/// shapes the RFC's verification walks the same levels under two sizes (documented in
/// `proof.rs`). This pins that down, so nobody mistakes a raw proof for proof of a size.
#[test]
fn translog_a_raw_proof_does_not_bind_the_tree_size_which_is_why_heads_are_signed() {
    let leaves = synthetic_leaves(7);
    let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
    let root5 = tree.root_at(5).unwrap();
    let path = tree.inclusion_proof(0, 5).unwrap().path;
    verify_inclusion(&leaves[0], 0, 5, &path, &root5).unwrap();
    verify_inclusion(&leaves[0], 0, 7, &path, &root5).unwrap();
}

#[test]
fn translog_edge_cases_of_the_rfc_algorithms() {
    let (leaves, tree, roots) = fixture();
    // Index outside the tree, and the empty tree, which contains nothing.
    assert_eq!(
        verify_inclusion(&leaves[3], 3, 3, &[], &roots[3]),
        Err(ProofError::IndexOutOfRange {
            index: 3,
            tree_size: 3
        })
    );
    assert!(verify_inclusion(&empty_root(), 0, 0, &[], &empty_root()).is_err());
    // A one-leaf tree: the leaf hash is the root, the path is empty.
    verify_inclusion(&leaves[0], 0, 1, &[], &roots[1]).unwrap();
    assert_eq!(
        verify_inclusion(&leaves[0], 0, 1, &[leaves[1]], &roots[1]),
        Err(ProofError::WrongPathLength)
    );
    // An absurdly long path is refused before any hashing.
    let long = vec![leaves[0]; 65];
    assert_eq!(
        verify_inclusion(&leaves[0], 0, u64::MAX, &long, &roots[1]),
        Err(ProofError::WrongPathLength)
    );

    // Equal sizes: empty path and equal roots, anything else is a fork or a bad proof.
    verify_consistency(5, 5, &roots[5], &roots[5], &[]).unwrap();
    assert_eq!(
        verify_consistency(5, 5, &roots[5], &roots[6], &[]),
        Err(ProofError::Fork { size: 5 })
    );
    assert_eq!(
        verify_consistency(5, 5, &roots[5], &roots[5], &[roots[1]]),
        Err(ProofError::WrongPathLength)
    );
    // The empty tree is a prefix of everything, but only with its own root.
    verify_consistency(0, 9, &empty_root(), &roots[9], &[]).unwrap();
    assert_eq!(
        verify_consistency(0, 9, &roots[1], &roots[9], &[]),
        Err(ProofError::OldRootMismatch)
    );
    assert_eq!(
        verify_consistency(0, 9, &empty_root(), &roots[9], &[roots[1]]),
        Err(ProofError::WrongPathLength)
    );
    // Backwards, or an empty path where one is needed.
    assert_eq!(
        verify_consistency(6, 5, &roots[6], &roots[5], &[]),
        Err(ProofError::SizesOutOfOrder {
            old_size: 6,
            new_size: 5
        })
    );
    assert_eq!(
        verify_consistency(3, 8, &roots[3], &roots[8], &[]),
        Err(ProofError::WrongPathLength)
    );
    // A rewritten log: the old root checks out, the new one cannot.
    let path = tree.consistency_proof(3, 8).unwrap().path;
    assert_eq!(
        verify_consistency(3, 8, &roots[3], &roots[9], &path),
        Err(ProofError::NewRootMismatch)
    );

    // The tree refuses to prove what it never held.
    assert_eq!(
        tree.inclusion_proof(0, 65),
        Err(ProofError::BeyondLog {
            requested: 65,
            available: 64
        })
    );
    assert!(tree.inclusion_proof(10, 10).is_err());
    assert!(tree.consistency_proof(10, 65).is_err());
    assert_eq!(
        tree.consistency_proof(10, 9),
        Err(ProofError::SizesOutOfOrder {
            old_size: 10,
            new_size: 9
        })
    );
}
