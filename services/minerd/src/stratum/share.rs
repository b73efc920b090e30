//! Share validation: the proxy rebuilds the block header a miner hashed, exactly as the miner
//! built it from the job, and checks the double SHA-256 against the share target before it
//! forwards or counts anything. A miner's claim is never trusted: a share that does not hash
//! below the target, belongs to no current job, rolls version bits outside the negotiated mask,
//! carries an ntime far from the job's, or repeats an earlier share is rejected with the
//! Stratum error code the miner expects.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::message::{Notify, StratumErrorCode, Submit};
use super::target::{Target, hash_to_be};

/// Jobs kept per session. Pools send a new job every 30–60 s and clean them on each new block;
/// 16 covers a miner that is several minutes late without unbounded memory.
const MAX_JOBS: usize = 16;

/// How far a submitted ntime may lie from the job's ntime, in seconds. Miners roll ntime
/// forward; bitcoin refuses headers more than 2 h ahead of network time, so a share beyond that
/// could never be part of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtimeWindow {
    pub before: u32,
    pub after: u32,
}

impl Default for NtimeWindow {
    fn default() -> Self {
        NtimeWindow {
            before: 0,
            after: 7200,
        }
    }
}

/// A job ready for validation: the notify fields and the network target its nbits encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub notify: Notify,
    pub network_target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("nbits {0:08x} is not a valid compact target")]
    BadNbits(u32),
}

impl Job {
    pub fn new(notify: Notify) -> Result<Job, JobError> {
        let network_target =
            Target::from_nbits(notify.nbits).ok_or(JobError::BadNbits(notify.nbits))?;
        Ok(Job {
            notify,
            network_target,
        })
    }

    /// The coinbase transaction: coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2.
    pub fn coinbase(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Vec<u8> {
        let n = &self.notify;
        let mut tx = Vec::with_capacity(
            n.coinb1.len() + extranonce1.len() + extranonce2.len() + n.coinb2.len(),
        );
        tx.extend_from_slice(&n.coinb1);
        tx.extend_from_slice(extranonce1);
        tx.extend_from_slice(extranonce2);
        tx.extend_from_slice(&n.coinb2);
        tx
    }

    /// The merkle root: the coinbase's txid hashed up the branch, the coinbase always on the
    /// left (it is the first transaction). Internal byte order, as it goes into the header.
    pub fn merkle_root(&self, coinbase: &[u8]) -> [u8; 32] {
        let mut root = sha256d(coinbase);
        let mut pair = [0u8; 64];
        for sibling in &self.notify.merkle_branch {
            pair[..32].copy_from_slice(&root);
            pair[32..].copy_from_slice(sibling);
            root = sha256d(&pair);
        }
        root
    }

    /// The 80-byte header as miners build it: version, nbits, ntime and nonce little-endian;
    /// the prevhash Stratum sends as eight 4-byte words each byte-swapped, so every word is
    /// reversed back to the internal order.
    pub fn header(&self, merkle_root: &[u8; 32], version: u32, ntime: u32, nonce: u32) -> [u8; 80] {
        let mut header = [0u8; 80];
        header[0..4].copy_from_slice(&version.to_le_bytes());
        for (i, word) in self.notify.prevhash.chunks_exact(4).enumerate() {
            let at = 4 + 4 * i;
            header[at..at + 4].copy_from_slice(&[word[3], word[2], word[1], word[0]]);
        }
        header[36..68].copy_from_slice(merkle_root);
        header[68..72].copy_from_slice(&ntime.to_le_bytes());
        header[72..76].copy_from_slice(&self.notify.nbits.to_le_bytes());
        header[76..80].copy_from_slice(&nonce.to_le_bytes());
        header
    }
}

/// Double SHA-256, bitcoin's hash.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// A share that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareAccepted {
    /// The header's double SHA-256, as bitcoin stores it (displayed reversed).
    pub hash: [u8; 32],
    pub header: [u8; 80],
    /// The difficulty the hash achieves (≥ the session's), for accounting.
    pub achieved_difficulty: f64,
    /// The hash also meets the network target: a block, to be forwarded at once.
    pub is_block: bool,
}

/// Why a share was refused; `code()` gives the Stratum error sent back.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ShareReject {
    #[error("not subscribed")]
    NotSubscribed,
    #[error("worker {0:?} is not authorized")]
    Unauthorized(String),
    #[error("job {0:?} not found")]
    JobNotFound(String),
    #[error("job {0:?} is stale")]
    StaleJob(String),
    #[error("extranonce2 of {got} bytes, {expected} negotiated")]
    Extranonce2Size { expected: usize, got: usize },
    #[error("ntime {ntime:08x} outside the window around the job's {job_ntime:08x}")]
    NtimeOutOfRange { ntime: u32, job_ntime: u32 },
    #[error("version bits {bits:08x} outside the negotiated mask {mask:08x}")]
    VersionBitsOutsideMask { bits: u32, mask: u32 },
    #[error("duplicate share")]
    Duplicate,
    #[error("hash achieves difficulty {achieved}, below the share target")]
    LowDifficulty { achieved: f64 },
}

impl ShareReject {
    pub fn code(&self) -> StratumErrorCode {
        match self {
            Self::NotSubscribed => StratumErrorCode::NotSubscribed,
            Self::Unauthorized(_) => StratumErrorCode::UnauthorizedWorker,
            Self::JobNotFound(_) | Self::StaleJob(_) => StratumErrorCode::JobNotFound,
            Self::Duplicate => StratumErrorCode::DuplicateShare,
            Self::LowDifficulty { .. } => StratumErrorCode::LowDifficulty,
            Self::Extranonce2Size { .. }
            | Self::NtimeOutOfRange { .. }
            | Self::VersionBitsOutsideMask { .. } => StratumErrorCode::Other,
        }
    }
}

/// What makes two submissions the same share (the job is implied by the set they are kept in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ShareKey {
    extranonce2: Vec<u8>,
    ntime: u32,
    nonce: u32,
    version: u32,
}

struct JobEntry {
    job: Arc<Job>,
    seen: HashSet<ShareKey>,
}

/// One miner's Stratum session as far as validation needs it: its extranonce1, the workers it
/// authorized, the version mask and difficulty in force, and the jobs it may still submit to.
pub struct Session {
    subscription: Option<(Vec<u8>, usize)>,
    authorized: HashSet<String>,
    version_mask: u32,
    target: Target,
    ntime_window: NtimeWindow,
    jobs: VecDeque<JobEntry>,
    stale: VecDeque<String>,
}

impl Session {
    /// A session before subscription, at difficulty 1 and without version rolling.
    pub fn new(ntime_window: NtimeWindow) -> Session {
        Session {
            subscription: None,
            authorized: HashSet::new(),
            version_mask: 0,
            target: super::target::DIFF1,
            ntime_window,
            jobs: VecDeque::new(),
            stale: VecDeque::new(),
        }
    }

    pub fn subscribe(&mut self, extranonce1: Vec<u8>, extranonce2_size: usize) {
        self.subscription = Some((extranonce1, extranonce2_size));
    }

    pub fn authorize(&mut self, worker: &str) {
        self.authorized.insert(worker.to_string());
    }

    /// The BIP 310 mask granted to the miner; bits outside it must stay as the job has them.
    pub fn set_version_mask(&mut self, mask: u32) {
        self.version_mask = mask;
    }

    /// Sets the share difficulty; `false` (and no change) for one that is not finite and positive.
    pub fn set_difficulty(&mut self, difficulty: f64) -> bool {
        match Target::from_difficulty(difficulty) {
            Some(target) => {
                self.target = target;
                true
            }
            None => false,
        }
    }

    /// Adds a job. A clean job makes every earlier job stale (a new block was found).
    pub fn add_job(&mut self, job: Arc<Job>) {
        if job.notify.clean_jobs {
            while let Some(old) = self.jobs.pop_front() {
                self.mark_stale(old.job.notify.job_id.clone());
            }
        }
        self.jobs
            .retain(|e| e.job.notify.job_id != job.notify.job_id);
        if self.jobs.len() == MAX_JOBS
            && let Some(old) = self.jobs.pop_front()
        {
            self.mark_stale(old.job.notify.job_id.clone());
        }
        self.stale.retain(|id| *id != job.notify.job_id);
        self.jobs.push_back(JobEntry {
            job,
            seen: HashSet::new(),
        });
    }

    fn mark_stale(&mut self, job_id: String) {
        if self.stale.len() == MAX_JOBS {
            self.stale.pop_front();
        }
        self.stale.push_back(job_id);
    }

    /// Validates one share and, if accepted, remembers it so a resubmission is a duplicate.
    pub fn submit(&mut self, share: &Submit) -> Result<ShareAccepted, ShareReject> {
        let (extranonce1, extranonce2_size) = self
            .subscription
            .as_ref()
            .ok_or(ShareReject::NotSubscribed)?;
        if !self.authorized.contains(&share.worker) {
            return Err(ShareReject::Unauthorized(share.worker.clone()));
        }
        let Some(entry) = self
            .jobs
            .iter_mut()
            .find(|e| e.job.notify.job_id == share.job_id)
        else {
            return Err(if self.stale.contains(&share.job_id) {
                ShareReject::StaleJob(share.job_id.clone())
            } else {
                ShareReject::JobNotFound(share.job_id.clone())
            });
        };
        if share.extranonce2.len() != *extranonce2_size {
            return Err(ShareReject::Extranonce2Size {
                expected: *extranonce2_size,
                got: share.extranonce2.len(),
            });
        }
        let job = &entry.job;
        let job_ntime = job.notify.ntime;
        let earliest = job_ntime.saturating_sub(self.ntime_window.before);
        let latest = job_ntime.saturating_add(self.ntime_window.after);
        if share.ntime < earliest || share.ntime > latest {
            return Err(ShareReject::NtimeOutOfRange {
                ntime: share.ntime,
                job_ntime,
            });
        }
        let version = rolled_version(job.notify.version, share.version_bits, self.version_mask)?;
        let key = ShareKey {
            extranonce2: share.extranonce2.clone(),
            ntime: share.ntime,
            nonce: share.nonce,
            version,
        };
        if entry.seen.contains(&key) {
            return Err(ShareReject::Duplicate);
        }
        let coinbase = job.coinbase(extranonce1, &share.extranonce2);
        let header = job.header(
            &job.merkle_root(&coinbase),
            version,
            share.ntime,
            share.nonce,
        );
        let hash = sha256d(&header);
        let hash_be = hash_to_be(&hash);
        let achieved_difficulty = Target::difficulty_of(&hash_be);
        if !self.target.is_met_by(&hash_be) {
            return Err(ShareReject::LowDifficulty {
                achieved: achieved_difficulty,
            });
        }
        let is_block = job.network_target.is_met_by(&hash_be);
        entry.seen.insert(key);
        Ok(ShareAccepted {
            hash,
            header,
            achieved_difficulty,
            is_block,
        })
    }
}

/// BIP 310: the header version is the job's with the bits under the mask replaced by the
/// miner's. Bits outside the mask are refused rather than ignored: a miner setting them is
/// misconfigured or hashing a header the pool would not accept.
fn rolled_version(job_version: u32, bits: Option<u32>, mask: u32) -> Result<u32, ShareReject> {
    let Some(bits) = bits else {
        return Ok(job_version);
    };
    if bits & !mask != 0 {
        return Err(ShareReject::VersionBitsOutsideMask { bits, mask });
    }
    Ok((job_version & !mask) | (bits & mask))
}

#[cfg(test)]
#[path = "share_tests.rs"]
mod tests;
