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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::LinkId;
    use crate::testing::{Draft, Site, hub};

    fn from() -> LinkKey {
        LinkKey {
            peer: hub("lisbon-1"),
            link: LinkId::new(1).unwrap(),
        }
    }

    #[test]
    fn newest_per_origin_bounded_in_count_and_time() {
        let site = Site::new("far");
        let signed = |id: &str, sequence| {
            site.hub(id)
                .sign(Draft::new(id, "BR").sequence(sequence).build())
        };
        let t = |secs: u64| Timestamp::from_unix_secs(1_000 + secs);
        let mut held = HeldBack::new(2, 30);
        let recife_5 = signed("recife-1", 5);
        assert_eq!(held.hold(recife_5.clone(), from(), t(0)), HoldOutcome::Held);
        assert_eq!(held.hold(recife_5, from(), t(1)), HoldOutcome::Duplicate);
        assert_eq!(
            held.hold(signed("recife-1", 4), from(), t(1)),
            HoldOutcome::Older
        );
        // A newer one of the same origin replaces it, without taking more room.
        assert_eq!(
            held.hold(signed("recife-1", 6), from(), t(2)),
            HoldOutcome::Held
        );
        assert_eq!(
            held.hold(signed("natal-1", 1), from(), t(3)),
            HoldOutcome::Held
        );
        assert_eq!(held.len(), 2);
        // Full: the one waiting longest (recife-1, since t(2)) makes room.
        assert_eq!(
            held.hold(signed("belem-1", 1), from(), t(4)),
            HoldOutcome::Evicted
        );
        let mut origins: Vec<_> = held
            .take_all()
            .into_iter()
            .map(|waiting| {
                let origin = waiting.signed.advertisement().origin().to_string();
                held.put_back(waiting);
                origin
            })
            .collect();
        origins.sort();
        assert_eq!(origins, ["belem-1", "natal-1"]);
        // natal-1 waited 30 s at t(33): gone; belem-1 not yet.
        assert_eq!(held.expire(t(33)), 1);
        assert_eq!(held.len(), 1);
        assert_eq!(held.expire(t(34)), 1);
        assert_eq!(held.len(), 0);
    }
}
