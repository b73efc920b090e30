//! RFC 6962 / RFC 9162 Merkle tree hashing, and the in-memory tree the log computes roots from.
//!
//! The hashing is exactly the RFC's, never a variant: a log whose roots no other implementation
//! reproduces proves nothing to anyone else.
//!
//! - leaf hash: `SHA-256(0x00 || leaf)`; interior node: `SHA-256(0x01 || left || right)`. The
//!   distinct prefixes stop an interior node from being passed off as a leaf (second preimage);
//! - the hash of the empty tree is `SHA-256("")`;
//! - a tree of `n > 1` leaves splits at `k`, the largest power of two *smaller* than `n`: the left
//!   subtree is the complete tree of the first `k` leaves, the right one holds the rest.
//!
//! [`MerkleTree`] keeps the leaf hashes (32 bytes each) and, beside them, the root of every
//! *complete* subtree (a power-of-two run of leaves aligned on its own size). Every subtree the
//! RFC's recursion visits starts at such an alignment, so any subtree root, the root of any past
//! tree size and any proof need only `O(log n)` cached roots and `O(log n)` fresh hashes, and never
//! touch a certificate. The cache roughly doubles the memory of the leaf hashes: about 64 bytes
//! per leaf, 6.4 MB for 100,000 certificates.

use sha2::{Digest, Sha256};

/// A node of the tree: a SHA-256 digest.
pub type MerkleHash = [u8; 32];

/// Domain prefix of leaf hashes (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain prefix of interior nodes (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// The RFC leaf hash: `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> MerkleHash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(leaf);
    hasher.finalize().into()
}

/// The RFC interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &MerkleHash, right: &MerkleHash) -> MerkleHash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of the tree with no leaves: `SHA-256("")`.
pub fn empty_root() -> MerkleHash {
    Sha256::digest([]).into()
}

/// The RFC's split point of `n >= 2` leaves: the largest power of two smaller than `n`.
///
/// Not the midpoint: for sizes that are not powers of two the two give different trees, and only
/// this one is interoperable.
pub(crate) fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2, "only a tree of two or more leaves splits");
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree over leaf hashes, with every complete subtree's root cached.
#[derive(Debug, Clone, Default)]
pub struct MerkleTree {
    /// `levels[h][i]` is the root of the complete subtree of `2^h` leaves starting at leaf
    /// `i * 2^h`. `levels[0]` holds the leaf hashes.
    levels: Vec<Vec<MerkleHash>>,
}

impl MerkleTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree over `leaf_hashes`, in order.
    pub fn from_leaf_hashes(leaf_hashes: impl IntoIterator<Item = MerkleHash>) -> Self {
        let mut tree = Self::new();
        for hash in leaf_hashes {
            tree.push(hash);
        }
        tree
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Appends a leaf hash and returns its index.
    ///
    /// Amortised O(1) hashing: each leaf completes on average one cached subtree.
    pub fn push(&mut self, leaf_hash: MerkleHash) -> u64 {
        let index = self.size();
        let mut hash = leaf_hash;
        let mut height = 0;
        loop {
            if self.levels.len() == height {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[height];
            row.push(hash);
            // An even count means the new node completed a pair: its parent is complete too.
            if row.len() % 2 == 1 {
                return index;
            }
            hash = node_hash(&row[row.len() - 2], &row[row.len() - 1]);
            height += 1;
        }
    }

    /// The hash of leaf `index`, if the tree has that many leaves.
    pub fn leaf_hash(&self, index: u64) -> Option<&MerkleHash> {
        self.levels.first()?.get(usize::try_from(index).ok()?)
    }

    /// The root of the whole tree (RFC 9162's `MTH(D[n])`).
    pub fn root(&self) -> MerkleHash {
        self.subtree_root(0, self.size())
    }

    /// The root the tree had when it held only its first `size` leaves, or `None` if it has never
    /// been that large.
    ///
    /// Append-only means every past root stays computable: this is what consistency with an older
    /// signed tree head is checked against.
    pub fn root_at(&self, size: u64) -> Option<MerkleHash> {
        (size <= self.size()).then(|| self.subtree_root(0, size))
    }

    /// `MTH(D[start:end])` for a range whose start is a multiple of the largest power of two not
    /// above its length, which holds for every range the RFC's recursion produces.
    ///
    /// The range splits into complete subtrees of decreasing power-of-two widths (the set bits of
    /// its length); the RFC's tree over it is those subtrees folded from the right.
    pub(super) fn subtree_root(&self, start: u64, end: u64) -> MerkleHash {
        debug_assert!(start <= end && end <= self.size());
        let len = end - start;
        if len == 0 {
            return empty_root();
        }
        debug_assert!(
            start.is_multiple_of(1 << (u64::BITS - 1 - len.leading_zeros())),
            "subtree [{start}, {end}) is not aligned"
        );
        let mut right_edge = end;
        let mut remaining = len;
        let mut folded: Option<MerkleHash> = None;
        while remaining != 0 {
            let width = 1 << remaining.trailing_zeros();
            right_edge -= width;
            remaining -= width;
            let piece = self.complete_subtree(right_edge, width);
            folded = Some(match folded {
                None => *piece,
                Some(right) => node_hash(piece, &right),
            });
        }
        folded.unwrap_or_else(empty_root)
    }

    /// The cached root of the complete subtree of `width` (a power of two) leaves at `start`.
    fn complete_subtree(&self, start: u64, width: u64) -> &MerkleHash {
        let height = width.trailing_zeros() as usize;
        &self.levels[height][(start >> height) as usize]
    }
}
