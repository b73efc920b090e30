//! What a failed TPM command means for the CA: sealed, connection lost, or a fault.
//!
//! tss-esapi reports failures as `Tss2ResponseCode`, whose `kind()` decodes only the low bits
//! and so cannot tell a TPM's answer from an error of the TSS software stack with the same low
//! bits. The decisions here need that difference (a TPM saying "policy check failed" seals the
//! CA; the TCP link to swtpm breaking does not), so they read the full 32-bit response code,
//! including its layer (TPM 2.0 Part 2, 6.6; TSS 2.0 response code layers).

use tss_esapi::Error;
use tss_esapi::constants::response_code::Tss2ResponseCode;

/// Response codes from the TPM itself carry layer 0.
const LAYER_TPM: u32 = 0;
/// tpm2-tss TCTI layer (`TSS2_TCTI_RC_LAYER`): the transport to the TPM failed.
const LAYER_TCTI: u32 = 10;
/// tpm2-tss ESAPI layer (`TSS2_ESYS_RC_LAYER`).
const LAYER_ESYS: u32 = 7;
/// `TSS2_BASE_RC_BAD_SEQUENCE`: ESAPI refuses commands after a transport failure mid-command.
const BASE_RC_BAD_SEQUENCE: u32 = 7;
/// Format-one codes (bit 7 set) carry a parameter, handle or session number in bits 8 to 11.
const RC_FMT1: u32 = 0x080;
/// Format-zero TPM 2.0 codes have this bit set (`RC_VER1`).
const RC_VER1: u32 = 0x100;
/// `TPM_RC_REFERENCE_H0`: the first handle refers to a transient object that is not loaded.
const RC_REFERENCE_H0: u32 = 0x910;
/// `TPM_RC_REFERENCE_S6`: the last of the "not loaded" warnings (handles H0–H6, sessions S0–S6).
const RC_REFERENCE_S6: u32 = 0x91E;

/// A TPM 2.0 answer, decoded to the cases the CA treats differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TpmAnswer {
    /// `TPM_RC_VALUE`: a parameter is wrong; from TPM2_PolicyPCR it means the PCRs differ from
    /// the given digest.
    Value,
    /// `TPM_RC_SIGNATURE`: a signature does not verify.
    Signature,
    /// `TPM_RC_POLICY_FAIL`: the policy session's digest is not the object's `authPolicy`.
    PolicyFail,
    /// `TPM_RC_PCR_CHANGED`: a PCR changed after TPM2_PolicyPCR ran in the session.
    PcrChanged,
    /// `TPM_RC_PCR`: PCR check failed.
    Pcr,
    /// `TPM_RC_INTEGRITY`: a wrapped private part does not belong to this parent.
    Integrity,
    /// Another TPM answer.
    Other,
}

/// The full response code behind a tss-esapi error; `None` for errors of the Rust wrapper
/// itself (bad parameter sizes and the like), which never reached the TPM.
pub(crate) fn response_code(error: &Error) -> Option<u32> {
    let Error::Tss2Error(code) = error else {
        return None;
    };
    // tss-esapi keeps the raw value private but prints it as `Response code value: 0x…`
    // (checked by a test against `Tss2ResponseCode::from`, tss-esapi is pinned to =7.7.0).
    let printed = match code {
        Tss2ResponseCode::Success => return Some(0),
        Tss2ResponseCode::FormatZero(inner) => inner.to_string(),
        Tss2ResponseCode::FormatOne(inner) => inner.to_string(),
    };
    let hex = printed.rsplit("0x").next()?;
    u32::from_str_radix(hex.trim(), 16).ok()
}

/// The TPM's answer, or `None` when the error did not come from the TPM.
pub(crate) fn tpm_answer(error: &Error) -> Option<TpmAnswer> {
    let code = response_code(error)?;
    if layer(code) != LAYER_TPM || code == 0 {
        return None;
    }
    let answer = if code & RC_FMT1 != 0 {
        match code & 0x3F {
            0x04 => TpmAnswer::Value,
            0x1B => TpmAnswer::Signature,
            0x1D => TpmAnswer::PolicyFail,
            0x1F => TpmAnswer::Integrity,
            _ => TpmAnswer::Other,
        }
    } else if code & RC_VER1 != 0 {
        match code & 0x7F {
            0x27 => TpmAnswer::Pcr,
            0x28 => TpmAnswer::PcrChanged,
            _ => TpmAnswer::Other,
        }
    } else {
        TpmAnswer::Other
    };
    Some(answer)
}

/// Whether the error says the link to the TPM, or what we had loaded in it, is gone: the
/// transport failed, or the TPM no longer knows a handle we hold because it was reset under us
/// (swtpm restarted; the swtpm TCTI reconnects silently, so only the stale handle tells). The
/// connection must be reopened and objects reloaded before the next command.
pub(crate) fn connection_lost(error: &Error) -> bool {
    match response_code(error) {
        Some(code) => match layer(code) {
            LAYER_TCTI => true,
            LAYER_ESYS => code & 0xFFFF == BASE_RC_BAD_SEQUENCE,
            LAYER_TPM => (RC_REFERENCE_H0..=RC_REFERENCE_S6).contains(&code),
            _ => false,
        },
        None => false,
    }
}

/// `error` followed by its response code, e.g. `a policy check failed (session 1) [0x99d]`.
pub(crate) fn describe(error: &Error) -> String {
    match response_code(error) {
        Some(code) if code != 0 => format!("{error} [{code:#x}]"),
        _ => error.to_string(),
    }
}

fn layer(code: u32) -> u32 {
    (code >> 16) & 0xFF
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tss(code: u32) -> Error {
        Error::Tss2Error(Tss2ResponseCode::from(code))
    }

    #[test]
    fn raw_codes_survive_the_wrapper() {
        for code in [0x99d, 0x184, 0x2db, 0x128, 0xa000a, 0x70007, 0x9a2] {
            assert_eq!(response_code(&tss(code)), Some(code), "{code:#x}");
        }
        assert_eq!(response_code(&tss(0)), Some(0));
        assert_eq!(
            response_code(&Error::WrapperError(
                tss_esapi::WrapperErrorKind::WrongParamSize
            )),
            None
        );
    }

    #[test]
    fn tpm_answers_are_told_apart_from_stack_errors() {
        // TPM_RC_POLICY_FAIL for session 1, as the probe saw after a PCR extend.
        assert_eq!(tpm_answer(&tss(0x99d)), Some(TpmAnswer::PolicyFail));
        // TPM_RC_VALUE on parameter 1 (PolicyPCR's pcrDigest).
        assert_eq!(tpm_answer(&tss(0x184)), Some(TpmAnswer::Value));
        // TPM_RC_SIGNATURE on parameter 2 (VerifySignature's signature).
        assert_eq!(tpm_answer(&tss(0x2db)), Some(TpmAnswer::Signature));
        assert_eq!(tpm_answer(&tss(0x128)), Some(TpmAnswer::PcrChanged));
        assert_eq!(tpm_answer(&tss(0x127)), Some(TpmAnswer::Pcr));
        // The same low bits from the ESAPI layer are not a TPM answer.
        assert_eq!(tpm_answer(&tss(0x70027)), None);
        assert_eq!(tpm_answer(&tss(0xa000a)), None);
    }

    #[test]
    fn lost_connections_are_recognised() {
        assert!(connection_lost(&tss(0xa000a))); // TSS2_TCTI_RC_IO_ERROR
        assert!(connection_lost(&tss(0x70007))); // TSS2_ESYS_RC_BAD_SEQUENCE
        assert!(connection_lost(&tss(0x910))); // TPM_RC_REFERENCE_H0: the TPM was reset
        assert!(connection_lost(&tss(0x918))); // TPM_RC_REFERENCE_S0
        assert!(!connection_lost(&tss(0x99d)));
        assert!(!connection_lost(&tss(0x7_0910)));
        assert!(describe(&tss(0x99d)).ends_with("[0x99d]"));
    }
}
