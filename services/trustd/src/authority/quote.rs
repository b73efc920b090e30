//! Quotes of the booted image: evidence for a rollout that this hub runs the release it claims.
//!
//! `Quote(nonce)` is a TPM2_Quote of PCR 11 (SHA-256 bank: systemd-stub measures the UKI there,
//! so it names the booted image) with the verifier's nonce as qualifying data, signed by the CA
//! key. The CA key is an unrestricted signing key, so the TPM does not itself vouch that a
//! `TPMS_ATTEST` it signed was made by TPM2_Quote; trustd does: everything else it signs starts
//! with a DER `SEQUENCE` (`0x30`: certificates, CRLs), `bunkeros-tree-head-v1` or
//! `bunkeros-audit-v1`, never with `TPM_GENERATED_VALUE` (`0xff 'T' 'C' 'G'`), so a signed
//! attestation with that magic can only be a quote.
//!
//! A quote reveals nothing secret and writes nothing, so anyone may ask, in lockdown too (the
//! evidence matters most then) and while the CA's disk state is uncertain. It needs the key, so
//! a sealed CA cannot quote: the TPM refuses the policy, and the answer says sealed.

use super::error::AuthorityError;
use super::{Authority, Operation};
use crate::tpm::PcrQuote;

/// The longest qualifying data a quote carries: a TPM2B_DATA holds at most a SHA-512 digest.
pub const MAX_QUOTE_NONCE_LEN: usize = 64;

impl Authority {
    /// Quotes PCR 11 with `nonce` (1 to 64 bytes) as qualifying data, signed by the CA key.
    pub fn quote(&self, nonce: &[u8]) -> Result<PcrQuote, AuthorityError> {
        if nonce.is_empty() || nonce.len() > MAX_QUOTE_NONCE_LEN {
            return Err(AuthorityError::BadQuoteNonce(nonce.len()));
        }
        self.ensure_may_sign(Operation::Quote)?;
        let quote = self
            .key
            .quote_pcr11(nonce)
            .map_err(|source| AuthorityError::Sign {
                what: "quote of PCR 11",
                source,
            })
            .map_err(|e| self.note_sealed(e, Operation::Quote))?;
        tracing::debug!(nonce = %hex::encode(nonce), "quoted PCR 11");
        Ok(quote)
    }
}
