//! The cgminer-style miner API on TCP 4028, spoken by cgminer, bmminer (stock Antminer) and BOSminer.
//!
//! Data walks one way: a typed [`Request`] is encoded to bytes, the [`client`] sends it over one
//! connection and reads the reply under a deadline and a size bound, [`reply`] turns the untrusted
//! bytes into per-command [`Section`]s (stripping the quirks real firmware emits), and
//! [`snapshot`] normalises those sections into one [`MinerSnapshot`] whatever the firmware.

pub mod client;
pub mod reply;
pub mod request;
pub mod snapshot;

pub use client::{ClientConfig, ClientError, query};
pub use reply::{MAX_REPLY_BYTES, Reply, ReplyError, Section, Status, StatusKind, parse_reply};
pub use request::{Command, Request, RequestError};
pub use snapshot::{
    FirmwareKind, Hashboard, Hashrate, LastShare, MinerSnapshot, PoolState, PoolStatus,
};
