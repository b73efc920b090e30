//! [`Route`]: the hubs a circuit crosses and the link it takes between each pair, as the source
//! chose them; every hub on the way finds its own place in it.

use std::fmt;

use crate::hub_id::HubId;
use crate::link::LinkId;
use crate::links::LinkKey;
use crate::path_selection::Path;

/// Fewest hubs on a route: a source and a destination.
pub const MIN_ROUTE_HUBS: usize = 2;
/// Most hubs on a route: the source and 64 more (so at most 64 receipts come back).
pub const MAX_ROUTE_HUBS: usize = 65;

/// Why hubs and links do not make a route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Fewer than two hubs, or more than [`MAX_ROUTE_HUBS`].
    #[error("a route of {0} hubs; a route has {MIN_ROUTE_HUBS} to {MAX_ROUTE_HUBS}")]
    HubCount(usize),
    /// Not one link between each pair of consecutive hubs.
    #[error("a route of {hubs} hubs needs {} links, not {links}", hubs - 1)]
    LinkCount {
        /// Hubs given.
        hubs: usize,
        /// Links given.
        links: usize,
    },
    /// A hub listed twice: the circuit would come back through it.
    #[error("hub {0} is on the route twice")]
    Loop(HubId),
}

impl RouteError {
    /// A short label for the metrics: `hub_count`, `link_count`, `loop`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::HubCount(_) => "hub_count",
            Self::LinkCount { .. } => "link_count",
            Self::Loop(_) => "loop",
        }
    }
}

/// A loop-free route: source first, destination last; `links[i]` joins `hubs[i]` and
/// `hubs[i + 1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    hubs: Vec<HubId>,
    links: Vec<LinkId>,
}

impl Route {
    /// Checks the counts and that no hub is listed twice.
    pub fn new(hubs: Vec<HubId>, links: Vec<LinkId>) -> Result<Self, RouteError> {
        if !(MIN_ROUTE_HUBS..=MAX_ROUTE_HUBS).contains(&hubs.len()) {
            return Err(RouteError::HubCount(hubs.len()));
        }
        if links.len() != hubs.len() - 1 {
            return Err(RouteError::LinkCount {
                hubs: hubs.len(),
                links: links.len(),
            });
        }
        for (i, hub) in hubs.iter().enumerate() {
            if hubs[..i].contains(hub) {
                return Err(RouteError::Loop(hub.clone()));
            }
        }
        Ok(Self { hubs, links })
    }

    /// The route of a path chosen by [`crate::path_selection`].
    pub fn of_path(path: &Path) -> Result<Self, RouteError> {
        Self::new(
            path.hubs.iter().map(|hub| hub.id.clone()).collect(),
            path.links.iter().map(|link| link.id).collect(),
        )
    }

    /// The hubs, source first.
    pub fn hubs(&self) -> &[HubId] {
        &self.hubs
    }

    /// The link numbers, `links()[i]` between `hubs()[i]` and `hubs()[i + 1]`.
    pub fn links(&self) -> &[LinkId] {
        &self.links
    }

    /// The hub that opens the circuit.
    pub fn source(&self) -> &HubId {
        &self.hubs[0]
    }

    /// The hub the circuit ends at.
    pub fn destination(&self) -> &HubId {
        &self.hubs[self.hubs.len() - 1]
    }

    /// Where `hub` is on the route (0 = source), if it is.
    pub fn position(&self, hub: &HubId) -> Option<usize> {
        self.hubs.iter().position(|candidate| candidate == hub)
    }

    /// Seen from the hub at `position`, the link it arrives on from the hub before it.
    pub fn link_before(&self, position: usize) -> Option<LinkKey> {
        let before = position.checked_sub(1)?;
        Some(LinkKey {
            peer: self.hubs[before].clone(),
            link: self.links[before],
        })
    }

    /// Seen from the hub at `position`, the link it goes on by to the hub after it.
    pub fn link_after(&self, position: usize) -> Option<LinkKey> {
        Some(LinkKey {
            peer: self.hubs.get(position + 1)?.clone(),
            link: self.links[position],
        })
    }
}

impl fmt::Display for Route {
    /// `madrid-1 #1 lisbon-1 #2 sao-paulo-1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.hubs[0])?;
        for (hub, link) in self.hubs[1..].iter().zip(&self.links) {
            write!(f, " {link} {hub}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::hub;

    fn link(id: u16) -> LinkId {
        LinkId::new(id).unwrap()
    }

    #[test]
    fn a_route_names_each_hubs_neighbours_and_links() {
        let route = Route::new(
            vec![hub("madrid-1"), hub("lisbon-1"), hub("sao-paulo-1")],
            vec![link(1), link(2)],
        )
        .unwrap();
        assert_eq!(route.to_string(), "madrid-1 #1 lisbon-1 #2 sao-paulo-1");
        assert_eq!(route.source(), &hub("madrid-1"));
        assert_eq!(route.destination(), &hub("sao-paulo-1"));
        assert_eq!(route.position(&hub("lisbon-1")), Some(1));
        assert_eq!(route.position(&hub("paris-1")), None);
        let before = route.link_before(1).unwrap();
        assert_eq!((before.peer, before.link), (hub("madrid-1"), link(1)));
        let after = route.link_after(1).unwrap();
        assert_eq!((after.peer, after.link), (hub("sao-paulo-1"), link(2)));
        assert!(route.link_before(0).is_none());
        assert!(route.link_after(2).is_none());
    }

    #[test]
    fn counts_and_loops_are_refused() {
        let hubs = |ids: &[&str]| ids.iter().map(|id| hub(id)).collect::<Vec<_>>();
        assert_eq!(
            Route::new(hubs(&["a"]), vec![]),
            Err(RouteError::HubCount(1))
        );
        let many: Vec<_> = (0..66).map(|i| hub(&format!("h{i}"))).collect();
        assert_eq!(
            Route::new(many, vec![link(1); 65]),
            Err(RouteError::HubCount(66))
        );
        assert_eq!(
            Route::new(hubs(&["a", "b"]), vec![link(1), link(1)]),
            Err(RouteError::LinkCount { hubs: 2, links: 2 })
        );
        let looped = Route::new(hubs(&["a", "b", "a"]), vec![link(1), link(1)]);
        assert_eq!(looped, Err(RouteError::Loop(hub("a"))));
        assert_eq!(looped.unwrap_err().label(), "loop");
        let longest: Vec<_> = (0..65).map(|i| hub(&format!("h{i}"))).collect();
        assert!(Route::new(longest, vec![link(1); 64]).is_ok());
    }
}
