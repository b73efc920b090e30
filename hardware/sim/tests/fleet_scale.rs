//! A hall-sized fleet: 1,000 miners on their own addresses start, every cgminer API answers
//! with its model, every Stratum client reaches the pool, and the holes in the run answer
//! nothing (a scan finds no miner there).

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use common::{ANSWER_BOUND, eventually};
use minerd::cgminer::{ClientConfig, ClientError, Command, MinerSnapshot, Request, query};
use sim::fleet::{Fleet, FleetSpec, raise_fd_limit};
use tokio::sync::Semaphore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_miners_start_and_every_api_answers() {
    let limit = raise_fd_limit().unwrap();
    assert!(
        limit > 2_500,
        "this test needs more than 2,500 open files, the hard limit is {limit}"
    );
    let pool = common::test_pool().await;
    let first = Ipv4Addr::new(127, 1, 100, 2);
    let holes = vec![
        Ipv4Addr::new(127, 1, 100, 9),
        Ipv4Addr::new(127, 1, 101, 77),
    ];
    let mut spec = FleetSpec::new(first, 1_000);
    spec.holes = holes.clone();
    spec.pools = common::sanctioned(std::slice::from_ref(&pool));
    spec.hash_budget = 20_000.0;
    let fleet = Fleet::start(spec).await.expect("1,000 miners start");
    let addresses = fleet.api_addresses();
    assert_eq!(addresses.len(), 1_000);

    let permits = Arc::new(Semaphore::new(100));
    let mut polls = tokio::task::JoinSet::new();
    for addr in addresses {
        let permits = permits.clone();
        let expected = fleet
            .miner(match addr {
                SocketAddr::V4(a) => *a.ip(),
                SocketAddr::V6(_) => unreachable!("the fleet is IPv4"),
            })
            .unwrap()
            .view()
            .model;
        polls.spawn(async move {
            let _permit = permits.acquire().await.unwrap();
            let request = Request::joined(vec![Command::Version, Command::DevDetails]).unwrap();
            let reply = query(addr, &request, &ClientConfig::default()).await;
            (addr, expected, reply)
        });
    }
    let mut answered = 0;
    while let Some(joined) = polls.join_next().await {
        let (addr, expected, reply) = joined.unwrap();
        let reply = reply.unwrap_or_else(|e| panic!("{addr}: {e}"));
        let snap = MinerSnapshot::from_reply(&reply);
        assert_eq!(snap.model.as_deref(), Some(expected.as_str()), "{addr}");
        answered += 1;
    }
    assert_eq!(answered, 1_000);

    for hole in holes {
        assert!(fleet.miner(hole).is_none());
        let err = query(
            SocketAddr::from((hole, 4028)),
            &Request::single(Command::Version),
            &ClientConfig::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ClientError::Refused { .. }), "{hole}: {err}");
    }

    let miners = fleet.miners();
    eventually(
        "every miner's Stratum client on the pool",
        ANSWER_BOUND * 3,
        || miners.iter().all(|m| m.view().active_pool().is_some()),
    )
    .await;
    assert!(pool.stats().connections >= 1_000);
    fleet.stop().await;
    pool.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_fleets_are_refused_before_anything_binds() {
    let mut outside = FleetSpec::new(Ipv4Addr::new(10, 0, 0, 2), 3);
    assert!(matches!(
        outside.validate(),
        Err(sim::fleet::FleetSpecError::NotLoopback { .. })
    ));
    let err = Fleet::start(outside).await.err().expect("refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    outside = FleetSpec::new(Ipv4Addr::new(127, 255, 255, 250), 10);
    assert!(outside.validate().is_err(), "runs past 127.255.255.255");
    let mut spec = FleetSpec::new(Ipv4Addr::new(127, 1, 110, 2), 1);
    spec.hash_budget = f64::NAN;
    assert!(spec.validate().is_err());
    spec.hash_budget = 1_000.0;
    spec.ambient_c = 300.0;
    assert!(spec.validate().is_err());
    spec.ambient_c = 25.0;
    spec.count = 0;
    assert!(spec.validate().is_err());
}
