//! Proof bundles: the JSON `bunkerctl ca log verify` reads, its parser as hostile input, and
//! verification against signed heads (where the tree sizes finally get bound).

use super::super::{
    BundleVerifyError, EntryInclusion, HeadConsistency, LogEntry, MAX_PROOF_BUNDLE_LEN, MerkleHash,
    MerkleTree, ProofBundle, SignedTreeHead, TreeHead, WireError, parse_proof_bundle,
};
use super::{SoftwareCaKey, hash_flips, single_bit_flips, test_entry};
use crate::ca_key::CaKey;

const OLD_SIZE: u64 = 6;
const NEW_SIZE: u64 = 13;
const INDEX: u64 = 9;

/// A bundle proving entry 9 in a signed tree of 13, consistent with a signed tree of 6.
fn bundle(key: &SoftwareCaKey) -> ProofBundle {
    let entries: Vec<LogEntry> = (0..NEW_SIZE).map(test_entry).collect();
    let tree = MerkleTree::from_leaf_hashes(entries.iter().map(LogEntry::leaf_hash));
    let head = |size| TreeHead {
        size,
        root: tree.root_at(size).unwrap(),
        timestamp_ms: 1_767_225_600_000 + size,
    };
    ProofBundle {
        tree_head: head(NEW_SIZE).sign(key).unwrap(),
        inclusion: Some(EntryInclusion {
            index: INDEX,
            entry: entries[INDEX as usize].clone(),
            path: tree.inclusion_proof(INDEX, NEW_SIZE).unwrap().path,
        }),
        consistency: Some(HeadConsistency {
            old_tree_head: head(OLD_SIZE).sign(key).unwrap(),
            path: tree.consistency_proof(OLD_SIZE, NEW_SIZE).unwrap().path,
        }),
    }
}

#[test]
fn translog_bundles_round_trip_through_json_and_verify() {
    let key = SoftwareCaKey::new(1);
    let bundle = bundle(&key);
    let json = bundle.to_json();
    assert!(json.starts_with("{\"format\":\"bunkeros-translog-proof-v1\",\"tree_head\":{"));
    let parsed = parse_proof_bundle(json.as_bytes()).unwrap();
    assert_eq!(parsed, bundle);
    parsed.verify(key.public_key_sec1()).unwrap();

    // Each part is optional; a bare signed head verifies on its own.
    let bare = ProofBundle {
        inclusion: None,
        consistency: None,
        ..bundle.clone()
    };
    let bare_json = bare.to_json();
    assert!(!bare_json.contains("inclusion") && !bare_json.contains("consistency"));
    let parsed = parse_proof_bundle(bare_json.as_bytes()).unwrap();
    parsed.verify(key.public_key_sec1()).unwrap();
}

#[test]
fn translog_bundles_from_another_key_are_rejected() {
    let bundle = bundle(&SoftwareCaKey::new(1));
    let other = SoftwareCaKey::new(2);
    assert!(matches!(
        bundle.verify(other.public_key_sec1()),
        Err(BundleVerifyError::TreeHead { .. })
    ));
    // A genuine current head with an old head signed by someone else.
    let mut mixed = bundle.clone();
    let theirs = SignedTreeHead {
        signature: other.sign_raw(
            &mixed
                .consistency
                .as_ref()
                .unwrap()
                .old_tree_head
                .head
                .signed_bytes(),
        ),
        ..mixed.consistency.as_ref().unwrap().old_tree_head.clone()
    };
    mixed.consistency.as_mut().unwrap().old_tree_head = theirs;
    assert!(matches!(
        mixed.verify(SoftwareCaKey::new(1).public_key_sec1()),
        Err(BundleVerifyError::OldTreeHead { .. })
    ));
}

/// Every field the bundle carries is bound: changing any of them is rejected, by a signature
/// (sizes, timestamps, roots) or by a proof (index, entry, paths).
///
/// Each ECDSA verification costs milliseconds in a debug build, so this checks representative
/// bits of every field; the exhaustive single-bit coverage is in `tree_head.rs` (every bit of a
/// signed head) and `proofs.rs` (every bit of proofs, roots and leaves).
#[test]
fn translog_tampering_any_field_of_a_bundle_is_rejected() {
    let key = SoftwareCaKey::new(1);
    let public = key.public_key_sec1();
    let good = bundle(&key);
    let rejected = |mutate: &dyn Fn(&mut ProofBundle)| {
        let mut tampered = good.clone();
        mutate(&mut tampered);
        assert_ne!(tampered, good, "the mutation changed nothing");
        tampered.verify(public).is_err()
    };
    for bit in [0, 1, 7, 31, 32, 63] {
        let flip = 1u64 << bit;
        assert!(
            rejected(&|b| b.tree_head.head.size ^= flip),
            "size bit {bit}"
        );
        assert!(
            rejected(&|b| b.tree_head.head.timestamp_ms ^= flip),
            "timestamp bit {bit}"
        );
        assert!(
            rejected(&|b| old_head(b).size ^= flip),
            "old size bit {bit}"
        );
        assert!(
            rejected(&|b| old_head(b).timestamp_ms ^= flip),
            "old timestamp bit {bit}"
        );
        assert!(rejected(&|b| inclusion(b).index ^= flip), "index bit {bit}");
    }
    let some_bits =
        |hash: &MerkleHash| -> Vec<MerkleHash> { hash_flips(hash).step_by(37).collect() };
    for root in some_bits(&good.tree_head.head.root) {
        assert!(rejected(&|b| b.tree_head.head.root = root));
    }
    let old_root = good.consistency.as_ref().unwrap().old_tree_head.head.root;
    for root in some_bits(&old_root) {
        assert!(rejected(&|b| old_head(b).root = root));
    }
    for (at, element) in good.inclusion.as_ref().unwrap().path.iter().enumerate() {
        for hash in some_bits(element) {
            assert!(
                rejected(&|b| inclusion(b).path[at] = hash),
                "inclusion path[{at}]"
            );
        }
    }
    for (at, element) in good.consistency.as_ref().unwrap().path.iter().enumerate() {
        for hash in some_bits(element) {
            assert!(
                rejected(&|b| b.consistency.as_mut().unwrap().path[at] = hash),
                "consistency path[{at}]"
            );
        }
    }
    // The entry: a changed leaf either no longer decodes, or is not the logged entry.
    let leaf = good.inclusion.as_ref().unwrap().entry.encode();
    for flipped in single_bit_flips(&leaf).step_by(29) {
        if let Ok(entry) = LogEntry::decode(&flipped) {
            assert!(rejected(&|b| inclusion(b).entry = entry.clone()));
        }
    }
    // Dropping a part, or the path of one proof in place of the other.
    let mut dropped = good.clone();
    dropped.inclusion.as_mut().unwrap().path.pop();
    assert!(dropped.verify(public).is_err());
    let mut swapped = good.clone();
    swapped.inclusion.as_mut().unwrap().path = good.consistency.as_ref().unwrap().path.clone();
    assert!(swapped.verify(public).is_err());
}

fn old_head(bundle: &mut ProofBundle) -> &mut TreeHead {
    &mut bundle.consistency.as_mut().unwrap().old_tree_head.head
}

fn inclusion(bundle: &mut ProofBundle) -> &mut EntryInclusion {
    bundle.inclusion.as_mut().unwrap()
}

/// A cheap stand-in for the fuzzer: every byte of a valid bundle replaced, every prefix cut.
/// Nothing panics, and a sample of what still parses is checked to verify only if it is the
/// original bundle (verification costs an ECDSA check, slow in debug builds).
#[test]
fn translog_mutated_bundle_bytes_never_panic_nor_verify_as_something_else() {
    let key = SoftwareCaKey::new(1);
    let good = bundle(&key);
    let json = good.to_json().into_bytes();
    let mut verified = 0;
    for at in 0..json.len() {
        for replacement in [b'0', b'f', b'A', b'"', b'}', b',', b' ', 0x00, 0xff] {
            if json[at] == replacement {
                continue;
            }
            let mut mutated = json.clone();
            mutated[at] = replacement;
            let Ok(parsed) = parse_proof_bundle(&mutated) else {
                continue;
            };
            if at % 29 == 0 {
                verified += 1;
                assert!(
                    parsed == good || parsed.verify(key.public_key_sec1()).is_err(),
                    "byte {at} -> {replacement:#x} verified as a different bundle"
                );
            }
        }
    }
    assert!(verified > 20, "{verified}");
    for len in 0..json.len() {
        assert!(parse_proof_bundle(&json[..len]).is_err(), "prefix {len}");
    }
}

#[test]
fn translog_bundle_parser_refuses_what_no_valid_bundle_contains() {
    let key = SoftwareCaKey::new(1);
    let json = bundle(&key).to_json();

    let other_format = json.replace("bunkeros-translog-proof-v1", "bunkeros-translog-proof-v2");
    assert!(matches!(
        parse_proof_bundle(other_format.as_bytes()),
        Err(WireError::UnknownFormat { .. })
    ));
    let extra_field = json.replacen("{\"format\"", "{\"note\":\"hi\",\"format\"", 1);
    assert!(matches!(
        parse_proof_bundle(extra_field.as_bytes()),
        Err(WireError::Json(_))
    ));
    let nested_extra = json.replacen("\"index\":", "\"leaf_hash\":\"00\",\"index\":", 1);
    assert!(matches!(
        parse_proof_bundle(nested_extra.as_bytes()),
        Err(WireError::Json(_))
    ));

    let hash = format!("\"{}\"", "ab".repeat(32));
    let path_of = |n: usize| vec![hash.as_str(); n].join(",");
    let long_inclusion = format!(
        "{{\"format\":\"bunkeros-translog-proof-v1\",\"tree_head\":{},\"inclusion\":{{\"index\":0,\"entry\":\"{}\",\"path\":[{}]}}}}",
        bundle(&key).tree_head.to_json(),
        hex::encode(test_entry(0).encode()),
        path_of(65)
    );
    match parse_proof_bundle(long_inclusion.as_bytes()) {
        Err(WireError::Field { field, .. }) => assert_eq!(field, "inclusion.path"),
        other => panic!("{other:?}"),
    }
    let bad_entry = long_inclusion.replace(&path_of(65), &path_of(1)).replacen(
        "\"entry\":\"01",
        "\"entry\":\"02",
        1,
    );
    match parse_proof_bundle(bad_entry.as_bytes()) {
        Err(WireError::Entry { field, .. }) => assert_eq!(field, "inclusion.entry"),
        other => panic!("{other:?}"),
    }

    let padded = format!("{json}{}", " ".repeat(MAX_PROOF_BUNDLE_LEN));
    assert!(matches!(
        parse_proof_bundle(padded.as_bytes()),
        Err(WireError::TooLarge { .. })
    ));
    for garbage in [
        &b""[..],
        b"null",
        b"[]",
        b"{}",
        b"\xff\xfe",
        b"{\"format\":1}",
    ] {
        assert!(parse_proof_bundle(garbage).is_err());
    }
}
