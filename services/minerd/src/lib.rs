//! minerd: mining orchestration for a site of 1,000+ ASIC miners (see `DESIGN.md`).
//!
//! Built bottom up: the protocol layers first, each parsing untrusted input from the network
//! into typed values with a clear error, and fuzzed (`make fuzz`). So far:
//! - [`cgminer`]: the miner drivers' API on TCP 4028 (cgminer, bmminer, BOSminer): requests,
//!   quirk-tolerant reply parsing, one normalised `MinerSnapshot`, and a bounded async client.
//! - [`stratum`]: Stratum V1 between miners, the proxy and pools: bounded line parsing into typed
//!   messages both ways, and validation of every share (header rebuilt, double SHA-256 against
//!   the share and network targets, job, ntime, version mask, duplicates).

pub mod cgminer;
pub mod config;
pub mod curtailment;
pub mod curtailment_driver;
pub mod daemon;
pub mod directory;
pub mod discovery;
pub mod fleet_metrics;
pub mod hijack;
pub mod hijack_guard;
pub mod inventory;
pub mod mining1;
pub mod operations;
pub mod proxy;
pub mod site_alarms;
pub mod site_layout;
pub mod snapshot;
pub mod stratum;
pub mod telemetry;
