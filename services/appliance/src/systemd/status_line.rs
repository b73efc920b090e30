//! A service's `STATUS=` line kept current from its main loop without ever blocking it.
//!
//! The notify socket is a datagram socket: the kernel queues ten datagrams, and a send blocks
//! once the manager stops reading. A main loop that also drives relays, polls or answers D-Bus
//! must never wait for that, so the line is sent from the blocking pool; while the previous line
//! is still on its way a newer one is skipped (the next change sends again).

use tokio::task::JoinHandle;

use super::Notifier;

/// The last status line told, and the send still in flight.
#[derive(Debug, Default)]
pub struct StatusLine {
    told: String,
    sending: Option<JoinHandle<()>>,
}

impl StatusLine {
    /// Starts from the line READY=1 carried.
    pub fn new(ready_line: &str) -> StatusLine {
        StatusLine {
            told: ready_line.to_owned(),
            sending: None,
        }
    }

    /// Logs and tells systemd `fresh` when it differs from the last line.
    pub fn update(&mut self, notifier: Notifier, fresh: String) {
        if fresh == self.told {
            return;
        }
        tracing::info!("status: {fresh}");
        if self
            .sending
            .as_ref()
            .is_some_and(|task| !task.is_finished())
        {
            tracing::warn!("systemd has not taken the last status line yet; this one is skipped");
        } else {
            let text = fresh.clone();
            self.sending = Some(tokio::task::spawn_blocking(move || {
                if let Err(error) = notifier.status(&text) {
                    tracing::warn!(%error, "cannot tell systemd the status");
                }
            }));
        }
        self.told = fresh;
    }
}
