//! Stratum V1 messages: one JSON-RPC object per line. Every line comes from the network (a miner
//! or a pool), so parsing is bounded (`MAX_LINE_LEN`, checked before any JSON is read) and
//! total: anything unexpected becomes a `MessageError`, which the session answers with error 20.

use serde_json::{Map, Value, json};

pub use super::error_code::{StratumError, StratumErrorCode};
use super::line::MAX_LINE_LEN;

/// The longest extranonce (1 or 2) accepted; pools use 2 to 8 bytes.
const MAX_EXTRANONCE_LEN: usize = 32;

/// Why a line is not a message we accept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessageError {
    #[error("line of {len} bytes exceeds the limit of {max}")]
    LineTooLong { len: usize, max: usize },
    #[error("line is not valid JSON: {0}")]
    Json(String),
    #[error("message is not a JSON object")]
    NotAnObject,
    #[error("message id must be a number, a string or null")]
    BadId,
    #[error("message has neither a method nor a result")]
    NoMethod,
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    #[error("bad params for {method}: {reason}")]
    BadParams {
        method: &'static str,
        reason: String,
    },
    #[error("bad hex in {field}: {reason}")]
    BadHex { field: &'static str, reason: String },
}

/// A JSON-RPC id. Miners use numbers; some use strings. Notifications carry `null` (`None`
/// where an `Option<RequestId>` appears).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RequestId {
    Number(u64),
    Text(String),
}

impl RequestId {
    fn to_json(id: Option<&RequestId>) -> Value {
        match id {
            None => Value::Null,
            Some(RequestId::Number(n)) => json!(n),
            Some(RequestId::Text(s)) => json!(s),
        }
    }

    fn from_json(value: Option<&Value>) -> Result<Option<RequestId>, MessageError> {
        match value {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|n| Some(RequestId::Number(n)))
                .ok_or(MessageError::BadId),
            Some(Value::String(s)) => Ok(Some(RequestId::Text(s.clone()))),
            Some(_) => Err(MessageError::BadId),
        }
    }
}

/// BIP 310 version-rolling parameters a miner asks for in `mining.configure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRollingRequest {
    pub mask: u32,
    pub min_bit_count: u32,
}

/// A `mining.submit`: one share. `extranonce2` is checked against the negotiated size when the
/// share is validated, since the parser does not know the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    pub worker: String,
    pub job_id: String,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    /// BIP 310: the rolled version bits, present once version rolling was negotiated.
    pub version_bits: Option<u32>,
}

/// What a miner (or the proxy, toward a pool) asks.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientRequest {
    Subscribe {
        user_agent: Option<String>,
        session_id: Option<String>,
    },
    Authorize {
        worker: String,
        password: String,
    },
    Configure {
        extensions: Vec<String>,
        version_rolling: Option<VersionRollingRequest>,
    },
    Submit(Submit),
    ExtranonceSubscribe,
    SuggestDifficulty(f64),
}

/// A request with its id; requests must have one, since the answer is matched to it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientMessage {
    pub id: RequestId,
    pub request: ClientRequest,
}

/// A `mining.notify`: a job. Hex fields are decoded here; the byte order of `prevhash` is kept as
/// on the wire (Stratum's word-swapped form) and undone when the header is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub job_id: String,
    pub prevhash: [u8; 32],
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    pub merkle_branch: Vec<[u8; 32]>,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    pub clean_jobs: bool,
}

/// What a pool (or the proxy, toward a miner) sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    Notify(Notify),
    SetDifficulty(f64),
    SetVersionMask(u32),
    SetExtranonce {
        extranonce1: Vec<u8>,
        extranonce2_size: usize,
    },
    /// The answer to a request: its result, or an error. The result's shape depends on the
    /// request (see `SubscribeResult`, `ConfigureResult`), which only the session knows.
    Response {
        id: Option<RequestId>,
        outcome: Result<Value, StratumError>,
    },
}

/// The result of `mining.subscribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeResult {
    pub subscriptions: Vec<(String, String)>,
    pub extranonce1: Vec<u8>,
    pub extranonce2_size: usize,
}

/// The result of `mining.configure`: the version-rolling mask granted, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigureResult {
    pub version_rolling_mask: Option<u32>,
}

impl ClientMessage {
    /// Parses one line from a miner (without or with its trailing newline).
    pub fn parse(line: &[u8]) -> Result<ClientMessage, MessageError> {
        let object = parse_object(line)?;
        let id = RequestId::from_json(object.get("id"))?.ok_or(MessageError::BadId)?;
        let method = match object.get("method") {
            Some(Value::String(m)) => m.as_str(),
            _ => return Err(MessageError::NoMethod),
        };
        let empty = Vec::new();
        let params = match object.get("params") {
            Some(Value::Array(p)) => p,
            None | Some(Value::Null) => &empty,
            Some(_) => {
                return Err(MessageError::BadParams {
                    method: "params",
                    reason: "not an array".into(),
                });
            }
        };
        let request = match method {
            "mining.subscribe" => parse_subscribe(params)?,
            "mining.authorize" => parse_authorize(params)?,
            "mining.configure" => parse_configure(params)?,
            "mining.submit" => ClientRequest::Submit(parse_submit(params)?),
            "mining.extranonce.subscribe" => ClientRequest::ExtranonceSubscribe,
            "mining.suggest_difficulty" => {
                let d = params
                    .first()
                    .and_then(Value::as_f64)
                    .filter(|d| d.is_finite() && *d > 0.0);
                ClientRequest::SuggestDifficulty(d.ok_or_else(|| {
                    params_error("mining.suggest_difficulty", "not a positive number")
                })?)
            }
            other => return Err(MessageError::UnknownMethod(truncate(other))),
        };
        Ok(ClientMessage { id, request })
    }

    /// Encodes as one line, newline included.
    pub fn encode(&self) -> String {
        let (method, params) = match &self.request {
            ClientRequest::Subscribe {
                user_agent,
                session_id,
            } => {
                // Positional: a session id without a user agent needs a null before it.
                let params = match (user_agent, session_id) {
                    (None, None) => json!([]),
                    (Some(ua), None) => json!([ua]),
                    (ua, Some(id)) => json!([ua, id]),
                };
                ("mining.subscribe", params)
            }
            ClientRequest::Authorize { worker, password } => {
                ("mining.authorize", json!([worker, password]))
            }
            ClientRequest::Configure {
                extensions,
                version_rolling,
            } => {
                let mut options = Map::new();
                if let Some(vr) = version_rolling {
                    options.insert(
                        "version-rolling.mask".into(),
                        json!(format!("{:08x}", vr.mask)),
                    );
                    options.insert(
                        "version-rolling.min-bit-count".into(),
                        json!(vr.min_bit_count),
                    );
                }
                ("mining.configure", json!([extensions, options]))
            }
            ClientRequest::Submit(s) => {
                let mut p = vec![
                    json!(s.worker),
                    json!(s.job_id),
                    json!(hex::encode(&s.extranonce2)),
                    json!(format!("{:08x}", s.ntime)),
                    json!(format!("{:08x}", s.nonce)),
                ];
                if let Some(v) = s.version_bits {
                    p.push(json!(format!("{v:08x}")));
                }
                ("mining.submit", Value::Array(p))
            }
            ClientRequest::ExtranonceSubscribe => ("mining.extranonce.subscribe", json!([])),
            ClientRequest::SuggestDifficulty(d) => ("mining.suggest_difficulty", json!([d])),
        };
        let mut line =
            json!({"id": RequestId::to_json(Some(&self.id)), "method": method, "params": params})
                .to_string();
        line.push('\n');
        line
    }
}

impl ServerMessage {
    /// Parses one line from a pool (without or with its trailing newline).
    pub fn parse(line: &[u8]) -> Result<ServerMessage, MessageError> {
        let object = parse_object(line)?;
        let id = RequestId::from_json(object.get("id"))?;
        let method = match object.get("method") {
            Some(Value::String(m)) => Some(m.as_str()),
            None | Some(Value::Null) => None,
            Some(_) => return Err(MessageError::NoMethod),
        };
        let Some(method) = method else {
            return parse_response(id, &object);
        };
        let params = match object.get("params") {
            Some(Value::Array(p)) => p.as_slice(),
            _ => {
                return Err(MessageError::BadParams {
                    method: "params",
                    reason: "not an array".into(),
                });
            }
        };
        match method {
            "mining.notify" => Ok(ServerMessage::Notify(parse_notify(params)?)),
            "mining.set_difficulty" => {
                let d = params
                    .first()
                    .and_then(Value::as_f64)
                    .filter(|d| d.is_finite() && *d > 0.0);
                Ok(ServerMessage::SetDifficulty(d.ok_or_else(|| {
                    params_error("mining.set_difficulty", "not a positive number")
                })?))
            }
            "mining.set_version_mask" => Ok(ServerMessage::SetVersionMask(hex_u32(
                params.first(),
                "version mask",
            )?)),
            "mining.set_extranonce" => {
                let extranonce1 = hex_bytes(params.first(), "extranonce1", MAX_EXTRANONCE_LEN)?;
                let size = params
                    .get(1)
                    .and_then(Value::as_u64)
                    .filter(|&s| s as usize <= MAX_EXTRANONCE_LEN);
                let size = size.ok_or_else(|| {
                    params_error(
                        "mining.set_extranonce",
                        "extranonce2 size not an integer 0..=32",
                    )
                })?;
                Ok(ServerMessage::SetExtranonce {
                    extranonce1,
                    extranonce2_size: size as usize,
                })
            }
            other => Err(MessageError::UnknownMethod(truncate(other))),
        }
    }

    /// Encodes as one line, newline included.
    pub fn encode(&self) -> String {
        let value = match self {
            ServerMessage::Notify(n) => {
                let branch: Vec<String> = n.merkle_branch.iter().map(hex::encode).collect();
                notification(
                    "mining.notify",
                    json!([
                        n.job_id,
                        hex::encode(n.prevhash),
                        hex::encode(&n.coinb1),
                        hex::encode(&n.coinb2),
                        branch,
                        format!("{:08x}", n.version),
                        format!("{:08x}", n.nbits),
                        format!("{:08x}", n.ntime),
                        n.clean_jobs
                    ]),
                )
            }
            ServerMessage::SetDifficulty(d) => notification("mining.set_difficulty", json!([d])),
            ServerMessage::SetVersionMask(m) => {
                notification("mining.set_version_mask", json!([format!("{m:08x}")]))
            }
            ServerMessage::SetExtranonce {
                extranonce1,
                extranonce2_size,
            } => notification(
                "mining.set_extranonce",
                json!([hex::encode(extranonce1), extranonce2_size]),
            ),
            ServerMessage::Response { id, outcome } => {
                let id = RequestId::to_json(id.as_ref());
                match outcome {
                    Ok(result) => json!({"id": id, "result": result, "error": null}),
                    Err(e) => json!({"id": id, "result": null, "error": e.to_json()}),
                }
            }
        };
        let mut line = value.to_string();
        line.push('\n');
        line
    }

    /// A response to `id` with the given result.
    pub fn result(id: RequestId, result: Value) -> ServerMessage {
        ServerMessage::Response {
            id: Some(id),
            outcome: Ok(result),
        }
    }

    /// An error response to `id`; `id` is `None` when the request's own id was unreadable.
    pub fn error(id: Option<RequestId>, code: StratumErrorCode) -> ServerMessage {
        ServerMessage::Response {
            id,
            outcome: Err(StratumError::new(code)),
        }
    }
}

impl SubscribeResult {
    pub fn to_json(&self) -> Value {
        let subs: Vec<Value> = self
            .subscriptions
            .iter()
            .map(|(m, id)| json!([m, id]))
            .collect();
        json!([subs, hex::encode(&self.extranonce1), self.extranonce2_size])
    }

    pub fn from_json(value: &Value) -> Result<SubscribeResult, MessageError> {
        let bad = |reason: &str| params_error("mining.subscribe result", reason);
        let items = value.as_array().ok_or_else(|| bad("not an array"))?;
        let mut subscriptions = Vec::new();
        // Some pools send one [method, id] pair instead of a list of pairs.
        let subs = items
            .first()
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no subscription list"))?;
        let pairs: Vec<&Value> = if subs.first().is_some_and(Value::is_string) {
            vec![&items[0]]
        } else {
            subs.iter().collect()
        };
        for pair in pairs {
            match pair.as_array().map(Vec::as_slice) {
                Some([Value::String(m), Value::String(id)]) => {
                    subscriptions.push((m.clone(), id.clone()))
                }
                _ => return Err(bad("subscription is not a [method, id] pair")),
            }
        }
        let extranonce1 = hex_bytes(items.get(1), "extranonce1", MAX_EXTRANONCE_LEN)?;
        let size = items
            .get(2)
            .and_then(Value::as_u64)
            .filter(|&s| s as usize <= MAX_EXTRANONCE_LEN);
        let size = size.ok_or_else(|| bad("extranonce2 size not an integer 0..=32"))?;
        Ok(SubscribeResult {
            subscriptions,
            extranonce1,
            extranonce2_size: size as usize,
        })
    }
}

impl ConfigureResult {
    pub fn to_json(&self) -> Value {
        match self.version_rolling_mask {
            Some(mask) => {
                json!({"version-rolling": true, "version-rolling.mask": format!("{mask:08x}")})
            }
            None => json!({"version-rolling": false}),
        }
    }

    pub fn from_json(value: &Value) -> Result<ConfigureResult, MessageError> {
        let object = value
            .as_object()
            .ok_or_else(|| params_error("mining.configure result", "not an object"))?;
        let version_rolling_mask = match object.get("version-rolling") {
            Some(Value::Bool(true)) => Some(hex_u32(
                object.get("version-rolling.mask"),
                "version-rolling.mask",
            )?),
            _ => None,
        };
        Ok(ConfigureResult {
            version_rolling_mask,
        })
    }
}

fn parse_object(line: &[u8]) -> Result<Map<String, Value>, MessageError> {
    // The length is checked before serde sees the bytes, so a huge line costs nothing to refuse.
    if line.len() > MAX_LINE_LEN {
        return Err(MessageError::LineTooLong {
            len: line.len(),
            max: MAX_LINE_LEN,
        });
    }
    match serde_json::from_slice::<Value>(line) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(MessageError::NotAnObject),
        Err(e) => Err(MessageError::Json(e.to_string())),
    }
}

fn parse_response(
    id: Option<RequestId>,
    object: &Map<String, Value>,
) -> Result<ServerMessage, MessageError> {
    if !object.contains_key("result") && !object.contains_key("error") {
        return Err(MessageError::NoMethod);
    }
    let outcome = match object.get("error") {
        None | Some(Value::Null) => Ok(object.get("result").cloned().unwrap_or(Value::Null)),
        Some(error) => Err(StratumError::from_json(error)?),
    };
    Ok(ServerMessage::Response { id, outcome })
}

fn parse_subscribe(params: &[Value]) -> Result<ClientRequest, MessageError> {
    let text = |i: usize| -> Result<Option<String>, MessageError> {
        match params.get(i) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(params_error(
                "mining.subscribe",
                "user agent and session id must be strings",
            )),
        }
    };
    Ok(ClientRequest::Subscribe {
        user_agent: text(0)?,
        session_id: text(1)?,
    })
}

fn parse_authorize(params: &[Value]) -> Result<ClientRequest, MessageError> {
    let worker = match params.first() {
        Some(Value::String(w)) if !w.is_empty() => w.clone(),
        _ => return Err(params_error("mining.authorize", "worker name missing")),
    };
    // Many miners send no password or null; an absent one is an empty one.
    let password = match params.get(1) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(p)) => p.clone(),
        Some(_) => return Err(params_error("mining.authorize", "password is not a string")),
    };
    Ok(ClientRequest::Authorize { worker, password })
}

fn parse_configure(params: &[Value]) -> Result<ClientRequest, MessageError> {
    const M: &str = "mining.configure";
    let extensions = params
        .first()
        .and_then(Value::as_array)
        .ok_or_else(|| params_error(M, "extensions list missing"))?;
    let extensions = extensions
        .iter()
        .map(|e| {
            e.as_str()
                .map(str::to_string)
                .ok_or_else(|| params_error(M, "extension name is not a string"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let empty = Map::new();
    let options = match params.get(1) {
        Some(Value::Object(o)) => o,
        None | Some(Value::Null) => &empty,
        Some(_) => return Err(params_error(M, "options are not an object")),
    };
    let version_rolling = if extensions.iter().any(|e| e == "version-rolling") {
        let mask = hex_u32(options.get("version-rolling.mask"), "version-rolling.mask")?;
        let min_bit_count = match options.get("version-rolling.min-bit-count") {
            None => 0,
            Some(v) => v
                .as_u64()
                .filter(|&n| n <= 32)
                .ok_or_else(|| params_error(M, "min-bit-count is not 0..=32"))?
                as u32,
        };
        Some(VersionRollingRequest {
            mask,
            min_bit_count,
        })
    } else {
        None
    };
    Ok(ClientRequest::Configure {
        extensions,
        version_rolling,
    })
}

fn parse_submit(params: &[Value]) -> Result<Submit, MessageError> {
    const M: &str = "mining.submit";
    if !(5..=6).contains(&params.len()) {
        return Err(params_error(
            M,
            format!("expected 5 or 6 params, got {}", params.len()),
        ));
    }
    let string = |i: usize, what: &str| match &params[i] {
        Value::String(s) => Ok(s.clone()),
        _ => Err(params_error(M, format!("{what} is not a string"))),
    };
    Ok(Submit {
        worker: string(0, "worker")?,
        job_id: string(1, "job id")?,
        extranonce2: hex_bytes(Some(&params[2]), "extranonce2", MAX_EXTRANONCE_LEN)?,
        ntime: hex_u32(Some(&params[3]), "ntime")?,
        nonce: hex_u32(Some(&params[4]), "nonce")?,
        version_bits: params
            .get(5)
            .map(|v| hex_u32(Some(v), "version bits"))
            .transpose()?,
    })
}

fn parse_notify(params: &[Value]) -> Result<Notify, MessageError> {
    const M: &str = "mining.notify";
    if params.len() != 9 {
        return Err(params_error(
            M,
            format!("expected 9 params, got {}", params.len()),
        ));
    }
    let job_id = params[0]
        .as_str()
        .ok_or_else(|| params_error(M, "job id is not a string"))?
        .to_string();
    let prevhash = hex_array::<32>(&params[1], "prevhash")?;
    let coinb1 = hex_bytes(Some(&params[2]), "coinb1", MAX_LINE_LEN)?;
    let coinb2 = hex_bytes(Some(&params[3]), "coinb2", MAX_LINE_LEN)?;
    let branch = params[4]
        .as_array()
        .ok_or_else(|| params_error(M, "merkle branch is not an array"))?;
    let merkle_branch = branch
        .iter()
        .map(|h| hex_array::<32>(h, "merkle branch"))
        .collect::<Result<Vec<_>, _>>()?;
    let clean_jobs = params[8]
        .as_bool()
        .ok_or_else(|| params_error(M, "clean_jobs is not a boolean"))?;
    Ok(Notify {
        job_id,
        prevhash,
        coinb1,
        coinb2,
        merkle_branch,
        version: hex_u32(Some(&params[5]), "version")?,
        nbits: hex_u32(Some(&params[6]), "nbits")?,
        ntime: hex_u32(Some(&params[7]), "ntime")?,
        clean_jobs,
    })
}

fn notification(method: &str, params: Value) -> Value {
    json!({"id": null, "method": method, "params": params})
}

fn params_error(method: &'static str, reason: impl Into<String>) -> MessageError {
    MessageError::BadParams {
        method,
        reason: reason.into(),
    }
}

/// Method names are echoed in errors and logs; a hostile one is cut short.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

fn hex_bytes(
    value: Option<&Value>,
    field: &'static str,
    max: usize,
) -> Result<Vec<u8>, MessageError> {
    let bad = |reason: String| MessageError::BadHex { field, reason };
    let text = value
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing or not a string".into()))?;
    if text.len() > 2 * max {
        return Err(bad(format!(
            "{} hex digits, at most {} allowed",
            text.len(),
            2 * max
        )));
    }
    hex::decode(text).map_err(|e| bad(e.to_string()))
}

fn hex_array<const N: usize>(value: &Value, field: &'static str) -> Result<[u8; N], MessageError> {
    let bytes = hex_bytes(Some(value), field, N)?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| MessageError::BadHex {
        field,
        reason: format!("{len} bytes, expected {N}"),
    })
}

fn hex_u32(value: Option<&Value>, field: &'static str) -> Result<u32, MessageError> {
    let value = value.ok_or(MessageError::BadHex {
        field,
        reason: "missing".into(),
    })?;
    Ok(u32::from_be_bytes(hex_array::<4>(value, field)?))
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
