//! [`HubSnapshot`]: what the hub looks like now, published by the daemon's main loop after every
//! change and every tick, read by the edges (D-Bus `org.bunkeros.Hub1`, the status line) without
//! a round trip to the control plane.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;

use crate::flooding::ControlPlaneView;
use crate::hub_id::HubId;
use crate::path_policy::PathPolicy;
use crate::peering::Peers;
use crate::site_transit::TransitDecision;

/// The hub now.
#[derive(Debug, Clone)]
pub struct HubSnapshot {
    /// This hub.
    pub own: HubId,
    /// The control plane: own advertisement, held advertisements, trust, topology, links up.
    pub view: ControlPlaneView,
    /// The peering agreements (configured links, grants, pinned roots).
    pub peers: Arc<Peers>,
    /// The named path policies of `hubd.toml`.
    pub policies: Arc<BTreeMap<String, PathPolicy>>,
    /// Whether transit is offered and why.
    pub transit: TransitDecision,
    /// Where the hub certificate came from, and when it expires.
    pub certificate_source: String,
    /// When the hub certificate expires.
    pub certificate_not_after: SystemTime,
    /// Why the last attempt to renew the hub certificate failed (the hub still uses the one
    /// above); `None` when the last attempt succeeded or none was due yet.
    pub certificate_renewal_error: Option<String>,
    /// When this snapshot was taken.
    pub taken_at: SystemTime,
}

/// The receiving end the edges hold.
pub type Snapshots = watch::Receiver<Arc<HubSnapshot>>;
