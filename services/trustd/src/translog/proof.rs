//! Inclusion and consistency proofs: made by the log, checked by anyone, offline.
//!
//! Generation follows RFC 9162 §2.1.3.1 (`PATH`) and §2.1.4.1 (`PROOF`/`SUBPROOF`); verification
//! is the RFC's own algorithm from §2.1.3.2 and §2.1.4.2, step for step, so a proof from this log
//! verifies in any RFC 9162 verifier (and the other way round). The verifiers are pure functions
//! of hashes and sizes: `bunkerctl ca log verify` runs them with no TPM, no store and no network.
//!
//! What a proof does *not* bind: the tree size. For some leaves the same path verifies against
//! the same root under two different sizes (the RFC's algorithm only walks the levels it needs).
//! Sizes are bound by the signature over the tree head, which is why a bundle is only ever
//! checked together with its signed tree heads ([`super::bundle`]).

use thiserror::Error;

use super::merkle::{MerkleHash, MerkleTree, empty_root, node_hash, split_point};

/// Longest inclusion path a tree of fewer than `2^64` leaves can need: one hash per level.
pub const MAX_INCLUSION_PATH: usize = 64;
/// Longest consistency path: one hash per level, plus the old tree's own subtree.
pub const MAX_CONSISTENCY_PATH: usize = 65;

/// Why a proof could not be made, or does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree it is claimed to be in.
    #[error("leaf {index} is not in a tree of {tree_size} leaves")]
    IndexOutOfRange {
        /// The leaf's index.
        index: u64,
        /// The tree's size.
        tree_size: u64,
    },
    /// A proof was requested for a tree larger than the log has ever been.
    #[error("the log has {available} leaves; it has never had {requested}")]
    BeyondLog {
        /// Size asked for.
        requested: u64,
        /// Size of the log.
        available: u64,
    },
    /// A consistency proof from a larger tree to a smaller one.
    #[error("the old tree ({old_size} leaves) is larger than the new one ({new_size})")]
    SizesOutOfOrder {
        /// Size of the older tree.
        old_size: u64,
        /// Size of the newer tree.
        new_size: u64,
    },
    /// The path has more or fewer hashes than the tree shape requires.
    #[error("the proof has the wrong number of hashes for these tree sizes")]
    WrongPathLength,
    /// The inclusion path leads to another root: the leaf is not at that index in that tree.
    #[error("the inclusion proof leads to a different root: the entry is not in this tree")]
    RootMismatch,
    /// The consistency path does not reproduce the older root.
    #[error("the consistency proof does not reproduce the old tree's root")]
    OldRootMismatch,
    /// The consistency path does not reproduce the newer root: the new tree does not extend the
    /// old one.
    #[error("the consistency proof does not reproduce the new tree's root: the log was rewritten")]
    NewRootMismatch,
    /// Two different roots for the same tree size: two histories exist.
    #[error("two different roots for the same tree size {size}: the log has forked")]
    Fork {
        /// The size both heads claim.
        size: u64,
    },
}

/// Proof that one leaf is at `index` in the tree of `tree_size` leaves (RFC 9162's audit path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf's position, from 0.
    pub index: u64,
    /// The size of the tree whose root the path leads to.
    pub tree_size: u64,
    /// Sibling hashes from the leaf's level up to the root's children.
    pub path: Vec<MerkleHash>,
}

impl InclusionProof {
    /// Checks that `leaf_hash` is at [`Self::index`] in the tree of [`Self::tree_size`] leaves
    /// whose root is `root`.
    pub fn verify(&self, leaf_hash: &MerkleHash, root: &MerkleHash) -> Result<(), ProofError> {
        verify_inclusion(leaf_hash, self.index, self.tree_size, &self.path, root)
    }
}

/// Proof that the tree of `new_size` leaves extends the tree of `old_size` leaves unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older tree's size.
    pub old_size: u64,
    /// The newer tree's size.
    pub new_size: u64,
    /// The RFC's consistency path.
    pub path: Vec<MerkleHash>,
}

impl ConsistencyProof {
    /// Checks that the tree with root `new_root` is the tree with root `old_root` plus appended
    /// leaves only.
    pub fn verify(&self, old_root: &MerkleHash, new_root: &MerkleHash) -> Result<(), ProofError> {
        verify_consistency(self.old_size, self.new_size, old_root, new_root, &self.path)
    }
}

impl MerkleTree {
    /// The inclusion proof of leaf `index` in the tree of the first `tree_size` leaves.
    ///
    /// Any past size works, so a client holding an older signed tree head can still be answered.
    pub fn inclusion_proof(
        &self,
        index: u64,
        tree_size: u64,
    ) -> Result<InclusionProof, ProofError> {
        self.check_size(tree_size)?;
        if index >= tree_size {
            return Err(ProofError::IndexOutOfRange { index, tree_size });
        }
        let mut path = Vec::new();
        self.audit_path(index, 0, tree_size, &mut path);
        Ok(InclusionProof {
            index,
            tree_size,
            path,
        })
    }

    /// The consistency proof from the tree of `old_size` leaves to the tree of `new_size`.
    ///
    /// Equal sizes and an empty old tree have an empty proof, as in RFC 9162.
    pub fn consistency_proof(
        &self,
        old_size: u64,
        new_size: u64,
    ) -> Result<ConsistencyProof, ProofError> {
        self.check_size(new_size)?;
        if old_size > new_size {
            return Err(ProofError::SizesOutOfOrder { old_size, new_size });
        }
        let mut path = Vec::new();
        if old_size > 0 && old_size < new_size {
            self.subproof(old_size, 0, new_size, true, &mut path);
        }
        Ok(ConsistencyProof {
            old_size,
            new_size,
            path,
        })
    }

    fn check_size(&self, requested: u64) -> Result<(), ProofError> {
        if requested > self.size() {
            return Err(ProofError::BeyondLog {
                requested,
                available: self.size(),
            });
        }
        Ok(())
    }

    /// RFC 9162 `PATH(m, D[start:end])`, with `m` relative to `start`; hashes are pushed
    /// bottom-up, the order verifiers consume them in.
    fn audit_path(&self, m: u64, start: u64, end: u64, path: &mut Vec<MerkleHash>) {
        let n = end - start;
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            self.audit_path(m, start, start + k, path);
            path.push(self.subtree_root(start + k, end));
        } else {
            self.audit_path(m - k, start + k, end, path);
            path.push(self.subtree_root(start, start + k));
        }
    }

    /// RFC 9162 `SUBPROOF(m, D[start:end], b)`, with `m` relative to `start`; `whole_old_tree`
    /// is the RFC's `b`: whether `D[start:start+m]` is the entire old tree, whose root the
    /// verifier already holds.
    fn subproof(
        &self,
        m: u64,
        start: u64,
        end: u64,
        whole_old_tree: bool,
        path: &mut Vec<MerkleHash>,
    ) {
        let n = end - start;
        if m == n {
            if !whole_old_tree {
                path.push(self.subtree_root(start, end));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, start, start + k, whole_old_tree, path);
            path.push(self.subtree_root(start + k, end));
        } else {
            self.subproof(m - k, start + k, end, false, path);
            path.push(self.subtree_root(start, start + k));
        }
    }
}

/// RFC 9162 §2.1.3.2: is `leaf_hash` the leaf at `index` of the tree of `tree_size` leaves with
/// root `root`?
pub fn verify_inclusion(
    leaf_hash: &MerkleHash,
    index: u64,
    tree_size: u64,
    path: &[MerkleHash],
    root: &MerkleHash,
) -> Result<(), ProofError> {
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange { index, tree_size });
    }
    if path.len() > MAX_INCLUSION_PATH {
        return Err(ProofError::WrongPathLength);
    }
    let mut fnode = index;
    let mut snode = tree_size - 1;
    let mut computed = *leaf_hash;
    for sibling in path {
        if snode == 0 {
            return Err(ProofError::WrongPathLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            computed = node_hash(sibling, &computed);
            // The rightmost node of a level with no sibling moves up unchanged.
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            computed = node_hash(&computed, sibling);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongPathLength);
    }
    if computed != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 §2.1.4.2: is the tree of `new_size` leaves with root `new_root` an extension of the
/// tree of `old_size` leaves with root `old_root`?
///
/// The RFC defines the algorithm for `0 < old_size < new_size`; the two edge cases follow its
/// definitions: equal sizes need an empty path and equal roots, and the empty tree (whose root
/// must be `SHA-256("")`) is a prefix of every tree, with an empty path.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &MerkleHash,
    new_root: &MerkleHash,
    path: &[MerkleHash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizesOutOfOrder { old_size, new_size });
    }
    if old_size == new_size {
        if !path.is_empty() {
            return Err(ProofError::WrongPathLength);
        }
        if old_root != new_root {
            return Err(ProofError::Fork { size: old_size });
        }
        return Ok(());
    }
    if old_size == 0 {
        if !path.is_empty() {
            return Err(ProofError::WrongPathLength);
        }
        if *old_root != empty_root() {
            return Err(ProofError::OldRootMismatch);
        }
        return Ok(());
    }
    if path.is_empty() || path.len() > MAX_CONSISTENCY_PATH {
        return Err(ProofError::WrongPathLength);
    }

    // Step 2: when the old tree is complete, its root is the first node of the walk and the
    // log left it out of the path.
    let (first, rest) = if old_size.is_power_of_two() {
        (old_root, path)
    } else {
        (&path[0], &path[1..])
    };
    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let mut old_computed = *first;
    let mut new_computed = *first;
    for node in rest {
        if snode == 0 {
            return Err(ProofError::WrongPathLength);
        }
        if fnode & 1 == 1 || fnode == snode {
            old_computed = node_hash(node, &old_computed);
            new_computed = node_hash(node, &new_computed);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            new_computed = node_hash(&new_computed, node);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(ProofError::WrongPathLength);
    }
    if old_computed != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if new_computed != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}
