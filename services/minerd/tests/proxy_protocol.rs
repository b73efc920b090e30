//! The proxy's protocol corners, driven line by line by a raw miner: sources the inventory
//! does not know are refused; bad lines, unknown methods and requests out of order get the
//! protocol's error and the session goes on; an oversized line disconnects; forged, duplicate,
//! stale and unknown-job shares are rejected with their codes and never reach the pool;
//! unsanctioned users are refused (and, in quarantine, any user not sanctioned); version
//! rolling is granted as the miner's mask ∩ the pool's and used.

mod proxy_support;

use std::net::Ipv4Addr;
use std::time::Duration;

use proxy_support::{
    Inventory, POOL_DIFFICULTY, RawMiner, error_code, pool, pool_spec, settings, site, wait_until,
};
use serde_json::json;
use sim::pool::TestPool;

fn one_miner(ip: Ipv4Addr, users: &[&str], pool: &TestPool) -> Inventory {
    let inventory = Inventory::default();
    inventory.add_miner(ip, "m", "alice", users);
    inventory.set_pools("alice", &[pool]);
    inventory
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_source_is_refused() {
    let pool = pool().await;
    let site = site(
        one_miner(Ipv4Addr::new(127, 1, 2, 2), &[], &pool),
        settings(),
    )
    .await;
    let mut stranger =
        RawMiner::connect(Ipv4Addr::new(127, 1, 2, 99), site.proxy.local_addr()).await;
    stranger
        .send_raw(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .await;
    assert!(stranger.closed().await);
    assert_eq!(site.proxy.refused_connections(), 1);
    assert!(site.proxy.miner("127.1.2.99".parse().unwrap()).is_none());
    assert_eq!(pool.stats().connections_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_may_hold_only_a_few_connections() {
    let pool = pool().await;
    let ip = Ipv4Addr::new(127, 1, 2, 8);
    let site = site(one_miner(ip, &["alice.m"], &pool), settings()).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut miner = RawMiner::connect(ip, site.proxy.local_addr()).await;
        miner.start("alice.m").await;
        held.push(miner);
    }
    assert_eq!(site.proxy.miner(ip.into()).unwrap().sessions, 4);
    let mut fifth = RawMiner::connect(ip, site.proxy.local_addr()).await;
    assert!(fifth.closed().await);
    assert_eq!(site.proxy.refused_connections(), 1);
    // One leaves: a new connection is served again.
    drop(held.pop());
    wait_until("the session count drops", || {
        site.proxy.miner(ip.into()).unwrap().sessions == 3
    })
    .await;
    let mut again = RawMiner::connect(ip, site.proxy.local_addr()).await;
    let (result, _) = again.start("alice.m").await;
    assert_eq!(result, serde_json::json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_faults_get_errors_and_the_session_goes_on() {
    let pool = pool().await;
    let ip = Ipv4Addr::new(127, 1, 2, 3);
    let site = site(one_miner(ip, &["alice.m"], &pool), settings()).await;
    let mut miner = RawMiner::connect(ip, site.proxy.local_addr()).await;

    // Malformed JSON: error 20 (id unknown, so null).
    miner.send_raw(b"{\"id\":7,\"method\":\n").await;
    let reply = miner.next_message().await.unwrap();
    assert_eq!(error_code(&reply["error"]), Some(20));
    // An unknown method: error 20 with its id.
    let (_, error) = miner.request("mining.teleport", json!([])).await;
    assert_eq!(error_code(&error), Some(20));
    // A share before subscribing: 25; after subscribing but before authorizing: 24.
    let (_, error) = miner
        .request(
            "mining.submit",
            json!(["alice.m", "1", "00", "00000000", "00000000"]),
        )
        .await;
    assert_eq!(error_code(&error), Some(25));
    let (result, error) = miner.request("mining.subscribe", json!([])).await;
    assert!(error.is_null() && result.is_array());
    miner.extranonce1 = hex::decode(result[1].as_str().unwrap()).unwrap();
    miner.extranonce2_size = result[2].as_u64().unwrap() as usize;
    while miner.jobs.is_empty() {
        miner.next_message().await.unwrap();
    }
    let early = miner.share("alice.m", true, 1);
    let (_, error) = miner.request("mining.submit", early).await;
    assert_eq!(error_code(&error), Some(24));

    // The session is undisturbed: authorize and mine.
    let (result, error) = miner
        .request("mining.authorize", json!(["alice.m", "x"]))
        .await;
    assert!(error.is_null(), "{error}");
    assert_eq!(result, json!(true));
    let share = miner.share("alice.m", true, 2);
    let (result, _) = miner.request("mining.submit", share).await;
    assert_eq!(result, json!(true));

    let view = site.proxy.miner(ip.into()).unwrap();
    assert_eq!(view.protocol_errors, 2);
    assert_eq!(view.counts.accepted, 1);
    assert_eq!(view.counts.rejected.get("not_subscribed"), Some(&1));
    assert_eq!(view.counts.rejected.get("unauthorized"), Some(&1));

    // A line past the limit ends the connection.
    let mut huge = vec![b'x'; 20 * 1024];
    huge.push(b'\n');
    miner.send_raw(&huge).await;
    assert!(miner.closed().await);
    wait_until("the view shows it disconnected", || {
        !site.proxy.miner(ip.into()).unwrap().connected
    })
    .await;
    assert_eq!(site.proxy.miner(ip.into()).unwrap().protocol_errors, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_shares_are_rejected_with_their_codes_and_never_forwarded() {
    // New blocks every 1.5 s, so a job goes stale during the test.
    let mut spec = pool_spec();
    spec.block_interval = Duration::from_millis(1500);
    spec.job_interval = Duration::from_millis(400);
    let pool = TestPool::start(spec).await.unwrap();
    let ip = Ipv4Addr::new(127, 1, 2, 4);
    let mut settings = settings();
    // The miner's difficulty stays the pool's, so every valid share is forwarded.
    settings.vardiff.min_difficulty = POOL_DIFFICULTY;
    let site = site(one_miner(ip, &["alice.m"], &pool), settings).await;
    let mut miner = RawMiner::connect(ip, site.proxy.local_addr()).await;
    let (result, _) = miner.start("alice.m").await;
    assert_eq!(result, json!(true));

    let valid = miner.share("alice.m", true, 1);
    let (result, _) = miner.request("mining.submit", valid.clone()).await;
    assert_eq!(result, json!(true));
    let (_, error) = miner.request("mining.submit", valid.clone()).await;
    assert_eq!(error_code(&error), Some(22), "duplicate");
    let forged = miner.share("alice.m", false, 2);
    let (_, error) = miner.request("mining.submit", forged).await;
    assert_eq!(error_code(&error), Some(23), "above the target");
    let mut unknown = miner.share("alice.m", true, 3);
    unknown[1] = json!("no-such-job");
    let (_, error) = miner.request("mining.submit", unknown).await;
    assert_eq!(error_code(&error), Some(21), "unknown job");
    let old_job = miner.jobs.last().unwrap().notify.job_id.clone();
    let stale = miner.share("alice.m", true, 4);
    miner.wait_for_clean_job(&old_job).await;
    let (_, error) = miner.request("mining.submit", stale).await;
    assert_eq!(error_code(&error), Some(21), "stale");

    assert!(site.proxy.accounting().flush().await);
    wait_until("the pool answered the valid share", || {
        site.proxy.accounting().total().upstream_accepted == 1
    })
    .await;
    let counts = site.proxy.miner(ip.into()).unwrap().counts;
    assert_eq!(counts.accepted, 1);
    assert_eq!(counts.stale, 1);
    assert_eq!(counts.rejected.get("duplicate"), Some(&1));
    assert_eq!(counts.rejected.get("low_difficulty"), Some(&1));
    assert_eq!(counts.rejected.get("job_not_found"), Some(&1));
    let at_pool = pool.stats().total;
    assert_eq!(at_pool.accepted, 1);
    let r = at_pool.rejected;
    assert_eq!(
        r.stale + r.unknown_job + r.duplicate + r.low_difficulty + r.unauthorized + r.other,
        0,
        "nothing invalid was forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsanctioned_users_are_refused_and_quarantine_admits_only_sanctioned_ones() {
    let pool = pool().await;
    let (strict, open) = (Ipv4Addr::new(127, 1, 2, 5), Ipv4Addr::new(127, 1, 2, 6));
    let inventory = one_miner(strict, &["alice.m"], &pool);
    inventory.add_miner(open, "open", "alice", &[]);
    let site = site(inventory, settings()).await;

    let mut miner = RawMiner::connect(strict, site.proxy.local_addr()).await;
    let (_, error) = miner.start("mallory.x").await;
    assert_eq!(error_code(&error), Some(24));
    let view = site.proxy.miner(strict.into()).unwrap();
    assert_eq!(view.refused_users, vec!["mallory.x".to_string()]);
    assert_eq!(view.authorized_user, None);
    let (result, _) = miner
        .request("mining.authorize", json!(["alice.m", ""]))
        .await;
    assert_eq!(result, json!(true));

    // A miner without sanctioned identities may use any, until it is quarantined.
    let mut other = RawMiner::connect(open, site.proxy.local_addr()).await;
    let (result, _) = other.start("whoever").await;
    assert_eq!(result, json!(true));
    let share = other.share("whoever", true, 1);
    let (result, _) = other.request("mining.submit", share).await;
    assert_eq!(result, json!(true));
    site.proxy.quarantine(open.into(), true);
    let share = other.share("whoever", true, 2);
    let (_, error) = other.request("mining.submit", share).await;
    assert_eq!(error_code(&error), Some(24));
    let (_, error) = other
        .request("mining.authorize", json!(["someone.else", ""]))
        .await;
    assert_eq!(error_code(&error), Some(24));
    let view = site.proxy.miner(open.into()).unwrap();
    assert!(view.quarantined);
    assert_eq!(view.refused_users, vec!["someone.else".to_string()]);
    site.proxy.quarantine(open.into(), false);
    assert!(!site.proxy.miner(open.into()).unwrap().quarantined);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_rolling_is_the_miners_mask_within_the_pools() {
    let mut spec = pool_spec();
    spec.version_mask = 0x1fff_e000;
    let pool = TestPool::start(spec).await.unwrap();
    let ip = Ipv4Addr::new(127, 1, 2, 7);
    let mut settings = settings();
    settings.vardiff.min_difficulty = POOL_DIFFICULTY;
    let site = site(one_miner(ip, &["alice.m"], &pool), settings).await;
    let mut miner = RawMiner::connect(ip, site.proxy.local_addr()).await;
    let (result, error) = miner
        .request(
            "mining.configure",
            json!([["version-rolling"], {"version-rolling.mask": "00ffff00", "version-rolling.min-bit-count": 2}]),
        )
        .await;
    assert!(error.is_null(), "{error}");
    assert_eq!(result["version-rolling"], json!(true));
    assert_eq!(result["version-rolling.mask"], json!("00ffe000"));
    miner.start("alice.m").await;

    let rolled = miner.rolled_share("alice.m", true, 1, Some(0x0040_2000));
    let (result, error) = miner.request("mining.submit", rolled).await;
    assert_eq!(result, json!(true), "{error}");
    let outside = miner.rolled_share("alice.m", true, 2, Some(0x0000_0100));
    let (_, error) = miner.request("mining.submit", outside).await;
    assert_eq!(error_code(&error), Some(20));
    wait_until("the rolled share accepted by the pool", || {
        pool.stats().total.accepted_version_rolled == 1
    })
    .await;
    assert!(site.proxy.accounting().flush().await);
    assert_eq!(
        site.proxy
            .miner(ip.into())
            .unwrap()
            .counts
            .rejected
            .get("version_bits"),
        Some(&1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moved_miners_get_the_new_extranonce_or_a_reconnect() {
    let (primary, backup) = (pool().await, pool().await);
    let (follows, plain) = (Ipv4Addr::new(127, 1, 2, 9), Ipv4Addr::new(127, 1, 2, 10));
    let inventory = Inventory::default();
    inventory.add_miner(follows, "follows", "alice", &[]);
    inventory.add_miner(plain, "plain", "alice", &[]);
    inventory.set_pools("alice", &[&primary, &backup]);
    let mut settings = settings();
    settings.vardiff.min_difficulty = POOL_DIFFICULTY;
    let site = site(inventory, settings).await;

    let mut a = RawMiner::connect(follows, site.proxy.local_addr()).await;
    a.start("alice.a").await;
    let (result, _) = a.request("mining.extranonce.subscribe", json!([])).await;
    assert_eq!(result, json!(true));
    let mut b = RawMiner::connect(plain, site.proxy.local_addr()).await;
    b.start("alice.b").await;
    let last_job = a.jobs.last().unwrap().notify.job_id.clone();

    primary.set_outage(true);
    // The miner that subscribed to extranonce changes stays, with a new one and clean work.
    let new_job = a.wait_for_clean_job(&last_job).await;
    assert_eq!(a.extranonce_changes, 1);
    let connection = |job_id: &str| job_id.split('.').next().unwrap().to_string();
    assert_ne!(connection(&new_job.job_id), connection(&last_job));
    let share = a.share("alice.a", true, 1);
    let (result, error) = a.request("mining.submit", share).await;
    assert_eq!(result, json!(true), "{error}");
    wait_until("the share reached the backup", || {
        backup.stats().total.accepted == 1
    })
    .await;
    // The other is told to reconnect and let go.
    let mut told = false;
    while let Some(message) = b.next_message().await {
        told |= message["method"] == json!("client.reconnect");
    }
    assert!(told, "client.reconnect before the close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_pool_down_subscribe_is_refused_until_one_is_back() {
    let pool = pool().await;
    pool.set_outage(true);
    let ip = Ipv4Addr::new(127, 1, 2, 11);
    let site = site(one_miner(ip, &[], &pool), settings()).await;
    let mut miner = RawMiner::connect(ip, site.proxy.local_addr()).await;
    // Refused after the connect timeout (2 s here), with the session kept.
    let (_, error) = miner.request("mining.subscribe", json!([])).await;
    assert_eq!(error_code(&error), Some(20));
    pool.set_outage(false);
    let mut answered = false;
    for _ in 0..10 {
        let (result, _) = miner.request("mining.subscribe", json!([])).await;
        if result.is_array() {
            answered = true;
            break;
        }
    }
    assert!(answered, "subscribed once the pool was back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_sessions_and_closes_pool_connections() {
    let pool = pool().await;
    let ip = Ipv4Addr::new(127, 1, 2, 12);
    let site = site(one_miner(ip, &[], &pool), settings()).await;
    let mut miner = RawMiner::connect(ip, site.proxy.local_addr()).await;
    miner.start("alice.any").await;
    assert_eq!(site.proxy.upstreams().len(), 1);
    site.proxy.stop();
    assert!(miner.closed().await);
    wait_until("the pool connection closed", || {
        site.proxy.upstreams().is_empty() && pool.stats().connections == 0
    })
    .await;
    assert!(
        tokio::net::TcpStream::connect(site.proxy.local_addr())
            .await
            .is_err(),
        "no longer listening"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_shares_meeting_the_pools_target_are_forwarded() {
    let pool_difficulty = POOL_DIFFICULTY * 16.0;
    let mut spec = pool_spec();
    spec.difficulty = pool_difficulty;
    let pool = TestPool::start(spec).await.unwrap();
    let ip = Ipv4Addr::new(127, 1, 2, 13);
    let mut settings = settings();
    // The miner's difficulty is fixed, 16 times below the pool's.
    settings.vardiff.min_difficulty = POOL_DIFFICULTY;
    settings.vardiff.max_difficulty = POOL_DIFFICULTY;
    let site = site(one_miner(ip, &[], &pool), settings).await;
    let mut miner = RawMiner::connect(ip, site.proxy.local_addr()).await;
    miner.start("alice.any").await;
    assert_eq!(miner.difficulty, POOL_DIFFICULTY);
    for extranonce2 in 1..=6u64 {
        let share = if extranonce2 % 2 == 0 {
            // Good for the pool too.
            miner.share_between("alice.any", extranonce2, pool_difficulty, 1e12)
        } else {
            // Good for the miner's target only.
            miner.share_between("alice.any", extranonce2, POOL_DIFFICULTY, pool_difficulty)
        };
        let (result, error) = miner.request("mining.submit", share).await;
        assert_eq!(result, json!(true), "{error}");
    }
    wait_until("the pool answered the forwarded shares", || {
        site.proxy.accounting().total().upstream_accepted == 3
    })
    .await;
    let at_pool = pool.stats().total;
    assert_eq!(at_pool.accepted, 3);
    assert_eq!(at_pool.rejected.low_difficulty, 0);
    assert_eq!(site.proxy.miner(ip.into()).unwrap().counts.accepted, 6);
}
