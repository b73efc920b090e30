//! minerd's configuration: `minerd.toml`, read with [`appliance::config`] like every BunkerOS
//! service (built-in defaults, then `/usr/share/bunkeros/minerd.toml`, then
//! `/var/lib/bunkeros/config/minerd.toml` or `--config PATH`).
//!
//! ```toml
//! [layout]                      # the site: ranges, owners, their pools (site_layout)
//! [[layout.range]]
//! cidr = "10.10.0.0/22"
//! owner = "acme"
//! location = "hall A"
//! [[layout.owner]]
//! name = "acme"
//! identity = "{owner}.{ip-dashes}"
//! [[layout.owner.pools]]
//! url = "stratum+tcp://pool.acme.example:3333"
//! user = "acme"
//!
//! [proxy]                       # the Stratum proxy (proxy::ProxySettings)
//! listen = "10.0.0.1:3333"
//! [sanctioned]                  # where miners are told to mine: the proxy as they reach it
//! proxy_urls = ["stratum+tcp://10.0.0.1:3333"]
//!
//! [discovery]  [telemetry]  [curtailment]  [hijack]  [audit]  [operations]
//! [metrics]
//! listen = "127.0.0.1:9103"     # loopback only
//! ```
//!
//! Each section is checked by its own module's `validate`; [`MinerdConfig::validate`] puts
//! the section's name in front of each key so the loader finds the file and line that set it.

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use appliance::audit_log::SealPolicy;
use appliance::config::{ConfigError, ConfigPaths, Invalid, Port, ServiceConfig};
use appliance::metrics::MetricsSection;
use serde::Deserialize;

use crate::curtailment::CurtailmentSettings;
use crate::discovery::DiscoverySettings;
use crate::hijack::{HijackSettings, SanctionedPool};
use crate::operations::BulkLimits;
use crate::proxy::ProxySettings;
use crate::site_layout::SiteLayout;
use crate::telemetry::TelemetrySettings;

/// The service name: the config file stem, the log identifier, the state directory, and the
/// name trustd signs the audit log's seals for.
pub const SERVICE: &str = "minerd";

/// Default port of the loopback metrics endpoint (DESIGN: minerd 9103).
pub const DEFAULT_METRICS_PORT: Port = Port::from_const(9103);

/// Everything minerd reads from `minerd.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct MinerdConfig {
    /// `[layout]`: ranges, owners, owners' pools.
    pub layout: SiteLayout,
    /// `[proxy]`: the Stratum proxy miners connect to.
    pub proxy: ProxySettings,
    /// `[sanctioned]`: the pool URLs miners are configured with (minerd's proxy).
    pub sanctioned: SanctionedEndpoints,
    /// `[discovery]`.
    pub discovery: DiscoverySettings,
    /// `[telemetry]`.
    pub telemetry: TelemetrySettings,
    /// `[curtailment]`.
    pub curtailment: CurtailmentSettings,
    /// `[hijack]`.
    pub hijack: HijackSettings,
    /// `[audit]`: when the audit log is sealed through trustd.
    pub audit: SealPolicy,
    /// `[operations]`: bulk action limits.
    pub operations: BulkLimits,
    /// `[metrics]`: the loopback Prometheus endpoint.
    pub metrics: MetricsSection<{ DEFAULT_METRICS_PORT.get() }>,
}

/// `[sanctioned]`: what a miner's pool list must hold. Every miner mines through minerd's
/// proxy, so its sanctioned endpoints are the proxy's address as the miners reach it (which
/// differs from `proxy.listen` behind NAT or with a wildcard listen), in priority order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SanctionedEndpoints {
    pub proxy_urls: Vec<String>,
}

impl Default for SanctionedEndpoints {
    /// The default `proxy.listen`, as a URL.
    fn default() -> Self {
        SanctionedEndpoints {
            proxy_urls: vec![format!("stratum+tcp://{}", ProxySettings::default().listen)],
        }
    }
}

impl MinerdConfig {
    /// The pools (URL and user) the miner at `ip` must be configured with: every proxy URL
    /// with its owner's identity for that address. Empty for an address outside the layout.
    pub fn sanctioned_pools_for(&self, ip: Ipv4Addr) -> Vec<SanctionedPool> {
        let Some(owner) = self
            .layout
            .range_of(ip)
            .and_then(|range| self.layout.owner(&range.owner))
        else {
            return Vec::new();
        };
        let user = owner.identity_for(ip);
        self.sanctioned
            .proxy_urls
            .iter()
            .map(|url| SanctionedPool {
                url: url.clone(),
                user: user.clone(),
            })
            .collect()
    }

    fn check_sanctioned(&self, problems: &mut Vec<Invalid>) {
        if self.sanctioned.proxy_urls.is_empty() {
            problems.push(Invalid::new(
                "sanctioned.proxy_urls",
                "lists no URL; miners must be told where minerd's proxy is, e.g. `stratum+tcp://10.0.0.1:3333`",
            ));
        }
        for (i, url) in self.sanctioned.proxy_urls.iter().enumerate() {
            let address = url
                .strip_prefix("stratum+tcp://")
                .map(|a| a.trim_end_matches('/'));
            let valid = address.is_some_and(|a| {
                a.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
                })
            });
            if !valid {
                problems.push(Invalid::new(
                    format!("sanctioned.proxy_urls[{i}]"),
                    format!("`{url}` is not `stratum+tcp://HOST:PORT` (the proxy speaks plain Stratum V1)"),
                ));
            }
        }
    }
}

/// Puts `prefix.` in front of every key of a module's complaints.
fn prefixed(prefix: &str, problems: Vec<Invalid>) -> impl Iterator<Item = Invalid> + '_ {
    problems
        .into_iter()
        .map(move |Invalid { key, reason }| Invalid::new(format!("{prefix}.{key}"), reason))
}

impl ServiceConfig for MinerdConfig {
    fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        if let Err(found) = self.layout.validate() {
            problems.extend(prefixed("layout", found));
        }
        // These modules name their keys with the section already in front.
        if let Err(found) = self.proxy.validate() {
            problems.extend(found);
        }
        if let Err(found) = self.discovery.validate("discovery") {
            problems.extend(found);
        }
        if let Err(found) = self.telemetry.validate("telemetry") {
            problems.extend(found);
        }
        let single = [
            self.curtailment.validate(),
            self.hijack.validate(),
            self.audit.validate("audit"),
            self.operations.validate(),
        ];
        problems.extend(single.into_iter().filter_map(Result::err));
        self.check_sanctioned(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// The configuration, checked, and the files it came from.
#[derive(Debug, Clone)]
pub struct MinerdSetup {
    pub config: MinerdConfig,
    /// The layers read, in order.
    pub files: Vec<PathBuf>,
}

/// Reads `minerd.toml` (layered; `explicit` replaces the site layer) and checks it.
pub fn load(explicit: Option<&Path>) -> Result<MinerdSetup, ConfigError> {
    let loaded = ConfigPaths::for_service(SERVICE, explicit).load::<MinerdConfig>()?;
    let files = loaded.files.clone();
    Ok(MinerdSetup {
        config: loaded.into_inner(),
        files,
    })
}

impl MinerdSetup {
    /// What `minerd --check-config` prints: the files read and what they set up.
    pub fn report(&self) -> String {
        let config = &self.config;
        let mut out = String::new();
        if self.files.is_empty() {
            out.push_str("config OK: no minerd.toml found, using built-in defaults\n");
        } else {
            let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
            let _ = writeln!(out, "config OK: read {}", files.join(", "));
        }
        let addresses: usize = config
            .layout
            .ranges
            .iter()
            .map(|r| r.cidr.hosts().count())
            .sum();
        let _ = writeln!(
            out,
            "layout: {} range(s), {addresses} addresses, {} owner(s)",
            config.layout.ranges.len(),
            config.layout.owners.len()
        );
        for range in &config.layout.ranges {
            let _ = writeln!(
                out,
                "  range {} owner {} at {} (API port {})",
                range.cidr, range.owner, range.location, range.port
            );
        }
        for owner in &config.layout.owners {
            let pools: Vec<&str> = owner.pools.iter().map(|p| p.url.as_str()).collect();
            let _ = writeln!(
                out,
                "  owner {}: identity {}, pools {}",
                owner.name,
                owner.identity,
                if pools.is_empty() {
                    "none".to_owned()
                } else {
                    pools.join(", ")
                }
            );
        }
        let _ = writeln!(
            out,
            "proxy: listening on {}; miners mine on {}",
            config.proxy.listen,
            config.sanctioned.proxy_urls.join(", ")
        );
        let _ = writeln!(
            out,
            "discovery every {} s; telemetry every {} s; audit sealed every {} records or {} s; metrics on {}",
            config.discovery.interval_secs,
            config.telemetry.interval_secs,
            config.audit.every_records,
            config.audit.every.secs(),
            config.metrics.listen
        );
        out
    }
}
