//! Choosing the path for a flow: the fastest path that follows its [`PathPolicy`], and a backup
//! that shares no link with it.
//!
//! The source chooses (as in SCION): [`select`] takes a [`Topology`] snapshot, the two hubs and
//! the policy, and returns a [`PathChoice`] or a [`Refusal`] that says in one sentence why no
//! compliant path exists. It never returns a path that breaks the policy, whatever the graph.
//!
//! 1. Both endpoints must be in the graph and allowed by the policy.
//! 2. The primary path is the lowest-latency path through hubs the policy allows as
//!    intermediates (never a no-transit hub); if it has more hops than allowed, the
//!    lowest-latency path within the hop limit; it must then be within the latency limit.
//! 3. The backup is the best compliant path over the links the primary does not use. When the
//!    policy requires a backup and the fastest path has no disjoint partner, the pair of
//!    disjoint paths with the least total latency (Suurballe) is taken instead, if both of its
//!    paths are within the limits; the faster of the two is then the primary.
//!
//! With hop or latency limits, step 3's fallback is a heuristic: it can refuse when some other
//! disjoint pair, neither the fastest path's nor the least-total pair, would fit the limits.

mod refusal;
mod search;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;

pub use refusal::{Blocker, Endpoint, Refusal};

use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::Latency;
use crate::path_policy::{PathPolicy, Role};
use crate::topology::{HubIndex, LinkName, Topology};
use search::{Graph, RawPath};

/// A hub on a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathHub {
    /// Its id.
    pub id: HubId,
    /// Its jurisdiction.
    pub jurisdiction: Jurisdiction,
}

/// A loop-free path between two hubs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// The hubs, source first, destination last.
    pub hubs: Vec<PathHub>,
    /// `links[i]` joins `hubs[i]` and `hubs[i + 1]`.
    pub links: Vec<LinkName>,
    /// End-to-end latency: the sum of the links'.
    pub latency: Latency,
}

impl Path {
    /// Number of links.
    pub fn hops(&self) -> usize {
        self.links.len()
    }

    /// Every jurisdiction the path touches, endpoints included.
    pub fn jurisdictions(&self) -> BTreeSet<Jurisdiction> {
        self.hubs.iter().map(|hub| hub.jurisdiction).collect()
    }

    /// Whether the two paths share a link.
    pub fn shares_link_with(&self, other: &Path) -> bool {
        self.links.iter().any(|link| other.links.contains(link))
    }
}

impl fmt::Display for Path {
    /// `madrid-1 (ES) → lisbon-1 (PT) → sao-paulo-1 (BR): 2 hops, 48.2 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, hub) in self.hubs.iter().enumerate() {
            if i > 0 {
                f.write_str(" → ")?;
            }
            write!(f, "{} ({})", hub.id, hub.jurisdiction)?;
        }
        let plural = if self.hops() == 1 { "" } else { "s" };
        write!(f, ": {} hop{plural}, {}", self.hops(), self.latency)
    }
}

/// The paths chosen for one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathChoice {
    /// The path to use.
    pub primary: Path,
    /// A compliant path sharing no link with the primary, to fail over to; always present when
    /// the policy requires one.
    pub backup: Option<Path>,
}

/// The best compliant path from `from` to `to` under `policy`, and a link-disjoint backup.
pub fn select(
    topology: &Topology,
    from: &HubId,
    to: &HubId,
    policy: &PathPolicy,
) -> Result<PathChoice, Refusal> {
    let source = topology
        .index_of(from)
        .ok_or_else(|| Refusal::UnknownHub(from.clone()))?;
    let destination = topology
        .index_of(to)
        .ok_or_else(|| Refusal::UnknownHub(to.clone()))?;
    if source == destination {
        return Err(Refusal::SameHub(from.clone()));
    }
    let ends = (endpoint(topology, source), endpoint(topology, destination));
    for (hub, role) in [(source, "source"), (destination, "destination")] {
        if let Some(exclusion) = policy.exclusion(topology.hub(hub), Role::Endpoint) {
            return Err(Refusal::EndpointExcluded {
                from: ends.0.clone(),
                to: ends.1.clone(),
                role,
                exclusion,
            });
        }
    }
    let passable = topology
        .hubs()
        .iter()
        .map(|hub| policy.exclusion(hub, Role::Intermediate).is_none())
        .collect();
    let graph = Graph::new(topology, passable, source, destination);
    let selection = Selection {
        topology,
        policy,
        graph,
        ends,
    };
    selection.choose()
}

fn endpoint(topology: &Topology, hub: HubIndex) -> Endpoint {
    let hub = topology.hub(hub);
    Endpoint {
        id: hub.id.clone(),
        jurisdiction: hub.jurisdiction,
    }
}

/// One call of [`select`]: the graph the policy leaves, and the limits.
struct Selection<'a> {
    topology: &'a Topology,
    policy: &'a PathPolicy,
    graph: Graph<'a>,
    ends: (Endpoint, Endpoint),
}

impl Selection<'_> {
    fn choose(&self) -> Result<PathChoice, Refusal> {
        let no_ban = vec![false; self.topology.link_count()];
        let primary = self.best(&no_ban).map_err(|refusal| match refusal {
            Some(refusal) => refusal,
            None => self.unreachable(),
        })?;
        let mut banned = no_ban;
        for link in &primary.links {
            banned[link.get()] = true;
        }
        if let Ok(backup) = self.best(&banned) {
            return Ok(self.choice(&primary, Some(&backup)));
        }
        if !self.policy.disjoint_backup {
            return Ok(self.choice(&primary, None));
        }
        match self.graph.disjoint_pair() {
            Some((one, two)) if self.within_limits(&one) && self.within_limits(&two) => {
                Ok(self.choice(&one, Some(&two)))
            }
            Some((_, longer)) => Err(Refusal::BackupBeyondLimits {
                from: self.ends.0.clone(),
                to: self.ends.1.clone(),
                hops: longer.hops(),
                latency: longer.latency,
            }),
            None => Err(self.shared_link(&primary)),
        }
    }

    /// The best path avoiding `banned` within the limits. `Err(None)`: no path at all through
    /// the allowed hubs; `Err(Some(_))`: paths exist but none within the limits.
    fn best(&self, banned: &[bool]) -> Result<RawPath, Option<Refusal>> {
        let fastest = self.graph.fastest(banned).ok_or(None)?;
        let path = match self.policy.max_hops {
            Some(max) if fastest.hops() > max => {
                self.graph.fastest_within(banned, max).ok_or_else(|| {
                    Some(Refusal::TooManyHops {
                        from: self.ends.0.clone(),
                        to: self.ends.1.clone(),
                        fewest: self.graph.fewest_hops().unwrap_or(fastest.hops()),
                        max,
                    })
                })?
            }
            _ => fastest,
        };
        match self.policy.max_latency {
            Some(max) if path.latency > max => Err(Some(Refusal::TooSlow {
                from: self.ends.0.clone(),
                to: self.ends.1.clone(),
                fastest: path.latency,
                max,
            })),
            _ => Ok(path),
        }
    }

    fn within_limits(&self, path: &RawPath) -> bool {
        self.policy.max_hops.is_none_or(|max| path.hops() <= max)
            && self
                .policy
                .max_latency
                .is_none_or(|max| path.latency <= max)
    }

    fn choice(&self, primary: &RawPath, backup: Option<&RawPath>) -> PathChoice {
        PathChoice {
            primary: self.named(primary),
            backup: backup.map(|path| self.named(path)),
        }
    }

    fn named(&self, path: &RawPath) -> Path {
        Path {
            hubs: path
                .hubs
                .iter()
                .map(|hub| {
                    let hub = self.topology.hub(*hub);
                    PathHub {
                        id: hub.id.clone(),
                        jurisdiction: hub.jurisdiction,
                    }
                })
                .collect(),
            links: path
                .links
                .iter()
                .map(|link| self.topology.link_name(*link))
                .collect(),
            latency: path.latency,
        }
    }

    /// Why the destination cannot be reached through allowed hubs: the hubs every route
    /// crosses (see [`refusal::blockers`]), or no route at all.
    fn unreachable(&self) -> Refusal {
        let blockers = refusal::blockers(self.topology, self.policy, &self.ends);
        if blockers.is_empty() {
            Refusal::NoRoute {
                from: self.ends.0.clone(),
                to: self.ends.1.clone(),
            }
        } else {
            Refusal::Blocked {
                from: self.ends.0.clone(),
                to: self.ends.1.clone(),
                blockers,
            }
        }
    }

    /// No disjoint pair exists, so some link of the primary is on every compliant route.
    fn shared_link(&self, primary: &RawPath) -> Refusal {
        let bridge = primary.links.iter().copied().find(|link| {
            let mut banned = vec![false; self.topology.link_count()];
            banned[link.get()] = true;
            self.graph.fastest(&banned).is_none()
        });
        Refusal::SharedLink {
            from: self.ends.0.clone(),
            to: self.ends.1.clone(),
            link: self.topology.link_name(bridge.unwrap_or(primary.links[0])),
        }
    }
}
