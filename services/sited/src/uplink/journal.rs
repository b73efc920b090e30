//! The outbox's write-ahead journal: the notifications not yet delivered, on disk before
//! [`Outbox::enqueue`](super::Outbox::enqueue) returns.
//!
//! One append-only file, `uplink-outbox.journal`, of framed records: a 4-byte length, an
//! 8-byte FNV-1a checksum of the payload, the payload (JSON). A record is a queued
//! notification (its sequence number, severity and the alerts it becomes), a drop (the queue
//! limit took that notification) or a delivery mark (everything up to a sequence number
//! arrived). Every append is one `write` and an `fsync`, so a power cut leaves at most the last
//! record torn: opening reads up to the first record that is short or fails its checksum,
//! cuts the file there and says how many bytes it dropped. Only a record that never finished
//! its `fsync` can be in that tail, and its `enqueue` never returned.
//!
//! Delivered and dropped notifications leave dead records behind; once they outnumber the live
//! ones (or nothing is left) the file is rewritten with the live records only, atomically
//! (temporary file, `fsync`, rename, `fsync` of the directory).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use appliance::state::{StateDir, StateError};
use serde::{Deserialize, Serialize};

use super::notification::Alert;

/// The journal's file name in the state directory.
pub const JOURNAL_FILE: &str = "uplink-outbox.journal";

/// Bytes before each payload: length (u32) and checksum (u64), little-endian.
const HEADER_LEN: usize = 12;
/// A payload larger than this is corruption, not a notification.
const MAX_RECORD_LEN: usize = 1 << 20;
/// Dead records tolerated before a rewrite is considered.
const COMPACT_AFTER_DEAD: usize = 256;

/// Why the journal cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use the outbox directory {path}: {source}")]
    Dir { path: PathBuf, source: StateError },
    #[error("cannot read or write the outbox journal {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot rewrite the outbox journal: {0}")]
    Rewrite(#[source] StateError),
}

/// One queued notification: what it becomes at Alertmanager, and its severity for the queue
/// limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Queued {
    pub seq: u64,
    pub severity: String,
    pub alerts: Vec<Alert>,
}

/// How a notification ranks when the queue is full: info goes first, critical never.
fn drop_rank(severity: &str) -> u8 {
    match severity {
        "info" => 0,
        "critical" => 2,
        _ => 1,
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
enum Record {
    Queued(Queued),
    Dropped { seq: u64 },
    Delivered { through: u64 },
}

/// What a full queue did with a new notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Queued, nothing dropped.
    Queued,
    /// Queued; an older notification of this severity was dropped for it.
    QueuedDropping { severity: String },
    /// Not queued: everything queued ranks above it.
    Dropped,
    /// Queued beyond the limit: it is critical and so is everything queued.
    QueuedOverLimit,
}

/// What opening found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Recovery {
    /// Bytes of a torn or corrupt tail that were cut off.
    pub discarded_bytes: u64,
}

/// The journal and the queue it holds.
pub(crate) struct Journal {
    dir: StateDir,
    path: PathBuf,
    file: File,
    live: VecDeque<Queued>,
    /// Records in the file that no longer carry a live notification.
    dead: usize,
    next_seq: u64,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, replays it and cuts a torn tail.
    pub fn open(dir: &Path) -> Result<(Journal, Recovery), JournalError> {
        let state = StateDir::open(dir).map_err(|source| JournalError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(JOURNAL_FILE);
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        // The file may be new: its directory entry must survive a power cut like its records.
        File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let (records, good_len) = parse(&bytes);
        let mut recovery = Recovery::default();
        if good_len < bytes.len() {
            recovery.discarded_bytes = (bytes.len() - good_len) as u64;
            file.set_len(good_len as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let mut journal = Journal {
            dir: state,
            path,
            file,
            live: VecDeque::new(),
            dead: 0,
            next_seq: 1,
        };
        for record in records {
            journal.apply(record);
        }
        Ok((journal, recovery))
    }

    fn apply(&mut self, record: Record) {
        match record {
            Record::Queued(queued) => {
                self.next_seq = self.next_seq.max(queued.seq + 1);
                self.live.push_back(queued);
            }
            Record::Dropped { seq } => {
                self.live.retain(|q| q.seq != seq);
                self.dead += 2;
            }
            Record::Delivered { through } => {
                self.next_seq = self.next_seq.max(through + 1);
                while self.live.front().is_some_and(|q| q.seq <= through) {
                    self.live.pop_front();
                    self.dead += 1;
                }
                self.dead += 1;
            }
        }
    }

    /// Notifications waiting for delivery.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The oldest `max` waiting notifications, in order.
    pub fn front(&self, max: usize) -> Vec<Queued> {
        self.live.iter().take(max).cloned().collect()
    }

    /// Queues a notification of `severity` becoming `alerts`, within `limit` waiting
    /// notifications (see [`Admission`]). On disk and synced when it returns `Ok`; on an
    /// error nothing changed.
    pub fn append(
        &mut self,
        severity: &str,
        alerts: Vec<Alert>,
        limit: usize,
    ) -> Result<Admission, JournalError> {
        let queued = Queued {
            seq: self.next_seq,
            severity: severity.to_owned(),
            alerts,
        };
        let (admission, victim) = self.admit(&queued, limit);
        let mut frame = Vec::new();
        if let Some(victim) = victim {
            encode(&Record::Dropped { seq: victim }, &mut frame);
        }
        if admission != Admission::Dropped {
            encode(&Record::Queued(queued.clone()), &mut frame);
        }
        if frame.is_empty() {
            return Ok(admission);
        }
        self.write(&frame)?;
        if let Some(victim) = victim {
            self.apply(Record::Dropped { seq: victim });
        }
        if admission != Admission::Dropped {
            self.apply(Record::Queued(queued));
        }
        self.compact_if_worth_it()?;
        Ok(admission)
    }

    /// Whether `new` fits, and which waiting notification (by sequence number) makes room.
    fn admit(&self, new: &Queued, limit: usize) -> (Admission, Option<u64>) {
        if self.live.len() < limit {
            return (Admission::Queued, None);
        }
        let new_rank = drop_rank(&new.severity);
        // The oldest of the lowest-ranked droppable notifications.
        let victim = self
            .live
            .iter()
            .filter(|q| drop_rank(&q.severity) < 2)
            .min_by_key(|q| drop_rank(&q.severity));
        match victim {
            Some(v) if drop_rank(&v.severity) <= new_rank => (
                Admission::QueuedDropping {
                    severity: v.severity.clone(),
                },
                Some(v.seq),
            ),
            _ if new_rank < 2 => (Admission::Dropped, None),
            _ => (Admission::QueuedOverLimit, None),
        }
    }

    /// Marks everything up to `through` delivered.
    pub fn delivered(&mut self, through: u64) -> Result<(), JournalError> {
        let mut frame = Vec::new();
        encode(&Record::Delivered { through }, &mut frame);
        self.write(&frame)?;
        self.apply(Record::Delivered { through });
        self.compact_if_worth_it()
    }

    fn write(&mut self, frame: &[u8]) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(frame).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// Rewrites the file with the live records once it is mostly dead (or all dead).
    fn compact_if_worth_it(&mut self) -> Result<(), JournalError> {
        let worth_it = (self.live.is_empty() && self.dead > 0)
            || (self.dead > COMPACT_AFTER_DEAD && self.dead > self.live.len());
        if !worth_it {
            return Ok(());
        }
        let mut bytes = Vec::new();
        for queued in &self.live {
            encode(&Record::Queued(queued.clone()), &mut bytes);
        }
        self.dir
            .write_atomic(JOURNAL_FILE, &bytes)
            .map_err(JournalError::Rewrite)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.dead = 0;
        Ok(())
    }
}

fn encode(record: &Record, out: &mut Vec<u8>) {
    let payload = serde_json::to_vec(record).expect("journal records always encode as JSON");
    let len = u32::try_from(payload.len()).expect("a journal record is far below 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&fnv1a(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// The records of a journal, and how many leading bytes hold whole, intact ones.
fn parse(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some((record, next)) = parse_one(bytes, at) {
        records.push(record);
        at = next;
    }
    (records, at)
}

fn parse_one(bytes: &[u8], at: usize) -> Option<(Record, usize)> {
    let header = bytes.get(at..at + HEADER_LEN)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let sum = u64::from_le_bytes(header[4..].try_into().ok()?);
    if len > MAX_RECORD_LEN {
        return None;
    }
    let start = at + HEADER_LEN;
    let payload = bytes.get(start..start + len)?;
    if fnv1a(payload) != sum {
        return None;
    }
    let record = serde_json::from_slice(payload).ok()?;
    Some((record, start + len))
}

/// FNV-1a, 64 bits: finds torn and zero-filled tails; nobody forges the state directory's
/// journal who could not also rewrite it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
