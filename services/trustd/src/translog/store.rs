//! The log on disk: one append-only file in trustd's state directory.
//!
//! The log is evidence, so its file is never rewritten, only appended to. It is the one state
//! file that does not go through [`StateDir::write_atomic`]: rewriting a growing log on every
//! issuance would cost O(n) per certificate, and appending with a flush is just as durable. The
//! file is a header and self-checking records ([`super::record`]).
//!
//! **Crash and corruption.** [`LogStore::append`] returns only after the record is flushed
//! (`fdatasync`): an acknowledged entry survives a power cut. A crash mid-append can only leave
//! the last record incomplete (or, on some file systems, a tail of never-written zero bytes); that
//! record was never acknowledged, so [`LogStore::open`] cuts it off and reports it
//! ([`LogStore::torn_tail`]). Anything else — a damaged length, a hash that does not match its
//! entry, an entry that does not decode — is [`StoreError::Corrupt`] and the log does not open:
//! repairing evidence automatically would hide exactly what the log exists to expose. A complete
//! record that was written but not acknowledged (crash between the write and the reply) stays in
//! the log; the issuing code must treat the log as the authority on which certificates exist.
//!
//! The whole file is read and every hash recomputed at open (about 1 GB/s of SHA-256), then only
//! leaf hashes and record offsets stay in memory (some 72 bytes per entry). Entries are read back
//! from disk on demand. An exclusive `flock` keeps a second process from appending concurrently.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use appliance::state::{FILE_MODE, StateDir};
use thiserror::Error;

use super::bundle::{EntryInclusion, HeadConsistency, ProofBundle};
use super::entry::LogEntry;
use super::merkle::{MerkleHash, MerkleTree, leaf_hash};
use super::proof::ProofError;
use super::record::{
    FILE_HEADER_LEN, FILE_MAGIC, RECORD_HASH_LEN, RECORD_HEADER_LEN, decode_record_header,
    encode_record,
};
use super::tree_head::{SignedTreeHead, TreeHead};

/// Name of the log file in the state directory.
pub const LOG_FILE: &str = "transparency-log";

/// Read buffer for the load at open.
const SCAN_BUFFER: usize = 1 << 20;

/// Why the log could not be opened, read or appended to.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The operating system refused an operation on the log file.
    #[error("transparency log {}: cannot {op}: {source}", path.display())]
    Io {
        /// The log file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// What the operating system said.
        source: io::Error,
    },
    /// Another process (a second trustd) holds the log.
    #[error("transparency log {} is held by another process", path.display())]
    Locked {
        /// The log file.
        path: PathBuf,
    },
    /// The file is not a transparency log of a format this build reads.
    #[error("{} is not a transparency log this build reads (its header is {header})", path.display())]
    NotALog {
        /// The file.
        path: PathBuf,
        /// The file's first bytes, in hex.
        header: String,
    },
    /// The log is damaged somewhere other than a torn last record.
    #[error(
        "transparency log {} is damaged at byte {offset} (entry {index}): {reason}; the log is \
         evidence and is never repaired automatically: restore it from a backup",
        path.display()
    )]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// Index the damaged record has (or would have).
        index: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An earlier append failed; the file's state is no longer known for certain.
    #[error(
        "an earlier write to transparency log {} failed; restart trustd so the log is checked \
         again before anything else is appended",
        path.display()
    )]
    Poisoned {
        /// The log file.
        path: PathBuf,
    },
    /// An entry index past the end of the log.
    #[error("the log has {size} entries; there is no entry {index}")]
    NoSuchEntry {
        /// Index asked for.
        index: u64,
        /// Entries in the log.
        size: u64,
    },
    /// A tree head that this log does not contain (lost entries, or a head from another log).
    #[error(
        "the log ({log_size} entries) does not contain the tree head of size {head_size}: {reason}"
    )]
    HeadNotInLog {
        /// Size of the head.
        head_size: u64,
        /// Size of the log.
        log_size: u64,
        /// What differs.
        reason: &'static str,
    },
    /// A proof was asked for sizes or indexes the log cannot prove.
    #[error(transparent)]
    Proof(#[from] ProofError),
}

/// A torn last record found and removed at open (it was never acknowledged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TornTail {
    /// Where the torn record started; the file now ends here.
    pub offset: u64,
    /// How many bytes were cut off.
    pub bytes: u64,
}

/// The transparency log, loaded and open for appending.
#[derive(Debug)]
pub struct LogStore {
    path: PathBuf,
    file: File,
    tree: MerkleTree,
    /// Start of each record in the file, by entry index.
    offsets: Vec<u64>,
    /// End of the last acknowledged record: where the next one goes.
    end: u64,
    torn_tail: Option<TornTail>,
    poisoned: bool,
}

impl LogStore {
    /// Opens (creating if needed) the log in `state`, checks every record, and cuts off a torn
    /// last record.
    pub fn open(state: &StateDir) -> Result<Self, StoreError> {
        let path = state.path().join(LOG_FILE);
        let io_error = |op| {
            let path = path.clone();
            move |source| StoreError::Io { path, op, source }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(io_error("open"))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(StoreError::Locked { path }),
            Err(TryLockError::Error(source)) => return Err(io_error("lock")(source)),
        }
        let mut store = Self {
            path,
            file,
            tree: MerkleTree::new(),
            offsets: Vec::new(),
            end: FILE_HEADER_LEN,
            torn_tail: None,
            poisoned: false,
        };
        store.check_or_write_header(state.path())?;
        store.load()?;
        Ok(store)
    }

    /// Number of entries.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Root of the whole log.
    pub fn root(&self) -> MerkleHash {
        self.tree.root()
    }

    /// The Merkle tree over the log's entries, for roots at past sizes and for proofs.
    pub fn tree(&self) -> &MerkleTree {
        &self.tree
    }

    /// The torn record removed when the log was opened, if there was one.
    pub fn torn_tail(&self) -> Option<TornTail> {
        self.torn_tail
    }

    /// The log's current head, stamped `timestamp_ms`, ready to be signed.
    pub fn tree_head(&self, timestamp_ms: u64) -> TreeHead {
        TreeHead {
            size: self.size(),
            root: self.root(),
            timestamp_ms,
        }
    }

    /// Appends `entry` and returns its index once it is on disk.
    ///
    /// After a failed write or flush the store refuses further appends
    /// ([`StoreError::Poisoned`]): a failed `fsync` leaves the file's content unknown, and only a
    /// fresh [`LogStore::open`] re-establishes it.
    pub fn append(&mut self, entry: &LogEntry) -> Result<u64, StoreError> {
        if self.poisoned {
            return Err(StoreError::Poisoned {
                path: self.path.clone(),
            });
        }
        let leaf = entry.encode();
        let hash = leaf_hash(&leaf);
        let record = encode_record(&leaf, &hash);
        let written = self
            .file
            .write_all_at(&record, self.end)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            self.poisoned = true;
            // Best effort, so the next open does not meet a partial record; it judges anyway.
            let _ = self
                .file
                .set_len(self.end)
                .and_then(|()| self.file.sync_all());
            return Err(self.io_error("append", source));
        }
        self.offsets.push(self.end);
        self.end += record.len() as u64;
        Ok(self.tree.push(hash))
    }

    /// Reads entry `index` back from disk, checking it against its leaf hash in memory.
    pub fn entry(&self, index: u64) -> Result<LogEntry, StoreError> {
        let position = usize::try_from(index)
            .ok()
            .filter(|position| *position < self.offsets.len())
            .ok_or(StoreError::NoSuchEntry {
                index,
                size: self.size(),
            })?;
        let offset = self.offsets[position];
        let next = self.offsets.get(position + 1).copied().unwrap_or(self.end);
        let mut record = vec![0u8; (next - offset) as usize];
        self.file
            .read_exact_at(&mut record, offset)
            .map_err(|source| self.io_error("read an entry", source))?;
        let corrupt = |reason: &str| self.corrupt(offset, index, reason);
        let (header, rest) = record.split_at(RECORD_HEADER_LEN as usize);
        let len = decode_record_header(header).ok_or_else(|| corrupt("damaged record length"))?;
        if rest.len() != len as usize + RECORD_HASH_LEN as usize {
            return Err(corrupt(
                "the record length changed since the log was opened",
            ));
        }
        let leaf = &rest[..len as usize];
        if Some(&leaf_hash(leaf)) != self.tree.leaf_hash(index) {
            return Err(corrupt(
                "the entry changed on disk since the log was opened",
            ));
        }
        LogEntry::decode(leaf).map_err(|e| corrupt(&e.to_string()))
    }

    /// Checks that this log contains `head`: it has at least `head.size` entries and its root at
    /// that size is `head.root`.
    ///
    /// trustd calls this at start with the last tree head it signed, which catches what the file
    /// alone cannot show: acknowledged entries lost at the tail, or a log swapped for another.
    pub fn confirm_tree_head(&self, head: &TreeHead) -> Result<(), StoreError> {
        let reason = match self.tree.root_at(head.size) {
            None => "the log is shorter than the head",
            Some(root) if root != head.root => "the log's root at that size differs",
            Some(_) => return Ok(()),
        };
        Err(StoreError::HeadNotInLog {
            head_size: head.size,
            log_size: self.size(),
            reason,
        })
    }

    /// Assembles the proof bundle for `tree_head` (which must be a head of this log): the
    /// inclusion of entry `entry_index` and the consistency from `old_tree_head`, each if asked.
    ///
    /// An old head this log does not contain is refused with [`StoreError::HeadNotInLog`]: that
    /// is a client holding evidence of a fork, and it must be told so, not handed a proof.
    pub fn proof_bundle(
        &self,
        tree_head: &SignedTreeHead,
        entry_index: Option<u64>,
        old_tree_head: Option<&SignedTreeHead>,
    ) -> Result<ProofBundle, StoreError> {
        let size = tree_head.head.size;
        self.confirm_tree_head(&tree_head.head)?;
        let inclusion = entry_index
            .map(|index| -> Result<_, StoreError> {
                let proof = self.tree.inclusion_proof(index, size)?;
                Ok(EntryInclusion {
                    index,
                    entry: self.entry(index)?,
                    path: proof.path,
                })
            })
            .transpose()?;
        let consistency = old_tree_head
            .map(|old| -> Result<_, StoreError> {
                self.confirm_tree_head(&old.head)?;
                let proof = self.tree.consistency_proof(old.head.size, size)?;
                Ok(HeadConsistency {
                    old_tree_head: old.clone(),
                    path: proof.path,
                })
            })
            .transpose()?;
        Ok(ProofBundle {
            tree_head: tree_head.clone(),
            inclusion,
            consistency,
        })
    }

    /// Writes the file header into a new (or never completed) file, or checks an existing one.
    fn check_or_write_header(&mut self, dir: &Path) -> Result<(), StoreError> {
        let len = self.file_len()?;
        let mut header = vec![0u8; len.min(FILE_HEADER_LEN) as usize];
        self.file
            .read_exact_at(&mut header, 0)
            .map_err(|source| self.io_error("read the header", source))?;
        if len >= FILE_HEADER_LEN {
            return if header == FILE_MAGIC {
                Ok(())
            } else {
                Err(self.not_a_log(&header))
            };
        }
        // Shorter than a header: created, but the header never reached the disk in full.
        if !FILE_MAGIC.starts_with(&header) && header.iter().any(|byte| *byte != 0) {
            return Err(self.not_a_log(&header));
        }
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(FILE_MAGIC, 0))
            .and_then(|()| self.file.sync_all())
            .and_then(|()| File::open(dir)?.sync_all())
            .map_err(|source| self.io_error("write the header", source))
    }

    /// Reads every record, checks it, and keeps its hash and offset; cuts off a torn tail.
    fn load(&mut self) -> Result<(), StoreError> {
        let file_len = self.file_len()?;
        let mut reader = BufReader::with_capacity(SCAN_BUFFER, &self.file);
        let read_error = |source| StoreError::Io {
            path: self.path.clone(),
            op: "read the log",
            source,
        };
        reader
            .seek(SeekFrom::Start(FILE_HEADER_LEN))
            .map_err(read_error)?;
        let mut pos = FILE_HEADER_LEN;
        let mut leaf = Vec::new();
        let mut hashes = Vec::new();
        let mut offsets = Vec::new();
        while pos < file_len {
            let index = hashes.len() as u64;
            let remaining = file_len - pos;
            if remaining < RECORD_HEADER_LEN {
                break;
            }
            let mut header = [0u8; RECORD_HEADER_LEN as usize];
            reader.read_exact(&mut header).map_err(read_error)?;
            let Some(len) = decode_record_header(&header) else {
                if self.is_zero_from(pos, file_len)? {
                    break;
                }
                return Err(self.corrupt(pos, index, "damaged record length"));
            };
            let record_len = RECORD_HEADER_LEN + u64::from(len) + RECORD_HASH_LEN;
            if remaining < record_len {
                break;
            }
            leaf.resize(len as usize, 0);
            reader.read_exact(&mut leaf).map_err(read_error)?;
            let mut stored = [0u8; RECORD_HASH_LEN as usize];
            reader.read_exact(&mut stored).map_err(read_error)?;
            let computed = leaf_hash(&leaf);
            if computed != stored {
                return Err(self.corrupt(pos, index, "the stored hash does not match the entry"));
            }
            LogEntry::decode(&leaf).map_err(|e| self.corrupt(pos, index, &e.to_string()))?;
            hashes.push(computed);
            offsets.push(pos);
            pos += record_len;
        }
        drop(reader);
        self.tree = MerkleTree::from_leaf_hashes(hashes);
        self.offsets = offsets;
        self.end = pos;
        if pos < file_len {
            self.cut_torn_tail(pos, file_len)?;
        }
        Ok(())
    }

    /// Removes the unacknowledged bytes after the last complete record, durably.
    fn cut_torn_tail(&mut self, offset: u64, file_len: u64) -> Result<(), StoreError> {
        self.file
            .set_len(offset)
            .and_then(|()| self.file.sync_all())
            .map_err(|source| self.io_error("cut off a torn record", source))?;
        let bytes = file_len - offset;
        tracing::warn!(
            log = %self.path.display(),
            offset,
            bytes,
            "removed a torn last record from the transparency log (a write cut short by a crash; \
             it was never acknowledged)"
        );
        self.torn_tail = Some(TornTail { offset, bytes });
        Ok(())
    }

    /// Whether every byte from `offset` to the end is zero: space a crash allocated but never
    /// wrote, not a record.
    fn is_zero_from(&self, offset: u64, file_len: u64) -> Result<bool, StoreError> {
        let mut chunk = vec![0u8; SCAN_BUFFER];
        let mut pos = offset;
        while pos < file_len {
            let take = (file_len - pos).min(SCAN_BUFFER as u64) as usize;
            self.file
                .read_exact_at(&mut chunk[..take], pos)
                .map_err(|source| self.io_error("read the log", source))?;
            if chunk[..take].iter().any(|byte| *byte != 0) {
                return Ok(false);
            }
            pos += take as u64;
        }
        Ok(true)
    }

    fn file_len(&self) -> Result<u64, StoreError> {
        self.file
            .metadata()
            .map(|metadata| metadata.len())
            .map_err(|source| self.io_error("read the file size", source))
    }

    fn io_error(&self, op: &'static str, source: io::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn corrupt(&self, offset: u64, index: u64, reason: &str) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            offset,
            index,
            reason: reason.to_string(),
        }
    }

    fn not_a_log(&self, header: &[u8]) -> StoreError {
        StoreError::NotALog {
            path: self.path.clone(),
            header: hex::encode(header),
        }
    }
}
