//! What the proxy needs to know about the site's miners and owners, from the inventory the
//! daemon keeps: which source addresses are miners (and whose), the user identities each miner
//! may mine as, and each owner's sanctioned pools. The proxy never decides these itself.

use std::net::IpAddr;

/// A miner the inventory knows, as admitted by its source address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub miner_id: String,
    pub owner: String,
    /// Worker names this miner may authorize as. Empty: the owner sanctioned no identities
    /// for it, so any name is taken, except while the miner is quarantined.
    pub sanctioned_users: Vec<String>,
    pub quarantined: bool,
}

/// One of an owner's sanctioned pools, with the identity the proxy mines under there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SanctionedPool {
    /// `stratum+tcp://host:port`.
    pub url: String,
    pub user: String,
    pub password: String,
}

impl SanctionedPool {
    /// `host:port` from the URL; `None` for a scheme other than plain Stratum over TCP.
    pub fn host_port(&self) -> Option<&str> {
        let rest = self.url.strip_prefix("stratum+tcp://")?;
        let rest = rest.trim_end_matches('/');
        (!rest.is_empty() && rest.contains(':')).then_some(rest)
    }
}

/// The inventory, as the proxy sees it. Implemented by the daemon over its SQLite inventory;
/// tests implement it over a map.
pub trait MinerDirectory: Send + Sync + 'static {
    /// The miner at this source address, or `None`: not a miner of this site, refused.
    fn admit(&self, ip: IpAddr) -> Option<Admission>;
    /// The owner's sanctioned pools in priority order (empty: the owner's miners cannot mine).
    fn owner_pools(&self, owner: &str) -> Vec<SanctionedPool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_stratum_urls_have_an_address() {
        let pool = |url: &str| SanctionedPool {
            url: url.into(),
            user: "u".into(),
            password: "x".into(),
        };
        assert_eq!(
            pool("stratum+tcp://127.0.0.1:3333").host_port(),
            Some("127.0.0.1:3333")
        );
        assert_eq!(
            pool("stratum+tcp://pool.example:3333/").host_port(),
            Some("pool.example:3333")
        );
        assert_eq!(pool("stratum+ssl://pool.example:3333").host_port(), None);
        assert_eq!(pool("stratum+tcp://pool.example").host_port(), None);
    }
}
