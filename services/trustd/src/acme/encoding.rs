//! The small encodings ACME is built from: unpadded base64url, random identifiers, RFC 3339 times.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Encodes `bytes` as unpadded base64url (RFC 7515 §2), as every JOSE field is.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url strictly: padding, other alphabets, whitespace and non-zero
/// trailing bits are refused, so one value has exactly one encoding.
pub fn from_b64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.as_bytes()).ok()
}

/// Whether `text` is non-empty and made only of base64url characters (a nonce's syntax).
pub fn is_b64url_text(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Random bytes from the operating system.
///
/// Panics if the kernel's random source fails: without it the server could hand out guessable
/// nonces, tokens and resource names, and no request can be served safely.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source must work");
    bytes
}

/// A fresh resource identifier: 128 random bits, base64url. Unguessable, so a resource URL
/// reveals nothing about other accounts' resources and cannot be enumerated.
pub fn random_id() -> String {
    b64url(&random_bytes::<16>())
}

/// A time in the RFC 3339 form ACME uses (`2025-01-01T12:00:00Z`).
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .expect("every UTC time after year 0 formats as RFC 3339")
}
