use super::*;
use crate::circuit::receipt::Hop;
use crate::hub_id::HubIdError;
use crate::link::LinkId;
use crate::testing::{Site, country, hub};

fn link(id: u16) -> LinkId {
    LinkId::new(id).unwrap()
}

fn session() -> SessionId {
    SessionId::from_bytes(*b"0123456789abcdef")
}

fn receipt(signer: &str, previous: &str, next: Option<&str>) -> TransitReceipt {
    let site = Site::new(signer);
    let hop = Hop {
        hub: hub(signer),
        jurisdiction: country("PT"),
        previous: Some(hub(previous)),
        next: next.map(hub),
        epoch: 1_800_000_000,
    };
    TransitReceipt::sign(site.hub(signer).identity(), session(), hop).unwrap()
}

/// madrid-1 → lisbon-1 → sao-paulo-1, with Lisbon's receipt.
fn open() -> CircuitOpen {
    CircuitOpen {
        session: session(),
        route: Route::new(
            vec![hub("madrid-1"), hub("lisbon-1"), hub("sao-paulo-1")],
            vec![link(1), link(7)],
        )
        .unwrap(),
        receipts: vec![receipt("lisbon-1", "madrid-1", Some("sao-paulo-1"))],
    }
}

/// An open frame with these raw hubs and links and no receipts.
fn raw_open(hubs: &[&str], links: &[LinkId]) -> Vec<u8> {
    let mut bytes = header(KIND_OPEN);
    bytes.extend_from_slice(session().as_bytes());
    let hubs: Vec<_> = hubs.iter().map(|id| hub(id)).collect();
    encode_route_parts(&hubs, links, &mut bytes);
    bytes.push(0);
    bytes
}

#[test]
fn frames_round_trip_to_the_same_bytes() {
    let open = open();
    let bytes = open.encode();
    assert_eq!(&bytes[..6], b"HUBC\x01\x01");
    assert_eq!(CircuitOpen::decode(&bytes).unwrap(), open);
    let replies = [
        CircuitReply::Accepted {
            receipts: vec![
                receipt("lisbon-1", "madrid-1", Some("sao-paulo-1")),
                receipt("sao-paulo-1", "lisbon-1", None),
            ],
        },
        CircuitReply::Accepted { receipts: vec![] },
        CircuitReply::Refused {
            hub: hub("lisbon-1"),
            reason: CircuitRefusal::NoTransit,
        },
    ];
    for reply in replies {
        let bytes = reply.encode();
        let decoded = CircuitReply::decode(&bytes).unwrap();
        assert_eq!(decoded, reply);
        assert_eq!(decoded.encode(), bytes);
    }
}

#[test]
fn the_longest_route_with_every_receipt_fits_a_frame() {
    let hubs: Vec<_> = (0..MAX_ROUTE_HUBS)
        .map(|i| hub(&format!("{i:0>63}")))
        .collect();
    let one = receipt("lisbon-1", "madrid-1", Some("sao-paulo-1"));
    let mut long = one.clone();
    long.hop.hub = hubs[1].clone();
    long.hop.previous = Some(hubs[0].clone());
    long.hop.next = Some(hubs[2].clone());
    let open = CircuitOpen {
        session: session(),
        route: Route::new(hubs, vec![link(65535); MAX_ROUTE_HUBS - 1]).unwrap(),
        receipts: vec![long; MAX_RECEIPTS],
    };
    let bytes = open.encode();
    assert!(bytes.len() <= MAX_FRAME_LEN, "{} bytes", bytes.len());
    assert_eq!(CircuitOpen::decode(&bytes).unwrap(), open);
}

#[test]
fn every_malformed_frame_is_refused_with_its_reason() {
    let good = open().encode();
    let with = |at: usize, byte: u8| {
        let mut bytes = good.clone();
        bytes[at] = byte;
        bytes
    };
    // Offsets in `good`: magic 0..4, version 4, kind 5, session 6..22, hub count 22, first hub
    // id length 23.
    let receipt_start =
        good.len() - open().receipts[0].signed_message().len() + RECEIPT_DOMAIN_LEN - 64;
    let cases: Vec<(Vec<u8>, DecodeError)> = vec![
        (
            vec![0; MAX_FRAME_LEN + 1],
            DecodeError::TooLarge {
                len: MAX_FRAME_LEN + 1,
            },
        ),
        (with(0, b'X'), DecodeError::BadMagic),
        (with(4, 2), DecodeError::UnsupportedVersion(2)),
        (
            with(5, KIND_ACCEPTED),
            DecodeError::UnexpectedKind(KIND_ACCEPTED),
        ),
        (with(5, 9), DecodeError::UnexpectedKind(9)),
        (
            good[..30].to_vec(),
            ReadError::Truncated("route hub").into(),
        ),
        (good[..3].to_vec(), ReadError::Truncated("magic").into()),
        (
            with(22, 66),
            ReadError::TooMany {
                what: "hubs",
                count: 66,
                max: MAX_ROUTE_HUBS,
            }
            .into(),
        ),
        (with(22, 1), RouteError::HubCount(1).into()),
        (
            with(23, 0),
            ReadError::HubId {
                field: "route hub",
                source: HubIdError::Empty,
            }
            .into(),
        ),
        (
            with(24, b'M'),
            ReadError::HubId {
                field: "route hub",
                source: HubIdError::BadCharacter {
                    id: "Madrid-1".into(),
                    found: 'M',
                },
            }
            .into(),
        ),
        (
            raw_open(&["madrid-1", "lisbon-1", "madrid-1"], &[link(1), link(1)]),
            RouteError::Loop(hub("madrid-1")).into(),
        ),
        (
            raw_open(&["madrid-1", "lisbon-1"], &[LinkId::new(1).unwrap()])
                .iter()
                .copied()
                .enumerate()
                .map(|(i, byte)| if i == 6 + 16 + 1 + 9 + 9 + 1 { 0 } else { byte })
                .collect(),
            DecodeError::LinkIdZero,
        ),
        (
            [good.clone(), vec![0]].concat(),
            DecodeError::TrailingBytes(1),
        ),
        (
            with(receipt_start + 16 + 9, b'X'),
            ReadError::Jurisdiction(*b"XT").into(),
        ),
        (
            [&good[..good.len() - 64], &[0; 64]].concat(),
            DecodeError::SignatureValue,
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            CircuitOpen::decode(&bytes),
            Err(expected.clone()),
            "{expected}"
        );
        assert!(!expected.label().is_empty());
    }
    let mut too_many_receipts = raw_open(&["madrid-1", "lisbon-1"], &[link(1)]);
    *too_many_receipts.last_mut().unwrap() = 65;
    assert_eq!(
        CircuitOpen::decode(&too_many_receipts),
        Err(DecodeError::Read(ReadError::TooMany {
            what: "receipts",
            count: 65,
            max: MAX_RECEIPTS
        }))
    );
    let mut unknown_reason = CircuitReply::Refused {
        hub: hub("lisbon-1"),
        reason: CircuitRefusal::Busy,
    }
    .encode();
    *unknown_reason.last_mut().unwrap() = 200;
    assert_eq!(
        CircuitReply::decode(&unknown_reason),
        Err(DecodeError::UnknownRefusal(200))
    );
    assert_eq!(
        CircuitReply::decode(&good),
        Err(DecodeError::UnexpectedKind(KIND_OPEN))
    );
}

/// The length of the receipt domain prefix, to find a receipt's fields in an encoding.
const RECEIPT_DOMAIN_LEN: usize = crate::circuit::receipt::RECEIPT_DOMAIN.len();

/// `cargo nextest run -p hubd --run-ignored only write_fuzz_seeds` rewrites
/// `fuzz/seeds/hub_circuit/` with valid encodings of each frame kind.
#[test]
#[ignore = "writes the fuzz seeds; run on purpose"]
fn write_fuzz_seeds() {
    let directory =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/hub_circuit");
    std::fs::create_dir_all(&directory).unwrap();
    let seeds = [
        ("open-one-receipt.bin", open().encode()),
        (
            "accepted-two-receipts.bin",
            CircuitReply::Accepted {
                receipts: vec![
                    receipt("lisbon-1", "madrid-1", Some("sao-paulo-1")),
                    receipt("sao-paulo-1", "lisbon-1", None),
                ],
            }
            .encode(),
        ),
        (
            "refused-no-transit.bin",
            CircuitReply::Refused {
                hub: hub("lisbon-1"),
                reason: CircuitRefusal::NoTransit,
            }
            .encode(),
        ),
    ];
    for (name, bytes) in seeds {
        std::fs::write(directory.join(name), bytes).unwrap();
    }
}
