//! A site for the guard and curtailment tests: a private bus with a stand-in sited, a test
//! pool, minerd's real Stratum proxy in front of it, simulated miners (127.62.N.x) mining
//! through the proxy as their layout identity, found by discovery into a real SQLite
//! inventory, polled by a real `Telemetry`, and an audit log.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use appliance::audit_log::AuditLog;
use appliance::dbus::contracts::SiteState;
use appliance::dbus::testbus::TestBus;
use appliance::dbus::testsite::StandInSite;
use minerd::discovery::{DiscoverySettings, discover};
use minerd::inventory::{Inventory, MinerFilter, MinerRecord};
use minerd::operations::SharedAuditLog;
use minerd::proxy::{
    Accounting, Admission, FailoverSettings, MinerDirectory, Proxy, ProxySettings, SanctionedPool,
    VardiffSettings,
};
use minerd::site_layout::SiteLayout;
use minerd::telemetry::{Telemetry, TelemetrySettings};
use sim::fleet::{Fleet, FleetSpec, ModelMix, SimPool};
use sim::pool::{PoolSpec, TestPool};
use tokio::sync::Mutex;

/// Far above any wait that works (seconds), far below a hang.
pub const BOUND: Duration = Duration::from_secs(30);

/// One share per ~1024 hashes: simulated miners find shares every few hundred ms.
pub const POOL_DIFFICULTY: f64 = 1.0 / 4_194_304.0;

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
    toml::from_str(&format!(
        r#"
        [[range]]
        cidr = "127.62.{net}.0/24"
        owner = "{OWNER}"
        location = "hall A"
        [[owner]]
        name = "{OWNER}"
        identity = "{{owner}}.{{ip-dashes}}"
        [[owner.pools]]
        url = "stratum+tcp://127.0.0.1:3333"
        user = "{OWNER}"
        "#
    ))
    .unwrap()
}

fn proxy_settings() -> ProxySettings {
    ProxySettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        miners_per_upstream: 8,
        extranonce_prefix_size: 1,
        vardiff: VardiffSettings {
            shares_per_minute: 240.0,
            retarget_ms: 2_000,
            initial_difficulty: POOL_DIFFICULTY,
            min_difficulty: POOL_DIFFICULTY / 16.0,
            max_difficulty: 1.0,
        },
        failover: FailoverSettings {
            connect_timeout_ms: 2_000,
            submit_timeout_ms: 2_000,
            job_timeout_ms: 5_000,
            failback_hold_ms: 1_500,
            retry_ms: 300,
        },
        batch_window_ms: 3,
    }
}

pub async fn test_pool() -> TestPool {
    let mut spec = PoolSpec::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    spec.difficulty = POOL_DIFFICULTY;
    spec.job_interval = Duration::from_millis(700);
    spec.block_interval = Duration::from_secs(600);
    TestPool::start(spec).await.unwrap()
}

pub async fn audit_log(dir: &Path) -> SharedAuditLog {
    let (log, _) = AuditLog::open(&dir.join("audit.log"), "minerd")
        .await
        .unwrap();
    Arc::new(Mutex::new(log))
}

/// The URL miners are told to mine on.
pub fn proxy_url(proxy: &Proxy) -> String {
    format!("stratum+tcp://{}", proxy.local_addr())
}

/// Starts everything; `count` miners from 127.62.`net`.1, every one hashing and found.
pub async fn rig(net: u8, count: usize, models: ModelMix) -> Rig {
    let bus = TestBus::start().unwrap();
    let site = StandInSite::start(&bus.bus(), SiteState::Normal, "all well")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pool = test_pool().await;
    let layout = layout(net);
    let accounting = Accounting::open_path(
        &dir.path().join("accounting.sqlite"),
        Duration::from_millis(3),
    )
    .unwrap();
    let directory = Arc::new(LayoutDirectory {
        layout: layout.clone(),
        pool_url: pool.url(),
    });
    let proxy = Proxy::start(proxy_settings(), directory, Arc::new(accounting))
        .await
        .unwrap();
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
    let inventory = Arc::new(Inventory::open_in(dir.path()).unwrap());
    let found = discover(
        &layout,
        &DiscoverySettings::default(),
        Arc::clone(&inventory),
    )
    .await
    .unwrap();
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

/// Polls `check` every 50 ms until it holds; panics with `what` after `BOUND`.
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < BOUND, "not within {BOUND:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
