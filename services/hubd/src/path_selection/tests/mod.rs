//! Path selection: policies honoured on hand-made networks and refusals that say why; the
//! invariants against brute force on random networks are in `random_networks`.

use super::*;
use crate::advertisement::{AdvertisedLink, Advertisement, AdvertisementParts, Flags, Timestamp};
use crate::link::LinkId;
use crate::testing::{country, hub};

mod random_networks;

/// A network: hubs with their jurisdiction, links `(a, b, link id, ms)` advertised by both
/// ends, and the hubs that advertise no transit.
fn network(
    hubs: &[(&str, &str)],
    links: &[(&str, &str, u16, u64)],
    no_transit: &[&str],
) -> Topology {
    let ads: Vec<Advertisement> = hubs
        .iter()
        .map(|(id, code)| {
            let mine = links.iter().filter_map(|(a, b, link, ms)| {
                let neighbour = if a == id {
                    b
                } else if b == id {
                    a
                } else {
                    return None;
                };
                Some(AdvertisedLink {
                    neighbour: hub(neighbour),
                    link: LinkId::new(*link).unwrap(),
                    latency: Latency::from_millis(*ms),
                })
            });
            Advertisement::new(AdvertisementParts {
                origin: hub(id),
                jurisdiction: country(code),
                flags: Flags {
                    no_transit: no_transit.contains(id),
                },
                sequence: 1,
                expires_at: Timestamp::from_unix_secs(u64::MAX),
                links: mine.collect(),
                vouchers: Vec::new(),
                prefixes: Vec::new(),
            })
            .unwrap()
        })
        .collect();
    Topology::from_advertisements(&ads)
}

/// The Iberia–South America network of the issue: madrid and malaga in ES, lisbon in PT,
/// paris in FR, geneva in CH, sao-paulo in BR, bogota in CO.
fn atlantic() -> Topology {
    network(
        &[
            ("madrid-1", "ES"),
            ("malaga-1", "ES"),
            ("lisbon-1", "PT"),
            ("paris-1", "FR"),
            ("geneva-1", "CH"),
            ("sao-paulo-1", "BR"),
            ("bogota-1", "CO"),
        ],
        &[
            ("madrid-1", "malaga-1", 1, 4),
            ("madrid-1", "lisbon-1", 1, 5),
            ("madrid-1", "paris-1", 1, 10),
            ("madrid-1", "geneva-1", 1, 12),
            ("malaga-1", "lisbon-1", 1, 6),
            ("paris-1", "geneva-1", 1, 4),
            ("paris-1", "sao-paulo-1", 1, 45),
            ("lisbon-1", "sao-paulo-1", 1, 60),
            ("lisbon-1", "sao-paulo-1", 2, 62),
            ("sao-paulo-1", "bogota-1", 1, 30),
            ("geneva-1", "bogota-1", 1, 80),
        ],
        &[],
    )
}

fn ids(path: &Path) -> Vec<&str> {
    path.hubs.iter().map(|hub| hub.id.as_str()).collect()
}

fn route(
    topology: &Topology,
    from: &str,
    to: &str,
    policy: &PathPolicy,
) -> Result<PathChoice, Refusal> {
    select(topology, &hub(from), &hub(to), policy)
}

#[test]
fn the_fastest_path_is_primary_and_a_disjoint_one_is_backup() {
    let topology = atlantic();
    let choice = route(&topology, "malaga-1", "sao-paulo-1", &PathPolicy::default()).unwrap();
    assert_eq!(
        ids(&choice.primary),
        ["malaga-1", "madrid-1", "paris-1", "sao-paulo-1"]
    );
    assert_eq!(choice.primary.latency, Latency::from_millis(59));
    assert_eq!(
        choice.primary.to_string(),
        "malaga-1 (ES) → madrid-1 (ES) → paris-1 (FR) → sao-paulo-1 (BR): 3 hops, 59.0 ms"
    );
    let backup = choice.backup.unwrap();
    assert_eq!(ids(&backup), ["malaga-1", "lisbon-1", "sao-paulo-1"]);
    assert!(!choice.primary.shares_link_with(&backup));
}

#[test]
fn an_excluded_jurisdiction_is_never_on_the_path() {
    let topology = atlantic();
    let no_france = PathPolicy {
        excluded_jurisdictions: [country("FR")].into(),
        ..PathPolicy::default()
    };
    let choice = route(&topology, "malaga-1", "sao-paulo-1", &no_france).unwrap();
    assert_eq!(
        ids(&choice.primary),
        ["malaga-1", "lisbon-1", "sao-paulo-1"]
    );
    let backup = choice.backup.unwrap();
    // The second cable between Lisbon and São Paulo is a different link.
    assert_eq!(
        ids(&backup),
        ["malaga-1", "madrid-1", "lisbon-1", "sao-paulo-1"]
    );
    assert_eq!(backup.links[2].id, LinkId::new(2).unwrap());
    for path in [&choice.primary, &backup] {
        assert!(!path.jurisdictions().contains(&country("FR")));
    }
}

#[test]
fn a_refusal_names_the_hub_every_route_crosses() {
    // Only Paris joins Iberia to the rest.
    let topology = network(
        &[
            ("madrid-1", "ES"),
            ("paris-1", "FR"),
            ("geneva-1", "CH"),
            ("sao-paulo-1", "BR"),
        ],
        &[
            ("madrid-1", "paris-1", 1, 10),
            ("paris-1", "sao-paulo-1", 1, 45),
            ("paris-1", "geneva-1", 1, 4),
            ("geneva-1", "sao-paulo-1", 1, 60),
        ],
        &[],
    );
    let no_france = PathPolicy {
        excluded_jurisdictions: [country("FR")].into(),
        ..PathPolicy::default()
    };
    let refusal = route(&topology, "madrid-1", "sao-paulo-1", &no_france).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "no compliant path from madrid-1 (ES) to sao-paulo-1 (BR): every route crosses hub \
         paris-1 (FR, an excluded jurisdiction)"
    );
}

#[test]
fn a_refusal_names_every_blocking_hub_but_not_dead_ends() {
    let topology = network(
        &[
            ("madrid-1", "ES"),
            ("paris-1", "FR"),
            ("lyon-1", "FR"),
            ("rome-1", "IT"),
            ("sao-paulo-1", "BR"),
        ],
        &[
            ("madrid-1", "paris-1", 1, 10),
            ("madrid-1", "lyon-1", 1, 10),
            ("madrid-1", "rome-1", 1, 10),
            ("paris-1", "sao-paulo-1", 1, 45),
            ("lyon-1", "sao-paulo-1", 1, 45),
        ],
        &["lyon-1"],
    );
    let policy = PathPolicy {
        excluded_jurisdictions: [country("FR")].into(),
        excluded_hubs: [hub("rome-1")].into(),
        ..PathPolicy::default()
    };
    let refusal = route(&topology, "madrid-1", "sao-paulo-1", &policy).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "no compliant path from madrid-1 (ES) to sao-paulo-1 (BR): every route crosses one of \
         the hubs lyon-1 (FR, an excluded jurisdiction), paris-1 (FR, an excluded jurisdiction)"
    );
}

#[test]
fn no_transit_hubs_are_never_intermediates_but_may_be_endpoints() {
    let topology = network(
        &[
            ("madrid-1", "ES"),
            ("paris-1", "FR"),
            ("geneva-1", "CH"),
            ("bogota-1", "CO"),
        ],
        &[
            ("madrid-1", "paris-1", 1, 10),
            ("paris-1", "bogota-1", 1, 50),
            ("madrid-1", "geneva-1", 1, 12),
            ("geneva-1", "bogota-1", 1, 90),
        ],
        &["paris-1"],
    );
    let policy = PathPolicy::default();
    let choice = route(&topology, "madrid-1", "bogota-1", &policy).unwrap();
    assert_eq!(ids(&choice.primary), ["madrid-1", "geneva-1", "bogota-1"]);
    assert_eq!(choice.backup, None, "the only other route crosses paris-1");
    let to_paris = route(&topology, "madrid-1", "paris-1", &policy).unwrap();
    assert_eq!(ids(&to_paris.primary), ["madrid-1", "paris-1"]);
    let from_paris = route(&topology, "paris-1", "geneva-1", &policy).unwrap();
    assert_eq!(
        ids(&from_paris.primary),
        ["paris-1", "madrid-1", "geneva-1"]
    );
    let via_paris_only = network(
        &[("madrid-1", "ES"), ("paris-1", "FR"), ("bogota-1", "CO")],
        &[
            ("madrid-1", "paris-1", 1, 10),
            ("paris-1", "bogota-1", 1, 50),
        ],
        &["paris-1"],
    );
    assert_eq!(
        route(&via_paris_only, "madrid-1", "bogota-1", &policy)
            .unwrap_err()
            .to_string(),
        "no compliant path from madrid-1 (ES) to bogota-1 (CO): every route crosses hub \
         paris-1 (FR, no transit)"
    );
}

#[test]
fn allowed_jurisdictions_and_excluded_hubs_bind_every_hub() {
    let topology = atlantic();
    let iberia_and_brazil = PathPolicy {
        allowed_jurisdictions: [country("ES"), country("PT"), country("BR")].into(),
        ..PathPolicy::default()
    };
    let choice = route(&topology, "madrid-1", "sao-paulo-1", &iberia_and_brazil).unwrap();
    assert_eq!(
        ids(&choice.primary),
        ["madrid-1", "lisbon-1", "sao-paulo-1"]
    );
    let refusal = route(&topology, "madrid-1", "bogota-1", &iberia_and_brazil).unwrap_err();
    assert_eq!(
        refusal.to_string(),
        "no compliant path from madrid-1 (ES) to bogota-1 (CO): the destination itself is \
         outside the allowed jurisdictions"
    );
    let not_lisbon = PathPolicy {
        excluded_hubs: [hub("lisbon-1")].into(),
        excluded_jurisdictions: [country("FR")].into(),
        ..PathPolicy::default()
    };
    let choice = route(&topology, "malaga-1", "bogota-1", &not_lisbon).unwrap();
    assert_eq!(
        ids(&choice.primary),
        ["malaga-1", "madrid-1", "geneva-1", "bogota-1"]
    );
    assert_eq!(
        route(&topology, "lisbon-1", "bogota-1", &not_lisbon)
            .unwrap_err()
            .to_string(),
        "no compliant path from lisbon-1 (PT) to bogota-1 (CO): the source itself is an excluded hub"
    );
}

#[test]
fn hop_and_latency_limits_are_honoured() {
    let topology = atlantic();
    // The fastest route malaga → sao-paulo has 3 hops; within 2 it goes by Lisbon.
    let two_hops = PathPolicy {
        max_hops: Some(2),
        ..PathPolicy::default()
    };
    let choice = route(&topology, "malaga-1", "sao-paulo-1", &two_hops).unwrap();
    assert_eq!(
        ids(&choice.primary),
        ["malaga-1", "lisbon-1", "sao-paulo-1"]
    );
    assert!(choice.backup.as_ref().is_none_or(|b| b.hops() <= 2));
    let one_hop = PathPolicy {
        max_hops: Some(1),
        ..PathPolicy::default()
    };
    assert_eq!(
        route(&topology, "malaga-1", "sao-paulo-1", &one_hop)
            .unwrap_err()
            .to_string(),
        "no compliant path from malaga-1 (ES) to sao-paulo-1 (BR) within 1 hop: compliant \
         routes have at least 2"
    );
    let fast = PathPolicy {
        max_latency: Some(Latency::from_millis(50)),
        ..PathPolicy::default()
    };
    assert_eq!(
        route(&topology, "malaga-1", "sao-paulo-1", &fast)
            .unwrap_err()
            .to_string(),
        "no compliant path from malaga-1 (ES) to sao-paulo-1 (BR) within 50.0 ms: the fastest \
         compliant route takes 59.0 ms"
    );
}

#[test]
fn a_required_backup_takes_the_disjoint_pair_when_the_fastest_path_has_none() {
    // The trap: s-a-b-t is fastest, and removing it leaves no route; s-a-t and s-b-t are a
    // disjoint pair.
    let topology = network(
        &[("s", "ES"), ("a", "ES"), ("b", "ES"), ("t", "ES")],
        &[
            ("s", "a", 1, 1),
            ("a", "b", 1, 1),
            ("b", "t", 1, 1),
            ("s", "b", 1, 3),
            ("a", "t", 1, 3),
        ],
        &[],
    );
    let optional = route(&topology, "s", "t", &PathPolicy::default()).unwrap();
    assert_eq!(ids(&optional.primary), ["s", "a", "b", "t"]);
    assert_eq!(optional.backup, None);
    let required = PathPolicy {
        disjoint_backup: true,
        ..PathPolicy::default()
    };
    let choice = route(&topology, "s", "t", &required).unwrap();
    let backup = choice.backup.unwrap();
    assert!(!choice.primary.shares_link_with(&backup));
    let mut pair = [ids(&choice.primary), ids(&backup)];
    pair.sort();
    assert_eq!(pair, [["s", "a", "t"], ["s", "b", "t"]]);
    // A limit the pair breaks: refused, never answered with the shared fastest path.
    let tight = PathPolicy {
        disjoint_backup: true,
        max_latency: Some(Latency::from_millis(3)),
        ..PathPolicy::default()
    };
    let refusal = route(&topology, "s", "t", &tight).unwrap_err();
    assert!(
        matches!(refusal, Refusal::BackupBeyondLimits { .. }),
        "{refusal}"
    );
}

#[test]
fn a_required_backup_is_refused_naming_the_shared_link() {
    let topology = network(
        &[
            ("madrid-1", "ES"),
            ("lisbon-1", "PT"),
            ("malaga-1", "ES"),
            ("sao-paulo-1", "BR"),
        ],
        &[
            ("madrid-1", "lisbon-1", 1, 5),
            ("madrid-1", "malaga-1", 1, 4),
            ("malaga-1", "lisbon-1", 1, 6),
            ("lisbon-1", "sao-paulo-1", 1, 60),
        ],
        &[],
    );
    let required = PathPolicy {
        disjoint_backup: true,
        ..PathPolicy::default()
    };
    assert_eq!(
        route(&topology, "madrid-1", "sao-paulo-1", &required)
            .unwrap_err()
            .to_string(),
        "no link-disjoint backup from madrid-1 (ES) to sao-paulo-1 (BR): every compliant route \
         uses link lisbon-1—sao-paulo-1 #1"
    );
}

#[test]
fn endpoints_that_are_unknown_identical_or_unconnected_are_refused() {
    let topology = network(
        &[("madrid-1", "ES"), ("lisbon-1", "PT"), ("bogota-1", "CO")],
        &[("madrid-1", "lisbon-1", 1, 5)],
        &[],
    );
    let policy = PathPolicy::default();
    assert_eq!(
        route(&topology, "madrid-1", "tokyo-1", &policy).unwrap_err(),
        Refusal::UnknownHub(hub("tokyo-1"))
    );
    assert_eq!(
        route(&topology, "madrid-1", "madrid-1", &policy).unwrap_err(),
        Refusal::SameHub(hub("madrid-1"))
    );
    assert_eq!(
        route(&topology, "madrid-1", "bogota-1", &policy)
            .unwrap_err()
            .to_string(),
        "no path from madrid-1 (ES) to bogota-1 (CO): no route joins them, whatever the policy"
    );
}
