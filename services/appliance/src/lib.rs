//! `appliance`: the library every BunkerOS service is built on.
//!
//! One module per concern, so a service's `main.rs` only wires them together:
//! configuration ([`config`]), the hardware profile ([`profile`]), systemd integration
//! ([`systemd`]: readiness, status, watchdog, graceful stop), D-Bus ([`dbus`]), atomic state
//! files ([`state`]), logging ([`logging`]), the loopback Prometheus endpoint ([`metrics`]),
//! mutual TLS ([`tls`]), the list of BunkerOS units ([`units`]) and the site's state as `sited`
//! publishes it ([`site_watch`]), and the hash-chained audit log of state-changing actions
//! ([`audit_log`]).

pub mod audit_log;
pub mod config;
pub mod dbus;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod profile;
pub mod site_watch;
pub mod state;
pub mod systemd;
#[cfg(feature = "test-support")]
pub mod testdaemon;
#[cfg(any(test, feature = "test-support"))]
pub mod testtpm;
#[cfg(feature = "test-support")]
pub mod testtrustd;
pub mod time_text;
pub mod tls;
pub mod units;
