//! The site the discovery, telemetry and guard tests (and the fleet_poll bench) scan: one
//! range of loopback addresses held by one owner, and a discovery scan with the default
//! settings into a fresh SQLite inventory.

#![allow(dead_code)] // each test file uses its own part of this

use std::path::Path;
use std::sync::Arc;

use minerd::discovery::{DiscoveryReport, DiscoverySettings, discover};
use minerd::inventory::Inventory;
use minerd::site_layout::SiteLayout;

/// A valid layout: every address of `cidr` a miner of `owner` at `location`, identified as
/// `{owner}.{ip-dashes}`, with one pool the scan never dials.
pub fn one_range_layout(cidr: &str, owner: &str, location: &str) -> SiteLayout {
    let layout: SiteLayout = toml::from_str(&format!(
        r#"
        [[range]]
        cidr = "{cidr}"
        owner = "{owner}"
        location = "{location}"
        [[owner]]
        name = "{owner}"
        identity = "{{owner}}.{{ip-dashes}}"
        [[owner.pools]]
        url = "stratum+tcp://127.0.0.1:3333"
        user = "{owner}"
        "#
    ))
    .unwrap();
    layout.validate().unwrap();
    layout
}

/// An empty inventory in `dir`.
pub fn inventory_in(dir: &Path) -> Arc<Inventory> {
    Arc::new(Inventory::open_in(dir).unwrap())
}

/// One discovery scan of `layout` with the default settings, into `inventory`.
pub async fn scan(layout: &SiteLayout, inventory: &Arc<Inventory>) -> DiscoveryReport {
    discover(layout, &DiscoverySettings::default(), Arc::clone(inventory))
        .await
        .unwrap()
}
