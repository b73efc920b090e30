//! Requests as the firmware reads them off the socket: JSON `{"command":"summary+pools",
//! "parameter":"…"}` or cgminer's text form `summary`, `switchpool|1`. Untrusted bytes: a
//! request that is neither gets a typed error, which the API answers like cgminer does.

use serde_json::Value;

/// The largest request the API reads; real requests are a few hundred bytes (addpool).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiRequest {
    /// The command names, lower-cased, in request order (`+` joins several).
    pub commands: Vec<String>,
    pub parameter: Option<String>,
}

impl ApiRequest {
    pub fn is_joined(&self) -> bool {
        self.commands.len() > 1
    }

    /// The parameter split on unescaped commas, with cgminer's `\,` and `\\` escapes undone.
    pub fn parameter_fields(&self) -> Vec<String> {
        let Some(p) = &self.parameter else {
            return Vec::new();
        };
        let mut fields = vec![String::new()];
        let mut chars = p.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(next) = chars.next() {
                        fields.last_mut().expect("never empty").push(next);
                    }
                }
                ',' => fields.push(String::new()),
                other => fields.last_mut().expect("never empty").push(other),
            }
        }
        fields
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("empty request")]
    Empty,
    #[error("request is JSON but has no string \"command\"")]
    NoCommand,
    #[error("request is not valid JSON: {0}")]
    BadJson(String),
}

/// Whether `bytes` hold a whole request yet: JSON is complete when it parses; text is read in
/// one go, as cgminer's single `recv` does, and ends at a newline or NUL if the client sent one.
pub fn is_complete(bytes: &[u8]) -> bool {
    let trimmed = trim(bytes);
    if trimmed.first() == Some(&b'{') {
        serde_json::from_slice::<Value>(trimmed).is_ok()
    } else {
        !trimmed.is_empty()
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace() && *b != 0)
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace() && *b != 0)
        .map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

pub fn parse(bytes: &[u8]) -> Result<ApiRequest, RequestError> {
    let trimmed = trim(bytes);
    if trimmed.is_empty() {
        return Err(RequestError::Empty);
    }
    if trimmed[0] == b'{' {
        parse_json(trimmed)
    } else {
        Ok(parse_text(&String::from_utf8_lossy(trimmed)))
    }
}

fn parse_json(bytes: &[u8]) -> Result<ApiRequest, RequestError> {
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| RequestError::BadJson(e.to_string()))?;
    let command = value
        .get("command")
        .and_then(Value::as_str)
        .ok_or(RequestError::NoCommand)?;
    // pyasic sends numbers as JSON numbers (`"parameter": 1`); cgminer takes either.
    let parameter = match value.get("parameter") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(b.to_string()),
        _ => None,
    };
    Ok(ApiRequest {
        commands: split_commands(command),
        parameter,
    })
}

fn parse_text(text: &str) -> ApiRequest {
    let line = text.lines().next().unwrap_or_default();
    let (command, parameter) = match line.split_once('|') {
        Some((c, p)) => (c, Some(p.to_string())),
        None => (line, None),
    };
    ApiRequest {
        commands: split_commands(command),
        parameter,
    }
}

fn split_commands(field: &str) -> Vec<String> {
    field
        .split('+')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect()
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
