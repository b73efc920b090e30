//! Stratum V1, the protocol between miners, this proxy and the pools: newline-delimited
//! JSON-RPC messages framed (`line`) and parsed into typed values (`message`, `error_code`),
//! and the validation of every share a miner submits before it is forwarded or counted
//! (`share`, with the 256-bit arithmetic in `target`).
//!
//! Both directions are here because the proxy is a server to miners and a client to pools: it
//! parses what miners send and encodes what pools would send, and the reverse upstream.

pub mod error_code;
pub mod line;
pub mod message;
pub mod share;
pub mod target;

pub use error_code::{StratumError, StratumErrorCode};
pub use line::{LineBuffer, MAX_LINE_LEN};
pub use message::{
    ClientMessage, ClientRequest, ConfigureResult, MessageError, Notify, RequestId, ServerMessage,
    Submit, SubscribeResult, VersionRollingRequest,
};
pub use share::{Job, JobError, NtimeWindow, Session, ShareAccepted, ShareReject};
pub use target::Target;
