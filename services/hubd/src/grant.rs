//! [`Grant`]: what this hub lets one peer use, as written in that peer's peering file.
//!
//! A peer may send traffic to the destinations it is granted here: IP prefixes behind this hub
//! and named services published at this hub. Transit (traffic from the peer that goes on to
//! another hub through this one) is a separate grant, off unless the file says so. Nothing is
//! granted by default: a new peering file opens nothing until the operator lists it.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// An IP prefix, e.g. `10.20.0.0/16` or `2001:db8::/48`, with no host bits set.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IpPrefix {
    address: IpAddr,
    length: u8,
}

/// Why a text is not an [`IpPrefix`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpPrefixError {
    /// Not `ADDRESS/LENGTH`.
    #[error("\"{0}\" is not a prefix like `10.20.0.0/16` or `2001:db8::/48`")]
    Unparsable(String),
    /// A length beyond the address size.
    #[error("/{length} is too long for an IPv{version} prefix (at most /{max})")]
    TooLong {
        /// The length given.
        length: u8,
        /// 4 or 6.
        version: u8,
        /// 32 or 128.
        max: u8,
    },
    /// Bits set after the prefix length: the operator probably meant the network.
    #[error("{given} has host bits set; the prefix is {network}")]
    HostBits {
        /// As written.
        given: String,
        /// The network it lies in.
        network: String,
    },
}

impl IpPrefix {
    /// Parses `ADDRESS/LENGTH`.
    pub fn parse(text: &str) -> Result<Self, IpPrefixError> {
        let (address, length) = address_and_length(text)
            .ok_or_else(|| IpPrefixError::Unparsable(text.chars().take(60).collect()))?;
        Self::new(address, length)
    }

    /// The prefix of `length` bits at `address` (as decoded from an advertisement), refused
    /// when the length is beyond the address size or bits after it are set.
    pub fn new(address: IpAddr, length: u8) -> Result<Self, IpPrefixError> {
        let (version, max) = match address {
            IpAddr::V4(_) => (4, 32),
            IpAddr::V6(_) => (6, 128),
        };
        if length > max {
            return Err(IpPrefixError::TooLong {
                length,
                version,
                max,
            });
        }
        let prefix = Self { address, length };
        let network = prefix.network_of(address);
        if network != address {
            return Err(IpPrefixError::HostBits {
                given: format!("{address}/{length}"),
                network: Self {
                    address: network,
                    length,
                }
                .to_string(),
            });
        }
        Ok(prefix)
    }

    /// The prefix of `length` bits that `address` lies in (host bits cleared), e.g. the network
    /// of an interface address such as `10.77.1.1/16`; `None` when the length is too long.
    pub fn containing(address: IpAddr, length: u8) -> Option<Self> {
        let max = if address.is_ipv4() { 32 } else { 128 };
        if length > max {
            return None;
        }
        let prefix = Self { address, length };
        Some(Self {
            address: prefix.network_of(address),
            length,
        })
    }

    /// Whether the two prefixes share any address (one contains the other).
    pub fn overlaps(&self, other: &Self) -> bool {
        self.contains(other.address) || other.contains(self.address)
    }

    /// The network address.
    pub fn address(&self) -> IpAddr {
        self.address
    }

    /// The prefix length.
    pub fn length(&self) -> u8 {
        self.length
    }

    /// Whether `address` lies in the prefix (an IPv4 address never lies in an IPv6 prefix).
    pub fn contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                self.network_of(address) == self.address
            }
            _ => false,
        }
    }

    /// `address` with the bits after the prefix length cleared.
    fn network_of(&self, address: IpAddr) -> IpAddr {
        match address {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.length))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.length))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

/// `ADDRESS/LENGTH` as its two parts (the length 1 to 3 digits, at most 255), unchecked
/// against each other: what both a prefix and an interface address are written as.
pub(crate) fn address_and_length(text: &str) -> Option<(IpAddr, u8)> {
    let (address, length) = text.split_once('/')?;
    let address: IpAddr = address.parse().ok()?;
    if length.is_empty() || !length.bytes().all(|b| b.is_ascii_digit()) || length.len() > 3 {
        return None;
    }
    Some((address, length.parse().ok()?))
}

impl TryFrom<String> for IpPrefix {
    type Error = IpPrefixError;
    fn try_from(text: String) -> Result<Self, IpPrefixError> {
        Self::parse(&text)
    }
}

impl From<IpPrefix> for String {
    fn from(prefix: IpPrefix) -> String {
        prefix.to_string()
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.length)
    }
}

impl fmt::Debug for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IpPrefix({self})")
    }
}

/// The name of a service published at a hub (`[[service]]` entries, later): one DNS label.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

/// A text that is not a [`ServiceName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{0}\" is not a service name: 1 to 63 lower-case letters, digits and `-`, not starting or ending with `-`"
)]
pub struct ServiceNameError(String);

impl ServiceName {
    /// Checks `text` against the service name rule.
    pub fn parse(text: &str) -> Result<Self, ServiceNameError> {
        let valid = (1..=63).contains(&text.len())
            && !text.starts_with('-')
            && !text.ends_with('-')
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(ServiceNameError(
                text.chars().take(64).flat_map(char::escape_debug).collect(),
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = ServiceNameError;
    fn try_from(text: String) -> Result<Self, ServiceNameError> {
        Self::parse(&text)
    }
}

impl From<ServiceName> for String {
    fn from(name: ServiceName) -> String {
        name.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceName({})", self.0)
    }
}

/// What this hub grants one peer. The default grants nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Grant {
    /// Whether the peer's traffic may cross this hub to reach other hubs.
    pub transit: bool,
    /// Destinations behind this hub the peer may reach.
    pub prefixes: Vec<IpPrefix>,
    /// Services published at this hub the peer may reach.
    pub services: Vec<ServiceName>,
}

impl Grant {
    /// Whether the peer's traffic may go on through this hub to another hub.
    pub fn allows_transit(&self) -> bool {
        self.transit
    }

    /// Whether the peer may reach `address` behind this hub.
    pub fn admits_address(&self, address: IpAddr) -> bool {
        self.prefixes.iter().any(|prefix| prefix.contains(address))
    }

    /// Whether the peer may reach the service `name` published at this hub.
    pub fn admits_service(&self, name: &ServiceName) -> bool {
        self.services.contains(name)
    }
}

impl fmt::Display for Grant {
    /// `transit; 10.20.0.0/16; services records-db` or `nothing`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.transit {
            parts.push("transit".to_owned());
        }
        if !self.prefixes.is_empty() {
            let prefixes: Vec<String> = self.prefixes.iter().map(ToString::to_string).collect();
            parts.push(prefixes.join(", "));
        }
        if !self.services.is_empty() {
            let services: Vec<&str> = self.services.iter().map(ServiceName::as_str).collect();
            parts.push(format!("services {}", services.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("nothing")
        } else {
            f.write_str(&parts.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_and_contain_their_addresses() {
        let v4 = IpPrefix::parse("10.20.0.0/16").unwrap();
        assert!(v4.contains("10.20.255.1".parse().unwrap()));
        assert!(!v4.contains("10.21.0.1".parse().unwrap()));
        assert!(!v4.contains("::ffff:10.20.0.1".parse().unwrap()));
        let v6 = IpPrefix::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::9".parse().unwrap()));
        assert!(!v6.contains("10.20.0.1".parse().unwrap()));
        let everything = IpPrefix::parse("0.0.0.0/0").unwrap();
        assert!(everything.contains("192.0.2.1".parse().unwrap()));
        let host = IpPrefix::parse("192.0.2.7/32").unwrap();
        assert!(host.contains("192.0.2.7".parse().unwrap()));
        assert!(!host.contains("192.0.2.8".parse().unwrap()));
        assert_eq!(v4.to_string(), "10.20.0.0/16");
    }

    #[test]
    fn prefixes_with_mistakes_are_refused_with_the_fix() {
        assert_eq!(
            IpPrefix::parse("10.20.0.1/16").unwrap_err().to_string(),
            "10.20.0.1/16 has host bits set; the prefix is 10.20.0.0/16"
        );
        assert_eq!(
            IpPrefix::parse("10.0.0.0/33").unwrap_err().to_string(),
            "/33 is too long for an IPv4 prefix (at most /32)"
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/",
            "10.0.0.0/x",
            "10.0.0.0/+8",
            "host/8",
            "/8",
            "10.0.0.0/0008",
        ] {
            assert!(
                matches!(IpPrefix::parse(bad), Err(IpPrefixError::Unparsable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn service_names_are_dns_labels() {
        assert!(ServiceName::parse("records-db").is_ok());
        for bad in ["", "Records", "-db", "db-", "a.b", &"x".repeat(64)] {
            assert!(ServiceName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_grant_admits_only_what_it_lists() {
        let nothing = Grant::default();
        assert!(!nothing.allows_transit());
        assert!(!nothing.admits_address("10.20.0.1".parse().unwrap()));
        assert_eq!(nothing.to_string(), "nothing");
        let grant: Grant = toml::from_str(
            "transit = true\nprefixes = [\"10.20.0.0/16\"]\nservices = [\"records-db\"]\n",
        )
        .unwrap();
        assert!(grant.allows_transit());
        assert!(grant.admits_address("10.20.3.4".parse().unwrap()));
        assert!(!grant.admits_address("10.30.3.4".parse().unwrap()));
        assert!(grant.admits_service(&ServiceName::parse("records-db").unwrap()));
        assert!(!grant.admits_service(&ServiceName::parse("mail").unwrap()));
        assert_eq!(
            grant.to_string(),
            "transit; 10.20.0.0/16; services records-db"
        );
        assert!(toml::from_str::<Grant>("transitt = true").is_err());
    }
}
