//! The work a pool hands out, shaped like mainnet's: a random previous-block hash per block, a
//! coinbase with the BIP 34 height push and a pay-to-witness output, a few merkle branches
//! standing in for the block's other transactions, version 0x20000000 and a real nbits. Only the
//! randomness is fake; every share hashed against these jobs goes through the real header.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use minerd::stratum::{Job, Notify};

/// The block version miners see from every pool since BIP 9 (version bits signalling).
const BLOCK_VERSION: u32 = 0x2000_0000;
/// Mainnet's nbits from 2024: a share here is never a block, as on a real pool.
const NBITS: u32 = 0x1703_4219;
/// The subsidy after the 2024 halving, 3.125 BTC, in satoshi.
const SUBSIDY_SAT: u64 = 312_500_000;
/// The first height this pool builds on (it counts up one per block).
const FIRST_HEIGHT: u32 = 870_000;
/// What the pool writes after the height in the coinbase script, as pools tag their blocks.
const COINBASE_TAG: &[u8] = b"/bunkeros-sim/";

/// Builds one job after another: a new block (new prevhash, height + 1, clean) or another job
/// on the same block (new ntime and payout nonce, not clean).
pub struct BlockTemplates {
    extranonce_len: usize,
    height: u32,
    prevhash: [u8; 32],
    merkle_branch: Vec<[u8; 32]>,
    next_job_id: u64,
    job_in_block: u32,
}

impl BlockTemplates {
    /// `extranonce_len` is extranonce1 + extranonce2, which sit inside the coinbase script.
    pub fn new(extranonce_len: usize) -> BlockTemplates {
        let mut templates = BlockTemplates {
            extranonce_len,
            height: FIRST_HEIGHT,
            prevhash: [0; 32],
            merkle_branch: Vec::new(),
            next_job_id: 1,
            job_in_block: 0,
        };
        templates.start_block();
        templates
    }

    /// The first job of a new block: every earlier job becomes stale.
    pub fn new_block(&mut self) -> Arc<Job> {
        self.height += 1;
        self.start_block();
        self.job(true)
    }

    /// The height of the block being built.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Another job on the current block (fresh ntime, another coinbase), earlier ones stay valid.
    pub fn new_job(&mut self) -> Arc<Job> {
        self.job(false)
    }

    fn start_block(&mut self) {
        self.prevhash = random_bytes();
        let branches = random_bytes::<1>()[0] as usize % 4;
        self.merkle_branch = (0..branches).map(|_| random_bytes()).collect();
        self.job_in_block = 0;
    }

    fn job(&mut self, clean_jobs: bool) -> Arc<Job> {
        let job_id = format!("{:x}", self.next_job_id);
        self.next_job_id += 1;
        self.job_in_block += 1;
        let (coinb1, coinb2) = self.coinbase_halves();
        let notify = Notify {
            job_id,
            prevhash: self.prevhash,
            coinb1,
            coinb2,
            merkle_branch: self.merkle_branch.clone(),
            version: BLOCK_VERSION,
            nbits: NBITS,
            ntime: unix_now(),
            clean_jobs,
        };
        Arc::new(Job::new(notify).expect("the pool's own nbits is a valid compact target"))
    }

    /// The coinbase transaction split around the extranonces, which end its input script.
    fn coinbase_halves(&self) -> (Vec<u8>, Vec<u8>) {
        let height_push = bip34_height_push(self.height);
        // The job number in the script makes each job's coinbase (and merkle root) its own.
        let script_len = height_push.len() + COINBASE_TAG.len() + 4 + self.extranonce_len;
        let mut coinb1 = Vec::with_capacity(64);
        coinb1.extend_from_slice(&1u32.to_le_bytes()); // transaction version
        coinb1.push(1); // one input
        coinb1.extend_from_slice(&[0; 32]); // the coinbase input spends nothing
        coinb1.extend_from_slice(&u32::MAX.to_le_bytes());
        coinb1.push(u8::try_from(script_len).expect("coinbase script is under 100 bytes"));
        coinb1.extend_from_slice(&height_push);
        coinb1.extend_from_slice(COINBASE_TAG);
        coinb1.extend_from_slice(&self.job_in_block.to_le_bytes());

        let mut coinb2 = Vec::with_capacity(48);
        coinb2.extend_from_slice(&u32::MAX.to_le_bytes()); // input sequence
        coinb2.push(1); // one output
        coinb2.extend_from_slice(&SUBSIDY_SAT.to_le_bytes());
        let payout: [u8; 20] = random_bytes();
        coinb2.push(22);
        coinb2.extend_from_slice(&[0x00, 0x14]); // P2WPKH: OP_0, push 20 bytes
        coinb2.extend_from_slice(&payout);
        coinb2.extend_from_slice(&0u32.to_le_bytes()); // lock time
        (coinb1, coinb2)
    }
}

/// BIP 34: the coinbase script starts with the block height as a minimal little-endian push.
pub fn bip34_height_push(height: u32) -> Vec<u8> {
    let mut bytes: Vec<u8> = height.to_le_bytes().to_vec();
    while bytes.len() > 1 && bytes.last() == Some(&0) {
        bytes.pop();
    }
    // A set top bit would make the number negative in script: add a zero byte.
    if bytes.last().is_some_and(|b| b & 0x80 != 0) {
        bytes.push(0);
    }
    let mut push = vec![bytes.len() as u8];
    push.extend_from_slice(&bytes);
    push
}

pub fn unix_now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source must work");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn height_push_is_minimal_and_positive() {
        assert_eq!(bip34_height_push(870_001), vec![3, 0x71, 0x46, 0x0d]);
        assert_eq!(bip34_height_push(0x80), vec![2, 0x80, 0x00]);
        assert_eq!(bip34_height_push(1), vec![1, 1]);
    }

    #[test]
    fn a_new_block_is_clean_and_changes_prevhash_and_height() {
        let mut templates = BlockTemplates::new(8);
        let first = templates.new_job();
        let same_block = templates.new_job();
        let next_block = templates.new_block();
        assert!(!first.notify.clean_jobs && !same_block.notify.clean_jobs);
        assert!(next_block.notify.clean_jobs);
        assert_eq!(first.notify.prevhash, same_block.notify.prevhash);
        assert_ne!(first.notify.prevhash, next_block.notify.prevhash);
        assert_ne!(first.notify.coinb1, same_block.notify.coinb1);
        assert_ne!(first.notify.job_id, same_block.notify.job_id);
        // The script length byte counts the height push, tag, job number and the extranonces.
        let script_len = first.notify.coinb1[41] as usize;
        assert_eq!(script_len, first.notify.coinb1.len() - 42 + 8);
        assert_eq!(
            &next_block.notify.coinb1[42..46],
            &bip34_height_push(870_001)[..]
        );
        assert!(next_block.notify.merkle_branch.len() <= 3);
        assert_eq!(first.notify.version, 0x2000_0000);
    }
}
