//! Proof of transit: every hub after the source signs a [`TransitReceipt`] when it carries a
//! circuit, and the source verifies them all ([`verify_receipts`]) before it trusts the circuit.
//!
//! A receipt says: "I, `hub`, in `jurisdiction`, carry session `session` from `previous` to
//! `next`, at `epoch`", signed by the hub's key over [`RECEIPT_DOMAIN`] and those fields
//! ([`hub_certificate::sign_message`], the same low-s P-256 signatures as advertisements, with
//! their own domain prefix so that neither passes for the other). The source checks each
//! receipt against the hub's leaf certificate and jurisdiction as the control plane holds them
//! ([`VouchedHubs`]), so a circuit that did not go where the source sent it, or a hub that claims
//! another country than it advertises, is caught before any session byte is sent.

use appliance::tls::Identity;

use super::route::Route;
use super::vouched::VouchedHubs;
use crate::advertisement::wire::put_hub_id;
use crate::advertisement::{AdvertisementSignature, SignError, Timestamp};
use crate::hub_certificate::{self, SignatureError};
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::session_id::SessionId;

/// The prefix of every signed receipt.
pub const RECEIPT_DOMAIN: &[u8] = b"bunkeros-hub transit receipt v1\0";
/// How far a receipt's epoch may be from the source's clock, either way, in seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;

/// One hub on a circuit, as its receipt states it (or, for the source, as it knows itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The hub.
    pub hub: HubId,
    /// Its jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// The hub the circuit came from; `None` at the source.
    pub previous: Option<HubId>,
    /// The hub the circuit goes on to; `None` at the destination.
    pub next: Option<HubId>,
    /// When the hub took the circuit on, in Unix seconds.
    pub epoch: u64,
}

/// A hub's signed statement that it carries a circuit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitReceipt {
    /// The session the circuit carries.
    pub session: SessionId,
    /// What the hub states about itself.
    pub hop: Hop,
    /// Its signature over [`signed_message`](Self::signed_message).
    pub signature: AdvertisementSignature,
}

impl TransitReceipt {
    /// `hop`, for `session`, signed with `identity` (the hub's own).
    pub fn sign(identity: &Identity, session: SessionId, hop: Hop) -> Result<Self, SignError> {
        let signature = hub_certificate::sign_message(identity, &signed_message(session, &hop))?;
        Ok(Self {
            session,
            hop,
            signature,
        })
    }

    /// [`RECEIPT_DOMAIN`], then the fields as [`encode_content`](Self::encode_content) writes
    /// them.
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(self.session, &self.hop)
    }

    /// Appends the signed fields: session (16 bytes), hub id, jurisdiction (2 bytes), previous
    /// and next hub ids (length 0 for none), epoch (u64).
    pub fn encode_content(&self, out: &mut Vec<u8>) {
        encode_content(self.session, &self.hop, out);
    }
}

fn signed_message(session: SessionId, hop: &Hop) -> Vec<u8> {
    let mut message = RECEIPT_DOMAIN.to_vec();
    encode_content(session, hop, &mut message);
    message
}

fn encode_content(session: SessionId, hop: &Hop, out: &mut Vec<u8>) {
    out.extend_from_slice(session.as_bytes());
    put_hub_id(out, &hop.hub);
    out.extend_from_slice(&hop.jurisdiction.to_bytes());
    for neighbour in [&hop.previous, &hop.next] {
        match neighbour {
            Some(hub) => put_hub_id(out, hub),
            None => out.push(0),
        }
    }
    out.extend_from_slice(&hop.epoch.to_be_bytes());
}

/// Why the receipts of a circuit do not prove it went where the source sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not one receipt per hub after the source.
    #[error("{received} receipts for a route of {expected} hubs after the source")]
    Count {
        /// Hubs after the source.
        expected: usize,
        /// Receipts received.
        received: usize,
    },
    /// A receipt from another hub than the one at its place on the route.
    #[error("receipt {position} is from {found}, but {expected} is at that place on the route")]
    OutOfOrder {
        /// Place on the route (1 = the hub after the source).
        position: usize,
        /// The hub there.
        expected: HubId,
        /// The hub the receipt names.
        found: HubId,
    },
    /// The control plane holds no chain or jurisdiction for the hub.
    #[error("hub {0} is not vouched for by the control plane")]
    UnknownHub(HubId),
    /// The signature does not verify with the hub's certificate.
    #[error("the receipt of {hub} is not signed by its key: {source}")]
    BadSignature {
        /// The hub.
        hub: HubId,
        /// Why.
        source: SignatureError,
    },
    /// A receipt for another session (e.g. replayed from an earlier circuit).
    #[error("the receipt of {0} is for another session")]
    WrongSession(HubId),
    /// The hub names other neighbours than the route has.
    #[error("the receipt of {0} names other neighbours than the route")]
    WrongNeighbours(HubId),
    /// The hub states another jurisdiction than it advertises.
    #[error("hub {hub} states jurisdiction {stated} but advertises {held}")]
    WrongJurisdiction {
        /// The hub.
        hub: HubId,
        /// In the receipt.
        stated: Jurisdiction,
        /// In the control plane.
        held: Jurisdiction,
    },
    /// The epoch is more than [`MAX_CLOCK_SKEW_SECS`] from now.
    #[error("the receipt of {hub} is dated {epoch}, more than {MAX_CLOCK_SKEW_SECS} s from now")]
    Skewed {
        /// The hub.
        hub: HubId,
        /// Its epoch.
        epoch: u64,
    },
}

impl ReceiptError {
    /// A short label for the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Count { .. } => "count",
            Self::OutOfOrder { .. } => "out_of_order",
            Self::UnknownHub(_) => "unknown_hub",
            Self::BadSignature { .. } => "bad_signature",
            Self::WrongSession(_) => "wrong_session",
            Self::WrongNeighbours(_) => "wrong_neighbours",
            Self::WrongJurisdiction { .. } => "wrong_jurisdiction",
            Self::Skewed { .. } => "skewed",
        }
    }
}

/// Checks that `receipts` prove `route` for `session`: one per hub after the source, in route
/// order, each signed by that hub's key as `vouched` holds it, naming the session, its
/// neighbours on the route and the jurisdiction the hub advertises, dated within
/// [`MAX_CLOCK_SKEW_SECS`] of `now`. Returns every hop, the source's own first (in
/// `own_jurisdiction`, dated `now`).
pub fn verify_receipts(
    route: &Route,
    session: SessionId,
    receipts: &[TransitReceipt],
    vouched: &VouchedHubs,
    own_jurisdiction: Jurisdiction,
    now: Timestamp,
) -> Result<Vec<Hop>, ReceiptError> {
    let hubs = route.hubs();
    if receipts.len() != hubs.len() - 1 {
        return Err(ReceiptError::Count {
            expected: hubs.len() - 1,
            received: receipts.len(),
        });
    }
    let mut hops = Vec::with_capacity(hubs.len());
    hops.push(Hop {
        hub: route.source().clone(),
        jurisdiction: own_jurisdiction,
        previous: None,
        next: Some(hubs[1].clone()),
        epoch: now.as_unix_secs(),
    });
    for (position, receipt) in (1..).zip(receipts) {
        verify_one(route, position, session, receipt, vouched, now)?;
        hops.push(receipt.hop.clone());
    }
    Ok(hops)
}

fn verify_one(
    route: &Route,
    position: usize,
    session: SessionId,
    receipt: &TransitReceipt,
    vouched: &VouchedHubs,
    now: Timestamp,
) -> Result<(), ReceiptError> {
    let hubs = route.hubs();
    let hop = &receipt.hop;
    if hop.hub != hubs[position] {
        return Err(ReceiptError::OutOfOrder {
            position,
            expected: hubs[position].clone(),
            found: hop.hub.clone(),
        });
    }
    let unknown = || ReceiptError::UnknownHub(hop.hub.clone());
    let leaf = vouched.leaf(&hop.hub).ok_or_else(unknown)?;
    let held = vouched.jurisdiction(&hop.hub).ok_or_else(unknown)?;
    hub_certificate::verify_signature(leaf, &receipt.signed_message(), receipt.signature).map_err(
        |source| ReceiptError::BadSignature {
            hub: hop.hub.clone(),
            source,
        },
    )?;
    if receipt.session != session {
        return Err(ReceiptError::WrongSession(hop.hub.clone()));
    }
    if hop.previous.as_ref() != Some(&hubs[position - 1])
        || hop.next.as_ref() != hubs.get(position + 1)
    {
        return Err(ReceiptError::WrongNeighbours(hop.hub.clone()));
    }
    if hop.jurisdiction != held {
        return Err(ReceiptError::WrongJurisdiction {
            hub: hop.hub.clone(),
            stated: hop.jurisdiction,
            held,
        });
    }
    if hop.epoch.abs_diff(now.as_unix_secs()) > MAX_CLOCK_SKEW_SECS {
        return Err(ReceiptError::Skewed {
            hub: hop.hub.clone(),
            epoch: hop.epoch,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
