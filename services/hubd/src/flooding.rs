//! Flooding: this hub's own advertisement, and everyone's, carried over the links.
//!
//! Between [`crate::links`] (frames on authenticated links, link events) and
//! [`crate::topology`] (the link-state database). [`Flooding`] is the decision, without sockets
//! or clocks: the caller passes in link events, received frames and the time, and gets back the
//! frames to send ([`Outbound`]); [`driver`] runs it over real [`crate::links::Link`]s.
//!
//! - **Origination**: this hub's advertisement lists the links that are up (neighbour, link
//!   number, half the link's RTT), vouches for every direct peer, carries no-transit when
//!   [`Flooding::set_transit`] withdrew transit, the IP prefixes behind this hub given by
//!   [`Flooding::set_prefixes`], a sequence from
//!   [`crate::advertisement::next_sequence`] and an expiry [`FloodingSettings::lifetime`] ahead. It is re-originated when a link comes up or goes
//!   down, when transit changes, when a link's latency moves beyond the
//!   [`LatencyHysteresis`] from what was advertised (not on every RTT sample), when half its
//!   lifetime has passed, and when another copy of it with a sequence at least as high comes
//!   back (a hub restarted without its state).
//! - **Flooding**: an advertisement received is admitted by [`crate::trust::admit`] against the
//!   database; accepted, it is stored and forwarded unchanged on every other link up (never back
//!   on the link it came from); refused, it is counted by [`Rejection::reason`] and nothing else
//!   changes. A copy of what is already held (flooding delivers many) is counted as a duplicate,
//!   not a refusal; an older copy arriving late over a longer path is refused as `stale`, as a
//!   replay is (the two cannot be told apart). A link that comes up is sent the whole database
//!   and this hub's own advertisement, so a new or restarted neighbour converges at once.
//! - **Held back**: an advertisement from a hub nobody vouches for yet (its voucher is still on
//!   the way) waits, the newest per origin, bounded in count and time, and is admitted as soon as
//!   the database changes so that it can be; one that leaves unadmitted counts as `unknown_hub`.

pub mod driver;
mod held_back;
pub mod message;
mod origination;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use appliance::tls::Identity;
use rustls_pki_types::CertificateDer;

use self::held_back::{HeldBack, HoldOutcome};
use self::message::ControlMessage;
pub use self::origination::{LatencyHysteresis, OriginationError};
use self::origination::{own_parts, sign};
use crate::advertisement::{
    AdvertisedLink, Advertisement, Flags, SignedAdvertisement, Timestamp, Voucher,
};
use crate::grant::IpPrefix;
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::Latency;
use crate::links::{LinkEvent, LinkKey};
use crate::peering::Peers;
use crate::topology::{LinkStateDatabase, Topology};
use crate::trust::{AnchorError, MAX_LIFETIME_SECS, Rejection, TrustPath};

/// How flooding behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodingSettings {
    /// How long this hub's advertisements are valid; re-originated when half has passed.
    /// At most [`MAX_LIFETIME_SECS`] (peers refuse longer).
    pub lifetime: Duration,
    /// When a latency change is worth a new advertisement.
    pub hysteresis: LatencyHysteresis,
    /// Most advertisements held back waiting for a voucher.
    pub held_back_max: usize,
    /// Longest an advertisement is held back.
    pub held_back_for: Duration,
}

impl Default for FloodingSettings {
    /// Valid for an hour (refreshed every half hour); latency changes of over 20 % and over
    /// 1 ms re-originate; up to 256 advertisements held back for up to 30 s.
    fn default() -> Self {
        Self {
            lifetime: Duration::from_secs(3600),
            hysteresis: LatencyHysteresis {
                percent: 20,
                floor: Latency::from_millis(1),
            },
            held_back_max: 256,
            held_back_for: Duration::from_secs(30),
        }
    }
}

/// A frame to send on one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The link.
    pub to: LinkKey,
    /// The frame payload (a [`ControlMessage`]), shared between the links it goes to.
    pub frame: Arc<[u8]>,
}

/// What flooding has done, for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloodCounters {
    /// Advertisements accepted into the database.
    pub accepted: u64,
    /// Copies of an advertisement already held (normal in flooding).
    pub duplicates: u64,
    /// Advertisements refused, by [`Rejection::reason`].
    pub rejected: BTreeMap<&'static str, u64>,
    /// Frames that are not control messages, by [`message::MessageError::label`].
    pub malformed: BTreeMap<&'static str, u64>,
    /// Advertisements held back for a voucher (each time one is held).
    pub held_back: u64,
    /// This hub's advertisements originated.
    pub originated: u64,
    /// Originations that failed (the key did not sign); the previous advertisement stays.
    pub origination_failures: u64,
}

impl FloodCounters {
    /// Refusals with this label.
    pub fn rejected(&self, reason: &str) -> u64 {
        self.rejected.get(reason).copied().unwrap_or(0)
    }

    /// Malformed frames with this label.
    pub fn malformed(&self, label: &str) -> u64 {
        self.malformed.get(label).copied().unwrap_or(0)
    }
}

/// Why flooding could not start.
#[derive(Debug, thiserror::Error)]
pub enum FloodingError {
    /// A peer's pinned root is not usable.
    #[error("cannot pin the peers' roots: {0}")]
    Anchors(#[from] AnchorError),
    /// This hub's first advertisement could not be made.
    #[error("cannot originate this hub's advertisement: {0}")]
    Origination(#[from] OriginationError),
}

/// What the control plane looks like now.
#[derive(Debug, Clone)]
pub struct ControlPlaneView {
    /// This hub's current advertisement.
    pub own: Advertisement,
    /// Every advertisement held from other hubs, by origin.
    pub advertisements: BTreeMap<HubId, Advertisement>,
    /// The certificate chain (leaf first, site root last) each held advertisement was verified
    /// with, by origin: what the data plane checks end-to-end handshakes and transit receipts
    /// against.
    pub chains: BTreeMap<HubId, Vec<CertificateDer<'static>>>,
    /// The hubs trusted now, and how.
    pub trusted: BTreeMap<HubId, TrustPath>,
    /// The graph for path selection.
    pub topology: Topology,
    /// The links up, with their measured latencies.
    pub links: BTreeMap<LinkKey, Latency>,
    /// Whether this hub offers transit.
    pub transit: bool,
    /// Advertisements waiting for a voucher.
    pub held_back: usize,
    /// The counters.
    pub counters: FloodCounters,
}

/// One link up, as flooding sees it.
#[derive(Debug, Clone, Copy)]
struct UpLink {
    measured: Latency,
    advertised: Option<Latency>,
}

/// The flooding of one hub (see the module docs).
#[derive(Debug)]
pub struct Flooding {
    identity: Identity,
    jurisdiction: Jurisdiction,
    vouchers: Vec<Voucher>,
    settings: FloodingSettings,
    database: LinkStateDatabase,
    own: SignedAdvertisement,
    links: BTreeMap<LinkKey, UpLink>,
    transit: bool,
    prefixes: Vec<IpPrefix>,
    held_back: HeldBack,
    counters: FloodCounters,
}

impl Flooding {
    /// Flooding for this hub (`identity`, in `jurisdiction`, with `peers`), its first
    /// advertisement (no links yet) originated at `now`.
    pub fn new(
        identity: Identity,
        jurisdiction: Jurisdiction,
        peers: &Peers,
        settings: FloodingSettings,
        now: SystemTime,
    ) -> Result<Self, FloodingError> {
        let database = LinkStateDatabase::new(peers.trust_anchors()?);
        let held_back = HeldBack::new(settings.held_back_max, settings.held_back_for.as_secs());
        let mut settings = settings;
        settings.lifetime = settings
            .lifetime
            .min(Duration::from_secs(MAX_LIFETIME_SECS));
        let vouchers = peers.vouchers();
        let own = sign(
            &identity,
            own_parts(
                peers.own_hub(),
                jurisdiction,
                &vouchers,
                settings,
                None,
                now,
            ),
        )?;
        let mut flooding = Self {
            identity,
            jurisdiction,
            vouchers,
            settings,
            database,
            own: own.clone(),
            links: BTreeMap::new(),
            transit: true,
            prefixes: Vec::new(),
            held_back,
            counters: FloodCounters::default(),
        };
        flooding.install_own(own);
        Ok(flooding)
    }

    /// This hub.
    pub fn own_hub(&self) -> &HubId {
        self.database.anchors().own_hub()
    }

    /// This hub's current advertisement, as sent.
    pub fn own(&self) -> &SignedAdvertisement {
        &self.own
    }

    /// The link-state database.
    pub fn database(&self) -> &LinkStateDatabase {
        &self.database
    }

    /// The counters.
    pub fn counters(&self) -> &FloodCounters {
        &self.counters
    }

    /// The control plane at `now`.
    pub fn view(&self, now: SystemTime) -> ControlPlaneView {
        let now = Timestamp::from(now);
        ControlPlaneView {
            own: self.own.advertisement().clone(),
            advertisements: self
                .database
                .held()
                .map(|held| {
                    let advertisement = held.advertisement();
                    (advertisement.origin().clone(), advertisement.clone())
                })
                .collect(),
            chains: self
                .database
                .held()
                .map(|held| {
                    let origin = held.advertisement().origin().clone();
                    (origin, held.signed().chain().to_vec())
                })
                .collect(),
            trusted: self.database.trusted(now),
            topology: self.database.topology(now),
            links: self
                .links
                .iter()
                .map(|(key, link)| (key.clone(), link.measured))
                .collect(),
            transit: self.transit,
            held_back: self.held_back.len(),
            counters: self.counters.clone(),
        }
    }

    /// Link `key` came up with this first RTT: re-originate, and send the new neighbour the
    /// whole database.
    pub fn link_up(&mut self, key: LinkKey, rtt: Duration, now: SystemTime) -> Vec<Outbound> {
        self.links.insert(
            key.clone(),
            UpLink {
                measured: LinkEvent::latency_of(rtt),
                advertised: None,
            },
        );
        let mut out: Vec<Outbound> = self
            .database
            .held()
            .map(|held| Outbound {
                to: key.clone(),
                frame: frame_of(held.signed()),
            })
            .collect();
        out.extend(self.reoriginate(now));
        out
    }

    /// A fresh RTT on link `key`: re-originate only if it moved beyond the hysteresis.
    pub fn link_rtt(&mut self, key: &LinkKey, rtt: Duration, now: SystemTime) -> Vec<Outbound> {
        let Some(link) = self.links.get_mut(key) else {
            return Vec::new();
        };
        link.measured = LinkEvent::latency_of(rtt);
        let material = match link.advertised {
            Some(advertised) => self.settings.hysteresis.exceeded(advertised, link.measured),
            None => true,
        };
        if material {
            self.reoriginate(now)
        } else {
            Vec::new()
        }
    }

    /// Link `key` went down: re-originate without it.
    pub fn link_down(&mut self, key: &LinkKey, now: SystemTime) -> Vec<Outbound> {
        if self.links.remove(key).is_none() {
            return Vec::new();
        }
        self.reoriginate(now)
    }

    /// Offers transit or withdraws it (site lockdown): re-originates when it changes.
    pub fn set_transit(&mut self, transit: bool, now: SystemTime) -> Vec<Outbound> {
        if self.transit == transit {
            return Vec::new();
        }
        self.transit = transit;
        self.reoriginate(now)
    }

    /// Takes a renewed identity: re-originates at once, signed with the new key and carrying
    /// the new chain, so that peers hold the new certificate for this hub.
    pub fn set_identity(&mut self, identity: Identity, now: SystemTime) -> Vec<Outbound> {
        self.identity = identity;
        self.reoriginate(now)
    }

    /// Announces `prefixes` as the IP prefixes behind this hub (`[tun] announce`; at most
    /// [`crate::advertisement::MAX_PREFIXES`], no duplicates): re-originates when they change.
    pub fn set_prefixes(&mut self, mut prefixes: Vec<IpPrefix>, now: SystemTime) -> Vec<Outbound> {
        prefixes.sort();
        prefixes.dedup();
        if self.prefixes == prefixes {
            return Vec::new();
        }
        self.prefixes = prefixes;
        self.reoriginate(now)
    }

    /// Time passes: expired advertisements leave the database, advertisements held back too
    /// long are dropped, and this hub re-originates once half its advertisement's lifetime
    /// has passed.
    pub fn tick(&mut self, now: SystemTime) -> Vec<Outbound> {
        let at = Timestamp::from(now);
        for hub in self.database.expire(at) {
            tracing::info!(hub = %hub, "advertisement expired");
        }
        let dropped = self.held_back.expire(at);
        self.count_unknown(dropped);
        let half = self.settings.lifetime.as_secs() / 2;
        let refresh_at = Timestamp::from_unix_secs(
            self.own
                .advertisement()
                .expires_at()
                .as_unix_secs()
                .saturating_sub(half),
        );
        if at >= refresh_at {
            self.reoriginate(now)
        } else {
            Vec::new()
        }
    }

    /// A frame received on link `from`.
    pub fn receive(&mut self, from: &LinkKey, frame: &[u8], now: SystemTime) -> Vec<Outbound> {
        match ControlMessage::decode(frame) {
            Ok(ControlMessage::Advertisement(signed)) => self.admit(from, signed, now),
            Err(error) => {
                tracing::warn!(link = %from, reason = error.label(), "malformed control frame: {error}");
                *self.counters.malformed.entry(error.label()).or_default() += 1;
                Vec::new()
            }
        }
    }

    fn admit(
        &mut self,
        from: &LinkKey,
        signed: SignedAdvertisement,
        now: SystemTime,
    ) -> Vec<Outbound> {
        if self.is_duplicate(&signed) {
            self.counters.duplicates += 1;
            return Vec::new();
        }
        let at = Timestamp::from(now);
        match self.database.accept(signed.clone(), at) {
            Ok(accepted) => {
                self.counters.accepted += 1;
                let mut out = self.forward(&accepted.origin, Some(from));
                out.extend(self.retry_held_back(at));
                out
            }
            Err(Rejection::UnknownHub(origin)) => {
                match self.held_back.hold(signed, from.clone(), at) {
                    HoldOutcome::Held => self.counters.held_back += 1,
                    HoldOutcome::Evicted => {
                        self.counters.held_back += 1;
                        self.count_unknown(1);
                    }
                    HoldOutcome::Duplicate => self.counters.duplicates += 1,
                    HoldOutcome::Older => *self.counters.rejected.entry("stale").or_default() += 1,
                }
                tracing::debug!(hub = %origin, link = %from, "advertisement held back until a trusted hub vouches for its origin");
                Vec::new()
            }
            Err(rejection) => self.refused(from, rejection, now),
        }
    }

    /// Whether `signed` is exactly what is already held for its origin (or our own, echoed).
    fn is_duplicate(&self, signed: &SignedAdvertisement) -> bool {
        let origin = signed.advertisement().origin();
        if origin == self.own_hub() {
            return *signed == self.own;
        }
        self.database
            .get(origin)
            .is_some_and(|held| held.signed() == signed)
    }

    fn refused(&mut self, from: &LinkKey, rejection: Rejection, now: SystemTime) -> Vec<Outbound> {
        let own_sequence = self.own.advertisement().sequence();
        match rejection {
            // In a network with more than one path, older copies of an advertisement arrive after
            // the newer one as a matter of course, this hub's own included (its earlier ones,
            // flooded back): counted, not worth an operator's attention.
            Rejection::Stale { .. } => {
                tracing::debug!(link = %from, reason = rejection.reason(), "advertisement refused: {rejection}");
            }
            Rejection::OwnOrigin { sequence } if sequence < own_sequence => {
                tracing::debug!(link = %from, reason = rejection.reason(), "advertisement refused: {rejection}");
            }
            Rejection::OwnOrigin { .. } => {
                tracing::info!(link = %from, "a copy of this hub's advertisement newer than its own (it restarted without its state): advertising above it");
            }
            _ => {
                tracing::warn!(link = %from, reason = rejection.reason(), "advertisement refused: {rejection}");
            }
        }
        *self
            .counters
            .rejected
            .entry(rejection.reason())
            .or_default() += 1;
        match rejection {
            // A copy of our own advertisement newer than the one we send: we were restarted
            // without our state. Advertise above it, so peers take the new one.
            Rejection::OwnOrigin { sequence } if sequence >= own_sequence => {
                self.reoriginate_above(Some(sequence), now)
            }
            _ => Vec::new(),
        }
    }

    /// Forwards the held advertisement of `origin` on every link up but `except`.
    fn forward(&self, origin: &HubId, except: Option<&LinkKey>) -> Vec<Outbound> {
        let Some(held) = self.database.get(origin) else {
            return Vec::new();
        };
        self.to_links(frame_of(held.signed()), except)
    }

    fn to_links(&self, frame: Arc<[u8]>, except: Option<&LinkKey>) -> Vec<Outbound> {
        self.links
            .keys()
            .filter(|key| Some(*key) != except)
            .map(|key| Outbound {
                to: key.clone(),
                frame: Arc::clone(&frame),
            })
            .collect()
    }

    /// Admits what was held back and now can be, until nothing more is admitted.
    fn retry_held_back(&mut self, now: Timestamp) -> Vec<Outbound> {
        let mut out = Vec::new();
        loop {
            let mut progress = false;
            for waiting in self.held_back.take_all() {
                match self.database.accept(waiting.signed.clone(), now) {
                    Ok(accepted) => {
                        self.counters.accepted += 1;
                        out.extend(self.forward(&accepted.origin, Some(&waiting.from)));
                        progress = true;
                    }
                    Err(Rejection::UnknownHub(_)) => self.held_back.put_back(waiting),
                    Err(rejection) => {
                        *self
                            .counters
                            .rejected
                            .entry(rejection.reason())
                            .or_default() += 1;
                    }
                }
            }
            if !progress {
                return out;
            }
        }
    }

    fn count_unknown(&mut self, dropped: usize) {
        if dropped > 0 {
            *self.counters.rejected.entry("unknown_hub").or_default() += dropped as u64;
        }
    }

    fn reoriginate(&mut self, now: SystemTime) -> Vec<Outbound> {
        self.reoriginate_above(None, now)
    }

    /// Signs a new advertisement of this hub (sequence above the current one and above
    /// `seen`) and sends it on every link up. On failure the previous one stays.
    fn reoriginate_above(&mut self, seen: Option<u64>, now: SystemTime) -> Vec<Outbound> {
        let previous = self.own.advertisement().sequence().max(seen.unwrap_or(0));
        let mut parts = own_parts(
            self.own_hub(),
            self.jurisdiction,
            &self.vouchers,
            self.settings,
            Some(previous),
            now,
        );
        parts.flags = Flags {
            no_transit: !self.transit,
        };
        parts.prefixes.clone_from(&self.prefixes);
        parts.links = self
            .links
            .iter()
            .map(|(key, link)| AdvertisedLink {
                neighbour: key.peer.clone(),
                link: key.link,
                latency: link.measured.min(Latency::MAX_LINK),
            })
            .collect();
        match sign(&self.identity, parts) {
            Ok(signed) => {
                self.install_own(signed);
                self.to_links(frame_of(&self.own), None)
            }
            Err(error) => {
                self.counters.origination_failures += 1;
                tracing::error!("cannot originate this hub's advertisement: {error}");
                Vec::new()
            }
        }
    }

    fn install_own(&mut self, signed: SignedAdvertisement) {
        self.database
            .originate(signed.advertisement().clone())
            .expect("this hub's advertisement names this hub");
        for advertised in signed.advertisement().links() {
            let key = LinkKey {
                peer: advertised.neighbour.clone(),
                link: advertised.link,
            };
            if let Some(link) = self.links.get_mut(&key) {
                link.advertised = Some(advertised.latency);
            }
        }
        self.counters.originated += 1;
        self.own = signed;
    }
}

fn frame_of(signed: &SignedAdvertisement) -> Arc<[u8]> {
    ControlMessage::Advertisement(signed.clone())
        .encode()
        .into()
}
