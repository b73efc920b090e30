//! Graceful stop: SIGTERM (what `systemctl stop` sends) or SIGINT becomes one cancellation token.

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::{Notifier, SystemdError};

/// The service's stop request, as a [`CancellationToken`] every task can watch.
///
/// One token for the whole service keeps the stop orderly: the main loop, the watchdog, the
/// metrics endpoint and the D-Bus server all end on the same event, and `main` waits for them
/// before exiting within `TimeoutStopSec=`. When the stop begins, for whatever reason, systemd is
/// told `STOPPING=1` and `STATUS=stopping`.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    token: CancellationToken,
}

impl ShutdownSignal {
    /// Installs the SIGTERM and SIGINT handlers now and starts the task that waits for them.
    ///
    /// The handlers are installed before this returns, so a signal that arrives right after
    /// (even before `READY=1`) is not lost and does not kill the process with the default
    /// action. Later stop signals are absorbed: the stop is already under way, and systemd
    /// escalates to SIGKILL itself if it outlasts `TimeoutStopSec=`. Must be called from within a
    /// tokio runtime.
    pub fn install(notifier: Notifier) -> Result<Self, SystemdError> {
        let terminate = handler(SignalKind::terminate(), "SIGTERM")?;
        let interrupt = handler(SignalKind::interrupt(), "SIGINT")?;
        let token = CancellationToken::new();
        tokio::spawn(wait_for_stop(notifier, terminate, interrupt, token.clone()));
        Ok(Self { token })
    }

    /// The token that is cancelled when the stop begins.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Completes when the stop begins.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }
}

/// Installs the stop handlers and returns the token they cancel; see [`ShutdownSignal`].
pub fn shutdown_token() -> Result<CancellationToken, SystemdError> {
    ShutdownSignal::install(Notifier::new()).map(|s| s.token())
}

fn handler(kind: SignalKind, name: &'static str) -> Result<Signal, SystemdError> {
    signal(kind).map_err(|source| SystemdError::SignalHandler {
        signal: name,
        source,
    })
}

async fn wait_for_stop(
    notifier: Notifier,
    mut terminate: Signal,
    mut interrupt: Signal,
    token: CancellationToken,
) {
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received: stopping"),
        _ = interrupt.recv() => tracing::info!("SIGINT received: stopping"),
        // The service began its own stop (fatal error, `--once`); systemd should still know.
        () = token.cancelled() => tracing::info!("service is stopping"),
    }
    // Tell systemd first, so STOPPING=1 precedes whatever the shutdown itself reports.
    if let Err(e) = notifier.stopping() {
        tracing::warn!(error = %e, "could not tell systemd the service is stopping");
    }
    token.cancel();
}
