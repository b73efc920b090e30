//! The IP plane: ordinary IP traffic (ping, iperf3, curl) between the prefixes behind hubs,
//! through a TUN interface, carried end to end encrypted over circuits.
//!
//! The kernel routes the TUN's network (`[tun] address`, e.g. `10.77.1.1/16`) into hubd. Each
//! packet read from the TUN ([`outbound`]) is checked ([`packet`]), looked up in the
//! [`RouteTable`] (prefixes announced by trusted hubs, `[[route]]` pins and policies), and queued
//! for its destination hub: one packet circuit per destination hub and path policy, opened on
//! demand along a compliant path of the source's choice ([`crate::path_selection`], receipts
//! verified, TLS 1.3 end to end: transit hubs forward ciphertext), kept while packets flow,
//! reopened when it breaks (the backup path first). The queue is bounded: IP is best effort, and
//! a packet that finds it full, or no circuit to be had, is dropped and counted; one with no
//! route or no circuit is answered "destination unreachable" ([`unreachable`]), as a router would.
//!
//! A packet circuit asks for `packets` instead of a service ([`crate::forwarding::request`]);
//! the destination's forwarding hands it here ([`crate::forwarding::Forwarding::carry_packets_to`])
//! and [`inbound`] writes each packet to the TUN only if it is well formed, for an address this
//! hub announces, admitted by the grant of the peer the circuit arrived from
//! ([`crate::grant::Grant::admits_address`]), and from a source address its source hub announces
//! (anti-spoofing). Each direction rides the circuit its own source opened, so each hub chooses
//! the path of what it sends. Everything is counted in [`IpCounters`].

pub mod counters;
pub mod framing;
mod inbound;
mod outbound;
pub mod packet;
pub mod unreachable;

use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tun_rs::{AsyncDevice, DeviceBuilder, SyncDevice};

pub use self::counters::{DropReason, IpCounters};
use crate::circuit::{InboundCircuit, Relay};
use crate::config::ip::{RouteEntry, TunSection};
use crate::grant::IpPrefix;
use crate::ip_routes::RouteTable;
use crate::peering::Peers;
use crate::snapshot::Snapshots;

/// Packet circuits from other hubs waiting to be taken; more are refused `busy`.
const ARRIVING_QUEUE: usize = 64;

/// What the data path decides with: the routes and the peering agreements (grants) now
/// (none before the first snapshot: nothing is admitted).
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteView {
    pub(crate) table: RouteTable,
    pub(crate) peers: Option<Arc<Peers>>,
}

/// What the IP plane's tasks share.
pub(crate) struct Plane {
    pub(crate) device: Arc<AsyncDevice>,
    pub(crate) counters: Arc<IpCounters>,
    pub(crate) relay: Relay,
    pub(crate) snapshots: Snapshots,
    pub(crate) views: watch::Receiver<Arc<RouteView>>,
    /// The source of ICMP answers, an address of the TUN's network and family.
    pub(crate) router: Option<IpAddr>,
    pub(crate) answers: unreachable::Limiter,
}

impl Plane {
    /// Tells the sender of `packet` that it cannot be delivered, when [`unreachable`] allows.
    pub(crate) async fn answer_unreachable(&self, packet: &[u8]) {
        let Some(router) = self.router else {
            return;
        };
        if let Some(answer) = unreachable::answer(router, packet)
            && self.answers.allow()
        {
            let _ = self.device.send(&answer).await;
        }
    }
}

/// The IP plane of this hub (see the module docs).
pub struct IpPlane {
    name: String,
    router: Option<IpAddr>,
    device: Arc<AsyncDevice>,
    prefixes: Vec<IpPrefix>,
    routes: Vec<RouteEntry>,
    counters: Arc<IpCounters>,
    circuits: mpsc::Sender<InboundCircuit>,
    views: Arc<watch::Sender<Arc<RouteView>>>,
}

/// The TUN interface of `[tun]`, created and up but not yet serving. Creating it is the one
/// step that needs `CAP_NET_ADMIN`: [`Tun::create`] needs no async runtime, so hubd can create
/// it first and give every capability up before its runtime's threads exist
/// ([`crate::privileges`]); reading and writing it afterwards needs none.
pub struct Tun {
    device: SyncDevice,
    section: TunSection,
}

impl Tun {
    /// Creates the interface of `section`: its name, address, MTU, up.
    pub fn create(section: &TunSection) -> io::Result<Self> {
        let mtu = u16::try_from(section.mtu.get()).expect("at most 9000");
        let builder = DeviceBuilder::new().name(&section.name).mtu(mtu);
        let builder = match section.address.address {
            IpAddr::V4(address) => builder.ipv4(address, section.address.length, None),
            IpAddr::V6(address) => builder.ipv6(address, section.address.length),
        };
        let device = builder.build_sync().map_err(|error| {
            io::Error::new(
                error.kind(),
                format!(
                    "cannot create the TUN interface {} with {}: {error}",
                    section.name, section.address
                ),
            )
        })?;
        tracing::info!(tun = %section.name, address = %section.address, mtu, "TUN interface up");
        Ok(Self {
            device,
            section: section.clone(),
        })
    }
}

impl IpPlane {
    /// Creates the TUN interface of `tun` (needs `CAP_NET_ADMIN`) and the plane that routes
    /// its traffic by `routes`: [`Tun::create`], then [`with_tun`](Self::with_tun).
    pub fn create(
        tun: &TunSection,
        routes: &[RouteEntry],
    ) -> io::Result<(Self, mpsc::Receiver<InboundCircuit>)> {
        Self::with_tun(Tun::create(tun)?, routes)
    }

    /// The plane that routes the traffic of `tun` by `routes` (inside the async runtime).
    /// Returns the plane and the packet circuits that arrive for it, to pass to
    /// [`spawn`](Self::spawn).
    pub fn with_tun(
        tun: Tun,
        routes: &[RouteEntry],
    ) -> io::Result<(Self, mpsc::Receiver<InboundCircuit>)> {
        let Tun {
            device,
            section: tun,
        } = tun;
        let device = AsyncDevice::new(device)?;
        let (circuits, arriving) = mpsc::channel(ARRIVING_QUEUE);
        let (views, _) = watch::channel(Arc::default());
        let router = unreachable::router(tun.address.address, tun.address.network().address());
        let plane = Self {
            name: tun.name.clone(),
            router,
            device: Arc::new(device),
            prefixes: tun.announce.clone(),
            routes: routes.to_vec(),
            counters: Arc::default(),
            circuits,
            views: Arc::new(views),
        };
        Ok((plane, arriving))
    }

    /// The prefixes behind this hub, for its advertisement ([`crate::flooding::Flooding::set_prefixes`]).
    pub fn prefixes(&self) -> Vec<IpPrefix> {
        self.prefixes.clone()
    }

    /// Where the destination's forwarding sends circuits that ask for packets
    /// ([`crate::forwarding::Forwarding::carry_packets_to`]).
    pub fn packet_circuits(&self) -> mpsc::Sender<InboundCircuit> {
        self.circuits.clone()
    }

    /// The counters.
    pub fn counters(&self) -> Arc<IpCounters> {
        Arc::clone(&self.counters)
    }

    /// The route table now (rebuilt from every snapshot).
    pub fn routes(&self) -> RouteTable {
        self.views.borrow().table.clone()
    }

    /// Runs the plane until `cancel` fires: routes follow the latest of `snapshots`, packets
    /// read from the TUN go out over circuits opened through `relay`, and the packet circuits
    /// `arriving` (from [`create`](Self::create)) are taken.
    pub fn spawn(
        &self,
        arriving: mpsc::Receiver<InboundCircuit>,
        relay: Relay,
        snapshots: Snapshots,
        cancel: &CancellationToken,
    ) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        tasks.spawn(follow_routes(
            snapshots.clone(),
            self.routes.clone(),
            Arc::clone(&self.views),
            cancel.clone(),
        ));
        let plane = Arc::new(Plane {
            device: Arc::clone(&self.device),
            counters: Arc::clone(&self.counters),
            relay,
            snapshots,
            views: self.views.subscribe(),
            router: self.router,
            answers: unreachable::Limiter::default(),
        });
        tracing::info!(tun = %self.name, "routing IP packets between hubs");
        tasks.spawn(outbound::read_tun(Arc::clone(&plane), cancel.clone()));
        tasks.spawn(inbound::serve(plane, arriving, cancel.clone()));
        tasks
    }
}

/// Rebuilds the route table from every snapshot; says when the ignored announcements change.
async fn follow_routes(
    mut snapshots: Snapshots,
    routes: Vec<RouteEntry>,
    views: Arc<watch::Sender<Arc<RouteView>>>,
    cancel: CancellationToken,
) {
    loop {
        let view = {
            let snapshot = snapshots.borrow_and_update();
            RouteView {
                table: RouteTable::from_view(&snapshot.view, &routes),
                peers: Some(Arc::clone(&snapshot.peers)),
            }
        };
        if view.table.conflicts() != views.borrow().table.conflicts() {
            for conflict in view.table.conflicts() {
                tracing::warn!("announcement ignored: {conflict}");
            }
        }
        views.send_replace(Arc::new(view));
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = snapshots.changed() => if changed.is_err() { return },
        }
    }
}
