//! One GET to the agent and what came back, value by value.
//!
//! Each attempt uses a fresh [`snmp2::AsyncSession`] (a fresh UDP socket, a fresh request id):
//! an answer that arrives after its attempt timed out then goes to a closed port instead of
//! being read as the answer to the next request. snmp2 checks the answer's PDU type, request id
//! and community; anything else that arrives (garbage, another request's id) fails the attempt
//! as malformed and is never taken for the answer.

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use snmp2::{AsyncSession, Oid};

use crate::sensor::LostReason;

/// Why a GET brought back no values.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Failure {
    #[error("no answer within the deadline")]
    Timeout,
    /// The agent's host refused the datagrams (ICMP port unreachable: nothing listens there).
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The agent answered with a non-zero error-status.
    #[error("the agent answered {0}")]
    Refused(String),
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl Failure {
    pub fn lost_reason(&self) -> LostReason {
        match self {
            Failure::Timeout => LostReason::Timeout,
            Failure::Unreachable(detail) => LostReason::Unreachable {
                detail: detail.clone(),
            },
            Failure::Refused(detail) => LostReason::Refused {
                detail: detail.clone(),
            },
            Failure::Malformed(detail) => LostReason::Malformed {
                detail: detail.clone(),
            },
        }
    }

    /// Whether the agent is out of reach, so the poll's other requests would fail the same way.
    pub fn agent_gone(&self) -> bool {
        matches!(self, Failure::Timeout | Failure::Unreachable(_))
    }
}

/// One variable's value as the agent gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// INTEGER, Counter32, Gauge32/Unsigned32, TimeTicks or Counter64.
    Integer(i128),
    /// An OCTET STRING holding a decimal number (UCD's `laLoad` is "0.15").
    Decimal(f64),
    /// noSuchObject, noSuchInstance or endOfMibView.
    Absent(&'static str),
    /// A value of a type that is no number (an IP address, an OID, text).
    NotANumber(String),
}

/// The name of an SNMP v2 error-status (RFC 3416).
pub fn error_status_name(status: u32) -> String {
    const NAMES: [&str; 19] = [
        "noError",
        "tooBig",
        "noSuchName",
        "badValue",
        "readOnly",
        "genErr",
        "noAccess",
        "wrongType",
        "wrongLength",
        "wrongEncoding",
        "wrongValue",
        "noCreation",
        "inconsistentValue",
        "resourceUnavailable",
        "commitFailed",
        "undoFailed",
        "authorizationError",
        "notWritable",
        "inconsistentName",
    ];
    match NAMES.get(status as usize) {
        Some(name) => format!("error-status {name}"),
        None => format!("error-status {status}"),
    }
}

/// A request id no recent attempt used: the attempts of this process count up from a point
/// taken from the clock, so a restarted sited does not reuse the ids of the previous run.
fn next_request_id() -> i32 {
    static NEXT: AtomicI32 = AtomicI32::new(0);
    let _ = NEXT.compare_exchange(
        0,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|t| (t.subsec_nanos() & 0x3fff_ffff) as i32 | 1)
            .unwrap_or(1),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    NEXT.fetch_add(1, Ordering::Relaxed) & i32::MAX
}

/// GETs `oids` (at most one request's worth) from the agent at `address` in one attempt bounded
/// by `deadline`; the readings come in the order of `oids`.
pub async fn get(
    address: &str,
    community: &[u8],
    oids: &[Oid<'static>],
    deadline: Duration,
) -> Result<Vec<Reading>, Failure> {
    let exchange = async {
        let mut session = AsyncSession::new_v2c(address, community, next_request_id())
            .await
            .map_err(|e| Failure::Unreachable(format!("{address}: {e}")))?;
        let oid_refs: Vec<&Oid<'_>> = oids.iter().collect();
        let answer = session.get_many(&oid_refs).await.map_err(|e| match e {
            snmp2::Error::Send => {
                Failure::Unreachable(format!("the request to {address} could not be sent"))
            }
            // On a connected UDP socket this is the host's ICMP "port unreachable".
            snmp2::Error::Receive => Failure::Unreachable(format!(
                "{address} refuses SNMP datagrams (nothing listens on the port)"
            )),
            other => Failure::Malformed(format!("{other}")),
        })?;
        read_answer(answer, oids)
    };
    match tokio::time::timeout(deadline, exchange).await {
        Ok(result) => result,
        Err(_) => Err(Failure::Timeout),
    }
}

/// Decodes a datagram as the answer to a GET of `oids` with `request_id` and `community`, as
/// [`get`] does (snmp2's parser, then the same checks): the fuzz target `snmp_answer` drives it.
pub fn decode_answer(
    datagram: &[u8],
    request_id: i32,
    community: &[u8],
    oids: &[Oid<'static>],
) -> Result<Vec<Reading>, Failure> {
    let answer = snmp2::Pdu::from_bytes(datagram).map_err(|e| Failure::Malformed(e.to_string()))?;
    if answer.message_type != snmp2::MessageType::Response {
        return Err(Failure::Malformed(format!(
            "a {:?}, not a Response",
            answer.message_type
        )));
    }
    if answer.req_id != request_id || answer.community != community {
        return Err(Failure::Malformed("not the answer to this request".into()));
    }
    read_answer(answer, oids)
}

/// The values of an answer matched to our request (type, request id, community): the
/// error-status must be zero and the variables must be exactly the ones asked for, in order.
fn read_answer(answer: snmp2::Pdu<'_>, oids: &[Oid<'static>]) -> Result<Vec<Reading>, Failure> {
    if answer.error_status != 0 {
        let at = (answer.error_index as usize)
            .checked_sub(1)
            .and_then(|i| oids.get(i))
            .map(|oid| format!(" for {}", oid.to_id_string()))
            .unwrap_or_default();
        return Err(Failure::Refused(format!(
            "{}{at}",
            error_status_name(answer.error_status)
        )));
    }
    let mut readings = Vec::with_capacity(oids.len());
    // snmp2's iterator stops at a value it cannot decode; the count check below catches that.
    for (i, (oid, value)) in answer.varbinds.enumerate() {
        match oids.get(i) {
            Some(asked) if *asked == oid => readings.push(reading(value)),
            Some(asked) => {
                return Err(Failure::Malformed(format!(
                    "variable {} is {oid}, asked for {}",
                    i + 1,
                    asked.to_id_string()
                )));
            }
            None => {
                return Err(Failure::Malformed(format!(
                    "more variables than the {} asked for",
                    oids.len()
                )));
            }
        }
    }
    if readings.len() != oids.len() {
        return Err(Failure::Malformed(format!(
            "{} readable variables for the {} asked for",
            readings.len(),
            oids.len()
        )));
    }
    Ok(readings)
}

fn reading(value: snmp2::Value<'_>) -> Reading {
    use snmp2::Value as V;
    match value {
        V::Integer(n) => Reading::Integer(n.into()),
        V::Counter32(n) | V::Unsigned32(n) | V::Timeticks(n) => Reading::Integer(n.into()),
        V::Counter64(n) => Reading::Integer(n.into()),
        V::OctetString(bytes) => match std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| text.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite())
        {
            Some(n) => Reading::Decimal(n),
            None => Reading::NotANumber(format!(
                "an OCTET STRING that is no number ({} bytes)",
                bytes.len()
            )),
        },
        V::NoSuchObject => Reading::Absent("noSuchObject"),
        V::NoSuchInstance => Reading::Absent("noSuchInstance"),
        V::EndOfMibView => Reading::Absent("endOfMibView"),
        other => Reading::NotANumber(format!("{other:?}")),
    }
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
