//! Trust: pinned peers, vouchers hop by hop, and every way an advertisement is refused.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

use super::*;
use crate::testing::{Draft, HubCert, Site, hub, now};

/// madrid-1 (this hub) peers with paris-1 and lisbon-1; sao-paulo-1 peers with lisbon-1, and
/// bogota-1 with sao-paulo-1. Each hub is its own site.
struct World {
    paris: Site,
    lisbon: Site,
    sao_paulo: Site,
    bogota: Site,
    anchors: TrustAnchors,
    held: BTreeMap<HubId, VerifiedAdvertisement>,
}

impl World {
    fn new() -> Self {
        let (paris, lisbon) = (Site::new("paris"), Site::new("lisbon"));
        let mut anchors = TrustAnchors::new(hub("madrid-1"));
        anchors.pin(hub("paris-1"), &paris.pinned()).unwrap();
        anchors.pin(hub("lisbon-1"), &lisbon.pinned()).unwrap();
        Self {
            paris,
            lisbon,
            sao_paulo: Site::new("sao-paulo"),
            bogota: Site::new("bogota"),
            anchors,
            held: BTreeMap::new(),
        }
    }

    fn admit(&mut self, signed: SignedAdvertisement) -> Result<(), Rejection> {
        let verified = admit(&self.anchors, &self.held, signed, now())?;
        self.held
            .insert(verified.advertisement().origin().clone(), verified);
        Ok(())
    }

    /// lisbon-1's advertisement, vouching for sao-paulo-1 with `root`.
    fn lisbon_vouching(&self, sequence: u64, root: SpkiFingerprint) -> SignedAdvertisement {
        self.lisbon.hub("lisbon-1").sign(
            Draft::new("lisbon-1", "PT")
                .sequence(sequence)
                .link("madrid-1", 1, 3)
                .link("sao-paulo-1", 1, 40)
                .vouch("sao-paulo-1", root)
                .build(),
        )
    }

    fn sao_paulo_ad(&self, cert: &HubCert, sequence: u64) -> SignedAdvertisement {
        cert.sign(
            Draft::new("sao-paulo-1", "BR")
                .sequence(sequence)
                .link("lisbon-1", 1, 40)
                .link("bogota-1", 1, 20)
                .vouch("bogota-1", self.bogota.fingerprint())
                .build(),
        )
    }
}

#[test]
fn a_peer_is_trusted_through_its_pinned_root() {
    let mut world = World::new();
    let ad = world
        .paris
        .hub("paris-1")
        .sign(Draft::new("paris-1", "FR").build());
    world.admit(ad).unwrap();
    assert_eq!(
        world.held[&hub("paris-1")].root(),
        world.paris.fingerprint()
    );
    let trusted = trusted_hubs(&world.anchors, &world.held, now());
    assert_eq!(trusted.get(&hub("paris-1")), Some(&TrustPath::Peer));
}

#[test]
fn a_peer_root_re_issued_with_the_same_key_still_verifies() {
    let mut world = World::new();
    let cert = world.paris.hub("paris-1");
    // The advertisement carries a different root certificate for the same key.
    let signed = cert.sign(Draft::new("paris-1", "FR").build());
    let mut chain = signed.chain().to_vec();
    chain[1] = world.paris.reissued_root();
    let reissued =
        SignedAdvertisement::from_parts(signed.advertisement().clone(), chain, signed.signature());
    world.admit(reissued).unwrap();
}

#[test]
fn a_forged_signature_is_refused() {
    let mut world = World::new();
    let signed = world
        .paris
        .hub("paris-1")
        .sign(Draft::new("paris-1", "FR").link("madrid-1", 1, 5).build());
    // Same chain and signature, but the content now claims a faster link and no transit.
    let forged_content = Draft::new("paris-1", "FR")
        .link("madrid-1", 1, 1)
        .no_transit()
        .build();
    let forged = SignedAdvertisement::from_parts(
        forged_content,
        signed.chain().to_vec(),
        signed.signature(),
    );
    let rejection = world.admit(forged).unwrap_err();
    assert!(
        matches!(rejection, Rejection::BadSignature { .. }),
        "{rejection}"
    );
    assert_eq!(rejection.reason(), "bad_signature");
    // Signed by another key of the same site, presenting paris-1's certificate.
    let impostor = world.paris.hub("paris-9");
    let content = Draft::new("paris-1", "FR").build();
    let signature = crate::testing::sign_bytes(&impostor, &content.signed_message());
    let chain = world.paris.hub("paris-1").chain().to_vec();
    let rejection = world
        .admit(SignedAdvertisement::from_parts(content, chain, signature))
        .unwrap_err();
    assert!(
        matches!(rejection, Rejection::BadSignature { .. }),
        "{rejection}"
    );
    assert!(world.held.is_empty(), "a refusal changes nothing");
}

#[test]
fn replayed_and_stale_sequences_are_refused() {
    let mut world = World::new();
    let cert = world.paris.hub("paris-1");
    let seq = |n| cert.sign(Draft::new("paris-1", "FR").sequence(n).build());
    world.admit(seq(5)).unwrap();
    let replay = world.admit(seq(5)).unwrap_err();
    assert_eq!(
        replay,
        Rejection::Replayed {
            origin: hub("paris-1"),
            sequence: 5
        }
    );
    assert_eq!(
        world.admit(seq(4)).unwrap_err(),
        Rejection::Stale {
            origin: hub("paris-1"),
            held: 5,
            received: 4
        }
    );
    world.admit(seq(6)).unwrap();
    assert_eq!(world.held[&hub("paris-1")].advertisement().sequence(), 6);
}

#[test]
fn expired_and_overlong_advertisements_are_refused() {
    let mut world = World::new();
    let cert = world.paris.hub("paris-1");
    let expired = cert.sign(Draft::new("paris-1", "FR").expires_at(now()).build());
    assert!(matches!(
        world.admit(expired).unwrap_err(),
        Rejection::Expired { .. }
    ));
    let overlong = cert.sign(
        Draft::new("paris-1", "FR")
            .expires_at(now().plus_secs(MAX_LIFETIME_SECS + 60))
            .build(),
    );
    let rejection = world.admit(overlong).unwrap_err();
    assert!(
        matches!(rejection, Rejection::ExpiresTooLate { .. }),
        "{rejection}"
    );
    let day = cert.sign(
        Draft::new("paris-1", "FR")
            .expires_at(now().plus_secs(MAX_LIFETIME_SECS - 60))
            .build(),
    );
    world.admit(day).unwrap();
}

#[test]
fn an_unknown_hub_is_refused() {
    let mut world = World::new();
    let geneva = Site::new("geneva");
    let ad = geneva
        .hub("geneva-1")
        .sign(Draft::new("geneva-1", "CH").build());
    assert_eq!(
        world.admit(ad).unwrap_err(),
        Rejection::UnknownHub(hub("geneva-1"))
    );
}

#[test]
fn a_hub_presenting_another_sites_certificate_is_refused() {
    let mut world = World::new();
    // A certificate naming paris-1, issued by Lisbon's CA (Lisbon is trusted, but not for paris-1).
    let lisbon_made = world.lisbon.hub("paris-1");
    let rejection = world
        .admit(lisbon_made.sign(Draft::new("paris-1", "FR").build()))
        .unwrap_err();
    assert!(
        matches!(&rejection, Rejection::WrongRoot { origin, presented, expected }
            if *origin == hub("paris-1") && *presented == world.lisbon.fingerprint()
               && *expected == vec![world.paris.fingerprint()]),
        "{rejection}"
    );
    assert!(
        rejection
            .to_string()
            .contains("not the root pinned or vouched for paris-1")
    );
    // lisbon-1's own certificate used to speak for paris-1.
    let lisbon = world.lisbon.hub("lisbon-1");
    let rejection = world
        .admit(lisbon.sign(Draft::new("paris-1", "FR").build()))
        .unwrap_err();
    assert_eq!(rejection.reason(), "wrong_root");
    // The right site, but the certificate of another of its hubs.
    let paris_2 = world.paris.hub("paris-2");
    assert_eq!(
        world
            .admit(paris_2.sign(Draft::new("paris-1", "FR").build()))
            .unwrap_err(),
        Rejection::HubIdMismatch {
            advertised: hub("paris-1"),
            certified: hub("paris-2")
        }
    );
    assert!(world.held.is_empty());
}

#[test]
fn certificates_that_are_not_valid_hub_certificates_are_refused() {
    let mut world = World::new();
    let service = world
        .paris
        .hub_with_names("api", &["api.paris.bunker.test"]);
    let rejection = world
        .admit(service.sign(Draft::new("paris-1", "FR").build()))
        .unwrap_err();
    assert!(
        matches!(rejection, Rejection::NotAHubCertificate { .. }),
        "{rejection}"
    );
    let long_ago = OffsetDateTime::now_utc() - Duration::days(60);
    let expired = world.paris.hub_valid(
        "paris-1",
        &["bunkeros:hub:paris-1"],
        long_ago,
        long_ago + Duration::days(30),
    );
    let rejection = world
        .admit(expired.sign(Draft::new("paris-1", "FR").build()))
        .unwrap_err();
    assert!(
        matches!(rejection, Rejection::InvalidChain { .. }),
        "{rejection}"
    );
    assert!(
        rejection.to_string().contains("does not verify"),
        "{rejection}"
    );
    let cert = world.paris.hub("paris-1");
    let signed = cert.sign(Draft::new("paris-1", "FR").build());
    let leaf_only = SignedAdvertisement::from_parts(
        signed.advertisement().clone(),
        vec![cert.leaf().clone()],
        signed.signature(),
    );
    assert_eq!(
        world.admit(leaf_only).unwrap_err(),
        Rejection::ChainWithoutRoot(hub("paris-1"))
    );
}

#[test]
fn an_advertisement_in_our_own_name_is_refused() {
    let mut world = World::new();
    let madrid = Site::new("madrid");
    let ad = madrid
        .hub("madrid-1")
        .sign(Draft::new("madrid-1", "ES").sequence(77).build());
    assert_eq!(
        world.admit(ad).unwrap_err(),
        Rejection::OwnOrigin { sequence: 77 }
    );
}

#[test]
fn trust_extends_hop_by_hop_through_vouchers() {
    let mut world = World::new();
    let sao_paulo = world.sao_paulo.hub("sao-paulo-1");
    let bogota = world.bogota.hub("bogota-1");
    let bogota_ad = bogota.sign(
        Draft::new("bogota-1", "CO")
            .link("sao-paulo-1", 1, 20)
            .build(),
    );
    // Nobody vouches for them yet.
    assert_eq!(
        world.admit(world.sao_paulo_ad(&sao_paulo, 1)).unwrap_err(),
        Rejection::UnknownHub(hub("sao-paulo-1"))
    );
    world
        .admit(world.lisbon_vouching(1, world.sao_paulo.fingerprint()))
        .unwrap();
    // bogota-1 is vouched for by sao-paulo-1, which is not trusted until its own ad is held.
    assert_eq!(
        world.admit(bogota_ad.clone()).unwrap_err(),
        Rejection::UnknownHub(hub("bogota-1"))
    );
    world.admit(world.sao_paulo_ad(&sao_paulo, 1)).unwrap();
    world.admit(bogota_ad).unwrap();
    let trusted = trusted_hubs(&world.anchors, &world.held, now());
    assert_eq!(trusted[&hub("lisbon-1")], TrustPath::Peer);
    assert_eq!(
        trusted[&hub("sao-paulo-1")],
        TrustPath::Vouched {
            by: hub("lisbon-1")
        }
    );
    assert_eq!(
        trusted[&hub("bogota-1")],
        TrustPath::Vouched {
            by: hub("sao-paulo-1")
        }
    );
}

#[test]
fn a_vouched_hub_must_present_the_vouched_root() {
    let mut world = World::new();
    world
        .admit(world.lisbon_vouching(1, world.sao_paulo.fingerprint()))
        .unwrap();
    let impostor_site = Site::new("elsewhere");
    let impostor = impostor_site.hub("sao-paulo-1");
    let rejection = world.admit(world.sao_paulo_ad(&impostor, 1)).unwrap_err();
    assert!(
        matches!(&rejection, Rejection::WrongRoot { expected, .. } if *expected == vec![world.sao_paulo.fingerprint()]),
        "{rejection}"
    );
}

#[test]
fn withdrawing_a_voucher_withdraws_the_trust_it_carried() {
    let mut world = World::new();
    world
        .admit(world.lisbon_vouching(1, world.sao_paulo.fingerprint()))
        .unwrap();
    let sao_paulo = world.sao_paulo.hub("sao-paulo-1");
    world.admit(world.sao_paulo_ad(&sao_paulo, 1)).unwrap();
    let bogota = world.bogota.hub("bogota-1");
    world
        .admit(bogota.sign(Draft::new("bogota-1", "CO").build()))
        .unwrap();
    assert_eq!(trusted_hubs(&world.anchors, &world.held, now()).len(), 3);
    // lisbon-1 ends its peering with sao-paulo-1: its next advertisement vouches for nobody.
    let lisbon = world.lisbon.hub("lisbon-1");
    world
        .admit(lisbon.sign(Draft::new("lisbon-1", "PT").sequence(2).build()))
        .unwrap();
    let trusted = trusted_hubs(&world.anchors, &world.held, now());
    assert_eq!(trusted.keys().collect::<Vec<_>>(), [&hub("lisbon-1")]);
    // And a newer advertisement from sao-paulo-1 is no longer accepted.
    assert_eq!(
        world.admit(world.sao_paulo_ad(&sao_paulo, 2)).unwrap_err(),
        Rejection::UnknownHub(hub("sao-paulo-1"))
    );
}

#[test]
fn trust_through_an_expired_voucher_lapses() {
    let mut world = World::new();
    let short = world.lisbon.hub("lisbon-1").sign(
        Draft::new("lisbon-1", "PT")
            .expires_at(now().plus_secs(60))
            .vouch("sao-paulo-1", world.sao_paulo.fingerprint())
            .build(),
    );
    world.admit(short).unwrap();
    let sao_paulo = world.sao_paulo.hub("sao-paulo-1");
    world.admit(world.sao_paulo_ad(&sao_paulo, 1)).unwrap();
    assert_eq!(trusted_hubs(&world.anchors, &world.held, now()).len(), 2);
    let later = now().plus_secs(120);
    assert!(trusted_hubs(&world.anchors, &world.held, later).is_empty());
    assert!(vouched_roots(&world.anchors, &world.held, &hub("sao-paulo-1"), later).is_empty());
}

#[test]
fn a_voucher_never_overrides_a_pinned_peer_root() {
    let mut world = World::new();
    // lisbon-1 vouches for paris-1 with Lisbon's root; our own pin for paris-1 is Paris's.
    let lisbon = world.lisbon.hub("lisbon-1");
    world
        .admit(
            lisbon.sign(
                Draft::new("lisbon-1", "PT")
                    .vouch("paris-1", world.lisbon.fingerprint())
                    .vouch("madrid-1", world.lisbon.fingerprint())
                    .build(),
            ),
        )
        .unwrap();
    assert!(vouched_roots(&world.anchors, &world.held, &hub("paris-1"), now()).is_empty());
    let lisbon_made = world.lisbon.hub("paris-1");
    assert_eq!(
        world
            .admit(lisbon_made.sign(Draft::new("paris-1", "FR").build()))
            .unwrap_err()
            .reason(),
        "wrong_root"
    );
}

#[test]
fn anchors_refuse_this_hub_as_a_peer() {
    let mut anchors = TrustAnchors::new(hub("madrid-1"));
    assert_eq!(
        anchors.pin(hub("madrid-1"), &Site::new("madrid").pinned()),
        Err(AnchorError::OwnHub(hub("madrid-1")))
    );
}

#[test]
fn every_rejection_has_its_own_metric_label() {
    let origin = hub("paris-1");
    let fp = Site::new("x").fingerprint();
    let all = [
        Rejection::OwnOrigin { sequence: 1 },
        Rejection::Expired {
            origin: origin.clone(),
            expired_at: now(),
        },
        Rejection::ExpiresTooLate {
            origin: origin.clone(),
            secs: 1,
        },
        Rejection::Replayed {
            origin: origin.clone(),
            sequence: 1,
        },
        Rejection::Stale {
            origin: origin.clone(),
            held: 2,
            received: 1,
        },
        Rejection::UnknownHub(origin.clone()),
        Rejection::ChainWithoutRoot(origin.clone()),
        Rejection::WrongRoot {
            origin: origin.clone(),
            presented: fp,
            expected: vec![],
        },
        Rejection::NotAHubCertificate {
            origin: origin.clone(),
            source: crate::hub_certificate::CertificateError::NoHubName,
        },
        Rejection::HubIdMismatch {
            advertised: origin.clone(),
            certified: origin.clone(),
        },
        Rejection::InvalidChain {
            origin: origin.clone(),
            error: webpki::Error::BadDer,
        },
        Rejection::BadSignature {
            origin,
            source: SignatureError::Mismatch,
        },
    ];
    let labels: std::collections::BTreeSet<&str> = all.iter().map(Rejection::reason).collect();
    assert_eq!(labels.len(), all.len());
    assert!(
        labels
            .iter()
            .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    );
}
