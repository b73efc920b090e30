//! The destination side: packet circuits from other hubs, each packet checked before it is
//! written to the TUN.

use std::sync::Arc;

use tokio::io::BufReader;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::counters::{DropReason, IpCounters};
use super::{Plane, RouteView, framing, packet};
use crate::circuit::InboundCircuit;
use crate::forwarding::request::{self, ServiceReply};
use crate::hub_id::HubId;

/// Bytes read from a circuit at a time (many packets per TLS record).
const READ_BUFFER: usize = 64 * 1024;

/// Takes every packet circuit that arrives until cancelled, each on its own task.
pub(super) async fn serve(
    plane: Arc<Plane>,
    mut arriving: mpsc::Receiver<InboundCircuit>,
    cancel: CancellationToken,
) {
    loop {
        let circuit = tokio::select! {
            () = cancel.cancelled() => return,
            circuit = arriving.recv() => match circuit {
                Some(circuit) => circuit,
                None => return,
            },
        };
        tokio::spawn(take(Arc::clone(&plane), circuit, cancel.clone()));
    }
}

/// Accepts one packet circuit and writes what it carries to the TUN, packet by packet, until
/// it ends.
async fn take(plane: Arc<Plane>, circuit: InboundCircuit, cancel: CancellationToken) {
    let InboundCircuit {
        session,
        source,
        route,
        mut stream,
    } = circuit;
    let hubs = route.hubs();
    let arriving = hubs[hubs.len() - 2].clone();
    if request::write_reply(&mut stream, &ServiceReply::Accepted)
        .await
        .is_err()
    {
        return;
    }
    tracing::info!(%session, %source, via = %arriving, "packet circuit taken");
    let counters = &plane.counters;
    IpCounters::add(&counters.circuits_accepted, 1);
    IpCounters::add(&counters.circuits_live, 1);
    let mut views = plane.views.clone();
    let mut input = BufReader::with_capacity(READ_BUFFER, stream);
    let mut packet = Vec::with_capacity(2048);
    let mut reported: Vec<DropReason> = Vec::new();
    let ended = loop {
        let read = tokio::select! {
            () = cancel.cancelled() => break "hubd stops".to_owned(),
            read = framing::read(&mut input, &mut packet) => read,
        };
        match read {
            Ok(true) => {}
            Ok(false) => break "closed by the source".to_owned(),
            Err(error) => break error.to_string(),
        }
        let view = Arc::clone(&views.borrow_and_update());
        if let Err(reason) = admit(&view, &source, &arriving, &packet) {
            counters.drop_packet(reason);
            // Once per circuit and reason: the count is in the metrics.
            if !reported.contains(&reason) {
                reported.push(reason);
                tracing::warn!(%session, %source, via = %arriving, reason = reason.label(), total = counters.dropped(reason), "packet from another hub dropped");
            }
            continue;
        }
        match plane.device.send(&packet).await {
            Ok(_) => {
                IpCounters::add(&counters.packets_in, 1);
                IpCounters::add(&counters.bytes_in, packet.len() as u64);
            }
            Err(error) => {
                tracing::debug!(%error, "the TUN refused a packet");
                counters.drop_packet(DropReason::TunWrite);
            }
        }
    };
    IpCounters::sub(&counters.circuits_live, 1);
    tracing::info!(%session, %source, "packet circuit ended: {ended}");
}

/// Whether a packet from `source`, arriving through the peer `arriving`, may enter this hub:
/// well formed, for an address this hub announces and the peer's grant admits, from an
/// address its source hub announces.
fn admit(
    view: &RouteView,
    source: &HubId,
    arriving: &HubId,
    packet: &[u8],
) -> Result<(), DropReason> {
    let header = packet::parse(packet).map_err(|_| DropReason::Malformed)?;
    if !view.table.is_own(header.destination) {
        return Err(DropReason::NotAnnouncedHere);
    }
    let granted = view
        .peers
        .as_ref()
        .and_then(|peers| peers.get(arriving))
        .is_some_and(|agreement| agreement.grant().admits_address(header.destination));
    if !granted {
        return Err(DropReason::NotGranted);
    }
    if !view.table.announces(source, header.source) {
        return Err(DropReason::SpoofedSource);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::{Grant, IpPrefix};
    use crate::ip_plane::packet::tests::ipv4;
    use crate::ip_routes::RouteTable;
    use crate::link::LinkId;
    use crate::peering::{PeerLink, PeeringAgreement, Peers};
    use crate::testing::{Site, country, hub};

    /// Paris's view: it announces 10.77.3.0/24 and 10.77.4.0/24, Madrid announces 10.77.1.0/24,
    /// and its peer Lisbon is granted 10.77.3.0/24 only.
    fn paris() -> RouteView {
        let prefixes = |texts: &[&str]| -> Vec<IpPrefix> {
            texts.iter().map(|t| IpPrefix::parse(t).unwrap()).collect()
        };
        let table = RouteTable::build(
            &prefixes(&["10.77.3.0/24", "10.77.4.0/24"]),
            [(hub("madrid-1"), prefixes(&["10.77.1.0/24"]))],
            &[],
        );
        let mut peers = Peers::new(hub("paris-1"));
        let grant = Grant {
            prefixes: prefixes(&["10.77.3.0/24"]),
            ..Grant::default()
        };
        let link = PeerLink {
            id: LinkId::new(1).unwrap(),
            address: "192.0.2.1:7400".parse().unwrap(),
        };
        let agreement = PeeringAgreement::new(
            hub("lisbon-1"),
            country("PT"),
            vec![link],
            Site::new("lisbon").pinned(),
            grant,
        )
        .unwrap();
        peers.add(agreement).unwrap();
        RouteView {
            table,
            peers: Some(Arc::new(peers)),
        }
    }

    #[test]
    fn only_well_formed_granted_announced_and_unspoofed_packets_enter() {
        let view = paris();
        let (madrid, lisbon) = (hub("madrid-1"), hub("lisbon-1"));
        let check = |packet: &[u8], arriving: &HubId| admit(&view, &madrid, arriving, packet);
        assert_eq!(
            check(&ipv4([10, 77, 1, 5], [10, 77, 3, 1], b"x"), &lisbon),
            Ok(())
        );
        assert_eq!(
            check(&ipv4([10, 77, 1, 5], [10, 77, 4, 1], b"x"), &lisbon),
            Err(DropReason::NotGranted),
            "announced here, not granted to the arriving peer"
        );
        assert_eq!(
            check(&ipv4([10, 77, 1, 5], [10, 77, 3, 1], b"x"), &hub("rome-1")),
            Err(DropReason::NotGranted),
            "arriving through a hub that is no peer"
        );
        assert_eq!(
            check(&ipv4([10, 77, 1, 5], [10, 77, 9, 1], b"x"), &lisbon),
            Err(DropReason::NotAnnouncedHere)
        );
        assert_eq!(
            check(&ipv4([10, 77, 2, 5], [10, 77, 3, 1], b"x"), &lisbon),
            Err(DropReason::SpoofedSource),
            "a source Madrid does not announce"
        );
        let mut broken = ipv4([10, 77, 1, 5], [10, 77, 3, 1], b"x");
        broken[10] ^= 0xff;
        assert_eq!(check(&broken, &lisbon), Err(DropReason::Malformed));
        let before_any_snapshot = RouteView::default();
        assert_eq!(
            admit(
                &before_any_snapshot,
                &madrid,
                &lisbon,
                &ipv4([10, 77, 1, 5], [10, 77, 3, 1], b"x")
            ),
            Err(DropReason::NotAnnouncedHere)
        );
    }
}
