//! The image's signed PCR policy: values from the command line, signed with trustd's code,
//! written where the build picks it up.
//!
//! Two builds with the same key and the same PCR values write the same bytes: ECDSA here is
//! deterministic (RFC 6979, the p256 crate's `Signer`), the values are sorted by PCR, and the
//! JSON has a fixed layout. That keeps the image bit-for-bit reproducible.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use trustd::enrolment::POLICY_REF;
use trustd::tpm::{PcrValue, SignedPcrPolicy, pcr};

use crate::ReleaseError;
use crate::release_key::ReleaseKey;

/// Parses `N=HEX`: a PCR index and its expected SHA-256 value (64 hex digits, as
/// `systemd-measure` and `pcr11.expected` give it).
pub fn parse_pcr_assignment(text: &str) -> Result<PcrValue, String> {
    let (index, value) = text
        .split_once('=')
        .ok_or_else(|| "expected N=HEX, e.g. 11=<64 hex digits>".to_owned())?;
    let index: u8 = index
        .trim()
        .parse()
        .map_err(|_| format!("`{index}` is not a PCR index (0 to {})", pcr::MAX_PCR_INDEX))?;
    PcrValue::from_prediction(index, value).map_err(|e| e.to_string())
}

/// Signs `values` for trustd's CA key (policyRef [`POLICY_REF`]) and checks the signature with
/// the public key before anything is published.
pub fn sign(key: &ReleaseKey, mut values: Vec<PcrValue>) -> Result<SignedPcrPolicy, ReleaseError> {
    values.sort_by_key(|value| value.pcr);
    let signed = SignedPcrPolicy::sign(key.signing_key(), values, POLICY_REF)?;
    signed.verify(key.verifying_key(), POLICY_REF)?;
    Ok(signed)
}

/// The file's bytes: pretty JSON with a final newline.
pub fn to_json(signed: &SignedPcrPolicy) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(signed).expect("a signed policy always serialises");
    bytes.push(b'\n');
    bytes
}

/// Writes `bytes` to `path` atomically (temporary file beside it, fsync, rename), mode 0644: a
/// failed build leaves either the old file or none, never half a policy.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReleaseError> {
    let error = |reason: String| ReleaseError::Output {
        path: path.to_path_buf(),
        reason,
    };
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| error(e.to_string()))?;
    file.write_all(bytes).map_err(|e| error(e.to_string()))?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| error(e.to_string()))?;
    file.as_file()
        .sync_all()
        .map_err(|e| error(e.to_string()))?;
    file.persist(path).map_err(|e| error(e.error.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c75b5dbceb51d6a6b64427c10e796a9b5086d4b27302db052432065890a5d5b2";

    #[test]
    fn pcr_assignments_parse() {
        let value = parse_pcr_assignment(&format!("11={HEX}")).unwrap();
        assert_eq!(value.pcr, 11);
        assert_eq!(hex::encode(value.sha256), HEX);
        assert_eq!(
            parse_pcr_assignment(&format!("7=0x{HEX}\n")).unwrap().pcr,
            7
        );

        let err = parse_pcr_assignment(HEX).unwrap_err();
        assert!(err.contains("N=HEX"), "{err}");
        let err = parse_pcr_assignment(&format!("x={HEX}")).unwrap_err();
        assert!(err.contains("`x` is not a PCR index"), "{err}");
        let err = parse_pcr_assignment(&format!("24={HEX}")).unwrap_err();
        assert!(err.contains("PCR 24 does not exist"), "{err}");
        let err = parse_pcr_assignment("11=c75b").unwrap_err();
        assert!(err.contains("64 hexadecimal digits"), "{err}");
        let err = parse_pcr_assignment(&format!("11={}", "zz".repeat(32))).unwrap_err();
        assert!(err.contains("64 hexadecimal digits"), "{err}");
    }
}
