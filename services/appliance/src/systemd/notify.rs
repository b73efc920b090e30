//! The `sd_notify` side of the systemd contract: `READY=1`, `STATUS=`, `STOPPING=1`, `WATCHDOG=1`.

use std::borrow::Cow;

use sd_notify::NotifyState;

use super::SystemdError;

/// Sends service state to systemd over `$NOTIFY_SOCKET`.
///
/// A handle rather than free functions so a service passes "the thing that talks to systemd" to
/// the parts that report progress, and so tests can see where notifications originate. Each
/// call reads `$NOTIFY_SOCKET` afresh; when it is unset (not running under systemd) every call
/// succeeds without doing anything, so the service behaves the same in a shell.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifier(());

impl Notifier {
    /// A notifier for the current process.
    pub fn new() -> Self {
        Self(())
    }

    /// Whether a service manager is listening, i.e. `$NOTIFY_SOCKET` is set.
    ///
    /// Only for logging ("running without systemd"); the other methods already degrade to no-ops.
    pub fn is_supervised(&self) -> bool {
        std::env::var_os("NOTIFY_SOCKET").is_some()
    }

    /// Tells systemd the service is serving (`READY=1`) along with a status line.
    ///
    /// Call this only once the service really serves (sockets bound, D-Bus name owned): `updated`
    /// blesses a new image slot when every unit is active, and `active` comes from `READY=1`.
    pub fn ready(&self, status: &str) -> Result<(), SystemdError> {
        let status = single_line(status);
        send(
            "READY=1",
            &[NotifyState::Ready, NotifyState::Status(&status)],
        )
    }

    /// Replaces the status line shown by `systemctl status` and `bunkerctl status`.
    pub fn status(&self, text: &str) -> Result<(), SystemdError> {
        let text = single_line(text);
        send("STATUS=", &[NotifyState::Status(&text)])
    }

    /// Tells systemd the stop has begun (`STOPPING=1`, `STATUS=stopping`), so a slow clean
    /// shutdown shows as "deactivating" rather than as a hung service.
    pub fn stopping(&self) -> Result<(), SystemdError> {
        send(
            "STOPPING=1",
            &[NotifyState::Stopping, NotifyState::Status("stopping")],
        )
    }

    /// Resets systemd's watchdog timer (`WATCHDOG=1`).
    ///
    /// Services do not call this directly: [`spawn_watchdog`](super::spawn_watchdog) calls it
    /// only while the main loop's [`Heartbeat`](super::Heartbeat) is fresh.
    pub fn watchdog_ping(&self) -> Result<(), SystemdError> {
        send("WATCHDOG=1", &[NotifyState::Watchdog])
    }
}

fn send(what: &'static str, states: &[NotifyState<'_>]) -> Result<(), SystemdError> {
    sd_notify::notify(states).map_err(|source| SystemdError::Notify { what, source })
}

/// Makes a status text safe for the notify protocol.
///
/// The protocol is newline-separated `KEY=value` assignments, so a status text that carries a
/// newline (say, a pool name read from a config or a peer) could smuggle `READY=1` or
/// `MAINPID=` into the datagram. Control characters become spaces.
pub(crate) fn single_line(text: &str) -> Cow<'_, str> {
    if text.chars().any(char::is_control) {
        Cow::Owned(
            text.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_status_is_passed_through_unchanged() {
        assert!(matches!(
            single_line("serving 1042 miners"),
            Cow::Borrowed("serving 1042 miners")
        ));
    }

    #[test]
    fn newlines_cannot_inject_extra_assignments() {
        let cleaned = single_line("pool ok\nREADY=1\r\nMAINPID=1\t");
        assert_eq!(cleaned, "pool ok READY=1  MAINPID=1 ");
        assert!(!cleaned.contains('\n'));
    }
}
