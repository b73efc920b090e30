//! systemd integration for `Type=notify` services: readiness, status, the watchdog and a graceful stop.
//!
//! Every BunkerOS service runs under systemd with `Type=notify` and `WatchdogSec=`. The contract is
//! the same for all of them, so it lives here once:
//!
//! - [`Notifier`] tells systemd `READY=1` only when the service really serves, keeps a `STATUS=`
//!   line a person can read ([`StatusLine`], sent off the main loop), and says `STOPPING=1` when
//!   the stop begins.
//! - [`Heartbeat`] and [`spawn_watchdog`] ping `WATCHDOG=1` only while the service's main loop
//!   proves it is alive, so a wedged service is killed and restarted by systemd instead of lying.
//! - [`ShutdownSignal`] / [`shutdown_token`] turn SIGTERM and SIGINT into a
//!   [`CancellationToken`](tokio_util::sync::CancellationToken) the whole service stops on.
//! - [`run_daemon`] runs the daemon on its runtime and turns its end into the exit status.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset, e.g. in a developer's shell) every notification is a
//! no-op and the watchdog is off, so the same binary runs anywhere. Nothing here ever unsets the
//! environment: in edition 2024 that is `unsafe`, and child processes are spawned with explicit
//! environments anyway.

mod daemon_main;
mod notify;
mod shutdown;
mod status_line;
mod watchdog;

#[cfg(test)]
mod tests;

pub use daemon_main::{configure, run_daemon};
pub use notify::Notifier;
pub use shutdown::{ShutdownSignal, shutdown_token};
pub use status_line::StatusLine;
pub use watchdog::{Heartbeat, WatchdogVerdict, spawn_watchdog, watchdog_verdict};

use std::io;

/// What went wrong while talking to systemd or setting up signal handling.
#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    /// `$NOTIFY_SOCKET` is set but the datagram could not be sent: systemd will not learn the
    /// service's state (and a `Type=notify` unit waiting for `READY=1` will time out).
    #[error("cannot send {what} to the service manager over $NOTIFY_SOCKET")]
    Notify {
        /// The notification that was lost, e.g. `READY=1`.
        what: &'static str,
        /// Why the socket refused it.
        #[source]
        source: io::Error,
    },
    /// The handler for a stop signal could not be installed, so the service could not stop
    /// gracefully; refusing to start is better than being killed mid-write later.
    #[error("cannot install the {signal} handler for a graceful stop")]
    SignalHandler {
        /// The signal, e.g. `SIGTERM`.
        signal: &'static str,
        /// Why the runtime refused it.
        #[source]
        source: io::Error,
    },
}
