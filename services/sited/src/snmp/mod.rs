//! The SNMP v2c driver for PDUs and environmental probes (temperature, humidity, door and
//! leak contacts on an APC NetBotz, a Raritan or Eaton PDU, any agent with numeric OIDs).
//!
//! - [`settings`]: the agent (address, community, period, deadline, retries, OIDs per GET) and
//!   its `[[oid]]` sensors (scale, unit, range, or the integers that mean a contact is active),
//!   checked by `validate()`;
//! - [`agent`]: one GET, one attempt, on a fresh UDP socket with snmp2's codec: the values, or
//!   why none;
//! - [`poller`]: one task per agent, GETting every OID each poll period in bounded batches and
//!   sending [`crate::sensor::SensorEvent`]s: a sample, or the sensor lost with the reason.
//!
//! Why a sensor is lost: `Timeout` (no answer within the deadline after the retries: a silent
//! agent, or a wrong community, which agents drop without a word); `Unreachable` (the agent's
//! host answers ICMP port unreachable: nothing listens); `Refused` (an error-status for the
//! whole GET, or noSuchObject / noSuchInstance / endOfMibView for that one sensor);
//! `Malformed` (not a valid answer to this request: garbage, another request id or community,
//! variables other than those asked for, a value that is no number); `OutOfRange` (the scaled
//! value outside the sensor's `min..=max`).

pub mod agent;
pub mod poller;
pub mod settings;

pub use poller::SnmpPoller;
pub use settings::{OidSensor, SnmpSettings};
