//! The source side: packets read from the TUN, routed, queued per destination, and carried by
//! the packet circuit of that destination (opened on demand, reopened when it breaks).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::counters::{DropReason, IpCounters};
use super::{Plane, framing, packet};
use crate::circuit::Route;
use crate::forwarding::request::Request;
use crate::forwarding::source::{ClientStream, Destination, describe, open_asking};
use crate::hub_id::HubId;
use crate::ip_routes::Lookup;
use crate::session_id::SessionId;

/// Packets waiting for one destination's circuit; more are dropped (`queue_full`).
pub(super) const QUEUE: usize = 512;
/// A packet circuit with no packet for this long is closed (and reopened by the next packet).
pub(super) const IDLE: Duration = Duration::from_secs(60);
/// Pause after a failed open, doubling up to the most.
const RETRY_FIRST: Duration = Duration::from_millis(50);
const RETRY_MOST: Duration = Duration::from_secs(2);
/// Largest packet read from the TUN (above any MTU it may have).
const READ_BUFFER: usize = 65_535;

/// One destination's queue: the hub, the path policy.
type Queues = BTreeMap<(HubId, Option<String>), mpsc::Sender<Vec<u8>>>;

/// Reads the TUN until cancelled: each packet checked, routed, queued for its destination.
pub(super) async fn read_tun(plane: Arc<Plane>, cancel: CancellationToken) {
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut queues = Queues::new();
    let mut views = plane.views.clone();
    loop {
        let read = tokio::select! {
            () = cancel.cancelled() => return,
            read = plane.device.recv(&mut buffer) => read,
        };
        let length = match read {
            Ok(length) => length,
            Err(error) => {
                tracing::error!(%error, "cannot read the TUN interface");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let packet = &buffer[..length];
        let view = Arc::clone(&views.borrow_and_update());
        let header = match packet::parse(packet) {
            Ok(header) => header,
            Err(_) => {
                plane.counters.drop_packet(DropReason::Malformed);
                continue;
            }
        };
        if !view.table.is_own(header.source) {
            plane.counters.drop_packet(DropReason::ForeignSource);
            continue;
        }
        let to = match view.table.lookup(header.destination) {
            Lookup::Remote(to) => to,
            Lookup::Own => {
                plane.counters.drop_packet(DropReason::OwnPrefix);
                continue;
            }
            Lookup::NoRoute => {
                plane.counters.drop_packet(DropReason::NoRoute);
                plane.answer_unreachable(packet).await;
                continue;
            }
        };
        let key = (to.hub.clone(), to.policy.map(str::to_owned));
        enqueue(&plane, &mut queues, key, packet.to_vec());
    }
}

/// Queues `packet` for its destination, starting the destination's carrier if it has none
/// (or its carrier ended, idle).
fn enqueue(plane: &Arc<Plane>, queues: &mut Queues, key: (HubId, Option<String>), packet: Vec<u8>) {
    let packet = match queues.get(&key) {
        Some(queue) => match queue.try_send(packet) {
            Ok(()) => return,
            Err(TrySendError::Full(_)) => {
                plane.counters.drop_packet(DropReason::QueueFull);
                return;
            }
            Err(TrySendError::Closed(packet)) => packet,
        },
        None => packet,
    };
    let (queue, queued) = mpsc::channel(QUEUE);
    let _ = queue.try_send(packet);
    tokio::spawn(carry(Arc::clone(plane), key.clone(), queued));
    queues.insert(key, queue);
}

/// How a circuit's pump ended.
enum Ended {
    /// No packet for [`IDLE`], or the queue closed: the carrier ends.
    Idle,
    /// The circuit broke: reopen on the next packet.
    Broken(String),
}

/// Carries one destination's packets: opens its circuit on the first packet, reopens it (the
/// path that broke last) on the next packet after a break, ends when idle.
async fn carry(
    plane: Arc<Plane>,
    (hub, policy): (HubId, Option<String>),
    mut queued: mpsc::Receiver<Vec<u8>>,
) {
    let mut failed: Option<Route> = None;
    let mut pause = RETRY_FIRST;
    let mut retry_at = Instant::now();
    loop {
        let first = match tokio::time::timeout(IDLE, queued.recv()).await {
            Ok(Some(first)) => first,
            Ok(None) | Err(_) => return,
        };
        tokio::time::sleep_until(retry_at).await;
        let to = Destination {
            hub: &hub,
            policy: policy.as_deref(),
        };
        let id = SessionId::random();
        match open_asking(
            &plane.relay,
            &plane.snapshots,
            to,
            &Request::Packets,
            id,
            failed.as_ref(),
        )
        .await
        {
            Ok((stream, hops, route)) => {
                tracing::info!(session = %id, path = %describe(&hops), "packet circuit to {hub} opened");
                IpCounters::add(&plane.counters.circuits_opened, 1);
                IpCounters::add(&plane.counters.circuits_live, 1);
                pause = RETRY_FIRST;
                let ended = pump(&plane, stream, first, &mut queued).await;
                IpCounters::sub(&plane.counters.circuits_live, 1);
                match ended {
                    Ended::Idle => {
                        tracing::info!(session = %id, "packet circuit to {hub} closed, idle");
                        return;
                    }
                    Ended::Broken(reason) => {
                        tracing::warn!(session = %id, "packet circuit to {hub} broke: {reason}");
                        failed = Some(route);
                    }
                }
            }
            Err(reason) => {
                tracing::warn!("no packet circuit to {hub}: {reason}");
                IpCounters::add(&plane.counters.circuits_failed, 1);
                plane.answer_unreachable(&first).await;
                // What waited for this circuit is dropped: IP is best effort, and stale
                // packets only confuse the ends' retransmissions.
                let mut dropped = 1;
                while queued.try_recv().is_ok() {
                    dropped += 1;
                }
                for _ in 0..dropped {
                    plane.counters.drop_packet(DropReason::NoCircuit);
                }
                retry_at = Instant::now() + pause;
                pause = (pause * 2).min(RETRY_MOST);
            }
        }
    }
}

/// Sends `first` and every queued packet over `stream`, several per write, until the queue is
/// idle or closed or the circuit breaks (a write fails, or the destination ends it).
async fn pump(
    plane: &Plane,
    stream: ClientStream,
    first: Vec<u8>,
    queued: &mut mpsc::Receiver<Vec<u8>>,
) -> Ended {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut packets = vec![first];
    let mut batch = Vec::with_capacity(framing::BATCH * 1500);
    let mut probe = [0u8; 1];
    loop {
        batch.clear();
        let count = packets.len() as u64;
        let mut bytes = 0;
        for packet in packets.drain(..) {
            bytes += packet.len() as u64;
            framing::put(&mut batch, &packet);
        }
        let sent = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        };
        if let Err(error) = sent.await {
            return Ended::Broken(format!("cannot send: {error}"));
        }
        IpCounters::add(&plane.counters.packets_out, count);
        IpCounters::add(&plane.counters.bytes_out, bytes);
        let next = tokio::select! {
            received = tokio::time::timeout(IDLE, queued.recv_many(&mut packets, framing::BATCH)) => received,
            // The destination sends nothing on this circuit: any read that returns ends it.
            read = reader.read(&mut probe) => {
                return Ended::Broken(match read {
                    Ok(_) => "the destination ended the circuit".to_owned(),
                    Err(error) => error.to_string(),
                });
            }
        };
        if !matches!(next, Ok(count) if count > 0) {
            let _ = writer.shutdown().await;
            return Ended::Idle;
        }
    }
}
