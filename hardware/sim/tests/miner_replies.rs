//! Every firmware personality's replies, single and joined, read through minerd's own parser
//! into the model, firmware, hashrate, boards, fans and pools the miner really has.

mod common;

use std::net::Ipv4Addr;

use common::{ask, ask_json, one_miner, raw, snapshot};
use minerd::cgminer::{Command, FirmwareKind, MinerSnapshot, Request, parse_reply};
use sim::fleet::{MinerView, Personality, Privileged};

fn firmware_kind(p: Personality) -> FirmwareKind {
    match p {
        Personality::S9Bmminer | Personality::S19ProBmminer => FirmwareKind::Bmminer,
        Personality::S9Bosminer | Personality::S19jProBosminer => FirmwareKind::Bosminer,
        Personality::Cgminer => FirmwareKind::Cgminer,
        // minerd does not know LuxOS (yet): it reads its data but names no firmware
        Personality::S19jProLuxos => FirmwareKind::Unknown,
    }
}

fn read_commands(p: Personality) -> Vec<Command> {
    let mut commands = vec![
        Command::Version,
        Command::Summary,
        Command::Devs,
        Command::DevDetails,
        Command::Pools,
        Command::Stats,
    ];
    match p.firmware() {
        sim::fleet::Firmware::Bosminer => {
            commands.extend([Command::Fans, Command::Temps, Command::TunerStatus])
        }
        sim::fleet::Firmware::Luxos => commands.push(Command::Fans),
        _ => {}
    }
    commands
}

/// The snapshot agrees with the miner's ground truth (hashrates within the 5 s wobble).
fn assert_matches(p: Personality, snap: &MinerSnapshot, view: &MinerView) {
    let hardware = p.hardware();
    assert_eq!(snap.firmware, Some(firmware_kind(p)), "{p:?} firmware");
    assert_eq!(snap.model.as_deref(), Some(hardware.name), "{p:?} model");
    let reported = snap.hashrate_5s.expect("5 s hashrate").terahashes();
    assert!(view.hashrate_ths > 0.0, "{p:?} hashes");
    assert!(
        (reported - view.hashrate_ths).abs() / view.hashrate_ths < 0.02,
        "{p:?}: reported {reported} TH/s, has {}",
        view.hashrate_ths
    );
    assert_eq!(snap.boards.len(), hardware.chains.len(), "{p:?} boards");
    for (board, ths) in snap.boards.iter().zip(&view.board_hashrate_ths) {
        assert_eq!(board.chips, Some(hardware.chips_per_board), "{p:?} chips");
        if let Some(h) = board.hashrate {
            assert!(
                (h.terahashes() - ths).abs() / ths < 0.02,
                "{p:?} board rate"
            );
        }
    }
    if p != Personality::Cgminer {
        assert_eq!(snap.fans.len(), hardware.fan_slots.len(), "{p:?} fans");
        assert!(snap.boards.iter().all(|b| !b.chip_temps_c.is_empty()));
    }
    let urls: Vec<&str> = snap.pools.iter().map(|p| p.url.as_str()).collect();
    let truth: Vec<&str> = view.pools.iter().map(|p| p.url.as_str()).collect();
    assert_eq!(urls, truth, "{p:?} pools");
    assert!(
        snap.pools
            .iter()
            .all(|pool| pool.user == format!("bunker.{}", view.ip.to_string().replace('.', "-")))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_personality_joined_and_single_replies_parse_into_the_truth() {
    for (i, p) in Personality::ALL.into_iter().enumerate() {
        let ip = Ipv4Addr::new(127, 1, 10, 2 + i as u8);
        let site = one_miner(ip, p, Privileged::All).await;
        let addr = site.addr();
        let miner = site.miner();

        let joined = Request::joined(read_commands(p)).unwrap();
        let snap = snapshot(addr, &joined).await;
        assert_matches(p, &snap, &miner.view());

        let mut merged = ask(addr, &Request::single(Command::Version)).await;
        for c in read_commands(p).into_iter().skip(1) {
            merged.merge(ask(addr, &Request::single(c)).await);
        }
        assert_matches(p, &MinerSnapshot::from_reply(&merged), &miner.view());
        site.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_and_json_requests_get_the_same_reply() {
    let ip = Ipv4Addr::new(127, 1, 11, 2);
    let site = one_miner(ip, Personality::S9Bmminer, Privileged::All).await;
    let addr = site.addr();
    let text = raw(addr, b"summary").await.unwrap();
    let json = raw(addr, br#"{"command":"summary"}"#).await.unwrap();
    for reply in [&text, &json] {
        assert_eq!(reply.last(), Some(&0), "NUL-terminated");
        let parsed = parse_reply("summary", reply).unwrap();
        assert_eq!(parsed.section("summary").unwrap().status.code, Some(11));
    }
    let joined_text = raw(addr, b"summary+pools").await.unwrap();
    let parsed = parse_reply("summary+pools", &joined_text).unwrap();
    assert!(parsed.section("summary").is_ok() && parsed.section("pools").is_ok());
    let switched = raw(addr, b"switchpool|1").await.unwrap();
    let parsed = parse_reply("switchpool", &switched).unwrap();
    assert_eq!(parsed.section("switchpool").unwrap().status.code, Some(27));
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmminer_stats_have_the_real_quirks_and_size() {
    for (i, p) in [Personality::S9Bmminer, Personality::S19ProBmminer]
        .into_iter()
        .enumerate()
    {
        let ip = Ipv4Addr::new(127, 1, 12, 2 + i as u8);
        let site = one_miner(ip, p, Privileged::All).await;
        let addr = site.addr();
        let stats = raw(addr, br#"{"command":"stats"}"#).await.unwrap();
        let text = String::from_utf8_lossy(&stats);
        assert!(text.contains("}{"), "{p:?}: records joined with }}{{");
        assert!(
            serde_json::from_str::<serde_json::Value>(text.trim_end_matches(['\0', '|'])).is_err(),
            "{p:?}: not plain JSON, as real bmminer"
        );
        // The captured S9 stats are 1,273 bytes; a modern Antminer's 2–4 KB.
        let real_size = match p {
            Personality::S9Bmminer => 1_100..=2_000,
            _ => 2_000..=4_500,
        };
        assert!(
            real_size.contains(&stats.len()),
            "{p:?}: stats is {} bytes",
            stats.len()
        );
        let joined = raw(addr, br#"{"command":"version+stats"}"#).await.unwrap();
        let joined_text = String::from_utf8_lossy(&joined);
        assert!(joined_text.starts_with(r#"{"version":[{"STATUS""#));
        assert!(joined_text.contains(r#""stats":[{"STATUS""#));
        assert!(joined_text.contains("}{"));
        site.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_commands_get_code_14_alone_and_inside_a_join() {
    let ip = Ipv4Addr::new(127, 1, 13, 2);
    let site = one_miner(ip, Personality::S9Bmminer, Privileged::All).await;
    let addr = site.addr();
    let reply = ask_json(addr, "frobnicate", None).await;
    let status = &reply.section("frobnicate").unwrap_err();
    assert!(matches!(
        status,
        minerd::cgminer::ReplyError::InvalidCommand { .. }
    ));
    // bmminer has no BOSminer extras
    let reply = ask_json(addr, "summary+tunerstatus", None).await;
    assert!(reply.section("summary").is_ok());
    assert!(matches!(
        reply.section("tunerstatus"),
        Err(minerd::cgminer::ReplyError::InvalidCommand { .. })
    ));
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_requests_get_an_error_reply_and_change_nothing() {
    let ip = Ipv4Addr::new(127, 1, 13, 3);
    let site = one_miner(ip, Personality::S19ProBmminer, Privileged::All).await;
    let addr = site.addr();
    let before = site.miner().view().pools;
    for junk in [
        &b"{\"command\":"[..],
        b"{\"cmd\":\"addpool\"}",
        b"\xff\xfe\x00garbage",
        &[b'x'; 20_000][..],
    ] {
        let reply = raw(addr, junk).await.expect("an answer, not a hang");
        assert_eq!(reply.last(), Some(&0));
        let text = String::from_utf8_lossy(&reply);
        assert!(text.contains(r#""STATUS":"E""#), "{text}");
    }
    assert_eq!(site.miner().view().pools, before);
    // the API still answers normally
    assert!(
        ask_json(addr, "version", None)
            .await
            .section("version")
            .is_ok()
    );
    site.stop().await;
}
