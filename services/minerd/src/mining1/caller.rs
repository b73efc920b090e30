//! Who called: the audit actor of a Mining1 call, from the message's sender as the bus daemon
//! knows it (`GetConnectionUnixUser`), never from anything the caller says about itself.

use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::names::BusName;

use super::MiningError;

/// `operator:NAME` for the calling user (`operator:uid-N` when the user has no name here).
pub async fn actor(
    connection: &zbus::Connection,
    header: &Header<'_>,
) -> Result<String, MiningError> {
    let unavailable =
        |e: zbus::fdo::Error| MiningError::Unavailable(format!("cannot tell who is calling: {e}"));
    let sender = header
        .sender()
        .ok_or_else(|| MiningError::Unavailable("the call carries no sender".to_owned()))?;
    let bus = DBusProxy::new(connection)
        .await
        .map_err(|e| unavailable(e.into()))?;
    let uid = bus
        .get_connection_unix_user(BusName::from(sender.to_owned()))
        .await
        .map_err(unavailable)?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Ok(actor_for(uid, &passwd))
}

/// The actor for `uid`, named from a passwd file's text.
pub fn actor_for(uid: u32, passwd: &str) -> String {
    let name = passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let entry_uid = fields.nth(1)?;
        (entry_uid.parse::<u32>().ok()? == uid && !name.is_empty()).then_some(name)
    });
    match name {
        Some(name) => format!("operator:{name}"),
        None => format!("operator:uid-{uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_actor_is_named_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(actor_for(0, passwd), "operator:root");
        assert_eq!(actor_for(1000, passwd), "operator:alice");
        assert_eq!(actor_for(1001, passwd), "operator:uid-1001");
        assert_eq!(actor_for(7, "broken line\n::7:\n"), "operator:uid-7");
    }
}
