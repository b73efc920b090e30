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
//! nowhere else. The one exception is the row recorded after a certificate was logged
//! (`CertStore::record_issued`): the log entry is already on disk and a lost row is rebuilt
//! from it at the next start, so that commit skips its `fsync` (the next durable commit, at
//! the latest the next reservation, carries it to disk). That saves one of the three disk
//! flushes an issuance would otherwise cost.
//!
//! **Serials** go through these states: `reserved` (drawn, durable, not yet known to be in a
//! certificate) → `issued` (the certificate is in the log) or `abandoned` (never logged:
//! issuance failed, or the process died first). A row is never deleted except when the TPM
//! refused to sign at all (`CertStore::release`): then no certificate carries the serial.
//! `ca` marks the serial of the CA's own self-signed certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::ThreadId;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::error::AuthorityError;
use crate::ca::{CertificateSerial, Profile, SerialError, SerialLedger};
use crate::translog::{SignedTreeHead, TreeHead};

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

/// The state of a serial number in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SerialState {
    /// Drawn and durable; not (yet) known to be in a logged certificate.
    Reserved,
    /// In a certificate in the transparency log.
    Issued,
    /// Never in a logged certificate, and never to be used.
    Abandoned,
    /// The serial of the CA's own certificate.
    Ca,
}

impl SerialState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Issued => "issued",
            Self::Abandoned => "abandoned",
            Self::Ca => "ca",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
        [Self::Reserved, Self::Issued, Self::Abandoned, Self::Ca]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

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

/// Who asked for the serials the current thread reserves, so a row rebuilt from the log after
/// a crash still knows its profile and requester.
#[derive(Debug, Default)]
struct Pending {
    profile: Option<Profile>,
    requester: Option<String>,
    serials: Vec<CertificateSerial>,
}

/// The SQLite store; see the module documentation.
pub struct CertStore {
    path: PathBuf,
    db: Mutex<Connection>,
    /// Reservations made by [`SerialLedger::reserve`] during an issuance, by the thread running
    /// it: the CA draws the serial inside its own `issue`, and the authority must learn which
    /// serial that was to settle it if issuance fails.
    pending: Mutex<HashMap<ThreadId, Pending>>,
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
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Starts collecting the serials this thread reserves, labelled with who asked; the
    /// returned scope hands them back.
    pub(super) fn reservations(
        &self,
        profile: Option<Profile>,
        requester: Option<&str>,
    ) -> ReservationScope<'_> {
        let pending = Pending {
            profile,
            requester: requester.map(str::to_owned),
            serials: Vec::new(),
        };
        lock(&self.pending).insert(std::thread::current().id(), pending);
        ReservationScope { store: self }
    }

    /// Marks reserved `serials` as never used by a logged certificate.
    pub(super) fn abandon(&self, serials: &[CertificateSerial]) -> Result<(), AuthorityError> {
        self.set_reserved_state(serials, SerialState::Abandoned)
    }

    /// Marks reserved `serials` as used by the CA's own certificate.
    pub(super) fn mark_ca(&self, serials: &[CertificateSerial]) -> Result<(), AuthorityError> {
        self.set_reserved_state(serials, SerialState::Ca)
    }

    /// Forgets reserved `serials`: only for serials the TPM refused to sign with, which no
    /// certificate can carry. A crash before this leaves them `reserved`, and the next start
    /// abandons them.
    pub(super) fn release(&self, serials: &[CertificateSerial]) -> Result<(), AuthorityError> {
        self.write("release unused serial numbers", |tx| {
            for serial in serials {
                tx.execute(
                    "DELETE FROM serials WHERE serial = ?1 AND state = 'reserved'",
                    [serial.as_bytes()],
                )?;
            }
            Ok(())
        })
    }

    fn set_reserved_state(
        &self,
        serials: &[CertificateSerial],
        state: SerialState,
    ) -> Result<(), AuthorityError> {
        self.write("settle reserved serial numbers", |tx| {
            for serial in serials {
                tx.execute(
                    "UPDATE serials SET state = ?2 WHERE serial = ?1 AND state = 'reserved'",
                    params![serial.as_bytes(), state.as_str()],
                )?;
            }
            Ok(())
        })
    }

    /// The state of `serial`, if it was ever drawn.
    pub fn serial_state(
        &self,
        serial: &CertificateSerial,
    ) -> Result<Option<SerialState>, AuthorityError> {
        let state: Option<String> = self.read("look up a serial number", |db| {
            db.query_row(
                "SELECT state FROM serials WHERE serial = ?1",
                [serial.as_bytes()],
                |row| row.get(0),
            )
            .optional()
        })?;
        Ok(state.as_deref().and_then(SerialState::parse))
    }

    /// How many serials are in each state, for diagnostics and tests.
    pub fn serial_counts(&self) -> Result<HashMap<SerialState, u64>, AuthorityError> {
        let rows: Vec<(String, i64)> = self.read("count serial numbers", |db| {
            let mut statement = db.prepare("SELECT state, count(*) FROM serials GROUP BY state")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(state, count)| Some((SerialState::parse(&state)?, count as u64)))
            .collect())
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

    /// Runs `work` in one transaction that is atomic but not flushed to disk on commit: only
    /// for what the transparency log can rebuild.
    pub(super) fn write_rebuildable<T>(
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

impl SerialLedger for CertStore {
    /// Inserts the serial as `reserved`, durably, labelled with the profile and requester of
    /// the issuance running on this thread (see `CertStore::reservations`).
    fn reserve(&self, serial: &CertificateSerial) -> Result<bool, SerialError> {
        let thread = std::thread::current().id();
        let (profile, requester) = lock(&self.pending)
            .get(&thread)
            .map(|p| (p.profile.map(|p| p.name()), p.requester.clone()))
            .unwrap_or_default();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let inserted = self
            .write("reserve a serial number", |tx| {
                tx.execute(
                    "INSERT INTO serials (serial, state, profile, requester, reserved_at)
                     VALUES (?1, 'reserved', ?2, ?3, ?4) ON CONFLICT (serial) DO NOTHING",
                    params![serial.as_bytes(), profile, requester, now],
                )
            })
            .map_err(|e| SerialError::Ledger(e.to_string()))?;
        if inserted == 1
            && let Some(pending) = lock(&self.pending).get_mut(&thread)
        {
            pending.serials.push(*serial);
        }
        Ok(inserted == 1)
    }
}

/// The serials one thread reserved during one operation; dropping it stops the collection.
pub(super) struct ReservationScope<'a> {
    store: &'a CertStore,
}

impl ReservationScope<'_> {
    /// The serials reserved since the scope began.
    pub(super) fn finish(self) -> Vec<CertificateSerial> {
        lock(&self.store.pending)
            .remove(&std::thread::current().id())
            .map(|pending| pending.serials)
            .unwrap_or_default()
    }
}

impl Drop for ReservationScope<'_> {
    fn drop(&mut self) {
        lock(&self.store.pending).remove(&std::thread::current().id());
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
