use std::collections::BTreeMap;

use super::*;
use crate::link::LinkId;
use crate::testing::{HubCert, Site, country, hub};

const NOW: u64 = 1_800_000_000;

/// madrid-1 (ES, the source) → lisbon-1 (PT) → sao-paulo-1 (BR), each of its own site.
struct Circuit {
    route: Route,
    session: SessionId,
    lisbon: HubCert,
    sao_paulo: HubCert,
}

impl Circuit {
    fn new() -> Self {
        Self {
            route: Route::new(
                vec![hub("madrid-1"), hub("lisbon-1"), hub("sao-paulo-1")],
                vec![LinkId::new(1).unwrap(), LinkId::new(2).unwrap()],
            )
            .unwrap(),
            session: SessionId::random(),
            lisbon: Site::new("lisbon").hub("lisbon-1"),
            sao_paulo: Site::new("sao-paulo").hub("sao-paulo-1"),
        }
    }

    fn vouched(&self) -> VouchedHubs {
        VouchedHubs::new(
            BTreeMap::from([
                (hub("lisbon-1"), self.lisbon.chain().to_vec()),
                (hub("sao-paulo-1"), self.sao_paulo.chain().to_vec()),
            ]),
            BTreeMap::from([
                (hub("lisbon-1"), country("PT")),
                (hub("sao-paulo-1"), country("BR")),
            ]),
        )
    }

    /// The receipts the two hubs sign, honestly.
    fn receipts(&self) -> Vec<TransitReceipt> {
        vec![
            self.sign(
                &self.lisbon,
                "lisbon-1",
                "PT",
                "madrid-1",
                Some("sao-paulo-1"),
            ),
            self.sign(&self.sao_paulo, "sao-paulo-1", "BR", "lisbon-1", None),
        ]
    }

    fn sign(
        &self,
        cert: &HubCert,
        id: &str,
        code: &str,
        previous: &str,
        next: Option<&str>,
    ) -> TransitReceipt {
        let hop = Hop {
            hub: hub(id),
            jurisdiction: country(code),
            previous: Some(hub(previous)),
            next: next.map(hub),
            epoch: NOW,
        };
        TransitReceipt::sign(cert.identity(), self.session, hop).unwrap()
    }

    fn verify(&self, receipts: &[TransitReceipt]) -> Result<Vec<Hop>, ReceiptError> {
        self.verify_at(receipts, NOW)
    }

    fn verify_at(&self, receipts: &[TransitReceipt], now: u64) -> Result<Vec<Hop>, ReceiptError> {
        verify_receipts(
            &self.route,
            self.session,
            receipts,
            &self.vouched(),
            country("ES"),
            Timestamp::from_unix_secs(now),
        )
    }
}

#[test]
fn honest_receipts_prove_every_hop_with_the_source_first() {
    let circuit = Circuit::new();
    let hops = circuit.verify(&circuit.receipts()).unwrap();
    let summary: Vec<_> = hops
        .iter()
        .map(|hop| (hop.hub.to_string(), hop.jurisdiction.to_string()))
        .collect();
    assert_eq!(
        summary,
        [
            ("madrid-1", "ES"),
            ("lisbon-1", "PT"),
            ("sao-paulo-1", "BR")
        ]
        .map(|(id, code)| (id.to_owned(), code.to_owned()))
    );
    assert_eq!(hops[0].previous, None);
    assert_eq!(hops[0].next, Some(hub("lisbon-1")));
    assert_eq!(hops[0].epoch, NOW);
    // Within the allowed skew either way, and not beyond it.
    assert!(
        circuit
            .verify_at(&circuit.receipts(), NOW + MAX_CLOCK_SKEW_SECS)
            .is_ok()
    );
    assert_eq!(
        circuit.verify_at(&circuit.receipts(), NOW - MAX_CLOCK_SKEW_SECS - 1),
        Err(ReceiptError::Skewed {
            hub: hub("lisbon-1"),
            epoch: NOW
        })
    );
}

#[test]
fn a_tampered_receipt_does_not_verify() {
    let circuit = Circuit::new();
    let mut flipped = circuit.receipts();
    flipped[1].signature.0[10] ^= 1;
    assert!(matches!(
        circuit.verify(&flipped),
        Err(ReceiptError::BadSignature { hub: h, .. }) if h == hub("sao-paulo-1")
    ));
    // A field changed after signing: the signature no longer covers it.
    let mut moved = circuit.receipts();
    moved[0].hop.epoch += 1;
    assert!(matches!(
        circuit.verify(&moved),
        Err(ReceiptError::BadSignature { .. })
    ));
    // São Paulo's receipt signed by Lisbon's key.
    let mut forged = circuit.receipts();
    forged[1] = circuit.sign(&circuit.lisbon, "sao-paulo-1", "BR", "lisbon-1", None);
    assert_eq!(
        circuit.verify(&forged).unwrap_err().label(),
        "bad_signature"
    );
}

#[test]
fn receipts_must_be_one_per_hop_in_route_order() {
    let circuit = Circuit::new();
    let mut swapped = circuit.receipts();
    swapped.swap(0, 1);
    assert_eq!(
        circuit.verify(&swapped),
        Err(ReceiptError::OutOfOrder {
            position: 1,
            expected: hub("lisbon-1"),
            found: hub("sao-paulo-1"),
        })
    );
    let missing = &circuit.receipts()[..1];
    assert_eq!(
        circuit.verify(missing),
        Err(ReceiptError::Count {
            expected: 2,
            received: 1
        })
    );
    let mut extra = circuit.receipts();
    extra.push(extra[1].clone());
    assert_eq!(circuit.verify(&extra).unwrap_err().label(), "count");
}

#[test]
fn a_receipt_must_name_this_session_its_neighbours_and_its_advertised_jurisdiction() {
    let circuit = Circuit::new();
    let mut replayed = circuit.receipts();
    let hop = replayed[0].hop.clone();
    replayed[0] =
        TransitReceipt::sign(circuit.lisbon.identity(), SessionId::random(), hop).unwrap();
    assert_eq!(
        circuit.verify(&replayed),
        Err(ReceiptError::WrongSession(hub("lisbon-1")))
    );
    let mut detour = circuit.receipts();
    detour[0] = circuit.sign(
        &circuit.lisbon,
        "lisbon-1",
        "PT",
        "madrid-1",
        Some("paris-1"),
    );
    assert_eq!(
        circuit.verify(&detour),
        Err(ReceiptError::WrongNeighbours(hub("lisbon-1")))
    );
    let mut elsewhere = circuit.receipts();
    elsewhere[0] = circuit.sign(
        &circuit.lisbon,
        "lisbon-1",
        "ES",
        "madrid-1",
        Some("sao-paulo-1"),
    );
    assert_eq!(
        circuit.verify(&elsewhere),
        Err(ReceiptError::WrongJurisdiction {
            hub: hub("lisbon-1"),
            stated: country("ES"),
            held: country("PT"),
        })
    );
}

#[test]
fn a_hub_the_control_plane_does_not_hold_is_unknown() {
    let circuit = Circuit::new();
    let only_lisbon = VouchedHubs::new(
        BTreeMap::from([(hub("lisbon-1"), circuit.lisbon.chain().to_vec())]),
        BTreeMap::from([
            (hub("lisbon-1"), country("PT")),
            (hub("sao-paulo-1"), country("BR")),
        ]),
    );
    let verified = verify_receipts(
        &circuit.route,
        circuit.session,
        &circuit.receipts(),
        &only_lisbon,
        country("ES"),
        Timestamp::from_unix_secs(NOW),
    );
    assert_eq!(verified, Err(ReceiptError::UnknownHub(hub("sao-paulo-1"))));
}

#[test]
fn receipts_and_advertisements_sign_different_messages() {
    let circuit = Circuit::new();
    let message = circuit.receipts()[0].signed_message();
    assert!(message.starts_with(RECEIPT_DOMAIN));
    assert!(!message.starts_with(crate::advertisement::SIGNATURE_DOMAIN));
}
