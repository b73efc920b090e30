//! Simulated miners → the proxy → two test pools: shares accepted end to end and counted at the
//! pool, per miner and per owner; few upstream connections carrying many miners; version
//! rolling used; failover on an outage or a silent pool and back; the pools' accepted shares
//! equal what the proxy counts as accepted upstream; every share acknowledged to a miner is in
//! the accounting.

mod proxy_support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use minerd::proxy::SanctionedPool;
use proxy_support::{Inventory, POOL_DIFFICULTY, Site, miner, pool, settings, site, wait_until};
use sim::pool::TestPool;
use sim::stratum_client::{SimPool, StratumClient, StratumClientSpec};

fn accepted_at(miner: &StratumClient) -> u64 {
    miner.status().iter().map(|l| l.accepted).sum()
}

fn proxy_accepted(site: &Site, ip: Ipv4Addr) -> u64 {
    site.proxy.miner(ip.into()).map_or(0, |m| m.counts.accepted)
}

/// Stops the miners, lets the last forwarded shares be answered, and checks the books: the
/// pools accepted exactly what the proxy counts as accepted upstream (up to shares a pool
/// took while its connection was being cut, counted as unanswered), nothing the pools
/// rejected went unnoticed, and every share a miner saw acknowledged is in the accounting.
async fn settle_and_balance(
    site: &Site,
    pools: &[&TestPool],
    miners: &[(Ipv4Addr, StratumClient)],
) {
    for (_, m) in miners {
        m.stop();
    }
    let pool_accepted = || pools.iter().map(|p| p.stats().total.accepted).sum::<u64>();
    let mut last = (u64::MAX, u64::MAX);
    wait_until("forwarded shares all answered", || {
        let now = (
            pool_accepted(),
            site.proxy.accounting().total().upstream_accepted,
        );
        let settled = now == last;
        last = now;
        settled
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(site.proxy.accounting().flush().await);
    let total = site.proxy.accounting().total();
    let at_pools = pool_accepted();
    assert!(
        total.upstream_accepted <= at_pools
            && at_pools <= total.upstream_accepted + total.upstream_unanswered,
        "pools accepted {at_pools}, proxy counts {} accepted upstream and {} unanswered",
        total.upstream_accepted,
        total.upstream_unanswered
    );
    let pool_rejected: u64 = pools
        .iter()
        .map(|p| {
            let r = p.stats().total.rejected;
            r.stale + r.unknown_job + r.duplicate + r.low_difficulty + r.unauthorized + r.other
        })
        .sum();
    assert_eq!(pool_rejected, total.upstream_rejected_total());
    for (ip, m) in miners {
        let acknowledged = accepted_at(m);
        let accounted = proxy_accepted(site, *ip);
        assert!(
            acknowledged <= accounted,
            "{ip}: {acknowledged} acknowledged, {accounted} in the accounting"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_flow_to_each_owners_pool_and_are_counted_everywhere() {
    let (alice_pool, bob_pool) = (pool().await, pool().await);
    let inventory = Inventory::default();
    let alice: Vec<Ipv4Addr> = (2..5).map(|i| Ipv4Addr::new(127, 1, 0, i)).collect();
    for (i, ip) in alice.iter().enumerate() {
        inventory.add_miner(*ip, &format!("a{i}"), "alice", &[&format!("alice.m{i}")]);
    }
    let bob = Ipv4Addr::new(127, 1, 0, 5);
    inventory.add_miner(bob, "b0", "bob", &["bob.m0"]);
    inventory.set_pools("alice", &[&alice_pool]);
    inventory.set_pools("bob", &[&bob_pool]);
    let site = site(inventory, settings()).await;

    let mut miners: Vec<(Ipv4Addr, StratumClient)> = alice
        .iter()
        .enumerate()
        .map(|(i, ip)| (*ip, miner(&site, *ip, &format!("alice.m{i}"), true)))
        .collect();
    miners.push((bob, miner(&site, bob, "bob.m0", false)));
    wait_until("every miner has shares accepted", || {
        miners.iter().all(|(ip, _)| proxy_accepted(&site, *ip) >= 5)
    })
    .await;
    wait_until("both pools accept forwarded shares", || {
        alice_pool.stats().total.accepted >= 5 && bob_pool.stats().total.accepted >= 2
    })
    .await;

    // Three of alice's miners on two connections (two miners per connection), bob's on one.
    let upstreams = site.proxy.upstreams();
    let alice_links: Vec<_> = upstreams.iter().filter(|u| u.owner == "alice").collect();
    assert_eq!(alice_links.len(), 2, "{upstreams:?}");
    assert_eq!(alice_links.iter().map(|u| u.miners).sum::<usize>(), 3);
    assert!(alice_links.iter().all(|u| u.pool_url == alice_pool.url()));
    // Pools see the owner's identity, never the miners'.
    assert!(alice_pool.stats().worker("alice.proxy").accepted > 0);
    assert_eq!(alice_pool.stats().worker("alice.m0").accepted, 0);
    // Version rolling negotiated by alice's miners reaches the pool in the headers.
    assert!(alice_pool.stats().total.accepted_version_rolled > 0);
    assert_eq!(bob_pool.stats().total.accepted_version_rolled, 0);

    let view = site.proxy.miner(alice[1].into()).unwrap();
    assert!(view.connected);
    assert_eq!(view.authorized_user.as_deref(), Some("alice.m1"));
    assert_eq!(view.upstream_pool, Some(alice_pool.url()));
    assert!(view.last_share_unix.is_some());
    assert!(view.difficulty > 0.0);
    assert!(!view.quarantined);

    settle_and_balance(&site, &[&alice_pool, &bob_pool], &miners).await;
    let per_miner: u64 = alice.iter().map(|ip| proxy_accepted(&site, *ip)).sum();
    let alice_totals = site.proxy.owner_totals("alice");
    assert_eq!(alice_totals.accepted, per_miner);
    assert!(alice_totals.accepted_difficulty > 0.0);
    assert_eq!(
        site.proxy.owner_totals("bob").accepted,
        proxy_accepted(&site, bob)
    );
    assert!(alice_totals.upstream_accepted > 0);
}

async fn mine_then_fail(outage: bool) {
    let (primary, backup) = (pool().await, pool().await);
    let inventory = Inventory::default();
    let ips: Vec<Ipv4Addr> = (10..13).map(|i| Ipv4Addr::new(127, 1, 1, i)).collect();
    for (i, ip) in ips.iter().enumerate() {
        inventory.add_miner(*ip, &format!("f{i}"), "alice", &[&format!("alice.f{i}")]);
    }
    inventory.set_pools("alice", &[&primary, &backup]);
    let site = site(inventory, settings()).await;
    let miners: Vec<(Ipv4Addr, StratumClient)> = ips
        .iter()
        .enumerate()
        .map(|(i, ip)| (*ip, miner(&site, *ip, &format!("alice.f{i}"), true)))
        .collect();
    wait_until("shares on the primary", || {
        primary.stats().total.accepted >= 5
    })
    .await;
    assert_eq!(site.proxy.active_pool("alice"), Some(primary.url()));

    let cut = Instant::now();
    if outage {
        primary.set_outage(true);
    } else {
        primary.set_silent(true);
    }
    wait_until("the proxy on the backup", || {
        site.proxy.active_pool("alice") == Some(backup.url())
    })
    .await;
    let switched = cut.elapsed();
    let before = backup.stats().total.accepted;
    wait_until("miners' shares reach the backup", || {
        backup.stats().total.accepted >= before + 5
    })
    .await;
    println!(
        "failover ({}): proxy switched after {switched:?}, shares on the backup after {:?}",
        if outage { "outage" } else { "silent pool" },
        cut.elapsed()
    );
    // Issue 5: failover within 5 s of the outage.
    assert!(
        switched < Duration::from_secs(5),
        "switched after {switched:?}"
    );
    for ip in &ips {
        let view = site.proxy.miner((*ip).into()).unwrap();
        assert_eq!(view.upstream_pool, Some(backup.url()), "{view:?}");
    }

    if outage {
        primary.set_outage(false);
    } else {
        primary.set_silent(false);
    }
    let before = primary.stats().total.accepted;
    wait_until("back on the primary after the hold", || {
        site.proxy.active_pool("alice") == Some(primary.url())
            && primary.stats().total.accepted >= before + 5
    })
    .await;
    wait_until("the backup's connections drained and closed", || {
        site.proxy
            .upstreams()
            .iter()
            .all(|u| u.pool_url == primary.url())
    })
    .await;
    settle_and_balance(&site, &[&primary, &backup], &miners).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_outage_fails_over_within_five_seconds_and_back() {
    mine_then_fail(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_pool_fails_over_within_five_seconds_and_back() {
    mine_then_fail(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vardiff_raises_a_fast_miner_without_rejecting_its_work() {
    let pool = pool().await;
    let inventory = Inventory::default();
    let ip = Ipv4Addr::new(127, 1, 3, 2);
    inventory.add_miner(ip, "fast", "alice", &["alice.fast"]);
    inventory.set_pools("alice", &[&pool]);
    let site = site(inventory, settings()).await;
    // About 20 shares a second at the pool's difficulty, where the goal is 4 a second.
    let fast = StratumClient::spawn(StratumClientSpec {
        bind_ip: ip,
        pools: vec![SimPool {
            url: format!("stratum+tcp://{}", site.proxy.local_addr()),
            user: "alice.fast".into(),
            password: "x".into(),
        }],
        version_rolling: true,
        hashes_per_second: 20_000.0,
    });
    wait_until("the proxy raised the miner's difficulty", || {
        site.proxy
            .miner(ip.into())
            .is_some_and(|m| m.difficulty >= 4.0 * POOL_DIFFICULTY)
    })
    .await;
    wait_until("the miner works at the raised difficulty", || {
        fast.status()[0].difficulty >= 4.0 * POOL_DIFFICULTY
    })
    .await;
    let before = proxy_accepted(&site, ip);
    wait_until("shares at the raised difficulty", || {
        proxy_accepted(&site, ip) >= before + 10
    })
    .await;
    fast.stop();
    assert!(site.proxy.accounting().flush().await);
    let counts = site.proxy.miner(ip.into()).unwrap().counts;
    assert_eq!(
        counts.rejected_total(),
        0,
        "work in flight across the change was not rejected: {counts:?}"
    );
    // Every share at or above the pool's difficulty was forwarded.
    wait_until("the pool answered every forwarded share", || {
        let total = site.proxy.accounting().total();
        total.upstream_accepted == pool.stats().total.accepted && total.upstream_accepted > 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pools_reconnect_request_moves_miners_to_a_fresh_connection() {
    let pool = pool().await;
    let inventory = Inventory::default();
    let ips: Vec<Ipv4Addr> = (20..22).map(|i| Ipv4Addr::new(127, 1, 1, i)).collect();
    for (i, ip) in ips.iter().enumerate() {
        inventory.add_miner(*ip, &format!("r{i}"), "alice", &[]);
    }
    inventory.set_pools("alice", &[&pool]);
    let site = site(inventory, settings()).await;
    let miners: Vec<(Ipv4Addr, StratumClient)> = ips
        .iter()
        .map(|ip| (*ip, miner(&site, *ip, "alice.any", false)))
        .collect();
    wait_until("shares at the pool", || pool.stats().total.accepted >= 5).await;
    let old: Vec<u64> = site
        .proxy
        .upstreams()
        .iter()
        .map(|u| u.upstream_id)
        .collect();
    pool.reconnect_all();
    wait_until("miners on a fresh connection, the old one closed", || {
        let now = site.proxy.upstreams();
        !now.is_empty()
            && now.iter().all(|u| !old.contains(&u.upstream_id))
            && now.iter().map(|u| u.miners).sum::<usize>() == 2
    })
    .await;
    let before = pool.stats().total.accepted;
    wait_until("shares keep reaching the pool", || {
        pool.stats().total.accepted >= before + 5
    })
    .await;
    settle_and_balance(&site, &[&pool], &miners).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_primary_is_skipped_for_the_next_pool() {
    // Nothing listens at the primary's address: connections to it are refused.
    let refusing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refusing_url = format!("stratum+tcp://{}", refusing.local_addr().unwrap());
    drop(refusing);
    let backup = pool().await;
    let inventory = Inventory::default();
    let ip = Ipv4Addr::new(127, 1, 1, 30);
    inventory.add_miner(ip, "s0", "alice", &[]);
    inventory.pools.lock().unwrap().insert(
        "alice".into(),
        vec![
            SanctionedPool {
                url: refusing_url,
                user: "alice.proxy".into(),
                password: "x".into(),
            },
            SanctionedPool {
                url: backup.url(),
                user: "alice.proxy".into(),
                password: "x".into(),
            },
        ],
    );
    let site = site(inventory, settings()).await;
    let miners = vec![(ip, miner(&site, ip, "alice.any", true))];
    wait_until("shares on the backup", || {
        backup.stats().total.accepted >= 5
    })
    .await;
    assert_eq!(site.proxy.active_pool("alice"), Some(backup.url()));
    settle_and_balance(&site, &[&backup], &miners).await;
}
