//! Asking systemd for an orderly reboot, over D-Bus: `StartUnit("reboot.target",
//! "replace-irreversibly")`, what `systemctl reboot` does.
//!
//! Not `Manager.Reboot()`: systemd documents that as the last step of a shutdown, rebooting at
//! once without stopping the services (trustd's store and the audit logs would not close
//! cleanly). updated has no capability (no CAP_SYS_BOOT) and needs none: systemd performs the
//! reboot for a root caller. The call returns once the job is queued.

/// Queues an orderly reboot with systemd on the system bus.
pub async fn request_reboot() -> zbus::Result<()> {
    let connection = zbus::Connection::system().await?;
    connection
        .call_method(
            Some("org.freedesktop.systemd1"),
            "/org/freedesktop/systemd1",
            Some("org.freedesktop.systemd1.Manager"),
            "StartUnit",
            &("reboot.target", "replace-irreversibly"),
        )
        .await?;
    Ok(())
}
