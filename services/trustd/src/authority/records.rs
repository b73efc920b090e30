//! Issued certificates and revocations as the store keeps them, and as `bunkerctl ca list`
//! will show them.
//!
//! Every row is derived from the certificate's own DER ([`CertificateFacts::from_der`]), both
//! when trustd issues and when a row is rebuilt from the transparency log after a crash, so the
//! two paths cannot disagree on names, serial or validity.

use std::net::IpAddr;

use rusqlite::{OptionalExtension, Row, params};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::error::AuthorityError;
use super::revocation::RevocationReason;
use super::store::{CertStore, StoredCrl};
use crate::ca::{CertificateSerial, Profile};
use crate::translog::MerkleHash;

/// What the store records about a certificate, read from its DER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    /// Its serial.
    pub serial: CertificateSerial,
    /// The subject CN, if any.
    pub common_name: Option<String>,
    /// The subject alternative names, as text (DNS names, addresses, URIs, e-mail addresses).
    pub names: Vec<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl CertificateFacts {
    /// Reads the facts from a certificate this CA issued. Fails on anything else (a serial
    /// this CA would not draw, a certificate that does not parse).
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (rest, certificate) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err("bytes follow the certificate".into());
        }
        let serial = serial_from_integer(certificate.raw_serial()).ok_or_else(|| {
            format!(
                "its serial {} is not one this CA draws",
                hex::encode(certificate.raw_serial())
            )
        })?;
        let common_name = certificate
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let names = match certificate.subject_alternative_name() {
            Ok(Some(extension)) => extension
                .value
                .general_names
                .iter()
                .filter_map(name_text)
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(format!("its subject alternative names: {e}")),
        };
        let validity = certificate.validity();
        Ok(Self {
            serial,
            common_name,
            names,
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
        })
    }
}

/// The CA's serial from a DER INTEGER's content: positive and at most 16 bytes.
fn serial_from_integer(raw: &[u8]) -> Option<CertificateSerial> {
    let significant: Vec<u8> = raw.iter().copied().skip_while(|b| *b == 0).collect();
    if significant.is_empty() || significant.len() > crate::ca::serial::SERIAL_LEN {
        return None;
    }
    let mut bytes = [0u8; crate::ca::serial::SERIAL_LEN];
    bytes[crate::ca::serial::SERIAL_LEN - significant.len()..].copy_from_slice(&significant);
    CertificateSerial::from_hex(&hex::encode(bytes))
}

fn name_text(name: &GeneralName<'_>) -> Option<String> {
    match name {
        GeneralName::DNSName(text) | GeneralName::URI(text) | GeneralName::RFC822Name(text) => {
            Some((*text).to_owned())
        }
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => Some(IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?).to_string()),
            16 => Some(IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?).to_string()),
            _ => None,
        },
        _ => None,
    }
}

/// A revocation as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Why.
    pub reason: RevocationReason,
    /// When (whole seconds).
    pub revoked_at: OffsetDateTime,
    /// Who asked.
    pub requester: String,
}

/// One issued certificate, with its revocation if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// What the certificate says.
    pub facts: CertificateFacts,
    /// The profile it was issued under; `None` if the row was rebuilt from the log and the
    /// serial's reservation was lost too (a store restored from an old backup).
    pub profile: Option<Profile>,
    /// Who asked for it; `None` in the same case as `profile`.
    pub requester: Option<String>,
    /// Its index in the transparency log.
    pub log_index: u64,
    /// When it was logged, milliseconds since the Unix epoch (the log entry's timestamp).
    pub logged_at_ms: u64,
    /// Whether the row was rebuilt from the log at a start (trustd died between logging the
    /// certificate and recording it).
    pub recovered: bool,
    /// The revocation, if revoked.
    pub revocation: Option<Revocation>,
}

/// Which certificates [`CertStore::list`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    /// Not revoked and within validity.
    Valid,
    /// Not revoked, past its end of validity.
    Expired,
    /// Revoked.
    Revoked,
}

/// A query over the issued certificates, in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListFilter {
    /// Only certificates in this status (judged at the time of the query).
    pub status: Option<CertificateStatus>,
    /// Only this profile.
    pub profile: Option<Profile>,
    /// Only certificates whose CN or a name contains this text (ASCII case-insensitive).
    pub name_contains: Option<String>,
    /// Only certificates logged after this index (for paging).
    pub after_log_index: Option<u64>,
    /// At most this many (capped at [`ListFilter::MAX_LIMIT`]).
    pub limit: usize,
}

impl ListFilter {
    /// Most rows one query returns; page with `after_log_index`.
    pub const MAX_LIMIT: usize = 1000;
}

impl Default for ListFilter {
    fn default() -> Self {
        Self {
            status: None,
            profile: None,
            name_contains: None,
            after_log_index: None,
            limit: 100,
        }
    }
}

/// An issued certificate about to be recorded.
pub(super) struct NewRecord<'a> {
    pub(super) facts: &'a CertificateFacts,
    pub(super) der: &'a [u8],
    pub(super) log_index: u64,
    pub(super) leaf_hash: &'a MerkleHash,
    pub(super) logged_at_ms: u64,
}

const RECORD_COLUMNS: &str = "c.serial, c.common_name, c.names, c.not_before, c.not_after, \
     c.profile, c.requester, c.log_index, c.logged_at_ms, c.recovered, \
     r.reason, r.revoked_at, r.requester";

impl CertStore {
    /// Records a certificate trustd just logged, and marks its serial issued. The commit is
    /// not flushed: the log entry already is, and rebuilds the row if it is lost.
    pub(super) fn record_issued(&self, new: &NewRecord<'_>) -> Result<(), AuthorityError> {
        self.write_unflushed("record an issued certificate", |tx| {
            // Statements of the issuance path are cached: compiling them costs as much as
            // running them.
            let (profile, requester): (Option<String>, Option<String>) = tx
                .prepare_cached(
                    "UPDATE serials SET state = 'issued' WHERE serial = ?1 \
                     RETURNING profile, requester",
                )?
                .query_row([new.facts.serial.as_bytes()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            insert_certificate(tx, new, profile, requester, false)
        })
    }

    /// Rebuilds, in one durable transaction, the rows of certificates found in the log but not
    /// in the store. A serial without a reservation (a store restored from an old backup) gets
    /// one, marked issued, with no profile or requester.
    pub(super) fn insert_recovered(&self, records: &[NewRecord<'_>]) -> Result<(), AuthorityError> {
        self.write("rebuild rows from the transparency log", |tx| {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            for new in records {
                tx.execute(
                    "INSERT INTO serials (serial, state, reserved_at) VALUES (?1, 'issued', ?2)
                     ON CONFLICT (serial) DO UPDATE SET state = 'issued'",
                    params![new.facts.serial.as_bytes(), now],
                )?;
                let (profile, requester) = tx.query_row(
                    "SELECT profile, requester FROM serials WHERE serial = ?1",
                    [new.facts.serial.as_bytes()],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )?;
                insert_certificate(tx, new, profile, requester, true)?;
            }
            Ok(())
        })
    }

    /// `(log index, leaf hash, serial)` of every recorded certificate, in log order.
    pub(super) fn logged_rows(
        &self,
    ) -> Result<Vec<(u64, MerkleHash, CertificateSerial)>, AuthorityError> {
        self.read("read the recorded log indexes", |db| {
            let mut statement = db.prepare(
                "SELECT log_index, leaf_hash, serial FROM certificates ORDER BY log_index",
            )?;
            let rows = statement.query_map([], |row| {
                let hash: Vec<u8> = row.get(1)?;
                Ok((
                    row.get::<_, i64>(0)? as u64,
                    hash.try_into().unwrap_or([0; 32]),
                    serial_column(row, 2)?,
                ))
            })?;
            rows.collect()
        })
    }

    /// Marks every serial still `reserved` as `abandoned`; returns how many. Only at start,
    /// when no issuance is running: such a serial was given to an issuance of a process that
    /// died before the certificate reached the log, or was reserved in a block and never used.
    pub(super) fn abandon_unlogged(&self) -> Result<usize, AuthorityError> {
        self.write("abandon serials that never reached the log", |tx| {
            tx.execute(
                "UPDATE serials SET state = 'abandoned' WHERE state = 'reserved'",
                [],
            )
        })
    }

    /// The record of `serial`, if this CA issued it.
    pub fn certificate(
        &self,
        serial: &CertificateSerial,
    ) -> Result<Option<CertificateRecord>, AuthorityError> {
        self.read("look up a certificate", |db| {
            db.query_row(
                &format!(
                    "SELECT {RECORD_COLUMNS} FROM certificates c
                     LEFT JOIN revocations r ON r.serial = c.serial WHERE c.serial = ?1"
                ),
                [serial.as_bytes()],
                record_from_row,
            )
            .optional()
        })
    }

    /// The DER of the certificate with `serial`, if this CA issued it.
    pub fn certificate_der(
        &self,
        serial: &CertificateSerial,
    ) -> Result<Option<Vec<u8>>, AuthorityError> {
        self.read("read a certificate", |db| {
            db.query_row(
                "SELECT der FROM certificates WHERE serial = ?1",
                [serial.as_bytes()],
                |row| row.get(0),
            )
            .optional()
        })
    }

    /// The certificates matching `filter`, in log order.
    pub fn list(
        &self,
        filter: &ListFilter,
        now: OffsetDateTime,
    ) -> Result<Vec<CertificateRecord>, AuthorityError> {
        let now = now.unix_timestamp();
        let status = match filter.status {
            None => "1",
            Some(CertificateStatus::Revoked) => "r.serial IS NOT NULL",
            Some(CertificateStatus::Valid) => "r.serial IS NULL AND c.not_after > ?3",
            Some(CertificateStatus::Expired) => "r.serial IS NULL AND c.not_after <= ?3",
        };
        let pattern = filter.name_contains.as_ref().map(|text| {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM certificates c
             LEFT JOIN revocations r ON r.serial = c.serial
             WHERE c.log_index > ?1 AND (?2 IS NULL OR c.profile = ?2) AND {status}
               AND (?4 IS NULL OR c.common_name LIKE ?4 ESCAPE '\\' OR c.names LIKE ?4 ESCAPE '\\')
             ORDER BY c.log_index LIMIT ?5"
        );
        let after = filter.after_log_index.map_or(-1, |index| index as i64);
        let limit = filter.limit.min(ListFilter::MAX_LIMIT) as i64;
        self.read("list certificates", |db| {
            let mut statement = db.prepare(&sql)?;
            let rows = statement.query_map(
                params![after, filter.profile.map(|p| p.name()), now, pattern, limit],
                record_from_row,
            )?;
            rows.collect()
        })
    }

    /// How many certificates were issued, and how many of them are revoked.
    pub fn counts(&self) -> Result<(u64, u64), AuthorityError> {
        self.read("count certificates", |db| {
            db.query_row(
                "SELECT (SELECT count(*) FROM certificates), (SELECT count(*) FROM revocations)",
                [],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
            )
        })
    }

    /// Revocations a CRL made at `this_update` must list: those of certificates that had not
    /// expired one CRL lifetime (`keep_after`) before it (RFC 5280 §3.3 lets a CA drop an
    /// entry once a regular CRL past the certificate's expiry has carried it).
    pub(super) fn revocations_for_crl(
        &self,
        keep_after: OffsetDateTime,
    ) -> Result<Vec<(CertificateSerial, Revocation)>, AuthorityError> {
        self.read("read revocations", |db| {
            let mut statement = db.prepare(
                "SELECT r.serial, r.reason, r.revoked_at, r.requester FROM revocations r
                 JOIN certificates c ON c.serial = r.serial
                 WHERE c.not_after > ?1 ORDER BY r.revoked_at, r.serial",
            )?;
            let rows = statement.query_map([keep_after.unix_timestamp()], |row| {
                Ok((
                    serial_column(row, 0)?,
                    revocation_columns(row, 1)?.expect("an inner join has a revocation"),
                ))
            })?;
            rows.collect()
        })
    }

    /// Records a revocation together with the CRL that lists it, atomically and durably. The
    /// CRL number must be the next one, so a concurrent writer could never roll it back.
    pub(super) fn commit_revocation(
        &self,
        serial: &CertificateSerial,
        revocation: &Revocation,
        crl: &StoredCrl,
    ) -> Result<(), AuthorityError> {
        self.write("record a revocation", |tx| {
            tx.execute(
                "INSERT INTO revocations (serial, reason, revoked_at, requester)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    serial.as_bytes(),
                    revocation.reason.code(),
                    revocation.revoked_at.unix_timestamp(),
                    revocation.requester
                ],
            )?;
            put_crl(tx, crl)
        })
    }

    /// Stores a refreshed CRL (same revocations, later dates, next number).
    pub(super) fn store_crl(&self, crl: &StoredCrl) -> Result<(), AuthorityError> {
        self.write("store the CRL", |tx| put_crl(tx, crl))
    }
}

fn insert_certificate(
    tx: &rusqlite::Transaction<'_>,
    new: &NewRecord<'_>,
    profile: Option<String>,
    requester: Option<String>,
    recovered: bool,
) -> rusqlite::Result<()> {
    let names = serde_json::to_string(&new.facts.names).expect("a list of strings serialises");
    tx.prepare_cached(
        "INSERT INTO certificates (serial, log_index, leaf_hash, logged_at_ms, profile, requester,
             common_name, names, not_before, not_after, der, recovered)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        new.facts.serial.as_bytes(),
        new.log_index as i64,
        &new.leaf_hash[..],
        new.logged_at_ms as i64,
        profile,
        requester,
        new.facts.common_name,
        names,
        new.facts.not_before.unix_timestamp(),
        new.facts.not_after.unix_timestamp(),
        new.der,
        recovered,
    ])?;
    Ok(())
}

/// Replaces the CRL, refusing a number that is not larger than the stored one.
fn put_crl(tx: &rusqlite::Transaction<'_>, crl: &StoredCrl) -> rusqlite::Result<()> {
    let changed = tx.execute(
        "INSERT INTO crl (id, number, this_update, next_update, der) VALUES (1, ?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET number = excluded.number,
             this_update = excluded.this_update, next_update = excluded.next_update,
             der = excluded.der
         WHERE excluded.number > crl.number",
        params![crl.number as i64, crl.this_update, crl.next_update, crl.der],
    )?;
    if changed == 0 {
        return Err(rusqlite::Error::StatementChangedRows(0));
    }
    Ok(())
}

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<CertificateRecord> {
    let names: String = row.get(2)?;
    let profile: Option<String> = row.get(5)?;
    Ok(CertificateRecord {
        facts: CertificateFacts {
            serial: serial_column(row, 0)?,
            common_name: row.get(1)?,
            names: serde_json::from_str(&names).map_err(|e| conversion(2, e))?,
            not_before: time_column(row, 3)?,
            not_after: time_column(row, 4)?,
        },
        profile: profile
            .map(|text| text.parse::<Profile>())
            .transpose()
            .map_err(|e| conversion(5, e))?,
        requester: row.get(6)?,
        log_index: row.get::<_, i64>(7)? as u64,
        logged_at_ms: row.get::<_, i64>(8)? as u64,
        recovered: row.get(9)?,
        revocation: revocation_columns(row, 10)?,
    })
}

fn revocation_columns(row: &Row<'_>, first: usize) -> rusqlite::Result<Option<Revocation>> {
    let Some(code) = row.get::<_, Option<u8>>(first)? else {
        return Ok(None);
    };
    let reason = RevocationReason::from_code(code).map_err(|e| conversion(first, e))?;
    Ok(Some(Revocation {
        reason,
        revoked_at: time_column(row, first + 1)?,
        requester: row.get(first + 2)?,
    }))
}

fn serial_column(row: &Row<'_>, index: usize) -> rusqlite::Result<CertificateSerial> {
    let bytes: Vec<u8> = row.get(index)?;
    CertificateSerial::from_hex(&hex::encode(&bytes))
        .ok_or_else(|| conversion(index, "not a 16-byte positive serial"))
}

fn time_column(row: &Row<'_>, index: usize) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(row.get(index)?).map_err(|e| conversion(index, e))
}

fn conversion(
    index: usize,
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Null, error.into())
}
