//! Variable difficulty per miner: each miner's share difficulty is steered so it submits about
//! `shares_per_minute` shares whatever its hashrate, which keeps a 200 TH/s machine from
//! flooding the proxy and a small one from going minutes without a share (and so without
//! evidence that it is hashing here). Pure: time comes in as an argument.

use std::time::{Duration, Instant};

use super::settings::VardiffSettings;

/// One retarget moves the difficulty by at most this factor either way, so a burst or a lull
/// cannot throw a miner to an extreme at once.
const MAX_STEP: f64 = 4.0;

/// Rates within this factor of the goal leave the difficulty alone (no churn of
/// set_difficulty + notify for noise).
const TOLERANCE: f64 = 1.5;

#[derive(Debug, Clone)]
pub struct Vardiff {
    shares_per_minute: f64,
    window: Duration,
    min: f64,
    max: f64,
    difficulty: f64,
    window_start: Instant,
    shares: u32,
}

impl Vardiff {
    pub fn new(settings: &VardiffSettings, now: Instant) -> Vardiff {
        Vardiff {
            shares_per_minute: settings.shares_per_minute,
            window: Duration::from_millis(settings.retarget_ms),
            min: settings.min_difficulty,
            max: settings.max_difficulty,
            difficulty: settings
                .initial_difficulty
                .clamp(settings.min_difficulty, settings.max_difficulty),
            window_start: now,
            shares: 0,
        }
    }

    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Starts a new measuring window: after a change, once the miner works at the new
    /// difficulty, so shares found at the old one do not count toward the next decision.
    pub fn restart(&mut self, now: Instant) {
        self.window_start = now;
        self.shares = 0;
    }

    /// An accepted share. Returns the new difficulty when this share closes a window that calls
    /// for a change; a flood (four times the goal for a whole window) retargets early.
    pub fn on_share(&mut self, now: Instant) -> Option<f64> {
        self.shares += 1;
        let expected = self.shares_per_minute * self.window.as_secs_f64() / 60.0;
        let flood = self.shares as f64 >= (MAX_STEP * expected).max(4.0);
        if flood || now.duration_since(self.window_start) >= self.window {
            return self.retarget(now);
        }
        None
    }

    /// Called periodically: a miner whose difficulty is too high finds no shares at all, and
    /// must be lowered without waiting for one.
    pub fn on_tick(&mut self, now: Instant) -> Option<f64> {
        if now.duration_since(self.window_start) >= self.window {
            return self.retarget(now);
        }
        None
    }

    fn retarget(&mut self, now: Instant) -> Option<f64> {
        let minutes = now.duration_since(self.window_start).as_secs_f64() / 60.0;
        let shares = std::mem::take(&mut self.shares);
        self.window_start = now;
        let ratio = if shares == 0 || minutes <= 0.0 {
            1.0 / MAX_STEP
        } else {
            (shares as f64 / minutes / self.shares_per_minute).clamp(1.0 / MAX_STEP, MAX_STEP)
        };
        if (1.0 / TOLERANCE..=TOLERANCE).contains(&ratio) {
            return None;
        }
        let next = (self.difficulty * ratio).clamp(self.min, self.max);
        if next == self.difficulty {
            return None;
        }
        self.difficulty = next;
        Some(next)
    }
}

#[cfg(test)]
#[path = "vardiff_tests.rs"]
mod tests;
