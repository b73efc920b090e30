//! The frames that open a circuit and answer it: deterministic, bounded, decoded by hand.
//!
//! Each is the payload of one [`crate::links::frame`] frame at the start of a circuit stream.
//! Integers are big-endian; a hub id is one length byte (1 to 63) and that many ASCII bytes, an
//! absent hub id a length byte of 0.
//!
//! ```text
//! magic     "HUBC"                        4 bytes
//! version   1                             u8
//! kind      1 open, 2 accepted, 3 refused u8
//!
//! open:     session                       16 bytes
//!           hub count (2 to 65)           u8, then the hub ids, source first
//!           link ids (1 to 65535)         u16 each, one per pair of consecutive hubs
//!           receipts                      (below)
//! accepted: receipts                      (below)
//! refused:  hub id, refusal code          u8 (see CircuitRefusal::code)
//!
//! receipts: count (0 to 64)               u8
//!           per receipt: session (16 bytes), hub id, jurisdiction (2 bytes),
//!           previous hub id or 0, next hub id or 0, epoch (u64 Unix seconds), r ‖ s (64 bytes)
//! ```
//!
//! Input longer than [`MAX_FRAME_LEN`] is refused before a byte of it is read; every count is
//! checked before anything is allocated for it; bytes after the last field are refused, so a
//! decoded frame re-encodes to exactly its input.

use super::receipt::{Hop, TransitReceipt};
use super::refusal::CircuitRefusal;
use super::route::{MAX_ROUTE_HUBS, MIN_ROUTE_HUBS, Route, RouteError};
use crate::advertisement::AdvertisementSignature;
use crate::advertisement::wire::{ReadError, Reader, put_hub_id};
use crate::hub_id::HubId;
use crate::link::LinkId;
use crate::links::MAX_FRAME_LEN;
use crate::session_id::SessionId;

/// The first bytes of every circuit frame.
pub const MAGIC: [u8; 4] = *b"HUBC";
/// The encoding version this code reads and writes.
pub const VERSION: u8 = 1;
/// Most receipts a frame carries: one per hub after the source on the longest route.
pub const MAX_RECEIPTS: usize = MAX_ROUTE_HUBS - 1;

const KIND_OPEN: u8 = 1;
const KIND_ACCEPTED: u8 = 2;
const KIND_REFUSED: u8 = 3;

/// The frame a source sends to open a circuit, extended by each transit hub with its receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CircuitOpen {
    /// The session the circuit will carry.
    pub session: SessionId,
    /// Where it goes.
    pub route: Route,
    /// The receipts of the transit hubs it has crossed so far, in route order.
    pub receipts: Vec<TransitReceipt>,
}

/// The destination's answer (or a refusing hub's), back to the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CircuitReply {
    /// The destination took the circuit: every receipt, its own last. The end-to-end handshake
    /// follows on the same stream.
    Accepted {
        /// One per hub after the source, in route order.
        receipts: Vec<TransitReceipt>,
    },
    /// A hub on the route refused the circuit.
    Refused {
        /// The hub that refused.
        hub: HubId,
        /// Why.
        reason: CircuitRefusal,
    },
}

/// Why bytes are not a circuit frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than [`MAX_FRAME_LEN`].
    #[error("{len} bytes is longer than any circuit frame (at most {MAX_FRAME_LEN})")]
    TooLarge {
        /// The length received.
        len: usize,
    },
    /// Does not start with [`MAGIC`].
    #[error("not a circuit frame (wrong magic bytes)")]
    BadMagic,
    /// A version other than [`VERSION`].
    #[error("circuit frame version {0} is not supported (this hub reads version 1)")]
    UnsupportedVersion(u8),
    /// A kind that is not the one expected here (an answer where an open belongs, or unknown).
    #[error("circuit frame kind {0} is not expected here")]
    UnexpectedKind(u8),
    /// A field that cannot be read: cut short, a bad hub id or country code, a count too high.
    #[error("undecodable circuit frame: {0}")]
    Read(#[from] ReadError),
    /// Hubs and links that do not make a route (too few hubs, a loop).
    #[error(transparent)]
    Route(#[from] RouteError),
    /// Link id 0.
    #[error("link id 0 is not a link")]
    LinkIdZero,
    /// A refusal code this version does not know.
    #[error("refusal code {0} is unknown")]
    UnknownRefusal(u8),
    /// `r` or `s` of a receipt's signature is 0 or not below the group order.
    #[error("a receipt's signature is not a valid P-256 signature value")]
    SignatureValue,
    /// Bytes after the last field.
    #[error("{0} bytes follow the frame")]
    TrailingBytes(usize),
}

impl DecodeError {
    /// A short label for the metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::BadMagic => "bad_magic",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::UnexpectedKind(_) => "unexpected_kind",
            Self::Read(error) => error.label(),
            Self::Route(error) => error.label(),
            Self::LinkIdZero => "link_id_zero",
            Self::UnknownRefusal(_) => "unknown_refusal",
            Self::SignatureValue => "signature_value",
            Self::TrailingBytes(_) => "trailing_bytes",
        }
    }
}

impl CircuitOpen {
    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = header(KIND_OPEN);
        out.extend_from_slice(self.session.as_bytes());
        encode_route_parts(self.route.hubs(), self.route.links(), &mut out);
        put_receipts(&self.receipts, &mut out);
        out
    }

    /// Decodes the wire encoding; checks the form and the route, verifies nothing.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_whole(bytes, KIND_OPEN, |reader, _| {
            let session = SessionId::from_bytes(reader.array("session")?);
            let route = route(reader)?;
            let receipts = receipts(reader)?;
            Ok(Self {
                session,
                route,
                receipts,
            })
        })
    }
}

impl CircuitReply {
    /// The wire encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Accepted { receipts } => {
                let mut out = header(KIND_ACCEPTED);
                put_receipts(receipts, &mut out);
                out
            }
            Self::Refused { hub, reason } => {
                let mut out = header(KIND_REFUSED);
                put_hub_id(&mut out, hub);
                out.push(reason.code());
                out
            }
        }
    }

    /// Decodes the wire encoding; verifies nothing.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_whole(bytes, KIND_ACCEPTED, |reader, kind| match kind {
            KIND_ACCEPTED => Ok(Self::Accepted {
                receipts: receipts(reader)?,
            }),
            _ => {
                let hub = reader.hub_id("refusing hub")?;
                let code = reader.u8("refusal")?;
                let reason =
                    CircuitRefusal::from_code(code).ok_or(DecodeError::UnknownRefusal(code))?;
                Ok(Self::Refused { hub, reason })
            }
        })
    }
}

fn header(kind: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    out
}

/// Appends a hub count, the hub ids and the link ids, unchecked: [`Route`] keeps its own valid,
/// and tests write invalid ones with it.
pub(crate) fn encode_route_parts(hubs: &[HubId], links: &[LinkId], out: &mut Vec<u8>) {
    out.push(u8::try_from(hubs.len()).expect("a route has at most 65 hubs"));
    for hub in hubs {
        put_hub_id(out, hub);
    }
    for link in links {
        out.extend_from_slice(&link.get().to_be_bytes());
    }
}

fn put_receipts(receipts: &[TransitReceipt], out: &mut Vec<u8>) {
    out.push(u8::try_from(receipts.len()).expect("at most one receipt per hub of a route"));
    for receipt in receipts {
        receipt.encode_content(out);
        out.extend_from_slice(&receipt.signature.to_bytes());
    }
}

/// Checks the bound, magic and version, reads the kind (`first_kind` and, if it is not
/// [`KIND_OPEN`], the other answer kind too), the body with `body`, and refuses trailing bytes.
fn decode_whole<T>(
    bytes: &[u8],
    first_kind: u8,
    body: impl FnOnce(&mut Reader<'_>, u8) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(DecodeError::TooLarge { len: bytes.len() });
    }
    let mut reader = Reader::new(bytes);
    if reader.array::<4>("magic")? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    match reader.u8("version")? {
        VERSION => {}
        other => return Err(DecodeError::UnsupportedVersion(other)),
    }
    let kind = reader.u8("kind")?;
    let expected = kind == first_kind || (first_kind == KIND_ACCEPTED && kind == KIND_REFUSED);
    if !expected {
        return Err(DecodeError::UnexpectedKind(kind));
    }
    let decoded = body(&mut reader, kind)?;
    match reader.remaining() {
        0 => Ok(decoded),
        rest => Err(DecodeError::TrailingBytes(rest)),
    }
}

fn route(reader: &mut Reader<'_>) -> Result<Route, DecodeError> {
    let count = reader.byte_count("hubs", MAX_ROUTE_HUBS)?;
    if count < MIN_ROUTE_HUBS {
        return Err(RouteError::HubCount(count).into());
    }
    let hubs = (0..count)
        .map(|_| reader.hub_id("route hub"))
        .collect::<Result<Vec<_>, _>>()?;
    let links = (1..count)
        .map(|_| LinkId::new(reader.u16("route link")?).ok_or(DecodeError::LinkIdZero))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Route::new(hubs, links)?)
}

fn receipts(reader: &mut Reader<'_>) -> Result<Vec<TransitReceipt>, DecodeError> {
    let count = reader.byte_count("receipts", MAX_RECEIPTS)?;
    (0..count).map(|_| receipt(reader)).collect()
}

fn receipt(reader: &mut Reader<'_>) -> Result<TransitReceipt, DecodeError> {
    let session = SessionId::from_bytes(reader.array("receipt session")?);
    let hop = Hop {
        hub: reader.hub_id("receipt hub")?,
        jurisdiction: reader.jurisdiction("receipt jurisdiction")?,
        previous: reader.optional_hub_id("receipt previous hub")?,
        next: reader.optional_hub_id("receipt next hub")?,
        epoch: reader.u64("receipt epoch")?,
    };
    let signature = AdvertisementSignature(reader.array("receipt signature")?);
    if signature.to_p256().is_none() {
        return Err(DecodeError::SignatureValue);
    }
    Ok(TransitReceipt {
        session,
        hop,
        signature,
    })
}

#[cfg(test)]
mod tests;
