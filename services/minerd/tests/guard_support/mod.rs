//! A site for the guard and curtailment tests: a private bus with a stand-in sited, a test
//! pool, minerd's real Stratum proxy in front of it, simulated miners (127.62.N.x) mining
//! through the proxy as their layout identity, found by discovery into a real SQLite
//! inventory, polled by a real `Telemetry`, and an audit log. The proxy, the test pool and
//! waiting come from the proxy tests' support (`proxy_support`).

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use appliance::audit_log::AuditLog;
use appliance::dbus::contracts::SiteState;
use appliance::dbus::testbus::TestBus;
use appliance::dbus::testsite::StandInSite;
use minerd::inventory::{Inventory, MinerFilter, MinerRecord};
use minerd::operations::SharedAuditLog;
use minerd::proxy::{Admission, MinerDirectory, Proxy, SanctionedPool};
use minerd::site_layout::SiteLayout;
use minerd::telemetry::{Telemetry, TelemetrySettings};
use sim::fleet::{Fleet, FleetSpec, ModelMix, SimPool};
use sim::pool::TestPool;
use tokio::sync::Mutex;

// The proxy, its pools and waiting are the proxy tests' own.
#[path = "../proxy_support/mod.rs"]
mod proxy_support;
pub use proxy_support::{BOUND, pool, proxy_url, wait_until};
use proxy_support::{fast_settings, start_proxy};

#[path = "../scan_support/mod.rs"]
mod scan_support;
use scan_support::{inventory_in, one_range_layout, scan};

pub const OWNER: &str = "acme";

/// The proxy's view of the layout: miners in the range, the owner's pool.
pub struct LayoutDirectory {
    pub layout: SiteLayout,
    pub pool_url: String,
}

impl MinerDirectory for LayoutDirectory {
    fn admit(&self, ip: IpAddr) -> Option<Admission> {
        let IpAddr::V4(v4) = ip else { return None };
        let range = self.layout.range_of(v4)?;
        let owner = self.layout.owner(&range.owner)?;
        Some(Admission {
            miner_id: v4.to_string(),
            owner: owner.name.clone(),
            sanctioned_users: vec![owner.identity_for(v4)],
            quarantined: false,
        })
    }
    fn owner_pools(&self, _owner: &str) -> Vec<SanctionedPool> {
        vec![SanctionedPool {
            url: self.pool_url.clone(),
            user: format!("{OWNER}.proxy"),
            password: "x".into(),
        }]
    }
}

pub struct Rig {
    pub bus: TestBus,
    pub site: Option<StandInSite>,
    pub pool: TestPool,
    pub proxy: Arc<Proxy>,
    pub fleet: Fleet,
    pub layout: SiteLayout,
    pub inventory: Arc<Inventory>,
    pub telemetry: Arc<Telemetry>,
    pub audit: SharedAuditLog,
    pub dir: tempfile::TempDir,
}

pub fn layout(net: u8) -> SiteLayout {
    one_range_layout(&format!("127.62.{net}.0/24"), OWNER, "hall A")
}

pub async fn audit_log(dir: &Path) -> SharedAuditLog {
    let (log, _) = AuditLog::open(&dir.join("audit.log"), "minerd")
        .await
        .unwrap();
    Arc::new(Mutex::new(log))
}

/// Starts everything; `count` miners from 127.62.`net`.1, every one hashing and found.
pub async fn rig(net: u8, count: usize, models: ModelMix) -> Rig {
    let bus = TestBus::start().unwrap();
    let site = StandInSite::start(&bus.bus(), SiteState::Normal, "all well")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool = pool().await;
    let layout = layout(net);
    let directory = Arc::new(LayoutDirectory {
        layout: layout.clone(),
        pool_url: pool.url(),
    });
    let proxy = start_proxy(dir.path(), fast_settings(8), directory).await;
    let mut spec = FleetSpec::new(Ipv4Addr::new(127, 62, net, 1), count);
    spec.models = models;
    spec.pools = vec![SimPool {
        url: proxy_url(&proxy),
        user: format!("{OWNER}.{{ip-with-dashes}}"),
        password: "x".into(),
    }];
    spec.hash_budget = 20_000.0;
    spec.seed = u64::from(net) + 7;
    let fleet = Fleet::start(spec).await.unwrap();
    wait_until("every miner hashes", || {
        fleet.miners().iter().all(|m| m.view().hashrate_ths > 0.0)
    })
    .await;
    let inventory = inventory_in(dir.path());
    let found = scan(&layout, &inventory).await;
    assert_eq!(found.miners_found, count);
    let telemetry = Arc::new(Telemetry::new(TelemetrySettings::default()));
    let audit = audit_log(dir.path()).await;
    Rig {
        bus,
        site: Some(site),
        pool,
        proxy,
        fleet,
        layout,
        inventory,
        telemetry,
        audit,
        dir,
    }
}

impl Rig {
    /// One telemetry cycle, as the daemon's loop runs it.
    pub async fn poll(&self) {
        self.telemetry.cycle(&self.inventory, false).await.unwrap();
    }

    pub fn record(&self, ip: Ipv4Addr) -> MinerRecord {
        self.inventory
            .list(&MinerFilter::default())
            .unwrap()
            .into_iter()
            .find(|r| *r.addr.ip() == ip)
            .unwrap()
    }

    pub fn ips(&self) -> Vec<Ipv4Addr> {
        let mut ips: Vec<Ipv4Addr> = self.fleet.miners().iter().map(|m| m.view().ip).collect();
        ips.sort();
        ips
    }
}
