//! [`InventoryDirectory`]: the proxy's [`MinerDirectory`], answered from the inventory and the
//! site layout.
//!
//! The proxy asks on every new connection, from its accept loop, so the answer must not wait on
//! SQLite: the daemon hands the directory the inventory's records after every discovery scan
//! and every poll cycle ([`InventoryDirectory::refresh`]), and `admit` reads a map in memory.
//!
//! - Only inventoried miners are admitted (a miner gone missing stays admitted: it is still
//!   the site's, and may be back from a reboot before the next scan sees it).
//! - The sanctioned user is the owner's identity for that address (`site_layout::Owner`).
//! - Owner pools are the owner's pools in the layout, in priority order.
//! - Quarantined is the inventory's state (the guard sets it there and in the proxy).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, PoisonError, RwLock};

use crate::inventory::{MinerRecord, MinerState};
use crate::proxy::{Admission, MinerDirectory, SanctionedPool};
use crate::site_layout::SiteLayout;

/// The proxy's view of the inventory; cheap to share.
#[derive(Debug)]
pub struct InventoryDirectory {
    layout: Arc<SiteLayout>,
    admitted: RwLock<HashMap<Ipv4Addr, Admission>>,
}

impl InventoryDirectory {
    /// An empty directory over `layout` (validated); [`refresh`](Self::refresh) fills it.
    pub fn new(layout: Arc<SiteLayout>) -> InventoryDirectory {
        InventoryDirectory {
            layout,
            admitted: RwLock::new(HashMap::new()),
        }
    }

    /// Replaces what is admitted with `miners`, the whole inventory.
    pub fn refresh(&self, miners: &[MinerRecord]) {
        let admitted = miners
            .iter()
            .map(|record| (*record.addr.ip(), self.admission(record)))
            .collect();
        *self
            .admitted
            .write()
            .unwrap_or_else(PoisonError::into_inner) = admitted;
    }

    /// Miners admitted now.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when no miner is admitted.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn admission(&self, record: &MinerRecord) -> Admission {
        let ip = *record.addr.ip();
        let sanctioned_users = self
            .layout
            .owner(&record.owner)
            .map(|owner| vec![owner.identity_for(ip)])
            .unwrap_or_default();
        Admission {
            miner_id: miner_id(ip),
            owner: record.owner.clone(),
            sanctioned_users,
            quarantined: record.state == MinerState::Quarantined,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Ipv4Addr, Admission>> {
        self.admitted.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How the proxy's accounting names a miner: its address, stable across restarts.
pub fn miner_id(ip: Ipv4Addr) -> String {
    ip.to_string()
}

impl MinerDirectory for InventoryDirectory {
    fn admit(&self, ip: IpAddr) -> Option<Admission> {
        let IpAddr::V4(ip) = ip else { return None };
        self.read().get(&ip).cloned()
    }

    fn owner_pools(&self, owner: &str) -> Vec<SanctionedPool> {
        self.layout
            .owner(owner)
            .map(|owner| {
                owner
                    .pools
                    .iter()
                    .map(|pool| SanctionedPool {
                        url: pool.url.clone(),
                        user: pool.user.clone(),
                        password: pool.password.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddrV4;

    use super::*;
    use crate::cgminer::FirmwareKind;
    use crate::inventory::MinerId;

    fn layout() -> Arc<SiteLayout> {
        Arc::new(
            toml::from_str(
                r#"
                [[range]]
                cidr = "10.1.0.0/24"
                owner = "acme"
                location = "hall A"
                [[owner]]
                name = "acme"
                identity = "{owner}.{ip-dashes}"
                [[owner.pools]]
                url = "stratum+tcp://pool.acme.example:3333"
                user = "acme"
                password = "x"
                "#,
            )
            .unwrap(),
        )
    }

    fn record(last: u8, state: MinerState) -> MinerRecord {
        MinerRecord {
            id: MinerId(i64::from(last)),
            addr: SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, last), 4028),
            mac: None,
            serial: None,
            model: None,
            firmware: FirmwareKind::Bmminer,
            firmware_version: None,
            location: "hall A".into(),
            owner: "acme".into(),
            power_target_w: None,
            state,
            missed_scans: 0,
            first_seen: 0,
            last_seen: 0,
        }
    }

    #[test]
    fn admits_inventoried_miners_only_with_their_owners_identity() {
        let directory = InventoryDirectory::new(layout());
        assert!(directory.admit("10.1.0.2".parse().unwrap()).is_none());
        directory.refresh(&[
            record(2, MinerState::Active),
            record(3, MinerState::Quarantined),
        ]);
        let admitted = directory.admit("10.1.0.2".parse().unwrap()).unwrap();
        assert_eq!(admitted.owner, "acme");
        assert_eq!(admitted.miner_id, "10.1.0.2");
        assert_eq!(admitted.sanctioned_users, vec!["acme.10-1-0-2".to_owned()]);
        assert!(!admitted.quarantined);
        assert!(
            directory
                .admit("10.1.0.3".parse().unwrap())
                .unwrap()
                .quarantined
        );
        assert!(directory.admit("10.1.0.4".parse().unwrap()).is_none());
        assert!(directory.admit("::1".parse().unwrap()).is_none());
        // A refresh replaces: a miner no longer inventoried is refused.
        directory.refresh(&[record(3, MinerState::Active)]);
        assert!(directory.admit("10.1.0.2".parse().unwrap()).is_none());
        assert_eq!(directory.len(), 1);
    }

    #[test]
    fn owner_pools_come_from_the_layout() {
        let directory = InventoryDirectory::new(layout());
        let pools = directory.owner_pools("acme");
        assert_eq!(pools.len(), 1);
        assert_eq!(pools[0].url, "stratum+tcp://pool.acme.example:3333");
        assert_eq!(pools[0].password, "x");
        assert!(directory.owner_pools("nobody").is_empty());
    }
}
