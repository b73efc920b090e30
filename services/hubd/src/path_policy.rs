//! [`PathPolicy`]: the rules a path for one service or flow must follow.
//!
//! A policy constrains **every hub on the path**, source and destination included: allowed
//! jurisdictions (none listed: any), excluded jurisdictions, excluded hubs. Intermediate hubs
//! must also carry transit (no-transit hubs are only ever endpoints). Then the whole path:
//! at most `max_hops` links, at most `max_latency` end to end, and, when `disjoint_backup` is
//! set, a second compliant path that shares no link with the first must exist.
//! [`crate::path_selection`] never returns a path that breaks any of these.

use std::collections::BTreeSet;
use std::fmt;

use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::Latency;
use crate::topology::TopologyHub;

/// The rules one path must follow. The default allows every path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathPolicy {
    /// When not empty, every hub on the path must stand in one of these.
    pub allowed_jurisdictions: BTreeSet<Jurisdiction>,
    /// No hub on the path may stand in one of these.
    pub excluded_jurisdictions: BTreeSet<Jurisdiction>,
    /// None of these hubs may be on the path.
    pub excluded_hubs: BTreeSet<HubId>,
    /// Most links on the path; `None`: no limit.
    pub max_hops: Option<usize>,
    /// Longest end-to-end latency (the sum of the links'); `None`: no limit.
    pub max_latency: Option<Latency>,
    /// Whether a link-disjoint compliant backup path is required.
    pub disjoint_backup: bool,
}

/// Where a hub stands on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The first or the last hub.
    Endpoint,
    /// Any hub in between: it forwards transit traffic.
    Intermediate,
}

/// Why a hub may not be on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Exclusion {
    /// The policy excludes this hub by name.
    ExcludedHub,
    /// The hub stands in an excluded jurisdiction.
    ExcludedJurisdiction,
    /// The hub stands outside the allowed jurisdictions.
    NotAllowedJurisdiction,
    /// The hub advertises no transit and would be an intermediate hop.
    NoTransit,
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ExcludedHub => "an excluded hub",
            Self::ExcludedJurisdiction => "an excluded jurisdiction",
            Self::NotAllowedJurisdiction => "outside the allowed jurisdictions",
            Self::NoTransit => "no transit",
        })
    }
}

/// A policy that contradicts itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A jurisdiction both allowed and excluded.
    #[error("`{0}` is both allowed and excluded")]
    AllowedAndExcluded(Jurisdiction),
    /// A limit of zero hops: no path between two hubs has none.
    #[error("a path has at least one hop; `max_hops` must be 1 or more")]
    ZeroHops,
}

impl PathPolicy {
    /// Checks that the policy does not contradict itself (what would otherwise only show as
    /// every path refused).
    pub fn check(&self) -> Result<(), PolicyError> {
        if let Some(both) = self
            .allowed_jurisdictions
            .intersection(&self.excluded_jurisdictions)
            .next()
        {
            return Err(PolicyError::AllowedAndExcluded(*both));
        }
        if self.max_hops == Some(0) {
            return Err(PolicyError::ZeroHops);
        }
        Ok(())
    }

    /// Why `hub` may not be on a path in `role`; `None` when it may.
    pub fn exclusion(&self, hub: &TopologyHub, role: Role) -> Option<Exclusion> {
        if self.excluded_hubs.contains(&hub.id) {
            Some(Exclusion::ExcludedHub)
        } else if self.excluded_jurisdictions.contains(&hub.jurisdiction) {
            Some(Exclusion::ExcludedJurisdiction)
        } else if !self.allowed_jurisdictions.is_empty()
            && !self.allowed_jurisdictions.contains(&hub.jurisdiction)
        {
            Some(Exclusion::NotAllowedJurisdiction)
        } else if role == Role::Intermediate && !hub.transit {
            Some(Exclusion::NoTransit)
        } else {
            None
        }
    }
}

impl fmt::Display for PathPolicy {
    /// One line, e.g. `excluding FR, at most 4 hops, a disjoint backup`; `any path` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |items: Vec<String>| items.join(", ");
        let mut rules = Vec::new();
        if !self.allowed_jurisdictions.is_empty() {
            let codes = self
                .allowed_jurisdictions
                .iter()
                .map(ToString::to_string)
                .collect();
            rules.push(format!("only in {}", join(codes)));
        }
        if !self.excluded_jurisdictions.is_empty() {
            let codes = self
                .excluded_jurisdictions
                .iter()
                .map(ToString::to_string)
                .collect();
            rules.push(format!("excluding {}", join(codes)));
        }
        if !self.excluded_hubs.is_empty() {
            let hubs = self.excluded_hubs.iter().map(ToString::to_string).collect();
            rules.push(format!("avoiding hubs {}", join(hubs)));
        }
        if let Some(hops) = self.max_hops {
            rules.push(format!("at most {hops} hops"));
        }
        if let Some(latency) = self.max_latency {
            rules.push(format!("at most {latency}"));
        }
        if self.disjoint_backup {
            rules.push("a link-disjoint backup".to_owned());
        }
        if rules.is_empty() {
            f.write_str("any path")
        } else {
            f.write_str(&rules.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{country, hub};

    fn at(id: &str, code: &str, transit: bool) -> TopologyHub {
        TopologyHub {
            id: hub(id),
            jurisdiction: country(code),
            transit,
        }
    }

    #[test]
    fn the_default_allows_every_hub_that_carries_transit() {
        let policy = PathPolicy::default();
        policy.check().unwrap();
        assert_eq!(
            policy.exclusion(&at("paris-1", "FR", true), Role::Intermediate),
            None
        );
        assert_eq!(
            policy.exclusion(&at("paris-1", "FR", false), Role::Intermediate),
            Some(Exclusion::NoTransit)
        );
        assert_eq!(
            policy.exclusion(&at("paris-1", "FR", false), Role::Endpoint),
            None
        );
        assert_eq!(policy.to_string(), "any path");
    }

    #[test]
    fn hubs_and_jurisdictions_are_excluded_in_every_role() {
        let policy = PathPolicy {
            allowed_jurisdictions: [country("ES"), country("PT"), country("BR")].into(),
            excluded_jurisdictions: [country("FR")].into(),
            excluded_hubs: [hub("lisbon-2")].into(),
            max_hops: Some(4),
            max_latency: Some(Latency::from_millis(120)),
            disjoint_backup: true,
        };
        policy.check().unwrap();
        for role in [Role::Endpoint, Role::Intermediate] {
            assert_eq!(
                policy.exclusion(&at("paris-1", "FR", true), role),
                Some(Exclusion::ExcludedJurisdiction)
            );
            assert_eq!(
                policy.exclusion(&at("lisbon-2", "PT", true), role),
                Some(Exclusion::ExcludedHub)
            );
            assert_eq!(
                policy.exclusion(&at("geneva-1", "CH", true), role),
                Some(Exclusion::NotAllowedJurisdiction)
            );
            assert_eq!(policy.exclusion(&at("lisbon-1", "PT", true), role), None);
        }
        assert_eq!(
            policy.to_string(),
            "only in BR, ES, PT, excluding FR, avoiding hubs lisbon-2, at most 4 hops, \
             at most 120.0 ms, a link-disjoint backup"
        );
    }

    #[test]
    fn contradictions_are_refused() {
        let both = PathPolicy {
            allowed_jurisdictions: [country("FR")].into(),
            excluded_jurisdictions: [country("FR")].into(),
            ..PathPolicy::default()
        };
        assert_eq!(
            both.check().unwrap_err().to_string(),
            "`FR` is both allowed and excluded"
        );
        let zero = PathPolicy {
            max_hops: Some(0),
            ..PathPolicy::default()
        };
        assert_eq!(zero.check(), Err(PolicyError::ZeroHops));
    }
}
