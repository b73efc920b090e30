//! [`RouteTable`]: where an IP packet goes, from the prefixes trusted hubs announce and the
//! operator's `[[route]]` entries ([`crate::config::ip`]). Pure: no sockets, no clock.
//!
//! - **Own prefixes first**: an address inside a prefix this hub announces is never routed into
//!   the network ([`Lookup::Own`]), and another hub's announcement of a prefix inside one of
//!   ours (the same or more specific) is ignored and reported as a [`Conflict`].
//! - **Longest prefix match** over the announcements of trusted hubs.
//! - **The same prefix from two hubs**: the hub whose id sorts first keeps it (deterministic,
//!   the same on every hub that sees both), the other's announcement is ignored for routing and
//!   for its sources, and the pair is reported as a [`Conflict`].
//! - **Pins**: a `[[route]]` with `hub` admits only that hub's announcements inside its prefix
//!   (others, the same prefix or more specific, are ignored and reported); an address in a
//!   pinned prefix whose hub announces nothing that covers it has no route, rather than falling
//!   back to a wider announcement of some other hub.
//! - **Policies**: the most specific `[[route]]` containing the address names the path policy.
//!
//! The same accepted announcements answer the destination's anti-spoofing question
//! ([`RouteTable::announces`]): does the hub a packet came from announce its source address?

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::config::ip::RouteEntry;
use crate::flooding::ControlPlaneView;
use crate::grant::IpPrefix;
use crate::hub_id::HubId;

/// One accepted announcement: `hub` announces `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The prefix.
    pub prefix: IpPrefix,
    /// The hub behind it.
    pub hub: HubId,
}

/// Why an announcement is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConflictKind {
    /// Another hub announces the same prefix and keeps it (its id sorts first).
    SamePrefix {
        /// The hub that keeps it.
        kept_by: HubId,
    },
    /// Inside a `[[route]]` pinned to another hub.
    Pinned {
        /// The pinned prefix.
        route: IpPrefix,
        /// The hub it is pinned to.
        to: HubId,
    },
    /// Inside a prefix this hub announces.
    Own(IpPrefix),
}

/// An announcement ignored, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The ignored announcement.
    pub ignored: Announcement,
    /// Why.
    pub kind: ConflictKind,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Announcement { prefix, hub } = &self.ignored;
        match &self.kind {
            ConflictKind::SamePrefix { kept_by } => {
                write!(
                    f,
                    "{hub} announces {prefix}, which {kept_by} announces too and keeps"
                )
            }
            ConflictKind::Pinned { route, to } => {
                write!(
                    f,
                    "{hub} announces {prefix}, inside route {route} pinned to {to}"
                )
            }
            ConflictKind::Own(own) => {
                write!(f, "{hub} announces {prefix}, inside {own} of this hub")
            }
        }
    }
}

/// Where a packet for one address goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Behind this hub: never routed into the network.
    Own,
    /// To another hub.
    Remote(Destination<'a>),
    /// Nowhere: no trusted hub announces it (or not the hub it is pinned to).
    NoRoute,
}

/// The hub a packet goes to, the announcement that matched, and the path policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination<'a> {
    /// The hub.
    pub hub: &'a HubId,
    /// Its announcement that matched.
    pub prefix: IpPrefix,
    /// The named path policy (none: any path).
    pub policy: Option<&'a str>,
}

/// The routes of this hub (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    own: Vec<IpPrefix>,
    /// Most specific first.
    announced: Vec<Announcement>,
    /// Most specific first.
    routes: Vec<RouteEntry>,
    conflicts: Vec<Conflict>,
}

impl RouteTable {
    /// The table of the control plane now: this hub's own prefixes, the announcements of the
    /// hubs it trusts, and `routes`.
    pub fn from_view(view: &ControlPlaneView, routes: &[RouteEntry]) -> Self {
        let announcements = view
            .advertisements
            .iter()
            .filter(|(hub, _)| view.trusted.contains_key(*hub) && **hub != *view.own.origin())
            .map(|(hub, advertisement)| (hub.clone(), advertisement.prefixes().to_vec()));
        Self::build(view.own.prefixes(), announcements, routes)
    }

    /// The table from this hub's `own` prefixes, the `announcements` of trusted hubs, and
    /// `routes`.
    pub fn build(
        own: &[IpPrefix],
        announcements: impl IntoIterator<Item = (HubId, Vec<IpPrefix>)>,
        routes: &[RouteEntry],
    ) -> Self {
        let mut conflicts = Vec::new();
        // By prefix, every hub announcing it in id order: the first keeps it.
        let mut by_prefix: BTreeMap<IpPrefix, Vec<HubId>> = BTreeMap::new();
        for (hub, prefixes) in announcements {
            for prefix in prefixes {
                by_prefix.entry(prefix).or_default().push(hub.clone());
            }
        }
        let mut announced = Vec::new();
        for (prefix, mut hubs) in by_prefix {
            hubs.sort();
            hubs.dedup();
            let mut kept: Option<HubId> = None;
            for hub in hubs {
                let announcement = Announcement {
                    prefix,
                    hub: hub.clone(),
                };
                match refusal(own, routes, &announcement, kept.as_ref()) {
                    Some(kind) => conflicts.push(Conflict {
                        ignored: announcement,
                        kind,
                    }),
                    None => {
                        kept = Some(hub);
                        announced.push(announcement);
                    }
                }
            }
        }
        announced.sort_by_key(|a| std::cmp::Reverse(a.prefix.length()));
        let mut routes = routes.to_vec();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.length()));
        Self {
            own: own.to_vec(),
            announced,
            routes,
            conflicts,
        }
    }

    /// Where a packet for `address` goes.
    pub fn lookup(&self, address: IpAddr) -> Lookup<'_> {
        if self.own.iter().any(|prefix| prefix.contains(address)) {
            return Lookup::Own;
        }
        let route = self.routes.iter().find(|r| r.prefix.contains(address));
        let Some(announcement) = self.announced.iter().find(|a| a.prefix.contains(address)) else {
            return Lookup::NoRoute;
        };
        if let Some(pinned) = route.and_then(|r| r.hub.as_ref())
            && *pinned != announcement.hub
        {
            return Lookup::NoRoute;
        }
        Lookup::Remote(Destination {
            hub: &announcement.hub,
            prefix: announcement.prefix,
            policy: route.and_then(|r| r.path_policy.as_deref()),
        })
    }

    /// Whether `hub` announces `address` (an accepted announcement: the source check of
    /// packets arriving from it).
    pub fn announces(&self, hub: &HubId, address: IpAddr) -> bool {
        self.announced
            .iter()
            .any(|a| a.hub == *hub && a.prefix.contains(address))
    }

    /// Whether `address` lies behind this hub.
    pub fn is_own(&self, address: IpAddr) -> bool {
        self.own.iter().any(|prefix| prefix.contains(address))
    }

    /// The accepted announcements, most specific first.
    pub fn announced(&self) -> &[Announcement] {
        &self.announced
    }

    /// The announcements ignored, and why.
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }
}

/// Why `announcement` is ignored, if it is: inside an own prefix, inside a route pinned to
/// another hub, or the same prefix as one `kept` by a hub whose id sorts first.
fn refusal(
    own: &[IpPrefix],
    routes: &[RouteEntry],
    announcement: &Announcement,
    kept: Option<&HubId>,
) -> Option<ConflictKind> {
    let Announcement { prefix, hub } = announcement;
    let inside =
        |outer: &IpPrefix| outer.length() <= prefix.length() && outer.contains(prefix.address());
    if let Some(mine) = own.iter().find(|mine| inside(mine)) {
        return Some(ConflictKind::Own(*mine));
    }
    let pinned = routes.iter().find(|route| {
        route
            .hub
            .as_ref()
            .is_some_and(|to| to != hub && inside(&route.prefix))
    });
    if let Some(route) = pinned {
        return Some(ConflictKind::Pinned {
            route: route.prefix,
            to: route.hub.clone().expect("pinned"),
        });
    }
    kept.map(|kept_by| ConflictKind::SamePrefix {
        kept_by: kept_by.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::hub;

    fn prefix(text: &str) -> IpPrefix {
        IpPrefix::parse(text).unwrap()
    }

    fn prefixes(texts: &[&str]) -> Vec<IpPrefix> {
        texts.iter().map(|t| prefix(t)).collect()
    }

    fn route(text: &str, pin: Option<&str>, policy: Option<&str>) -> RouteEntry {
        RouteEntry {
            prefix: prefix(text),
            hub: pin.map(hub),
            path_policy: policy.map(str::to_owned),
        }
    }

    fn to(table: &RouteTable, address: &str) -> Option<(String, String, Option<String>)> {
        match table.lookup(address.parse().unwrap()) {
            Lookup::Remote(d) => Some((
                d.hub.to_string(),
                d.prefix.to_string(),
                d.policy.map(str::to_owned),
            )),
            Lookup::Own | Lookup::NoRoute => None,
        }
    }

    #[test]
    fn the_longest_announced_prefix_wins_and_own_prefixes_stay_home() {
        let table = RouteTable::build(
            &prefixes(&["10.77.1.0/24"]),
            [
                (hub("lisbon-1"), prefixes(&["10.0.0.0/8", "2001:db8::/32"])),
                (hub("paris-1"), prefixes(&["10.77.3.0/24"])),
            ],
            &[route("10.77.3.0/24", None, Some("eu-only"))],
        );
        assert_eq!(
            to(&table, "10.77.3.9"),
            Some((
                "paris-1".into(),
                "10.77.3.0/24".into(),
                Some("eu-only".into())
            ))
        );
        assert_eq!(
            to(&table, "10.9.9.9"),
            Some(("lisbon-1".into(), "10.0.0.0/8".into(), None))
        );
        assert_eq!(
            to(&table, "2001:db8::1"),
            Some(("lisbon-1".into(), "2001:db8::/32".into(), None))
        );
        assert_eq!(table.lookup("10.77.1.7".parse().unwrap()), Lookup::Own);
        assert_eq!(table.lookup("192.0.2.1".parse().unwrap()), Lookup::NoRoute);
        assert!(table.announces(&hub("paris-1"), "10.77.3.200".parse().unwrap()));
        assert!(!table.announces(&hub("paris-1"), "10.77.4.1".parse().unwrap()));
        assert!(table.conflicts().is_empty());
    }

    #[test]
    fn the_same_prefix_from_two_hubs_goes_to_the_first_id_and_is_reported() {
        let announcements =
            |order: [&str; 2]| order.map(|id| (hub(id), prefixes(&["10.77.3.0/24"])));
        for order in [["rome-1", "paris-1"], ["paris-1", "rome-1"]] {
            let table = RouteTable::build(&[], announcements(order), &[]);
            assert_eq!(to(&table, "10.77.3.1").unwrap().0, "paris-1", "{order:?}");
            assert_eq!(
                table.conflicts()[0].to_string(),
                "rome-1 announces 10.77.3.0/24, which paris-1 announces too and keeps"
            );
            assert!(!table.announces(&hub("rome-1"), "10.77.3.1".parse().unwrap()));
        }
    }

    #[test]
    fn a_pinned_prefix_is_routed_only_to_its_hub() {
        let routes = [route("10.77.3.0/24", Some("paris-1"), None)];
        // Athens (sorting before Paris) and Rome announce the pinned prefix, Rome a more
        // specific one too: all ignored.
        let table = RouteTable::build(
            &[],
            [
                (hub("rome-1"), prefixes(&["10.77.3.0/24", "10.77.3.128/25"])),
                (hub("paris-1"), prefixes(&["10.77.3.0/24"])),
                (hub("athens-1"), prefixes(&["10.77.3.0/24"])),
            ],
            &routes,
        );
        assert_eq!(to(&table, "10.77.3.200").unwrap().0, "paris-1");
        assert_eq!(table.conflicts().len(), 3);
        assert_eq!(
            table.conflicts()[0].to_string(),
            "athens-1 announces 10.77.3.0/24, inside route 10.77.3.0/24 pinned to paris-1"
        );
        // Paris silent: no route, not a fallback to a wider announcement of another hub.
        let table = RouteTable::build(&[], [(hub("rome-1"), prefixes(&["10.0.0.0/8"]))], &routes);
        assert_eq!(table.lookup("10.77.3.1".parse().unwrap()), Lookup::NoRoute);
        assert_eq!(to(&table, "10.77.4.1").unwrap().0, "rome-1");
        // Paris announcing a wider prefix covers the pinned one.
        let table = RouteTable::build(
            &[],
            [(hub("paris-1"), prefixes(&["10.77.0.0/16"]))],
            &routes,
        );
        assert_eq!(to(&table, "10.77.3.1").unwrap().0, "paris-1");
    }

    #[test]
    fn another_hub_announcing_inside_our_prefix_is_ignored() {
        let table = RouteTable::build(
            &prefixes(&["10.77.1.0/24"]),
            [(hub("rome-1"), prefixes(&["10.77.1.128/25", "10.77.0.0/16"]))],
            &[],
        );
        assert_eq!(table.lookup("10.77.1.200".parse().unwrap()), Lookup::Own);
        assert_eq!(to(&table, "10.77.2.1").unwrap().1, "10.77.0.0/16");
        assert_eq!(
            table.conflicts()[0].to_string(),
            "rome-1 announces 10.77.1.128/25, inside 10.77.1.0/24 of this hub"
        );
        assert!(table.is_own("10.77.1.1".parse().unwrap()));
    }
}
