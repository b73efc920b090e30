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
//! | `hubd_topology_links` | gauge | links of the network that paths are computed over now (both ends advertise them) |
//! | `hubd_advertisements_accepted_total` | counter | advertisements accepted into the database |
//! | `hubd_advertisements_rejected_total{reason}` | counter | advertisements refused (`bad_signature`, `stale`, `unknown_hub`, ...) |
//! | `hubd_frames_malformed_total{reason}` | counter | control frames that did not decode |
//! | `hubd_advertisements_originated_total` | counter | this hub's own advertisements |
//! | `hubd_advertisements_held_back` | gauge | advertisements of hubs not (yet) vouched for, held for a while in case a voucher follows |
//! | `hubd_transit` | gauge | 1 while this hub offers transit, 0 in lockdown |
//! | `hubd_circuits{role}` | gauge | circuits carried now: `source`, `destination`, `transit` |
//! | `hubd_circuits_established_total{role}` | counter | circuits established, by role |
//! | `hubd_circuit_refusals_total{reason}` | counter | circuits this hub refused (`no_transit`, `not_granted`, `loop`, ...) |
//! | `hubd_circuit_open_failures_total{reason}` | counter | circuits this hub could not open (`refused`, `receipts`, `no_link`, ...) |
//! | `hubd_transit_bytes_total` | counter | bytes forwarded for other hubs (ciphertext) |
//! | `hubd_sessions` | gauge | sessions carried now (either end) |
//! | `hubd_sessions_started_total` | counter | sessions started |
//! | `hubd_session_failovers_total` | counter | sessions moved to a new circuit after theirs broke |
//! | `hubd_sessions_refused_total` | counter | clients reset: no compliant path or no circuit |
//! | `hubd_sessions_failed_total` | counter | sessions that ended with an error |
//! | `hubd_ip_packets_total{direction}`, `hubd_ip_bytes_total{direction}` | counter | IP packets (and their bytes) sent into circuits (`out`) and written to the TUN (`in`) |
//! | `hubd_ip_drops_total{reason}` | counter | IP packets dropped (`not_granted`, `spoofed_source`, `no_route`, `queue_full`, ...) |
//! | `hubd_ip_circuits` | gauge | packet circuits up now, both directions |
//! | `hubd_certificate_not_after_seconds` | gauge | when the hub certificate in use expires (Unix time) |
//! | `hubd_certificate_renewals_total{result}` | counter | attempts to renew the hub identity while running: `ok`, `failed` |
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

use crate::circuit::RelayCounters;
use crate::flooding::ControlPlaneView;
use crate::forwarding::Forwarding;
use crate::ip_plane::IpCounters;
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
    topology_links: Gauge,
    accepted: Counter,
    rejected: Family<Labels, Counter>,
    malformed: Family<Labels, Counter>,
    originated: Counter,
    held_back: Gauge,
    transit: Gauge,
    circuits: Family<Labels, Gauge>,
    circuits_established: Family<Labels, Counter>,
    circuit_refusals: Family<Labels, Counter>,
    circuit_open_failures: Family<Labels, Counter>,
    transit_bytes: Counter,
    sessions: Gauge,
    sessions_started: Counter,
    failovers: Counter,
    sessions_refused: Counter,
    sessions_failed: Counter,
    ip_packets: Family<Labels, Counter>,
    ip_bytes: Family<Labels, Counter>,
    ip_drops: Family<Labels, Counter>,
    ip_circuits: Gauge,
    certificate_not_after: Gauge,
    renewals: Family<Labels, Counter>,
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
            "topology_links",
            "Links of the network that paths are computed over now: both ends advertise them",
            metrics.topology_links.clone(),
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
            "advertisements_held_back",
            "Advertisements of hubs not yet vouched for, held in case a voucher follows",
            metrics.held_back.clone(),
        );
        hubd.register(
            "transit",
            "1 while this hub offers transit, 0 while the site is in lockdown",
            metrics.transit.clone(),
        );
        hubd.register(
            "circuits",
            "Circuits carried now, by role",
            metrics.circuits.clone(),
        );
        hubd.register(
            "circuits_established",
            "Circuits established, by role",
            metrics.circuits_established.clone(),
        );
        hubd.register(
            "circuit_refusals",
            "Circuits this hub refused, by reason",
            metrics.circuit_refusals.clone(),
        );
        hubd.register(
            "circuit_open_failures",
            "Circuits this hub could not open, by reason",
            metrics.circuit_open_failures.clone(),
        );
        hubd.register(
            "transit_bytes",
            "Bytes forwarded for other hubs (ciphertext)",
            metrics.transit_bytes.clone(),
        );
        hubd.register("sessions", "Sessions carried now", metrics.sessions.clone());
        hubd.register(
            "sessions_started",
            "Sessions started, either end",
            metrics.sessions_started.clone(),
        );
        hubd.register(
            "session_failovers",
            "Sessions moved to a new circuit after theirs broke",
            metrics.failovers.clone(),
        );
        hubd.register(
            "sessions_refused",
            "Clients reset because no compliant path or circuit could be had",
            metrics.sessions_refused.clone(),
        );
        hubd.register(
            "sessions_failed",
            "Sessions that ended with an error",
            metrics.sessions_failed.clone(),
        );
        hubd.register(
            "ip_packets",
            "IP packets sent into circuits (out) and written to the TUN (in)",
            metrics.ip_packets.clone(),
        );
        hubd.register(
            "ip_bytes",
            "Bytes of those IP packets",
            metrics.ip_bytes.clone(),
        );
        hubd.register(
            "ip_drops",
            "IP packets dropped, by reason",
            metrics.ip_drops.clone(),
        );
        hubd.register(
            "ip_circuits",
            "Packet circuits up now, both directions",
            metrics.ip_circuits.clone(),
        );
        hubd.register(
            "certificate_not_after_seconds",
            "When the hub certificate in use expires (Unix time)",
            metrics.certificate_not_after.clone(),
        );
        hubd.register(
            "certificate_renewals",
            "Attempts to renew the hub identity while running, by result (ok, failed)",
            metrics.renewals.clone(),
        );
        for result in ["ok", "failed"] {
            // Both results are scraped from the start, at 0.
            let _ = metrics
                .renewals
                .get_or_create(&vec![("result".to_owned(), result.to_owned())]);
        }
        metrics
    }

    /// The hub certificate in use expires at `not_after`.
    pub fn certificate(&self, not_after: std::time::SystemTime) {
        let seconds = not_after
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        self.certificate_not_after
            .set(i64::try_from(seconds).unwrap_or(i64::MAX));
    }

    /// An attempt to renew the hub identity succeeded (`ok`) or failed.
    pub fn renewal(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.renewals
            .get_or_create(&vec![("result".to_owned(), result.to_owned())])
            .inc();
    }

    /// Sets the IP plane's metrics from its counters now.
    pub fn observe_ip(&self, ip: &IpCounters) {
        for (direction, packets, bytes) in [
            ("out", &ip.packets_out, &ip.bytes_out),
            ("in", &ip.packets_in, &ip.bytes_in),
        ] {
            let labels = vec![("direction".to_owned(), direction.to_owned())];
            let counter = self.ip_packets.get_or_create(&labels);
            self.advance(
                &counter,
                &format!("ip_packets/{direction}"),
                IpCounters::get(packets),
            );
            let counter = self.ip_bytes.get_or_create(&labels);
            self.advance(
                &counter,
                &format!("ip_bytes/{direction}"),
                IpCounters::get(bytes),
            );
        }
        for (reason, total) in ip.drops() {
            if total > 0 {
                self.advance_family(&self.ip_drops, "ip_drops", reason, total);
            }
        }
        self.ip_circuits
            .set(i64::try_from(IpCounters::get(&ip.circuits_live)).unwrap_or(i64::MAX));
    }

    /// Sets the data plane's metrics from the relay and forwarding now.
    pub fn observe_data_plane(&self, relay: &RelayCounters, forwarding: &Forwarding) {
        for (role, count) in [
            ("source", relay.opened),
            ("destination", relay.destination),
            ("transit", relay.transit),
        ] {
            let labels = vec![("role".to_owned(), role.to_owned())];
            self.circuits
                .get_or_create(&labels)
                .set(gauge(count.active as usize));
            let counter = self.circuits_established.get_or_create(&labels);
            self.advance(&counter, &format!("circuits/{role}"), count.total);
        }
        for (reason, total) in &relay.refused {
            self.advance_family(&self.circuit_refusals, "circuit_refused", reason, *total);
        }
        for (reason, total) in &relay.failed_opens {
            self.advance_family(
                &self.circuit_open_failures,
                "circuit_failed",
                reason,
                *total,
            );
        }
        self.advance(&self.transit_bytes, "transit_bytes", relay.transit_bytes);
        self.sessions.set(gauge(forwarding.sessions().live_count()));
        let counters = forwarding.counters();
        let load = |counter: &std::sync::atomic::AtomicU64| {
            counter.load(std::sync::atomic::Ordering::Relaxed)
        };
        self.advance(
            &self.sessions_started,
            "sessions_started",
            load(&counters.sessions_started),
        );
        self.advance(&self.failovers, "failovers", load(&counters.failovers));
        self.advance(
            &self.sessions_refused,
            "sessions_refused",
            load(&counters.refused),
        );
        self.advance(
            &self.sessions_failed,
            "sessions_failed",
            load(&counters.failed),
        );
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
        self.topology_links.set(gauge(view.topology.link_count()));
        self.held_back.set(gauge(view.held_back));
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
