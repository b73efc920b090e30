//! Reading the BunkerOS units from systemd over the system D-Bus: the edge where `bunkerctl status`
//! turns systemd's properties into [`UnitSnapshot`]s.
//!
//! `LoadUnit` rather than `GetUnit`, because it answers for units that are not loaded (and for
//! units the image does not ship: `LoadState` is then `not-found`) where `GetUnit` fails. Properties
//! are read uncached: this is a one-shot read, and a cache would only subscribe to change signals.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use appliance::units::{BUNKEROS_UNITS, BunkerUnit};
use zbus::Connection;
use zbus::proxy::CacheProperties;
use zbus_systemd::systemd1::{ManagerProxy, ServiceProxy, UnitProxy};
use zbus_systemd::zvariant::OwnedObjectPath;

use crate::snapshot::{ApplianceStatus, UnitSnapshot};

/// How long systemd may take to answer, so a wedged bus never hangs the operator's shell.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the kernel keeps the machine's name.
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else the standard socket).
pub async fn connect() -> Result<Connection> {
    let connecting = tokio::time::timeout(ANSWER_TIMEOUT, Connection::system());
    match connecting.await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(unreachable_systemd(&error)),
        Err(_) => Err(unreachable_systemd(&"no answer within 10 s")),
    }
}

/// The hostname and every BunkerOS unit, as systemd sees them now.
pub async fn read_appliance_status(connection: &Connection) -> Result<ApplianceStatus> {
    let hostname = read_hostname()?;
    let reading = tokio::time::timeout(ANSWER_TIMEOUT, read_units(connection, BUNKEROS_UNITS));
    let units = reading
        .await
        .map_err(|_| anyhow!("systemd did not answer over D-Bus within 10 s"))??;
    Ok(ApplianceStatus { hostname, units })
}

/// The machine's hostname, from the kernel.
pub fn read_hostname() -> Result<String> {
    let hostname = std::fs::read_to_string(HOSTNAME_FILE)
        .with_context(|| format!("reading the hostname from {HOSTNAME_FILE}"))?;
    Ok(hostname.trim().to_owned())
}

async fn read_units(connection: &Connection, units: &[BunkerUnit]) -> Result<Vec<UnitSnapshot>> {
    let manager = ManagerProxy::builder(connection)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .context("creating the systemd manager proxy")?;
    let mut snapshots = Vec::with_capacity(units.len());
    for unit in units {
        let snapshot = read_unit(connection, &manager, unit)
            .await
            .map_err(|error| {
                if is_systemd_absent(&error) {
                    unreachable_systemd(&error)
                } else {
                    anyhow!(error).context(format!("reading {} from systemd", unit.name))
                }
            })?;
        snapshots.push(snapshot);
    }
    Ok(snapshots)
}

async fn read_unit(
    connection: &Connection,
    manager: &ManagerProxy<'_>,
    unit: &BunkerUnit,
) -> zbus::Result<UnitSnapshot> {
    let path = manager.load_unit(unit.name.to_owned()).await?;
    let properties = UnitProxy::builder(connection)
        .path(path.clone())?
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let load_state = properties.load_state().await?;
    let mut snapshot = UnitSnapshot {
        unit: unit.name.to_owned(),
        role: unit.role.to_owned(),
        active_state: properties.active_state().await?,
        sub_state: properties.sub_state().await?,
        since_usec: nonzero(properties.state_change_timestamp().await?),
        status_text: None,
        main_pid: None,
        restarts: None,
        load_state,
    };
    if snapshot.load_state == "loaded" && unit.name.ends_with(".service") {
        read_service(connection, path, &mut snapshot).await?;
    }
    Ok(snapshot)
}

/// Adds what only a service has: its `STATUS=` text, main PID and restart count.
async fn read_service(
    connection: &Connection,
    path: OwnedObjectPath,
    snapshot: &mut UnitSnapshot,
) -> zbus::Result<()> {
    let service = ServiceProxy::builder(connection)
        .path(path)?
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let status_text = service.status_text().await?;
    snapshot.status_text = (!status_text.is_empty()).then_some(status_text);
    snapshot.main_pid = Some(service.main_pid().await?).filter(|pid| *pid != 0);
    snapshot.restarts = Some(service.n_restarts().await?);
    Ok(())
}

/// systemd reports "never" as 0.
fn nonzero(usec: u64) -> Option<u64> {
    (usec != 0).then_some(usec)
}

/// The bus answers but nobody serves `org.freedesktop.systemd1`: not a systemd machine. The bus
/// says so with `ServiceUnknown`/`NameHasNoOwner`, or with a `Spawn.*` error when it tried to start
/// the name from an activation file (a session-style bus) and failed.
fn is_systemd_absent(error: &zbus::Error) -> bool {
    let name = match error {
        zbus::Error::MethodError(name, _, _) => name.as_str().to_owned(),
        zbus::Error::FDO(fdo) => zbus::DBusError::name(&**fdo).as_str().to_owned(),
        _ => return false,
    };
    is_absence_error_name(&name)
}

fn is_absence_error_name(name: &str) -> bool {
    matches!(
        name,
        "org.freedesktop.DBus.Error.ServiceUnknown" | "org.freedesktop.DBus.Error.NameHasNoOwner"
    ) || name.starts_with("org.freedesktop.DBus.Error.Spawn.")
}

fn unreachable_systemd(cause: &dyn std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot reach systemd over D-Bus ({cause}): is this a BunkerOS appliance?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bus_without_systemd_is_told_apart_from_other_failures() {
        assert!(is_absence_error_name(
            "org.freedesktop.DBus.Error.ServiceUnknown"
        ));
        assert!(is_absence_error_name(
            "org.freedesktop.DBus.Error.NameHasNoOwner"
        ));
        assert!(is_absence_error_name(
            "org.freedesktop.DBus.Error.Spawn.ChildExited"
        ));
        assert!(!is_absence_error_name(
            "org.freedesktop.DBus.Error.AccessDenied"
        ));
        assert!(!is_absence_error_name(
            "org.freedesktop.systemd1.NoSuchUnit"
        ));
    }

    #[test]
    fn fdo_errors_are_classified_by_name() {
        let absent = zbus::Error::FDO(Box::new(zbus::fdo::Error::ServiceUnknown("gone".into())));
        let denied = zbus::Error::FDO(Box::new(zbus::fdo::Error::AccessDenied("no".into())));
        assert!(is_systemd_absent(&absent));
        assert!(!is_systemd_absent(&denied));
    }

    #[test]
    fn the_unreachable_message_names_the_cause() {
        let message = unreachable_systemd(&"no socket").to_string();
        assert_eq!(
            message,
            "cannot reach systemd over D-Bus (no socket): is this a BunkerOS appliance?"
        );
    }

    #[test]
    fn hostname_comes_from_the_kernel() {
        let hostname = read_hostname().expect("/proc/sys/kernel/hostname is readable");
        assert!(!hostname.is_empty() && !hostname.contains('\n'));
    }
}
