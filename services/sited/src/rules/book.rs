//! The alarm book: what must survive a `kill -9` (active and listed alarms with their
//! acknowledgements and escalation steps, the silences), as a versioned JSON document written
//! with [`appliance::state`]'s atomic write.
//!
//! Rule conditions are not saved: after a restart a rule whose alarm is active starts active
//! (so it clears only when its sensor says so), holds and rate windows start afresh, and a
//! lost-sensor rule gives its sensor `stale_after` from the restart.

use appliance::state::{StateDir, StateError};
use serde::{Deserialize, Serialize};

use super::alarm::{Alarm, Silence};

/// The state file's name in sited's state directory.
pub const BOOK_FILE: &str = "alarms.json";

/// The document's version; a newer one is refused rather than half read.
pub const BOOK_VERSION: u32 = 1;

/// Alarms and silences, as saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmBook {
    pub version: u32,
    /// Active alarms, and cleared critical ones waiting for acknowledgement; in raise order.
    pub alarms: Vec<Alarm>,
    pub silences: Vec<Silence>,
    /// The id the next silence gets (ids are never reused, so a log line names one silence).
    pub next_silence_id: u64,
}

impl Default for AlarmBook {
    fn default() -> AlarmBook {
        AlarmBook {
            version: BOOK_VERSION,
            alarms: Vec::new(),
            silences: Vec::new(),
            next_silence_id: 1,
        }
    }
}

/// Why the book could not be saved or read.
#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{BOOK_FILE} has version {}; this sited reads version {BOOK_VERSION}", .found.map_or("none".to_string(), |v| v.to_string()))]
    Version { found: Option<u64> },
    #[error("cannot read {}: {source}", path.display())]
    Decode {
        path: std::path::PathBuf,
        source: serde_json::Error,
    },
}

impl AlarmBook {
    /// Replaces the saved book, atomically and durably.
    pub fn save(&self, dir: &StateDir) -> Result<(), BookError> {
        Ok(dir.write_json(BOOK_FILE, self)?)
    }

    /// The saved book, or `None` if none was ever saved.
    pub fn load(dir: &StateDir) -> Result<Option<AlarmBook>, BookError> {
        // The version is read first, so a newer document is refused for its version rather
        // than for the first field this sited does not know.
        let Some(document) = dir.read_json::<serde_json::Value>(BOOK_FILE)? else {
            return Ok(None);
        };
        let found = document.get("version").and_then(serde_json::Value::as_u64);
        if found != Some(u64::from(BOOK_VERSION)) {
            return Err(BookError::Version { found });
        }
        serde_json::from_value(document)
            .map(Some)
            .map_err(|source| BookError::Decode {
                path: dir.path().join(BOOK_FILE),
                source,
            })
    }
}
