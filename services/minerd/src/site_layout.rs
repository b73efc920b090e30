//! The operator's description of the fleet: which address ranges hold miners, who owns them,
//! where they stand, and which pools each owner's miners are sanctioned to mine for.
//!
//! ```toml
//! [[range]]
//! cidr = "10.10.0.0/22"
//! owner = "acme"
//! location = "hall A, rows 1-8"
//! # port = 4028
//!
//! [[owner]]
//! name = "acme"
//! identity = "{owner}.{ip-dashes}"
//! [[owner.pools]]
//! url = "stratum+tcp://pool.acme.example:3333"
//! user = "acme"
//! password = "x"
//! ```
//!
//! [`SiteLayout::validate`] refuses what would make the scan or the pool checks meaningless:
//! overlapping ranges (a miner with two owners), owners nobody declared, ranges larger than a
//! /16 (a typo such as `/8` would scan 16 million addresses), and pool URLs a miner cannot use.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};

use appliance::config::{Invalid, ServiceConfig};
use ipnet::Ipv4Net;
use serde::Deserialize;

/// The cgminer API port every firmware listens on unless configured otherwise.
pub const DEFAULT_API_PORT: u16 = 4028;
/// The widest range accepted: a /16 is 65,534 hosts, already a very large site.
pub const WIDEST_PREFIX: u8 = 16;
/// URL schemes cgminer-family firmware accept for a pool.
const POOL_SCHEMES: [&str; 2] = ["stratum+tcp://", "stratum+ssl://"];
/// Placeholders an owner's identity template may use.
const IDENTITY_PLACEHOLDERS: [&str; 3] = ["{owner}", "{ip}", "{ip-dashes}"];

#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SiteLayout {
    #[serde(default, rename = "range")]
    pub ranges: Vec<MinerRange>,
    #[serde(default, rename = "owner")]
    pub owners: Vec<Owner>,
}

/// One block of addresses where an owner's miners stand.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinerRange {
    pub cidr: Ipv4Net,
    pub owner: String,
    pub location: String,
    /// The miners' cgminer API port.
    #[serde(default = "default_port")]
    pub port: u16,
}

fn default_port() -> u16 {
    DEFAULT_API_PORT
}

/// A client (or the site itself) owning miners.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    pub name: String,
    /// The pools this owner's miners may mine for, in priority order.
    pub pools: Vec<SanctionedPool>,
    /// The user a miner presents (to the proxy and in its `pools` list), e.g.
    /// `{owner}.{ip-dashes}`; `{ip}` is the dotted address.
    pub identity: String,
}

/// A pool an owner's miners are allowed to mine for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SanctionedPool {
    pub url: String,
    pub user: String,
    #[serde(default)]
    pub password: String,
}

impl Owner {
    /// The identity this owner's miner at `ip` must present.
    pub fn identity_for(&self, ip: Ipv4Addr) -> String {
        let dashes = ip.to_string().replace('.', "-");
        self.identity
            .replace("{owner}", &self.name)
            .replace("{ip-dashes}", &dashes)
            .replace("{ip}", &ip.to_string())
    }
}

impl MinerRange {
    /// The API addresses of every host in the range (network and broadcast excluded, except
    /// in /31 and /32 where every address is a host).
    pub fn api_addresses(&self) -> impl Iterator<Item = SocketAddrV4> + '_ {
        self.cidr
            .hosts()
            .map(move |ip| SocketAddrV4::new(ip, self.port))
    }
}

impl SiteLayout {
    pub fn owner(&self, name: &str) -> Option<&Owner> {
        self.owners.iter().find(|o| o.name == name)
    }

    /// The range an address belongs to (ranges never overlap once validated).
    pub fn range_of(&self, ip: Ipv4Addr) -> Option<&MinerRange> {
        self.ranges.iter().find(|r| r.cidr.contains(&ip))
    }

    /// Every address a discovery scan probes, with its range.
    pub fn api_addresses(&self) -> impl Iterator<Item = (SocketAddrV4, &MinerRange)> + '_ {
        self.ranges
            .iter()
            .flat_map(|r| r.api_addresses().map(move |a| (a, r)))
    }

    /// Every problem at once, each naming the key to fix.
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        self.validate_owners(&mut problems);
        self.validate_ranges(&mut problems);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    fn validate_ranges(&self, problems: &mut Vec<Invalid>) {
        for (i, range) in self.ranges.iter().enumerate() {
            let key = |field: &str| format!("range[{i}].{field}");
            if range.cidr.prefix_len() < WIDEST_PREFIX {
                problems.push(Invalid::new(
                    key("cidr"),
                    format!(
                        "{} is larger than a /{WIDEST_PREFIX}; split the site into ranges of at most 65,534 miners",
                        range.cidr
                    ),
                ));
            }
            if range.cidr != range.cidr.trunc() {
                problems.push(Invalid::new(
                    key("cidr"),
                    format!(
                        "{} has host bits set; the range starts at {}",
                        range.cidr,
                        range.cidr.trunc()
                    ),
                ));
            }
            if self.owner(&range.owner).is_none() {
                problems.push(Invalid::new(
                    key("owner"),
                    format!(
                        "names owner '{}', which no [[owner]] entry declares",
                        range.owner
                    ),
                ));
            }
            if range.location.trim().is_empty() {
                problems.push(Invalid::new(
                    key("location"),
                    "must say where the miners stand",
                ));
            }
            if range.port == 0 {
                problems.push(Invalid::new(key("port"), "must be a TCP port (1-65535)"));
            }
            for (j, earlier) in self.ranges[..i].iter().enumerate() {
                if overlap(&range.cidr, &earlier.cidr) {
                    problems.push(Invalid::new(
                        key("cidr"),
                        format!(
                            "{} overlaps range[{j}] ({}); every address belongs to one owner and one location",
                            range.cidr, earlier.cidr
                        ),
                    ));
                }
            }
        }
    }

    fn validate_owners(&self, problems: &mut Vec<Invalid>) {
        let mut names = BTreeSet::new();
        for (i, owner) in self.owners.iter().enumerate() {
            let key = |field: &str| format!("owner[{i}].{field}");
            if owner.name.trim().is_empty() {
                problems.push(Invalid::new(key("name"), "must not be empty"));
            } else if !names.insert(owner.name.as_str()) {
                problems.push(Invalid::new(
                    key("name"),
                    format!("'{}' is declared twice", owner.name),
                ));
            }
            if owner.pools.is_empty() {
                problems.push(Invalid::new(
                    key("pools"),
                    "must name at least one sanctioned pool, or the owner's miners could mine nowhere",
                ));
            }
            for (j, pool) in owner.pools.iter().enumerate() {
                if let Err(reason) = check_pool_url(&pool.url) {
                    problems.push(Invalid::new(format!("owner[{i}].pools[{j}].url"), reason));
                }
                if pool.user.trim().is_empty() {
                    problems.push(Invalid::new(
                        format!("owner[{i}].pools[{j}].user"),
                        "must name the account the pool credits",
                    ));
                }
            }
            if let Err(reason) = check_identity_template(&owner.identity) {
                problems.push(Invalid::new(key("identity"), reason));
            }
        }
    }
}

/// The layout can be its own file (e.g. `/var/lib/bunkeros/config/minerd-site.toml`), read and
/// checked like any service configuration: the loader reports a problem with file and line.
impl ServiceConfig for SiteLayout {
    fn validate(&self) -> Result<(), Vec<Invalid>> {
        SiteLayout::validate(self)
    }
}

fn overlap(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// `stratum+tcp://host:port` (or `stratum+ssl://`): what cgminer's `addpool` accepts.
fn check_pool_url(url: &str) -> Result<(), String> {
    let Some(rest) = POOL_SCHEMES.iter().find_map(|s| url.strip_prefix(s)) else {
        return Err(format!(
            "'{url}' must start with stratum+tcp:// or stratum+ssl://"
        ));
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!("'{url}' must name a port (host:port)"));
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if !host_ok {
        return Err(format!("'{url}' has no valid host name or address"));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok(()),
        _ => Err(format!("'{url}' has no valid port (1-65535)")),
    }
}

/// The template may only use the known placeholders, and must not be empty.
fn check_identity_template(template: &str) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("must say which user a miner presents, e.g. \"{owner}.{ip-dashes}\"".into());
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err(format!("'{template}' has an unclosed '{{'"));
        };
        let placeholder = &rest[open..open + close + 1];
        if !IDENTITY_PLACEHOLDERS.contains(&placeholder) {
            return Err(format!(
                "'{template}' uses unknown placeholder {placeholder}; known: {}",
                IDENTITY_PLACEHOLDERS.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    if template.chars().any(char::is_whitespace) {
        return Err(format!(
            "'{template}' contains whitespace, which pools refuse in a user"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "site_layout_tests.rs"]
mod tests;
