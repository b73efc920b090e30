//! Runs [`Flooding`] over real links: one task owns the decision, each link has a task that
//! reads its frames and one that writes them.
//!
//! Whoever brings links up (dialing or accepting on a [`crate::links::LinkEndpoint`]) hands each
//! [`Link`] over with [`FloodingHandle::add_link`]; the link counts as up from then, and as down
//! when its frames stop (the connection closed, timed out or failed). The endpoint's
//! [`LinkEvents`] feed the RTTs. A second link with the same key replaces the first (the peer
//! reconnected); the first is closed and its end is not taken for the new one's. A link whose
//! queue of frames to send is full is closed: its peer gets the whole database again when it
//! comes back, which is better than silently missing an advertisement.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use appliance::tls::Identity;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::{ControlPlaneView, Flooding, Outbound};
use crate::links::{Link, LinkCloser, LinkEvent, LinkEvents, LinkKey};

/// Frames that may wait for one link before it is cut as too slow.
const LINK_QUEUE: usize = 4096;
/// Frames received on all links that may wait for the flooding task (readers then wait).
const INBOUND_QUEUE: usize = 1024;

/// How often time is passed to [`Flooding::tick`].
pub const TICK: Duration = Duration::from_secs(1);

enum Command {
    AddLink(Link),
    CloseLink(LinkKey),
    SetTransit(bool),
    SetIdentity(Box<Identity>),
    View(oneshot::Sender<ControlPlaneView>),
}

enum Inbound {
    Frame {
        key: LinkKey,
        generation: u64,
        frame: Vec<u8>,
    },
    Ended {
        key: LinkKey,
        generation: u64,
    },
}

/// The running flooding of one hub.
#[derive(Debug)]
pub struct FloodingHandle {
    commands: mpsc::Sender<Command>,
    changes: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

/// The flooding task has stopped (it panicked, or the runtime is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the flooding task has stopped")]
pub struct FloodingStopped;

impl FloodingHandle {
    /// Runs `flooding` over the links handed over later, with RTTs from `events`. Must be
    /// called inside a tokio runtime.
    pub fn spawn(flooding: Flooding, events: LinkEvents) -> Self {
        let (commands, receiver) = mpsc::channel(64);
        let (changed, changes) = watch::channel(0);
        let task = tokio::spawn(run(flooding, events, receiver, changed));
        Self {
            commands,
            changes,
            task,
        }
    }

    /// Changes each time the view may have changed (an advertisement accepted, this hub's own
    /// re-originated: a link came up or went down, transit changed), so that whoever acts on
    /// the view (path selection) hears of a broken link at once rather than at its next tick.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Hands over a link that just came up.
    pub async fn add_link(&self, link: Link) -> Result<(), FloodingStopped> {
        self.send(Command::AddLink(link)).await
    }

    /// Closes a link (e.g. its peering file was removed).
    pub async fn close_link(&self, key: LinkKey) -> Result<(), FloodingStopped> {
        self.send(Command::CloseLink(key)).await
    }

    /// Offers transit or withdraws it (site lockdown).
    pub async fn set_transit(&self, transit: bool) -> Result<(), FloodingStopped> {
        self.send(Command::SetTransit(transit)).await
    }

    /// Signs this hub's advertisements with `identity` (a renewed certificate) from now on,
    /// starting with a new one at once.
    pub async fn set_identity(&self, identity: Identity) -> Result<(), FloodingStopped> {
        self.send(Command::SetIdentity(Box::new(identity))).await
    }

    /// The control plane now.
    pub async fn view(&self) -> Result<ControlPlaneView, FloodingStopped> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::View(reply)).await?;
        answer.await.map_err(|_| FloodingStopped)
    }

    /// Stops flooding and closes every link it holds.
    pub async fn stop(self) {
        drop(self.commands);
        let _ = self.task.await;
    }

    async fn send(&self, command: Command) -> Result<(), FloodingStopped> {
        self.commands
            .send(command)
            .await
            .map_err(|_| FloodingStopped)
    }
}

/// A link held by the task: where its frames go, and which incarnation it is.
struct LinkSlot {
    generation: u64,
    frames: mpsc::Sender<Arc<[u8]>>,
    closer: LinkCloser,
}

struct Runner {
    flooding: Flooding,
    links: BTreeMap<LinkKey, LinkSlot>,
    generation: u64,
    inbound: mpsc::Sender<Inbound>,
}

async fn run(
    flooding: Flooding,
    mut events: LinkEvents,
    mut commands: mpsc::Receiver<Command>,
    changed: watch::Sender<u64>,
) {
    let (inbound, mut received) = mpsc::channel(INBOUND_QUEUE);
    let mut runner = Runner {
        flooding,
        links: BTreeMap::new(),
        generation: 0,
        inbound,
    };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let out = tokio::select! {
            command = commands.recv() => match command {
                Some(command) => runner.command(command),
                None => break,
            },
            Some(event) = events.next() => match event {
                LinkEvent::Rtt { key, rtt } => runner.flooding.link_rtt(&key, rtt, SystemTime::now()),
                // Up and down follow the links handed over and their frames (see the module docs).
                LinkEvent::Up { .. } | LinkEvent::Down { .. } => Vec::new(),
            },
            Some(inbound) = received.recv() => runner.inbound(inbound),
            _ = tick.tick() => runner.flooding.tick(SystemTime::now()),
        };
        runner.deliver(out);
        let counters = runner.flooding.counters();
        let stamp = counters.accepted + counters.originated;
        changed.send_if_modified(|last| std::mem::replace(last, stamp) != stamp);
    }
    for slot in runner.links.values() {
        slot.closer.close();
    }
}

impl Runner {
    fn command(&mut self, command: Command) -> Vec<Outbound> {
        let now = SystemTime::now();
        match command {
            Command::AddLink(link) => self.add_link(link, now),
            Command::CloseLink(key) => match self.links.remove(&key) {
                Some(slot) => {
                    slot.closer.close();
                    self.flooding.link_down(&key, now)
                }
                None => Vec::new(),
            },
            Command::SetTransit(transit) => self.flooding.set_transit(transit, now),
            Command::SetIdentity(identity) => self.flooding.set_identity(*identity, now),
            Command::View(reply) => {
                let _ = reply.send(self.flooding.view(now));
                Vec::new()
            }
        }
    }

    fn add_link(&mut self, link: Link, now: SystemTime) -> Vec<Outbound> {
        let key = link.key().clone();
        let rtt = link.rtt();
        let (mut writer, mut receiver) = link.split();
        let closer = writer.closer();
        self.generation += 1;
        let generation = self.generation;
        let (frames, mut queue) = mpsc::channel::<Arc<[u8]>>(LINK_QUEUE);
        tokio::spawn(async move {
            while let Some(frame) = queue.recv().await {
                if let Err(error) = writer.send_frame(&frame).await {
                    tracing::warn!(link = %writer.key(), "cannot send on the link: {error}");
                    writer.close();
                    break;
                }
            }
        });
        let inbound = self.inbound.clone();
        tokio::spawn(async move {
            let key = receiver.key().clone();
            loop {
                match receiver.recv_frame().await {
                    Ok(frame) => {
                        let frame = Inbound::Frame {
                            key: key.clone(),
                            generation,
                            frame,
                        };
                        if inbound.send(frame).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => {
                        tracing::info!(link = %key, reason = error.label(), "link frames ended: {error}");
                        let _ = inbound.send(Inbound::Ended { key, generation }).await;
                        return;
                    }
                }
            }
        });
        let slot = LinkSlot {
            generation,
            frames,
            closer,
        };
        if let Some(replaced) = self.links.insert(key.clone(), slot) {
            replaced.closer.close();
        }
        self.flooding.link_up(key, rtt, now)
    }

    fn inbound(&mut self, inbound: Inbound) -> Vec<Outbound> {
        let now = SystemTime::now();
        match inbound {
            Inbound::Frame {
                key,
                generation,
                frame,
            } if self.is_current(&key, generation) => self.flooding.receive(&key, &frame, now),
            Inbound::Ended { key, generation } if self.is_current(&key, generation) => {
                self.links.remove(&key);
                self.flooding.link_down(&key, now)
            }
            // From a link since replaced or closed.
            Inbound::Frame { .. } | Inbound::Ended { .. } => Vec::new(),
        }
    }

    fn is_current(&self, key: &LinkKey, generation: u64) -> bool {
        self.links
            .get(key)
            .is_some_and(|slot| slot.generation == generation)
    }

    fn deliver(&mut self, out: Vec<Outbound>) {
        for Outbound { to, frame } in out {
            let Some(slot) = self.links.get(&to) else {
                continue;
            };
            if slot.frames.try_send(frame).is_err() {
                tracing::warn!(link = %to, "closing the link: it does not keep up with the control plane");
                slot.closer.close();
            }
        }
    }
}
