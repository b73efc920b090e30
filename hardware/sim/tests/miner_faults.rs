//! Each fault behaves as the contract says, seen from a poller (minerd's client and parser)
//! and from the pools the miner really sends shares to.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::{ANSWER_BOUND, ask, eventually, one_miner, raw, snapshot};
use minerd::cgminer::{
    ClientConfig, ClientError, Command, MAX_REPLY_BYTES, ReplyError, Request, parse_reply, query,
};
use sim::fleet::{Fault, Personality, Privileged};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn summary() -> Request {
    Request::single(Command::Summary)
}

fn short_deadline() -> ClientConfig {
    ClientConfig {
        deadline: Duration::from_millis(800),
        ..ClientConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hang_accepts_and_never_answers_until_cleared() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 30, 2),
        Personality::S9Bmminer,
        Privileged::All,
    )
    .await;
    site.miner().inject(Fault::Hang);
    let mut stream = TcpStream::connect(site.addr()).await.expect("accepted");
    stream.write_all(br#"{"command":"summary"}"#).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await;
    assert!(read.is_err(), "a hung miner sent {read:?}");
    let err = query(site.addr(), &summary(), &short_deadline())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::ReadTimeout { .. }), "{err}");
    site.miner().clear_faults();
    ask(site.addr(), &summary()).await;
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_after_the_delay() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 30, 3),
        Personality::S19jProBosminer,
        Privileged::All,
    )
    .await;
    site.miner()
        .inject(Fault::Slow(Duration::from_millis(1500)));
    let err = query(site.addr(), &summary(), &short_deadline())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::ReadTimeout { .. }), "{err}");
    let patient = ClientConfig {
        deadline: ANSWER_BOUND,
        ..ClientConfig::default()
    };
    let reply = query(site.addr(), &summary(), &patient).await.unwrap();
    assert!(reply.section("summary").is_ok());
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_truncated_and_oversized_replies_fail_to_parse_as_such() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 30, 4),
        Personality::S19ProBmminer,
        Privileged::All,
    )
    .await;
    let miner = site.miner();
    let healthy = raw(site.addr(), br#"{"command":"summary"}"#).await.unwrap();

    miner.inject(Fault::Malformed);
    let bytes = raw(site.addr(), br#"{"command":"summary"}"#).await.unwrap();
    assert!(matches!(
        parse_reply("summary", &bytes),
        Err(ReplyError::Malformed(_))
    ));
    miner.clear_faults();

    miner.inject(Fault::Truncated);
    let bytes = raw(site.addr(), br#"{"command":"summary"}"#).await.unwrap();
    assert!(bytes.len() < healthy.len() && !bytes.contains(&0));
    assert!(parse_reply("summary", &bytes).is_err());
    miner.clear_faults();

    miner.inject(Fault::Oversized);
    let bytes = raw(site.addr(), br#"{"command":"summary"}"#).await.unwrap();
    assert!(bytes.len() > 2 * MAX_REPLY_BYTES);
    let err = query(site.addr(), &summary(), &ClientConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TooLarge { .. }), "{err}");
    miner.clear_faults();
    ask(site.addr(), &summary()).await;
    site.stop().await;
}

async fn uptime(addr: std::net::SocketAddr) -> Duration {
    snapshot(addr, &summary()).await.uptime.expect("Elapsed")
}

/// Waits until connections are refused (a connection caught while the firmware goes down may
/// be reset or closed first, as on a real miner).
async fn wait_refused(addr: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + ANSWER_BOUND;
    loop {
        match query(addr, &summary(), &short_deadline()).await {
            Err(ClientError::Refused { .. }) => return,
            Ok(_) | Err(ClientError::Connect { .. } | ClientError::ClosedEarly { .. }) => {}
            Err(e) => panic!("going down: {e}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the API answers again, refused meanwhile.
async fn wait_back(addr: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + ANSWER_BOUND;
    loop {
        match query(addr, &summary(), &short_deadline()).await {
            Ok(_) => return,
            Err(ClientError::Refused { .. }) => {}
            Err(e) => panic!("while rebooting: {e}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "not back in bound");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebooting_refuses_api_and_stratum_then_comes_back_with_uptime_reset() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 30, 5),
        Personality::S9Bmminer,
        Privileged::All,
    )
    .await;
    let miner = site.miner();
    eventually("an uptime to lose", ANSWER_BOUND, || {
        miner.view().uptime_s >= 2
    })
    .await;
    let before = uptime(site.addr()).await;
    miner.inject(Fault::Rebooting(Duration::from_secs(2)));
    wait_refused(site.addr()).await;
    let view = miner.view();
    assert!(view.rebooting && view.pools.iter().all(|p| !p.active));
    assert_eq!(view.hashrate_ths, 0.0);
    wait_back(site.addr()).await;
    assert!(uptime(site.addr()).await < before);
    eventually("mining again", ANSWER_BOUND, || {
        miner.view().active_pool().is_some()
    })
    .await;
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_answers_bare_restart_then_reboots() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 30, 6),
        Personality::Cgminer,
        Privileged::All,
    )
    .await;
    let miner = site.miner();
    eventually("an uptime to lose", ANSWER_BOUND, || {
        miner.view().uptime_s >= 2
    })
    .await;
    let bytes = raw(site.addr(), br#"{"command":"restart"}"#).await.unwrap();
    assert_eq!(bytes, b"RESTART\0");
    assert!(
        parse_reply("restart", &bytes)
            .unwrap()
            .section("restart")
            .is_ok()
    );
    wait_refused(site.addr()).await;
    wait_back(site.addr()).await;
    assert!(uptime(site.addr()).await < Duration::from_secs(2));
    let bytes = raw(site.addr(), b"quit").await.unwrap();
    assert_eq!(bytes, b"BYE\0");
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_hijack_mines_for_the_foreign_pool_and_shows_it() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 30, 7),
        Personality::S19jProBosminer,
        Privileged::All,
    )
    .await;
    let foreign = common::test_pool().await;
    let miner = site.miner();
    miner.inject(Fault::SelfHijack {
        url: foreign.url(),
        user: "thief.rig1".into(),
    });
    eventually("shares at the foreign pool", ANSWER_BOUND, || {
        foreign
            .stats()
            .workers
            .get("thief.rig1")
            .is_some_and(|w| w.accepted > 0)
    })
    .await;
    let pools = snapshot(site.addr(), &Request::single(Command::Pools))
        .await
        .pools;
    assert_eq!(pools[0].url, foreign.url());
    assert_eq!(pools[0].user, "thief.rig1");
    assert!(pools[0].stratum_active && pools[0].priority == Some(0));
    assert_eq!(pools.len(), 3);
    miner.clear_faults();
    eventually("back on the site's pool", ANSWER_BOUND, || {
        miner.view().active_pool().map(|p| p.url.clone()) == Some(site.pools[0].url())
    })
    .await;
    assert_eq!(miner.view().pools.len(), 2);
    foreign.stop().await;
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_change_keeps_the_endpoint_and_mines_under_another_name() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 30, 8),
        Personality::S9Bmminer,
        Privileged::All,
    )
    .await;
    site.miner().inject(Fault::UserChange {
        user: "someone.else".into(),
    });
    eventually("shares under the new user", ANSWER_BOUND, || {
        site.pools[0]
            .stats()
            .workers
            .get("someone.else")
            .is_some_and(|w| w.accepted > 0)
    })
    .await;
    let pools = snapshot(site.addr(), &Request::single(Command::Pools))
        .await
        .pools;
    assert_eq!(pools[0].url, site.pools[0].url());
    assert!(pools.iter().all(|p| p.user == "someone.else"));
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devfee_periodically_mines_elsewhere_and_shows_it_active() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 30, 9),
        Personality::S19ProBmminer,
        Privileged::All,
    )
    .await;
    let devfee = common::test_pool().await;
    site.miner().inject(Fault::DevFee {
        url: devfee.url(),
        user: "vendor.fee".into(),
        every: Duration::from_millis(500),
        for_: Duration::from_millis(1500),
    });
    let mut seen_active = false;
    let deadline = tokio::time::Instant::now() + ANSWER_BOUND;
    while !(seen_active && devfee.stats().total.accepted > 0) {
        assert!(tokio::time::Instant::now() < deadline, "no devfee window");
        let pools = snapshot(site.addr(), &Request::single(Command::Pools))
            .await
            .pools;
        seen_active |= pools[0].url == devfee.url() && pools[0].stratum_active;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // after the window the site's pool is listed first and mined on again
    let miner = site.miner();
    eventually("devfee window over", ANSWER_BOUND, || {
        let view = miner.view();
        view.pools.len() == 2 && view.pools[0].active
    })
    .await;
    devfee.stop().await;
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_hashing_reports_the_sanctioned_pool_but_sends_it_nothing() {
    let site = one_miner(
        Ipv4Addr::new(127, 1, 30, 10),
        Personality::S9Bmminer,
        Privileged::All,
    )
    .await;
    let miner = site.miner();
    let pool = &site.pools[0];
    eventually("some shares first", ANSWER_BOUND, || {
        pool.stats().total.accepted > 0
    })
    .await;
    miner.inject(Fault::HiddenHashing);
    eventually("the client is off the pool", ANSWER_BOUND, || {
        miner.view().active_pool().is_none()
    })
    .await;
    let at_pool = pool.stats().total.accepted;
    let reported = snapshot(site.addr(), &Request::single(Command::Pools))
        .await
        .pools[0]
        .accepted;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let snap = snapshot(
        site.addr(),
        &Request::joined(vec![Command::Summary, Command::Pools]).unwrap(),
    )
    .await;
    assert_eq!(
        pool.stats().total.accepted,
        at_pool,
        "nothing reached the pool"
    );
    assert!(snap.pools[0].stratum_active && snap.pools[0].url == pool.url());
    assert!(
        snap.pools[0].accepted > reported,
        "the firmware claims progress"
    );
    assert!(snap.hashrate_5s.unwrap().terahashes() > 10.0);
    assert!(
        miner.view().hashrate_ths > 10.0,
        "still hashing, off the books"
    );
    site.stop().await;
}
