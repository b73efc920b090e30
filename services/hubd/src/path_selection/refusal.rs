//! Why no compliant path exists, said so that an operator knows what to change.

use std::collections::VecDeque;
use std::fmt;

use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::Latency;
use crate::path_policy::{Exclusion, PathPolicy, Role};
use crate::topology::{LinkName, Topology};

/// A hub named with its jurisdiction: `madrid-1 (ES)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Its id.
    pub id: HubId,
    /// Its jurisdiction.
    pub jurisdiction: Jurisdiction,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.jurisdiction)
    }
}

/// A hub the policy keeps off the path, standing between source and destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// Its id.
    pub hub: HubId,
    /// Its jurisdiction.
    pub jurisdiction: Jurisdiction,
    /// Why the path may not cross it.
    pub exclusion: Exclusion,
}

impl fmt::Display for Blocker {
    /// `paris-1 (FR, an excluded jurisdiction)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {})",
            self.hub, self.jurisdiction, self.exclusion
        )
    }
}

/// `1 hop`, `3 hops`.
fn hops(count: usize) -> String {
    if count == 1 {
        "1 hop".to_owned()
    } else {
        format!("{count} hops")
    }
}

/// Most blockers named in one sentence.
const NAMED_BLOCKERS: usize = 8;

fn crossing(blockers: &[Blocker]) -> String {
    match blockers {
        [one] => format!("hub {one}"),
        many => {
            let named: Vec<String> = many
                .iter()
                .take(NAMED_BLOCKERS)
                .map(ToString::to_string)
                .collect();
            let more = many.len().saturating_sub(NAMED_BLOCKERS);
            let tail = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!("one of the hubs {}{tail}", named.join(", "))
        }
    }
}

/// Why [`super::select`] found no compliant path. Never followed by a non-compliant one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The hub is not in the topology.
    #[error(
        "hub {0} is not in the topology: it is not trusted, has not advertised, or its advertisement expired"
    )]
    UnknownHub(HubId),
    /// Source and destination are one hub.
    #[error("{0} is both the source and the destination")]
    SameHub(HubId),
    /// The policy excludes the source or the destination itself.
    #[error("no compliant path from {from} to {to}: the {role} itself is {exclusion}")]
    EndpointExcluded {
        /// Source.
        from: Endpoint,
        /// Destination.
        to: Endpoint,
        /// `source` or `destination`.
        role: &'static str,
        /// Why the policy excludes it.
        exclusion: Exclusion,
    },
    /// The two hubs are not connected at all.
    #[error("no path from {from} to {to}: no route joins them, whatever the policy")]
    NoRoute {
        /// Source.
        from: Endpoint,
        /// Destination.
        to: Endpoint,
    },
    /// Every route crosses a hub the policy keeps off the path.
    #[error("no compliant path from {from} to {to}: every route crosses {}", crossing(.blockers))]
    Blocked {
        /// Source.
        from: Endpoint,
        /// Destination.
        to: Endpoint,
        /// The hubs every route crosses one of.
        blockers: Vec<Blocker>,
    },
    /// Every compliant route has more hops than allowed.
    #[error(
        "no compliant path from {from} to {to} within {}: compliant routes have at least {fewest}",
        hops(*.max)
    )]
    TooManyHops {
        /// Source.
        from: Endpoint,
        /// Destination.
        to: Endpoint,
        /// The fewest hops of a compliant route.
        fewest: usize,
        /// The policy's limit.
        max: usize,
    },
    /// Every compliant route is slower than allowed.
    #[error(
        "no compliant path from {from} to {to} within {max}: the fastest compliant route takes {fastest}"
    )]
    TooSlow {
        /// Source.
        from: Endpoint,
        /// Destination.
        to: Endpoint,
        /// The fastest compliant route's latency.
        fastest: Latency,
        /// The policy's limit.
        max: Latency,
    },
    /// A backup is required, but one link is on every compliant route.
    #[error("no link-disjoint backup from {from} to {to}: every compliant route uses link {link}")]
    SharedLink {
        /// Source.
        from: Endpoint,
        /// Destination.
        to: Endpoint,
        /// A link on every compliant route.
        link: LinkName,
    },
    /// A backup is required; disjoint compliant pairs exist, but the one found breaks a limit.
    #[error(
        "no link-disjoint pair of compliant paths from {from} to {to} within the policy's limits: \
         the pair found needs {hops} hops and {latency} on its slower path"
    )]
    BackupBeyondLimits {
        /// Source.
        from: Endpoint,
        /// Destination.
        to: Endpoint,
        /// Hops of the slower path of the pair.
        hops: usize,
        /// Its latency.
        latency: Latency,
    },
}

/// The hubs the policy keeps off the path that every route from source to destination crosses
/// one of; empty when no route exists even ignoring the policy.
///
/// From the source, spread through hubs the policy lets a path cross: that region does not hold
/// the destination. Any route leaves it for the last time through a hub next to it that the
/// policy excludes and from which the destination can be reached without coming back: those
/// hubs are the answer.
pub(super) fn blockers(
    topology: &Topology,
    policy: &PathPolicy,
    ends: &(Endpoint, Endpoint),
) -> Vec<Blocker> {
    let (Some(from), Some(to)) = (topology.index_of(&ends.0.id), topology.index_of(&ends.1.id))
    else {
        return Vec::new();
    };
    let n = topology.hub_count();
    let excluded = |hub| policy.exclusion(topology.hub(hub), Role::Intermediate);
    // The region reachable from the source through allowed hubs, and the excluded hubs next to it.
    let mut region = vec![false; n];
    let mut frontier = vec![false; n];
    region[from.get()] = true;
    let mut queue = VecDeque::from([from]);
    while let Some(hub) = queue.pop_front() {
        for &(next, _) in topology.neighbours(hub) {
            if region[next.get()] || frontier[next.get()] || next == to {
                continue;
            }
            if excluded(next).is_some() {
                frontier[next.get()] = true;
            } else {
                region[next.get()] = true;
                queue.push_back(next);
            }
        }
    }
    // The hubs from which the destination is reachable without entering the region.
    let mut onward = vec![false; n];
    onward[to.get()] = true;
    let mut queue = VecDeque::from([to]);
    while let Some(hub) = queue.pop_front() {
        for &(next, _) in topology.neighbours(hub) {
            if !onward[next.get()] && !region[next.get()] {
                onward[next.get()] = true;
                queue.push_back(next);
            }
        }
    }
    topology
        .hubs()
        .iter()
        .enumerate()
        .filter(|(i, _)| frontier[*i] && onward[*i])
        .map(|(i, hub)| Blocker {
            hub: hub.id.clone(),
            jurisdiction: hub.jurisdiction,
            exclusion: excluded(crate::topology::HubIndex::at(i))
                .expect("frontier hubs are excluded"),
        })
        .collect()
}
