//! hubd's metrics, served on loopback (127.0.0.1:9102) by [`appliance::metrics::MetricsEndpoint`].
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `hubd_links_up` | gauge | links up now |
//! | `hubd_links_configured` | gauge | links the peering files name |
//! | `hubd_link_rtt_seconds{peer,link}` | gauge | measured round-trip time of each link up |
//! | `hubd_links_established_total` | counter | links that came up, dialed or accepted |
//! | `hubd_link_refusals_total{reason}` | counter | peers refused at the handshake, by reason (`wrong_root`, `wrong_hub`, ...) |
//! | `hubd_link_dial_failures_total{reason}` | counter | failed attempts to bring a dialed link up |
//! | `hubd_hubs_trusted` | gauge | hubs trusted now (pinned peers and hubs vouched for) |
//! | `hubd_advertisements_accepted_total` | counter | advertisements accepted into the database |
//! | `hubd_advertisements_rejected_total{reason}` | counter | advertisements refused (`bad_signature`, `stale`, `unknown_hub`, ...) |
//! | `hubd_frames_malformed_total{reason}` | counter | control frames that did not decode |
//! | `hubd_advertisements_originated_total` | counter | this hub's own advertisements |
//! | `hubd_transit` | gauge | 1 while this hub offers transit, 0 in lockdown |
//! | `bunkeros_build_info{service,version}` | gauge | always 1 |
//!
//! The daemon's main loop refreshes them from the control plane's counters ([`HubMetrics::observe`]),
//! so a scrape never waits on the control plane.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{Gauge, Gauge as FloatGaugeBase};
use prometheus_client::registry::Registry;

use crate::flooding::ControlPlaneView;
use crate::link_supervisor::SupervisorCounters;

type Labels = Vec<(String, String)>;
type FloatGauge = FloatGaugeBase<f64, std::sync::atomic::AtomicU64>;

/// Handles to hubd's metrics; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct HubMetrics {
    links_up: Gauge,
    links_configured: Gauge,
    link_rtt: Family<Labels, FloatGauge>,
    established: Counter,
    refusals: Family<Labels, Counter>,
    dial_failures: Family<Labels, Counter>,
    hubs_trusted: Gauge,
    accepted: Counter,
    rejected: Family<Labels, Counter>,
    malformed: Family<Labels, Counter>,
    originated: Counter,
    transit: Gauge,
    /// What the counters were last set from: the sources keep totals, Prometheus counters only
    /// go up by differences.
    seen: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl HubMetrics {
    /// Registers the metrics (and `bunkeros_build_info`) in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        appliance::metrics::register_build_info(registry, "hubd", env!("CARGO_PKG_VERSION"));
        let hubd = registry.sub_registry_with_prefix("hubd");
        hubd.register("links_up", "Links up now", metrics.links_up.clone());
        hubd.register(
            "links_configured",
            "Links the peering files name",
            metrics.links_configured.clone(),
        );
        hubd.register(
            "link_rtt_seconds",
            "Measured round-trip time of each link up",
            metrics.link_rtt.clone(),
        );
        hubd.register(
            "links_established",
            "Links that came up, dialed or accepted",
            metrics.established.clone(),
        );
        hubd.register(
            "link_refusals",
            "Peers refused at the link handshake, by reason",
            metrics.refusals.clone(),
        );
        hubd.register(
            "link_dial_failures",
            "Failed attempts to bring a dialed link up, by reason",
            metrics.dial_failures.clone(),
        );
        hubd.register(
            "hubs_trusted",
            "Hubs trusted now: pinned peers and hubs vouched for",
            metrics.hubs_trusted.clone(),
        );
        hubd.register(
            "advertisements_accepted",
            "Advertisements accepted into the link-state database",
            metrics.accepted.clone(),
        );
        hubd.register(
            "advertisements_rejected",
            "Advertisements refused, by reason",
            metrics.rejected.clone(),
        );
        hubd.register(
            "frames_malformed",
            "Control frames that did not decode, by reason",
            metrics.malformed.clone(),
        );
        hubd.register(
            "advertisements_originated",
            "This hub's own advertisements",
            metrics.originated.clone(),
        );
        hubd.register(
            "transit",
            "1 while this hub offers transit, 0 while the site is in lockdown",
            metrics.transit.clone(),
        );
        metrics
    }

    /// Sets everything from the control plane and the link supervisor now.
    pub fn observe(&self, view: &ControlPlaneView, links: &SupervisorCounters, configured: usize) {
        self.links_up.set(gauge(view.links.len()));
        self.links_configured.set(gauge(configured));
        self.link_rtt.clear();
        for (key, latency) in &view.links {
            let labels = vec![
                ("peer".to_owned(), key.peer.to_string()),
                ("link".to_owned(), key.link.get().to_string()),
            ];
            self.link_rtt
                .get_or_create(&labels)
                .set(latency.as_micros() as f64 / 1e6);
        }
        self.hubs_trusted.set(gauge(view.trusted.len()));
        self.transit.set(i64::from(view.transit));
        let counters = &view.counters;
        self.advance(&self.accepted, "accepted", counters.accepted);
        self.advance(&self.originated, "originated", counters.originated);
        self.advance(&self.established, "established", links.up);
        for (reason, total) in &counters.rejected {
            self.advance_family(&self.rejected, "rejected", reason, *total);
        }
        for (reason, total) in &counters.malformed {
            self.advance_family(&self.malformed, "malformed", reason, *total);
        }
        for (reason, total) in &links.refused {
            self.advance_family(&self.refusals, "refused", reason, *total);
        }
        for (reason, total) in &links.dial_failures {
            self.advance_family(&self.dial_failures, "dial", reason, *total);
        }
    }

    fn advance(&self, counter: &Counter, name: &str, total: u64) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let last = seen.entry(name.to_owned()).or_default();
        if total > *last {
            counter.inc_by(total - *last);
            *last = total;
        }
    }

    fn advance_family(
        &self,
        family: &Family<Labels, Counter>,
        name: &str,
        reason: &str,
        total: u64,
    ) {
        let counter = family.get_or_create(&vec![("reason".to_owned(), reason.to_owned())]);
        self.advance(&counter, &format!("{name}/{reason}"), total);
    }
}

fn gauge(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}
