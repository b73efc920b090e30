//! `org.bunkeros.Hub1` at `/org/bunkeros/Hub1`: the hub on the system bus, for `bunkerctl hub`
//! and scripts.
//!
//! The edge between D-Bus and the control plane. Every method reads the latest [`HubSnapshot`]
//! the daemon published (`snapshots.borrow()`, a clone of an `Arc`): never a round trip to the
//! control plane, so a busy or stalled main loop delays no caller and no caller delays routing.
//! The documents are built by [`documents`] from that snapshot alone; refusals become D-Bus
//! errors named in [`appliance::dbus::contracts::hub_errors`] whose message is a sentence.
//!
//! Everything here is read-only; who may call is the bus policy's job
//! (`image/dbus-1/org.bunkeros.Hub1.conf`: the network for everyone, sessions for root and
//! `bunkeros-operators`).

pub mod documents;
pub mod sessions;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use zbus::interface;

use self::documents::PathsRefused;
use self::sessions::SessionPathRefused;
use crate::forwarding::SessionTable;
use crate::snapshot::{HubSnapshot, Snapshots};

/// A refusal, as the D-Bus error hubd answers with.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.bunkeros.Hub1.Error")]
pub enum HubError {
    /// A failure of zbus itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// No path to the destination follows the policy; the message is the refusal's sentence.
    NoCompliantPath(String),
    /// `hubd.toml` names no such path policy; the message names those it does.
    UnknownPolicy(String),
    /// The destination is not a hub id, or is this hub; the session is not a session id.
    InvalidArgument(String),
    /// No such session here.
    NotFound(String),
}

impl From<SessionPathRefused> for HubError {
    fn from(refused: SessionPathRefused) -> Self {
        let message = refused.to_string();
        match refused {
            SessionPathRefused::NotASessionId(_) => Self::InvalidArgument(message),
            SessionPathRefused::NotFound(_) => Self::NotFound(message),
        }
    }
}

impl From<PathsRefused> for HubError {
    fn from(refused: PathsRefused) -> Self {
        let message = refused.to_string();
        match refused {
            PathsRefused::NoCompliantPath(_) => Self::NoCompliantPath(message),
            PathsRefused::UnknownPolicy { .. } => Self::UnknownPolicy(message),
            PathsRefused::InvalidDestination(_) => Self::InvalidArgument(message),
        }
    }
}

/// The object served at `/org/bunkeros/Hub1`.
pub struct Hub1 {
    snapshots: Snapshots,
    sessions: SessionTable,
}

impl Hub1 {
    /// The interface over the snapshots the daemon publishes and the sessions forwarding keeps.
    pub fn new(snapshots: Snapshots, sessions: SessionTable) -> Self {
        Self {
            snapshots,
            sessions,
        }
    }

    /// The latest snapshot; the watch is released at once.
    fn now(&self) -> Arc<HubSnapshot> {
        self.snapshots.borrow().clone()
    }
}

#[interface(name = "org.bunkeros.Hub1")]
impl Hub1 {
    /// `Status() -> s`: see [`documents::status`].
    async fn status(&self) -> String {
        documents::status(&self.now()).to_string()
    }

    /// `Links() -> s`: see [`documents::links`].
    async fn links(&self) -> String {
        documents::links(&self.now()).to_string()
    }

    /// `Hubs() -> s`: see [`documents::hubs`].
    async fn hubs(&self) -> String {
        documents::hubs(&self.now()).to_string()
    }

    /// `Routes() -> s`: see [`documents::routes`].
    async fn routes(&self) -> String {
        documents::routes(&self.now()).to_string()
    }

    /// `Paths(destination s, policy s) -> s`: see [`documents::paths`].
    async fn paths(&self, destination: String, policy: String) -> Result<String, HubError> {
        Ok(documents::paths(&self.now(), &destination, &policy)?.to_string())
    }

    /// `Sessions() -> s`: see [`sessions::sessions`].
    async fn sessions(&self) -> String {
        sessions::sessions(&self.sessions).to_string()
    }

    /// `SessionPath(session s) -> s`: see [`sessions::session_path`].
    async fn session_path(&self, session: String) -> Result<String, HubError> {
        Ok(sessions::session_path(&self.sessions, &session)?.to_string())
    }
}
