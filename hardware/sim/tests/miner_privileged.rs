//! Privileged commands: refused with Code 45 for a client without write access (nothing
//! changes), and with access they change what `pools` reports and where the miner's Stratum
//! client really mines.

mod common;

use std::net::Ipv4Addr;

use common::{ANSWER_BOUND, ask_json, eventually, one_miner, raw, snapshot};
use minerd::cgminer::{Command, ReplyError, Request, parse_reply};
use sim::fleet::{Personality, Privileged};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_write_access_privileged_commands_get_code_45_and_change_nothing() {
    let ip = Ipv4Addr::new(127, 1, 20, 2);
    let site = one_miner(ip, Personality::S19jProBosminer, Privileged::None).await;
    let addr = site.addr();
    let before = site.miner().view().pools;
    for (command, parameter) in [
        ("addpool", Some("stratum+tcp://evil.example:3333,thief,x")),
        ("switchpool", Some("1")),
        ("removepool", Some("1")),
        ("disablepool", Some("0")),
        ("restart", None),
        ("pause", None),
    ] {
        let body = match parameter {
            Some(p) => serde_json::json!({"command": command, "parameter": p}),
            None => serde_json::json!({"command": command}),
        };
        let bytes = raw(addr, body.to_string().as_bytes()).await.unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains(&format!(
                r#""Code":45,"Msg":"Access denied to '{command}' command""#
            )),
            "{command}: {text}"
        );
        let reply = parse_reply(command, &bytes).unwrap();
        assert!(matches!(
            reply.section(command),
            Err(ReplyError::AccessDenied { .. })
        ));
    }
    let view = site.miner().view();
    assert_eq!(view.pools, before);
    assert!(!view.sleeping && !view.rebooting);
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_commands_are_refused_inside_a_join() {
    let ip = Ipv4Addr::new(127, 1, 20, 3);
    let site = one_miner(ip, Personality::S9Bmminer, Privileged::All).await;
    let reply = ask_json(site.addr(), "summary+restart", None).await;
    assert!(reply.section("summary").is_ok());
    assert!(matches!(
        reply.section("restart"),
        Err(ReplyError::AccessDenied { .. })
    ));
    assert!(!site.miner().view().rebooting);
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addpool_switchpool_removepool_change_pools_and_where_shares_go() {
    let ip = Ipv4Addr::new(127, 1, 20, 4);
    let site = one_miner(ip, Personality::S9Bmminer, Privileged::All).await;
    let addr = site.addr();
    let miner = site.miner();
    let extra = common::test_pool().await;

    let reply = ask_json(
        addr,
        "addpool",
        Some(&format!("{},bunker.extra,x", extra.url())),
    )
    .await;
    assert_eq!(reply.section("addpool").unwrap().status.code, Some(55));
    let pools = snapshot(addr, &Request::single(Command::Pools)).await.pools;
    assert_eq!(pools.len(), 3);
    assert_eq!(pools[2].url, extra.url());
    assert_eq!(pools[2].user, "bunker.extra");

    // switchpool over the text form: the miner moves its Stratum client to the new pool
    let bytes = raw(addr, b"switchpool|2").await.unwrap();
    let reply = parse_reply("switchpool", &bytes).unwrap();
    assert_eq!(reply.section("switchpool").unwrap().status.code, Some(27));
    eventually("shares accepted by the added pool", ANSWER_BOUND, || {
        miner.view().shares_accepted(&extra.url()) > 0 && extra.stats().total.accepted > 0
    })
    .await;
    let pools = snapshot(addr, &Request::single(Command::Pools)).await.pools;
    assert_eq!(pools[2].priority, Some(0));
    assert!(pools[2].stratum_active && !pools[0].stratum_active);
    assert!(pools[2].accepted > 0, "pools reports the client's count");

    // the active pool cannot be removed; another one can
    let refused = ask_json(addr, "removepool", Some("2")).await;
    assert!(refused.section("removepool").is_err());
    let removed = ask_json(addr, "removepool", Some("1")).await;
    assert_eq!(removed.section("removepool").unwrap().status.code, Some(68));
    let pools = snapshot(addr, &Request::single(Command::Pools)).await.pools;
    let urls: Vec<&str> = pools.iter().map(|p| p.url.as_str()).collect();
    assert_eq!(urls, vec![site.pools[0].url(), extra.url()]);
    assert!(pools[1].stratum_active);

    // disabling the mining pool sends the miner back to the other one
    let disabled = ask_json(addr, "disablepool", Some("1")).await;
    assert_eq!(
        disabled.section("disablepool").unwrap().status.code,
        Some(48)
    );
    eventually("back on the first pool", ANSWER_BOUND, || {
        miner.view().active_pool().map(|p| p.url.clone()) == Some(site.pools[0].url())
    })
    .await;
    let pools = snapshot(addr, &Request::single(Command::Pools)).await.pools;
    assert_eq!(pools[1].state, minerd::cgminer::PoolState::Disabled);
    extra.stop().await;
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pool_numbers_are_refused_with_cgminer_codes() {
    let ip = Ipv4Addr::new(127, 1, 20, 5);
    let site = one_miner(ip, Personality::Cgminer, Privileged::All).await;
    let addr = site.addr();
    let reply = ask_json(addr, "switchpool", Some("7")).await;
    assert!(matches!(
        reply.section("switchpool"),
        Err(ReplyError::Refused { code: Some(16), .. })
    ));
    let reply = ask_json(addr, "switchpool", None).await;
    assert!(matches!(
        reply.section("switchpool"),
        Err(ReplyError::Refused { code: Some(15), .. })
    ));
    let reply = ask_json(addr, "addpool", Some("only-a-url")).await;
    assert!(matches!(
        reply.section("addpool"),
        Err(ReplyError::Refused { code: Some(53), .. })
    ));
    assert_eq!(site.miner().view().pools.len(), 2);
    site.stop().await;
}
