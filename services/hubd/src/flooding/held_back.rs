//! Advertisements that arrived before the voucher that makes their origin trusted.
//!
//! Flooding gives no order: a hub two hops away may be heard of before the advertisement of the
//! peer that vouches for it. Such an advertisement (refused as `unknown_hub`) is held back, the
//! newest per origin, for a bounded time and up to a bounded count, and admission is retried
//! whenever the link-state database changes. What leaves unadmitted (too old, or pushed out by
//! a newer arrival when full) counts then as refused `unknown_hub`.

use std::collections::BTreeMap;

use crate::advertisement::{SignedAdvertisement, Timestamp};
use crate::hub_id::HubId;
use crate::links::LinkKey;

/// One advertisement waiting for its voucher.
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    /// As received.
    pub signed: SignedAdvertisement,
    /// The link it came on (not to be forwarded back there).
    pub from: LinkKey,
    /// When it was first held.
    pub since: Timestamp,
}

/// What holding one more advertisement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HoldOutcome {
    /// Held, nothing else changed.
    Held,
    /// Held; the oldest waiting advertisement was dropped to make room.
    Evicted,
    /// The same advertisement is already held.
    Duplicate,
    /// A newer one of the same origin is already held; this one is dropped.
    Older,
}

/// The advertisements waiting, by origin.
#[derive(Debug, Clone)]
pub(crate) struct HeldBack {
    waiting: BTreeMap<HubId, Waiting>,
    capacity: usize,
    max_age_secs: u64,
}

impl HeldBack {
    pub fn new(capacity: usize, max_age_secs: u64) -> Self {
        Self {
            waiting: BTreeMap::new(),
            capacity,
            max_age_secs,
        }
    }

    /// Holds `signed` (received on `from` at `now`), the newest per origin.
    pub fn hold(
        &mut self,
        signed: SignedAdvertisement,
        from: LinkKey,
        now: Timestamp,
    ) -> HoldOutcome {
        let origin = signed.advertisement().origin().clone();
        if let Some(held) = self.waiting.get(&origin) {
            if held.signed == signed {
                return HoldOutcome::Duplicate;
            }
            if held.signed.advertisement().sequence() >= signed.advertisement().sequence() {
                return HoldOutcome::Older;
            }
        }
        let mut outcome = HoldOutcome::Held;
        if !self.waiting.contains_key(&origin) && self.waiting.len() >= self.capacity {
            let oldest = self
                .waiting
                .iter()
                .min_by_key(|(_, waiting)| waiting.since)
                .map(|(hub, _)| hub.clone());
            if let Some(oldest) = oldest {
                self.waiting.remove(&oldest);
                outcome = HoldOutcome::Evicted;
            }
        }
        if self.capacity > 0 {
            self.waiting.insert(
                origin,
                Waiting {
                    signed,
                    from,
                    since: now,
                },
            );
        }
        outcome
    }

    /// Drops what has waited longer than allowed at `now`; returns how many.
    pub fn expire(&mut self, now: Timestamp) -> usize {
        let before = self.waiting.len();
        let max_age = self.max_age_secs;
        self.waiting
            .retain(|_, waiting| waiting.since.plus_secs(max_age) > now);
        before - self.waiting.len()
    }

    /// Takes every waiting advertisement out (to retry; what is still refused is held again).
    pub fn take_all(&mut self) -> Vec<Waiting> {
        std::mem::take(&mut self.waiting).into_values().collect()
    }

    /// Puts back one taken out, as it was.
    pub fn put_back(&mut self, waiting: Waiting) {
        let origin = waiting.signed.advertisement().origin().clone();
        self.waiting.insert(origin, waiting);
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }
}
