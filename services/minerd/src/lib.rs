//! minerd: mining orchestration for a site of 1,000+ ASIC miners (see `DESIGN.md`).
//!
//! Built bottom up: the protocol layers first, each parsing untrusted input from the network
//! into typed values with a clear error, and fuzzed (`make fuzz`). So far:
//! - [`cgminer`]: the miner drivers' API on TCP 4028 (cgminer, bmminer, BOSminer): requests,
//!   quirk-tolerant reply parsing, one normalised `MinerSnapshot`, and a bounded async client.

pub mod cgminer;
