//! The part of a marshalled `TPMS_ATTEST` a quote's verifier reads (TPM 2.0 Part 2, 10.12):
//! big-endian, sizes before contents, nothing after the end.
//!
//! ```text
//! magic u32 (TPM_GENERATED_VALUE) | type u16 (TPM_ST_ATTEST_QUOTE) | qualifiedSigner TPM2B_NAME
//! | extraData TPM2B_DATA | clockInfo (u64 clock, u32 resetCount, u32 restartCount, u8 safe)
//! | firmwareVersion u64 | TPMS_QUOTE_INFO: TPML_PCR_SELECTION (u32 count, then per selection
//!   u16 hash, u8 sizeofSelect, bitmap) | pcrDigest TPM2B_DIGEST
//! ```
//!
//! Parsed by hand rather than with tss-esapi so that updated (and its fuzz target) do not link
//! the TPM stack to read bytes from the network; trustd's tests check the same attestation with
//! tss-esapi's own parser.

/// `TPM_GENERATED_VALUE`: every attestation the TPM makes starts so.
pub const TPM_GENERATED: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_QUOTE`.
pub const ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_ALG_SHA256`.
pub const ALG_SHA256: u16 = 0x000b;

/// The most selections a verifier reads: a quote from a TPM with a handful of banks.
const MAX_SELECTIONS: u32 = 16;

/// One PCR bank's selection: the hash and the bitmap (bit `n % 8` of byte `n / 8` is PCR `n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcrSelection {
    pub hash: u16,
    pub bitmap: Vec<u8>,
}

impl PcrSelection {
    /// The PCRs it selects, ascending.
    pub fn pcrs(&self) -> Vec<u32> {
        let mut pcrs = Vec::new();
        for (index, byte) in self.bitmap.iter().enumerate() {
            for bit in 0..8u32 {
                if byte & (1 << bit) != 0 {
                    pcrs.push(index as u32 * 8 + bit);
                }
            }
        }
        pcrs
    }
}

/// What a quote attests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuoteAttest {
    pub magic: u32,
    pub attest_type: u16,
    /// The qualifying data the caller gave the TPM.
    pub extra_data: Vec<u8>,
    pub selections: Vec<PcrSelection>,
    /// The hash of the selected PCR values, concatenated in order.
    pub pcr_digest: Vec<u8>,
}

/// Why the bytes are not an attestation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttestMalformed {
    #[error("it ends inside its {0}")]
    Truncated(&'static str),
    #[error("{0} bytes follow its end")]
    Trailing(usize),
    #[error("it selects {0} PCR banks; a quote of PCR 11 selects one")]
    TooManySelections(u32),
}

/// Reads `bytes` as a `TPMS_ATTEST` of a quote (the magic and type are returned, not judged).
pub fn parse_quote_attest(bytes: &[u8]) -> Result<QuoteAttest, AttestMalformed> {
    let mut reader = Reader { bytes };
    let magic = reader.u32("magic")?;
    let attest_type = reader.u16("type")?;
    let _qualified_signer = reader.sized("qualified signer")?;
    let extra_data = reader.sized("extra data")?.to_vec();
    reader.take(8 + 4 + 4 + 1, "clock information")?;
    reader.take(8, "firmware version")?;
    let count = reader.u32("PCR selection count")?;
    if count > MAX_SELECTIONS {
        return Err(AttestMalformed::TooManySelections(count));
    }
    let mut selections = Vec::new();
    for _ in 0..count {
        let hash = reader.u16("PCR selection")?;
        let size = reader.take(1, "PCR selection")?[0];
        let bitmap = reader.take(usize::from(size), "PCR selection")?.to_vec();
        selections.push(PcrSelection { hash, bitmap });
    }
    let pcr_digest = reader.sized("PCR digest")?.to_vec();
    if !reader.bytes.is_empty() {
        return Err(AttestMalformed::Trailing(reader.bytes.len()));
    }
    Ok(QuoteAttest {
        magic,
        attest_type,
        extra_data,
        selections,
        pcr_digest,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], AttestMalformed> {
        if self.bytes.len() < n {
            return Err(AttestMalformed::Truncated(what));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, AttestMalformed> {
        let bytes = self.take(2, what)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, AttestMalformed> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A TPM2B: a u16 size and that many bytes.
    fn sized(&mut self, what: &'static str) -> Result<&'a [u8], AttestMalformed> {
        let size = self.u16(what)?;
        self.take(usize::from(size), what)
    }
}

#[cfg(test)]
#[path = "attest_tests.rs"]
mod tests;
