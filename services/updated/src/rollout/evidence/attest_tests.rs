use super::*;

/// A quote attestation as a TPM marshals it: PCR 11 of the SHA-256 bank.
fn quote(extra: &[u8], bitmap: &[u8], pcr_digest: &[u8]) -> Vec<u8> {
    let mut bytes = TPM_GENERATED.to_be_bytes().to_vec();
    bytes.extend_from_slice(&ST_ATTEST_QUOTE.to_be_bytes());
    bytes.extend_from_slice(&[0, 2, 0xaa, 0xbb]); // qualified signer
    bytes.extend_from_slice(&(extra.len() as u16).to_be_bytes());
    bytes.extend_from_slice(extra);
    bytes.extend_from_slice(&[0; 17]); // clock info
    bytes.extend_from_slice(&[0; 8]); // firmware version
    bytes.extend_from_slice(&1u32.to_be_bytes());
    bytes.extend_from_slice(&ALG_SHA256.to_be_bytes());
    bytes.push(bitmap.len() as u8);
    bytes.extend_from_slice(bitmap);
    bytes.extend_from_slice(&(pcr_digest.len() as u16).to_be_bytes());
    bytes.extend_from_slice(pcr_digest);
    bytes
}

#[test]
fn a_quote_of_pcr_11_reads_back_field_by_field() {
    let parsed = parse_quote_attest(&quote(b"nonce", &[0, 0x08, 0], &[7; 32])).unwrap();
    assert_eq!(parsed.magic, TPM_GENERATED);
    assert_eq!(parsed.attest_type, ST_ATTEST_QUOTE);
    assert_eq!(parsed.extra_data, b"nonce");
    assert_eq!(parsed.selections.len(), 1);
    assert_eq!(parsed.selections[0].hash, ALG_SHA256);
    assert_eq!(parsed.selections[0].pcrs(), [11]);
    assert_eq!(parsed.pcr_digest, [7; 32]);
}

#[test]
fn truncated_or_extended_attestations_are_refused() {
    let whole = quote(b"nonce", &[0, 0x08, 0], &[7; 32]);
    for len in 0..whole.len() {
        assert!(
            matches!(
                parse_quote_attest(&whole[..len]),
                Err(AttestMalformed::Truncated(_))
            ),
            "{len}"
        );
    }
    let mut longer = whole.clone();
    longer.push(0);
    assert_eq!(
        parse_quote_attest(&longer),
        Err(AttestMalformed::Trailing(1))
    );
}

#[test]
fn a_huge_selection_count_is_refused_before_reading_it() {
    let mut bytes = quote(b"", &[], &[]);
    let count_at = 4 + 2 + 4 + 2 + 17 + 8;
    bytes[count_at..count_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert_eq!(
        parse_quote_attest(&bytes),
        Err(AttestMalformed::TooManySelections(u32::MAX))
    );
}
