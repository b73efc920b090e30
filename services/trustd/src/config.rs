//! trustd's configuration: the `trustd.toml` layers, checked before the TPM is touched.
//!
//! Read with [`appliance::config`] like every BunkerOS service: built-in defaults, then
//! `/usr/share/bunkeros/trustd.toml` (the image's), then `/var/lib/bunkeros/config/trustd.toml`
//! (the site's) or `--config PATH`. Unknown keys, wrong types and values out of range are
//! refused with `FILE:LINE:COLUMN`; [`TrustdConfig::validate`] refuses what only shows across
//! several values (an issuance policy that contradicts the site domain, an `authorized` policy
//! without its release key), naming the key and the file that set it. Every key is listed, with
//! its default, in the README's trustd section and in `image/config/trustd.toml`.
//!
//! The CA's identity and the TPM policy matter only on the first start, when the CA key and the
//! root certificate are created: afterwards they are part of the key and the certificate, and
//! changing them here changes nothing but a warning (see [`crate::daemon`]).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;

use appliance::config::{Invalid, Port, ServiceConfig};
use appliance::metrics::MetricsSection;
use serde::{Deserialize, Serialize};

use crate::acme::{AcmeConfig, Limits, ProfileRule, ValidationConfig};
use crate::authority::CaSetup;
use crate::ca::{CaKind, DnsName, IpRange, IssuancePolicy, Lifetime, Profile, SiteIdentity};
use crate::tpm::pcr;

#[cfg(test)]
mod tests;

/// The service name: the config file stem, the log identifier, the state directory.
pub const SERVICE: &str = "trustd";

/// Where the appliance publishes PCR 11 as `systemd-measure` predicted it for the booted slot
/// (bunkeros-slot.service copies it there from the slot's directory on the ESP).
pub const PCR11_PREDICTION: &str = "/run/bunkeros/slot/pcr11.expected";

/// Where the image installs the release key's public half.
pub const RELEASE_KEY: &str = "/usr/share/bunkeros/release-key.pem";

/// Where the appliance publishes the booted slot's release-signed PCR 11 policy.
pub const SIGNED_POLICY: &str = "/run/bunkeros/slot/pcr11.policy.json";

/// The PCR the UKI measures into: the one whose value the build predicts.
pub const PREDICTED_PCR: u8 = 11;

/// Default port of the read-only HTTP listener (CRL, root certificate, log proofs).
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// Default port of the ACME (RFC 8555) HTTPS listener: not 443, so trustd needs no privilege
/// to bind it; ACME clients take the port from the directory URL.
pub const DEFAULT_ACME_PORT: u16 = 8443;

/// Default port of the loopback metrics endpoint (DESIGN: trustd 9101).
pub const DEFAULT_METRICS_PORT: Port = Port::from_const(9101);

/// Shortest CRL validity accepted: refreshes stay rare TPM work.
pub const MIN_CRL_VALIDITY: Lifetime = Lifetime::hours(1);

/// Longest CRL validity accepted: a revocation must reach relying parties within a week.
pub const MAX_CRL_VALIDITY: Lifetime = Lifetime::days(7);

/// Everything trustd reads from `trustd.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrustdConfig {
    /// `[site]`: who the CA is.
    pub site: SiteSection,
    /// `[tpm]`: how to reach the TPM.
    pub tpm: TpmSection,
    /// `[policy]`: when the TPM lets the CA key sign.
    pub policy: PolicySection,
    /// `[issuance]`: per-profile overrides of the default issuance rules.
    pub issuance: IssuanceSection,
    /// `[crl]`: the certificate revocation list.
    pub crl: CrlSection,
    /// `[acme]`: the RFC 8555 server for devices and services.
    pub acme: AcmeSection,
    /// `[http]`: the read-only HTTP listener for CRL, root and log proofs.
    pub http: HttpSection,
    /// `[metrics]`: the loopback Prometheus endpoint.
    pub metrics: MetricsSection<{ DEFAULT_METRICS_PORT.get() }>,
}

/// `[site]`: the names the CA certificate carries and the domain it is constrained to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSection {
    /// The site's DNS domain; every DNS name the CA certifies lies within it, and the CA
    /// certificate is name-constrained to it.
    pub domain: DnsName,
    /// The site's name; the CA's common name is `<site_name> BunkerOS Site CA`.
    pub site_name: String,
    /// The organisation (`O=` of the CA certificate).
    pub organisation: String,
    /// `root`: the CA certificate is a self-signed site root, made on the first start.
    /// `intermediate`: an offline root signs it; the first start writes the request and the CA
    /// waits for the chain (`bunkerctl ca csr`, `bunkerctl ca install-chain`).
    pub ca: CaKind,
}

impl Default for SiteSection {
    fn default() -> Self {
        Self {
            domain: DnsName::parse("bunker.test").expect("a valid built-in domain"),
            site_name: "bunker".to_owned(),
            organisation: "BunkerOS".to_owned(),
            ca: CaKind::Root,
        }
    }
}

impl SiteSection {
    /// The checked identity for the CA certificate.
    pub fn identity(&self) -> Result<SiteIdentity, crate::ca::SiteIdentityError> {
        SiteIdentity::new(self.site_name.clone(), self.organisation.clone())
    }

    /// How the first start sets the CA's own certificate up.
    pub fn ca_setup(&self) -> Result<CaSetup, crate::ca::SiteIdentityError> {
        Ok(CaSetup {
            kind: self.ca,
            site: self.identity()?,
        })
    }
}

/// `[tpm]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TpmSection {
    /// The tpm2-tss TCTI, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`.
    /// Unset: `$TPM2TOOLS_TCTI`, else `device:/dev/tpmrm0`.
    pub tcti: Option<String>,
}

/// Which kind of TPM policy the CA key is created under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// PolicyPCR over fixed values: a new image means a new CA key.
    #[default]
    Pcr,
    /// PolicyAuthorize by the release key: images the release key signed for keep the CA.
    Authorized,
}

impl PolicyKind {
    /// The name as written in the file and shown in the status.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcr => "pcr",
            Self::Authorized => "authorized",
        }
    }
}

/// `[policy]`: the TPM policy a new CA key is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// `pcr` or `authorized`.
    pub mode: PolicyKind,
    /// The PCRs (SHA-256 bank) the key is bound to.
    pub pcrs: Vec<u8>,
    /// `pcr` mode: the file holding PCR 11 as the image build predicted it; PCR 11 is bound to
    /// that value, every other PCR to its value when the key is created. Empty: PCR 11 too is
    /// bound to its value at creation (development machines without a prediction).
    pub pcr11_prediction: PathBuf,
    /// `authorized` mode: the release signing key, a PEM P-256 public key (the image installs
    /// it). Ignored in `pcr` mode.
    pub release_key: PathBuf,
    /// `authorized` mode: the booted image's PCR policy signed by the release key (JSON); read
    /// at every start. Ignored in `pcr` mode.
    pub signed_policy: PathBuf,
    /// `authorized` mode: which of `pcrs` the release-signed policy covers (PCR 11, the one the
    /// build predicts, by default); the others are fixed to their values at enrolment. Ignored
    /// in `pcr` mode, where every PCR is fixed.
    pub signed_pcrs: Vec<u8>,
}

impl Default for PolicySection {
    fn default() -> Self {
        Self {
            mode: PolicyKind::Authorized,
            pcrs: vec![7, PREDICTED_PCR],
            pcr11_prediction: PathBuf::from(PCR11_PREDICTION),
            release_key: PathBuf::from(RELEASE_KEY),
            signed_policy: PathBuf::from(SIGNED_POLICY),
            signed_pcrs: vec![PREDICTED_PCR],
        }
    }
}

impl PolicySection {
    /// `signed_pcrs` must be some of `pcrs`: the PCRs the key is bound to are those the release
    /// key signs and those fixed at enrolment.
    fn check_signed_pcrs(&self, problems: &mut Vec<Invalid>) {
        let signed = &self.signed_pcrs;
        if let Err(error) = pcr::normalise_selection(signed) {
            problems.push(Invalid::new("policy.signed_pcrs", error.to_string()));
            return;
        }
        if pcr::normalise_selection(&self.pcrs).is_err() {
            return; // reported as `policy.pcrs`
        }
        let missing: Vec<String> = signed
            .iter()
            .filter(|pcr| !self.pcrs.contains(pcr))
            .map(u8::to_string)
            .collect();
        if missing.is_empty() {
            return;
        }
        let pcr = if missing.len() == 1 { "PCR" } else { "PCRs" };
        problems.push(Invalid::new(
            "policy.signed_pcrs",
            format!(
                "lists {pcr} {} outside `policy.pcrs` {:?}; the release key signs some of the PCRs the CA key is bound to, and the others are fixed at enrolment",
                missing.join(", "),
                self.pcrs
            ),
        ));
    }

    /// The PCR selection, sorted ("7+11" in the status line).
    pub fn selection_text(&self) -> String {
        let mut pcrs = self.pcrs.clone();
        pcrs.sort_unstable();
        pcrs.dedup();
        let names: Vec<String> = pcrs.iter().map(u8::to_string).collect();
        names.join("+")
    }

    /// The prediction file, unless disabled with an empty path.
    pub fn prediction_file(&self) -> Option<&std::path::Path> {
        (!self.pcr11_prediction.as_os_str().is_empty()).then_some(self.pcr11_prediction.as_path())
    }
}

/// Overrides of one profile's issuance rules; an unset key keeps the default for the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileOverrides {
    /// DNS names must lie strictly below one of these.
    pub dns_suffixes: Option<Vec<DnsName>>,
    /// IP address names must lie in one of these CIDR ranges.
    pub ip_ranges: Option<Vec<IpRange>>,
    /// Operator e-mail names must be at one of these domains.
    pub email_domains: Option<Vec<DnsName>>,
    /// Whether `*.name` may be requested (service and device).
    pub allow_wildcards: Option<bool>,
    /// Lifetime when the requester asks for none (`24h`, `7d`, ...).
    pub default_lifetime: Option<Lifetime>,
    /// Longest lifetime issued.
    pub max_lifetime: Option<Lifetime>,
}

/// `[issuance.<profile>]` tables.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct IssuanceSection {
    /// `[issuance.hub]`.
    pub hub: ProfileOverrides,
    /// `[issuance.service]`.
    pub service: ProfileOverrides,
    /// `[issuance.operator]`.
    pub operator: ProfileOverrides,
    /// `[issuance.device]`.
    pub device: ProfileOverrides,
}

impl IssuanceSection {
    fn overrides(&self, profile: Profile) -> &ProfileOverrides {
        match profile {
            Profile::Hub => &self.hub,
            Profile::Service => &self.service,
            Profile::Operator => &self.operator,
            Profile::Device => &self.device,
        }
    }
}

/// `[crl]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrlSection {
    /// `nextUpdate − thisUpdate` of every CRL; a new one is signed a quarter before it runs out.
    pub validity: Lifetime,
}

impl Default for CrlSection {
    fn default() -> Self {
        Self {
            validity: Lifetime::hours(24),
        }
    }
}

/// `[acme]`: the ACME (RFC 8555) server through which devices and services get certificates.
///
/// Its keys other than `enabled` are those of [`AcmeConfig`]: `listen`, `base_url`,
/// `terms_of_service`, `ip_identifier_profile`, `[[acme.profiles]]` (suffix → profile),
/// `[acme.validation]` (challenge ports, the name → address map, resolver, timeouts) and
/// `[acme.limits]`. Its TLS certificate is issued by the CA itself at start for `acme.<domain>`
/// (and the host of `base_url`), with a key that never leaves memory, and renewed before it
/// expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeSection {
    /// Whether the ACME listener runs.
    pub enabled: bool,
    /// Address of the HTTPS listener.
    pub listen: SocketAddr,
    /// The origin clients use, e.g. `https://acme.oslo.bunker.example:8443`; default
    /// `https://acme.<domain>:<port>`.
    pub base_url: Option<String>,
    /// Terms of service URL; when set, new accounts must agree to them.
    pub terms_of_service: Option<String>,
    /// Suffix → profile rules; default `devices.<domain>` → device, `<domain>` → service.
    pub profiles: Option<Vec<ProfileRule>>,
    /// Profile for IP address identifiers; unset refuses them.
    pub ip_identifier_profile: Option<Profile>,
    /// How challenges are validated.
    pub validation: ValidationConfig,
    /// Bounds on what clients may hold.
    pub limits: Limits,
}

impl Default for AcmeSection {
    fn default() -> Self {
        let defaults = AcmeConfig::new(SocketAddr::V6(std::net::SocketAddrV6::new(
            std::net::Ipv6Addr::UNSPECIFIED,
            DEFAULT_ACME_PORT,
            0,
            0,
        )));
        Self {
            enabled: true,
            listen: defaults.listen,
            base_url: defaults.base_url,
            terms_of_service: defaults.terms_of_service,
            profiles: defaults.profiles,
            ip_identifier_profile: defaults.ip_identifier_profile,
            validation: defaults.validation,
            limits: defaults.limits,
        }
    }
}

impl AcmeSection {
    /// The ACME server's configuration for a site whose domain is `domain`.
    pub fn to_acme_config(&self, domain: &DnsName) -> AcmeConfig {
        let mut config = AcmeConfig::new(self.listen);
        config.base_url = Some(
            self.base_url
                .clone()
                .unwrap_or_else(|| format!("https://acme.{domain}:{}", self.listen.port())),
        );
        config.terms_of_service = self.terms_of_service.clone();
        config.profiles = self.profiles.clone();
        config.ip_identifier_profile = self.ip_identifier_profile;
        config.validation = self.validation.clone();
        config.limits = self.limits.clone();
        config
    }
}

/// `[http]`: CRL, root certificate and transparency-log proofs over plain, read-only HTTP.
///
/// These are public by nature (anyone may check a certificate, and the log exists so that
/// anyone can audit it), and each is signed by the CA key, so TLS would add no trust; relying
/// parties that cannot reach the CA over D-Bus fetch them here. Nothing on this listener
/// changes state. It is on loopback by default; a site exposes it by setting `listen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Whether the listener runs.
    pub enabled: bool,
    /// Address to listen on.
    pub listen: SocketAddr,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, DEFAULT_HTTP_PORT)),
        }
    }
}

impl TrustdConfig {
    /// The issuance rules: the defaults for the site domain with the configured overrides.
    ///
    /// Call it on a validated configuration: the site domain must not be a wildcard.
    pub fn issuance_policy(&self) -> IssuancePolicy {
        let mut policy = IssuancePolicy::for_site(self.site.domain.clone());
        for profile in Profile::ALL {
            let overrides = self.issuance.overrides(profile).clone();
            let rules = match profile {
                Profile::Hub => &mut policy.hub,
                Profile::Service => &mut policy.service,
                Profile::Operator => &mut policy.operator,
                Profile::Device => &mut policy.device,
            };
            if let Some(value) = overrides.dns_suffixes {
                rules.dns_suffixes = value;
            }
            if let Some(value) = overrides.ip_ranges {
                rules.ip_ranges = value;
            }
            if let Some(value) = overrides.email_domains {
                rules.email_domains = value;
            }
            if let Some(value) = overrides.allow_wildcards {
                rules.allow_wildcards = value;
            }
            if let Some(value) = overrides.default_lifetime {
                rules.default_lifetime = value;
            }
            if let Some(value) = overrides.max_lifetime {
                rules.max_lifetime = value;
            }
        }
        policy
    }

    fn check_site(&self, problems: &mut Vec<Invalid>) {
        if let Err(error) = self.site.identity() {
            let key = match &error {
                crate::ca::SiteIdentityError::Invalid { field, .. } if *field == "organisation" => {
                    "site.organisation"
                }
                _ => "site.site_name",
            };
            problems.push(Invalid::new(key, error.to_string()));
        }
        if self.site.domain.is_wildcard() {
            problems.push(Invalid::new(
                "site.domain",
                format!(
                    "`{}` is a wildcard; the site domain is a plain name such as `oslo.bunker.example`",
                    self.site.domain
                ),
            ));
        }
    }

    fn check_policy(&self, problems: &mut Vec<Invalid>) {
        let policy = &self.policy;
        if let Err(error) = pcr::normalise_selection(&policy.pcrs) {
            problems.push(Invalid::new("policy.pcrs", error.to_string()));
        }
        match policy.mode {
            // `release_key`, `signed_policy` and `signed_pcrs` have defaults (the image's) and are
            // ignored here, so a site can switch modes without unsetting keys TOML cannot unset.
            PolicyKind::Pcr => {}
            PolicyKind::Authorized => {
                for (key, path) in [
                    ("release_key", &policy.release_key),
                    ("signed_policy", &policy.signed_policy),
                ] {
                    if !path.is_absolute() {
                        problems.push(Invalid::new(
                            format!("policy.{key}"),
                            "must be an absolute path",
                        ));
                    }
                }
                policy.check_signed_pcrs(problems);
            }
        }
    }

    fn check_issuance(&self, problems: &mut Vec<Invalid>) {
        use crate::ca::PolicyError;
        if self.site.domain.is_wildcard() {
            return; // reported by check_site; the defaults cannot be derived from a wildcard
        }
        let Err(error) = self.issuance_policy().validate() else {
            return;
        };
        let key = match &error {
            PolicyError::NotApplicable { profile, field } => format!("issuance.{profile}.{field}"),
            PolicyError::SuffixOutsideSite { profile, .. } => {
                format!("issuance.{profile}.dns_suffixes")
            }
            PolicyError::WildcardDomain { profile, name } => {
                let overrides = self.issuance.overrides(*profile);
                let in_emails = overrides
                    .email_domains
                    .as_ref()
                    .is_some_and(|domains| domains.contains(name));
                let field = if in_emails {
                    "email_domains"
                } else {
                    "dns_suffixes"
                };
                format!("issuance.{profile}.{field}")
            }
            PolicyError::Lifetime { profile, .. } => format!("issuance.{profile}.max_lifetime"),
            PolicyError::NothingAllowed { profile } => {
                format!("issuance.{profile}.dns_suffixes")
            }
        };
        problems.push(Invalid::new(key, error.to_string()));
    }

    fn check_crl(&self, problems: &mut Vec<Invalid>) {
        let validity = self.crl.validity;
        if validity < MIN_CRL_VALIDITY || validity > MAX_CRL_VALIDITY {
            problems.push(Invalid::new(
                "crl.validity",
                format!(
                    "{validity} is out of range, expected {MIN_CRL_VALIDITY} to {MAX_CRL_VALIDITY}"
                ),
            ));
        }
    }

    fn check_acme(&self, problems: &mut Vec<Invalid>) {
        use crate::acme::ConfigError;
        if !self.acme.enabled || self.site.domain.is_wildcard() {
            return;
        }
        let config = self.acme.to_acme_config(&self.site.domain);
        let result = config
            .validate()
            .and_then(|()| config.profile_selector(&self.site.domain).map(|_| ()));
        let Err(error) = result else {
            return;
        };
        let key = match &error {
            ConfigError::BaseUrl(_) => "acme.base_url".to_owned(),
            ConfigError::DuplicateSuffix(_) | ConfigError::ProfileNotForAcme { .. } => {
                "acme.profiles".to_owned()
            }
            ConfigError::IpProfileNotForAcme(_) => "acme.ip_identifier_profile".to_owned(),
            ConfigError::TooSmall { field, .. } => format!("acme.{field}"),
        };
        // The acme module's sentences already name the key; keep only what follows it.
        let text = error.to_string();
        let reason = text
            .strip_prefix(&format!("{key} "))
            .unwrap_or(&text)
            .to_owned();
        problems.push(Invalid::new(key, reason));
    }

    fn check_listeners(&self, problems: &mut Vec<Invalid>) {
        if self.http.enabled && self.http.listen.port() == 0 {
            problems.push(Invalid::new(
                "http.listen",
                format!(
                    "`{}` has port 0; give the port relying parties fetch the CRL from, e.g. {DEFAULT_HTTP_PORT}",
                    self.http.listen
                ),
            ));
        }
        if self.acme.enabled && self.acme.listen.port() == 0 {
            problems.push(Invalid::new(
                "acme.listen",
                format!(
                    "`{}` has port 0; give the port ACME clients connect to, e.g. {DEFAULT_ACME_PORT}",
                    self.acme.listen
                ),
            ));
        }
        let metrics = ("metrics.listen", true, self.metrics.listen.get());
        let http = ("http.listen", self.http.enabled, self.http.listen);
        let acme = ("acme.listen", self.acme.enabled, self.acme.listen);
        for ((key, on, addr), (other, other_on, other_addr)) in
            [(http, metrics), (acme, metrics), (acme, http)]
        {
            if on && other_on && overlap(addr, other_addr) {
                problems.push(Invalid::new(
                    key,
                    format!(
                        "`{addr}` takes the port of `{other}` (`{other_addr}`); the two listeners need different ports"
                    ),
                ));
            }
        }
    }
}

/// Whether two listeners would fight over a port: the same port on the same address, or on
/// any address when one of them listens on all of them.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

impl ServiceConfig for TrustdConfig {
    fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        self.check_site(&mut problems);
        self.check_policy(&mut problems);
        self.check_issuance(&mut problems);
        self.check_crl(&mut problems);
        self.check_acme(&mut problems);
        self.check_listeners(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
