//! `[[service]]` entries: TCP services carried between hubs, like encrypted cross-site port
//! forwards. An entry either publishes a service at this hub or reaches one published elsewhere:
//!
//! ```toml
//! [[service]]                     # published here: sessions for it end at this hub and
//! name = "ledger"                 # connect to `publish`; each peer's grant lists the
//! publish = "127.0.0.1:5432"      # services it may reach (peering file, [grant] services)
//!
//! [[service]]                     # reached here: a local listener; each connection becomes a
//! name = "ledger"                 # session to the hub that publishes it, along a path that
//! hub = "madrid-1"                # follows the named policy (none: any path)
//! listen = "127.0.0.1:17432"
//! path_policy = "eu-only"
//! ```

use std::net::SocketAddr;

use appliance::config::Invalid;
use serde::{Deserialize, Serialize};

use crate::grant::ServiceName;
use crate::hub_id::HubId;

/// One `[[service]]` entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceEntry {
    /// The service's name, the same at both ends.
    pub name: ServiceName,
    /// Published here: where the service listens (usually on this host's loopback).
    #[serde(default)]
    pub publish: Option<SocketAddr>,
    /// Reached here: the hub that publishes it.
    #[serde(default)]
    pub hub: Option<HubId>,
    /// Reached here: the local listener.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// Reached here: the named path policy sessions follow (none: no constraints).
    #[serde(default)]
    pub path_policy: Option<String>,
}

/// A service this hub publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedService {
    /// Its name.
    pub name: ServiceName,
    /// Where sessions for it connect.
    pub target: SocketAddr,
}

/// A service published at another hub, reached through a local listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReachedService {
    /// Its name.
    pub name: ServiceName,
    /// The hub that publishes it.
    pub hub: HubId,
    /// The local listener.
    pub listen: SocketAddr,
    /// The path policy's name, if any.
    pub path_policy: Option<String>,
}

/// What one entry is, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceRole {
    /// Published here.
    Published(PublishedService),
    /// Reached here.
    Reached(ReachedService),
}

impl ServiceEntry {
    /// What the entry is, or why it is neither (the problems are keyed `service[i].…`).
    pub fn role(&self, index: usize) -> Result<ServiceRole, Vec<Invalid>> {
        let key = |field: &str| format!("service[{index}].{field}");
        let reached = (&self.hub, &self.listen);
        match (self.publish, reached) {
            (Some(target), (None, None)) if self.path_policy.is_none() => {
                Ok(ServiceRole::Published(PublishedService {
                    name: self.name.clone(),
                    target,
                }))
            }
            (Some(_), _) => Err(vec![Invalid::new(
                key("publish"),
                "a service is either published here (`publish`) or reached here (`hub`, \
                 `listen`, `path_policy`), not both",
            )]),
            (None, (Some(hub), Some(listen))) => Ok(ServiceRole::Reached(ReachedService {
                name: self.name.clone(),
                hub: hub.clone(),
                listen: *listen,
                path_policy: self.path_policy.clone(),
            })),
            (None, (None, _)) => Err(vec![Invalid::new(
                key("hub"),
                "must name the hub that publishes the service (or set `publish` to publish it here)",
            )]),
            (None, (Some(_), None)) => Err(vec![Invalid::new(
                key("listen"),
                "must give the local address to listen on, e.g. `127.0.0.1:17432`",
            )]),
        }
    }
}

/// Checks every entry and what only shows across entries: a name published twice, a listener
/// used twice, a service reached at this very hub, a path policy that does not exist.
pub fn check(
    entries: &[ServiceEntry],
    own: Option<&HubId>,
    policy_exists: impl Fn(&str) -> bool,
    problems: &mut Vec<Invalid>,
) {
    let mut published: Vec<&ServiceName> = Vec::new();
    let mut listeners: Vec<SocketAddr> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let key = |field: &str| format!("service[{index}].{field}");
        match entry.role(index) {
            Err(mut found) => problems.append(&mut found),
            Ok(ServiceRole::Published(service)) => {
                if published.contains(&&entry.name) {
                    problems.push(Invalid::new(
                        key("name"),
                        format!("`{}` is published twice", service.name),
                    ));
                }
                published.push(&entry.name);
            }
            Ok(ServiceRole::Reached(service)) => {
                if own == Some(&service.hub) {
                    problems.push(Invalid::new(
                        key("hub"),
                        format!(
                            "is this hub ({}); a service of this hub is reached directly",
                            service.hub
                        ),
                    ));
                }
                if service.listen.port() == 0 {
                    problems.push(Invalid::new(
                        key("listen"),
                        format!(
                            "`{}` has port 0; clients must know the port",
                            service.listen
                        ),
                    ));
                } else if listeners.contains(&service.listen) {
                    problems.push(Invalid::new(
                        key("listen"),
                        format!("`{}` is the listener of another service", service.listen),
                    ));
                }
                listeners.push(service.listen);
                if let Some(policy) = &service.path_policy
                    && !policy_exists(policy)
                {
                    problems.push(Invalid::new(
                        key("path_policy"),
                        format!("there is no [path_policy.{policy}] in hubd.toml"),
                    ));
                }
            }
        }
    }
}

/// The checked entries, split by role (after [`check`] found nothing wrong).
pub fn roles(entries: &[ServiceEntry]) -> (Vec<PublishedService>, Vec<ReachedService>) {
    let mut published = Vec::new();
    let mut reached = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        match entry.role(index) {
            Ok(ServiceRole::Published(service)) => published.push(service),
            Ok(ServiceRole::Reached(service)) => reached.push(service),
            Err(_) => {}
        }
    }
    (published, reached)
}
