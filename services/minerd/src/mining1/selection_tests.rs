use std::net::{Ipv4Addr, SocketAddrV4};

use super::*;
use crate::inventory::MinerId;

fn miner(
    last: u8,
    owner: &str,
    model: &str,
    firmware: FirmwareKind,
    state: MinerState,
) -> MinerRecord {
    MinerRecord {
        id: MinerId(i64::from(last)),
        addr: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, last), 4028),
        mac: None,
        serial: None,
        model: Some(model.into()),
        firmware,
        firmware_version: None,
        location: "hall A".into(),
        owner: owner.into(),
        power_target_w: None,
        state,
        missed_scans: 0,
        first_seen: 0,
        last_seen: 0,
    }
}

fn select(text: &str) -> Selection {
    text.parse().unwrap()
}

#[test]
fn all_picks_everything() {
    let all = select("all");
    assert_eq!(all, Selection::default());
    assert!(all.matches(&miner(
        2,
        "acme",
        "Antminer S19",
        FirmwareKind::Bmminer,
        MinerState::Missing
    )));
}

#[test]
fn every_term_must_hold() {
    let s19 = miner(
        2,
        "acme",
        "Antminer S19 Pro",
        FirmwareKind::Bmminer,
        MinerState::Active,
    );
    let s9 = miner(
        3,
        "acme",
        "Antminer S9",
        FirmwareKind::Bosminer,
        MinerState::Sleeping,
    );
    let other = miner(
        200,
        "zeta",
        "Antminer S19 Pro",
        FirmwareKind::Bmminer,
        MinerState::Active,
    );
    let picked = |text: &str| {
        let selection = select(text);
        [&s19, &s9, &other]
            .into_iter()
            .filter(|m| selection.matches(m))
            .map(|m| m.addr.ip().octets()[3])
            .collect::<Vec<_>>()
    };
    assert_eq!(picked("owner=acme"), vec![2, 3]);
    assert_eq!(picked("model=s19"), vec![2, 200]);
    assert_eq!(picked("model=S19, owner=acme"), vec![2]);
    assert_eq!(picked("ip=10.1.0.0/30"), vec![2, 3]);
    assert_eq!(picked("ip=10.1.0.200"), vec![200]);
    assert_eq!(
        picked("ip=10.1.0.3/30"),
        vec![2, 3],
        "host bits are dropped"
    );
    assert_eq!(picked("firmware=bosminer"), vec![3]);
    assert_eq!(picked("state=sleeping"), vec![3]);
    assert_eq!(picked("location=hall A,state=active"), vec![2, 200]);
    assert_eq!(picked("location=hall B"), Vec::<u8>::new());
}

#[test]
fn nonsense_is_refused_with_a_sentence() {
    let refused = |text: &str| text.parse::<Selection>().unwrap_err();
    assert_eq!(refused(""), SelectionError::Empty);
    assert_eq!(refused("   "), SelectionError::Empty);
    assert_eq!(
        refused("everything"),
        SelectionError::NotATerm("everything".into())
    );
    assert_eq!(
        refused("colour=red"),
        SelectionError::UnknownKey("colour".into())
    );
    assert_eq!(
        refused("owner=a,owner=b"),
        SelectionError::Repeated("owner".into())
    );
    assert_eq!(
        refused("owner="),
        SelectionError::EmptyValue {
            key: "owner".into()
        }
    );
    assert_eq!(
        refused("ip=10.1.0.0/33"),
        SelectionError::BadAddress("10.1.0.0/33".into())
    );
    assert_eq!(refused("ip=::1"), SelectionError::BadAddress("::1".into()));
    assert_eq!(
        refused("firmware=windows"),
        SelectionError::BadFirmware("windows".into())
    );
    assert_eq!(
        refused("state=asleep"),
        SelectionError::BadState("asleep".into())
    );
    assert_eq!(refused(&"owner=x,".repeat(200)), SelectionError::TooLong);
    assert_eq!(
        refused("owner=a,,state=active"),
        SelectionError::NotATerm(String::new())
    );
    assert!(refused("colour=red").to_string().contains("not a key"));
}
