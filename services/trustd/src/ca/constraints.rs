//! Name constraints: the names the CA certificate itself allows its leaves to carry.
//!
//! A CA certificate this CA creates (the self-signed root, or the request for an intermediate)
//! carries a critical nameConstraints extension derived from the issuance policy: DNS names
//! within the site domain, IP addresses within the configured ranges (all addresses excluded
//! when none are configured). A relying party then refuses a certificate for `bank.example` from
//! this CA even if the CA host were subverted: "trust is local" holds in the verifier, not only
//! in trustd's own checks.
//!
//! Only DNS and IP names are constrained, because those are the forms every verifier on the
//! site implements. rustls-webpki fails closed on rfc822Name, URI and directoryName constraints
//! (it refuses every certificate carrying such a name, or any subject at all for directoryName),
//! so constraining operator e-mail would make every operator certificate unusable with rustls.
//! E-mail, URI and subject rules are enforced by trustd's profiles instead; an installed chain
//! that constrains those forms is refused, or, for e-mail, makes the CA refuse e-mail names.
//!
//! The same type reads the constraints of an installed CA certificate ([`NameScope::from_certificate`]),
//! so issuance checks names against what the certificate really says, whoever wrote it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, GeneralSubtree};

use super::names::{DnsName, IpRange};
use super::profile::{IssuancePolicy, Profile};
use super::subject::SubjectName;

/// OID of the nameConstraints extension.
const OID_NAME_CONSTRAINTS: [u64; 4] = [2, 5, 29, 30];

/// Why the name constraints of a CA certificate cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    /// The extension does not decode.
    #[error("its nameConstraints extension does not decode")]
    Malformed,
    /// A constraint on a kind of name this CA cannot check, which relying parties would enforce
    /// against every leaf (a directoryName constraint, for instance, judges the subject).
    #[error("its name constraints restrict {0} names, which this CA cannot check at issuance")]
    Unsupported(&'static str),
    /// A constraint entry that is not a valid name or range.
    #[error("its name constraints contain an invalid {kind} entry \"{entry}\"")]
    BadEntry {
        /// The name kind.
        kind: &'static str,
        /// The entry.
        entry: String,
    },
}

/// The permitted and excluded subtrees of a CA certificate, for the name kinds this CA issues.
///
/// An empty permitted list leaves that kind unconstrained (RFC 5280 §4.2.1.10).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameScope {
    /// DNS subtrees names must lie within.
    pub permitted_dns: Vec<DnsName>,
    /// DNS subtrees names must not lie within.
    pub excluded_dns: Vec<DnsName>,
    /// Address ranges IP names must lie in.
    pub permitted_ip: Vec<IpRange>,
    /// Address ranges IP names must not lie in.
    pub excluded_ip: Vec<IpRange>,
    /// Whether the certificate constrains rfc822Name at all; rustls-webpki then rejects every
    /// leaf with an e-mail name, so none may be issued.
    pub constrains_email: bool,
}

impl NameScope {
    /// The scope a CA created for `policy` declares.
    pub fn from_policy(policy: &IssuancePolicy) -> Self {
        let mut permitted_ip: Vec<IpRange> = Vec::new();
        for range in Profile::ALL
            .iter()
            .flat_map(|p| policy.profile(*p).ip_ranges.iter())
        {
            if !permitted_ip.iter().any(|wider| wider.covers(range)) {
                permitted_ip.retain(|narrower| !range.covers(narrower));
                permitted_ip.push(*range);
            }
        }
        let excluded_ip = if permitted_ip.is_empty() {
            // No IP names are issued: say so to verifiers too.
            vec![
                IpRange::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).expect("0.0.0.0/0"),
                IpRange::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).expect("::/0"),
            ]
        } else {
            Vec::new()
        };
        Self {
            permitted_dns: vec![policy.site_domain.clone()],
            excluded_dns: Vec::new(),
            permitted_ip,
            excluded_ip,
            constrains_email: false,
        }
    }

    /// The scope declared by `certificate`; unconstrained if it has no nameConstraints.
    pub fn from_certificate(certificate: &X509Certificate<'_>) -> Result<Self, ConstraintError> {
        let Some(extension) = certificate
            .name_constraints()
            .map_err(|_| ConstraintError::Malformed)?
        else {
            return Ok(Self::default());
        };
        let mut scope = Self::default();
        for (subtrees, permitted) in [
            (&extension.value.permitted_subtrees, true),
            (&extension.value.excluded_subtrees, false),
        ] {
            for subtree in subtrees.iter().flatten() {
                scope.add(subtree, permitted)?;
            }
        }
        Ok(scope)
    }

    fn add(
        &mut self,
        subtree: &GeneralSubtree<'_>,
        permitted: bool,
    ) -> Result<(), ConstraintError> {
        match &subtree.base {
            GeneralName::DNSName(text) => {
                let text = text.trim_start_matches('.').to_ascii_lowercase();
                let name = DnsName::parse(&text).map_err(|_| ConstraintError::BadEntry {
                    kind: "DNS",
                    entry: super::names::quote_untrusted(&text, 80),
                })?;
                if permitted {
                    &mut self.permitted_dns
                } else {
                    &mut self.excluded_dns
                }
                .push(name);
            }
            GeneralName::IPAddress(octets) => {
                let range = IpRange::from_constraint_octets(octets).ok_or_else(|| {
                    ConstraintError::BadEntry {
                        kind: "IP",
                        entry: hex::encode(octets),
                    }
                })?;
                if permitted {
                    &mut self.permitted_ip
                } else {
                    &mut self.excluded_ip
                }
                .push(range);
            }
            GeneralName::RFC822Name(_) => self.constrains_email = true,
            GeneralName::URI(_) => return Err(ConstraintError::Unsupported("URI")),
            GeneralName::DirectoryName(_) => return Err(ConstraintError::Unsupported("directory")),
            _ => return Err(ConstraintError::Unsupported("other")),
        }
        Ok(())
    }

    /// Whether a leaf of this CA may carry `name`, judged as RFC 5280 verifiers judge it.
    pub fn permits(&self, name: &SubjectName) -> bool {
        match name {
            SubjectName::Dns(dns) => {
                let permitted = self.permitted_dns.is_empty()
                    || self.permitted_dns.iter().any(|tree| dns.is_within(tree));
                // A wildcard also stands for the names below its base that an exclusion may hit.
                let excluded = self.excluded_dns.iter().any(|tree| {
                    dns.is_within(tree)
                        || (dns.is_wildcard()
                            && wildcard_base(dns).is_some_and(|base| tree.is_below(&base)))
                });
                permitted && !excluded
            }
            SubjectName::Ip(address) => {
                (self.permitted_ip.is_empty()
                    || self.permitted_ip.iter().any(|r| r.contains(address)))
                    && !self.excluded_ip.iter().any(|r| r.contains(address))
            }
            SubjectName::Email(_) => !self.constrains_email,
            // URI constraints are refused when reading a certificate, so URIs are unconstrained.
            SubjectName::Uri(_) => true,
        }
    }

    /// The first configured suffix, range or domain of `policy` this scope would refuse: a
    /// configuration that can only produce certificates relying parties reject.
    pub fn policy_outside(&self, policy: &IssuancePolicy) -> Option<String> {
        for profile in Profile::ALL {
            let rules = policy.profile(profile);
            for suffix in &rules.dns_suffixes {
                let sample = suffix.prefixed("a").ok().map(SubjectName::Dns);
                let cut = self.excluded_dns.iter().any(|tree| tree.is_within(suffix));
                if cut || !sample.is_some_and(|name| self.permits(&name)) {
                    return Some(format!("profile `{profile}`: DNS suffix `{suffix}`"));
                }
            }
            for range in &rules.ip_ranges {
                let inside = self.permitted_ip.is_empty()
                    || self.permitted_ip.iter().any(|tree| tree.covers(range));
                if !inside || self.excluded_ip.iter().any(|tree| tree.overlaps(range)) {
                    return Some(format!("profile `{profile}`: address range {range}"));
                }
            }
            if let Some(domain) = rules.email_domains.first()
                && self.constrains_email
            {
                return Some(format!(
                    "profile `{profile}`: e-mail domain `{domain}` (the CA certificate constrains \
                     e-mail names, which rustls then refuses in every certificate)"
                ));
            }
        }
        None
    }

    /// The critical nameConstraints extension declaring this scope, for a CA certificate or
    /// the request for one.
    pub fn to_extension(&self) -> rcgen::CustomExtension {
        let permitted = subtrees(&self.permitted_dns, &self.permitted_ip);
        let excluded = subtrees(&self.excluded_dns, &self.excluded_ip);
        let mut content = Vec::new();
        if !permitted.is_empty() {
            content.extend(tlv(0xa0, &permitted));
        }
        if !excluded.is_empty() {
            content.extend(tlv(0xa1, &excluded));
        }
        let mut extension =
            rcgen::CustomExtension::from_oid_content(&OID_NAME_CONSTRAINTS, tlv(0x30, &content));
        extension.set_criticality(true);
        extension
    }

    /// Whether the scope constrains nothing.
    pub fn is_unconstrained(&self) -> bool {
        *self == Self::default()
    }
}

/// `base` of `*.base`.
fn wildcard_base(name: &DnsName) -> Option<DnsName> {
    DnsName::parse(name.as_str().strip_prefix("*.")?).ok()
}

/// The GeneralSubtree sequence for one list of constraints.
fn subtrees(dns: &[DnsName], ip: &[IpRange]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in dns {
        out.extend(tlv(0x30, &tlv(0x82, name.as_str().as_bytes())));
    }
    for range in ip {
        out.extend(tlv(0x30, &tlv(0x87, &range.constraint_octets())));
    }
    out
}

/// A DER tag-length-value with a definite length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}
