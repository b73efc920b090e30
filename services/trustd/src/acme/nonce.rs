//! Anti-replay nonces (RFC 8555 §6.5).
//!
//! Every response carries a fresh `Replay-Nonce`, and every signed request must carry one the
//! server issued and has not seen used, so a captured request cannot be sent again. Nonces are
//! 128 random bits; the store is bounded (oldest forgotten first), so a client that fetches
//! nonces without using them costs the server a fixed amount of memory, and at worst makes an
//! old nonce fail with `badNonce`, which every ACME client retries with the fresh nonce the
//! error response carries. Nonces do not survive a restart, for the same reason.

use std::collections::{HashSet, VecDeque};

use super::encoding::{b64url, random_bytes};

/// Default bound on outstanding nonces.
pub const DEFAULT_MAX_NONCES: usize = 10_000;

/// Why a nonce was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// The request had no nonce.
    #[error("the JWS protected header has no \"nonce\"")]
    Missing,
    /// Not a nonce this server could have issued (wrong syntax).
    #[error("the nonce is not base64url")]
    Malformed,
    /// Never issued, already used, or forgotten (evicted or from before a restart).
    #[error("the nonce is unknown or was already used; retry with the nonce from this response")]
    Unknown,
}

/// The nonces issued and not yet used.
#[derive(Debug)]
pub struct NonceStore {
    outstanding: HashSet<String>,
    order: VecDeque<String>,
    max: usize,
}

impl NonceStore {
    /// A store that remembers at most `max` outstanding nonces (at least one).
    pub fn new(max: usize) -> Self {
        Self {
            outstanding: HashSet::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Issues a fresh nonce, forgetting the oldest outstanding one if the store is full.
    pub fn issue(&mut self) -> String {
        while self.outstanding.len() >= self.max {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.outstanding.remove(&oldest);
                }
                None => break,
            }
        }
        let nonce = b64url(&random_bytes::<16>());
        self.outstanding.insert(nonce.clone());
        self.order.push_back(nonce.clone());
        nonce
    }

    /// Whether `nonce` could be used now, without using it: requests are fully checked before
    /// their nonce is consumed, so a refused request leaves its nonce usable.
    pub fn check(&self, nonce: Option<&str>) -> Result<(), NonceError> {
        let nonce = nonce.ok_or(NonceError::Missing)?;
        if !super::encoding::is_b64url_text(nonce) {
            return Err(NonceError::Malformed);
        }
        if self.outstanding.contains(nonce) {
            Ok(())
        } else {
            Err(NonceError::Unknown)
        }
    }

    /// Uses `nonce` up; it can never be used again.
    pub fn consume(&mut self, nonce: Option<&str>) -> Result<(), NonceError> {
        self.check(nonce)?;
        let nonce = nonce.unwrap_or_default();
        self.outstanding.remove(nonce);
        // The FIFO keeps a stale entry until it reaches the front; removing it here would cost
        // a linear scan. `issue` skips such entries because they are no longer outstanding.
        if self.order.len() > 2 * self.max {
            self.order.retain(|n| self.outstanding.contains(n));
        }
        Ok(())
    }

    /// How many nonces are outstanding.
    pub fn len(&self) -> usize {
        self.outstanding.len()
    }

    /// Whether no nonce is outstanding.
    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }
}
