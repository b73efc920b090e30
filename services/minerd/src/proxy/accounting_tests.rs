use super::*;

fn record(miner: &str, owner: &str, outcome: Outcome, difficulty: f64) -> ShareRecord {
    ShareRecord {
        miner_id: miner.into(),
        owner: owner.into(),
        outcome,
        difficulty,
    }
}

#[tokio::test]
async fn counts_per_miner_and_owner_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounting.sqlite");
    {
        let store = Accounting::open_path(&path, Duration::from_millis(2)).unwrap();
        assert!(
            store
                .record(record("m1", "alice", Outcome::Accepted, 8.0))
                .await
        );
        assert!(
            store
                .record(record("m1", "alice", Outcome::Accepted, 8.0))
                .await
        );
        assert!(
            store
                .record(record("m2", "alice", Outcome::Stale, 8.0))
                .await
        );
        assert!(
            store
                .record(record("m3", "bob", Outcome::Rejected("duplicate"), 4.0))
                .await
        );
        store.record_detached(record("m1", "alice", Outcome::UpstreamAccepted, 8.0));
        store.record_detached(record(
            "m1",
            "alice",
            Outcome::UpstreamRejected("stale"),
            8.0,
        ));
        assert!(store.flush().await);
        assert_eq!(store.miner("m1").accepted, 2);
        assert_eq!(store.miner("m1").accepted_difficulty, 16.0);
    }
    let store = Accounting::open_path(&path, Duration::from_millis(2)).unwrap();
    let m1 = store.miner("m1");
    assert_eq!(m1.accepted, 2);
    assert_eq!(m1.upstream_accepted, 1);
    assert_eq!(m1.upstream_accepted_difficulty, 8.0);
    assert_eq!(m1.upstream_rejected.get("stale"), Some(&1));
    let alice = store.owner("alice");
    assert_eq!((alice.accepted, alice.stale), (2, 1));
    let bob = store.owner("bob");
    assert_eq!(bob.rejected.get("duplicate"), Some(&1));
    assert_eq!(bob.accepted, 0);
    assert_eq!(store.total().rejected_total(), 1);
}

#[tokio::test]
async fn concurrent_shares_share_batches_and_all_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        Accounting::open_path(&dir.path().join("a.sqlite"), Duration::from_millis(5)).unwrap(),
    );
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .record(record(&format!("m{}", i % 10), "o", Outcome::Accepted, 1.0))
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(t.await.unwrap());
    }
    assert_eq!(store.owner("o").accepted, 200);
    assert_eq!(store.miner("m3").accepted, 20);
}

#[test]
fn the_database_is_in_wal_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.sqlite");
    let store = Accounting::open_path(&path, Duration::from_millis(1)).unwrap();
    drop(store);
    let conn = Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}
