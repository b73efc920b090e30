//! `hub-links`: a hub comes back with its links. hubd's `Links()` lists every configured link
//! (`peer`, `link`, `up`, ...); every one must be up. An appliance that is not a hub (hubd
//! skipped by its condition: no hubd.toml) passes as such.

use appliance::dbus::contracts::{HUB, Hub1Proxy};
use serde::Deserialize;
use zbus::Connection;
use zbus::proxy::CacheProperties;

use super::units::UnitObservation;
use super::verdict::{Check, check_names::HUB_LINKS};
use super::{absent_service, on_bus};

/// One entry of `Links()` as the gate reads it (fields are only ever added).
#[derive(Debug, Deserialize)]
struct Link {
    peer: String,
    link: u64,
    up: bool,
}

/// Checks hubd's links; `units` tells a hub that is not configured from one that is missing.
pub async fn check_hub_links(connection: &Connection, units: &[UnitObservation]) -> Check {
    match on_bus(connection, HUB.bus_name).await {
        Err(why) => return Check::fail(HUB_LINKS, why),
        Ok(false) => {
            return absent_service(HUB_LINKS, HUB.daemon, HUB.bus_name, units, "not a hub");
        }
        Ok(true) => {}
    }
    let links = match Hub1Proxy::builder(connection)
        .cache_properties(CacheProperties::No)
        .build()
        .await
    {
        Ok(hub) => hub.links().await,
        Err(e) => Err(e),
    };
    match links {
        Ok(document) => judge_links(&document),
        Err(e) => Check::fail(HUB_LINKS, format!("hubd's Links() failed: {e}")),
    }
}

/// Every configured link up passes; the sentence names the links that are down.
pub fn judge_links(document: &str) -> Check {
    let links: Vec<Link> = match serde_json::from_str(document) {
        Ok(links) => links,
        Err(e) => {
            return Check::fail(
                HUB_LINKS,
                format!("hubd's Links() is not the document the contract describes: {e}"),
            );
        }
    };
    let down: Vec<String> = links
        .iter()
        .filter(|link| !link.up)
        .map(|link| format!("{} link {}", link.peer, link.link))
        .collect();
    match (links.len(), down.len()) {
        (0, _) => Check::pass(HUB_LINKS, "a hub with no configured links"),
        (all, 0) => Check::pass(HUB_LINKS, format!("all {all} configured links are up")),
        (all, _) => Check::fail(
            HUB_LINKS,
            format!(
                "{} of {all} configured links are down: {}",
                down.len(),
                down.join(", ")
            ),
        ),
    }
}
