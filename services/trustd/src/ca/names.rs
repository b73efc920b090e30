//! The names a certificate may carry, in the one spelling the CA accepts.
//!
//! Names arrive from the network (CSRs, ACME orders) and from the site configuration. Both are
//! parsed here into typed values before any rule looks at them, so that a name that reached a
//! profile check is already known to be well-formed: lowercase LDH labels, no NUL, no trailing
//! dot, at most 253 bytes. Refusing uppercase instead of folding it keeps one spelling per name,
//! so a name matches the transparency log, the name constraints and the relying party's
//! comparison byte for byte.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest DNS name in presentation form (RFC 1035 §2.3.4, without the root dot).
pub const MAX_DNS_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a DNS name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the name is empty")]
    Empty,
    /// Longer than a DNS name can be.
    #[error("the name is {len} bytes long; DNS names have at most {MAX_DNS_NAME_LEN}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A NUL byte, the classic trick to make `evil.example\0.site.example` look like a site name.
    #[error("the name contains a NUL byte")]
    Nul,
    /// Uppercase letters: the CA accepts one spelling per name, the lowercase one.
    #[error("the name contains uppercase letters; request it in lowercase")]
    Uppercase,
    /// A byte that is not a letter, digit, hyphen or dot.
    #[error("the name contains {0:?}; DNS labels hold only a-z, 0-9 and `-`")]
    InvalidCharacter(char),
    /// An empty label (`a..b`, a leading dot or a trailing dot).
    #[error("the name has an empty label (leading, trailing or doubled dot)")]
    EmptyLabel,
    /// A label longer than 63 bytes.
    #[error("the label `{label}` is {len} bytes long; DNS labels have at most {MAX_LABEL_LEN}")]
    LabelTooLong {
        /// The label.
        label: String,
        /// Its length.
        len: usize,
    },
    /// A label that starts or ends with a hyphen.
    #[error("the label `{0}` starts or ends with `-`")]
    HyphenAtLabelEdge(String),
    /// A `*` anywhere but as the whole first label.
    #[error("`*` is allowed only as the whole leftmost label (`*.example`)")]
    MisplacedWildcard,
    /// All labels numeric: an IP address written as a DNS name.
    #[error("the name is all digits and dots; an IP address belongs in an IP address name")]
    LooksLikeIpAddress,
    /// A single-label name (`localhost`, `printer`): not under any domain the CA could vouch for.
    #[error("the name has a single label; the CA certifies names under a domain only")]
    SingleLabel,
}

/// A syntactically valid, lowercase DNS name; the leftmost label may be the wildcard `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    /// Parses a name as it appears in a CSR or in the configuration.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        if text.len() > MAX_DNS_NAME_LEN {
            return Err(NameError::TooLong { len: text.len() });
        }
        if text.contains('\0') {
            return Err(NameError::Nul);
        }
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(NameError::Uppercase);
        }
        if let Some(bad) = text.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '*'))
        }) {
            return Err(NameError::InvalidCharacter(bad));
        }
        let labels: Vec<&str> = text.split('.').collect();
        for (index, label) in labels.iter().enumerate() {
            check_label(label, index == 0)?;
        }
        if labels.len() < 2 {
            return Err(NameError::SingleLabel);
        }
        if labels
            .iter()
            .all(|label| label.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(NameError::LooksLikeIpAddress);
        }
        Ok(Self(text.to_owned()))
    }

    /// The name in presentation form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the leftmost label is `*`.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// Whether this name lies strictly below `suffix` (`a.b.site` is below `site`; `site` is
    /// not below itself).
    pub fn is_below(&self, suffix: &DnsName) -> bool {
        self.0.len() > suffix.0.len()
            && self.0.ends_with(suffix.as_str())
            && self.0.as_bytes()[self.0.len() - suffix.0.len() - 1] == b'.'
    }

    /// Whether this name is `suffix` or lies below it: what an RFC 5280 dNSName constraint
    /// `suffix` permits.
    pub fn is_within(&self, suffix: &DnsName) -> bool {
        self == suffix || self.is_below(suffix)
    }

    /// The labels to the left of `suffix`, when this name is below it.
    pub fn labels_below(&self, suffix: &DnsName) -> Option<usize> {
        self.is_below(suffix).then(|| {
            self.0[..self.0.len() - suffix.0.len() - 1]
                .split('.')
                .count()
        })
    }

    /// The leftmost label.
    pub fn first_label(&self) -> &str {
        self.0.split('.').next().unwrap_or_default()
    }

    /// `label.self`, for building names under a configured domain.
    pub fn prefixed(&self, label: &str) -> Result<Self, NameError> {
        Self::parse(&format!("{label}.{}", self.0))
    }
}

/// Checks one label; `*` is allowed as the whole first label only.
fn check_label(label: &str, first: bool) -> Result<(), NameError> {
    if label.is_empty() {
        return Err(NameError::EmptyLabel);
    }
    if label.contains('*') {
        return if first && label == "*" {
            Ok(())
        } else {
            Err(NameError::MisplacedWildcard)
        };
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(NameError::LabelTooLong {
            label: label.to_owned(),
            len: label.len(),
        });
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(NameError::HyphenAtLabelEdge(label.to_owned()));
    }
    Ok(())
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DnsName {
    type Err = NameError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for DnsName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DnsName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a DNS name: {e}")))
    }
}

/// Why an address range is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not `address/prefix`.
    #[error("`{0}` is not an address range; write it as address/prefix, e.g. 10.20.0.0/16")]
    Syntax(String),
    /// The prefix is longer than the address.
    #[error("prefix /{prefix} is longer than the {bits} bits of the address")]
    PrefixTooLong {
        /// The prefix length given.
        prefix: u8,
        /// The address width.
        bits: u8,
    },
    /// Bits set after the prefix: `10.20.1.0/16` is ambiguous between a typo and a wider range.
    #[error("`{0}` has address bits set after the prefix; write the network address")]
    HostBitsSet(String),
}

/// An IP network (`10.20.0.0/16`, `fd00:b0::/32`): where devices with IP-address names live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The range of `network/prefix`; host bits must be zero.
    pub fn new(network: IpAddr, prefix: u8) -> Result<Self, RangeError> {
        let bits = address_bits(&network);
        if prefix > bits {
            return Err(RangeError::PrefixTooLong { prefix, bits });
        }
        let range = Self { network, prefix };
        if range.masked(&network) != address_value(&network) {
            return Err(RangeError::HostBitsSet(format!("{network}/{prefix}")));
        }
        Ok(range)
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `address` lies in the range (an IPv4 address is never in an IPv6 range).
    pub fn contains(&self, address: &IpAddr) -> bool {
        address.is_ipv4() == self.network.is_ipv4()
            && self.masked(address) == address_value(&self.network)
    }

    /// Whether every address of `other` lies in this range.
    pub fn covers(&self, other: &IpRange) -> bool {
        other.prefix >= self.prefix && self.contains(&other.network)
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &IpRange) -> bool {
        self.covers(other) || other.covers(self)
    }

    /// The RFC 5280 iPAddress constraint encoding: address followed by mask.
    pub fn constraint_octets(&self) -> Vec<u8> {
        let mut octets = match self.network {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        let mask = self.mask().to_be_bytes();
        let width = octets.len();
        octets.extend_from_slice(&mask[16 - width..]);
        octets
    }

    /// Parses the RFC 5280 iPAddress constraint encoding (8 or 32 bytes); `None` if the mask
    /// is not a prefix mask or host bits are set.
    pub fn from_constraint_octets(octets: &[u8]) -> Option<Self> {
        let (address, mask) = match octets.len() {
            8 => {
                let a: [u8; 4] = octets[..4].try_into().ok()?;
                (IpAddr::from(a), &octets[4..])
            }
            32 => {
                let a: [u8; 16] = octets[..16].try_into().ok()?;
                (IpAddr::from(a), &octets[16..])
            }
            _ => return None,
        };
        let mut mask_value = [0u8; 16];
        mask_value[16 - mask.len()..].copy_from_slice(mask);
        let mask_value = u128::from_be_bytes(mask_value);
        // A prefix mask has its ones first; count them, then insist the mask is exactly that.
        let prefix = u8::try_from(mask_value.count_ones()).ok()?;
        let range = Self::new(address, prefix).ok()?;
        (range.mask() == mask_value).then_some(range)
    }

    /// The mask as an integer as wide as the address.
    fn mask(&self) -> u128 {
        if self.prefix == 0 {
            return 0;
        }
        let bits = u32::from(address_bits(&self.network));
        let full = if bits == 128 {
            u128::MAX
        } else {
            (1u128 << bits) - 1
        };
        let host_bits = bits - u32::from(self.prefix);
        (full >> host_bits) << host_bits
    }

    fn masked(&self, address: &IpAddr) -> u128 {
        address_value(address) & self.mask()
    }
}

fn address_bits(address: &IpAddr) -> u8 {
    if address.is_ipv4() { 32 } else { 128 }
}

fn address_value(address: &IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(*v4)),
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for IpRange {
    type Err = RangeError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let syntax = || RangeError::Syntax(text.to_owned());
        let (address, prefix) = text.split_once('/').ok_or_else(syntax)?;
        let address: IpAddr = address.parse().map_err(|_| syntax())?;
        let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
        Self::new(address, prefix)
    }
}

impl Serialize for IpRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for IpRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Text from a hostile source, made safe to put in an error message or a log line: control
/// characters escaped, cut to `max` characters.
pub fn quote_untrusted(text: &str, max: usize) -> String {
    let mut quoted: String = text
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > max {
        quoted.push('…');
    }
    quoted
}
