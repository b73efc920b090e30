//! Whether the names in a request may be certified under a profile.
//!
//! The CSR parser has already made sure every name is well-formed; this module decides whether
//! the *requester's profile* may hold it. The rules that matter most for a site:
//! - each DNS name belongs to the profile with the most specific matching suffix, so a service
//!   certificate can never carry a hub's name (`oslo.hub.<site>`) even though the service profile
//!   allows the whole site domain;
//! - a hub has exactly one identity, so one compromised hub key never speaks for two hubs;
//! - an operator is a person, named by the CN, and every other name must carry that same name;
//! - where a CN is present it must equal one of the names, because TLS stacks that still read
//!   the CN must not see a name the CA did not check.

use std::net::IpAddr;

use super::names::{DnsName, IpRange, quote_untrusted};
use super::profile::{IssuancePolicy, Profile};
use super::subject::SubjectName;

/// URI scheme of BunkerOS identities: `bunkeros:<profile>:<id>`.
pub const IDENTITY_URI_SCHEME: &str = "bunkeros";
/// Longest operator name (a CN has at most 64 characters).
pub const MAX_OPERATOR_NAME_LEN: usize = 64;

/// Why a name may not be certified under the requested profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameRuleError {
    /// Neither a subject alternative name nor a usable CN.
    #[error("the request names nothing to certify; add a subject alternative name")]
    NoNames,
    /// A hub with more or fewer than one name.
    #[error(
        "a hub certificate carries exactly one name (`<hub-id>.hub.<site>` or `bunkeros:hub:<hub-id>`); the request has {0}"
    )]
    HubNeedsOneName(usize),
    /// A kind of name the profile never carries.
    #[error("`{profile}` certificates carry no {kind} names (asked for \"{name}\")")]
    KindNotAllowed {
        /// The profile.
        profile: Profile,
        /// The name kind.
        kind: &'static str,
        /// The name, quoted safely.
        name: String,
    },
    /// A DNS name under none of the profile's suffixes.
    #[error(
        "\"{name}\" is outside the names `{profile}` certificates may carry (below: {allowed})"
    )]
    OutsideSuffixes {
        /// The profile.
        profile: Profile,
        /// The name.
        name: DnsName,
        /// The allowed suffixes, comma-separated.
        allowed: String,
    },
    /// A DNS name that belongs to another profile's more specific suffix.
    #[error("\"{name}\" is reserved for `{owner}` certificates")]
    ReservedForProfile {
        /// The name.
        name: DnsName,
        /// The profile that owns it.
        owner: Profile,
    },
    /// A wildcard where the profile allows none.
    #[error("`{profile}` certificates may not carry the wildcard \"{name}\"")]
    WildcardNotAllowed {
        /// The profile.
        profile: Profile,
        /// The name.
        name: DnsName,
    },
    /// A hub DNS name that is not exactly one label below a hub suffix.
    #[error(
        "\"{0}\" is not a hub name; a hub is named `<hub-id>.<hub suffix>` with a one-label id"
    )]
    BadHubName(DnsName),
    /// An IP address outside the profile's ranges.
    #[error("{address} is outside the address ranges of `{profile}` certificates ({allowed})")]
    AddressNotAllowed {
        /// The profile.
        profile: Profile,
        /// The address.
        address: IpAddr,
        /// The allowed ranges, comma-separated, or "none configured".
        allowed: String,
    },
    /// A URI that is not the profile's identity URI.
    #[error("the URI \"{uri}\" is not a `{profile}` identity; expected `bunkeros:{profile}:<id>`")]
    BadIdentityUri {
        /// The profile.
        profile: Profile,
        /// The URI, quoted safely.
        uri: String,
    },
    /// An operator certificate without a CN.
    #[error("an operator certificate needs the operator's name as its common name")]
    MissingOperatorName,
    /// An operator name that is not a plain account-style name.
    #[error(
        "the operator name \"{0}\" is refused; use 1 to {MAX_OPERATOR_NAME_LEN} characters of a-z, 0-9, `.`, `_`, `-`, starting with a letter"
    )]
    BadOperatorName(String),
    /// An operator URI or e-mail that names someone else.
    #[error("\"{name}\" does not name the operator \"{operator}\" of the common name")]
    OperatorMismatch {
        /// The operator name (CN).
        operator: String,
        /// The name, quoted safely.
        name: String,
    },
    /// An operator e-mail at a domain the policy does not list.
    #[error("the e-mail domain of \"{email}\" is not one of the operator domains ({allowed})")]
    EmailDomainNotAllowed {
        /// The address.
        email: String,
        /// The allowed domains, comma-separated, or "none configured".
        allowed: String,
    },
    /// An operator with neither identity URI nor e-mail.
    #[error(
        "an operator certificate needs `bunkeros:operator:<name>` or `<name>@<operator domain>` beside the common name"
    )]
    OperatorWithoutIdentity,
    /// A CN that equals none of the certified names.
    #[error(
        "the common name \"{0}\" is not one of the requested names; it must repeat one of them"
    )]
    CommonNameNotAName(String),
}

/// The subject the CA will write, after every rule passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorisedSubject {
    /// The CN, if the request had one.
    pub common_name: Option<String>,
    /// The subject alternative names, at least one.
    pub names: Vec<SubjectName>,
}

/// Applies the rules of `profile` to a request's CN and names.
pub fn authorise(
    policy: &IssuancePolicy,
    profile: Profile,
    common_name: Option<&str>,
    names: &[SubjectName],
) -> Result<AuthorisedSubject, NameRuleError> {
    if profile == Profile::Operator {
        return authorise_operator(policy, common_name, names);
    }
    let names = names_or_common_name(common_name, names)?;
    match profile {
        Profile::Hub => check_hub(policy, &names)?,
        _ => {
            for name in &names {
                check_network_name(policy, profile, name)?;
            }
        }
    }
    if let Some(cn) = common_name
        && !names.iter().any(|name| name.text() == cn)
    {
        return Err(NameRuleError::CommonNameNotAName(quote_untrusted(cn, 64)));
    }
    Ok(AuthorisedSubject {
        common_name: common_name.map(str::to_owned),
        names,
    })
}

/// The SANs, or, for a request from an old client that put its only name in the CN, that
/// name as a SAN (relying parties match SANs only).
fn names_or_common_name(
    common_name: Option<&str>,
    names: &[SubjectName],
) -> Result<Vec<SubjectName>, NameRuleError> {
    if !names.is_empty() {
        return Ok(names.to_vec());
    }
    let Some(cn) = common_name else {
        return Err(NameRuleError::NoNames);
    };
    if let Ok(address) = cn.parse::<IpAddr>() {
        return Ok(vec![SubjectName::Ip(address)]);
    }
    DnsName::parse(cn)
        .map(|name| vec![SubjectName::Dns(name)])
        .map_err(|_| NameRuleError::NoNames)
}

fn check_hub(policy: &IssuancePolicy, names: &[SubjectName]) -> Result<(), NameRuleError> {
    let [name] = names else {
        return Err(NameRuleError::HubNeedsOneName(names.len()));
    };
    match name {
        SubjectName::Dns(dns) => {
            if dns.is_wildcard() {
                return Err(NameRuleError::WildcardNotAllowed {
                    profile: Profile::Hub,
                    name: dns.clone(),
                });
            }
            let one_label_below = policy
                .hub
                .dns_suffixes
                .iter()
                .any(|suffix| dns.labels_below(suffix) == Some(1));
            if one_label_below {
                Ok(())
            } else {
                Err(NameRuleError::BadHubName(dns.clone()))
            }
        }
        SubjectName::Uri(uri) => identity_id(Profile::Hub, uri).map(|_| ()),
        other => Err(kind_not_allowed(Profile::Hub, other)),
    }
}

/// Service and device names: DNS under the profile's suffixes, IPs in its ranges.
fn check_network_name(
    policy: &IssuancePolicy,
    profile: Profile,
    name: &SubjectName,
) -> Result<(), NameRuleError> {
    let rules = policy.profile(profile);
    match name {
        SubjectName::Dns(dns) => {
            if dns.is_wildcard() && !rules.allow_wildcards {
                return Err(NameRuleError::WildcardNotAllowed {
                    profile,
                    name: dns.clone(),
                });
            }
            match suffix_owners(policy, dns) {
                None => Err(NameRuleError::OutsideSuffixes {
                    profile,
                    name: dns.clone(),
                    allowed: join(&rules.dns_suffixes),
                }),
                Some(owners) if owners.contains(&profile) => Ok(()),
                Some(owners) => Err(if rules.dns_suffixes.iter().any(|s| dns.is_below(s)) {
                    NameRuleError::ReservedForProfile {
                        name: dns.clone(),
                        owner: owners[0],
                    }
                } else {
                    NameRuleError::OutsideSuffixes {
                        profile,
                        name: dns.clone(),
                        allowed: join(&rules.dns_suffixes),
                    }
                }),
            }
        }
        SubjectName::Ip(address) => {
            if rules.ip_ranges.iter().any(|range| range.contains(address)) {
                Ok(())
            } else {
                Err(NameRuleError::AddressNotAllowed {
                    profile,
                    address: *address,
                    allowed: join_ranges(&rules.ip_ranges),
                })
            }
        }
        other => Err(kind_not_allowed(profile, other)),
    }
}

/// The profiles owning the most specific configured suffix `name` lies below, if any.
fn suffix_owners(policy: &IssuancePolicy, name: &DnsName) -> Option<Vec<Profile>> {
    let longest = Profile::ALL
        .iter()
        .flat_map(|p| policy.profile(*p).dns_suffixes.iter())
        .filter(|suffix| name.is_below(suffix))
        .max_by_key(|suffix| suffix.as_str().len())?;
    Some(
        Profile::ALL
            .into_iter()
            .filter(|p| policy.profile(*p).dns_suffixes.contains(longest))
            .collect(),
    )
}

fn authorise_operator(
    policy: &IssuancePolicy,
    common_name: Option<&str>,
    names: &[SubjectName],
) -> Result<AuthorisedSubject, NameRuleError> {
    let operator = common_name.ok_or(NameRuleError::MissingOperatorName)?;
    check_operator_name(operator)?;
    if names.is_empty() {
        return Err(NameRuleError::OperatorWithoutIdentity);
    }
    for name in names {
        match name {
            SubjectName::Uri(uri) => {
                if identity_id(Profile::Operator, uri)? != operator {
                    return Err(NameRuleError::OperatorMismatch {
                        operator: operator.to_owned(),
                        name: quote_untrusted(uri, 80),
                    });
                }
            }
            SubjectName::Email(email) => check_operator_email(policy, operator, email)?,
            other => return Err(kind_not_allowed(Profile::Operator, other)),
        }
    }
    Ok(AuthorisedSubject {
        common_name: Some(operator.to_owned()),
        names: names.to_vec(),
    })
}

fn check_operator_name(name: &str) -> Result<(), NameRuleError> {
    let valid = name.len() <= MAX_OPERATOR_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(NameRuleError::BadOperatorName(quote_untrusted(name, 64)))
    }
}

fn check_operator_email(
    policy: &IssuancePolicy,
    operator: &str,
    email: &str,
) -> Result<(), NameRuleError> {
    let (local, domain) = email.split_once('@').unwrap_or((email, ""));
    if local != operator {
        return Err(NameRuleError::OperatorMismatch {
            operator: operator.to_owned(),
            name: quote_untrusted(email, 80),
        });
    }
    let domains = &policy.operator.email_domains;
    if domains.iter().any(|allowed| allowed.as_str() == domain) {
        Ok(())
    } else {
        Err(NameRuleError::EmailDomainNotAllowed {
            email: quote_untrusted(email, 80),
            allowed: join(domains),
        })
    }
}

/// The `<id>` of `bunkeros:<profile>:<id>`; the id follows DNS label rules so it can also be
/// a hub's DNS label.
fn identity_id(profile: Profile, uri: &str) -> Result<&str, NameRuleError> {
    let bad = || NameRuleError::BadIdentityUri {
        profile,
        uri: quote_untrusted(uri, 80),
    };
    let rest = uri
        .strip_prefix(IDENTITY_URI_SCHEME)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.strip_prefix(profile.name()))
        .and_then(|rest| rest.strip_prefix(':'))
        .ok_or_else(bad)?;
    let valid = match profile {
        Profile::Operator => check_operator_name(rest).is_ok(),
        _ => is_identity_label(rest),
    };
    if valid { Ok(rest) } else { Err(bad()) }
}

fn is_identity_label(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= super::names::MAX_LABEL_LEN
        && !id.starts_with('-')
        && !id.ends_with('-')
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn kind_not_allowed(profile: Profile, name: &SubjectName) -> NameRuleError {
    NameRuleError::KindNotAllowed {
        profile,
        kind: name.kind(),
        name: quote_untrusted(&name.text(), 80),
    }
}

fn join(names: &[DnsName]) -> String {
    if names.is_empty() {
        return "none configured".into();
    }
    names
        .iter()
        .map(DnsName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_ranges(ranges: &[IpRange]) -> String {
    if ranges.is_empty() {
        return "none configured".into();
    }
    ranges
        .iter()
        .map(IpRange::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
