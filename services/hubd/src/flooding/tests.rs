//! Flooding, first as a decision in memory (frames handed from hub to hub by the test), then
//! over real links on loopback: hubs of different sites and jurisdictions, each with its own site
//! root and hub certificate made here, on ephemeral ports. Nothing is timed: waits end when a
//! condition holds, and a generous guard only keeps a broken test from hanging.

mod loopback;

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use super::*;
use crate::advertisement::SignedAdvertisement;
use crate::grant::Grant;
use crate::link::LinkId;
use crate::peering::{PeerLink, PeeringAgreement, Peers};
use crate::testing::{Draft, HubCert, Site, country, hub, sign_bytes};

fn link_key(peer: &str, id: u16) -> LinkKey {
    LinkKey {
        peer: hub(peer),
        link: LinkId::new(id).unwrap(),
    }
}

fn peers_of(own: &str, peers: &[(&str, &str, &Site, std::net::SocketAddr)]) -> Peers {
    let mut all = Peers::new(hub(own));
    for (peer, code, site, address) in peers {
        let agreement = PeeringAgreement::new(
            hub(peer),
            country(code),
            vec![PeerLink {
                id: LinkId::new(1).unwrap(),
                address: *address,
            }],
            site.pinned(),
            Grant::default(),
        )
        .unwrap();
        all.add(agreement).unwrap();
    }
    all
}

fn address(port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], port))
}

fn advertisement_of(frame: &[u8]) -> SignedAdvertisement {
    match ControlMessage::decode(frame).unwrap() {
        ControlMessage::Advertisement(signed) => signed,
    }
}

#[test]
fn hysteresis_needs_both_the_relative_and_the_absolute_change() {
    let hysteresis = FloodingSettings::default().hysteresis;
    let ms = Latency::from_millis;
    assert!(!hysteresis.exceeded(ms(10), ms(11)), "10 %");
    assert!(hysteresis.exceeded(ms(10), ms(13)), "30 % and 3 ms");
    assert!(hysteresis.exceeded(ms(10), ms(7)), "down by 30 %");
    assert!(
        !hysteresis.exceeded(Latency::from_micros(50), Latency::from_micros(500)),
        "900 % but under 1 ms: loopback jitter"
    );
    assert!(!hysteresis.exceeded(ms(100), ms(115)), "15 ms but 15 %");
}

#[test]
fn control_messages_round_trip_and_junk_is_named() {
    let site = Site::new("madrid");
    let signed = site
        .hub("madrid-1")
        .sign(Draft::new("madrid-1", "ES").build());
    let message = ControlMessage::Advertisement(signed);
    assert_eq!(ControlMessage::decode(&message.encode()).unwrap(), message);
    assert_eq!(ControlMessage::decode(&[]).unwrap_err().label(), "empty");
    assert_eq!(
        ControlMessage::decode(&[9, 1, 2]).unwrap_err(),
        message::MessageError::UnknownKind(9)
    );
    assert_eq!(
        ControlMessage::decode(&[1, b'H', b'U'])
            .unwrap_err()
            .label(),
        "undecodable_advertisement"
    );
}

/// Three hubs in a line, madrid-1 — lisbon-1 — sao-paulo-1, each of its own site, as pure
/// decisions: the test carries each outbound frame to the hub at the other end.
struct Line {
    hubs: Vec<Flooding>,
    in_flight: VecDeque<(usize, Outbound)>,
}

const LINE: [(&str, &str); 3] = [
    ("madrid-1", "ES"),
    ("lisbon-1", "PT"),
    ("sao-paulo-1", "BR"),
];

impl Line {
    fn new() -> (Self, Vec<Site>) {
        let sites: Vec<Site> = LINE.iter().map(|(id, _)| Site::new(id)).collect();
        let certs: Vec<HubCert> = LINE
            .iter()
            .zip(&sites)
            .map(|((id, _), site)| site.hub(id))
            .collect();
        let hubs = (0..LINE.len())
            .map(|i| {
                let neighbours: Vec<_> = [i.checked_sub(1), Some(i + 1)]
                    .into_iter()
                    .flatten()
                    .filter(|&j| j < LINE.len())
                    .map(|j| (LINE[j].0, LINE[j].1, &sites[j], address(7400 + j as u16)))
                    .collect();
                Flooding::new(
                    certs[i].identity().clone(),
                    country(LINE[i].1),
                    &peers_of(LINE[i].0, &neighbours),
                    FloodingSettings::default(),
                    SystemTime::now(),
                )
                .unwrap()
            })
            .collect();
        (
            Self {
                hubs,
                in_flight: VecDeque::new(),
            },
            sites,
        )
    }

    fn index(id: &HubId) -> usize {
        LINE.iter().position(|(name, _)| hub(name) == *id).unwrap()
    }

    fn send(&mut self, from: usize, out: Vec<Outbound>) {
        self.in_flight.extend(out.into_iter().map(|o| (from, o)));
    }

    /// Brings the link between `a` and `b` up at both ends (frames still in flight).
    fn up(&mut self, a: usize, b: usize) {
        let now = SystemTime::now();
        let rtt = Duration::from_millis(10);
        let out = self.hubs[a].link_up(link_key(LINE[b].0, 1), rtt, now);
        self.send(a, out);
        let out = self.hubs[b].link_up(link_key(LINE[a].0, 1), rtt, now);
        self.send(b, out);
    }

    /// Delivers frames until none is left; returns how many were delivered.
    fn settle(&mut self) -> usize {
        let mut delivered = 0;
        while let Some((from, Outbound { to, frame })) = self.in_flight.pop_front() {
            let target = Self::index(&to.peer);
            let out =
                self.hubs[target].receive(&link_key(LINE[from].0, 1), &frame, SystemTime::now());
            self.send(target, out);
            delivered += 1;
            assert!(delivered < 10_000, "flooding does not settle");
        }
        delivered
    }
}

#[test]
fn a_line_converges_and_the_far_hub_is_trusted_through_the_middle_ones_voucher() {
    let (mut line, _sites) = Line::new();
    line.up(0, 1);
    line.up(1, 2);
    line.settle();
    let now = SystemTime::now();
    let views: Vec<_> = line.hubs.iter().map(|h| h.view(now)).collect();
    for view in &views {
        assert_eq!(view.topology.hub_count(), 3);
        assert_eq!(view.topology.link_count(), 2);
    }
    assert_eq!(
        views[0].trusted.get(&hub("sao-paulo-1")),
        Some(&TrustPath::Vouched {
            by: hub("lisbon-1")
        })
    );
    assert_eq!(
        views[2].trusted.get(&hub("madrid-1")),
        Some(&TrustPath::Vouched {
            by: hub("lisbon-1")
        })
    );
    for view in &views {
        assert!(view.counters.rejected.is_empty(), "{:?}", view.counters);
    }
}

#[test]
fn an_advertisement_before_its_voucher_is_held_back_then_admitted_and_forwarded() {
    let (mut line, _sites) = Line::new();
    line.up(0, 1);
    line.up(1, 2);
    // Lisbon learns of São Paulo first; madrid hears São Paulo's advertisement before Lisbon's.
    let mut early = Vec::new();
    while let Some((from, out)) = line.in_flight.pop_front() {
        early.push((from, out));
    }
    let from_lisbon_to_madrid =
        |(from, out): &(usize, Outbound)| *from == 1 && out.to.peer == hub("madrid-1");
    let (to_madrid, others): (Vec<_>, Vec<_>) = early.into_iter().partition(from_lisbon_to_madrid);
    for (from, out) in others {
        line.in_flight.push_back((from, out));
    }
    line.settle();
    // Lisbon forwarded São Paulo's advertisement to Madrid, which has not heard Lisbon's own
    // (the one that vouches for São Paulo): held back, not stored, not refused.
    let madrid = line.hubs[0].view(SystemTime::now());
    assert_eq!(madrid.held_back, 1);
    assert_eq!(madrid.counters.held_back, 1);
    assert!(!madrid.advertisements.contains_key(&hub("sao-paulo-1")));
    assert_eq!(madrid.counters.rejected("unknown_hub"), 0);
    for (from, out) in to_madrid {
        line.in_flight.push_back((from, out));
    }
    line.settle();
    let madrid = line.hubs[0].view(SystemTime::now());
    assert_eq!(madrid.held_back, 0);
    assert!(madrid.advertisements.contains_key(&hub("sao-paulo-1")));
    assert_eq!(madrid.topology.link_count(), 2);
    assert_eq!(madrid.counters.rejected("unknown_hub"), 0);
}

#[test]
fn an_advertisement_nobody_vouches_for_leaves_after_its_time_and_is_counted() {
    let (mut line, _sites) = Line::new();
    line.up(0, 1);
    line.settle();
    let rome = Site::new("rome");
    let stranger = rome.hub("rome-1").sign(Draft::new("rome-1", "IT").build());
    let frame = ControlMessage::Advertisement(stranger).encode();
    let now = SystemTime::now();
    line.hubs[0].receive(&link_key("lisbon-1", 1), &frame, now);
    // The same copy again is a duplicate, not a second wait.
    line.hubs[0].receive(&link_key("lisbon-1", 1), &frame, now);
    let view = line.hubs[0].view(now);
    assert_eq!((view.held_back, view.counters.duplicates), (1, 1));
    let later = now + FloodingSettings::default().held_back_for + Duration::from_secs(1);
    line.hubs[0].tick(later);
    let view = line.hubs[0].view(later);
    assert_eq!(view.held_back, 0);
    assert_eq!(view.counters.rejected("unknown_hub"), 1);
    assert!(!view.advertisements.contains_key(&hub("rome-1")));
}

#[test]
fn an_accepted_advertisement_goes_to_every_other_link_never_back() {
    let (mut line, _sites) = Line::new();
    line.up(0, 1);
    line.up(1, 2);
    line.settle();
    // Madrid re-originates (transit withdrawn); Lisbon forwards it to São Paulo only.
    let out = line.hubs[0].set_transit(false, SystemTime::now());
    assert_eq!(out.len(), 1);
    let forwarded =
        line.hubs[1].receive(&link_key("madrid-1", 1), &out[0].frame, SystemTime::now());
    let targets: Vec<_> = forwarded.iter().map(|o| o.to.clone()).collect();
    assert_eq!(targets, [link_key("sao-paulo-1", 1)]);
    assert_eq!(forwarded[0].frame, out[0].frame, "forwarded unchanged");
    let view = line.hubs[1].view(SystemTime::now());
    assert!(view.advertisements[&hub("madrid-1")].flags().no_transit);
    // The same copy again: a duplicate, not forwarded, not a refusal.
    let again = line.hubs[1].receive(&link_key("madrid-1", 1), &out[0].frame, SystemTime::now());
    assert!(again.is_empty());
    let view = line.hubs[1].view(SystemTime::now());
    assert_eq!(view.counters.duplicates, 1);
    assert!(view.counters.rejected.is_empty());
}

#[test]
fn announced_prefixes_are_carried_by_the_own_advertisement() {
    let (mut line, _sites) = Line::new();
    line.up(0, 1);
    line.settle();
    let prefixes = |text: &[&str]| -> Vec<crate::grant::IpPrefix> {
        text.iter()
            .map(|p| crate::grant::IpPrefix::parse(p).unwrap())
            .collect()
    };
    let out = line.hubs[0].set_prefixes(
        prefixes(&["10.77.2.0/24", "10.77.1.0/24"]),
        SystemTime::now(),
    );
    assert_eq!(out.len(), 1, "re-originated on the link up");
    line.hubs[1].receive(&link_key("madrid-1", 1), &out[0].frame, SystemTime::now());
    let view = line.hubs[1].view(SystemTime::now());
    assert_eq!(
        view.advertisements[&hub("madrid-1")].prefixes(),
        prefixes(&["10.77.1.0/24", "10.77.2.0/24"])
    );
    // The same set again (in any order) changes nothing.
    let again = line.hubs[0].set_prefixes(
        prefixes(&["10.77.1.0/24", "10.77.2.0/24"]),
        SystemTime::now(),
    );
    assert!(again.is_empty());
}

#[test]
fn only_a_material_latency_change_reoriginates() {
    let (mut line, _sites) = Line::new();
    let now = SystemTime::now();
    let key = link_key("lisbon-1", 1);
    line.hubs[0].link_up(key.clone(), Duration::from_millis(20), now);
    let sequence = line.hubs[0].own().advertisement().sequence();
    assert_eq!(
        line.hubs[0].own().advertisement().links()[0].latency,
        Latency::from_millis(10)
    );
    // 10 ms one way, measured 11 ms: not material.
    assert!(
        line.hubs[0]
            .link_rtt(&key, Duration::from_millis(22), now)
            .is_empty()
    );
    assert_eq!(line.hubs[0].own().advertisement().sequence(), sequence);
    // 16 ms: 60 % and 6 ms, re-originated with the new latency.
    let out = line.hubs[0].link_rtt(&key, Duration::from_millis(32), now);
    assert_eq!(out.len(), 1);
    let own = line.hubs[0].own().advertisement();
    assert!(own.sequence() > sequence);
    assert_eq!(own.links()[0].latency, Latency::from_millis(16));
    assert_eq!(advertisement_of(&out[0].frame).advertisement(), own);
}

#[test]
fn the_own_advertisement_is_refreshed_before_it_expires() {
    let (mut line, _sites) = Line::new();
    let start = SystemTime::now();
    let first = line.hubs[0].own().advertisement().clone();
    assert!(line.hubs[0].tick(start).is_empty());
    assert_eq!(line.hubs[0].own().advertisement(), &first);
    let half = FloodingSettings::default().lifetime / 2;
    line.hubs[0].tick(start + half + Duration::from_secs(1));
    let refreshed = line.hubs[0].own().advertisement();
    assert!(refreshed.sequence() > first.sequence());
    assert!(refreshed.expires_at() > first.expires_at());
}

#[test]
fn a_copy_of_our_own_advertisement_from_before_a_restart_is_advertised_above() {
    let (mut line, sites) = Line::new();
    // A copy signed by this very hub with a sequence far above what it now sends (its clock
    // was ahead before it restarted): the hub advertises above it.
    let ahead = line.hubs[0].own().advertisement().sequence() + 1_000_000;
    let copy = sites[0]
        .hub("madrid-1")
        .sign(Draft::new("madrid-1", "ES").sequence(ahead).build());
    let frame = ControlMessage::Advertisement(copy).encode();
    line.hubs[0].receive(&link_key("lisbon-1", 1), &frame, SystemTime::now());
    assert!(line.hubs[0].own().advertisement().sequence() > ahead);
    assert_eq!(line.hubs[0].counters().rejected("own_origin"), 1);
}

#[test]
fn a_forged_signature_is_refused_counted_and_changes_nothing() {
    let (mut line, sites) = Line::new();
    line.up(0, 1);
    line.settle();
    let before = line.hubs[0].view(SystemTime::now());
    // Lisbon's real chain, signed by another key of Lisbon's site.
    let real = sites[1].hub("lisbon-1");
    let other = sites[1].hub("lisbon-1");
    let content = Draft::new("lisbon-1", "PT")
        .sequence(u64::MAX - 1)
        .link("madrid-1", 1, 1)
        .build();
    let signature = sign_bytes(&other, &content.signed_message());
    let forged = SignedAdvertisement::from_parts(content, real.chain().to_vec(), signature);
    let out = line.hubs[0].receive(
        &link_key("lisbon-1", 1),
        &ControlMessage::Advertisement(forged).encode(),
        SystemTime::now(),
    );
    assert!(out.is_empty());
    let after = line.hubs[0].view(SystemTime::now());
    assert_eq!(after.counters.rejected("bad_signature"), 1);
    assert_eq!(after.advertisements, before.advertisements);
}
