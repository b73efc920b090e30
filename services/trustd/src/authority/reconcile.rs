//! Bringing the store in line with the transparency log at start.
//!
//! Issuance writes in a fixed order — reserve the serial (durable) → sign → append to the log
//! (durable) → record the row — so a process killed at any instant leaves one of a few states,
//! each with one right answer. The log is the source of truth:
//!
//! | killed …                          | on disk                         | at start                    |
//! |-----------------------------------|---------------------------------|-----------------------------|
//! | before the reservation committed  | nothing                         | nothing to do               |
//! | after reserving, before the log   | `reserved` serial, no entry     | serial becomes `abandoned`  |
//! | during the log append             | torn record                     | the log cuts it; as above   |
//! | after the log, before the row     | entry without a row             | row rebuilt from the entry  |
//! | after the row                     | consistent                      | nothing to do               |
//!
//! Serials are reserved durably in blocks, before any of them is signed with
//! ([`super::store`]): the unused rest of a block is `reserved` like the serial of an issuance
//! cut short, and is abandoned with it. A serial that was `reserved` is never deleted at start,
//! only abandoned, so no crash can make a serial drawable again.
//!
//! Everything else is a state no crash produces, and trustd refuses to start with
//! [`AuthorityError::Integrity`]: a row whose certificate is not at its index in the log
//! (truncated or swapped log), a signed tree head the log does not contain, a log entry the CA
//! key did not sign, or one serial in two entries.

use std::collections::HashMap;

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::error::AuthorityError;
use super::records::{CertificateFacts, NewRecord};
use super::store::CertStore;
use crate::ca::CertificateSerial;
use crate::translog::{LogEntry, LogStore, MerkleHash};

/// What reconciliation found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Log entries whose store row was missing and was rebuilt.
    pub recovered: u64,
    /// Reserved serials that never reached the log, now abandoned.
    pub abandoned: u64,
    /// Bytes of a torn last log record that the log cut off.
    pub torn_bytes: u64,
}

/// Checks the store and the log against each other and the CA key, and repairs what a crash
/// explains (see the module documentation).
pub(super) fn reconcile(
    log: &LogStore,
    store: &CertStore,
    ca_key_sec1: &[u8],
) -> Result<Reconciliation, AuthorityError> {
    let ca_key = VerifyingKey::from_sec1_bytes(ca_key_sec1)
        .map_err(|_| AuthorityError::Integrity("the CA public key is not a P-256 point".into()))?;
    check_signed_head(log, store, &ca_key)?;
    let rows = store.logged_rows()?;
    let mut serials: HashMap<CertificateSerial, u64> = HashMap::with_capacity(rows.len());
    for (index, hash, serial) in &rows {
        check_row(log, *index, hash, serial)?;
        serials.insert(*serial, *index);
    }
    let missing = missing_indexes(log.size(), rows.iter().map(|(index, ..)| *index));
    let recovered = rebuild_rows(log, store, &ca_key, &missing, &mut serials)?;
    let abandoned = store.abandon_unlogged()? as u64;
    let result = Reconciliation {
        recovered,
        abandoned,
        torn_bytes: log.torn_tail().map_or(0, |torn| torn.bytes),
    };
    if result != Reconciliation::default() {
        tracing::warn!(
            recovered = result.recovered,
            abandoned = result.abandoned,
            torn_bytes = result.torn_bytes,
            "trustd was interrupted during issuance; the store now matches the transparency log"
        );
    }
    Ok(result)
}

/// The newest signed tree head must verify with the CA key and be contained in the log:
/// acknowledged entries lost at the tail, or a log swapped for another, fail here.
fn check_signed_head(
    log: &LogStore,
    store: &CertStore,
    ca_key: &VerifyingKey,
) -> Result<(), AuthorityError> {
    let Some(head) = store.latest_tree_head()? else {
        return Ok(());
    };
    head.verify_with(ca_key).map_err(|e| {
        AuthorityError::Integrity(format!(
            "the stored tree head of size {} does not verify with the CA key ({e})",
            head.head.size
        ))
    })?;
    log.confirm_tree_head(&head.head).map_err(|e| {
        AuthorityError::Integrity(format!(
            "the CA signed a tree head of {} entries, but {e}",
            head.head.size
        ))
    })
}

/// A stored row must name an entry the log has, with the same leaf hash.
fn check_row(
    log: &LogStore,
    index: u64,
    hash: &MerkleHash,
    serial: &CertificateSerial,
) -> Result<(), AuthorityError> {
    match log.tree().leaf_hash(index) {
        None => Err(AuthorityError::Integrity(format!(
            "the certificate with serial {serial} is recorded as log entry {index}, but the \
             transparency log has only {} entries",
            log.size()
        ))),
        Some(logged) if logged != hash => Err(AuthorityError::Integrity(format!(
            "the certificate with serial {serial} is recorded as log entry {index}, but that \
             entry of the transparency log holds another certificate"
        ))),
        Some(_) => Ok(()),
    }
}

/// Indexes below `size` that `present` (ascending) lacks.
fn missing_indexes(size: u64, present: impl Iterator<Item = u64>) -> Vec<u64> {
    let mut missing = Vec::new();
    let mut next = 0;
    for index in present {
        missing.extend(next..index.min(size));
        next = index + 1;
    }
    missing.extend(next..size);
    missing
}

/// Rebuilds the rows of log entries the store lacks, after checking each was signed by the
/// CA key and repeats no serial.
fn rebuild_rows(
    log: &LogStore,
    store: &CertStore,
    ca_key: &VerifyingKey,
    missing: &[u64],
    serials: &mut HashMap<CertificateSerial, u64>,
) -> Result<u64, AuthorityError> {
    if missing.is_empty() {
        return Ok(0);
    }
    let mut rebuilt = Vec::with_capacity(missing.len());
    for index in missing {
        let entry = log.entry(*index)?;
        let facts = logged_facts(&entry, *index, ca_key)?;
        if let Some(first) = serials.insert(facts.serial, *index) {
            return Err(AuthorityError::Integrity(format!(
                "serial {} appears in log entries {first} and {index}",
                facts.serial
            )));
        }
        let hash = *log
            .tree()
            .leaf_hash(*index)
            .expect("the index is below the log size");
        rebuilt.push((entry, facts, hash, *index));
    }
    let records: Vec<NewRecord<'_>> = rebuilt
        .iter()
        .map(|(entry, facts, hash, index)| NewRecord {
            facts,
            der: entry.certificate_der(),
            log_index: *index,
            leaf_hash: hash,
            logged_at_ms: entry.timestamp_ms(),
        })
        .collect();
    store.insert_recovered(&records)?;
    for (_, facts, _, index) in &rebuilt {
        tracing::warn!(
            serial = %facts.serial,
            index,
            "recorded a certificate found in the transparency log but not in the store"
        );
    }
    Ok(rebuilt.len() as u64)
}

/// The facts of a logged certificate, after checking the CA key signed it.
fn logged_facts(
    entry: &LogEntry,
    index: u64,
    ca_key: &VerifyingKey,
) -> Result<CertificateFacts, AuthorityError> {
    let refused = |what: String| {
        AuthorityError::Integrity(format!(
            "log entry {index} is not a certificate of this CA: {what}"
        ))
    };
    let der = entry.certificate_der();
    let (_, certificate) = X509Certificate::from_der(der).map_err(|e| refused(e.to_string()))?;
    let signature = Signature::from_der(&certificate.signature_value.data)
        .map_err(|_| refused("its signature is not ECDSA".into()))?;
    ca_key
        .verify(certificate.tbs_certificate.as_ref(), &signature)
        .map_err(|_| refused("its signature does not verify with the CA key".into()))?;
    CertificateFacts::from_der(der).map_err(refused)
}

#[cfg(test)]
mod tests {
    use super::missing_indexes;

    #[test]
    fn missing_indexes_are_the_gaps_and_the_tail() {
        assert_eq!(missing_indexes(0, [].into_iter()), Vec::<u64>::new());
        assert_eq!(missing_indexes(3, [].into_iter()), vec![0, 1, 2]);
        assert_eq!(missing_indexes(5, [0, 2, 3].into_iter()), vec![1, 4]);
        assert_eq!(missing_indexes(2, [0, 1].into_iter()), Vec::<u64>::new());
        // Rows past the log's end are reported by `check_row`, not here.
        assert_eq!(missing_indexes(2, [0, 5].into_iter()), vec![1]);
    }
}
