//! The issued-certificate store: one SQLite database in trustd's state directory.
//!
//! It holds what the transparency log does not: which serials were ever drawn, who asked for
//! each certificate and under which profile, revocations, the current CRL, the tree heads the
//! CA signed, and whether the site is in lockdown. The log stays the authority on *which
//! certificates exist*; the store is reconciled against it at every start
//! ([`super::reconcile`]).
//!
//! **Durability.** The database runs in WAL mode with `synchronous=FULL`: a transaction that
//! returned is on disk. That matters most for serial reservations, which [`SerialLedger`]
//! requires to be durable *before* the TPM signs, and for revocations and CRLs, which exist
//! nowhere else. Two kinds of write skip the `fsync` (`CertStore::write_unflushed`): the row
//! recorded after a certificate was logged (`CertStore::record_issued`), which the log entry
//! already on disk rebuilds if it is lost, and the label saying who asked for a serial (see
//! `store/serials.rs`). Both survive the death of the process (they are in the kernel's page
//! cache); only a power cut before the next durable commit can lose them.
//!
//! **Serials** (`store/serials.rs`) are reserved durably in blocks, so one `fsync` covers many
//! certificates, and go through these states: `reserved` (drawn, durable, not yet known to be
//! in a certificate) → `issued` (the certificate is in the log) or `abandoned` (never logged:
//! issuance failed, or the process stopped or died first — the unused rest of a block with it).
//! A row is never deleted. `ca` marks the serial of the CA's own self-signed certificate.

mod serials;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::error::AuthorityError;
#[cfg(doc)]
use crate::ca::SerialLedger;
use crate::translog::{SignedTreeHead, TreeHead};
pub use serials::SerialState;

/// Name of the database in the state directory.
pub const STORE_FILE: &str = "certificates.sqlite";

/// The schema this build writes; `PRAGMA user_version` carries it.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE serials (
    serial BLOB PRIMARY KEY CHECK (length(serial) = 16),
    state TEXT NOT NULL CHECK (state IN ('reserved', 'issued', 'abandoned', 'ca')),
    profile TEXT,
    requester TEXT,
    reserved_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX serials_by_state ON serials (state);
CREATE TABLE certificates (
    serial BLOB PRIMARY KEY REFERENCES serials (serial),
    log_index INTEGER NOT NULL UNIQUE,
    leaf_hash BLOB NOT NULL CHECK (length(leaf_hash) = 32),
    logged_at_ms INTEGER NOT NULL,
    profile TEXT,
    requester TEXT,
    common_name TEXT,
    names TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    not_after INTEGER NOT NULL,
    der BLOB NOT NULL,
    recovered INTEGER NOT NULL
) STRICT;
CREATE TABLE revocations (
    serial BLOB PRIMARY KEY REFERENCES certificates (serial),
    reason INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL,
    requester TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TABLE crl (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    number INTEGER NOT NULL,
    this_update INTEGER NOT NULL,
    next_update INTEGER NOT NULL,
    der BLOB NOT NULL
) STRICT;
CREATE TABLE tree_heads (
    size INTEGER PRIMARY KEY,
    timestamp_ms INTEGER NOT NULL,
    root BLOB NOT NULL CHECK (length(root) = 32),
    signature BLOB NOT NULL
) STRICT;
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
";

/// The CRL as stored: the signed DER and what status reports need without parsing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCrl {
    /// The CRL number (monotonic, never reused).
    pub number: u64,
    /// thisUpdate, Unix seconds.
    pub this_update: i64,
    /// nextUpdate, Unix seconds.
    pub next_update: i64,
    /// The signed CRL.
    pub der: Vec<u8>,
}

/// The SQLite store; see the module documentation.
pub struct CertStore {
    path: PathBuf,
    db: Mutex<Connection>,
    /// Serials reserved in advance, and those each running issuance was given.
    serials: serials::Reservations,
}

impl Drop for CertStore {
    fn drop(&mut self) {
        self.abandon_unused();
    }
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, AuthorityError> {
        let path = dir.join(STORE_FILE);
        let failed = |action| {
            let path = path.display().to_string();
            move |source| AuthorityError::Store {
                path,
                action,
                source,
            }
        };
        let mut db = Connection::open(&path).map_err(failed("open the database"))?;
        let mode = configure(&db).map_err(failed("configure the database"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(AuthorityError::StoreUnusable(format!(
                "the issued-certificate store {} refuses write-ahead logging (it stays in \
                 {mode} mode); is the state directory on a file system without shared memory?",
                path.display()
            )));
        }
        let version: i64 = db
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(failed("read the schema version"))?;
        match version {
            0 => {
                let tx = db.transaction().map_err(failed("create the schema"))?;
                tx.execute_batch(SCHEMA)
                    .and_then(|()| tx.pragma_update(None, "user_version", SCHEMA_VERSION))
                    .and_then(|()| tx.commit())
                    .map_err(failed("create the schema"))?;
            }
            SCHEMA_VERSION => {}
            other => {
                return Err(AuthorityError::StoreUnusable(format!(
                    "the issued-certificate store {} has schema version {other}; this trustd \
                     reads version {SCHEMA_VERSION} (was a newer trustd installed and rolled back?)",
                    path.display()
                )));
            }
        }
        Ok(Self {
            path,
            db: Mutex::new(db),
            serials: serials::Reservations::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the site was in lockdown when last told; `false` if never told.
    pub(super) fn lockdown(&self) -> Result<bool, AuthorityError> {
        let value: Option<String> = self.read("read the lockdown state", |db| {
            db.query_row(
                "SELECT value FROM settings WHERE name = 'lockdown'",
                [],
                |row| row.get(0),
            )
            .optional()
        })?;
        Ok(value.as_deref() == Some("on"))
    }

    /// Records the lockdown state durably, so a restart during lockdown stays locked down.
    pub(super) fn set_lockdown(&self, on: bool) -> Result<(), AuthorityError> {
        self.write("record the lockdown state", |tx| {
            tx.execute(
                "INSERT INTO settings (name, value) VALUES ('lockdown', ?1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [if on { "on" } else { "off" }],
            )?;
            Ok(())
        })
    }

    /// The newest tree head the CA signed (the largest one).
    pub fn latest_tree_head(&self) -> Result<Option<SignedTreeHead>, AuthorityError> {
        self.read("read the last signed tree head", |db| {
            db.query_row(
                "SELECT size, timestamp_ms, root, signature FROM tree_heads
                 ORDER BY size DESC LIMIT 1",
                [],
                tree_head_from_row,
            )
            .optional()
        })
    }

    /// The signed tree head of exactly `size` entries, if the CA signed one.
    pub fn tree_head_of_size(&self, size: u64) -> Result<Option<SignedTreeHead>, AuthorityError> {
        self.read("read a signed tree head", |db| {
            db.query_row(
                "SELECT size, timestamp_ms, root, signature FROM tree_heads WHERE size = ?1",
                [size as i64],
                tree_head_from_row,
            )
            .optional()
        })
    }

    /// Keeps a signed tree head (the newest signature for its size wins).
    pub(super) fn store_tree_head(&self, signed: &SignedTreeHead) -> Result<(), AuthorityError> {
        self.write("store a signed tree head", |tx| {
            tx.execute(
                "INSERT OR REPLACE INTO tree_heads (size, timestamp_ms, root, signature)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    signed.head.size as i64,
                    signed.head.timestamp_ms as i64,
                    &signed.head.root[..],
                    &signed.signature,
                ],
            )?;
            Ok(())
        })
    }

    /// The current CRL, if one was ever signed.
    pub(super) fn crl(&self) -> Result<Option<StoredCrl>, AuthorityError> {
        self.read("read the CRL", |db| {
            db.query_row(
                "SELECT number, this_update, next_update, der FROM crl WHERE id = 1",
                [],
                |row| {
                    Ok(StoredCrl {
                        number: row.get::<_, i64>(0)? as u64,
                        this_update: row.get(1)?,
                        next_update: row.get(2)?,
                        der: row.get(3)?,
                    })
                },
            )
            .optional()
        })
    }

    /// Runs `work` in one durable transaction.
    pub(super) fn write<T>(
        &self,
        action: &'static str,
        work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, AuthorityError> {
        let mut db = lock(&self.db);
        let tx = db.transaction().map_err(|e| self.failed(action, e))?;
        let value = work(&tx).map_err(|e| self.failed(action, e))?;
        tx.commit().map_err(|e| self.failed(action, e))?;
        Ok(value)
    }

    /// Runs `work` in one transaction that is atomic but not flushed to disk on commit: it
    /// survives the process being killed, but a power cut before the next durable commit may
    /// lose it. Only for what the transparency log rebuilds, or whose loss costs a label.
    pub(super) fn write_unflushed<T>(
        &self,
        action: &'static str,
        work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, AuthorityError> {
        let mut db = lock(&self.db);
        let result = (|| {
            db.pragma_update(None, "synchronous", "NORMAL")?;
            let tx = db.transaction()?;
            let value = work(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        // Whatever happened, every later transaction is durable again.
        let restored = db.pragma_update(None, "synchronous", "FULL");
        let value = result.map_err(|e| self.failed(action, e))?;
        restored.map_err(|e| self.failed(action, e))?;
        Ok(value)
    }

    /// Runs a read-only query.
    pub(super) fn read<T>(
        &self,
        action: &'static str,
        work: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, AuthorityError> {
        work(&lock(&self.db)).map_err(|e| self.failed(action, e))
    }

    pub(super) fn failed(&self, action: &'static str, source: rusqlite::Error) -> AuthorityError {
        AuthorityError::Store {
            path: self.path.display().to_string(),
            action,
            source,
        }
    }
}

/// WAL (readers never block the writer, a commit is one append), FULL synchronous (a commit
/// is on disk when it returns), foreign keys enforced. Returns the journal mode SQLite chose.
fn configure(db: &Connection) -> rusqlite::Result<String> {
    let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    db.pragma_update(None, "synchronous", "FULL")?;
    db.pragma_update(None, "foreign_keys", "ON")?;
    // Another process (a backup tool) may hold a read lock for a moment; wait instead of failing.
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(mode)
}

fn tree_head_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SignedTreeHead> {
    let root: Vec<u8> = row.get(2)?;
    let root = root.try_into().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            rusqlite::types::Type::Blob,
            "a tree head root is 32 bytes".into(),
        )
    })?;
    Ok(SignedTreeHead {
        head: TreeHead {
            size: row.get::<_, i64>(0)? as u64,
            timestamp_ms: row.get::<_, i64>(1)? as u64,
            root,
        },
        signature: row.get(3)?,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
