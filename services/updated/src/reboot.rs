//! Asking systemd to reboot, over D-Bus (`org.freedesktop.systemd1.Manager.Reboot`).
//!
//! updated has no capability (no CAP_SYS_BOOT): systemd itself performs the orderly reboot,
//! which it allows a root caller without further authorisation. The call returns once systemd
//! has queued the reboot job.

/// Queues an orderly reboot with systemd on the system bus.
pub async fn request_reboot() -> zbus::Result<()> {
    let connection = zbus::Connection::system().await?;
    connection
        .call_method(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            Some("org.freedesktop.systemd1.Manager"),
            "Reboot",
            &(),
        )
        .await?;
    Ok(())
}
