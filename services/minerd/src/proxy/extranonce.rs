//! Extranonce partitioning: many miners share one upstream connection by splitting the
//! upstream's extranonce2 space. Each miner gets a distinct prefix of `prefix_size` bytes; its
//! extranonce1 is the upstream's extranonce1 followed by that prefix, and it rolls only the
//! remaining extranonce2 bytes. The coinbase a miner hashes is then byte for byte the one the
//! pool rebuilds from (upstream extranonce1, prefix ‖ miner extranonce2), so no two miners on
//! one connection can ever search the same space, and the proxy forwards shares unchanged.

/// Why a partition cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error(
        "the pool's extranonce2 of {upstream} bytes leaves nothing for miners after a {prefix}-byte prefix"
    )]
    TooSmall { upstream: usize, prefix: usize },
}

/// The prefixes of one upstream connection, handed out and taken back as miners come and go.
#[derive(Debug)]
pub struct ExtranoncePartition {
    prefix_size: usize,
    miner_extranonce2_size: usize,
    capacity: usize,
    /// Prefixes never handed out are `next..capacity`; returned ones are reused first.
    next: usize,
    free: Vec<u32>,
}

impl ExtranoncePartition {
    /// Splits an upstream extranonce2 of `upstream_size` bytes for at most `max_miners`
    /// miners. Miners keep at least 2 bytes of extranonce2 (65,536 coinbases, each a full
    /// nonce × version-rolling space, lasts any ASIC well past the next job).
    pub fn new(
        upstream_size: usize,
        prefix_size: usize,
        max_miners: usize,
    ) -> Result<Self, PartitionError> {
        let prefix_size = prefix_size.min(4);
        if upstream_size < prefix_size + 2 {
            return Err(PartitionError::TooSmall {
                upstream: upstream_size,
                prefix: prefix_size,
            });
        }
        let space = 1usize << (8 * prefix_size);
        Ok(ExtranoncePartition {
            prefix_size,
            miner_extranonce2_size: upstream_size - prefix_size,
            capacity: max_miners.min(space),
            next: 0,
            free: Vec::new(),
        })
    }

    /// The extranonce2 size each miner is told.
    pub fn miner_extranonce2_size(&self) -> usize {
        self.miner_extranonce2_size
    }

    /// Prefixes in use.
    pub fn in_use(&self) -> usize {
        self.next - self.free.len()
    }

    pub fn is_full(&self) -> bool {
        self.in_use() >= self.capacity
    }

    /// A prefix no other miner on this connection holds, or `None` when all are taken.
    pub fn allocate(&mut self) -> Option<Vec<u8>> {
        let index = match self.free.pop() {
            Some(index) => index,
            None if self.next < self.capacity => {
                self.next += 1;
                (self.next - 1) as u32
            }
            None => return None,
        };
        Some(self.encode(index))
    }

    /// Returns a prefix; a prefix this partition did not hand out is ignored.
    pub fn release(&mut self, prefix: &[u8]) {
        if prefix.len() != self.prefix_size {
            return;
        }
        let index = prefix.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32);
        if (index as usize) < self.next && !self.free.contains(&index) {
            self.free.push(index);
        }
    }

    fn encode(&self, index: u32) -> Vec<u8> {
        index.to_be_bytes()[4 - self.prefix_size..].to_vec()
    }
}

#[cfg(test)]
#[path = "extranonce_tests.rs"]
mod tests;
