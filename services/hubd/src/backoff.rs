//! [`Backoff`]: pauses that double from a first to a longest one while attempts keep failing,
//! each ±25 % so that the hubs of a site do not all try again at the same instant. The link
//! supervisor redials with it (100 ms to 5 s), the certificate renewal asks trustd with it
//! (5 s to 5 min).

use std::time::Duration;

/// Doubling pauses with jitter (see the module docs).
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    most: Duration,
    failures: u32,
    state: u64,
}

impl Backoff {
    /// Pauses from `first` doubling to `most`, the jitter starting from `seed`.
    pub fn new(first: Duration, most: Duration, seed: u64) -> Self {
        Self {
            first,
            most,
            failures: 0,
            state: seed | 1,
        }
    }

    /// An attempt succeeded: the next failure starts from the first pause again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// An attempt failed: the pause before the next one.
    pub fn next_pause(&mut self) -> Duration {
        let base = self
            .first
            .saturating_mul(1 << self.failures.min(16))
            .min(self.most);
        self.failures = self.failures.saturating_add(1);
        // xorshift: jitter only, nothing secret depends on it.
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let spread = u64::try_from(base.as_millis() / 2).unwrap_or(u64::MAX);
        let offset = self.state % spread.max(1);
        base - Duration::from_millis(spread / 2) + Duration::from_millis(offset)
    }
}
