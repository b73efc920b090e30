//! trustd's metrics, served on loopback by [`appliance::metrics::MetricsEndpoint`].
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `trustd_state{state}` | gauge | 1 for the current state (`initialised`, `ready`, `sealed`, `lockdown`), 0 for the others |
//! | `trustd_certificates_issued` | gauge | certificates issued (every one is in the log) |
//! | `trustd_certificates_revoked` | gauge | certificates revoked |
//! | `trustd_log_entries` | gauge | entries in the transparency log |
//! | `trustd_crl_next_update_seconds` | gauge | `nextUpdate` of the current CRL, Unix time (0: none yet) |
//! | `trustd_dbus_requests_total{method,result}` | counter | D-Bus calls by method and outcome (`ok`, `sealed`, `invalid_request`, ...) |
//! | `bunkeros_build_info{service,version}` | gauge | always 1 |
//!
//! The gauges are refreshed from the authority's status by the main loop, so a scrape never
//! touches the TPM.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::authority::AuthorityStatus;

type Labels = Vec<(String, String)>;

/// The states `trustd_state` reports, in the order of [`crate::authority::AuthorityState`].
const STATES: [&str; 4] = ["sealed", "lockdown", "initialised", "ready"];

/// Handles to trustd's metrics; cheap to clone, shared with the D-Bus edge.
#[derive(Debug, Clone, Default)]
pub struct TrustMetrics {
    state: Family<Labels, Gauge>,
    issued: Gauge,
    revoked: Gauge,
    log_entries: Gauge,
    crl_next_update: Gauge,
    requests: Family<Labels, Counter>,
}

impl TrustMetrics {
    /// Registers the metrics (and `bunkeros_build_info`) in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        appliance::metrics::register_build_info(registry, "trustd", env!("CARGO_PKG_VERSION"));
        let trustd = registry.sub_registry_with_prefix("trustd");
        trustd.register(
            "state",
            "The CA's state: 1 for the current one",
            metrics.state.clone(),
        );
        trustd.register(
            "certificates_issued",
            "Certificates issued, every one in the transparency log",
            metrics.issued.clone(),
        );
        trustd.register(
            "certificates_revoked",
            "Certificates revoked",
            metrics.revoked.clone(),
        );
        trustd.register(
            "log_entries",
            "Entries in the transparency log",
            metrics.log_entries.clone(),
        );
        trustd.register(
            "crl_next_update_seconds",
            "nextUpdate of the current CRL, Unix time; 0 before the first CRL",
            metrics.crl_next_update.clone(),
        );
        trustd.register(
            "dbus_requests",
            "D-Bus calls by method and outcome",
            metrics.requests.clone(),
        );
        for state in STATES {
            metrics.state.get_or_create(&state_label(state)).set(0);
        }
        metrics
    }

    /// Sets the gauges from a fresh status.
    pub fn observe(&self, status: &AuthorityStatus) {
        let current = status.state.name();
        for state in STATES {
            self.state
                .get_or_create(&state_label(state))
                .set(i64::from(state == current));
        }
        self.issued.set(clamp(status.issued));
        self.revoked.set(clamp(status.revoked));
        self.log_entries.set(clamp(status.log_size));
        self.crl_next_update.set(
            status
                .crl
                .as_ref()
                .map_or(0, |crl| crl.next_update.unix_timestamp()),
        );
    }

    /// Counts one D-Bus call of `method` that ended with `result`.
    pub fn count_request(&self, method: &'static str, result: &'static str) {
        self.requests
            .get_or_create(&vec![
                ("method".to_owned(), method.to_owned()),
                ("result".to_owned(), result.to_owned()),
            ])
            .inc();
    }
}

fn state_label(state: &str) -> Labels {
    vec![("state".to_owned(), state.to_owned())]
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::{AuthorityState, PolicySummary};

    #[test]
    fn the_state_is_one_hot_and_counts_follow_the_status() {
        let mut registry = Registry::default();
        let metrics = TrustMetrics::register(&mut registry);
        metrics.observe(&AuthorityStatus {
            state: AuthorityState::Ready,
            lockdown: false,
            policy: PolicySummary {
                mode: "pcr",
                pcr_selection: vec![7, 11],
                release_key: None,
            },
            ca_kind: None,
            ca_subject: None,
            ca_not_after: None,
            root_fingerprint: None,
            issued: 5,
            revoked: 2,
            log_size: 5,
            signed_tree_head_size: None,
            crl: None,
            stopped: None,
        });
        metrics.count_request("Issue", "ok");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "trustd_state{state=\"ready\"} 1",
            "trustd_state{state=\"sealed\"} 0",
            "trustd_certificates_issued 5",
            "trustd_certificates_revoked 2",
            "trustd_log_entries 5",
            "trustd_dbus_requests_total{method=\"Issue\",result=\"ok\"} 1",
            "bunkeros_build_info{service=\"trustd\",version=",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
