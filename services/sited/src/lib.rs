//! `sited`: watches the EMP-shielded site (power and UPS, cooling, shielding integrity, doors and
//! intrusion), raises alarms that need no uplink, and tells the other services what the site can
//! afford over `org.bunkeros.Site1`.
//!
//! How the pieces meet: every sensor driver turns what its bus says into [`sensor::SensorEvent`]s
//! (a sample, or the sensor lost and why); the rules read those events; everything else (alarms,
//! relays, the site state, the event log) follows from the rules.

pub mod budget;
pub mod catalogue;
pub mod daemon;
pub mod documents;
pub mod drivers;
pub mod hwmon;
pub mod modbus;
pub mod nut;
pub mod outputs;
pub mod relay_driver;
pub mod rules;
pub mod sensor;
pub mod sensor_table;
pub mod settings;
pub mod site1;
pub mod site_metrics;
pub mod site_model;
pub mod snmp;
pub mod uplink;
