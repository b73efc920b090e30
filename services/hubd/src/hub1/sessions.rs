//! The session documents of `org.bunkeros.Hub1`: `Sessions()` and `SessionPath(session)`,
//! built from the [`SessionTable`] the forwarding keeps (live sessions, then the last ended).

use std::time::SystemTime;

use serde_json::{Value, json};

use super::documents::rfc3339;
use crate::advertisement::Timestamp;
use crate::circuit::Hop;
use crate::forwarding::{SessionRecord, SessionTable};
use crate::session_id::SessionId;

/// Why `SessionPath` has nothing to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionPathRefused {
    /// The text is not a session id.
    #[error("{0}")]
    NotASessionId(String),
    /// No such session, live or among the last ended.
    #[error("no session {0} here (live, or among the last {count} ended)", count = crate::forwarding::sessions::ENDED_KEPT)]
    NotFound(SessionId),
}

/// `Sessions()`: every session, live first, as a JSON array of [`summary`]s.
pub fn sessions(table: &SessionTable) -> Value {
    Value::Array(table.list().iter().map(summary).collect())
}

/// `SessionPath(session)`: the session and the hubs it crosses now, each with its jurisdiction,
/// previous and next hop and when it took the circuit on; `verified` says whether they were
/// proven by transit receipts (at the source) or are the route as announced (at the
/// destination, which gets no receipts).
pub fn session_path(table: &SessionTable, session: &str) -> Result<Value, SessionPathRefused> {
    let id: SessionId = session
        .parse()
        .map_err(|error: crate::session_id::SessionIdError| {
            SessionPathRefused::NotASessionId(error.to_string())
        })?;
    let record = table.get(&id).ok_or(SessionPathRefused::NotFound(id))?;
    let mut document = summary(&record);
    document["hops"] = Value::Array(record.hops.iter().map(hop).collect());
    Ok(document)
}

/// One session: `id`, `service`, `role` (`source`, `destination`), `peer` (the hub at the other
/// end), `state` (`live` or how it ended), `circuits`, `started`, `verified`, `path` (hub ids,
/// source first) and `jurisdictions` (those the path crosses, in order, once each).
fn summary(record: &SessionRecord) -> Value {
    let mut jurisdictions: Vec<String> = Vec::new();
    for hop in &record.hops {
        let code = hop.jurisdiction.to_string();
        if jurisdictions.last() != Some(&code) && !jurisdictions.contains(&code) {
            jurisdictions.push(code);
        }
    }
    json!({
        "id": record.id.to_string(),
        "service": record.service.as_str(),
        "role": record.role.as_str(),
        "peer": record.peer.as_str(),
        "state": record.ended.clone().unwrap_or_else(|| "live".to_owned()),
        "circuits": record.circuits,
        "started": rfc3339(Timestamp::from(record.started)),
        "verified": record.verified,
        "path": record.hops.iter().map(|hop| hop.hub.as_str()).collect::<Vec<_>>(),
        "jurisdictions": jurisdictions,
    })
}

fn hop(hop: &Hop) -> Value {
    let epoch = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(hop.epoch);
    json!({
        "hub": hop.hub.as_str(),
        "jurisdiction": hop.jurisdiction.to_string(),
        "country": hop.jurisdiction.name(),
        "previous": hop.previous.as_ref().map(|hub| hub.as_str()),
        "next": hop.next.as_ref().map(|hub| hub.as_str()),
        "since": rfc3339(Timestamp::from(epoch)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forwarding::SessionRole;
    use crate::grant::ServiceName;
    use crate::testing::{country, hub};

    fn hops() -> Vec<Hop> {
        let ids = ["malaga-1", "lisbon-1", "sao-paulo-1"];
        let codes = ["ES", "PT", "BR"];
        (0..3)
            .map(|i| Hop {
                hub: hub(ids[i]),
                jurisdiction: country(codes[i]),
                previous: i.checked_sub(1).map(|p| hub(ids[p])),
                next: ids.get(i + 1).map(|id| hub(id)),
                epoch: 1_795_000_000,
            })
            .collect()
    }

    fn record(id: SessionId) -> SessionRecord {
        SessionRecord {
            id,
            service: ServiceName::parse("ledger").unwrap(),
            role: SessionRole::Source,
            peer: hub("sao-paulo-1"),
            hops: hops(),
            verified: true,
            circuits: 2,
            started: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000),
            ended: None,
        }
    }

    #[test]
    fn a_session_and_its_proven_path() {
        let table = SessionTable::default();
        let id = SessionId::random();
        table.start(record(id), None);
        let listed = sessions(&table);
        assert_eq!(listed[0]["id"], id.to_string());
        assert_eq!(listed[0]["state"], "live");
        assert_eq!(
            listed[0]["path"],
            json!(["malaga-1", "lisbon-1", "sao-paulo-1"])
        );
        assert_eq!(listed[0]["jurisdictions"], json!(["ES", "PT", "BR"]));
        let path = session_path(&table, &id.to_string()).unwrap();
        assert_eq!(path["verified"], true);
        assert_eq!(path["circuits"], 2);
        assert_eq!(path["hops"][1]["hub"], "lisbon-1");
        assert_eq!(path["hops"][1]["country"], "Portugal");
        assert_eq!(path["hops"][1]["previous"], "malaga-1");
        assert_eq!(path["hops"][1]["next"], "sao-paulo-1");
        assert_eq!(path["hops"][0]["previous"], Value::Null);
        assert_eq!(path["started"], "2026-11-18T11:06:40Z");

        table.end(&id, "closed".into());
        assert_eq!(
            session_path(&table, &id.to_string()).unwrap()["state"],
            "closed"
        );
    }

    #[test]
    fn unknown_and_malformed_sessions_are_refused() {
        let table = SessionTable::default();
        let unknown = SessionId::random();
        assert_eq!(
            session_path(&table, &unknown.to_string()),
            Err(SessionPathRefused::NotFound(unknown))
        );
        assert!(matches!(
            session_path(&table, "not-a-session"),
            Err(SessionPathRefused::NotASessionId(_))
        ));
    }
}
