//! Certificate profiles: who gets which kind of certificate, for how long, under which names.
//!
//! | profile    | key usage                                   | EKU                    | default / max life | names |
//! |------------|---------------------------------------------|------------------------|--------------------|-------|
//! | `hub`      | digitalSignature (+ keyAgreement on EC keys) | serverAuth, clientAuth | 30 d / 30 d        | exactly one: DNS `<id>.hub.<site>` or URI `bunkeros:hub:<id>` |
//! | `service`  | digitalSignature                            | serverAuth, clientAuth | 24 h / 7 d         | DNS under the site domain (not under another profile's suffix); IPs in configured ranges |
//! | `operator` | digitalSignature                            | clientAuth             | 8 h / 12 h         | CN = operator name, plus URI `bunkeros:operator:<name>` and/or e-mail `<name>@<domain>` |
//! | `device`   | digitalSignature                            | serverAuth, clientAuth | 7 d / 30 d         | DNS under `devices.<site>`; IPs in configured ranges |
//!
//! Why these choices:
//! - Every link in BunkerOS is mutual TLS 1.3, where the certificate key only signs the
//!   handshake: `digitalSignature` is all a leaf needs. Hubs additionally get `keyAgreement` on
//!   EC keys, so a hub's certified key may also authenticate a static-ECDH link handshake; other
//!   roles have no such use and do not get it.
//! - Hubs and services both accept and open connections, hence serverAuth and clientAuth.
//!   Operators only ever connect. Devices (miners, sensor gateways) are dialled by `minerd` and
//!   `sited` for telemetry and control, and themselves dial the Stratum proxy: both directions.
//! - Lifetimes are short because expiry is the revocation that always works, even with the
//!   uplink cut: an operator's certificate lasts a shift, a service's a day. Hubs get 30 days
//!   because a hub link must survive a long outage of the site's own CA host.
//!
//! Name rules that are not configuration are enforced in [`super::name_rules`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::lifetime::{Lifetime, MAX_CONFIGURABLE_LIFETIME, MIN_LIFETIME};
use super::names::{DnsName, IpRange};
use super::subject::KeyKind;

/// A certificate profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A hub of the secure routing mesh (`hubd` links).
    Hub,
    /// A service on the site network (an API, a dashboard, a daemon's TLS endpoint).
    Service,
    /// A person operating the site (`bunkerctl`, dashboards).
    Operator,
    /// A machine on the site floor: ASIC miner, sensor gateway, UPS controller.
    Device,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Profile; 4] = [Self::Hub, Self::Service, Self::Operator, Self::Device];

    /// The profile's name in configuration, D-Bus and `bunkerctl`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hub => "hub",
            Self::Service => "service",
            Self::Operator => "operator",
            Self::Device => "device",
        }
    }

    /// The key usages a certificate of this profile carries for a key of kind `key`.
    pub fn key_usages(&self, key: KeyKind) -> Vec<KeyUsage> {
        let mut usages = vec![KeyUsage::DigitalSignature];
        if *self == Self::Hub && key.can_agree_keys() {
            usages.push(KeyUsage::KeyAgreement);
        }
        usages
    }

    /// The extended key usages a certificate of this profile carries.
    pub fn extended_key_usages(&self) -> &'static [ExtendedKeyUsage] {
        match self {
            Self::Hub | Self::Service | Self::Device => {
                &[ExtendedKeyUsage::ServerAuth, ExtendedKeyUsage::ClientAuth]
            }
            Self::Operator => &[ExtendedKeyUsage::ClientAuth],
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile name that does not exist.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "there is no certificate profile `{0}`; the profiles are hub, service, operator and device"
)]
pub struct UnknownProfile(pub String);

impl FromStr for Profile {
    type Err = UnknownProfile;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|profile| profile.name() == text)
            .ok_or_else(|| UnknownProfile(super::names::quote_untrusted(text, 40)))
    }
}

/// A key usage a leaf may carry. CA usages (keyCertSign, cRLSign) are not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyUsage {
    /// Signing handshakes and data.
    DigitalSignature,
    /// Static (EC)DH key agreement.
    KeyAgreement,
}

impl KeyUsage {
    pub(crate) fn to_rcgen(self) -> rcgen::KeyUsagePurpose {
        match self {
            Self::DigitalSignature => rcgen::KeyUsagePurpose::DigitalSignature,
            Self::KeyAgreement => rcgen::KeyUsagePurpose::KeyAgreement,
        }
    }
}

/// An extended key usage a leaf may carry: TLS roles only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExtendedKeyUsage {
    /// TLS server authentication.
    ServerAuth,
    /// TLS client authentication.
    ClientAuth,
}

impl ExtendedKeyUsage {
    pub(crate) fn to_rcgen(self) -> rcgen::ExtendedKeyUsagePurpose {
        match self {
            Self::ServerAuth => rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            Self::ClientAuth => rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        }
    }
}

/// The configurable part of one profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePolicy {
    /// DNS names must lie strictly below one of these (hub: exactly one label below).
    #[serde(default)]
    pub dns_suffixes: Vec<DnsName>,
    /// IP address names must lie in one of these; empty refuses IP names.
    #[serde(default)]
    pub ip_ranges: Vec<IpRange>,
    /// Operator e-mail names must be at one of these domains (exactly).
    #[serde(default)]
    pub email_domains: Vec<DnsName>,
    /// Whether `*.name` may be requested (service and device only).
    #[serde(default)]
    pub allow_wildcards: bool,
    /// Lifetime when the requester asks for none.
    pub default_lifetime: Lifetime,
    /// Longest lifetime issued; longer requests are cut to it.
    pub max_lifetime: Lifetime,
}

/// Why an issuance policy is refused (at configuration time, before trustd serves).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A field that means nothing for this profile: almost certainly a misplaced line.
    #[error("profile `{profile}`: `{field}` does not apply to this profile")]
    NotApplicable {
        /// The profile.
        profile: Profile,
        /// The field.
        field: &'static str,
    },
    /// A DNS suffix outside the site domain: the CA's name constraints would make such
    /// certificates fail verification everywhere.
    #[error("profile `{profile}`: DNS suffix `{suffix}` is not within the site domain `{site}`")]
    SuffixOutsideSite {
        /// The profile.
        profile: Profile,
        /// The suffix.
        suffix: DnsName,
        /// The site domain.
        site: DnsName,
    },
    /// A wildcard where a domain is expected.
    #[error("profile `{profile}`: `{name}` is a wildcard; suffixes and domains are plain names")]
    WildcardDomain {
        /// The profile.
        profile: Profile,
        /// The name.
        name: DnsName,
    },
    /// Lifetimes out of order or out of bounds.
    #[error("profile `{profile}`: {reason}")]
    Lifetime {
        /// The profile.
        profile: Profile,
        /// What is wrong.
        reason: String,
    },
    /// A profile that can never issue anything.
    #[error("profile `{profile}`: it allows no names at all (no DNS suffix and no IP range)")]
    NothingAllowed {
        /// The profile.
        profile: Profile,
    },
}

/// The rules issuance follows, for the whole site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuancePolicy {
    /// The site's DNS domain: every DNS name the CA certifies lies within it, and the CA
    /// certificates it creates are name-constrained to it.
    pub site_domain: DnsName,
    /// Rules of the `hub` profile.
    pub hub: ProfilePolicy,
    /// Rules of the `service` profile.
    pub service: ProfilePolicy,
    /// Rules of the `operator` profile.
    pub operator: ProfilePolicy,
    /// Rules of the `device` profile.
    pub device: ProfilePolicy,
}

impl IssuancePolicy {
    /// The defaults of the profile table above for `site_domain`: hubs under
    /// `hub.<site>`, services anywhere else under the site, devices under `devices.<site>`,
    /// operator e-mail at the site domain, no IP names until ranges are configured.
    pub fn for_site(site_domain: DnsName) -> Self {
        let under = |label: &str| {
            site_domain
                .prefixed(label)
                .expect("a fixed label below a valid domain is a valid name")
        };
        Self {
            hub: ProfilePolicy {
                dns_suffixes: vec![under("hub")],
                ip_ranges: Vec::new(),
                email_domains: Vec::new(),
                allow_wildcards: false,
                default_lifetime: Lifetime::days(30),
                max_lifetime: Lifetime::days(30),
            },
            service: ProfilePolicy {
                dns_suffixes: vec![site_domain.clone()],
                ip_ranges: Vec::new(),
                email_domains: Vec::new(),
                allow_wildcards: false,
                default_lifetime: Lifetime::hours(24),
                max_lifetime: Lifetime::days(7),
            },
            operator: ProfilePolicy {
                dns_suffixes: Vec::new(),
                ip_ranges: Vec::new(),
                email_domains: vec![site_domain.clone()],
                allow_wildcards: false,
                default_lifetime: Lifetime::hours(8),
                max_lifetime: Lifetime::hours(12),
            },
            device: ProfilePolicy {
                dns_suffixes: vec![under("devices")],
                ip_ranges: Vec::new(),
                email_domains: Vec::new(),
                allow_wildcards: false,
                default_lifetime: Lifetime::days(7),
                max_lifetime: Lifetime::days(30),
            },
            site_domain,
        }
    }

    /// The rules of `profile`.
    pub fn profile(&self, profile: Profile) -> &ProfilePolicy {
        match profile {
            Profile::Hub => &self.hub,
            Profile::Service => &self.service,
            Profile::Operator => &self.operator,
            Profile::Device => &self.device,
        }
    }

    /// Checks the policy as a whole; trustd refuses to start with a policy that fails.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for profile in Profile::ALL {
            self.validate_profile(profile)?;
        }
        Ok(())
    }

    fn validate_profile(&self, profile: Profile) -> Result<(), PolicyError> {
        let rules = self.profile(profile);
        let not_applicable = |field| Err(PolicyError::NotApplicable { profile, field });
        match profile {
            Profile::Hub if !rules.ip_ranges.is_empty() => return not_applicable("ip_ranges"),
            Profile::Hub | Profile::Operator if rules.allow_wildcards => {
                return not_applicable("allow_wildcards");
            }
            Profile::Operator if !rules.dns_suffixes.is_empty() => {
                return not_applicable("dns_suffixes");
            }
            Profile::Operator if !rules.ip_ranges.is_empty() => return not_applicable("ip_ranges"),
            Profile::Hub | Profile::Service | Profile::Device
                if !rules.email_domains.is_empty() =>
            {
                return not_applicable("email_domains");
            }
            _ => {}
        }
        for suffix in &rules.dns_suffixes {
            if suffix.is_wildcard() {
                return Err(PolicyError::WildcardDomain {
                    profile,
                    name: suffix.clone(),
                });
            }
            if !suffix.is_within(&self.site_domain) {
                return Err(PolicyError::SuffixOutsideSite {
                    profile,
                    suffix: suffix.clone(),
                    site: self.site_domain.clone(),
                });
            }
        }
        if let Some(domain) = rules.email_domains.iter().find(|d| d.is_wildcard()) {
            return Err(PolicyError::WildcardDomain {
                profile,
                name: domain.clone(),
            });
        }
        let takes_no_names = rules.dns_suffixes.is_empty() && rules.ip_ranges.is_empty();
        if matches!(profile, Profile::Service | Profile::Device) && takes_no_names {
            return Err(PolicyError::NothingAllowed { profile });
        }
        check_lifetimes(profile, rules)
    }
}

fn check_lifetimes(profile: Profile, rules: &ProfilePolicy) -> Result<(), PolicyError> {
    let reason = if rules.max_lifetime > MAX_CONFIGURABLE_LIFETIME {
        Some(format!(
            "max_lifetime {} is longer than the {} this CA allows; renew more often instead",
            rules.max_lifetime, MAX_CONFIGURABLE_LIFETIME
        ))
    } else if rules.default_lifetime < MIN_LIFETIME {
        Some(format!(
            "default_lifetime {} is shorter than the minimum {MIN_LIFETIME}",
            rules.default_lifetime
        ))
    } else if rules.default_lifetime > rules.max_lifetime {
        Some(format!(
            "default_lifetime {} is longer than max_lifetime {}",
            rules.default_lifetime, rules.max_lifetime
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PolicyError::Lifetime { profile, reason }),
        None => Ok(()),
    }
}
