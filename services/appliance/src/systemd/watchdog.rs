//! The watchdog: ping systemd only while the service's main loop proves it is alive.
//!
//! A watchdog task that pings on a timer regardless of the service's health only proves that
//! the tokio runtime still schedules timers; a main loop stuck on a lock or a blocking call
//! would be kept alive forever. Here the main loop calls [`Heartbeat::beat`] on every healthy
//! iteration and the task pings `WATCHDOG=1` only while the last beat is recent. When the loop
//! stalls the pings stop, `WatchdogSec=` expires, and systemd kills and restarts the service
//! (`Restart=on-failure`), which is the recovery we want on an unattended appliance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::Notifier;

/// Proof of life from the service's main loop, shared with the watchdog task.
///
/// Cheap to clone (one `Arc`) and lock-free to beat, so it can sit in the hottest loop. Creating
/// one counts as a beat, so the watchdog does not fire during startup before the first iteration.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    inner: Arc<HeartbeatInner>,
}

#[derive(Debug)]
struct HeartbeatInner {
    /// Fixed reference point; beats are stored as microseconds since it so they fit an atomic.
    origin: Instant,
    last_beat_micros: AtomicU64,
}

impl Heartbeat {
    /// A heartbeat that has just beaten.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(HeartbeatInner {
                origin: Instant::now(),
                last_beat_micros: AtomicU64::new(0),
            }),
        }
    }

    /// Records that the main loop completed a healthy iteration just now.
    ///
    /// The main loop must beat at least every half `WatchdogSec=`; a loop that waits for events
    /// should also wake on a timer (e.g. a `tokio::time::interval` arm in its `select!`).
    pub fn beat(&self) {
        let now = micros(self.inner.origin.elapsed());
        // fetch_max, not store: two threads racing must never move the beat backwards.
        self.inner
            .last_beat_micros
            .fetch_max(now, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn since_last_beat(&self) -> Duration {
        let last = Duration::from_micros(self.inner.last_beat_micros.load(Ordering::Relaxed));
        self.inner.origin.elapsed().saturating_sub(last)
    }
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// What the watchdog task does on one tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchdogVerdict {
    /// The main loop beat recently: reset systemd's timer.
    Ping,
    /// The main loop has stalled: stay silent and let systemd's timer run out.
    Withhold,
}

/// Decides whether to ping, given the time since the last beat and the `WatchdogSec=` interval.
///
/// The task ticks every `interval / 2`, and a beat counts only while it is younger than
/// `interval / 2`. So a loop that stalls stops the pings within one interval, and systemd
/// restarts the service at most one and a half intervals after the stall began.
pub fn watchdog_verdict(since_last_beat: Duration, interval: Duration) -> WatchdogVerdict {
    if since_last_beat < interval / 2 {
        WatchdogVerdict::Ping
    } else {
        WatchdogVerdict::Withhold
    }
}

/// Starts the watchdog task if systemd asked for one (`WatchdogSec=` set for this process).
///
/// Reads `WATCHDOG_USEC` (and `WATCHDOG_PID`, which must be absent or this process) through
/// `sd_notify::watchdog_enabled`. Returns `None`, and spawns nothing, when the watchdog is off
/// or its interval is zero. The task ends when `cancel` fires: a service that is stopping is
/// covered by `TimeoutStopSec=`, not by the watchdog.
///
/// Must be called from within a tokio runtime.
pub fn spawn_watchdog(heartbeat: Heartbeat, cancel: CancellationToken) -> Option<JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled().filter(|i| !i.is_zero())?;
    tracing::info!(
        interval_ms = interval.as_millis(),
        "systemd watchdog enabled; pinging every half interval while the main loop beats"
    );
    Some(tokio::spawn(run(
        Notifier::new(),
        heartbeat,
        interval,
        cancel,
    )))
}

async fn run(
    notifier: Notifier,
    heartbeat: Heartbeat,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval / 2);
    // After a stall of the runtime itself, do not burst catch-up pings: one ping per real tick.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut gate = StallReport::default();
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let since = heartbeat.since_last_beat();
        let verdict = watchdog_verdict(since, interval);
        match gate.observe(verdict) {
            Some(WatchdogVerdict::Withhold) => tracing::warn!(
                since_last_beat_ms = since.as_millis(),
                interval_ms = interval.as_millis(),
                "main loop stalled: withholding watchdog pings so systemd restarts the service"
            ),
            Some(WatchdogVerdict::Ping) => {
                tracing::info!("main loop beating again: watchdog pings resumed");
            }
            None => {}
        }
        if verdict == WatchdogVerdict::Ping
            && let Err(e) = notifier.watchdog_ping()
        {
            tracing::warn!(error = %e, "watchdog ping failed");
        }
    }
}

/// Remembers the last verdict so a stall is logged once, not on every tick.
#[derive(Debug, Default)]
struct StallReport {
    stalled: bool,
}

impl StallReport {
    /// Returns the verdict when it changes the state (stall began or ended), `None` otherwise.
    fn observe(&mut self, verdict: WatchdogVerdict) -> Option<WatchdogVerdict> {
        let stalled = verdict == WatchdogVerdict::Withhold;
        (stalled != self.stalled).then(|| {
            self.stalled = stalled;
            verdict
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(200);

    #[test]
    fn a_fresh_beat_is_pinged() {
        assert_eq!(
            watchdog_verdict(Duration::ZERO, INTERVAL),
            WatchdogVerdict::Ping
        );
        assert_eq!(
            watchdog_verdict(Duration::from_millis(99), INTERVAL),
            WatchdogVerdict::Ping
        );
    }

    #[test]
    fn a_beat_half_an_interval_old_is_a_stall() {
        assert_eq!(
            watchdog_verdict(Duration::from_millis(100), INTERVAL),
            WatchdogVerdict::Withhold
        );
        assert_eq!(
            watchdog_verdict(Duration::from_secs(3600), INTERVAL),
            WatchdogVerdict::Withhold
        );
    }

    #[test]
    fn a_stall_is_reported_once_and_so_is_the_recovery() {
        use WatchdogVerdict::{Ping, Withhold};
        let mut report = StallReport::default();
        let observed: Vec<_> = [
            Ping, Ping, Withhold, Withhold, Withhold, Ping, Ping, Withhold,
        ]
        .into_iter()
        .map(|v| report.observe(v))
        .collect();
        assert_eq!(
            observed,
            [
                None,
                None,
                Some(Withhold),
                None,
                None,
                Some(Ping),
                None,
                Some(Withhold)
            ]
        );
    }

    #[test]
    fn a_new_heartbeat_counts_as_a_beat() {
        let heartbeat = Heartbeat::new();
        assert_eq!(
            watchdog_verdict(heartbeat.since_last_beat(), INTERVAL),
            WatchdogVerdict::Ping
        );
    }

    #[test]
    fn clones_share_the_beat() {
        let main_loop = Heartbeat::new();
        let watchdog = main_loop.clone();
        std::thread::sleep(Duration::from_millis(30));
        let before = watchdog.since_last_beat();
        assert!(before >= Duration::from_millis(30));
        main_loop.beat();
        assert!(watchdog.since_last_beat() < before);
    }
}
