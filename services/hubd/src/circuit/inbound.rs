//! Circuits arriving on a link, each on its own task: read the open frame (bounded, within the
//! open timeout), [`admit`] it, then carry it as destination or transit.
//!
//! A refusal is written back as [`CircuitReply::Refused`] naming this hub, counted and logged;
//! nothing else changes. As transit, this hub appends its signed receipt, opens a stream on the
//! next link, forwards the open frame and then relays bytes both ways ([`transit::forward`]).
//! As destination, it makes sure there is room for one more circuit, signs its receipt, replies
//! with every receipt, runs the end-to-end handshake as server and hands the circuit over.

use std::sync::{Arc, Weak};
use std::time::SystemTime;

use quinn::{RecvStream, SendStream};
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsAcceptor;

use super::admission::{Admitted, Here, Role, admit};
use super::counters;
use super::end_to_end;
use super::receipt::{Hop, TransitReceipt};
use super::refusal::CircuitRefusal;
use super::relay::{ESTABLISHED, InboundCircuit, Shared};
use super::stream::{CIRCUIT_TORN_DOWN, CircuitStream};
use super::transit;
use super::vouched::VouchedHubs;
use super::wire::{CircuitOpen, CircuitReply};
use crate::advertisement::Timestamp;
use crate::links::frame;
use crate::links::{LinkKey, LinkStreams};

/// Accepts the circuit streams of one link until it goes down or the relay is gone.
pub(crate) async fn accept_loop(relay: Weak<Shared>, streams: LinkStreams) {
    while let Ok((send, recv)) = streams.accept().await {
        let Some(shared) = relay.upgrade() else {
            return;
        };
        let arrival = Arrival {
            shared,
            arrived_on: streams.key().clone(),
            send,
            recv,
        };
        tokio::spawn(arrival.handle());
    }
}

/// One circuit stream a peer opened on a link of this hub.
struct Arrival {
    shared: Arc<Shared>,
    arrived_on: LinkKey,
    send: SendStream,
    recv: RecvStream,
}

impl Arrival {
    async fn handle(mut self) {
        let open = match self.read_open().await {
            Ok(open) => open,
            Err(reason) => return self.refuse(reason).await,
        };
        let vouched = self.shared.vouched();
        let decision = {
            let link_up = |key: &LinkKey| self.shared.link(key).is_some();
            let here = Here {
                own: &self.shared.own,
                arrived_on: &self.arrived_on,
                transit: self.shared.transit(),
                peers: &self.shared.peers,
                vouched: &vouched,
                link_up: &link_up,
            };
            admit(&open, &here)
        };
        match decision {
            Err(reason) => {
                tracing::warn!(route = %open.route, session = %open.session, "refusing a circuit");
                self.refuse(reason).await;
            }
            Ok(Admitted {
                position,
                role: Role::Destination,
            }) => self.end_here(open, position, &vouched).await,
            Ok(Admitted {
                position,
                role: Role::Transit { next },
            }) => self.pass_on(open, position, next).await,
        }
    }

    async fn read_open(&mut self) -> Result<CircuitOpen, CircuitRefusal> {
        let limit = self.shared.settings.open_timeout;
        match tokio::time::timeout(limit, frame::read_frame(&mut self.recv)).await {
            Err(_) => Err(CircuitRefusal::Timeout),
            Ok(Err(_)) => Err(CircuitRefusal::Malformed),
            Ok(Ok(bytes)) => {
                CircuitOpen::decode(&bytes).map_err(|error| CircuitRefusal::of_decode_error(&error))
            }
        }
    }

    /// Tells the source why, and ends the stream.
    async fn refuse(mut self, reason: CircuitRefusal) {
        self.shared.counters.refused(reason.label());
        tracing::warn!(link = %self.arrived_on, reason = reason.label(), "circuit refused");
        let reply = CircuitReply::Refused {
            hub: self.shared.own.clone(),
            reason,
        };
        let limit = self.shared.settings.open_timeout;
        let _ =
            tokio::time::timeout(limit, frame::write_frame(&mut self.send, &reply.encode())).await;
        // The stream may already be gone; the source then learns from that.
        let _ = self.send.finish();
        let _ = self.recv.stop(CIRCUIT_TORN_DOWN);
    }

    /// This hub's receipt for `open`, at `position` on its route.
    fn own_receipt(
        &self,
        open: &CircuitOpen,
        position: usize,
    ) -> Result<TransitReceipt, CircuitRefusal> {
        let hubs = open.route.hubs();
        let hop = Hop {
            hub: self.shared.own.clone(),
            jurisdiction: self.shared.jurisdiction,
            previous: Some(hubs[position - 1].clone()),
            next: hubs.get(position + 1).cloned(),
            epoch: Timestamp::from(SystemTime::now()).as_unix_secs(),
        };
        TransitReceipt::sign(&self.shared.identity(), open.session, hop).map_err(|error| {
            tracing::error!("cannot sign a transit receipt: {error}");
            CircuitRefusal::CannotSign
        })
    }

    /// Transit: extend the circuit over `next` and relay until it ends.
    async fn pass_on(self, mut open: CircuitOpen, position: usize, next: LinkKey) {
        let receipt = match self.own_receipt(&open, position) {
            Ok(receipt) => receipt,
            Err(reason) => return self.refuse(reason).await,
        };
        let Some(streams) = self.shared.link(&next) else {
            return self.refuse(CircuitRefusal::NoLink).await;
        };
        let limit = self.shared.settings.open_timeout;
        let (mut down_send, down_recv) = match tokio::time::timeout(limit, streams.open()).await {
            Err(_) => return self.refuse(CircuitRefusal::Timeout).await,
            Ok(Err(_)) => return self.refuse(CircuitRefusal::NoLink).await,
            Ok(Ok(stream)) => stream,
        };
        open.receipts.push(receipt);
        let forwarded =
            tokio::time::timeout(limit, frame::write_frame(&mut down_send, &open.encode())).await;
        if !matches!(forwarded, Ok(Ok(()))) {
            let _ = down_send.reset(CIRCUIT_TORN_DOWN);
            return self.refuse(CircuitRefusal::NoLink).await;
        }
        let Self {
            shared,
            arrived_on,
            send,
            recv,
        } = self;
        let counters = Arc::clone(&shared.counters);
        drop(shared);
        let _active = counters.established(counters::Role::Transit);
        tracing::info!(session = %open.session, from = %arrived_on, to = %next, "circuit in transit");
        let end = transit::forward((send, recv), (down_send, down_recv), &counters.meter).await;
        tracing::info!(session = %open.session, ?end, "transit circuit ended");
    }

    /// Destination: reply with every receipt, authenticate the source end to end, hand over.
    async fn end_here(mut self, open: CircuitOpen, position: usize, vouched: &VouchedHubs) {
        let Ok(permit) = self.shared.inbound.clone().try_reserve_owned() else {
            return self.refuse(CircuitRefusal::Busy).await;
        };
        let source = open.route.source().clone();
        let Ok(config) = end_to_end::server_config(&self.shared.identity(), &source, vouched)
        else {
            return self.refuse(CircuitRefusal::UnknownSource).await;
        };
        let receipt = match self.own_receipt(&open, position) {
            Ok(receipt) => receipt,
            Err(reason) => return self.refuse(reason).await,
        };
        let CircuitOpen {
            session,
            route,
            mut receipts,
        } = open;
        receipts.push(receipt);
        let reply = CircuitReply::Accepted { receipts }.encode();
        let limit = self.shared.settings.open_timeout;
        let replied = tokio::time::timeout(limit, frame::write_frame(&mut self.send, &reply)).await;
        let mut stream = CircuitStream::new(self.send, self.recv);
        if !matches!(replied, Ok(Ok(()))) {
            return stream.abort();
        }
        let accepting = TlsAcceptor::from(config).accept(stream).into_fallible();
        let mut tls = match tokio::time::timeout(limit, accepting).await {
            Ok(Ok(tls)) => tls,
            Ok(Err((error, mut stream))) => {
                stream.abort();
                self.shared.counters.refused("handshake");
                tracing::warn!(%session, %source, "end-to-end handshake failed: {error}");
                return;
            }
            Err(_) => {
                self.shared.counters.refused("handshake");
                tracing::warn!(%session, %source, "end-to-end handshake timed out");
                return;
            }
        };
        let confirmed = tokio::time::timeout(limit, async {
            tls.write_all(&[ESTABLISHED]).await?;
            tls.flush().await
        })
        .await;
        if !matches!(confirmed, Ok(Ok(()))) {
            return tls.get_mut().0.abort();
        }
        tls.get_mut().0.count_as(
            self.shared
                .counters
                .established(counters::Role::Destination),
        );
        tracing::info!(%session, %source, "circuit accepted");
        permit.send(InboundCircuit {
            session,
            source,
            route,
            stream: tls,
        });
    }
}
