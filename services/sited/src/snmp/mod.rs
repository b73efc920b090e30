//! The SNMP v2c driver for PDUs and environmental probes (temperature, humidity, door and
//! leak contacts on an APC NetBotz, a Raritan or Eaton PDU, any agent with numeric OIDs).
//!
//! - [`settings`]: the agent (address, community, period, deadline, retries) and its `[[oid]]`
//!   sensors, checked by `validate()`;
//! - [`agent`]: one GET, one attempt, over UDP with snmp2's codec: the values, or why none
//!   (timeout, unreachable, an error-status, a malformed answer);
//! - [`poller`]: one task per agent, GETting every OID each poll period in bounded batches and
//!   sending [`crate::sensor::SensorEvent`]s: a sample, or the sensor lost with the reason.

pub mod agent;
pub mod poller;
pub mod settings;

pub use poller::SnmpPoller;
pub use settings::{OidSensor, SnmpSettings};
