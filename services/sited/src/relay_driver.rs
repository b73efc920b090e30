//! Drives the relays of one Modbus bus to what the outputs want, over the bank's own
//! connection: a change is written at once (a siren must not wait for a poll), a failed write
//! is retried every second, and every ten seconds the coils are read back so a relay switched
//! by hand or a device that restarted is put right.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::modbus::relay::RelayBank;

/// How soon a failed write is tried again.
pub const RETRY: Duration = Duration::from_secs(1);
/// How often the coils are read back.
pub const VERIFY_EVERY: Duration = Duration::from_secs(10);

/// What sited knows of one relay.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayState {
    pub bus: String,
    /// What the coil last read or was confirmed as; `None` before the first answer or after
    /// a failure.
    pub on: Option<bool>,
    /// What the outputs want; `None` for a relay no output names.
    pub wanted: Option<bool>,
    /// The last failure, until a write or read works again.
    pub error: Option<String>,
    /// When sited last switched it.
    pub switched_at: Option<SystemTime>,
}

/// Every relay's state, shared with the status document and the metrics.
pub type RelayStates = Arc<Mutex<BTreeMap<String, RelayState>>>;

/// Drives `bank` until `cancel`.
pub async fn drive(
    mut bank: RelayBank,
    bus: String,
    mut wanted: watch::Receiver<BTreeMap<String, bool>>,
    states: RelayStates,
    cancel: CancellationToken,
) {
    let names: Vec<String> = bank.names().map(str::to_owned).collect();
    {
        let mut states = states.lock().expect("relay states");
        for name in &names {
            states.entry(name.clone()).or_default().bus = bus.clone();
        }
    }
    let mut verify_at = tokio::time::Instant::now();
    loop {
        let desired = wanted.borrow_and_update().clone();
        let mut failed = false;
        for name in &names {
            let Some(&want) = desired.get(name) else {
                continue;
            };
            let confirmed = {
                let mut states = states.lock().expect("relay states");
                let state = states.entry(name.clone()).or_default();
                state.wanted = Some(want);
                state.on
            };
            if confirmed == Some(want) {
                continue;
            }
            let outcome = bank.set(name, want).await;
            let mut states = states.lock().expect("relay states");
            let state = states.entry(name.clone()).or_default();
            match outcome {
                Ok(()) => {
                    state.on = Some(want);
                    state.error = None;
                    state.switched_at = Some(SystemTime::now());
                }
                Err(error) => {
                    tracing::error!(relay = %name, %error, "cannot switch the relay; retrying");
                    state.on = None;
                    state.error = Some(error.to_string());
                    failed = true;
                }
            }
        }
        let wait = if failed {
            RETRY
        } else {
            verify_at.saturating_duration_since(tokio::time::Instant::now())
        };
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = wanted.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {
                if tokio::time::Instant::now() >= verify_at {
                    verify(&mut bank, &names, &states).await;
                    verify_at = tokio::time::Instant::now() + VERIFY_EVERY;
                }
            }
        }
    }
}

/// Reads every relay's coil back; one that differs from what sited set gets set again.
async fn verify(bank: &mut RelayBank, names: &[String], states: &RelayStates) {
    for name in names {
        let read = bank.read(name).await;
        let mut states = states.lock().expect("relay states");
        let state = states.entry(name.clone()).or_default();
        match read {
            Ok(on) => {
                if state.on.is_some() && state.on != Some(on) {
                    tracing::warn!(relay = %name, on, "the relay was switched outside sited; setting it back");
                }
                state.on = Some(on);
                state.error = None;
            }
            Err(error) => {
                state.on = None;
                state.error = Some(error.to_string());
            }
        }
    }
}
