//! Asking a BunkerOS daemon over the system bus: one bounded round trip, and its refusals as one
//! line for the operator. Shared by `bunkerctl ca` (trustd) and `bunkerctl hub` (hubd).

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use appliance::dbus::contracts::BusService;
use zbus::Connection;

/// Runs `ask` with a connection to the system bus on a fresh runtime, all of it (the connection
/// included) bounded by `timeout`: a bus that accepts the socket but never answers must not hang
/// the operator's shell.
pub fn on_system_bus<T>(
    timeout: Duration,
    ask: impl AsyncFnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        tokio::time::timeout(timeout, async {
            let connection = appliance::dbus::system_bus()
                .await
                .context("connecting to the system bus")?;
            ask(&connection).await
        })
        .await
        .map_err(|_| anyhow!("no answer over D-Bus within {timeout:?}"))?
    })
}

/// A D-Bus error from `service` as one line: the daemon's own sentence, that the daemon is not
/// running, or that the bus policy refused the call (`denied` says who may make it).
pub fn refused(service: BusService, denied: &str, error: zbus::Error) -> anyhow::Error {
    let daemon = service.daemon;
    match &error {
        zbus::Error::MethodError(name, message, _) => {
            let name = name.as_str();
            if name == "org.freedesktop.DBus.Error.ServiceUnknown"
                || name == "org.freedesktop.DBus.Error.NameHasNoOwner"
            {
                anyhow!(
                    "{daemon} is not running ({} is not on the system bus)",
                    service.bus_name
                )
            } else if name == "org.freedesktop.DBus.Error.AccessDenied" {
                anyhow!("the system bus refused the call: {denied}")
            } else {
                let short = name.rsplit('.').next().unwrap_or(name);
                anyhow!(
                    "{daemon} refused ({short}): {}",
                    message.as_deref().unwrap_or("no reason given")
                )
            }
        }
        _ => anyhow!(error).context(format!("asking {daemon} over D-Bus")),
    }
}

/// A method's D-Bus error named `name` carrying `message`, as a service answers it (for the
/// commands' refusal tests).
#[cfg(test)]
pub fn method_error(path: &str, member: &str, name: &str, message: &str) -> zbus::Error {
    let call = zbus::message::Message::method_call(path, member)
        .unwrap()
        .build(&())
        .unwrap();
    zbus::Error::MethodError(name.try_into().unwrap(), Some(message.to_owned()), call)
}
