//! [`SessionTable`]: the sessions this hub carries as source or destination, with the path each
//! is on now, proven hop by hop by the transit receipts (what `bunkerctl hub path SESSION`
//! shows), and what became of the ones that ended.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::circuit::Hop;
use crate::grant::ServiceName;
use crate::hub_id::HubId;
use crate::session_id::SessionId;

/// Ended sessions kept for the operator to look at.
pub const ENDED_KEPT: usize = 256;

/// Which end of a session this hub is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRole {
    /// A local client connected here; this hub chose the path.
    Source,
    /// The service is published here.
    Destination,
}

impl SessionRole {
    /// `source` or `destination`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Destination => "destination",
        }
    }
}

/// One session as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Its id.
    pub id: SessionId,
    /// The service it carries.
    pub service: ServiceName,
    /// This hub's role.
    pub role: SessionRole,
    /// The hub at the other end.
    pub peer: HubId,
    /// The hubs of the circuit carrying it now, source first. At the source each hop after the
    /// first is proven by its signed receipt; at the destination it is the route as announced.
    pub hops: Vec<Hop>,
    /// Whether the hops are proven by verified receipts (at the source).
    pub verified: bool,
    /// Circuits that have carried it (more than 1: it failed over).
    pub circuits: u64,
    /// When it started.
    pub started: SystemTime,
    /// How it ended; `None` while it runs.
    pub ended: Option<String>,
}

/// The sessions of this hub; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SessionTable {
    inner: Arc<Mutex<Table>>,
}

#[derive(Debug, Default)]
struct Table {
    live: BTreeMap<SessionId, Live>,
    ended: VecDeque<SessionRecord>,
}

#[derive(Debug)]
struct Live {
    record: SessionRecord,
    /// Where a circuit resuming this session goes (destination side only).
    resume: Option<mpsc::Sender<Resumption>>,
}

/// A circuit handed to a running destination session.
pub type Resumption = tokio_rustls::server::TlsStream<crate::circuit::CircuitStream>;

impl SessionTable {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a session that starts; `resume` takes the circuits that resume it (destination).
    pub fn start(&self, record: SessionRecord, resume: Option<mpsc::Sender<Resumption>>) {
        self.lock().live.insert(record.id, Live { record, resume });
    }

    /// The session moved to a new circuit along `hops`.
    pub fn moved(&self, id: &SessionId, hops: Vec<Hop>) {
        if let Some(live) = self.lock().live.get_mut(id) {
            live.record.hops = hops;
            live.record.circuits += 1;
        }
    }

    /// Where to hand a circuit that resumes session `id` from `source` for `service`; `None`
    /// when no such session runs or ended here (then the circuit starts a new one). A session
    /// that ended is refused with `session_ended`: its source, still waiting out the last
    /// acknowledgement, learns that there is nothing left to resume.
    pub fn resumption(
        &self,
        id: &SessionId,
        source: &HubId,
        service: &ServiceName,
    ) -> Option<Result<mpsc::Sender<Resumption>, &'static str>> {
        let table = self.lock();
        let Some(live) = table.live.get(id) else {
            return table
                .ended
                .iter()
                .any(|ended| &ended.id == id)
                .then_some(Err("session_ended"));
        };
        let record = &live.record;
        if record.role != SessionRole::Destination
            || &record.peer != source
            || &record.service != service
        {
            // Another hub, or another service, reusing a session id: never splice it in.
            return Some(Err("session_mismatch"));
        }
        Some(live.resume.clone().ok_or("session_mismatch"))
    }

    /// The session ended (`how`: `closed`, or why it failed).
    pub fn end(&self, id: &SessionId, how: String) {
        let mut table = self.lock();
        if let Some(live) = table.live.remove(id) {
            let mut record = live.record;
            record.ended = Some(how);
            if table.ended.len() == ENDED_KEPT {
                table.ended.pop_front();
            }
            table.ended.push_back(record);
        }
    }

    /// Every live session, then the ended ones kept, newest last.
    pub fn list(&self) -> Vec<SessionRecord> {
        let table = self.lock();
        table
            .live
            .values()
            .map(|live| live.record.clone())
            .chain(table.ended.iter().cloned())
            .collect()
    }

    /// One session, live or ended.
    pub fn get(&self, id: &SessionId) -> Option<SessionRecord> {
        let table = self.lock();
        table
            .live
            .get(id)
            .map(|live| live.record.clone())
            .or_else(|| {
                table
                    .ended
                    .iter()
                    .rev()
                    .find(|record| &record.id == id)
                    .cloned()
            })
    }

    /// Live sessions.
    pub fn live_count(&self) -> usize {
        self.lock().live.len()
    }
}
