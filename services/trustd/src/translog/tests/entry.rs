//! The leaf format: its exact bytes, and the strictness of reading it back.

use super::super::merkle::leaf_hash;
use super::super::{EntryError, LogEntry, MAX_CERTIFICATE_LEN};
use super::certificate;

#[test]
fn translog_entry_bytes_are_version_timestamp_then_der() {
    let der = vec![0x30, 0x03, 0x02, 0x01, 0x05];
    let entry = LogEntry::new(0x0102_0304_0506_0708, der.clone()).unwrap();
    let mut expected = vec![0x01, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
    expected.extend_from_slice(&der);
    assert_eq!(entry.encode(), expected);
    assert_eq!(entry.leaf_hash(), leaf_hash(&expected));
    assert_eq!(LogEntry::decode(&expected).unwrap(), entry);
    assert_eq!(entry.timestamp_ms(), 0x0102_0304_0506_0708);
    assert_eq!(entry.certificate_der(), &der[..]);
}

#[test]
fn translog_entries_of_every_length_form_round_trip() {
    for len in [0, 1, 0x7f, 0x80, 0xff, 0x100, 1500, MAX_CERTIFICATE_LEN - 4] {
        let der = certificate(len as u64, len);
        let entry = LogEntry::new(7, der).unwrap_or_else(|e| panic!("content {len}: {e}"));
        assert_eq!(
            LogEntry::decode(&entry.encode()).unwrap(),
            entry,
            "content {len}"
        );
    }
}

#[test]
fn translog_entries_that_are_not_one_der_sequence_are_refused() {
    let framing = |der: &[u8]| LogEntry::new(0, der.to_vec()).unwrap_err();
    assert!(matches!(framing(&[]), EntryError::NotDer(_)));
    assert!(matches!(framing(&[0x30]), EntryError::NotDer(_)));
    // Not a SEQUENCE.
    assert!(matches!(framing(&[0x31, 0x00]), EntryError::NotDer(_)));
    // Trailing byte, missing byte.
    assert!(matches!(
        framing(&[0x30, 0x00, 0x00]),
        EntryError::NotDer(_)
    ));
    assert!(matches!(
        framing(&[0x30, 0x02, 0x00]),
        EntryError::NotDer(_)
    ));
    // BER indefinite length, non-minimal long forms.
    assert!(matches!(
        framing(&[0x30, 0x80, 0x00, 0x00]),
        EntryError::NotDer(_)
    ));
    assert!(matches!(
        framing(&[0x30, 0x81, 0x01, 0x00]),
        EntryError::NotDer(_)
    ));
    let mut padded = vec![0x30, 0x82, 0x00, 0x80];
    padded.extend([0u8; 0x80]);
    assert!(matches!(framing(&padded), EntryError::NotDer(_)));
    // Length of length beyond any certificate we accept.
    assert!(matches!(
        framing(&[0x30, 0x85, 1, 0, 0, 0, 0]),
        EntryError::NotDer(_)
    ));
    // Too large, even when well framed.
    let huge = certificate(1, MAX_CERTIFICATE_LEN);
    assert!(matches!(
        framing(&huge),
        EntryError::CertificateTooLong { .. }
    ));
}

#[test]
fn translog_leaf_bytes_of_another_version_or_truncated_are_refused() {
    let entry = LogEntry::new(42, certificate(1, 20)).unwrap();
    let mut leaf = entry.encode();
    leaf[0] = 2;
    assert_eq!(LogEntry::decode(&leaf), Err(EntryError::UnknownVersion(2)));
    let leaf = entry.encode();
    for len in 0..11 {
        assert!(
            matches!(
                LogEntry::decode(&leaf[..len]),
                Err(EntryError::TooShort { .. })
            ),
            "{len} bytes"
        );
    }
    for len in 11..leaf.len() {
        assert!(LogEntry::decode(&leaf[..len]).is_err(), "{len} bytes");
    }
    let mut longer = leaf.clone();
    longer.push(0);
    assert!(LogEntry::decode(&longer).is_err());
}
