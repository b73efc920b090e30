//! Advertisements: construction rules, signing, and the wire format against hostile bytes.

use std::time::{Duration, UNIX_EPOCH};

use super::wire::{DecodeError, MAGIC, MAX_ENCODED_LEN, ReadError};
use super::*;
use crate::hub_certificate::verify_signature;
use crate::testing::{Draft, Site, hub};

fn sample(site: &Site) -> (crate::testing::HubCert, SignedAdvertisement) {
    let cert = site.hub("madrid-1");
    let advertisement = Draft::new("madrid-1", "ES")
        .sequence(42)
        .link("paris-1", 2, 9)
        .link("lisbon-1", 1, 4)
        .link("paris-1", 1, 8)
        .vouch("paris-1", site.fingerprint())
        .vouch("lisbon-1", site.fingerprint())
        .prefix("2001:db8:77::/48")
        .prefix("10.77.1.0/24")
        .prefix("10.77.0.0/16")
        .no_transit()
        .build();
    let signed = cert.sign(advertisement);
    (cert, signed)
}

#[test]
fn links_and_vouchers_are_sorted_so_the_encoding_is_unique() {
    let site = Site::new("madrid");
    let (_, signed) = sample(&site);
    let ad = signed.advertisement();
    let order: Vec<(String, u16)> = ad
        .links()
        .iter()
        .map(|l| (l.neighbour.to_string(), l.link.get()))
        .collect();
    assert_eq!(
        order,
        [
            ("lisbon-1".into(), 1),
            ("paris-1".into(), 1),
            ("paris-1".into(), 2)
        ]
    );
    assert_eq!(ad.vouchers()[0].hub, hub("lisbon-1"));
    assert_eq!(ad.voucher_for(&hub("paris-1")), Some(&site.fingerprint()));
    assert_eq!(ad.voucher_for(&hub("geneva-1")), None);
    let prefixes: Vec<String> = ad.prefixes().iter().map(ToString::to_string).collect();
    assert_eq!(
        prefixes,
        ["10.77.0.0/16", "10.77.1.0/24", "2001:db8:77::/48"],
        "by address then length, IPv4 first"
    );
    // The same content given in another order is the same advertisement, the same bytes.
    let mut reversed = ad.parts().clone();
    reversed.links.reverse();
    reversed.vouchers.reverse();
    reversed.prefixes.reverse();
    let again = Advertisement::new(reversed).unwrap();
    assert_eq!(&again, ad);
    assert_eq!(again.signed_message(), ad.signed_message());
}

#[test]
fn construction_refuses_what_no_hub_may_advertise() {
    let fp = Site::new("x").fingerprint();
    let bad = |draft: Draft| Advertisement::new(draft.0).unwrap_err();
    assert!(matches!(
        bad(Draft::new("madrid-1", "ES")
            .link("paris-1", 1, 5)
            .link("paris-1", 1, 6)),
        InvalidAdvertisement::DuplicateLink { .. }
    ));
    assert_eq!(
        bad(Draft::new("madrid-1", "ES").link("madrid-1", 1, 5)),
        InvalidAdvertisement::LinkToSelf(hub("madrid-1"))
    );
    assert_eq!(
        bad(Draft::new("madrid-1", "ES").link("paris-1", 1, 0)).to_string(),
        "link #1 to paris-1 has latency 0 µs, expected 1 µs to 60 s"
    );
    assert!(matches!(
        bad(Draft::new("madrid-1", "ES").link("paris-1", 1, 60_001)),
        InvalidAdvertisement::LatencyOutOfRange { .. }
    ));
    assert_eq!(
        bad(Draft::new("madrid-1", "ES")
            .vouch("paris-1", fp)
            .vouch("paris-1", fp)),
        InvalidAdvertisement::DuplicateVoucher(hub("paris-1"))
    );
    assert_eq!(
        bad(Draft::new("madrid-1", "ES").vouch("madrid-1", fp)),
        InvalidAdvertisement::VoucherForSelf(hub("madrid-1"))
    );
    let mut many = Draft::new("madrid-1", "ES");
    for i in 0..=MAX_LINKS {
        many = many.link(&format!("h{i}"), 1, 1);
    }
    assert_eq!(bad(many), InvalidAdvertisement::TooManyLinks(MAX_LINKS + 1));
    let mut many = Draft::new("madrid-1", "ES");
    for i in 0..=MAX_VOUCHERS {
        many = many.vouch(&format!("h{i}"), fp);
    }
    assert_eq!(
        bad(many),
        InvalidAdvertisement::TooManyVouchers(MAX_VOUCHERS + 1)
    );
    assert_eq!(
        bad(Draft::new("madrid-1", "ES")
            .prefix("10.77.1.0/24")
            .prefix("10.77.1.0/24"))
        .to_string(),
        "prefix 10.77.1.0/24 is announced twice"
    );
    let mut many = Draft::new("madrid-1", "ES");
    for i in 0..=MAX_PREFIXES {
        many = many.prefix(&format!("10.{i}.0.0/16"));
    }
    assert_eq!(
        bad(many),
        InvalidAdvertisement::TooManyPrefixes(MAX_PREFIXES + 1)
    );
}

#[test]
fn the_signature_covers_the_domain_prefix_and_the_content() {
    let site = Site::new("madrid");
    let (cert, signed) = sample(&site);
    let message = signed.advertisement().signed_message();
    assert!(message.starts_with(SIGNATURE_DOMAIN));
    verify_signature(cert.leaf(), &message, signed.signature()).unwrap();
    // Without the prefix, the same signature is worth nothing.
    assert!(
        verify_signature(
            cert.leaf(),
            &message[SIGNATURE_DOMAIN.len()..],
            signed.signature()
        )
        .is_err()
    );
    assert_eq!(
        signed.chain().len(),
        2,
        "hub certificate, then the site root"
    );
    assert_eq!(signed.chain()[1], *site.root());
}

#[test]
fn a_chain_without_its_root_cannot_sign() {
    let site = Site::new("madrid");
    let cert = site.hub("madrid-1");
    let leaf_only = appliance::tls::Identity::new(
        vec![cert.leaf().clone()],
        std::sync::Arc::clone(cert.identity().key()),
    )
    .unwrap();
    let error =
        SignedAdvertisement::sign(Draft::new("madrid-1", "ES").build(), &leaf_only).unwrap_err();
    assert!(matches!(error, SignError::ChainLength(1)), "{error}");
}

#[test]
fn encoding_round_trips_to_the_same_bytes() {
    let site = Site::new("madrid");
    let (_, signed) = sample(&site);
    let bytes = signed.encode();
    assert_eq!(&bytes[..4], &MAGIC);
    let decoded = SignedAdvertisement::decode(&bytes).unwrap();
    assert_eq!(decoded, signed);
    assert_eq!(decoded.encode(), bytes);
    let empty = site
        .hub("geneva-1")
        .sign(Draft::new("geneva-1", "CH").build());
    assert_eq!(SignedAdvertisement::decode(&empty.encode()).unwrap(), empty);
}

/// The encoding of `signed` with the content rewritten by `edit` (offsets into the content,
/// which starts after magic and version).
fn tampered(signed: &SignedAdvertisement, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = signed.encode();
    edit(&mut bytes);
    bytes
}

#[test]
fn every_truncation_is_a_clear_error() {
    let site = Site::new("madrid");
    let (_, signed) = sample(&site);
    let bytes = signed.encode();
    for len in 0..bytes.len() {
        let error = SignedAdvertisement::decode(&bytes[..len]).unwrap_err();
        assert!(
            matches!(error, DecodeError::Read(ReadError::Truncated(_))),
            "cut at {len}: {error}"
        );
    }
    assert_eq!(
        SignedAdvertisement::decode(&bytes[..5])
            .unwrap_err()
            .to_string(),
        "undecodable advertisement: it ends inside its origin"
    );
}

#[test]
fn hostile_headers_and_trailers_are_refused() {
    let site = Site::new("madrid");
    let (_, signed) = sample(&site);
    let decode = |bytes: &[u8]| SignedAdvertisement::decode(bytes).unwrap_err();
    assert_eq!(
        decode(&vec![0; MAX_ENCODED_LEN + 1]),
        DecodeError::TooLarge {
            len: MAX_ENCODED_LEN + 1
        }
    );
    assert_eq!(
        decode(&tampered(&signed, |b| b[0] = b'X')),
        DecodeError::BadMagic
    );
    assert_eq!(
        decode(&tampered(&signed, |b| b[4] = 2)),
        DecodeError::UnsupportedVersion(2)
    );
    assert_eq!(
        decode(&tampered(&signed, |b| b.push(0))),
        DecodeError::TrailingBytes(1)
    );
    // origin length 0, 64; a capital letter in it
    assert!(matches!(
        decode(&tampered(&signed, |b| b[5] = 0)),
        DecodeError::Read(ReadError::HubId {
            field: "origin",
            ..
        })
    ));
    assert!(matches!(
        decode(&tampered(&signed, |b| b[5] = 64)),
        DecodeError::Read(ReadError::HubId {
            field: "origin",
            ..
        })
    ));
    assert!(matches!(
        decode(&tampered(&signed, |b| b[6] = b'M')),
        DecodeError::Read(ReadError::HubId { .. })
    ));
    // "madrid-1" is 8 bytes: jurisdiction at 14, flags at 16
    assert_eq!(
        decode(&tampered(&signed, |b| b[14..16].copy_from_slice(b"UK"))),
        DecodeError::Read(ReadError::Jurisdiction(*b"UK"))
    );
    assert_eq!(
        decode(&tampered(&signed, |b| b[16] = 0x81)),
        DecodeError::UnknownFlags(0x81)
    );
    // the signature: s = 0 is not a signature value
    let len = signed.encode().len();
    assert_eq!(
        decode(&tampered(&signed, |b| b[len - 32..].fill(0))),
        DecodeError::SignatureValue
    );
}

/// Builds raw content bytes for an origin `a` with the given link and voucher sections.
fn raw(links: &[(&str, u16, u32)], vouchers: &[&str], chain: &[&[u8]]) -> Vec<u8> {
    raw_with_prefixes(links, vouchers, &[], chain)
}

/// [`raw`] with prefixes given as (family, length, address bytes).
fn raw_with_prefixes(
    links: &[(&str, u16, u32)],
    vouchers: &[&str],
    prefixes: &[(u8, u8, &[u8])],
    chain: &[&[u8]],
) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(1);
    out.extend_from_slice(&[1, b'a']);
    out.extend_from_slice(b"ES");
    out.push(0);
    out.extend_from_slice(&7u64.to_be_bytes());
    out.extend_from_slice(&u64::MAX.to_be_bytes());
    out.extend_from_slice(&u16::try_from(links.len()).unwrap().to_be_bytes());
    for (neighbour, id, micros) in links {
        out.push(u8::try_from(neighbour.len()).unwrap());
        out.extend_from_slice(neighbour.as_bytes());
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&micros.to_be_bytes());
    }
    out.extend_from_slice(&u16::try_from(vouchers.len()).unwrap().to_be_bytes());
    for hub in vouchers {
        out.push(u8::try_from(hub.len()).unwrap());
        out.extend_from_slice(hub.as_bytes());
        out.extend_from_slice(&[7; 32]);
    }
    out.extend_from_slice(&u16::try_from(prefixes.len()).unwrap().to_be_bytes());
    for (family, length, address) in prefixes {
        out.extend_from_slice(&[*family, *length]);
        out.extend_from_slice(address);
    }
    out.push(u8::try_from(chain.len()).unwrap());
    for cert in chain {
        out.extend_from_slice(&u16::try_from(cert.len()).unwrap().to_be_bytes());
        out.extend_from_slice(cert);
    }
    let mut signature = [0u8; 64];
    signature[31] = 1;
    signature[63] = 1;
    out.extend_from_slice(&signature);
    out
}

#[test]
fn hand_made_content_decodes_only_in_canonical_form() {
    let cert: &[u8] = &[0x30, 0x00];
    let ok = SignedAdvertisement::decode(&raw(
        &[("b", 1, 10), ("b", 2, 10), ("c", 1, 10)],
        &["b", "c"],
        &[cert],
    ))
    .unwrap();
    assert_eq!(ok.advertisement().links().len(), 3);
    let decode = |bytes: Vec<u8>| SignedAdvertisement::decode(&bytes).unwrap_err();
    assert_eq!(
        decode(raw(&[("c", 1, 10), ("b", 1, 10)], &[], &[cert])),
        DecodeError::NotCanonical("links")
    );
    assert_eq!(
        decode(raw(&[("b", 2, 10), ("b", 1, 10)], &[], &[cert])),
        DecodeError::NotCanonical("links")
    );
    assert!(matches!(
        decode(raw(&[("b", 1, 10), ("b", 1, 11)], &[], &[cert])),
        DecodeError::Invalid(InvalidAdvertisement::DuplicateLink { .. })
    ));
    assert_eq!(
        decode(raw(&[], &["c", "b"], &[cert])),
        DecodeError::NotCanonical("vouchers")
    );
    assert!(matches!(
        decode(raw(&[], &["b", "b"], &[cert])),
        DecodeError::Invalid(InvalidAdvertisement::DuplicateVoucher(_))
    ));
    assert_eq!(
        decode(raw(&[("b", 0, 10)], &[], &[cert])),
        DecodeError::LinkIdZero
    );
    assert!(matches!(
        decode(raw(&[("b", 1, 0)], &[], &[cert])),
        DecodeError::Invalid(InvalidAdvertisement::LatencyOutOfRange { .. })
    ));
    assert!(matches!(
        decode(raw(&[("b", 1, 60_000_001)], &[], &[cert])),
        DecodeError::Invalid(InvalidAdvertisement::LatencyOutOfRange { .. })
    ));
    assert!(matches!(
        decode(raw(&[("a", 1, 10)], &[], &[cert])),
        DecodeError::Invalid(InvalidAdvertisement::LinkToSelf(_))
    ));
    assert_eq!(decode(raw(&[], &[], &[])), DecodeError::ChainLength(0));
    assert_eq!(
        decode(raw(&[], &[], &[cert; 5])),
        DecodeError::ChainLength(5)
    );
    assert_eq!(
        decode(raw(&[], &[], &[&[]])),
        DecodeError::CertificateLength { index: 0, len: 0 }
    );
    let huge = vec![0u8; MAX_CERTIFICATE_LEN + 1];
    assert_eq!(
        decode(raw(&[], &[], &[cert, &huge])),
        DecodeError::CertificateLength {
            index: 1,
            len: MAX_CERTIFICATE_LEN + 1
        }
    );
}

#[test]
fn announced_prefixes_decode_only_well_formed_and_in_canonical_form() {
    let cert: &[u8] = &[0x30, 0x00];
    let v4 = |a: u8, length: u8| (4u8, length, vec![10, 77, a, 0]);
    let with = |prefixes: &[(u8, u8, Vec<u8>)]| {
        let prefixes: Vec<(u8, u8, &[u8])> = prefixes
            .iter()
            .map(|(family, length, address)| (*family, *length, address.as_slice()))
            .collect();
        SignedAdvertisement::decode(&raw_with_prefixes(&[], &[], &prefixes, &[cert]))
    };
    let ok = with(&[
        v4(1, 24),
        v4(2, 24),
        (
            6,
            32,
            vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
    ])
    .unwrap();
    let prefixes: Vec<String> = ok
        .advertisement()
        .prefixes()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(prefixes, ["10.77.1.0/24", "10.77.2.0/24", "2001:db8::/32"]);
    assert_eq!(
        with(&[v4(2, 24), v4(1, 24)]).unwrap_err(),
        DecodeError::NotCanonical("prefixes")
    );
    assert!(matches!(
        with(&[v4(1, 24), v4(1, 24)]).unwrap_err(),
        DecodeError::Invalid(InvalidAdvertisement::DuplicatePrefix(_))
    ));
    assert_eq!(
        with(&[v4(1, 16)]).unwrap_err().to_string(),
        "an announced prefix is malformed: 10.77.1.0/16 has host bits set; the prefix is 10.77.0.0/16"
    );
    assert!(matches!(
        with(&[v4(0, 33)]).unwrap_err(),
        DecodeError::Prefix(crate::grant::IpPrefixError::TooLong { .. })
    ));
    assert_eq!(
        with(&[(5, 8, vec![10, 0, 0, 0])]).unwrap_err(),
        DecodeError::PrefixFamily(5)
    );
}

#[test]
fn counts_are_refused_before_anything_is_read_or_allocated() {
    let cert: &[u8] = &[0x30, 0x00];
    let mut bytes = raw(&[], &[], &[cert]);
    // The links count sits after magic 4, version 1, origin 2, jurisdiction 2, flags 1,
    // sequence 8, expiry 8 = offset 26.
    bytes[26..28].copy_from_slice(&u16::MAX.to_be_bytes());
    assert_eq!(
        SignedAdvertisement::decode(&bytes).unwrap_err(),
        DecodeError::Read(ReadError::TooMany {
            what: "links",
            count: 65535,
            max: MAX_LINKS
        })
    );
}

#[test]
fn sequence_numbers_grow_across_restarts_and_clock_steps() {
    let at = |millis: u64| UNIX_EPOCH + Duration::from_millis(millis);
    assert_eq!(next_sequence(None, at(5_000)), 5_000);
    assert_eq!(next_sequence(Some(4_000), at(5_000)), 5_000);
    assert_eq!(
        next_sequence(Some(9_000), at(5_000)),
        9_001,
        "the clock stepped back"
    );
    assert_eq!(next_sequence(Some(u64::MAX), at(5_000)), u64::MAX);
    assert_eq!(next_sequence(None, UNIX_EPOCH - Duration::from_secs(1)), 0);
}

#[test]
fn flags_refuse_unknown_bits() {
    assert_eq!(Flags::from_bits(0), Some(Flags::default()));
    assert_eq!(Flags::from_bits(1), Some(Flags { no_transit: true }));
    assert_eq!(Flags { no_transit: true }.bits(), 1);
    assert_eq!(Flags::from_bits(2), None);
}

#[test]
fn the_fuzz_seeds_are_current_encodings() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/hub_advertisement");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let decoded = SignedAdvertisement::decode(&bytes).unwrap();
        assert_eq!(decoded.encode(), bytes);
        seen += 1;
    }
    assert!(seen >= 2, "seeds in {}", dir.display());
}
