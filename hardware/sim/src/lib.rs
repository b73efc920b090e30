//! Simulated hardware for BunkerOS tests and for the QEMU profile, where the real devices cannot
//! be: ASIC miners that answer the cgminer API like real firmware and mine real (tiny-difficulty)
//! shares over Stratum V1, a Stratum V1 test pool that validates and counts every share, and an
//! EMP-shielded site's sensors and relays as Modbus TCP devices driven by a physical model.
//! Only the hardware is simulated: the protocols, reply shapes and faults are the real ones.

pub mod control;
pub mod fleet;
pub mod miner;
pub mod pool;
pub mod site;
pub mod stratum_client;
