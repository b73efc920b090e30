//! The pool's control: an outage drops and refuses miners, silence answers nothing, a new
//! difficulty applies from the next job, and it can tell miners to reconnect or take a new
//! extranonce1.

mod pool_support;

use std::time::Duration;

use pool_support::{RawMiner, error_code, pool, wait_until};
use serde_json::json;
use sim::pool::TestPool;

#[tokio::test]
async fn an_outage_drops_every_miner_and_refuses_new_ones_until_it_ends() {
    let pool = pool().await;
    let (mut miner, _) = RawMiner::handshake(&pool, "w1").await;
    pool.set_outage(true);
    while miner.read().await.is_some() {}
    wait_until("the connection is counted as closed", || {
        pool.stats().connections == 0
    })
    .await;
    // Accepted and closed at once: nothing is ever answered.
    let mut refused = RawMiner::connect(&pool).await;
    let _ = refused
        .send_line(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .await;
    assert!(refused.read().await.is_none());

    pool.set_outage(false);
    let (_miner, _) = RawMiner::handshake(&pool, "w1").await;
}

#[tokio::test]
async fn a_silent_pool_answers_nothing_until_it_speaks_again() {
    let pool = pool().await;
    let (mut miner, _) = RawMiner::handshake(&pool, "w1").await;
    pool.set_silent(true);
    miner
        .send_line(b"{\"id\":50,\"method\":\"mining.extranonce.subscribe\",\"params\":[]}\n")
        .await
        .unwrap();
    // Nothing comes while silent; the socket stays open.
    let waited = tokio::time::timeout(Duration::from_millis(700), miner.read()).await;
    assert!(waited.is_err(), "a silent pool answered: {waited:?}");
    assert_eq!(pool.stats().connections, 1);
    pool.set_silent(false);
    let answer = miner
        .request("mining.extranonce.subscribe", json!([]))
        .await;
    assert_eq!(answer["result"], true);
}

#[tokio::test]
async fn a_new_difficulty_applies_from_the_next_job() {
    let mut spec = pool_support::spec();
    spec.job_interval = Duration::from_millis(200);
    let pool = TestPool::start(spec).await.unwrap();
    let (mut miner, first_job) = RawMiner::handshake(&pool, "w1").await;
    // A difficulty no tiny-difficulty share meets.
    pool.set_difficulty(1e9);
    let next_job = loop {
        let job = miner.next_job().await;
        if job.notify.job_id != first_job.notify.job_id {
            break job;
        }
    };
    // Announced before the job it applies to.
    assert!(
        miner
            .notifications
            .iter()
            .any(|n| n["method"] == "mining.set_difficulty" && n["params"][0] == 1e9),
        "{:?}",
        miner.notifications
    );
    let share = miner.find_share(&next_job, "w1", None, true);
    let answer = miner.submit(&share).await;
    assert_eq!(error_code(&answer), Some(23), "{answer}");
    assert_eq!(pool.stats().difficulty, 1e9);
}

#[tokio::test]
async fn miners_are_told_to_reconnect() {
    let pool = pool().await;
    let (mut miner, _) = RawMiner::handshake(&pool, "w1").await;
    pool.reconnect_all();
    loop {
        let message = miner.read().await.expect("closed before client.reconnect");
        if message["method"] == "client.reconnect" {
            assert!(message["id"].is_null());
            break;
        }
    }
}

#[tokio::test]
async fn a_new_extranonce1_goes_to_subscribers_with_a_clean_job() {
    let pool = pool().await;
    let (mut miner, old_job) = RawMiner::handshake(&pool, "w1").await;
    let (mut other, _) = RawMiner::handshake(&pool, "w2").await;
    assert_eq!(
        miner
            .request("mining.extranonce.subscribe", json!([]))
            .await["result"],
        true
    );
    let old_share = miner.find_share(&old_job, "w1", None, true);
    pool.set_extranonce_all();
    let set = loop {
        let message = miner.read().await.expect("closed");
        if message["method"] == "mining.set_extranonce" {
            break message;
        }
    };
    let extranonce1 = hex::decode(set["params"][0].as_str().unwrap()).unwrap();
    assert_ne!(extranonce1, miner.extranonce1);
    miner.extranonce1 = extranonce1;
    let job = miner.next_job().await;
    assert!(job.notify.clean_jobs);
    // Work under the new extranonce1 is accepted; the old job is stale.
    let share = miner.find_share(&job, "w1", None, true);
    assert_eq!(miner.submit(&share).await["result"], true);
    assert_eq!(error_code(&miner.submit(&old_share).await), Some(21));
    // A miner that did not subscribe to extranonce changes keeps its own.
    let answer = other
        .request("mining.extranonce.subscribe", json!([]))
        .await;
    assert!(
        !other
            .notifications
            .iter()
            .any(|n| n["method"] == "mining.set_extranonce"),
        "{answer}"
    );
}
