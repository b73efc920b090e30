//! PCR selections and values, and the policy digests computed from them without a TPM.
//!
//! The CA key's policy must be computable offline: the image build predicts PCR 11, and a
//! release tool signs the policy digest of the next image long before any TPM sees it. The
//! formulas are those of TPM 2.0 Part 3 (TPM2_PolicyPCR, TPM2_PolicyAuthorize); the tests check
//! them against a TPM's trial sessions so the two can never drift apart.
//!
//! Only the SHA-256 bank is used: it is what systemd-measure predicts and what every TPM 2.0 on
//! the supported hardware implements.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Highest PCR index a PC-client TPM implements (PCRs 0 to 23).
pub const MAX_PCR_INDEX: u8 = 23;

/// Bytes of the PCR bitmap in a `TPMS_PCR_SELECTION` (24 PCRs); tss-esapi uses the same size,
/// and the policy digest covers this encoding, so it must never change.
const PCR_SELECT_OCTETS: usize = 3;

/// `TPM_ALG_SHA256`.
const TPM_ALG_SHA256: u16 = 0x000B;
/// `TPM_CC_PolicyPCR`.
const TPM_CC_POLICY_PCR: u32 = 0x0000_017F;
/// `TPM_CC_PolicyAuthorize`.
const TPM_CC_POLICY_AUTHORIZE: u32 = 0x0000_016A;

/// A SHA-256 digest: a PCR value or a policy digest.
pub type Sha256Digest = [u8; 32];

/// Why a PCR selection or a set of PCR values is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcrError {
    /// A policy over no PCR would bind the key to nothing.
    #[error("the PCR selection is empty; a policy must cover at least one PCR")]
    EmptySelection,
    /// The TPM has PCRs 0 to 23 only.
    #[error("PCR {0} does not exist (PCRs are numbered 0 to {MAX_PCR_INDEX})")]
    NoSuchPcr(u8),
    /// The same PCR is listed twice.
    #[error("PCR {0} is listed twice")]
    Duplicate(u8),
    /// A selected PCR has no expected value.
    #[error("PCR {0} is selected but has no expected value")]
    MissingValue(u8),
    /// A value is given for a PCR outside the selection.
    #[error("a value is given for PCR {0}, which is not in the selection")]
    NotSelected(u8),
    /// A value in a prediction file or a JSON document is not 64 hexadecimal digits.
    #[error("`{text}` is not a SHA-256 value (64 hexadecimal digits)")]
    BadValue {
        /// The text as found (shortened if long).
        text: String,
    },
}

/// A PCR index with its SHA-256 value, expected or measured.
///
/// Serialised as `{"pcr": 11, "sha256": "c75b…"}` so an operator can compare it with
/// `tpm2_pcrread` and with the image build's `pcr11.expected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PcrValue {
    /// The PCR index (0 to 23).
    pub pcr: u8,
    /// Its value in the SHA-256 bank.
    #[serde(with = "hex_digest")]
    pub sha256: Sha256Digest,
}

impl PcrValue {
    /// A value as written by the image build (`pcr11.expected`: one line of 64 hex digits).
    pub fn from_prediction(pcr: u8, text: &str) -> Result<Self, PcrError> {
        check_index(pcr)?;
        Ok(Self {
            pcr,
            sha256: parse_sha256_hex(text)?,
        })
    }
}

/// Parses 64 hexadecimal digits (surrounding white space and a `0x` prefix are allowed).
pub fn parse_sha256_hex(text: &str) -> Result<Sha256Digest, PcrError> {
    let trimmed = text.trim();
    let digits = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    let mut value = [0u8; 32];
    hex::decode_to_slice(digits, &mut value).map_err(|_| PcrError::BadValue {
        text: trimmed.chars().take(80).collect(),
    })?;
    Ok(value)
}

/// Checks a selection and returns it in ascending order, the order in which the TPM
/// concatenates PCR values (a selection is a bitmap: the order it was written in is lost).
pub fn normalise_selection(selection: &[u8]) -> Result<Vec<u8>, PcrError> {
    if selection.is_empty() {
        return Err(PcrError::EmptySelection);
    }
    let mut sorted = selection.to_vec();
    sorted.sort_unstable();
    for pair in sorted.windows(2) {
        if pair[0] == pair[1] {
            return Err(PcrError::Duplicate(pair[0]));
        }
    }
    for &pcr in &sorted {
        check_index(pcr)?;
    }
    Ok(sorted)
}

/// Checks that `values` gives exactly one value for each PCR of `selection` and returns them
/// in ascending PCR order.
pub fn values_for_selection(
    selection: &[u8],
    values: &[PcrValue],
) -> Result<Vec<PcrValue>, PcrError> {
    let selection = normalise_selection(selection)?;
    let mut ordered = Vec::with_capacity(selection.len());
    for &pcr in &selection {
        let mut matching = values.iter().filter(|value| value.pcr == pcr);
        let value = matching.next().ok_or(PcrError::MissingValue(pcr))?;
        if matching.next().is_some() {
            return Err(PcrError::Duplicate(pcr));
        }
        ordered.push(*value);
    }
    if let Some(extra) = values.iter().find(|value| !selection.contains(&value.pcr)) {
        return Err(PcrError::NotSelected(extra.pcr));
    }
    Ok(ordered)
}

/// The marshalled `TPML_PCR_SELECTION` for `selection` in the SHA-256 bank: count, hash
/// algorithm, bitmap size, bitmap (PCR n is bit n % 8 of byte n / 8). `selection` must be valid.
pub fn marshal_pcr_selection(selection: &[u8]) -> Vec<u8> {
    let mut bitmap = [0u8; PCR_SELECT_OCTETS];
    for &pcr in selection {
        bitmap[usize::from(pcr / 8)] |= 1 << (pcr % 8);
    }
    let mut out = Vec::with_capacity(4 + 2 + 1 + PCR_SELECT_OCTETS);
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
    out.push(PCR_SELECT_OCTETS as u8);
    out.extend_from_slice(&bitmap);
    out
}

/// `pcrDigest` of TPM2_PolicyPCR: SHA-256 over the values concatenated in ascending PCR order.
pub fn pcr_composite_digest(values: &[PcrValue]) -> Sha256Digest {
    let mut ordered = values.to_vec();
    ordered.sort_unstable_by_key(|value| value.pcr);
    let mut hash = Sha256::new();
    for value in &ordered {
        hash.update(value.sha256);
    }
    hash.finalize().into()
}

/// The policy digest of a session that ran only TPM2_PolicyPCR over `values` (Part 3, 23.7):
/// `H(0…0 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || pcrDigest)`.
///
/// It is the `authPolicy` of a CA key in `pcr` mode, and the `approvedPolicy` a release key
/// signs in `authorized` mode.
pub fn policy_pcr_digest(values: &[PcrValue]) -> Result<Sha256Digest, PcrError> {
    extend_with_policy_pcr(&[0u8; 32], values)
}

/// The policy digest after TPM2_PolicyPCR over `values` in a session whose digest was
/// `previous`: `H(previous || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || pcrDigest)`.
///
/// In `authorized` mode with fixed PCRs, `previous` is the PolicyAuthorize digest: the key's
/// `authPolicy` is the release key's authorisation followed by the PCRs bound at enrolment.
pub fn extend_with_policy_pcr(
    previous: &Sha256Digest,
    values: &[PcrValue],
) -> Result<Sha256Digest, PcrError> {
    let selection: Vec<u8> = values.iter().map(|value| value.pcr).collect();
    let selection = normalise_selection(&selection)?;
    let mut hash = Sha256::new();
    hash.update(previous);
    hash.update(TPM_CC_POLICY_PCR.to_be_bytes());
    hash.update(marshal_pcr_selection(&selection));
    hash.update(pcr_composite_digest(values));
    Ok(hash.finalize().into())
}

/// The policy digest after TPM2_PolicyAuthorize (Part 3, 23.16), which resets the digest and
/// then extends it twice: `H(H(0…0 || TPM_CC_PolicyAuthorize || keySign.name) || policyRef)`.
pub fn policy_authorize_digest(key_sign_name: &[u8], policy_ref: &[u8]) -> Sha256Digest {
    let first: Sha256Digest = Sha256::new()
        .chain_update([0u8; 32])
        .chain_update(TPM_CC_POLICY_AUTHORIZE.to_be_bytes())
        .chain_update(key_sign_name)
        .finalize()
        .into();
    Sha256::new()
        .chain_update(first)
        .chain_update(policy_ref)
        .finalize()
        .into()
}

fn check_index(pcr: u8) -> Result<(), PcrError> {
    if pcr > MAX_PCR_INDEX {
        return Err(PcrError::NoSuchPcr(pcr));
    }
    Ok(())
}

/// Serde for byte strings as lower-case hex, so state and policy files read well in `jq`.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde for a SHA-256 digest as 64 hex digits.
pub(crate) mod hex_digest {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Sha256Digest;

    pub fn serialize<S: Serializer>(
        digest: &Sha256Digest,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Sha256Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_sha256_hex(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_encoding_matches_the_tpm_layout() {
        assert_eq!(
            marshal_pcr_selection(&[7, 11]),
            [0, 0, 0, 1, 0x00, 0x0B, 3, 0x80, 0x08, 0x00]
        );
        assert_eq!(
            marshal_pcr_selection(&[0, 16, 23]),
            [0, 0, 0, 1, 0x00, 0x0B, 3, 0x01, 0x00, 0x81]
        );
    }

    #[test]
    fn selections_are_checked_and_sorted() {
        assert_eq!(normalise_selection(&[11, 7]).unwrap(), vec![7, 11]);
        assert_eq!(normalise_selection(&[]), Err(PcrError::EmptySelection));
        assert_eq!(normalise_selection(&[7, 7]), Err(PcrError::Duplicate(7)));
        assert_eq!(normalise_selection(&[24]), Err(PcrError::NoSuchPcr(24)));
    }

    #[test]
    fn values_must_cover_the_selection_exactly() {
        let v = |pcr| PcrValue {
            pcr,
            sha256: [pcr; 32],
        };
        let ordered = values_for_selection(&[11, 7], &[v(11), v(7)]).unwrap();
        assert_eq!(ordered, vec![v(7), v(11)]);
        assert_eq!(
            values_for_selection(&[7, 11], &[v(7)]),
            Err(PcrError::MissingValue(11))
        );
        assert_eq!(
            values_for_selection(&[7], &[v(7), v(16)]),
            Err(PcrError::NotSelected(16))
        );
        assert_eq!(
            values_for_selection(&[7], &[v(7), v(7)]),
            Err(PcrError::Duplicate(7))
        );
    }

    #[test]
    fn composite_digest_is_in_ascending_pcr_order() {
        let a = PcrValue {
            pcr: 7,
            sha256: [1; 32],
        };
        let b = PcrValue {
            pcr: 11,
            sha256: [2; 32],
        };
        let expected: Sha256Digest = Sha256::new()
            .chain_update([1u8; 32])
            .chain_update([2u8; 32])
            .finalize()
            .into();
        assert_eq!(pcr_composite_digest(&[b, a]), expected);
        assert_eq!(pcr_composite_digest(&[a, b]), expected);
    }

    #[test]
    fn prediction_files_parse() {
        let line = "c75b5dbceb51d6a6b64427c10e796a9b5086d4b27302db052432065890a5d5b2\n";
        let value = PcrValue::from_prediction(11, line).unwrap();
        assert_eq!(value.sha256[0], 0xc7);
        assert_eq!(value.sha256[31], 0xb2);
        assert!(PcrValue::from_prediction(11, "c75b").is_err());
        assert!(PcrValue::from_prediction(24, line).is_err());
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(
            json,
            format!("{{\"pcr\":11,\"sha256\":\"{}\"}}", line.trim())
        );
        assert_eq!(serde_json::from_str::<PcrValue>(&json).unwrap(), value);
    }
}
