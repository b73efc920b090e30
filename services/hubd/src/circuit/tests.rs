//! Circuits over real QUIC links on loopback, with real end-to-end TLS.
//!
//! Four hubs in a line, each of its own site and country: madrid-1 (ES) — lisbon-1 (PT) —
//! sao-paulo-1 (BR) — bogota-1 (CO), link 1 each. Lisbon grants Madrid transit and São Paulo
//! grants Lisbon transit, so Madrid reaches Bogotá through both; nobody else is granted transit.
//! Every relay's control plane is set by hand to vouch for every hub, unless a test says not.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::*;
use crate::hub_id::HubId;
use crate::link::{Latency, LinkId};
use crate::links::frame;
use crate::path_selection::{Path, PathHub};
use crate::session_id::SessionId;
use crate::testing::loopback::{
    Loopback, LoopbackHub, guarded, link_key, patient, vouching_for_all,
};
use crate::testing::{Site, country, hub};
use crate::topology::LinkName;

const LINE: [&str; 4] = ["madrid-1", "lisbon-1", "sao-paulo-1", "bogota-1"];

/// The network and a relay on every hub, each told about every link it has up.
struct Network {
    hubs: BTreeMap<&'static str, LoopbackHub>,
    relays: BTreeMap<&'static str, Relay>,
    inbound: BTreeMap<&'static str, mpsc::Receiver<InboundCircuit>>,
}

impl Network {
    async fn start() -> Self {
        let patient = RelaySettings {
            open_timeout: Duration::from_secs(10),
            inbound_queue: 4,
            receipt_recheck: Duration::from_millis(300),
        };
        Self::start_with(patient).await
    }

    async fn start_with(settings: RelaySettings) -> Self {
        let hubs = Loopback::default()
            .hub("madrid-1", "ES")
            .hub("lisbon-1", "PT")
            .hub("sao-paulo-1", "BR")
            .hub("bogota-1", "CO")
            .cable("madrid-1", "lisbon-1", 1)
            .cable("lisbon-1", "sao-paulo-1", 1)
            .cable("sao-paulo-1", "bogota-1", 1)
            .grant_transit("lisbon-1", "madrid-1")
            .grant_transit("sao-paulo-1", "lisbon-1")
            .start(patient())
            .await;
        let (chains, jurisdictions) = vouching_for_all(&hubs);
        let mut relays = BTreeMap::new();
        let mut inbound = BTreeMap::new();
        for (id, running) in &hubs {
            let (relay, circuits) = Relay::new(
                running.cert.identity().clone(),
                running.jurisdiction,
                Arc::new(running.peers.clone()),
                settings,
            );
            for link in running.links.values() {
                relay.link_up(link.streams());
            }
            relay.set_control_plane(chains.clone(), jurisdictions.clone());
            relays.insert(*id, relay);
            inbound.insert(*id, circuits);
        }
        Self {
            hubs,
            relays,
            inbound,
        }
    }

    /// The path along these hubs of the line, link 1 between each pair.
    fn path(&self, ids: &[&str]) -> Path {
        let hubs = ids
            .iter()
            .map(|id| PathHub {
                id: hub(id),
                jurisdiction: self.hubs[id].jurisdiction,
            })
            .collect();
        let links = ids
            .windows(2)
            .map(|pair| {
                let (a, b) = if pair[0] < pair[1] {
                    (pair[0], pair[1])
                } else {
                    (pair[1], pair[0])
                };
                LinkName {
                    a: hub(a),
                    b: hub(b),
                    id: LinkId::new(1).unwrap(),
                }
            })
            .collect();
        Path {
            hubs,
            links,
            latency: Latency::from_millis(1),
        }
    }

    /// Opens a circuit along `ids` from its first hub; on success, the destination's side too.
    async fn open(
        &mut self,
        ids: &[&str],
    ) -> Result<(OutboundCircuit, InboundCircuit), CircuitError> {
        let path = self.path(ids);
        let session = SessionId::random();
        let outbound = guarded(self.relays[ids[0]].open(&path, session)).await?;
        let destination = ids[ids.len() - 1];
        let inbound = guarded(self.inbound.get_mut(destination).unwrap().recv())
            .await
            .expect("the relay is alive");
        assert_eq!(inbound.session, session);
        assert_eq!(inbound.source, hub(ids[0]));
        Ok((outbound, inbound))
    }

    /// The refusal opening along `ids` meets.
    async fn refusal(&mut self, ids: &[&str]) -> (HubId, CircuitRefusal) {
        let path = self.path(ids);
        match guarded(self.relays[ids[0]].open(&path, SessionId::random())).await {
            Err(CircuitError::Refused { hub, reason }) => (hub, reason),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Sends `open` raw on `from`'s link to `to` and returns the reply.
    async fn raw(&self, from: &str, to: &str, open: &[u8]) -> CircuitReply {
        let streams = self.hubs[from].links[&link_key(to, 1)].streams();
        let (mut send, mut recv) = guarded(streams.open()).await.unwrap();
        guarded(frame::write_frame(&mut send, open)).await.unwrap();
        let reply = guarded(frame::read_frame(&mut recv)).await.unwrap();
        CircuitReply::decode(&reply).unwrap()
    }
}

/// `len` bytes in which `marker` recurs.
fn plaintext(marker: &[u8], len: usize) -> Vec<u8> {
    marker.iter().copied().cycle().take(len).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_cross_two_transit_hubs_both_ways_and_transit_sees_only_ciphertext() {
    let mut network = Network::start().await;
    let taps = [
        network.relays["lisbon-1"].tap_transit(),
        network.relays["sao-paulo-1"].tap_transit(),
    ];
    let (outbound, inbound) = network.open(&LINE).await.unwrap();

    // Every hop proven, in order, with the jurisdiction each hub advertises.
    let proven: Vec<_> = outbound
        .hops
        .iter()
        .map(|hop| (hop.hub.to_string(), hop.jurisdiction.to_string()))
        .collect();
    let expected = [
        ("madrid-1", "ES"),
        ("lisbon-1", "PT"),
        ("sao-paulo-1", "BR"),
        ("bogota-1", "CO"),
    ];
    assert_eq!(
        proven,
        expected.map(|(id, code)| (id.to_owned(), code.to_owned()))
    );
    assert_eq!(outbound.hops[1].previous, Some(hub("madrid-1")));
    assert_eq!(outbound.hops[1].next, Some(hub("sao-paulo-1")));
    assert_eq!(outbound.hops[3].next, None);
    assert_eq!(inbound.route.hubs().len(), 4);

    const LEN: usize = 4 << 20;
    let marker = b"BUNKEROS-PLAINTEXT-MARKER-7f3a";
    let forth = plaintext(marker, LEN);
    let back = plaintext(b"AND-BACK-FROM-BOGOTA-MARKER-91c", LEN);
    let (mut source_read, mut source_write) = tokio::io::split(outbound.stream);
    let (mut destination_read, mut destination_write) = tokio::io::split(inbound.stream);
    let sent = forth.clone();
    let source_sends = tokio::spawn(async move {
        source_write.write_all(&sent).await.unwrap();
        source_write.shutdown().await.unwrap();
        source_write
    });
    let returned = back.clone();
    let destination_sends = tokio::spawn(async move {
        destination_write.write_all(&returned).await.unwrap();
        destination_write.shutdown().await.unwrap();
        destination_write
    });
    let (mut arrived, mut came_back) = (Vec::new(), Vec::new());
    guarded(async {
        tokio::try_join!(
            destination_read.read_to_end(&mut arrived),
            source_read.read_to_end(&mut came_back),
        )
    })
    .await
    .unwrap();
    let _halves = guarded(async { tokio::try_join!(source_sends, destination_sends) })
        .await
        .unwrap();
    assert_eq!(Sha256::digest(&arrived), Sha256::digest(&forth));
    assert_eq!(Sha256::digest(&came_back), Sha256::digest(&back));

    // What each transit hub forwarded: all of it (records, both ways), none of it readable.
    for tap in taps {
        let forwarded = tap.lock().unwrap();
        assert!(
            forwarded.len() >= 2 * LEN,
            "{} bytes forwarded",
            forwarded.len()
        );
        assert!(!contains(&forwarded, marker), "plaintext in transit");
        assert!(
            !contains(&forwarded, b"AND-BACK-FROM-BOGOTA"),
            "plaintext in transit"
        );
        assert!(
            contains(&forwarded, &[0x17, 0x03, 0x03]),
            "TLS application data records"
        );
    }
    let lisbon = network.relays["lisbon-1"].counters();
    assert_eq!(lisbon.transit.total, 1);
    assert!(lisbon.transit_bytes >= 2 * LEN as u64);
    assert_eq!(network.relays["madrid-1"].counters().opened.total, 1);
    assert_eq!(network.relays["bogota-1"].counters().destination.total, 1);
}

/// A hub that renewed its certificate signs receipts with its new key a moment before its new
/// advertisement reaches the source: the source checks again when its control plane changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_signed_with_a_key_the_control_plane_learns_a_moment_later_is_accepted() {
    let mut network = Network::start().await;
    let (chains, jurisdictions) = vouching_for_all(&network.hubs);
    let madrid = network.relays["madrid-1"].clone();
    // Madrid still holds São Paulo's previous certificate.
    let previous = network.hubs["sao-paulo-1"].site.hub("sao-paulo-1");
    let mut stale = chains.clone();
    stale.insert(hub("sao-paulo-1"), previous.chain().to_vec());
    madrid.set_control_plane(stale, jurisdictions.clone());
    let learning = tokio::spawn({
        let madrid = madrid.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            madrid.set_control_plane(chains, jurisdictions);
        }
    });
    let circuit = network.open(&LINE).await;
    learning.await.unwrap();
    assert!(circuit.is_ok(), "{:?}", circuit.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_that_do_not_verify_against_the_control_plane_refuse_the_circuit() {
    let mut network = Network::start().await;
    let (mut chains, mut jurisdictions) = vouching_for_all(&network.hubs);
    let madrid = network.relays["madrid-1"].clone();

    // São Paulo's receipt checked with another key than São Paulo's: as if it were forged.
    let other_key = network.hubs["sao-paulo-1"].site.hub("sao-paulo-1");
    let mut forged = chains.clone();
    forged.insert(hub("sao-paulo-1"), other_key.chain().to_vec());
    madrid.set_control_plane(forged, jurisdictions.clone());
    let error = network.open(&LINE).await.unwrap_err();
    assert!(
        matches!(&error, CircuitError::Receipts(ReceiptError::BadSignature { hub: h, .. }) if *h == hub("sao-paulo-1")),
        "{error:?}"
    );

    // Lisbon advertises Spain, but its receipt says Portugal.
    let mut spain = jurisdictions.clone();
    spain.insert(hub("lisbon-1"), country("ES"));
    madrid.set_control_plane(chains.clone(), spain);
    let error = network.open(&LINE).await.unwrap_err();
    assert!(
        matches!(
            &error,
            CircuitError::Receipts(ReceiptError::WrongJurisdiction { .. })
        ),
        "{error:?}"
    );

    // Lisbon not vouched for at all.
    chains.remove(&hub("lisbon-1"));
    jurisdictions.remove(&hub("lisbon-1"));
    madrid.set_control_plane(chains, jurisdictions);
    let error = network.open(&LINE).await.unwrap_err();
    assert!(
        matches!(&error, CircuitError::Receipts(ReceiptError::UnknownHub(h)) if *h == hub("lisbon-1")),
        "{error:?}"
    );
    assert_eq!(madrid.counters().failed_opens("receipts"), 3);
    assert_eq!(madrid.counters().opened.total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_transit_a_hub_refuses_to_carry_but_still_reaches_and_is_reached() {
    let mut network = Network::start().await;
    network.relays["lisbon-1"].set_transit(false);
    assert_eq!(
        network.refusal(&LINE).await,
        (hub("lisbon-1"), CircuitRefusal::NoTransit)
    );
    assert_eq!(
        network.relays["lisbon-1"].counters().refused("no_transit"),
        1
    );
    // Lisbon as destination, and as source through São Paulo.
    network.open(&["madrid-1", "lisbon-1"]).await.unwrap();
    network
        .open(&["lisbon-1", "sao-paulo-1", "bogota-1"])
        .await
        .unwrap();
    network.relays["lisbon-1"].set_transit(true);
    network.open(&LINE).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_a_transit_grant_is_refused() {
    let mut network = Network::start().await;
    // São Paulo grants Lisbon transit, not Bogotá.
    assert_eq!(
        network
            .refusal(&["bogota-1", "sao-paulo-1", "lisbon-1"])
            .await,
        (hub("sao-paulo-1"), CircuitRefusal::NotGranted)
    );
    let counters = network.relays["sao-paulo-1"].counters();
    assert_eq!(counters.refused("not_granted"), 1);
    assert_eq!(counters.transit.total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loops_wrong_previous_hops_and_strangers_are_refused() {
    let network = Network::start().await;
    let session = SessionId::random();
    let raw_open = |ids: &[&str]| {
        let mut bytes = wire::MAGIC.to_vec();
        bytes.extend_from_slice(&[wire::VERSION, 1]);
        bytes.extend_from_slice(session.as_bytes());
        let hubs: Vec<_> = ids.iter().map(|id| hub(id)).collect();
        let links = vec![LinkId::new(1).unwrap(); ids.len() - 1];
        wire::encode_route_parts(&hubs, &links, &mut bytes);
        bytes.push(0);
        bytes
    };
    let refused = |hub_id: &str, reason| CircuitReply::Refused {
        hub: hub(hub_id),
        reason,
    };
    let cases = [
        (
            &["madrid-1", "lisbon-1", "madrid-1"][..],
            CircuitRefusal::Loop,
        ),
        (
            &["sao-paulo-1", "lisbon-1", "bogota-1"][..],
            CircuitRefusal::WrongPreviousHop,
        ),
        (&["madrid-1", "sao-paulo-1"][..], CircuitRefusal::NotOnRoute),
    ];
    for (ids, reason) in cases {
        let reply = network.raw("madrid-1", "lisbon-1", &raw_open(ids)).await;
        assert_eq!(reply, refused("lisbon-1", reason), "{ids:?}");
    }
    let reply = network.raw("madrid-1", "lisbon-1", b"not a circuit").await;
    assert_eq!(reply, refused("lisbon-1", CircuitRefusal::Malformed));
    let counters = network.relays["lisbon-1"].counters();
    for label in ["loop", "wrong_previous_hop", "not_on_route", "malformed"] {
        assert_eq!(counters.refused(label), 1, "{label}");
    }
    // The source refuses a looping path itself, before anything is sent.
    let looped = network.path(&["madrid-1", "lisbon-1", "madrid-1"]);
    let error = network.relays["madrid-1"]
        .open(&looped, session)
        .await
        .unwrap_err();
    assert!(
        matches!(error, CircuitError::Route(RouteError::Loop(_))),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_refuse_each_other_unless_the_control_plane_vouches_for_that_chain() {
    let mut network = Network::start().await;
    let (chains, jurisdictions) = vouching_for_all(&network.hubs);
    let rome = Site::new("rome");

    // Bogotá's control plane holds another site's chain for madrid-1: the real one is refused.
    let mut impostor_madrid = chains.clone();
    impostor_madrid.insert(hub("madrid-1"), rome.hub("madrid-1").chain().to_vec());
    network.relays["bogota-1"].set_control_plane(impostor_madrid, jurisdictions.clone());
    let error = network.open(&LINE).await.unwrap_err();
    assert!(matches!(error, CircuitError::Handshake(_)), "{error:?}");
    let bogota = network.relays["bogota-1"].counters();
    assert_eq!(bogota.refused("handshake"), 1);
    assert_eq!(bogota.destination.total, 0);
    assert!(
        network
            .inbound
            .get_mut("bogota-1")
            .unwrap()
            .try_recv()
            .is_err()
    );

    // Madrid's control plane holds bogota-1's key under Rome's root: its receipt verifies, but
    // the chain it presents end to end does not lead to that root, so Madrid refuses it.
    network.relays["bogota-1"].set_control_plane(chains.clone(), jurisdictions.clone());
    let mut rooted_in_rome = chains.clone();
    let bogota_leaf = network.hubs["bogota-1"].cert.leaf().clone();
    rooted_in_rome.insert(hub("bogota-1"), vec![bogota_leaf, rome.root().clone()]);
    network.relays["madrid-1"].set_control_plane(rooted_in_rome, jurisdictions.clone());
    let error = network.open(&LINE).await.unwrap_err();
    assert!(matches!(error, CircuitError::Handshake(_)), "{error:?}");
    // A chain with another key for bogota-1: caught already by its receipt.
    let mut other_key = chains.clone();
    other_key.insert(hub("bogota-1"), rome.hub("bogota-1").chain().to_vec());
    network.relays["madrid-1"].set_control_plane(other_key, jurisdictions.clone());
    let error = network.open(&LINE).await.unwrap_err();
    assert!(
        matches!(
            error,
            CircuitError::Receipts(ReceiptError::BadSignature { .. })
        ),
        "{error:?}"
    );

    // A source the destination's control plane knows nothing of is refused before any receipt.
    network.relays["madrid-1"].set_control_plane(chains.clone(), jurisdictions.clone());
    let mut without_madrid = chains;
    without_madrid.remove(&hub("madrid-1"));
    network.relays["bogota-1"].set_control_plane(without_madrid, jurisdictions);
    assert_eq!(
        network.refusal(&LINE).await,
        (hub("bogota-1"), CircuitRefusal::UnknownSource)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_cut_mid_circuit_fails_the_source_at_once() {
    let mut network = Network::start().await;
    let (outbound, inbound) = network.open(&LINE).await.unwrap();
    let (mut source, mut destination) = (outbound.stream, inbound.stream);
    guarded(source.write_all(b"before the cut")).await.unwrap();
    guarded(source.flush()).await.unwrap();
    let mut buffer = [0u8; 14];
    guarded(destination.read_exact(&mut buffer)).await.unwrap();
    assert_eq!(&buffer, b"before the cut");

    // São Paulo's link to Bogotá goes down (QUIC close), nothing else changes.
    network.hubs["sao-paulo-1"].links[&link_key("bogota-1", 1)].close();
    let cut = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(2), source.read(&mut buffer)).await;
    let read = read.expect("the source is still waiting 2 s after the cut");
    // Reset by the transit hubs, not a clean end (which TLS would report as a truncation).
    let error = read.expect_err("a lost circuit must fail, not end");
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    assert!(cut.elapsed() < Duration::from_secs(2));
    let counters = network.relays["madrid-1"].counters();
    assert_eq!(counters.opened.total, 1);
    // The transit hubs gave the circuit up too.
    guarded(async {
        while network.relays["lisbon-1"].counters().transit.active > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(network.relays["lisbon-1"].counters().transit.total, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_frame_that_stalls_is_refused_after_the_open_timeout() {
    let settings = RelaySettings {
        open_timeout: Duration::from_millis(300),
        inbound_queue: 4,
        ..RelaySettings::default()
    };
    let network = Network::start_with(settings).await;
    let streams = network.hubs["madrid-1"].links[&link_key("lisbon-1", 1)].streams();
    let (mut send, mut recv) = guarded(streams.open()).await.unwrap();
    // A length header announcing 100 bytes, and then nothing.
    guarded(send.write_all(&100u32.to_be_bytes()))
        .await
        .unwrap();
    let waited = Instant::now();
    let reply = guarded(frame::read_frame(&mut recv)).await.unwrap();
    assert!(
        waited.elapsed() >= Duration::from_millis(250),
        "{:?}",
        waited.elapsed()
    );
    assert_eq!(
        CircuitReply::decode(&reply).unwrap(),
        CircuitReply::Refused {
            hub: hub("lisbon-1"),
            reason: CircuitRefusal::Timeout
        }
    );
    assert_eq!(network.relays["lisbon-1"].counters().refused("timeout"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_with_no_room_refuses_busy_and_counts_only_live_circuits() {
    let mut network = Network::start().await;
    let mut held = Vec::new();
    for _ in 0..4 {
        let path = network.path(&["madrid-1", "lisbon-1"]);
        let circuit = guarded(network.relays["madrid-1"].open(&path, SessionId::random()))
            .await
            .unwrap();
        held.push(circuit);
    }
    // Lisbon's daemon took none of them: the queue of 4 is full.
    assert_eq!(
        network.refusal(&["madrid-1", "lisbon-1"]).await,
        (hub("lisbon-1"), CircuitRefusal::Busy)
    );
    let madrid = network.relays["madrid-1"].counters();
    assert_eq!(
        madrid.opened,
        CircuitCount {
            active: 4,
            total: 4
        }
    );
    drop(held);
    assert_eq!(network.relays["madrid-1"].counters().opened.active, 0);
    let lisbon = network.inbound.get_mut("lisbon-1").unwrap();
    assert!(lisbon.try_recv().is_ok());
}
