//! updated's Prometheus metrics on 127.0.0.1:9105 (`[metrics] listen`):
//!
//! - `updated_booted_info{slot,version}`: 1 for the running slot and image;
//! - `updated_slot_info{slot,version,entry}`: 1 per slot with its boot entry (`blessed`,
//!   `trying`, `bad`, `none`);
//! - `updated_activity{activity}`: 1 for what updated is doing (`idle`, `checking`,
//!   `installing`), 0 for the others;
//! - `updated_install_bytes{phase}` and `updated_install_total_bytes{phase}`: progress of the
//!   running install's phases (`write-root`, `write-verity`, `verify`, `boot-entry`);
//! - `updated_results_total{kind}`: results recorded since start (`installed`, `refused`,
//!   `failed`, `blessed`, `fell-back`);
//! - `updated_last_result_timestamp_seconds{kind}`: when each kind last happened;
//! - `updated_rollout_turns_total{outcome}`: rollout turns (`ok`, `failed`: the desk or the
//!   agent could not do its work, e.g. the coordinator's exchange was out of reach);
//! - `updated_rollout_last_ok_timestamp_seconds`: when a rollout turn last succeeded.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What updated can be doing.
pub const ACTIVITIES: [&str; 3] = ["idle", "checking", "installing"];

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BootedLabels {
    slot: String,
    version: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SlotLabels {
    slot: String,
    version: String,
    entry: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActivityLabel {
    activity: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// The metrics, registered once; cheap to clone (shared atomics).
#[derive(Clone, Default)]
pub struct UpdateMetrics {
    booted: Family<BootedLabels, Gauge>,
    slots: Family<SlotLabels, Gauge>,
    activity: Family<ActivityLabel, Gauge>,
    install_bytes: Family<PhaseLabel, Gauge>,
    install_total: Family<PhaseLabel, Gauge>,
    results: Family<KindLabel, Counter>,
    last_result: Family<KindLabel, Gauge>,
    rollout_turns: Family<OutcomeLabel, Counter>,
    rollout_last_ok: Gauge,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

impl UpdateMetrics {
    pub fn register(registry: &mut Registry) -> UpdateMetrics {
        let metrics = UpdateMetrics::default();
        registry.register(
            "updated_booted_info",
            "The running slot and image version",
            metrics.booted.clone(),
        );
        registry.register(
            "updated_slot_info",
            "Each slot's image version and boot entry (blessed, trying, bad, none)",
            metrics.slots.clone(),
        );
        registry.register(
            "updated_activity",
            "1 for what updated is doing, 0 for the rest",
            metrics.activity.clone(),
        );
        registry.register(
            "updated_install_bytes",
            "Bytes done in each phase of the running install",
            metrics.install_bytes.clone(),
        );
        registry.register(
            "updated_install_total_bytes",
            "Bytes in each phase of the running install",
            metrics.install_total.clone(),
        );
        registry.register(
            "updated_results",
            "Update results recorded since start, by kind",
            metrics.results.clone(),
        );
        registry.register(
            "updated_last_result_timestamp_seconds",
            "When each kind of result last happened (Unix time)",
            metrics.last_result.clone(),
        );
        registry.register(
            "updated_rollout_turns",
            "Rollout turns (the desk's and the agent's work of one tick, exchange included) by outcome: ok or failed",
            metrics.rollout_turns.clone(),
        );
        registry.register(
            "updated_rollout_last_ok_timestamp_seconds",
            "When a rollout turn last succeeded (Unix time): a coordinator out of reach shows as its age",
            metrics.rollout_last_ok.clone(),
        );
        metrics.set_activity("idle");
        metrics
    }

    /// Counts one rollout turn; a good one also moves the last-ok time to `now`.
    pub fn rollout_turn(&self, ok: bool, now: u64) {
        let outcome = if ok { "ok" } else { "failed" };
        self.rollout_turns
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
        if ok {
            self.rollout_last_ok
                .set(i64::try_from(now).unwrap_or(i64::MAX));
        }
    }

    pub fn set_booted(&self, slot: &str, version: &str) {
        self.booted
            .get_or_create(&BootedLabels {
                slot: slot.to_owned(),
                version: version.to_owned(),
            })
            .set(1);
    }

    /// Replaces the slots' series with `slots` (slot, version, entry).
    pub fn set_slots<'a>(&self, slots: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>) {
        self.slots.clear();
        for (slot, version, entry) in slots {
            self.slots
                .get_or_create(&SlotLabels {
                    slot: slot.to_owned(),
                    version: version.to_owned(),
                    entry: entry.to_owned(),
                })
                .set(1);
        }
    }

    pub fn set_activity(&self, now: &str) {
        for activity in ACTIVITIES {
            self.activity
                .get_or_create(&ActivityLabel {
                    activity: activity.to_owned(),
                })
                .set(i64::from(activity == now));
        }
    }

    pub fn set_progress(&self, phase: &str, done: u64, total: u64) {
        let label = PhaseLabel {
            phase: phase.to_owned(),
        };
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.install_bytes.get_or_create(&label).set(clamp(done));
        self.install_total.get_or_create(&label).set(clamp(total));
    }

    /// A new install starts: the previous one's phases are gone.
    pub fn clear_progress(&self) {
        self.install_bytes.clear();
        self.install_total.clear();
    }

    pub fn record_result(&self, kind: &str, unix_seconds: i64) {
        let label = KindLabel {
            kind: kind.to_owned(),
        };
        self.results.get_or_create(&label).inc();
        self.last_result.get_or_create(&label).set(unix_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::text::encode;

    #[test]
    fn the_series_say_slot_activity_progress_and_results() {
        let mut registry = Registry::default();
        let metrics = UpdateMetrics::register(&mut registry);
        metrics.set_booted("a", "0.1.0");
        metrics.set_slots([("a", "0.1.0", "blessed"), ("b", "0.1.1", "trying")]);
        metrics.set_activity("installing");
        metrics.set_progress("write-root", 1 << 20, 160 << 20);
        metrics.record_result("installed", 1_790_000_000);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        for line in [
            "updated_booted_info{slot=\"a\",version=\"0.1.0\"} 1",
            "updated_slot_info{slot=\"b\",version=\"0.1.1\",entry=\"trying\"} 1",
            "updated_activity{activity=\"installing\"} 1",
            "updated_activity{activity=\"idle\"} 0",
            "updated_install_bytes{phase=\"write-root\"} 1048576",
            "updated_install_total_bytes{phase=\"write-root\"} 167772160",
            "updated_results_total{kind=\"installed\"} 1",
            "updated_last_result_timestamp_seconds{kind=\"installed\"} 1790000000",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
