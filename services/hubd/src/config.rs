//! hubd's configuration: `hubd.toml` for the hub itself, and one peering file per peer.
//!
//! `hubd.toml` is read with [`appliance::config`] like every BunkerOS service: built-in
//! defaults, then `/usr/share/bunkeros/hubd.toml`, then `/var/lib/bunkeros/config/hubd.toml`
//! (or `--config PATH`). Unknown keys, wrong types and out-of-range values are refused as
//! `FILE:LINE:COLUMN: sentence`; [`HubdConfig::validate`] refuses what only shows across values
//! (a missing hub id, a path policy that contradicts itself, PEM files that do not certify this
//! hub), naming the key and the file that set it. The peering files are read by
//! [`peer_file`]; [`load`] reads everything and refuses with exit status 78 on any problem.

pub mod ip;
pub mod peer_file;
pub mod services;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};

use appliance::config::{Bounded, ConfigError, ConfigPaths, Invalid, Port, ServiceConfig};
use appliance::metrics::MetricsSection;
use appliance::tls::Identity;
use serde::{Deserialize, Serialize};

use crate::advertisement::MAX_CHAIN_LEN;
use crate::grant::ServiceName;
use crate::hub_certificate;
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::Latency;
use crate::path_policy::{PathPolicy, PolicyError};
use crate::peering::Peers;

/// The service name: the config file stem, the log identifier, the state directory.
pub const SERVICE: &str = "hubd";

/// Default port of the loopback metrics endpoint (DESIGN: hubd 9102).
pub const DEFAULT_METRICS_PORT: Port = Port::from_const(9102);

/// Default port hub links are accepted on.
pub const DEFAULT_LINK_PORT: u16 = 7400;

/// Where the peering files are, one `<peer hub id>.toml` each.
pub const PEERS_DIR: &str = "/var/lib/bunkeros/config/hubd/peers";

/// Everything hubd reads from `hubd.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct HubdConfig {
    /// `[hub]`: this hub.
    pub hub: HubSection,
    /// `[certificate]`: where this hub's certificate and key come from.
    pub certificate: CertificateSource,
    /// `[metrics]`: the loopback Prometheus endpoint.
    pub metrics: MetricsSection<{ DEFAULT_METRICS_PORT.get() }>,
    /// `[path_policy.<name>]`: named path policies for services and flows.
    pub path_policy: BTreeMap<String, PolicySection>,
    /// `[[service]]`: TCP services published here or reached from here.
    pub service: Vec<services::ServiceEntry>,
    /// `[tun]`: the TUN interface IP traffic to other hubs goes through (absent: none).
    pub tun: Option<ip::TunSection>,
    /// `[[route]]`: per-prefix pins and path policies for that traffic.
    pub route: Vec<ip::RouteEntry>,
}

/// `[hub]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubSection {
    /// This hub's id; its certificate must name it. Required.
    pub id: Option<HubId>,
    /// The country this hub stands in. Required.
    pub jurisdiction: Option<Jurisdiction>,
    /// Addresses on which peer hubs' links are accepted.
    pub listen: Vec<SocketAddr>,
    /// The directory of peering files.
    pub peers_dir: PathBuf,
}

impl Default for HubSection {
    fn default() -> Self {
        Self {
            id: None,
            jurisdiction: None,
            listen: vec![SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::UNSPECIFIED,
                DEFAULT_LINK_PORT,
                0,
                0,
            ))],
            peers_dir: PathBuf::from(PEERS_DIR),
        }
    }
}

/// `[certificate]`: `source = "trustd"` (the local CA issues the hub certificate, profile
/// `hub`) or `source = "pem"` with `chain` and `key` files, where no trustd runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "source", rename_all = "lowercase", deny_unknown_fields)]
pub enum CertificateSource {
    /// From the local trustd.
    #[default]
    Trustd,
    /// From PEM files.
    Pem {
        /// The hub certificate, then any intermediates, then the site root.
        chain: PathBuf,
        /// The hub certificate's private key (PKCS#8 or SEC1, P-256).
        key: PathBuf,
    },
}

/// `[path_policy.<name>]`: one [`PathPolicy`] as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Only hubs in these jurisdictions; empty or absent: any.
    pub allowed_jurisdictions: Vec<Jurisdiction>,
    /// No hub in these jurisdictions.
    pub excluded_jurisdictions: Vec<Jurisdiction>,
    /// None of these hubs.
    pub excluded_hubs: Vec<HubId>,
    /// Most links on a path.
    pub max_hops: Option<Bounded<1, 64>>,
    /// Longest end-to-end latency, in milliseconds.
    pub max_latency_ms: Option<Bounded<1, 60_000>>,
    /// Require a compliant backup path sharing no link with the primary.
    pub disjoint_backup: bool,
}

impl PolicySection {
    /// The policy.
    pub fn to_policy(&self) -> PathPolicy {
        PathPolicy {
            allowed_jurisdictions: self.allowed_jurisdictions.iter().copied().collect(),
            excluded_jurisdictions: self.excluded_jurisdictions.iter().copied().collect(),
            excluded_hubs: self.excluded_hubs.iter().cloned().collect(),
            max_hops: self
                .max_hops
                .map(|hops| usize::try_from(hops.get()).expect("at most 64")),
            max_latency: self.max_latency_ms.map(|ms| Latency::from_millis(ms.get())),
            disjoint_backup: self.disjoint_backup,
        }
    }
}

impl HubdConfig {
    /// The named path policies.
    pub fn path_policies(&self) -> BTreeMap<&str, PathPolicy> {
        self.path_policy
            .iter()
            .map(|(name, section)| (name.as_str(), section.to_policy()))
            .collect()
    }

    fn check_hub(&self, problems: &mut Vec<Invalid>) {
        if self.hub.id.is_none() {
            problems.push(Invalid::new(
                "hub.id",
                "must be set to this hub's id, e.g. `madrid-1` (its certificate names it)",
            ));
        }
        if self.hub.jurisdiction.is_none() {
            problems.push(Invalid::new(
                "hub.jurisdiction",
                "must be set to the ISO 3166-1 alpha-2 code of the country this hub stands in, e.g. `ES`",
            ));
        }
        if self.hub.listen.is_empty() {
            problems.push(Invalid::new(
                "hub.listen",
                "lists no address; peers' links need at least one",
            ));
        }
        for (i, address) in self.hub.listen.iter().enumerate() {
            if address.port() == 0 {
                problems.push(Invalid::new(
                    format!("hub.listen[{i}]"),
                    format!("`{address}` has port 0; peers must know the port"),
                ));
            } else if self.hub.listen[..i].contains(address) {
                problems.push(Invalid::new(
                    format!("hub.listen[{i}]"),
                    format!("`{address}` is listed twice"),
                ));
            }
        }
        if !self.hub.peers_dir.is_absolute() {
            problems.push(Invalid::new(
                "hub.peers_dir",
                format!("must be an absolute path, not {:?}", self.hub.peers_dir),
            ));
        }
    }

    fn check_certificate(&self, problems: &mut Vec<Invalid>) {
        let CertificateSource::Pem { chain, key } = &self.certificate else {
            return;
        };
        let chain_pem = match std::fs::read(chain) {
            Ok(pem) => pem,
            Err(e) => {
                problems.push(Invalid::new(
                    "certificate.chain",
                    format!("cannot read {}: {e}", chain.display()),
                ));
                return;
            }
        };
        let key_pem = match std::fs::read(key) {
            Ok(pem) => pem,
            Err(e) => {
                problems.push(Invalid::new(
                    "certificate.key",
                    format!("cannot read {}: {e}", key.display()),
                ));
                return;
            }
        };
        match Identity::from_pem(&chain_pem, &key_pem) {
            Ok(identity) => {
                if let Err(reason) = check_identity(&identity, self.hub.id.as_ref()) {
                    problems.push(Invalid::new("certificate.chain", reason));
                }
            }
            Err(error) => problems.push(Invalid::new(
                "certificate.key",
                format!(
                    "{} and {} do not make a hub identity: {error}",
                    chain.display(),
                    key.display()
                ),
            )),
        }
    }

    fn check_policies(&self, problems: &mut Vec<Invalid>) {
        for (name, section) in &self.path_policy {
            let key = format!("path_policy.{name}");
            if ServiceName::parse(name).is_err() {
                problems.push(Invalid::new(
                    key,
                    "a policy name is 1 to 63 lower-case letters, digits and `-`",
                ));
                continue;
            }
            if let Err(error) = section.to_policy().check() {
                let field = match error {
                    PolicyError::AllowedAndExcluded(_) => "excluded_jurisdictions",
                    PolicyError::ZeroHops => "max_hops",
                };
                problems.push(Invalid::new(format!("{key}.{field}"), error.to_string()));
            }
            if let Some(own) = &self.hub.id
                && section.excluded_hubs.contains(own)
            {
                problems.push(Invalid::new(
                    format!("{key}.excluded_hubs"),
                    format!("excludes this hub ({own}), where every path of this hub starts"),
                ));
            }
            if let Some(own) = self.hub.jurisdiction {
                if section.excluded_jurisdictions.contains(&own) {
                    problems.push(Invalid::new(
                        format!("{key}.excluded_jurisdictions"),
                        format!("excludes {own}, where this hub stands and every path of this hub starts"),
                    ));
                } else if !section.allowed_jurisdictions.is_empty()
                    && !section.allowed_jurisdictions.contains(&own)
                {
                    problems.push(Invalid::new(
                        format!("{key}.allowed_jurisdictions"),
                        format!("does not allow {own}, where this hub stands and every path of this hub starts"),
                    ));
                }
            }
        }
    }
}

/// Checks that `identity` can sign this hub's advertisements: a chain from the hub certificate
/// up to and including the site root, naming `own`, with a P-256 key.
pub fn check_identity(identity: &Identity, own: Option<&HubId>) -> Result<(), String> {
    let chain = identity.chain();
    if !(2..=MAX_CHAIN_LEN).contains(&chain.len()) {
        return Err(format!(
            "holds {} certificates; it must run from the hub certificate up to and including the site root (2 to {MAX_CHAIN_LEN})",
            chain.len()
        ));
    }
    let certified = hub_certificate::hub_id_of(identity.leaf()).map_err(|e| e.to_string())?;
    if let Some(own) = own
        && certified != *own
    {
        return Err(format!(
            "the certificate is for hub {certified}, but `hub.id` is {own}"
        ));
    }
    if identity
        .key()
        .choose_scheme(&[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
        .is_none()
    {
        return Err("the hub key is not an ECDSA P-256 key".into());
    }
    Ok(())
}

impl ServiceConfig for HubdConfig {
    fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        self.check_hub(&mut problems);
        self.check_certificate(&mut problems);
        self.check_policies(&mut problems);
        services::check(
            &self.service,
            self.hub.id.as_ref(),
            |name| self.path_policy.contains_key(name),
            &mut problems,
        );
        ip::check(
            self.tun.as_ref(),
            &self.route,
            self.hub.id.as_ref(),
            |name| self.path_policy.contains_key(name),
            &mut problems,
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// The configuration and the peering agreements, all checked.
#[derive(Debug, Clone)]
pub struct HubdSetup {
    /// `hubd.toml`.
    pub config: HubdConfig,
    /// The `hubd.toml` layers read, in order.
    pub files: Vec<PathBuf>,
    /// The agreements read from the peering files.
    pub peers: Peers,
    /// Whether the peers directory exists (a hub without it has no peers).
    pub peers_dir_exists: bool,
}

/// Reads `hubd.toml` (layered; `explicit` replaces the site layer) and every peering file.
pub fn load(explicit: Option<&Path>) -> Result<HubdSetup, ConfigError> {
    load_from(&ConfigPaths::for_service(SERVICE, explicit))
}

/// [`load`] with the `hubd.toml` layers at `paths`.
pub fn load_from(paths: &ConfigPaths) -> Result<HubdSetup, ConfigError> {
    let loaded = paths.load::<HubdConfig>()?;
    let files = loaded.files.clone();
    let config = loaded.into_inner();
    let own = config.hub.id.clone().expect("validate requires hub.id");
    let dir = &config.hub.peers_dir;
    let peers_dir_exists = dir.is_dir();
    let peers = peer_file::load_dir(dir, &own)?;
    Ok(HubdSetup {
        config,
        files,
        peers,
        peers_dir_exists,
    })
}

impl HubdSetup {
    /// What `hubd --check-config` prints: the files read, this hub, its peers, its policies.
    pub fn report(&self) -> String {
        let config = &self.config;
        let mut out = String::new();
        let files: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        if files.is_empty() {
            out.push_str("config OK: no hubd.toml found, using built-in defaults\n");
        } else {
            let _ = writeln!(out, "config OK: read {}", files.join(", "));
        }
        let id = config.hub.id.as_ref().expect("validated");
        let jurisdiction = config.hub.jurisdiction.expect("validated");
        let listen: Vec<String> = config.hub.listen.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "hub {id} ({jurisdiction}, {}); links accepted on {}; metrics on {}",
            jurisdiction.name(),
            listen.join(", "),
            config.metrics.listen
        );
        let _ = match &config.certificate {
            CertificateSource::Trustd => {
                writeln!(out, "certificate: from trustd (profile hub)")
            }
            CertificateSource::Pem { chain, key } => writeln!(
                out,
                "certificate: PEM chain {} and key {}",
                chain.display(),
                key.display()
            ),
        };
        let dir = config.hub.peers_dir.display();
        match (self.peers.len(), self.peers_dir_exists) {
            (0, false) => {
                let _ = writeln!(out, "peers: none ({dir} does not exist)");
            }
            (0, true) => {
                let _ = writeln!(out, "peers: none (no *.toml in {dir})");
            }
            (n, _) => {
                let _ = writeln!(out, "peers: {n} in {dir}");
            }
        }
        for agreement in self.peers.iter() {
            let _ = writeln!(out, "  peer {agreement}");
        }
        for (name, policy) in config.path_policies() {
            let _ = writeln!(out, "path policy {name}: {policy}");
        }
        let (published, reached) = services::roles(&config.service);
        for service in published {
            let _ = writeln!(
                out,
                "service {} published here, connecting to {}",
                service.name, service.target
            );
        }
        for service in reached {
            let policy = service.path_policy.as_deref().map_or_else(
                || "any path".to_owned(),
                |name| format!("path policy {name}"),
            );
            let _ = writeln!(
                out,
                "service {} of hub {} reached on {} ({policy})",
                service.name, service.hub, service.listen
            );
        }
        for line in ip::report(config.tun.as_ref(), &config.route) {
            let _ = writeln!(out, "{line}");
        }
        out
    }
}
