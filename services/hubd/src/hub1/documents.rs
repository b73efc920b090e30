//! The documents `org.bunkeros.Hub1` answers with, built from one [`HubSnapshot`].
//!
//! Pure functions of the snapshot, so what hubd says over D-Bus is tested without a bus. Fields
//! are only ever added (see `appliance::dbus::contracts::Hub1Proxy`); times are RFC 3339 in
//! UTC, latencies milliseconds.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::advertisement::{Advertisement, Timestamp};
use crate::hub_id::HubId;
use crate::link::Latency;
use crate::links::LinkKey;
use crate::path_policy::PathPolicy;
use crate::path_selection::{self, Path, PathChoice, Refusal};
use crate::peering::{PeerLink, PeeringAgreement};
use crate::snapshot::HubSnapshot;
use crate::trust::TrustPath;

/// Why `Paths` has no paths to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathsRefused {
    /// No path follows the policy: the refusal says why.
    #[error("{0}")]
    NoCompliantPath(Refusal),
    /// `hubd.toml` names no such policy.
    #[error("hubd.toml has no path policy named `{name}`; {}", known_policies(.known))]
    UnknownPolicy {
        /// The name asked for (cut to 64 characters).
        name: String,
        /// The policies that exist.
        known: Vec<String>,
    },
    /// The destination is not a hub id, or is this hub.
    #[error("{0}")]
    InvalidDestination(String),
}

fn known_policies(known: &[String]) -> String {
    if known.is_empty() {
        "it names none (leave the policy empty for paths without constraints)".to_owned()
    } else {
        format!("it names {}", known.join(", "))
    }
}

/// `Status()`: who this hub is, its links, trust, certificate, advertisement and counters.
pub fn status(snapshot: &HubSnapshot) -> Value {
    let view = &snapshot.view;
    let counters = &view.counters;
    json!({
        "hub": snapshot.own.as_str(),
        "jurisdiction": view.own.jurisdiction().as_str(),
        "transit": view.transit,
        "transit_reason": snapshot.transit.reason,
        "links": {
            "up": view.links.len(),
            "configured": configured_links(snapshot).count(),
        },
        "hubs_trusted": view.trusted.len(),
        "certificate": {
            "source": snapshot.certificate_source,
            "not_after": rfc3339(snapshot.certificate_not_after.into()),
            "renewal_error": snapshot.certificate_renewal_error,
        },
        "advertisement": {
            "sequence": view.own.sequence(),
            "expires_at": rfc3339(view.own.expires_at()),
        },
        "held_back": view.held_back,
        "counters": {
            "accepted": counters.accepted,
            "duplicates": counters.duplicates,
            "rejected": counters.rejected,
            "malformed": counters.malformed,
            "held_back": counters.held_back,
            "originated": counters.originated,
            "origination_failures": counters.origination_failures,
        },
        "taken_at": rfc3339(snapshot.taken_at.into()),
    })
}

/// `Links()`: every configured link, by peer and link number, up or not.
pub fn links(snapshot: &HubSnapshot) -> Value {
    configured_links(snapshot)
        .map(|(agreement, link)| {
            let key = LinkKey {
                peer: agreement.hub().clone(),
                link: link.id,
            };
            let latency = snapshot.view.links.get(&key);
            json!({
                "peer": agreement.hub().as_str(),
                "jurisdiction": agreement.jurisdiction().as_str(),
                "link": link.id.get(),
                "address": link.address.to_string(),
                "up": latency.is_some(),
                // The view holds the one-way latency: half the RTT.
                "rtt_ms": latency.map(|one_way| millis(one_way.saturating_add(*one_way))),
            })
        })
        .collect()
}

/// Every configured link, by peer and then link number.
fn configured_links(
    snapshot: &HubSnapshot,
) -> impl Iterator<Item = (&PeeringAgreement, &PeerLink)> {
    snapshot.peers.iter().flat_map(|agreement| {
        let mut links: Vec<_> = agreement.links().iter().collect();
        links.sort_by_key(|link| link.id);
        links.into_iter().map(move |link| (agreement, link))
    })
}

/// `Hubs()`: this hub and every hub whose advertisement is held, by hub id.
pub fn hubs(snapshot: &HubSnapshot) -> Value {
    let view = &snapshot.view;
    let mut all: BTreeMap<&HubId, &Advertisement> = view.advertisements.iter().collect();
    all.insert(&snapshot.own, &view.own);
    all.into_iter()
        .map(|(id, advertisement)| {
            let (trust, through) = trust_of(snapshot, id);
            json!({
                "id": id.as_str(),
                "jurisdiction": advertisement.jurisdiction().as_str(),
                "trust": trust,
                "vouched_through": through,
                "transit": !advertisement.flags().no_transit,
                "sequence": advertisement.sequence(),
                "expires_at": rfc3339(advertisement.expires_at()),
                "links": advertisement.links().iter().map(|link| json!({
                    "neighbour": link.neighbour.as_str(),
                    "link": link.link.get(),
                    "latency_ms": millis(link.latency),
                })).collect::<Vec<_>>(),
                "prefixes": advertisement
                    .prefixes()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// How `hub` is trusted, and for a vouched hub the chain of vouchers from the pinned peer to the
/// one that vouches for it directly.
fn trust_of(snapshot: &HubSnapshot, hub: &HubId) -> (&'static str, Vec<String>) {
    if *hub == snapshot.own {
        return ("self", Vec::new());
    }
    let trusted = &snapshot.view.trusted;
    match trusted.get(hub) {
        None => ("untrusted", Vec::new()),
        Some(TrustPath::Peer) => ("pinned", Vec::new()),
        Some(TrustPath::Vouched { by }) => {
            let mut chain = vec![by.to_string()];
            let mut voucher = by;
            // Each voucher was trusted before the hub it vouches for, so the chain ends at a
            // pinned peer; the bound only guards against a view that breaks that.
            while let Some(TrustPath::Vouched { by }) = trusted.get(voucher) {
                if chain.len() > trusted.len() {
                    break;
                }
                chain.push(by.to_string());
                voucher = by;
            }
            chain.reverse();
            ("vouched", chain)
        }
    }
}

/// `Routes()`: for every trusted hub but this one, the best path without constraints and its
/// link-disjoint backup, or why there is none.
pub fn routes(snapshot: &HubSnapshot) -> Value {
    let anything = PathPolicy::default();
    snapshot
        .view
        .trusted
        .keys()
        .filter(|hub| **hub != snapshot.own)
        .map(|hub| {
            let jurisdiction = snapshot
                .view
                .advertisements
                .get(hub)
                .map(|advertisement| advertisement.jurisdiction().as_str().to_owned());
            let mut route = json!({
                "destination": hub.as_str(),
                "jurisdiction": jurisdiction,
                "primary": null,
                "backup": null,
                "refusal": null,
            });
            match path_selection::select(&snapshot.view.topology, &snapshot.own, hub, &anything) {
                Ok(choice) => add_choice(&mut route, &choice),
                Err(refusal) => route["refusal"] = json!(refusal.to_string()),
            }
            route
        })
        .collect()
}

/// `Paths(destination, policy)`: the paths to `destination` under the policy named `policy`
/// (empty: no constraints), or why there are none. Never a path that breaks the policy.
pub fn paths(
    snapshot: &HubSnapshot,
    destination: &str,
    policy: &str,
) -> Result<Value, PathsRefused> {
    let to = HubId::parse(destination).map_err(|error| {
        PathsRefused::InvalidDestination(format!(
            "the destination `{}` is not a hub id: {error}",
            cut(destination)
        ))
    })?;
    if to == snapshot.own {
        return Err(PathsRefused::InvalidDestination(format!(
            "{to} is this hub; ask for the paths to another hub"
        )));
    }
    let rules = if policy.is_empty() {
        PathPolicy::default()
    } else {
        snapshot
            .policies
            .get(policy)
            .cloned()
            .ok_or_else(|| PathsRefused::UnknownPolicy {
                name: cut(policy),
                known: snapshot.policies.keys().cloned().collect(),
            })?
    };
    let choice = path_selection::select(&snapshot.view.topology, &snapshot.own, &to, &rules)
        .map_err(PathsRefused::NoCompliantPath)?;
    let mut document = json!({
        "destination": to.as_str(),
        "policy": policy,
        "rules": rules.to_string(),
    });
    add_choice(&mut document, &choice);
    Ok(document)
}

fn add_choice(document: &mut Value, choice: &PathChoice) {
    document["primary"] = path(&choice.primary);
    document["backup"] = choice.backup.as_ref().map_or(Value::Null, path);
}

/// A path: its hubs with their jurisdictions, its links, hops and end-to-end latency.
fn path(path: &Path) -> Value {
    json!({
        "hubs": path.hubs.iter().map(|hub| json!({
            "id": hub.id.as_str(),
            "jurisdiction": hub.jurisdiction.as_str(),
        })).collect::<Vec<_>>(),
        "links": path.links.iter().map(|link| json!({
            "a": link.a.as_str(),
            "b": link.b.as_str(),
            "link": link.id.get(),
        })).collect::<Vec<_>>(),
        "hops": path.hops(),
        "latency_ms": millis(path.latency),
    })
}

/// Milliseconds, to the microsecond.
fn millis(latency: Latency) -> f64 {
    latency.as_micros() as f64 / 1000.0
}

/// `2026-11-21T10:00:00Z`.
pub fn rfc3339(at: Timestamp) -> String {
    i64::try_from(at.as_unix_secs())
        .ok()
        .and_then(|secs| OffsetDateTime::from_unix_timestamp(secs).ok())
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{}", at.as_unix_secs()))
}

/// An untrusted argument, cut to 64 characters for a message.
fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}
