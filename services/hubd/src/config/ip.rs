//! `[tun]` and `[[route]]`: IP traffic routed between hubs through a TUN interface.
//!
//! ```toml
//! [tun]                           # absent: no TUN, no IP routing (no capability needed)
//! name = "hub0"                   # the interface (default hub0)
//! address = "10.77.1.1/16"        # its own address; the kernel routes the whole /16 into hubd
//! announce = ["10.77.1.0/24"]     # the prefixes behind this hub, in its advertisement
//! mtu = 1380                      # 576 to 9000 (default 1380)
//!
//! [[route]]                       # optional, per prefix: only `hub`'s announcement of it
//! prefix = "10.77.3.0/24"         # counts (another hub announcing it is ignored), and packets
//! hub = "paris-1"                 # follow the named path policy (none: any path)
//! path_policy = "eu-only"
//! ```
//!
//! A prefix announced by a trusted hub is routed to it without a `[[route]]`; what the other hub
//! lets in is its own grant's business ([`crate::grant::Grant::admits_address`]).

use std::fmt;
use std::net::IpAddr;

use appliance::config::{Bounded, Invalid};
use serde::{Deserialize, Serialize};

use crate::advertisement::MAX_PREFIXES;
use crate::grant::{IpPrefix, address_and_length};
use crate::hub_id::HubId;

/// The TUN interface's default name.
pub const DEFAULT_TUN_NAME: &str = "hub0";
/// The TUN interface's default MTU: below a typical 1500-byte path once QUIC, the circuit and
/// TLS have taken their share, so packets are not fragmented inside the circuit.
pub const DEFAULT_TUN_MTU: u64 = 1380;
/// Longest interface name Linux takes (IFNAMSIZ without its NUL).
const MAX_INTERFACE_NAME: usize = 15;
/// The smallest MTU of a link that carries IPv6 (RFC 8200).
const MIN_IPV6_MTU: u64 = 1280;

/// `[tun]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TunSection {
    /// The interface's name.
    #[serde(default = "default_name")]
    pub name: String,
    /// The interface's own address and the length of the network routed into it.
    pub address: InterfaceAddress,
    /// The prefixes behind this hub, announced to the others.
    #[serde(default)]
    pub announce: Vec<IpPrefix>,
    /// The interface's MTU.
    #[serde(default = "default_mtu")]
    pub mtu: Bounded<576, 9000>,
}

fn default_name() -> String {
    DEFAULT_TUN_NAME.to_owned()
}

fn default_mtu() -> Bounded<576, 9000> {
    Bounded::from_const(DEFAULT_TUN_MTU)
}

/// An interface address with its network length, e.g. `10.77.1.1/16` (host bits allowed: it
/// is an address, not a prefix).
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InterfaceAddress {
    /// The address.
    pub address: IpAddr,
    /// The network length.
    pub length: u8,
}

/// A text that is not an [`InterfaceAddress`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{0}\" is not an interface address like `10.77.1.1/16` or `2001:db8:77::1/48`")]
pub struct InterfaceAddressError(String);

impl InterfaceAddress {
    /// Parses `ADDRESS/LENGTH`.
    pub fn parse(text: &str) -> Result<Self, InterfaceAddressError> {
        let bad = || InterfaceAddressError(text.chars().take(60).collect());
        let (address, length) = address_and_length(text).ok_or_else(bad)?;
        IpPrefix::containing(address, length).ok_or_else(bad)?;
        Ok(Self { address, length })
    }

    /// The network the kernel routes into the interface.
    pub fn network(&self) -> IpPrefix {
        IpPrefix::containing(self.address, self.length).expect("checked when parsed")
    }
}

impl TryFrom<String> for InterfaceAddress {
    type Error = InterfaceAddressError;
    fn try_from(text: String) -> Result<Self, InterfaceAddressError> {
        Self::parse(&text)
    }
}

impl From<InterfaceAddress> for String {
    fn from(address: InterfaceAddress) -> String {
        address.to_string()
    }
}

impl fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.length)
    }
}

impl fmt::Debug for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InterfaceAddress({self})")
    }
}

/// One `[[route]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    /// The destination prefix.
    pub prefix: IpPrefix,
    /// Pinned: only this hub's announcement of the prefix counts.
    #[serde(default)]
    pub hub: Option<HubId>,
    /// The named path policy packets to the prefix follow (none: any path).
    #[serde(default)]
    pub path_policy: Option<String>,
}

/// Checks `[tun]` and `[[route]]`: a usable interface name, announced prefixes that do not
/// overlap, routes only with a TUN, each prefix routed once, never to this hub or to a prefix
/// this hub announces, path policies that exist.
pub fn check(
    tun: Option<&TunSection>,
    routes: &[RouteEntry],
    own: Option<&HubId>,
    policy_exists: impl Fn(&str) -> bool,
    problems: &mut Vec<Invalid>,
) {
    if let Some(tun) = tun {
        check_tun(tun, problems);
    }
    let announced = tun.map_or(&[][..], |tun| tun.announce.as_slice());
    for (index, route) in routes.iter().enumerate() {
        let key = |field: &str| format!("route[{index}].{field}");
        if tun.is_none() {
            problems.push(Invalid::new(
                key("prefix"),
                "routes need a [tun] section: without a TUN interface no packet reaches hubd",
            ));
        }
        if routes[..index].iter().any(|r| r.prefix == route.prefix) {
            problems.push(Invalid::new(
                key("prefix"),
                format!("{} has another [[route]] already", route.prefix),
            ));
        }
        if let Some(mine) = announced.iter().find(|mine| mine.overlaps(&route.prefix)) {
            problems.push(Invalid::new(
                key("prefix"),
                format!(
                    "{} overlaps {mine}, which this hub announces (tun.announce)",
                    route.prefix
                ),
            ));
        }
        if let Some(hub) = &route.hub
            && own == Some(hub)
        {
            problems.push(Invalid::new(
                key("hub"),
                format!("is this hub ({hub}); its own prefixes are never routed into the network"),
            ));
        }
        if let Some(policy) = &route.path_policy
            && !policy_exists(policy)
        {
            problems.push(Invalid::new(
                key("path_policy"),
                format!("there is no [path_policy.{policy}] in hubd.toml"),
            ));
        }
    }
}

fn check_tun(tun: &TunSection, problems: &mut Vec<Invalid>) {
    let name_ok = (1..=MAX_INTERFACE_NAME).contains(&tun.name.len())
        && tun
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !name_ok {
        problems.push(Invalid::new(
            "tun.name",
            format!(
                "{:?} is not an interface name: 1 to {MAX_INTERFACE_NAME} letters, digits, `-` and `_`",
                tun.name
            ),
        ));
    }
    let ipv6 = tun.address.address.is_ipv6() || tun.announce.iter().any(|p| p.address().is_ipv6());
    if ipv6 && tun.mtu.get() < MIN_IPV6_MTU {
        problems.push(Invalid::new(
            "tun.mtu",
            format!(
                "is {}; IPv6 needs at least {MIN_IPV6_MTU} (the TUN carries IPv6 here)",
                tun.mtu
            ),
        ));
    }
    if !tun.announce.iter().any(|p| p.contains(tun.address.address)) {
        problems.push(Invalid::new(
            "tun.address",
            format!(
                "{} is inside no prefix of tun.announce; packets this hub sends carry it as their \
                 source, and only announced sources are sent or accepted",
                tun.address.address
            ),
        ));
    }
    if tun.announce.len() > MAX_PREFIXES {
        problems.push(Invalid::new(
            "tun.announce",
            format!(
                "lists {} prefixes; an advertisement announces at most {MAX_PREFIXES}",
                tun.announce.len()
            ),
        ));
    }
    for (i, prefix) in tun.announce.iter().enumerate() {
        if let Some(other) = tun.announce[..i].iter().find(|o| o.overlaps(prefix)) {
            problems.push(Invalid::new(
                format!("tun.announce[{i}]"),
                format!("{prefix} overlaps {other}, announced already"),
            ));
        }
    }
}

/// What `--check-config` says about the TUN and the routes (nothing without a TUN).
pub fn report(tun: Option<&TunSection>, routes: &[RouteEntry]) -> Vec<String> {
    let Some(tun) = tun else {
        return Vec::new();
    };
    let announced: Vec<String> = tun.announce.iter().map(ToString::to_string).collect();
    let mut lines = vec![format!(
        "tun {} {} mtu {}; announcing {}",
        tun.name,
        tun.address,
        tun.mtu,
        if announced.is_empty() {
            "nothing".to_owned()
        } else {
            announced.join(", ")
        }
    )];
    for route in routes {
        let hub = route.hub.as_ref().map_or_else(
            || "any hub announcing it".to_owned(),
            |hub| format!("only {hub}"),
        );
        let policy = route.path_policy.as_deref().map_or_else(
            || "any path".to_owned(),
            |name| format!("path policy {name}"),
        );
        lines.push(format!("route {}: {hub} ({policy})", route.prefix));
    }
    lines
}
