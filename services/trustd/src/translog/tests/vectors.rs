//! Known answers: the Certificate Transparency reference test vectors (the eight-leaf example of
//! the CT reference implementation, reproduced in transparency-dev/merkle's `testonly` package).
//! Every value is also recomputed by the textbook recursion in [`super::reference_root`], so a
//! typo here cannot pass silently.

use super::super::merkle::{MerkleHash, empty_root, leaf_hash, node_hash, split_point};
use super::super::{MerkleTree, verify_consistency, verify_inclusion};
use super::{reference_consistency, reference_path, reference_root};

const LEAVES: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

/// Root of the tree of the first `n` leaves, for `n` = 0..=8.
const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index from 0, tree size, audit path).
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, consistency path).
const CONSISTENCY: [(u64, u64, &[&str]); 4] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

fn h(text: &str) -> MerkleHash {
    let mut hash = [0u8; 32];
    hex::decode_to_slice(text, &mut hash).expect("64 hex digits");
    hash
}

fn hashes(texts: &[&str]) -> Vec<MerkleHash> {
    texts.iter().map(|text| h(text)).collect()
}

fn reference_tree() -> (Vec<MerkleHash>, MerkleTree) {
    let leaves: Vec<_> = LEAVES.iter().map(|leaf| leaf_hash(leaf)).collect();
    let tree = MerkleTree::from_leaf_hashes(leaves.iter().copied());
    (leaves, tree)
}

#[test]
fn translog_hash_primitives_match_rfc_6962() {
    // SHA-256("") and SHA-256(0x00): no tree logic involved.
    assert_eq!(empty_root(), h(ROOTS[0]));
    assert_eq!(leaf_hash(b""), h(ROOTS[1]));
    // The two-leaf root is one interior node: SHA-256(0x01 || h0 || h1).
    assert_eq!(
        node_hash(&leaf_hash(LEAVES[0]), &leaf_hash(LEAVES[1])),
        h(ROOTS[2])
    );
}

#[test]
fn translog_roots_match_the_reference_vectors_at_every_size() {
    let (leaves, tree) = reference_tree();
    for (size, expected) in ROOTS.iter().enumerate() {
        assert_eq!(
            reference_root(&leaves[..size]),
            h(expected),
            "textbook, size {size}"
        );
        assert_eq!(
            tree.root_at(size as u64),
            Some(h(expected)),
            "cached, size {size}"
        );
        let grown = MerkleTree::from_leaf_hashes(leaves[..size].iter().copied());
        assert_eq!(grown.root(), h(expected), "grown to size {size}");
    }
    assert_eq!(tree.root_at(9), None, "never had nine leaves");
}

#[test]
fn translog_inclusion_proofs_match_the_reference_vectors() {
    let (leaves, tree) = reference_tree();
    for (index, size, expected) in INCLUSION {
        let proof = tree.inclusion_proof(index, size).unwrap();
        assert_eq!(proof.path, hashes(expected), "leaf {index} of {size}");
        assert_eq!(
            reference_path(index as usize, &leaves[..size as usize]),
            hashes(expected)
        );
        verify_inclusion(
            &leaves[index as usize],
            index,
            size,
            &hashes(expected),
            &h(ROOTS[size as usize]),
        )
        .unwrap();
    }
}

#[test]
fn translog_consistency_proofs_match_the_reference_vectors() {
    let (leaves, tree) = reference_tree();
    for (old, new, expected) in CONSISTENCY {
        let proof = tree.consistency_proof(old, new).unwrap();
        assert_eq!(proof.path, hashes(expected), "{old} -> {new}");
        if old < new {
            assert_eq!(
                reference_consistency(old as usize, &leaves[..new as usize]),
                hashes(expected)
            );
        }
        verify_consistency(
            old,
            new,
            &h(ROOTS[old as usize]),
            &h(ROOTS[new as usize]),
            &hashes(expected),
        )
        .unwrap();
    }
}

#[test]
fn translog_split_is_the_largest_power_of_two_below_n_not_the_midpoint() {
    for (n, k) in [
        (2, 1),
        (3, 2),
        (4, 2),
        (5, 4),
        (6, 4),
        (7, 4),
        (8, 4),
        (9, 8),
        (1000, 512),
        (1 << 40, 1 << 39),
        ((1 << 40) + 1, 1 << 40),
        (u64::MAX, 1 << 63),
    ] {
        assert_eq!(split_point(n), k, "n = {n}");
    }
}
