//! The daemon's background loops. Each owns one kind of work and reports to the main loop over
//! a channel, so a long discovery scan never holds a poll cycle back, and neither holds the
//! main loop (status, snapshot, watchdog).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::discovery::{DiscoveryReport, DiscoverySettings, discover};
use crate::hijack_guard::HijackGuard;
use crate::inventory::Inventory;
use crate::mining1::actions::ScanRequest;
use crate::site_layout::SiteLayout;
use crate::telemetry::{PollReport, Telemetry};

/// What the loops tell the main loop.
#[derive(Debug)]
pub enum Event {
    /// A poll cycle finished.
    Polled(PollReport),
    /// A discovery scan was recorded in the inventory.
    Scanned(DiscoveryReport),
    /// The hijack guard checked the fleet (findings, quarantines may have changed).
    Guarded,
}

/// The history is pruned this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Polls the fleet every `telemetry.interval`, first at once.
pub async fn telemetry(
    telemetry: Arc<Telemetry>,
    inventory: Arc<Inventory>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(telemetry.settings().interval());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<Instant> = None;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let prune = last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
        match telemetry.cycle(&inventory, prune).await {
            Ok(report) => {
                if prune {
                    last_prune = Some(Instant::now());
                }
                if events.send(Event::Polled(report)).await.is_err() {
                    return;
                }
            }
            Err(error) => tracing::warn!(%error, "the poll cycle could not use the inventory"),
        }
    }
}

/// Runs the hijack guard's check each time `due` is told (after every poll cycle), one check
/// at a time: a check that outlasts a cycle is followed by one more, not by a queue.
pub async fn guard(
    guard: Arc<HijackGuard>,
    telemetry: Arc<Telemetry>,
    due: Arc<Notify>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = due.notified() => {}
        }
        match guard.check(&telemetry).await {
            Ok(new) if !new.is_empty() => {
                tracing::warn!(new = new.len(), "the hijack guard acted on new findings");
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "the hijack guard's check failed"),
        }
        if events.send(Event::Guarded).await.is_err() {
            return;
        }
    }
}

/// Scans every `discovery.interval`, and whenever Mining1's `Scan` asks; the first scan is
/// the daemon's own, before this loop starts.
pub async fn discovery(
    layout: Arc<SiteLayout>,
    settings: DiscoverySettings,
    inventory: Arc<Inventory>,
    mut requests: mpsc::Receiver<ScanRequest>,
    events: mpsc::Sender<Event>,
    cancel: CancellationToken,
) {
    let start = tokio::time::Instant::now() + settings.interval();
    let mut ticks = tokio::time::interval_at(start, settings.interval());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let reply = tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => None,
            request = requests.recv() => match request {
                Some(reply) => Some(reply),
                None => return,
            },
        };
        let outcome = discover(&layout, &settings, Arc::clone(&inventory)).await;
        match outcome {
            Ok(report) => {
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(report.clone()));
                }
                if events.send(Event::Scanned(report)).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::error!(%error, "a discovery scan could not be recorded in the inventory");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error.to_string()));
                }
            }
        }
    }
}
