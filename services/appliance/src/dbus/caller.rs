//! Who is calling a service's D-Bus method: the calling connection's Unix user as the bus
//! daemon knows it (`GetConnectionUnixUser`), never anything the caller says about itself.
//! Services record it as the actor of an action, and check it where only one user may act
//! (sited takes `RaiseAlarm` for source `minerd` only from the `minerd` user).

use zbus::fdo::DBusProxy;
use zbus::message::Header;
use zbus::names::BusName;

/// The calling user, or a sentence saying why it cannot be known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
    /// The user's name from `/etc/passwd`; `None` when it has none there.
    pub name: Option<String>,
}

impl Caller {
    /// `operator:NAME` (`operator:uid-N` when the user has no name here), for audit logs.
    pub fn operator(&self) -> String {
        match &self.name {
            Some(name) => format!("operator:{name}"),
            None => format!("operator:uid-{}", self.uid),
        }
    }

    /// The user's name, or `uid-N`.
    pub fn user(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("uid-{}", self.uid))
    }
}

/// The caller of the message `header` belongs to, asked of the bus daemon on `connection`.
pub async fn caller(connection: &zbus::Connection, header: &Header<'_>) -> Result<Caller, String> {
    let sender = header
        .sender()
        .ok_or_else(|| "the call carries no sender".to_owned())?;
    let unknown = |e: zbus::fdo::Error| format!("cannot tell who is calling: {e}");
    let bus = DBusProxy::new(connection)
        .await
        .map_err(|e| unknown(e.into()))?;
    let uid = bus
        .get_connection_unix_user(BusName::from(sender.to_owned()))
        .await
        .map_err(unknown)?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Ok(Caller {
        uid,
        name: user_name(uid, &passwd),
    })
}

/// The name of `uid` in a passwd file's text.
pub fn user_name(uid: u32, passwd: &str) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let entry_uid = fields.nth(1)?;
        (entry_uid.parse::<u32>().ok()? == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(uid: u32, passwd: &str) -> String {
        Caller {
            uid,
            name: user_name(uid, passwd),
        }
        .operator()
    }

    #[test]
    fn the_actor_is_named_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(named(0, passwd), "operator:root");
        assert_eq!(named(1000, passwd), "operator:alice");
        assert_eq!(named(1001, passwd), "operator:uid-1001");
        assert_eq!(named(7, "broken line\n::7:\n"), "operator:uid-7");
    }
}
