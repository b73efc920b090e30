//! The test pool validates every share through minerd's `Session` and answers with the Stratum
//! error a real pool sends, and it survives malformed input the way a real pool should.

mod pool_support;

use std::time::Duration;

use pool_support::{RawMiner, error_code, pool, spec};
use serde_json::json;
use sim::pool::TestPool;

#[tokio::test]
async fn a_real_share_is_accepted_and_a_repeat_is_a_duplicate() {
    let pool = pool().await;
    let (mut miner, job) = RawMiner::handshake(&pool, "w1").await;
    let share = miner.find_share(&job, "w1", None, true);
    let answer = miner.submit(&share).await;
    assert_eq!(answer["result"], true, "{answer}");
    assert_eq!(error_code(&miner.submit(&share).await), Some(22));
    let stats = pool.stats();
    let worker = stats.worker("w1");
    assert_eq!(worker.accepted, 1);
    assert_eq!(worker.accepted_difficulty, spec().difficulty);
    assert_eq!(worker.rejected.duplicate, 1);
    assert_eq!(stats.total.accepted, 1);
}

#[tokio::test]
async fn a_forged_share_is_low_difficulty() {
    let pool = pool().await;
    let (mut miner, job) = RawMiner::handshake(&pool, "w1").await;
    // A nonce whose header does not hash below the share target, claimed as a share.
    let forged = miner.find_share(&job, "w1", None, false);
    assert_eq!(error_code(&miner.submit(&forged).await), Some(23));
    assert_eq!(pool.stats().worker("w1").rejected.low_difficulty, 1);
    assert_eq!(pool.stats().total.accepted, 0);
}

#[tokio::test]
async fn shares_for_unknown_jobs_and_workers_are_refused() {
    let pool = pool().await;
    let (mut miner, job) = RawMiner::handshake(&pool, "w1").await;
    let mut share = miner.find_share(&job, "w1", None, true);
    share.job_id = "no-such-job".into();
    assert_eq!(error_code(&miner.submit(&share).await), Some(21));
    let mut share = miner.find_share(&job, "w1", None, true);
    share.worker = "never-authorized".into();
    assert_eq!(error_code(&miner.submit(&share).await), Some(24));
    let stats = pool.stats();
    assert_eq!(stats.worker("w1").rejected.unknown_job, 1);
    // Names never authorized are counted in the total only.
    assert_eq!(stats.total.rejected.unauthorized, 1);
    assert!(!stats.workers.contains_key("never-authorized"));
}

#[tokio::test]
async fn a_share_for_a_job_before_the_new_block_is_stale() {
    let mut spec = spec();
    spec.block_interval = Duration::from_millis(300);
    let pool = TestPool::start(spec).await.unwrap();
    let (mut miner, job) = RawMiner::handshake(&pool, "w1").await;
    let share = miner.find_share(&job, "w1", None, true);
    // Wait for a job on a new block (clean_jobs), which makes the first one stale.
    loop {
        let next = miner.next_job().await;
        if next.notify.clean_jobs && next.notify.prevhash != job.notify.prevhash {
            break;
        }
    }
    let answer = miner.submit(&share).await;
    assert_eq!(error_code(&answer), Some(21), "{answer}");
    assert_eq!(pool.stats().worker("w1").rejected.stale, 1);
    assert!(pool.stats().height > 870_001);
}

#[tokio::test]
async fn malformed_lines_are_answered_and_the_connection_kept() {
    let pool = pool().await;
    let (mut miner, _) = RawMiner::handshake(&pool, "w1").await;
    miner.send_line(b"this is not json\n").await.unwrap();
    let answer = miner.answer(None).await;
    assert_eq!(error_code(&answer), Some(20), "{answer}");
    assert!(answer["id"].is_null());
    // A submit with too few params is malformed too; its id is answered.
    let answer = miner.request("mining.submit", json!(["w1"])).await;
    assert_eq!(error_code(&answer), Some(20), "{answer}");
    // The connection still serves.
    let answer = miner
        .request("mining.extranonce.subscribe", json!([]))
        .await;
    assert_eq!(answer["result"], true);
    assert_eq!(pool.stats().malformed_lines, 2);
}

#[tokio::test]
async fn an_unknown_method_gets_an_error_reply() {
    let pool = pool().await;
    let (mut miner, _) = RawMiner::handshake(&pool, "w1").await;
    let answer = miner.request("mining.get_transactions", json!([])).await;
    assert_eq!(error_code(&answer), Some(20), "{answer}");
    assert_eq!(pool.stats().unknown_methods, 1);
    let answer = miner
        .request("mining.extranonce.subscribe", json!([]))
        .await;
    assert_eq!(answer["result"], true);
}

#[tokio::test]
async fn an_oversized_line_closes_the_connection() {
    let pool = pool().await;
    let (mut miner, _) = RawMiner::handshake(&pool, "w1").await;
    let huge = vec![b'x'; 20 * 1024];
    // The pool may close while the line is still being written.
    let _ = miner.send_line(&huge).await;
    while miner.read().await.is_some() {}
    assert_eq!(pool.stats().oversized_lines, 1);
    // The pool itself still serves others.
    let (_other, _) = RawMiner::handshake(&pool, "w2").await;
}

#[tokio::test]
async fn version_rolling_grants_the_intersection_and_checks_the_bits() {
    let pool = pool().await;
    let mut miner = RawMiner::connect(&pool).await;
    // Asking for bits the pool does not offer gets a refusal.
    let refused = miner
        .request(
            "mining.configure",
            json!([["version-rolling"], {"version-rolling.mask": "00001fff"}]),
        )
        .await;
    assert_eq!(refused["result"], json!({"version-rolling": false}));
    let answer = miner
        .request(
            "mining.configure",
            json!([["version-rolling"], {"version-rolling.mask": "00ffff00", "version-rolling.min-bit-count": 2}]),
        )
        .await;
    assert_eq!(
        answer["result"],
        json!({"version-rolling": true, "version-rolling.mask": "00ffe000"})
    );
    let subscribed = miner.request("mining.subscribe", json!([])).await;
    let subscribed = minerd::stratum::SubscribeResult::from_json(&subscribed["result"]).unwrap();
    miner.extranonce1 = subscribed.extranonce1;
    miner.extranonce2_size = subscribed.extranonce2_size;
    assert_eq!(
        miner.request("mining.authorize", json!(["w1", ""])).await["result"],
        true
    );
    let job = miner.next_job().await;

    let rolled = miner.find_share(&job, "w1", Some(0x0012_0000), true);
    assert_eq!(miner.submit(&rolled).await["result"], true);
    // 0x10000000 is in the pool's mask but was not granted.
    let outside = miner.find_share(&job, "w1", Some(0x1000_0000), true);
    assert_eq!(error_code(&miner.submit(&outside).await), Some(20));
    let worker = pool.stats().worker("w1");
    assert_eq!((worker.accepted, worker.accepted_version_rolled), (1, 1));
    assert_eq!(worker.rejected.other, 1);
}

#[tokio::test]
async fn extranonce1_is_unique_per_connection() {
    let pool = pool().await;
    let (a, _) = RawMiner::handshake(&pool, "a").await;
    let (b, _) = RawMiner::handshake(&pool, "b").await;
    assert_eq!(a.extranonce1.len(), spec().extranonce1_size);
    assert_eq!(a.extranonce2_size, spec().extranonce2_size);
    assert_ne!(a.extranonce1, b.extranonce1);
}

#[tokio::test]
async fn one_connection_cannot_authorize_workers_without_end() {
    let pool = pool().await;
    let (mut miner, _) = RawMiner::handshake(&pool, "w0").await;
    for i in 1..256 {
        let answer = miner
            .request("mining.authorize", json!([format!("w{i}"), ""]))
            .await;
        assert_eq!(answer["result"], true, "{answer}");
    }
    let answer = miner
        .request("mining.authorize", json!(["one-too-many", ""]))
        .await;
    assert_eq!(error_code(&answer), Some(24), "{answer}");
    // Names already authorized still are.
    let answer = miner.request("mining.authorize", json!(["w7", ""])).await;
    assert_eq!(answer["result"], true);
    assert_eq!(pool.stats().workers.len(), 256);
}
