//! Each state a crash can leave, made on purpose, and the states no crash can leave.
//!
//! The kill -9 test ([`super::crash`]) hits these at random; here each one is built exactly
//! (by writing what a process killed at that instant would have left) so every row of the
//! table in [`crate::authority::reconcile`] is covered on every run.

use std::io::Write as _;

use super::*;
use crate::ca::{CertificateSerial, Profile, SerialLedger};

#[test]
fn a_serial_reserved_before_a_crash_is_abandoned_and_never_drawn_again() {
    let site = Site::start();
    let authority = site.open_root();
    let serial = CertificateSerial::random().unwrap();
    assert!(authority.store().reserve(&serial).unwrap());
    drop(authority); // killed before the TPM signed

    let authority = site.open();
    assert_eq!(authority.reconciliation().abandoned, 1);
    assert_eq!(
        authority.store().serial_state(&serial).unwrap(),
        Some(SerialState::Abandoned)
    );
    assert!(
        !authority.store().reserve(&serial).unwrap(),
        "an abandoned serial is never reused"
    );
    issue(&authority, "api");
}

#[test]
fn a_logged_certificate_without_its_row_is_rebuilt_from_the_log() {
    let site = Site::start();
    let authority = site.open_root();
    issue(&authority, "api");
    let lost = issue(&authority, "db");
    drop(authority);
    // Killed between the log append and the store row: the row never committed.
    let serial = lost.certificate.serial;
    site.raw_store()
        .execute_batch(&format!(
            "DELETE FROM certificates WHERE log_index = 1;
             UPDATE serials SET state = 'reserved' WHERE serial = x'{}';",
            serial.to_hex()
        ))
        .unwrap();

    let authority = site.open();
    assert_eq!(authority.reconciliation().recovered, 1);
    assert_eq!(authority.reconciliation().abandoned, 0);
    let record = authority.certificate(&serial).unwrap().unwrap();
    assert!(record.recovered);
    assert_eq!(record.log_index, 1);
    // Profile and requester come from the reservation, which was durable before signing.
    assert_eq!(record.profile, Some(Profile::Service));
    assert_eq!(record.requester.as_deref(), Some("test:issuer"));
    assert_eq!(record.facts.names, vec![format!("db.{SITE}")]);
    assert_eq!(record.facts.not_after, lost.certificate.not_after);
    assert_eq!(record.logged_at_ms, lost.logged_at_ms);
    assert_eq!(
        authority.store().certificate_der(&serial).unwrap().unwrap(),
        lost.certificate.der
    );
    assert_eq!(
        authority.store().serial_state(&serial).unwrap(),
        Some(SerialState::Issued)
    );
    // The next start finds nothing to do.
    drop(authority);
    assert_eq!(site.open().reconciliation(), &Reconciliation::default());
}

#[test]
fn a_logged_certificate_whose_reservation_was_lost_too_is_rebuilt_without_a_requester() {
    let site = Site::start();
    let authority = site.open_root();
    let lost = issue(&authority, "api");
    drop(authority);
    // A store restored from a backup older than the certificate.
    site.raw_store()
        .execute_batch(&format!(
            "DELETE FROM certificates; DELETE FROM serials WHERE serial = x'{}';",
            lost.certificate.serial.to_hex()
        ))
        .unwrap();

    let authority = site.open();
    assert_eq!(authority.reconciliation().recovered, 1);
    let record = authority
        .certificate(&lost.certificate.serial)
        .unwrap()
        .unwrap();
    assert_eq!((record.profile, record.requester), (None, None));
    assert!(!authority.store().reserve(&lost.certificate.serial).unwrap());
}

#[test]
fn a_torn_log_append_is_cut_and_its_serial_abandoned() {
    let site = Site::start();
    let authority = site.open_root();
    issue(&authority, "api");
    let serial = CertificateSerial::random().unwrap();
    assert!(authority.store().reserve(&serial).unwrap());
    drop(authority);
    // Killed in the middle of writing the record: its length (and the length's complement)
    // and the first bytes of a 1024-byte entry.
    let len: u32 = 1024;
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(site.log_path())
        .unwrap();
    log.write_all(&len.to_be_bytes()).unwrap();
    log.write_all(&(!len).to_be_bytes()).unwrap();
    log.write_all(&[1, 0, 0, 0]).unwrap();
    drop(log);

    let authority = site.open();
    let found = authority.reconciliation();
    assert!(found.torn_bytes > 0, "{found:?}");
    assert_eq!(found.abandoned, 1);
    assert_eq!(authority.status().unwrap().log_size, 1);
    assert_eq!(issue(&authority, "next").log_index, 1);
}

#[test]
fn a_row_whose_certificate_is_not_in_the_log_stops_the_start() {
    let site = Site::start();
    let authority = site.open_root();
    issue(&authority, "api");
    let one_entry = std::fs::read(site.log_path()).unwrap();
    let gone = issue(&authority, "db");
    drop(authority);
    // The log loses its last entry (no signed tree head covers it yet): only the store knows.
    std::fs::write(site.log_path(), one_entry).unwrap();

    let error = site.try_open().unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, AuthorityError::Integrity(_)), "{message}");
    assert!(
        message.contains(&gone.certificate.serial.to_hex())
            && message.contains("log entry 1")
            && message.contains("has only 1 entries"),
        "{message}"
    );
    assert!(
        message.contains("restore the state directory from a backup"),
        "{message}"
    );
}

#[test]
fn a_log_truncated_below_a_signed_tree_head_stops_the_start() {
    let site = Site::start();
    let authority = site.open_root();
    issue(&authority, "api");
    let one_entry = std::fs::read(site.log_path()).unwrap();
    issue(&authority, "db");
    authority.signed_tree_head().unwrap();
    drop(authority);
    std::fs::write(site.log_path(), one_entry).unwrap();
    // Even with the store's rows dropped as well, the signed head gives the truncation away.
    site.raw_store()
        .execute_batch("DELETE FROM certificates WHERE log_index = 1;")
        .unwrap();

    let message = site.try_open().unwrap_err().to_string();
    assert!(
        message.contains("signed a tree head of 2 entries"),
        "{message}"
    );
}

#[test]
fn a_log_swapped_for_another_sites_log_stops_the_start() {
    let other = Site::start();
    let authority = other.open_root();
    issue(&authority, "api");
    issue(&authority, "db");
    drop(authority);

    let site = Site::start();
    let authority = site.open_root();
    issue(&authority, "api");
    authority.signed_tree_head().unwrap();
    drop(authority);
    std::fs::copy(other.log_path(), site.log_path()).unwrap();

    let message = site.try_open().unwrap_err().to_string();
    assert!(message.contains("root at that size differs"), "{message}");
}
