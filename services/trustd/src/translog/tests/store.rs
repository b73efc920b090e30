//! The log file: durable appends, reopening, torn tails cut, corruption refused.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use appliance::state::StateDir;
use tempfile::TempDir;

use super::super::{LOG_FILE, LogStore, StoreError, TornTail, TreeHead, parse_proof_bundle};
use super::{SoftwareCaKey, test_entry};
use crate::ca_key::CaKey;

/// File header length, and the per-record overhead (length, its complement, leaf hash).
const FILE_HEADER: u64 = 8;
const RECORD_OVERHEAD: u64 = 8 + 32;

struct Scratch {
    _tmp: TempDir,
    state: StateDir,
}

impl Scratch {
    fn new() -> Self {
        let tmp = TempDir::new().unwrap();
        let state = StateDir::new(tmp.path().join("trustd")).unwrap();
        Self { _tmp: tmp, state }
    }

    fn log_path(&self) -> PathBuf {
        self.state.path().join(LOG_FILE)
    }

    /// A log with entries `0..n`, closed again; returns its root.
    fn with_entries(&self, n: u64) -> [u8; 32] {
        let mut store = LogStore::open(&self.state).unwrap();
        for i in 0..n {
            assert_eq!(store.append(&test_entry(i)).unwrap(), i);
        }
        store.root()
    }

    fn append_raw(&self, bytes: &[u8]) {
        let mut file = OpenOptions::new()
            .append(true)
            .open(self.log_path())
            .unwrap();
        file.write_all(bytes).unwrap();
    }

    /// Byte offset of record `index` in a log written by [`Scratch::with_entries`].
    fn record_offset(index: u64) -> u64 {
        FILE_HEADER
            + (0..index)
                .map(|i| test_entry(i).encode().len() as u64 + RECORD_OVERHEAD)
                .sum::<u64>()
    }

    fn flip_byte(&self, offset: u64, mask: u8) {
        let mut bytes = fs::read(self.log_path()).unwrap();
        bytes[offset as usize] ^= mask;
        fs::write(self.log_path(), bytes).unwrap();
    }
}

#[test]
fn translog_store_appends_survive_reopen_with_the_same_root_and_entries() {
    let scratch = Scratch::new();
    let root = scratch.with_entries(50);
    let store = LogStore::open(&scratch.state).unwrap();
    assert_eq!(store.size(), 50);
    assert_eq!(store.root(), root);
    assert_eq!(store.torn_tail(), None);
    for i in [0, 17, 49] {
        assert_eq!(store.entry(i).unwrap(), test_entry(i));
    }
    assert!(matches!(
        store.entry(50),
        Err(StoreError::NoSuchEntry {
            index: 50,
            size: 50
        })
    ));
    // The file is exactly the header and the records, and private to trustd.
    let len = fs::metadata(scratch.log_path()).unwrap().len();
    assert_eq!(len, Scratch::record_offset(50));
    let mode = fs::metadata(scratch.log_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn translog_an_empty_log_has_the_empty_root_and_reopens() {
    let scratch = Scratch::new();
    let root = scratch.with_entries(0);
    assert_eq!(root, super::super::empty_root());
    let mut store = LogStore::open(&scratch.state).unwrap();
    assert_eq!(store.size(), 0);
    store.append(&test_entry(0)).unwrap();
    assert_eq!(store.size(), 1);
}

#[test]
fn translog_a_second_process_cannot_open_the_log_while_it_is_held() {
    let scratch = Scratch::new();
    let held = LogStore::open(&scratch.state).unwrap();
    assert!(matches!(
        LogStore::open(&scratch.state),
        Err(StoreError::Locked { .. })
    ));
    drop(held);
    LogStore::open(&scratch.state).unwrap();
}

#[test]
fn translog_a_torn_last_record_is_cut_off_and_reported() {
    let full = test_entry(3).encode();
    let record_len = full.len() as u64 + RECORD_OVERHEAD;
    // Cut inside the length, after the length, inside the entry, one byte before the end.
    for kept in [1, 3, 8, 20, record_len - 1] {
        let scratch = Scratch::new();
        let root = scratch.with_entries(3);
        let mut record = Vec::new();
        record.extend_from_slice(&(full.len() as u32).to_be_bytes());
        record.extend_from_slice(&(!(full.len() as u32)).to_be_bytes());
        record.extend_from_slice(&full);
        record.extend_from_slice(&test_entry(3).leaf_hash());
        scratch.append_raw(&record[..kept as usize]);

        let mut store = LogStore::open(&scratch.state).unwrap();
        assert_eq!(store.size(), 3, "kept {kept}");
        assert_eq!(store.root(), root);
        let offset = Scratch::record_offset(3);
        assert_eq!(
            store.torn_tail(),
            Some(TornTail {
                offset,
                bytes: kept
            })
        );
        assert_eq!(fs::metadata(scratch.log_path()).unwrap().len(), offset);
        // The log goes on as if the torn write never happened.
        assert_eq!(store.append(&test_entry(3)).unwrap(), 3);
        drop(store);
        let store = LogStore::open(&scratch.state).unwrap();
        assert_eq!((store.size(), store.torn_tail()), (4, None));
    }
}

#[test]
fn translog_a_tail_of_never_written_zeros_is_a_torn_write() {
    let scratch = Scratch::new();
    let root = scratch.with_entries(2);
    scratch.append_raw(&[0u8; 4096]);
    let store = LogStore::open(&scratch.state).unwrap();
    assert_eq!((store.size(), store.root()), (2, root));
    assert_eq!(store.torn_tail().unwrap().bytes, 4096);
}

#[test]
fn translog_corruption_is_an_error_and_the_file_is_left_untouched() {
    // (what, record, byte within the record, bit mask)
    let cases: [(&str, u64, u64, u8); 6] = [
        ("length of a middle record", 1, 3, 0x01),
        ("complement of a middle record", 1, 7, 0x80),
        ("entry of a middle record", 1, 30, 0x04),
        ("version byte of a middle record", 1, 8, 0x02),
        (
            "hash of the first record",
            0,
            test_entry(0).encode().len() as u64 + 39,
            0x10,
        ),
        // The last record is acknowledged: damage there is corruption, not a torn write.
        ("length of the last record", 2, 3, 0x01),
    ];
    for (what, record, within, mask) in cases {
        let scratch = Scratch::new();
        scratch.with_entries(3);
        scratch.flip_byte(Scratch::record_offset(record) + within, mask);
        let before = fs::read(scratch.log_path()).unwrap();
        match LogStore::open(&scratch.state) {
            Err(StoreError::Corrupt { index, offset, .. }) => {
                assert_eq!(index, record, "{what}");
                assert_eq!(offset, Scratch::record_offset(record), "{what}");
            }
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(
            fs::read(scratch.log_path()).unwrap(),
            before,
            "{what}: never repaired"
        );
    }
}

#[test]
fn translog_a_damaged_entry_is_caught_when_read_back_after_open() {
    let scratch = Scratch::new();
    scratch.with_entries(3);
    let store = LogStore::open(&scratch.state).unwrap();
    scratch.flip_byte(Scratch::record_offset(1) + 40, 0x01);
    assert!(matches!(
        store.entry(1),
        Err(StoreError::Corrupt { index: 1, .. })
    ));
    store.entry(0).unwrap();
}

#[test]
fn translog_a_foreign_file_is_not_taken_for_a_log() {
    let scratch = Scratch::new();
    fs::write(scratch.log_path(), b"certificate database v3\n").unwrap();
    assert!(matches!(
        LogStore::open(&scratch.state),
        Err(StoreError::NotALog { .. })
    ));
    fs::write(scratch.log_path(), b"xyz").unwrap();
    assert!(matches!(
        LogStore::open(&scratch.state),
        Err(StoreError::NotALog { .. })
    ));
    // A header cut short by a crash at creation is simply written again.
    fs::write(scratch.log_path(), b"BKT").unwrap();
    LogStore::open(&scratch.state).unwrap();
    assert_eq!(fs::read(scratch.log_path()).unwrap(), b"BKTLOG\x00\x01");
}

#[test]
fn translog_past_tree_heads_are_confirmed_and_foreign_ones_refused() {
    let scratch = Scratch::new();
    scratch.with_entries(10);
    let store = LogStore::open(&scratch.state).unwrap();
    for size in 0..=10 {
        let head = TreeHead {
            size,
            root: store.tree().root_at(size).unwrap(),
            timestamp_ms: 1,
        };
        store.confirm_tree_head(&head).unwrap();
    }
    let ahead = TreeHead {
        size: 11,
        root: store.root(),
        timestamp_ms: 1,
    };
    assert!(matches!(
        store.confirm_tree_head(&ahead),
        Err(StoreError::HeadNotInLog {
            head_size: 11,
            log_size: 10,
            ..
        })
    ));
    let rewritten = TreeHead {
        root: store.tree().root_at(9).unwrap(),
        ..store.tree_head(1)
    };
    assert!(matches!(
        store.confirm_tree_head(&rewritten),
        Err(StoreError::HeadNotInLog { head_size: 10, .. })
    ));
}

#[test]
fn translog_store_proof_bundles_verify_offline() {
    let key = SoftwareCaKey::new(1);
    let scratch = Scratch::new();
    scratch.with_entries(7);
    let mut store = LogStore::open(&scratch.state).unwrap();
    let old = store.tree_head(100).sign(&key).unwrap();
    for i in 7..20 {
        store.append(&test_entry(i)).unwrap();
    }
    let current = store.tree_head(200).sign(&key).unwrap();
    let bundle = store.proof_bundle(&current, Some(3), Some(&old)).unwrap();
    let parsed = parse_proof_bundle(bundle.to_json().as_bytes()).unwrap();
    assert_eq!(parsed, bundle);
    parsed.verify(key.public_key_sec1()).unwrap();
    assert_eq!(parsed.inclusion.unwrap().entry, test_entry(3));

    // An old head from a different history is evidence of a fork, not something to prove.
    let forked = TreeHead {
        root: [7; 32],
        ..old.head
    }
    .sign(&key)
    .unwrap();
    assert!(matches!(
        store.proof_bundle(&current, None, Some(&forked)),
        Err(StoreError::HeadNotInLog { .. })
    ));
    assert!(matches!(
        store.proof_bundle(&current, Some(20), None),
        Err(StoreError::Proof(_))
    ));
}
