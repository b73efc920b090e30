//! The miner's hashing, for real: headers built from the pool's job exactly as an ASIC builds
//! them (coinbase with extranonce1 and a rolled extranonce2, merkle root, rolled version bits
//! where the pool granted a mask, nonce), double SHA-256 hashed and checked against the share
//! target. Only the speed is simulated: a miner spends the hashes its hash rate allows.

use std::sync::Arc;

use minerd::stratum::share::sha256d;
use minerd::stratum::target::hash_to_be;
use minerd::stratum::{Job, Submit, Target};

/// Work on one job: where the search is and what it has left to try.
pub struct Work {
    job: Arc<Job>,
    extranonce1: Vec<u8>,
    extranonce2_size: usize,
    extranonce2: u64,
    version_mask: u32,
    /// Counts through the values the mask allows (spread into its bits); 0 when not rolling.
    version_roll: u32,
    target: Target,
    header: [u8; 80],
    next_nonce: u64,
}

impl Work {
    /// `None` for a difficulty that gives no target (not finite and positive).
    pub fn new(
        job: Arc<Job>,
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
        difficulty: f64,
        version_mask: Option<u32>,
    ) -> Option<Work> {
        let target = Target::from_difficulty(difficulty)?;
        let version_mask = version_mask.unwrap_or(0);
        let mut work = Work {
            job,
            extranonce1,
            extranonce2_size,
            extranonce2: 0,
            version_mask,
            // Start at 1 so that a granted mask really changes the header version.
            version_roll: u32::from(version_mask != 0),
            target,
            header: [0; 80],
            next_nonce: 0,
        };
        work.build_header();
        Some(work)
    }

    /// Hashes `count` nonces and returns the shares that meet the target, ready to submit.
    pub fn search(&mut self, worker: &str, count: u64) -> Vec<Submit> {
        let mut found = Vec::new();
        for _ in 0..count {
            if self.next_nonce > u64::from(u32::MAX) {
                self.next_header();
            }
            let nonce = self.next_nonce as u32;
            self.next_nonce += 1;
            self.header[76..80].copy_from_slice(&nonce.to_le_bytes());
            if self.target.is_met_by(&hash_to_be(&sha256d(&self.header))) {
                found.push(self.share(worker, nonce));
            }
        }
        found
    }

    /// Moves to an untried header: rolls the version bits, or when they are exhausted (or not
    /// granted) the extranonce2. Each (extranonce2, version) pair gets the whole nonce range.
    pub fn next_header(&mut self) {
        let values = 1u64 << self.version_mask.count_ones();
        if self.version_mask != 0 && u64::from(self.version_roll) + 1 < values {
            self.version_roll += 1;
        } else {
            self.version_roll = u32::from(self.version_mask != 0);
            self.extranonce2 += 1;
        }
        self.build_header();
    }

    fn build_header(&mut self) {
        let coinbase = self
            .job
            .coinbase(&self.extranonce1, &self.extranonce2_bytes());
        let root = self.job.merkle_root(&coinbase);
        let version = (self.job.notify.version & !self.version_mask) | self.version_bits();
        self.header = self.job.header(&root, version, self.job.notify.ntime, 0);
        self.next_nonce = 0;
    }

    fn version_bits(&self) -> u32 {
        spread_into_mask(self.version_roll, self.version_mask)
    }

    /// The counter as `extranonce2_size` big-endian bytes (wrapping when it is shorter).
    fn extranonce2_bytes(&self) -> Vec<u8> {
        let bytes = self.extranonce2.to_be_bytes();
        let size = self.extranonce2_size;
        if size <= 8 {
            bytes[8 - size..].to_vec()
        } else {
            let mut padded = vec![0; size - 8];
            padded.extend_from_slice(&bytes);
            padded
        }
    }

    fn share(&self, worker: &str, nonce: u32) -> Submit {
        Submit {
            worker: worker.to_string(),
            job_id: self.job.notify.job_id.clone(),
            extranonce2: self.extranonce2_bytes(),
            ntime: self.job.notify.ntime,
            nonce,
            version_bits: (self.version_mask != 0).then(|| self.version_bits()),
        }
    }
}

/// Puts the low bits of `value` into the set bits of `mask`, lowest first.
fn spread_into_mask(mut value: u32, mask: u32) -> u32 {
    let mut out = 0;
    for bit in 0..32 {
        if mask & (1 << bit) != 0 {
            out |= (value & 1) << bit;
            value >>= 1;
        }
    }
    out
}

#[cfg(test)]
#[path = "share_search_tests.rs"]
mod tests;
