//! The guard's findings on disk: one SQLite file in minerd's state directory, written on every
//! change (WAL, synchronous=FULL) so a kill -9 loses nothing that was reported.
//!
//! A row is one condition on one miner (`ip`, `kind`, `subject`: the pool URL or user it is
//! about). While open, seeing it again only moves `last_seen`; `release` closes every open
//! row of a miner, and a later sighting opens a new row.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

/// The file in the state directory.
pub const FINDINGS_FILE: &str = "hijack_findings.sqlite";

#[derive(Debug, thiserror::Error)]
#[error("hijack findings database {path}: cannot {action}: {source}")]
pub struct StoreError {
    pub path: String,
    pub action: &'static str,
    #[source]
    pub source: rusqlite::Error,
}

/// One finding as kept (and as Mining1's `Hijacks` document shows it).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StoredFinding {
    pub id: i64,
    pub ip: String,
    pub owner: String,
    /// `foreign_pool`, `changed_user`, `devfee_redirect`, `hashing_elsewhere`.
    pub kind: String,
    /// The pool URL or user the finding is about; empty for hashing elsewhere.
    pub subject: String,
    /// `warning` or `critical` (the worst seen while open).
    pub severity: String,
    /// The latest sentence: what was seen and what was expected.
    pub sentence: String,
    /// Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    pub open: bool,
    pub closed_at: Option<i64>,
    pub closed_by: Option<String>,
    pub close_note: Option<String>,
}

/// What one observation reports, before it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting<'a> {
    pub ip: &'a str,
    pub owner: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub severity: &'a str,
    pub sentence: &'a str,
    pub at: i64,
}

pub struct FindingStore {
    path: PathBuf,
    db: Mutex<Connection>,
}

impl std::fmt::Debug for FindingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FindingStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hijack_findings (
    id INTEGER PRIMARY KEY,
    ip TEXT NOT NULL,
    owner TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    severity TEXT NOT NULL,
    sentence TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    open INTEGER NOT NULL,
    closed_at INTEGER,
    closed_by TEXT,
    close_note TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS hijack_findings_open
    ON hijack_findings (ip, kind, subject) WHERE open = 1;
";

impl FindingStore {
    pub fn open(path: &Path) -> Result<FindingStore, StoreError> {
        let fail = |action| {
            let path = path.display().to_string();
            move |source| StoreError {
                path,
                action,
                source,
            }
        };
        let db = Connection::open(path).map_err(fail("open the database"))?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail("use write-ahead logging"))?;
        db.pragma_update(None, "synchronous", "FULL")
            .map_err(fail("make commits durable"))?;
        db.execute_batch(SCHEMA)
            .map_err(fail("create the findings table"))?;
        Ok(FindingStore {
            path: path.to_path_buf(),
            db: Mutex::new(db),
        })
    }

    fn error(&self, action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError {
            path: self.path.display().to_string(),
            action,
            source,
        }
    }

    /// Records a sighting; true when it opened a new finding (the caller alarms on it).
    pub fn record(&self, s: &Sighting<'_>) -> Result<bool, StoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let existing: Option<(i64, String)> = db
            .query_row(
                "SELECT id, severity FROM hijack_findings
                 WHERE ip = ?1 AND kind = ?2 AND subject = ?3 AND open = 1",
                params![s.ip, s.kind, s.subject],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(self.error("read a finding"))?;
        match existing {
            Some((id, severity)) => {
                // A warning that became critical stays critical; the sentence is the latest.
                let worst = if severity == "critical" {
                    "critical"
                } else {
                    s.severity
                };
                db.execute(
                    "UPDATE hijack_findings SET last_seen = ?2, sentence = ?3, severity = ?4
                     WHERE id = ?1",
                    params![id, s.at, s.sentence, worst],
                )
                .map_err(self.error("update a finding"))?;
                Ok(false)
            }
            None => {
                db.execute(
                    "INSERT INTO hijack_findings
                     (ip, owner, kind, subject, severity, sentence, first_seen, last_seen, open)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 1)",
                    params![
                        s.ip, s.owner, s.kind, s.subject, s.severity, s.sentence, s.at
                    ],
                )
                .map_err(self.error("insert a finding"))?;
                Ok(true)
            }
        }
    }

    /// Closes every open finding of `ip`; returns how many.
    pub fn close_all(&self, ip: &str, by: &str, note: &str, at: i64) -> Result<usize, StoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        db.execute(
            "UPDATE hijack_findings SET open = 0, closed_at = ?2, closed_by = ?3, close_note = ?4
             WHERE ip = ?1 AND open = 1",
            params![ip, at, by, note],
        )
        .map_err(self.error("close findings"))
    }

    /// Every finding, open ones first, newest first.
    pub fn all(&self) -> Result<Vec<StoredFinding>, StoreError> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let mut statement = db
            .prepare(
                "SELECT id, ip, owner, kind, subject, severity, sentence, first_seen, last_seen,
                        open, closed_at, closed_by, close_note
                 FROM hijack_findings ORDER BY open DESC, last_seen DESC, id DESC",
            )
            .map_err(self.error("list findings"))?;
        let rows = statement
            .query_map([], |row| {
                Ok(StoredFinding {
                    id: row.get(0)?,
                    ip: row.get(1)?,
                    owner: row.get(2)?,
                    kind: row.get(3)?,
                    subject: row.get(4)?,
                    severity: row.get(5)?,
                    sentence: row.get(6)?,
                    first_seen: row.get(7)?,
                    last_seen: row.get(8)?,
                    open: row.get::<_, i64>(9)? != 0,
                    closed_at: row.get(10)?,
                    closed_by: row.get(11)?,
                    close_note: row.get(12)?,
                })
            })
            .map_err(self.error("list findings"))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(self.error("read findings"))
    }
}
