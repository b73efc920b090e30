//! Who called: the audit actor of a Mining1 call ([`appliance::dbus::caller`]).

use zbus::message::Header;

use super::MiningError;

/// `operator:NAME` for the calling user (`operator:uid-N` when the user has no name here).
pub async fn actor(
    connection: &zbus::Connection,
    header: &Header<'_>,
) -> Result<String, MiningError> {
    appliance::dbus::caller::caller(connection, header)
        .await
        .map(|caller| caller.operator())
        .map_err(MiningError::Unavailable)
}
