//! The binary encoding of a [`SignedAdvertisement`]: deterministic, bounded, decoded by hand.
//!
//! All integers are big-endian. A hub id is one length byte (1 to 63) and that many ASCII bytes.
//!
//! ```text
//! magic      "HUBA"                      4 bytes
//! version    1                           u8
//! content    (the signed part, below)
//! chain      count (1 to 4)              u8
//!            per certificate: length (1 to 4096) u16, DER
//! signature  r ‖ s                       64 bytes
//!
//! content:
//! origin        hub id
//! jurisdiction  ISO 3166-1 alpha-2       2 bytes
//! flags         bit 0 = no transit       u8 (other bits must be 0)
//! sequence                               u64
//! expires_at    Unix seconds             u64
//! links         count (0 to 256)         u16
//!               per link: neighbour hub id, link id (1 to 65535) u16, latency µs (1 to 60 000 000) u32
//! vouchers      count (0 to 256)         u16
//!               per voucher: hub id, SHA-256 of the root's SubjectPublicKeyInfo (32 bytes)
//! prefixes      count (0 to 64)          u16
//!               per prefix: family (4 or 6) u8, length (0 to 32 or 128) u8,
//!               network address (4 or 16 bytes, no bit set after the length)
//! ```
//!
//! Links are in strictly increasing (neighbour, link id) order, vouchers in strictly
//! increasing hub order and prefixes in strictly increasing (address, length) order (IPv4
//! before IPv6), so every advertisement has exactly one encoding; the decoder refuses
//! anything else, and input longer than [`MAX_ENCODED_LEN`] before reading a byte of it. The
//! signature covers [`super::SIGNATURE_DOMAIN`] followed by the content bytes.

use std::net::IpAddr;

use rustls_pki_types::CertificateDer;

use super::{
    AdvertisedLink, Advertisement, AdvertisementParts, AdvertisementSignature,
    InvalidAdvertisement, MAX_CERTIFICATE_LEN, MAX_CHAIN_LEN, MAX_LINKS, MAX_PREFIXES,
    MAX_VOUCHERS, SignedAdvertisement, Timestamp, Voucher,
};
use crate::advertisement::Flags;
use crate::grant::{IpPrefix, IpPrefixError};
use crate::hub_certificate::SpkiFingerprint;
use crate::hub_id::{HubId, HubIdError, MAX_HUB_ID_LEN};
use crate::jurisdiction::Jurisdiction;
use crate::link::{Latency, LinkId};

/// The first bytes of every encoded advertisement.
pub const MAGIC: [u8; 4] = *b"HUBA";
/// The encoding version this code reads and writes.
pub const VERSION: u8 = 1;
/// Longest encoding accepted; the bounds above keep any valid advertisement below it.
pub const MAX_ENCODED_LEN: usize = 65_536;

/// Why bytes are not an advertisement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Longer than [`MAX_ENCODED_LEN`].
    #[error("{len} bytes is longer than any advertisement (at most {MAX_ENCODED_LEN})")]
    TooLarge {
        /// The length received.
        len: usize,
    },
    /// Does not start with [`MAGIC`].
    #[error("not a hub advertisement (wrong magic bytes)")]
    BadMagic,
    /// A version other than [`VERSION`].
    #[error("advertisement encoding version {0} is not supported (this hub reads version 1)")]
    UnsupportedVersion(u8),
    /// A field that cannot be read: cut short, a bad hub id or country code, a count too high.
    #[error("undecodable advertisement: {0}")]
    Read(#[from] ReadError),
    /// A flag bit this version does not know.
    #[error("unknown flags {0:#04x}")]
    UnknownFlags(u8),
    /// Link id 0.
    #[error("link id 0 is not a link")]
    LinkIdZero,
    /// A prefix family other than 4 or 6.
    #[error("prefix family {0} is neither 4 (IPv4) nor 6 (IPv6)")]
    PrefixFamily(u8),
    /// A prefix too long for its family, or with bits set after its length.
    #[error("an announced prefix is malformed: {0}")]
    Prefix(#[from] IpPrefixError),
    /// Links, vouchers or prefixes out of order: not the one canonical encoding.
    #[error("the {0} are not in canonical order")]
    NotCanonical(&'static str),
    /// Well-formed fields that do not make an advertisement.
    #[error(transparent)]
    Invalid(#[from] InvalidAdvertisement),
    /// A chain of 0 or too many certificates.
    #[error("a chain of {0} certificates; expected 1 to {MAX_CHAIN_LEN}")]
    ChainLength(usize),
    /// A certificate of length 0 or over [`MAX_CERTIFICATE_LEN`].
    #[error("certificate {index} of the chain is {len} bytes; expected 1 to {MAX_CERTIFICATE_LEN}")]
    CertificateLength {
        /// Position in the chain.
        index: usize,
        /// The announced length.
        len: usize,
    },
    /// `r` or `s` is 0 or not below the group order.
    #[error("the signature is not a valid P-256 signature value")]
    SignatureValue,
    /// Bytes after the signature.
    #[error("{0} bytes follow the signature")]
    TrailingBytes(usize),
}

/// A field the bounded reader of hubd's encodings refuses, whatever it reads (advertisements
/// here, circuit frames in [`crate::circuit::wire`]); each decoder's error wraps it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The input ends inside this field.
    #[error("it ends inside its {0}")]
    Truncated(&'static str),
    /// A hub id that breaks the hub id rule.
    #[error("its {field} is not a valid hub id: {source}")]
    HubId {
        /// Which field.
        field: &'static str,
        /// The rule broken.
        source: HubIdError,
    },
    /// Two bytes that are not an assigned country code.
    #[error("jurisdiction {0:?} is not an assigned ISO 3166-1 alpha-2 code")]
    Jurisdiction([u8; 2]),
    /// A count above its bound.
    #[error("{count} {what} announced; at most {max} are allowed")]
    TooMany {
        /// What is counted.
        what: &'static str,
        /// The count in the input.
        count: usize,
        /// The bound.
        max: usize,
    },
}

impl ReadError {
    /// A short label for the metrics: `truncated`, `hub_id`, `jurisdiction`, `too_many`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Truncated(_) => "truncated",
            Self::HubId { .. } => "hub_id",
            Self::Jurisdiction(_) => "jurisdiction",
            Self::TooMany { .. } => "too_many",
        }
    }
}

/// The wire encoding of `signed`.
pub fn encode(signed: &SignedAdvertisement) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    encode_content(signed.advertisement(), &mut out);
    let chain = signed.chain();
    out.push(u8::try_from(chain.len()).expect("the chain length is bounded by MAX_CHAIN_LEN"));
    for cert in chain {
        let len =
            u16::try_from(cert.len()).expect("certificates are bounded by MAX_CERTIFICATE_LEN");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(cert.as_ref());
    }
    out.extend_from_slice(&signed.signature().to_bytes());
    out
}

/// Appends the canonical encoding of the content (what the signature covers) to `out`.
pub(crate) fn encode_content(advertisement: &Advertisement, out: &mut Vec<u8>) {
    put_hub_id(out, advertisement.origin());
    out.extend_from_slice(&advertisement.jurisdiction().to_bytes());
    out.push(advertisement.flags().bits());
    out.extend_from_slice(&advertisement.sequence().to_be_bytes());
    out.extend_from_slice(&advertisement.expires_at().as_unix_secs().to_be_bytes());
    put_count(out, advertisement.links().len());
    for link in advertisement.links() {
        put_hub_id(out, &link.neighbour);
        out.extend_from_slice(&link.link.get().to_be_bytes());
        let micros = u32::try_from(link.latency.as_micros())
            .expect("link latencies are bounded by Latency::MAX_LINK");
        out.extend_from_slice(&micros.to_be_bytes());
    }
    put_count(out, advertisement.vouchers().len());
    for voucher in advertisement.vouchers() {
        put_hub_id(out, &voucher.hub);
        out.extend_from_slice(voucher.root.as_bytes());
    }
    put_count(out, advertisement.prefixes().len());
    for prefix in advertisement.prefixes() {
        match prefix.address() {
            IpAddr::V4(address) => {
                out.extend_from_slice(&[4, prefix.length()]);
                out.extend_from_slice(&address.octets());
            }
            IpAddr::V6(address) => {
                out.extend_from_slice(&[6, prefix.length()]);
                out.extend_from_slice(&address.octets());
            }
        }
    }
}

/// Appends `id` as one length byte and its ASCII bytes.
pub(crate) fn put_hub_id(out: &mut Vec<u8>, id: &HubId) {
    out.push(u8::try_from(id.as_str().len()).expect("hub ids are at most 63 bytes"));
    out.extend_from_slice(id.as_str().as_bytes());
}

fn put_count(out: &mut Vec<u8>, count: usize) {
    let count =
        u16::try_from(count).expect("counts are bounded by MAX_LINKS, MAX_VOUCHERS, MAX_PREFIXES");
    out.extend_from_slice(&count.to_be_bytes());
}

/// Decodes `bytes`, checking every bound and the canonical form; verifies nothing.
pub fn decode(bytes: &[u8]) -> Result<SignedAdvertisement, DecodeError> {
    if bytes.len() > MAX_ENCODED_LEN {
        return Err(DecodeError::TooLarge { len: bytes.len() });
    }
    let mut reader = Reader::new(bytes);
    if reader.take(MAGIC.len(), "magic")? != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    match reader.u8("version")? {
        VERSION => {}
        other => return Err(DecodeError::UnsupportedVersion(other)),
    }
    let advertisement = content(&mut reader)?;
    let chain = chain(&mut reader)?;
    let signature: [u8; 64] = reader
        .take(64, "signature")?
        .try_into()
        .expect("take returned 64 bytes");
    let signature = AdvertisementSignature(signature);
    if signature.to_p256().is_none() {
        return Err(DecodeError::SignatureValue);
    }
    let rest = reader.remaining();
    if rest != 0 {
        return Err(DecodeError::TrailingBytes(rest));
    }
    Ok(SignedAdvertisement::from_parts(
        advertisement,
        chain,
        signature,
    ))
}

fn content(reader: &mut Reader<'_>) -> Result<Advertisement, DecodeError> {
    let origin = reader.hub_id("origin")?;
    let jurisdiction = reader.jurisdiction("jurisdiction")?;
    let bits = reader.u8("flags")?;
    let flags = Flags::from_bits(bits).ok_or(DecodeError::UnknownFlags(bits))?;
    let sequence = reader.u64("sequence")?;
    let expires_at = Timestamp::from_unix_secs(reader.u64("expiry")?);
    let links = links(reader)?;
    let vouchers = vouchers(reader)?;
    let prefixes = prefixes(reader)?;
    Ok(Advertisement::from_sorted(AdvertisementParts {
        origin,
        jurisdiction,
        flags,
        sequence,
        expires_at,
        links,
        vouchers,
        prefixes,
    })?)
}

fn links(reader: &mut Reader<'_>) -> Result<Vec<AdvertisedLink>, DecodeError> {
    let count = reader.count("links", MAX_LINKS)?;
    let mut links: Vec<AdvertisedLink> = Vec::with_capacity(count);
    for _ in 0..count {
        let neighbour = reader.hub_id("link neighbour")?;
        let link = LinkId::new(reader.u16("link id")?).ok_or(DecodeError::LinkIdZero)?;
        let latency = Latency::from_micros(u64::from(reader.u32("link latency")?));
        if let Some(previous) = links.last()
            && (&previous.neighbour, previous.link) > (&neighbour, link)
        {
            return Err(DecodeError::NotCanonical("links"));
        }
        links.push(AdvertisedLink {
            neighbour,
            link,
            latency,
        });
    }
    Ok(links)
}

fn vouchers(reader: &mut Reader<'_>) -> Result<Vec<Voucher>, DecodeError> {
    let count = reader.count("vouchers", MAX_VOUCHERS)?;
    let mut vouchers: Vec<Voucher> = Vec::with_capacity(count);
    for _ in 0..count {
        let hub = reader.hub_id("voucher hub")?;
        let root = reader.array::<32>("voucher fingerprint")?;
        if vouchers.last().is_some_and(|previous| previous.hub > hub) {
            return Err(DecodeError::NotCanonical("vouchers"));
        }
        vouchers.push(Voucher {
            hub,
            root: SpkiFingerprint::from_bytes(root),
        });
    }
    Ok(vouchers)
}

fn prefixes(reader: &mut Reader<'_>) -> Result<Vec<IpPrefix>, DecodeError> {
    let count = reader.count("prefixes", MAX_PREFIXES)?;
    let mut prefixes: Vec<IpPrefix> = Vec::with_capacity(count);
    for _ in 0..count {
        let family = reader.u8("prefix family")?;
        let length = reader.u8("prefix length")?;
        let address = match family {
            4 => IpAddr::from(reader.array::<4>("prefix address")?),
            6 => IpAddr::from(reader.array::<16>("prefix address")?),
            other => return Err(DecodeError::PrefixFamily(other)),
        };
        let prefix = IpPrefix::new(address, length)?;
        if prefixes.last().is_some_and(|previous| *previous > prefix) {
            return Err(DecodeError::NotCanonical("prefixes"));
        }
        prefixes.push(prefix);
    }
    Ok(prefixes)
}

fn chain(reader: &mut Reader<'_>) -> Result<Vec<CertificateDer<'static>>, DecodeError> {
    let count = usize::from(reader.u8("chain length")?);
    if !(1..=MAX_CHAIN_LEN).contains(&count) {
        return Err(DecodeError::ChainLength(count));
    }
    let mut chain = Vec::with_capacity(count);
    for index in 0..count {
        let len = usize::from(reader.u16("certificate length")?);
        if !(1..=MAX_CERTIFICATE_LEN).contains(&len) {
            return Err(DecodeError::CertificateLength { index, len });
        }
        chain.push(CertificateDer::from(
            reader.take(len, "certificate")?.to_vec(),
        ));
    }
    Ok(chain)
}

fn at_most(what: &'static str, count: usize, max: usize) -> Result<usize, ReadError> {
    if count > max {
        return Err(ReadError::TooMany { what, count, max });
    }
    Ok(count)
}

/// A cursor over the input that never reads past its end.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// How many bytes are left unread.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], ReadError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(ReadError::Truncated(what))?;
        let taken = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(taken)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], ReadError> {
        Ok(self
            .take(N, what)?
            .try_into()
            .expect("take returned N bytes"))
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, ReadError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, ReadError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, ReadError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, ReadError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A two-byte count, refused above `max` before anything is allocated for it.
    pub(crate) fn count(&mut self, what: &'static str, max: usize) -> Result<usize, ReadError> {
        let count = usize::from(self.u16(what)?);
        at_most(what, count, max)
    }

    /// A one-byte count, refused above `max` likewise.
    pub(crate) fn byte_count(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<usize, ReadError> {
        let count = usize::from(self.u8(what)?);
        at_most(what, count, max)
    }

    /// An assigned ISO 3166-1 alpha-2 code, two bytes.
    pub(crate) fn jurisdiction(&mut self, what: &'static str) -> Result<Jurisdiction, ReadError> {
        let code = self.array::<2>(what)?;
        Jurisdiction::from_bytes(code).ok_or(ReadError::Jurisdiction(code))
    }

    /// A hub id as [`put_hub_id`] writes it, through [`HubId::parse`].
    pub(crate) fn hub_id(&mut self, field: &'static str) -> Result<HubId, ReadError> {
        let len = usize::from(self.u8(field)?);
        if len == 0 {
            return Err(ReadError::HubId {
                field,
                source: HubIdError::Empty,
            });
        }
        self.hub_id_of_len(len, field)
    }

    /// A hub id or nothing: length 0 (no hub id is empty) reads as `None`.
    pub(crate) fn optional_hub_id(
        &mut self,
        field: &'static str,
    ) -> Result<Option<HubId>, ReadError> {
        match usize::from(self.u8(field)?) {
            0 => Ok(None),
            len => self.hub_id_of_len(len, field).map(Some),
        }
    }

    fn hub_id_of_len(&mut self, len: usize, field: &'static str) -> Result<HubId, ReadError> {
        if len > MAX_HUB_ID_LEN {
            return Err(ReadError::HubId {
                field,
                source: HubIdError::TooLong(len),
            });
        }
        let bytes = self.take(len, field)?;
        HubId::parse(&String::from_utf8_lossy(bytes))
            .map_err(|source| ReadError::HubId { field, source })
    }
}
