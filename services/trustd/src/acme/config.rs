//! The ACME server's configuration (the `[acme]` table of trustd's TOML), and the choice of
//! certificate profile by name.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ca::{DnsName, Profile};

/// Why the ACME configuration is refused (before anything listens).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The base URL is not an `https://host[:port]` origin.
    #[error(
        "acme.base_url `{0}` must be an https origin without path, query or trailing slash (e.g. `https://acme.site.example:8443`)"
    )]
    BaseUrl(String),
    /// The same suffix is mapped twice.
    #[error("acme.profiles maps the suffix `{0}` twice")]
    DuplicateSuffix(DnsName),
    /// A profile ACME never issues.
    #[error(
        "acme.profiles maps `{suffix}` to `{profile}`; ACME issues only `service` and `device` certificates (hubs and operators enrol through bunkerctl)"
    )]
    ProfileNotForAcme {
        /// The suffix.
        suffix: DnsName,
        /// The profile.
        profile: Profile,
    },
    /// IP identifiers mapped to a profile ACME never issues.
    #[error(
        "acme.ip_identifier_profile is `{0}`; ACME issues only `service` and `device` certificates"
    )]
    IpProfileNotForAcme(Profile),
    /// A timing or bound that makes no sense.
    #[error("acme.{field} must be at least {min}")]
    TooSmall {
        /// The field.
        field: &'static str,
        /// The smallest value allowed.
        min: u64,
    },
}

/// Which profile the names below a suffix are issued under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRule {
    /// Names equal to or below this suffix...
    pub suffix: DnsName,
    /// ...get this profile (the most specific suffix wins).
    pub profile: Profile,
}

/// How the server reaches the identifiers it validates.
///
/// The appliance has no DNS for the devices on the site floor, so names can be pinned to
/// addresses here; names not listed are resolved by the system resolver when allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationConfig {
    /// Port of the http-01 check (RFC 8555 fixes 80; tests and labs move it).
    pub http_port: u16,
    /// Port of the tls-alpn-01 check (RFC 8737 fixes 443).
    pub tls_port: u16,
    /// Name (or IP identifier text) → the address to connect to.
    pub addresses: BTreeMap<String, IpAddr>,
    /// Whether names missing from `addresses` are resolved through the system resolver.
    pub system_resolver: bool,
    /// Time allowed for one validation attempt (connect, handshake, response), in seconds.
    pub timeout_secs: u64,
    /// Attempts before a challenge is declared invalid.
    pub attempts: u32,
    /// Pause between attempts, in seconds.
    pub retry_delay_secs: u64,
}

impl Default for ValidationConfig {
    fn default() -> Self {
        Self {
            http_port: 80,
            tls_port: 443,
            addresses: BTreeMap::new(),
            system_resolver: true,
            timeout_secs: 10,
            attempts: 3,
            retry_delay_secs: 2,
        }
    }
}

impl ValidationConfig {
    /// One attempt's time limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    /// The pause between attempts.
    pub fn retry_delay(&self) -> Duration {
        Duration::from_secs(self.retry_delay_secs)
    }
}

/// Bounds that keep memory and work per client finite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Accounts stored (each is a file in the state directory).
    pub max_accounts: usize,
    /// Outstanding nonces remembered.
    pub max_nonces: usize,
    /// Orders not yet valid or invalid, per account.
    pub max_pending_orders_per_account: usize,
    /// Orders held in memory in all.
    pub max_orders: usize,
    /// Identifiers in one order.
    pub max_identifiers: usize,
    /// How long a new order and its authorisations may stay pending, in seconds.
    pub order_lifetime_secs: u64,
    /// How long a valid authorisation is reused for new orders of the same account, in
    /// seconds (0: every order validates again).
    pub authorization_reuse_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_accounts: 100_000,
            max_nonces: super::nonce::DEFAULT_MAX_NONCES,
            max_pending_orders_per_account: 100,
            max_orders: 50_000,
            max_identifiers: crate::ca::csr::MAX_NAMES,
            order_lifetime_secs: 3600,
            authorization_reuse_secs: 3600,
        }
    }
}

/// The `[acme]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// Address of the HTTPS listener.
    pub listen: SocketAddr,
    /// The origin clients use (`https://acme.<site>:port`); every URL the server hands out and
    /// every JWS `url` is relative to it. Default: `https://<bound address>`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Terms of service URL; when set, new accounts must agree to them.
    #[serde(default)]
    pub terms_of_service: Option<String>,
    /// Suffix → profile rules. Default: `devices.<site>` → device, `<site>` → service.
    #[serde(default)]
    pub profiles: Option<Vec<ProfileRule>>,
    /// Profile for IP address identifiers; none refuses them.
    #[serde(default)]
    pub ip_identifier_profile: Option<Profile>,
    /// How challenges are validated.
    #[serde(default)]
    pub validation: ValidationConfig,
    /// Bounds.
    #[serde(default)]
    pub limits: Limits,
}

impl AcmeConfig {
    /// A configuration with every default, listening on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            base_url: None,
            terms_of_service: None,
            profiles: None,
            ip_identifier_profile: None,
            validation: ValidationConfig::default(),
            limits: Limits::default(),
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.base_url {
            check_base_url(url)?;
        }
        for (field, value, min) in [
            ("validation.timeout_secs", self.validation.timeout_secs, 1),
            (
                "validation.attempts",
                u64::from(self.validation.attempts),
                1,
            ),
            ("limits.max_accounts", self.limits.max_accounts as u64, 1),
            ("limits.max_nonces", self.limits.max_nonces as u64, 1),
            ("limits.max_orders", self.limits.max_orders as u64, 1),
            (
                "limits.max_identifiers",
                self.limits.max_identifiers as u64,
                1,
            ),
            (
                "limits.max_pending_orders_per_account",
                self.limits.max_pending_orders_per_account as u64,
                1,
            ),
            (
                "limits.order_lifetime_secs",
                self.limits.order_lifetime_secs,
                60,
            ),
        ] {
            if value < min {
                return Err(ConfigError::TooSmall { field, min });
            }
        }
        // The site's default rules are valid by construction; check what was configured.
        ProfileSelector::new(
            self.profiles.clone().unwrap_or_default(),
            self.ip_identifier_profile,
        )?;
        Ok(())
    }

    /// The profile selector for a site whose domain is `site`.
    pub fn profile_selector(&self, site: &DnsName) -> Result<ProfileSelector, ConfigError> {
        let rules = match &self.profiles {
            Some(rules) => rules.clone(),
            None => default_rules(site),
        };
        ProfileSelector::new(rules, self.ip_identifier_profile)
    }
}

fn check_base_url(url: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::BaseUrl(url.to_owned());
    let authority = url.strip_prefix("https://").ok_or_else(bad)?;
    if authority.is_empty()
        || authority
            .chars()
            .any(|c| matches!(c, '/' | '?' | '#' | '@') || c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    Ok(())
}

fn default_rules(site: &DnsName) -> Vec<ProfileRule> {
    let devices = site
        .prefixed("devices")
        .expect("a fixed label below a valid domain is a valid name");
    vec![
        ProfileRule {
            suffix: devices,
            profile: Profile::Device,
        },
        ProfileRule {
            suffix: site.clone(),
            profile: Profile::Service,
        },
    ]
}

/// Chooses the certificate profile for an order's identifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileSelector {
    rules: Vec<ProfileRule>,
    ip: Option<Profile>,
}

impl ProfileSelector {
    /// A selector over `rules`; only `service` and `device` are allowed.
    pub fn new(mut rules: Vec<ProfileRule>, ip: Option<Profile>) -> Result<Self, ConfigError> {
        for (index, rule) in rules.iter().enumerate() {
            if !matches!(rule.profile, Profile::Service | Profile::Device) {
                return Err(ConfigError::ProfileNotForAcme {
                    suffix: rule.suffix.clone(),
                    profile: rule.profile,
                });
            }
            if rules[..index].iter().any(|r| r.suffix == rule.suffix) {
                return Err(ConfigError::DuplicateSuffix(rule.suffix.clone()));
            }
        }
        if let Some(profile) = ip.filter(|p| !matches!(p, Profile::Service | Profile::Device)) {
            return Err(ConfigError::IpProfileNotForAcme(profile));
        }
        // Most specific first, so the first match is the right one.
        rules.sort_by_key(|rule| std::cmp::Reverse(rule.suffix.as_str().len()));
        Ok(Self { rules, ip })
    }

    /// The profile for a DNS name, if any rule covers it.
    pub fn for_dns(&self, name: &DnsName) -> Option<Profile> {
        self.rules
            .iter()
            .find(|rule| name.is_below(&rule.suffix))
            .map(|rule| rule.profile)
    }

    /// The profile for IP identifiers, if they are allowed.
    pub fn for_ip(&self) -> Option<Profile> {
        self.ip
    }

    /// The suffixes, for messages.
    pub fn suffixes(&self) -> String {
        self.rules
            .iter()
            .map(|rule| rule.suffix.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}
