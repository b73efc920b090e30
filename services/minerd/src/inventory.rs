//! The fleet inventory: every miner ever found, who owns it, where it stands, what it runs,
//! its state, and its downsampled telemetry history, in one SQLite file in minerd's state
//! directory.
//!
//! Durability: write-ahead logging with `synchronous=FULL`, and every change is one
//! transaction, so a minerd killed at any instant reopens with each change either whole or
//! absent. The schema is versioned with `PRAGMA user_version` and migrated forward in order
//! ([`schema`]); a file from a newer minerd is refused rather than guessed at.
//!
//! The API is synchronous (SQLite is); async callers run it on `spawn_blocking`. One
//! connection behind a mutex is enough: writes come once per discovery scan and once per
//! poll cycle, each a single batched transaction.

mod history;
mod miners;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

pub use history::{HistoryPoint, HistorySample, Resolution, RetentionPolicy};
pub use miners::{MinerFilter, MinerId, MinerRecord, MinerState, ScanChanges, Sighting};

/// The file name inside minerd's state directory.
pub const INVENTORY_FILE: &str = "inventory.sqlite3";
/// How long a writer waits for a lock held by another connection (e.g. an operator's sqlite3
/// shell) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("inventory {path}: cannot {action}: {source}")]
    Sqlite {
        path: String,
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "inventory {path} has schema version {found}; this minerd knows up to {known} (was a newer minerd installed and rolled back?)"
    )]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
    #[error(
        "inventory {path} refuses write-ahead logging (journal mode stays '{mode}'); is the state directory on a file system without shared memory?"
    )]
    NoWal { path: String, mode: String },
    #[error("inventory {path}: unreadable row: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("no miner with id {0} in the inventory")]
    UnknownMiner(i64),
}

/// The inventory database.
pub struct Inventory {
    path: PathBuf,
    db: Mutex<Connection>,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Inventory {
    /// Opens (creating and migrating if needed) the inventory in `state_dir`.
    pub fn open_in(state_dir: &Path) -> Result<Inventory, InventoryError> {
        Inventory::open(&state_dir.join(INVENTORY_FILE))
    }

    /// Opens (creating and migrating if needed) the inventory file at `path`.
    pub fn open(path: &Path) -> Result<Inventory, InventoryError> {
        let inventory = Inventory {
            path: path.to_path_buf(),
            db: Mutex::new(
                Connection::open(path).map_err(sqlite_error(path, "open the database"))?,
            ),
        };
        {
            let mut db = inventory.connection();
            inventory.configure(&db)?;
            schema::migrate(&mut db).map_err(|e| match e {
                schema::MigrateError::Sqlite(source) => InventoryError::Sqlite {
                    path: path.display().to_string(),
                    action: "migrate the schema",
                    source,
                },
                schema::MigrateError::Newer { found, known } => InventoryError::NewerSchema {
                    path: path.display().to_string(),
                    found,
                    known,
                },
            })?;
        }
        Ok(inventory)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn configure(&self, db: &Connection) -> Result<(), InventoryError> {
        let failed = |action| sqlite_error(&self.path, action);
        db.busy_timeout(BUSY_TIMEOUT)
            .map_err(failed("set the busy timeout"))?;
        let mode: String = db
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(failed("enable write-ahead logging"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(InventoryError::NoWal {
                path: self.path.display().to_string(),
                mode,
            });
        }
        // FULL: a commit is on disk (WAL fsynced) before it returns, so power loss or kill -9
        // never loses a change minerd already acted on.
        db.pragma_update(None, "synchronous", "FULL")
            .map_err(failed("set synchronous=FULL"))?;
        db.pragma_update(None, "foreign_keys", "ON")
            .map_err(failed("enable foreign keys"))?;
        Ok(())
    }

    fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half transaction (rusqlite rolls back on
        // drop), so the connection stays usable.
        self.db.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sqlite(&self, action: &'static str) -> impl FnOnce(rusqlite::Error) -> InventoryError {
        sqlite_error(&self.path, action)
    }

    fn corrupt(&self, reason: String) -> InventoryError {
        InventoryError::Corrupt {
            path: self.path.display().to_string(),
            reason,
        }
    }
}

fn sqlite_error(
    path: &Path,
    action: &'static str,
) -> impl FnOnce(rusqlite::Error) -> InventoryError {
    let path = path.display().to_string();
    move |source| InventoryError::Sqlite {
        path,
        action,
        source,
    }
}

/// Seconds since the Unix epoch, the inventory's time unit.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "inventory_tests.rs"]
mod tests;
