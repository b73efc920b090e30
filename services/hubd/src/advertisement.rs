//! Link-state advertisements: what one hub says about itself, signed with its hub key.
//!
//! An [`Advertisement`] names its originating hub and jurisdiction, the links the hub has up
//! (neighbour, link id, measured latency), its [`Flags`] (e.g. no transit), a sequence number,
//! an expiry, its [`Voucher`]s: for each direct peer, the fingerprint of the peer site's
//! root key, which is how trust reaches hubs that are not our own peers (see [`crate::trust`]),
//! and the IP prefixes behind it that other hubs may route to it ([`crate::ip_routes`]).
//!
//! A [`SignedAdvertisement`] adds the hub's certificate chain (leaf first, the site root last)
//! and an ECDSA P-256 signature by the leaf key over [`Advertisement::signed_message`]: a
//! domain-separation prefix followed by the canonical encoding of the content ([`wire`]).
//! The content is kept canonical by construction (links, vouchers and prefixes sorted, no duplicates,
//! every count bounded), so encoding is deterministic and a decoded advertisement re-encodes to
//! exactly the bytes that were signed.

pub mod wire;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use appliance::tls::Identity;
use p256::ecdsa::Signature;
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::grant::IpPrefix;
use crate::hub_certificate::{self, SpkiFingerprint};
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::{Latency, LinkId};

/// Most links one advertisement may list.
pub const MAX_LINKS: usize = 256;
/// Most vouchers one advertisement may carry.
pub const MAX_VOUCHERS: usize = 256;
/// Most IP prefixes one advertisement may announce.
pub const MAX_PREFIXES: usize = 64;
/// Most certificates in the chain: the leaf, up to two intermediates, the site root.
pub const MAX_CHAIN_LEN: usize = 4;
/// Largest certificate accepted in a chain, in bytes (DER).
pub const MAX_CERTIFICATE_LEN: usize = 4096;

/// The prefix of every signed message, so a hub key's signature over an advertisement can never
/// be taken for its signature over anything else (a TLS handshake, a transit receipt).
pub const SIGNATURE_DOMAIN: &[u8] = b"BunkerOS hubd link-state advertisement v1\0";

/// A point in time, in whole seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(u64);

impl Timestamp {
    /// `secs` seconds after the epoch.
    pub const fn from_unix_secs(secs: u64) -> Self {
        Self(secs)
    }

    /// Seconds since the epoch.
    pub const fn as_unix_secs(self) -> u64 {
        self.0
    }

    /// `secs` seconds later, saturating.
    pub const fn plus_secs(self, secs: u64) -> Self {
        Self(self.0.saturating_add(secs))
    }

    /// For certificate validity checks.
    pub fn to_unix_time(self) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(self.0))
    }
}

impl From<SystemTime> for Timestamp {
    /// The time in whole seconds; a clock before 1970 reads as the epoch.
    fn from(time: SystemTime) -> Self {
        Self(time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }
}

/// The sequence number for a hub's next advertisement.
///
/// Milliseconds since the epoch, or one more than `previous` when the clock has not moved past
/// it: a hub restarted without its state (or after `kill -9`) still advertises a number higher
/// than anything it sent before, so its peers take the new advertisement instead of keeping the
/// old one as newer.
pub fn next_sequence(previous: Option<u64>, now: SystemTime) -> u64 {
    let clock = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    match previous {
        Some(previous) => clock.max(previous.saturating_add(1)),
        None => clock,
    }
}

/// Flags an advertisement carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// The hub carries no transit traffic: it may be the source or destination of a path, never
    /// an intermediate hop (set by the operator, or in site lockdown).
    pub no_transit: bool,
}

impl Flags {
    const NO_TRANSIT: u8 = 0x01;
    const KNOWN: u8 = Self::NO_TRANSIT;

    /// The flags as one byte on the wire.
    pub const fn bits(self) -> u8 {
        if self.no_transit { Self::NO_TRANSIT } else { 0 }
    }

    /// The flags of a byte; `None` if it sets a bit this version does not know (a flag that
    /// changes meaning must not be ignored).
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::KNOWN != 0 {
            None
        } else {
            Some(Self {
                no_transit: bits & Self::NO_TRANSIT != 0,
            })
        }
    }
}

/// One link the originating hub has up, as it sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AdvertisedLink {
    /// The hub at the other end.
    pub neighbour: HubId,
    /// Which of the links between the two hubs.
    pub link: LinkId,
    /// One-way latency measured on this link, at least 1 µs, at most [`Latency::MAX_LINK`].
    pub latency: Latency,
}

/// A hub vouching for one of its direct peers: "the hub `hub` is certified by the site root
/// whose key has this fingerprint" (from the voucher's own pinned peering file).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Voucher {
    /// The peer vouched for.
    pub hub: HubId,
    /// SHA-256 of the peer site root's SubjectPublicKeyInfo.
    pub root: SpkiFingerprint,
}

/// Why a set of values cannot make an advertisement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAdvertisement {
    /// More links than [`MAX_LINKS`].
    #[error("{0} links listed; an advertisement lists at most {MAX_LINKS}")]
    TooManyLinks(usize),
    /// More vouchers than [`MAX_VOUCHERS`].
    #[error("{0} vouchers; an advertisement carries at most {MAX_VOUCHERS}")]
    TooManyVouchers(usize),
    /// The same link listed twice.
    #[error("link {link} to {neighbour} is listed twice")]
    DuplicateLink {
        /// Neighbour.
        neighbour: HubId,
        /// Link id.
        link: LinkId,
    },
    /// A link from the hub to itself.
    #[error("hub {0} lists a link to itself")]
    LinkToSelf(HubId),
    /// A latency of 0 or beyond [`Latency::MAX_LINK`].
    #[error("link {link} to {neighbour} has latency {latency}, expected 1 µs to 60 s")]
    LatencyOutOfRange {
        /// Neighbour.
        neighbour: HubId,
        /// Link id.
        link: LinkId,
        /// The latency given.
        latency: Latency,
    },
    /// The same hub vouched for twice.
    #[error("hub {0} is vouched for twice")]
    DuplicateVoucher(HubId),
    /// A hub vouching for itself (its own root is proven by its chain, not by itself).
    #[error("hub {0} vouches for itself")]
    VoucherForSelf(HubId),
    /// More prefixes than [`MAX_PREFIXES`].
    #[error("{0} prefixes announced; an advertisement announces at most {MAX_PREFIXES}")]
    TooManyPrefixes(usize),
    /// The same prefix announced twice.
    #[error("prefix {0} is announced twice")]
    DuplicatePrefix(IpPrefix),
}

/// The values an [`Advertisement`] is made of, in any order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisementParts {
    /// The hub that originates (and signs) the advertisement.
    pub origin: HubId,
    /// Its jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// Its flags.
    pub flags: Flags,
    /// Higher than every earlier advertisement of the same origin (see [`next_sequence`]).
    pub sequence: u64,
    /// After this instant the advertisement is void.
    pub expires_at: Timestamp,
    /// The links it has up.
    pub links: Vec<AdvertisedLink>,
    /// Its vouchers for its direct peers.
    pub vouchers: Vec<Voucher>,
    /// The IP prefixes behind it (`[tun] announce`), routed to it by the hubs that trust it.
    pub prefixes: Vec<IpPrefix>,
}

/// A well-formed advertisement: links sorted by (neighbour, link id), vouchers by hub and
/// prefixes by address then length, with no duplicates, no link or voucher to itself, every latency in range and every count bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    parts: AdvertisementParts,
}

impl Advertisement {
    /// Checks and sorts `parts` into an advertisement.
    pub fn new(mut parts: AdvertisementParts) -> Result<Self, InvalidAdvertisement> {
        parts
            .links
            .sort_by(|a, b| (&a.neighbour, a.link).cmp(&(&b.neighbour, b.link)));
        parts.vouchers.sort_by(|a, b| a.hub.cmp(&b.hub));
        parts.prefixes.sort();
        Self::from_sorted(parts)
    }

    /// Checks `parts`, whose links, vouchers and prefixes are already in order (the decoder's path: it
    /// refuses unsorted input as not canonical before calling this).
    pub(crate) fn from_sorted(parts: AdvertisementParts) -> Result<Self, InvalidAdvertisement> {
        if parts.links.len() > MAX_LINKS {
            return Err(InvalidAdvertisement::TooManyLinks(parts.links.len()));
        }
        if parts.vouchers.len() > MAX_VOUCHERS {
            return Err(InvalidAdvertisement::TooManyVouchers(parts.vouchers.len()));
        }
        if parts.prefixes.len() > MAX_PREFIXES {
            return Err(InvalidAdvertisement::TooManyPrefixes(parts.prefixes.len()));
        }
        if let Some(twice) = parts.prefixes.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(InvalidAdvertisement::DuplicatePrefix(twice[0]));
        }
        for (i, link) in parts.links.iter().enumerate() {
            if link.neighbour == parts.origin {
                return Err(InvalidAdvertisement::LinkToSelf(parts.origin.clone()));
            }
            if link.latency.as_micros() == 0 || link.latency > Latency::MAX_LINK {
                return Err(InvalidAdvertisement::LatencyOutOfRange {
                    neighbour: link.neighbour.clone(),
                    link: link.link,
                    latency: link.latency,
                });
            }
            if i > 0
                && parts.links[i - 1].neighbour == link.neighbour
                && parts.links[i - 1].link == link.link
            {
                return Err(InvalidAdvertisement::DuplicateLink {
                    neighbour: link.neighbour.clone(),
                    link: link.link,
                });
            }
        }
        for (i, voucher) in parts.vouchers.iter().enumerate() {
            if voucher.hub == parts.origin {
                return Err(InvalidAdvertisement::VoucherForSelf(parts.origin.clone()));
            }
            if i > 0 && parts.vouchers[i - 1].hub == voucher.hub {
                return Err(InvalidAdvertisement::DuplicateVoucher(voucher.hub.clone()));
            }
        }
        Ok(Self { parts })
    }

    /// The originating hub.
    pub fn origin(&self) -> &HubId {
        &self.parts.origin
    }

    /// Its jurisdiction.
    pub fn jurisdiction(&self) -> Jurisdiction {
        self.parts.jurisdiction
    }

    /// Its flags.
    pub fn flags(&self) -> Flags {
        self.parts.flags
    }

    /// The sequence number.
    pub fn sequence(&self) -> u64 {
        self.parts.sequence
    }

    /// When it stops counting.
    pub fn expires_at(&self) -> Timestamp {
        self.parts.expires_at
    }

    /// Whether it is void at `now` (it expires at the start of `expires_at`).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.parts.expires_at <= now
    }

    /// Its links, sorted by neighbour then link id.
    pub fn links(&self) -> &[AdvertisedLink] {
        &self.parts.links
    }

    /// Its vouchers, sorted by hub.
    pub fn vouchers(&self) -> &[Voucher] {
        &self.parts.vouchers
    }

    /// The IP prefixes behind it, sorted by address then length.
    pub fn prefixes(&self) -> &[IpPrefix] {
        &self.parts.prefixes
    }

    /// The root fingerprint this hub vouches for `hub` with, if it vouches for it.
    pub fn voucher_for(&self, hub: &HubId) -> Option<&SpkiFingerprint> {
        self.parts
            .vouchers
            .binary_search_by(|voucher| voucher.hub.cmp(hub))
            .ok()
            .map(|i| &self.parts.vouchers[i].root)
    }

    /// The values, to change and re-check (e.g. the next advertisement of the same hub).
    pub fn parts(&self) -> &AdvertisementParts {
        &self.parts
    }

    /// The message the originating hub signs: [`SIGNATURE_DOMAIN`], then the canonical
    /// encoding of the content.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut message = SIGNATURE_DOMAIN.to_vec();
        wire::encode_content(self, &mut message);
        message
    }
}

/// An ECDSA P-256 signature as the two 32-byte integers `r ‖ s`, with `s` in the lower half of
/// the group order (so there is exactly one valid signature value per signing).
/// Every hub-key signature has this form, advertisements' and transit receipts' alike
/// ([`hub_certificate::sign_message`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AdvertisementSignature(pub(crate) [u8; 64]);

impl AdvertisementSignature {
    /// The 64 bytes.
    pub fn to_bytes(self) -> [u8; 64] {
        self.0
    }

    /// The signature for p256, or `None` when `r` or `s` is 0 or not below the group order.
    pub(crate) fn to_p256(self) -> Option<Signature> {
        Signature::from_slice(&self.0).ok()
    }
}

impl std::fmt::Debug for AdvertisementSignature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdvertisementSignature(")?;
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("…)")
    }
}

/// An advertisement as it travels: the content, the hub's certificate chain and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedAdvertisement {
    advertisement: Advertisement,
    chain: Vec<CertificateDer<'static>>,
    signature: AdvertisementSignature,
}

/// Why this hub cannot sign an advertisement (or any message, see
/// [`hub_certificate::sign_message`]) with its identity.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The chain lacks the site root (a leaf alone), or holds more than [`MAX_CHAIN_LEN`].
    #[error(
        "the hub certificate chain has {0} certificates; it must run from the hub certificate up to and including the site root (2 to {MAX_CHAIN_LEN})"
    )]
    ChainLength(usize),
    /// A certificate larger than [`MAX_CERTIFICATE_LEN`].
    #[error(
        "certificate {index} of the chain is {len} bytes; at most {MAX_CERTIFICATE_LEN} are carried"
    )]
    CertificateTooLarge {
        /// Position in the chain, 0 = leaf.
        index: usize,
        /// Its size.
        len: usize,
    },
    /// The hub key cannot make ECDSA P-256 SHA-256 signatures.
    #[error("the hub key is not an ECDSA P-256 key")]
    NotP256,
    /// The key failed to sign (e.g. the TPM refused).
    #[error("the hub key did not sign: {0}")]
    Signer(rustls::Error),
    /// The key returned something that is not a DER ECDSA signature.
    #[error("the hub key returned a malformed signature")]
    MalformedSignature,
}

impl SignedAdvertisement {
    /// Signs `advertisement` with this hub's identity: its certificate chain (hub certificate
    /// first, site root last) and its key (a PEM key or one held by the TPM).
    pub fn sign(advertisement: Advertisement, identity: &Identity) -> Result<Self, SignError> {
        let chain = identity.chain().to_vec();
        check_chain_shape(&chain)?;
        let signature = hub_certificate::sign_message(identity, &advertisement.signed_message())?;
        Ok(Self {
            advertisement,
            chain,
            signature,
        })
    }

    /// The parts as received, unchecked (the decoder's path).
    pub(crate) fn from_parts(
        advertisement: Advertisement,
        chain: Vec<CertificateDer<'static>>,
        signature: AdvertisementSignature,
    ) -> Self {
        Self {
            advertisement,
            chain,
            signature,
        }
    }

    /// The content.
    pub fn advertisement(&self) -> &Advertisement {
        &self.advertisement
    }

    /// The certificate chain, hub certificate first, site root last.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The signature.
    pub fn signature(&self) -> AdvertisementSignature {
        self.signature
    }

    /// The wire encoding (see [`wire`]).
    pub fn encode(&self) -> Vec<u8> {
        wire::encode(self)
    }

    /// Decodes the wire encoding; nothing is verified but the form (see [`crate::trust`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, wire::DecodeError> {
        wire::decode(bytes)
    }
}

fn check_chain_shape(chain: &[CertificateDer<'_>]) -> Result<(), SignError> {
    if !(2..=MAX_CHAIN_LEN).contains(&chain.len()) {
        return Err(SignError::ChainLength(chain.len()));
    }
    match chain
        .iter()
        .enumerate()
        .find(|(_, cert)| cert.len() > MAX_CERTIFICATE_LEN)
    {
        Some((index, cert)) => Err(SignError::CertificateTooLarge {
            index,
            len: cert.len(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests;
