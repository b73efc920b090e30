//! Stratum's error codes and the error a response carries. Typed, so that share validation
//! maps each reject reason to the code miners and pools expect, and a pool's rejection read
//! upstream can be accounted by kind (stale, duplicate, low difficulty).

use serde_json::{Value, json};

use super::message::MessageError;

/// Stratum's error codes (the slush pool convention, used by every pool and miner firmware).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StratumErrorCode {
    /// 20: anything else, including malformed requests.
    Other,
    /// 21: job not found, or stale (the job was cleaned).
    JobNotFound,
    /// 22: the same share was already submitted.
    DuplicateShare,
    /// 23: the hash does not meet the share target.
    LowDifficulty,
    /// 24: the worker is not authorized.
    UnauthorizedWorker,
    /// 25: the connection has not subscribed.
    NotSubscribed,
    /// A code outside 20–25 some pools send (e.g. -1); kept so it can be relayed.
    Unknown(i64),
}

impl StratumErrorCode {
    pub fn code(self) -> i64 {
        match self {
            Self::Other => 20,
            Self::JobNotFound => 21,
            Self::DuplicateShare => 22,
            Self::LowDifficulty => 23,
            Self::UnauthorizedWorker => 24,
            Self::NotSubscribed => 25,
            Self::Unknown(code) => code,
        }
    }

    pub fn from_code(code: i64) -> Self {
        match code {
            20 => Self::Other,
            21 => Self::JobNotFound,
            22 => Self::DuplicateShare,
            23 => Self::LowDifficulty,
            24 => Self::UnauthorizedWorker,
            25 => Self::NotSubscribed,
            other => Self::Unknown(other),
        }
    }

    /// The conventional message text for the code.
    pub fn default_message(self) -> &'static str {
        match self {
            Self::Other | Self::Unknown(_) => "Other/Unknown",
            Self::JobNotFound => "Job not found",
            Self::DuplicateShare => "Duplicate share",
            Self::LowDifficulty => "Low difficulty share",
            Self::UnauthorizedWorker => "Unauthorized worker",
            Self::NotSubscribed => "Not subscribed",
        }
    }
}

/// An error as carried in a response: `[code, "message", traceback]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StratumError {
    pub code: StratumErrorCode,
    pub message: String,
}

impl StratumError {
    pub fn new(code: StratumErrorCode) -> Self {
        StratumError {
            code,
            message: code.default_message().to_string(),
        }
    }

    pub(super) fn to_json(&self) -> Value {
        json!([self.code.code(), self.message, null])
    }

    /// Pools send the array form; a few send `{"code":…,"message":…}`; both are read.
    pub(super) fn from_json(value: &Value) -> Result<StratumError, MessageError> {
        let bad = |reason: &str| MessageError::BadParams {
            method: "error",
            reason: reason.to_string(),
        };
        let (code, message) = match value {
            Value::Array(items) => (items.first(), items.get(1)),
            Value::Object(map) => (map.get("code"), map.get("message")),
            _ => return Err(bad("not an array or object")),
        };
        let code = code
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("code is not an integer"))?;
        let message = match message {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(_) => return Err(bad("message is not a string")),
        };
        Ok(StratumError {
            code: StratumErrorCode::from_code(code),
            message,
        })
    }
}
