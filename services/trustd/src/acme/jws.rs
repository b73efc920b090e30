//! ACME requests as JWS (RFC 7515 flattened JSON serialization, constrained by RFC 8555 §6.2).
//!
//! [`parse_jws`] turns request bytes into a [`Jws`] without touching any state, so it can be
//! fuzzed and so a refused request can never have changed anything. What it enforces, and why:
//! - the flattened serialization only, with no unprotected header: everything that steers the
//!   server (`alg`, `nonce`, `url`, the key) must be covered by the signature;
//! - `alg` among [`super::jwk::SUPPORTED_ALGORITHMS`] (never `none` or a MAC);
//! - exactly one of `jwk` (new accounts, certificate-key revocation) and `kid` (everything else),
//!   so the server never has to choose which key to believe;
//! - no `crit`: this server understands no JWS extension, and RFC 7515 says to refuse them;
//! - a payload that is empty (POST-as-GET) or a JSON object.
//!
//! Whether the nonce is fresh, the URL is the request's and the key is the account's is decided
//! by the service, which owns that state; [`Jws::verify`] checks the signature.

use serde::Deserialize;
use serde_json::Value;

use super::encoding::from_b64url;
use super::jwk::{AccountKey, JwsAlgorithm};
use super::problem::Problem;

/// Largest request body accepted: a JWS around an 8192-bit RSA CSR is under 8 KiB, so this
/// leaves ample room while bounding what a client can make the server parse.
pub const MAX_JWS_BYTES: usize = 64 * 1024;

/// Which key signed the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The key itself (`jwk`): newAccount, and revocation by the certificate's key.
    Key(AccountKey),
    /// The account URL (`kid`): every other request.
    Account(String),
}

/// The protected header, checked for RFC 8555's constraints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectedHeader {
    /// The signature algorithm.
    pub alg: JwsAlgorithm,
    /// The anti-replay nonce; absent only where RFC 8555 forbids it (inner key-change JWS).
    pub nonce: Option<String>,
    /// The URL the client meant to send the request to.
    pub url: String,
    /// Who signed.
    pub signer: Signer,
}

/// What the request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// An empty payload: POST-as-GET (RFC 8555 §6.3).
    Empty,
    /// A JSON object.
    Json(Value),
}

/// A parsed, not yet verified, JWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jws {
    /// The checked protected header.
    pub header: ProtectedHeader,
    /// The decoded payload.
    pub payload: Payload,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

/// The flattened JSON serialization, with the forbidden members spelled out so they get a
/// clear refusal rather than a generic "unknown field".
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    protected: Option<String>,
    payload: Option<String>,
    signature: Option<String>,
    header: Option<Value>,
    signatures: Option<Value>,
}

/// The protected header members this server reads. Other registered members (`typ`, ...) are
/// ignored; duplicates of these are refused by serde.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    nonce: Option<Value>,
    url: Option<Value>,
    jwk: Option<Value>,
    kid: Option<Value>,
    crit: Option<Value>,
}

/// Parses a request body as an ACME JWS. Pure: no state is read or written.
pub fn parse_jws(bytes: &[u8]) -> Result<Jws, Problem> {
    if bytes.len() > MAX_JWS_BYTES {
        return Err(Problem::malformed(format!(
            "the request is {} bytes; at most {MAX_JWS_BYTES} are accepted",
            bytes.len()
        ))
        .with_status(413));
    }
    let flattened: Flattened = serde_json::from_slice(bytes).map_err(|e| {
        Problem::malformed(format!(
            "the request body is not a JWS in flattened JSON serialization: {e}"
        ))
    })?;
    if flattened.signatures.is_some() {
        return Err(Problem::malformed(
            "the general JWS serialization (\"signatures\") is not accepted; use the flattened one",
        ));
    }
    if flattened.header.is_some() {
        return Err(Problem::malformed(
            "the JWS has an unprotected header; RFC 8555 requires every header member to be protected",
        ));
    }
    let required = |value: Option<String>, name: &str| {
        value.ok_or_else(|| Problem::malformed(format!("the JWS has no \"{name}\" member")))
    };
    let protected = required(flattened.protected, "protected")?;
    let payload_text = required(flattened.payload, "payload")?;
    let signature = required(flattened.signature, "signature")?;

    let header = parse_header(&decode(&protected, "protected header")?)?;
    let payload = parse_payload(&decode(&payload_text, "payload")?)?;
    let signature = decode(&signature, "signature")?;
    Ok(Jws {
        header,
        payload,
        // The signature covers the base64url texts exactly as sent (RFC 7515 §5.2).
        signing_input: format!("{protected}.{payload_text}").into_bytes(),
        signature,
    })
}

impl Jws {
    /// Checks the signature with `key`.
    pub fn verify(&self, key: &AccountKey) -> Result<(), Problem> {
        key.verify(self.header.alg, &self.signing_input, &self.signature)
    }

    /// The payload as a JSON object, or `malformed` for POST-as-GET where a body is needed.
    pub fn json(&self) -> Result<&Value, Problem> {
        match &self.payload {
            Payload::Json(value) => Ok(value),
            Payload::Empty => Err(Problem::malformed(
                "this request needs a JSON payload; an empty payload means POST-as-GET",
            )),
        }
    }

    /// Whether this is POST-as-GET.
    pub fn is_post_as_get(&self) -> bool {
        self.payload == Payload::Empty
    }
}

fn decode(text: &str, what: &str) -> Result<Vec<u8>, Problem> {
    from_b64url(text)
        .ok_or_else(|| Problem::malformed(format!("the JWS {what} is not unpadded base64url")))
}

fn parse_header(bytes: &[u8]) -> Result<ProtectedHeader, Problem> {
    let raw: RawHeader = serde_json::from_slice(bytes)
        .map_err(|e| Problem::malformed(format!("the JWS protected header is not valid: {e}")))?;
    if raw.crit.is_some() {
        return Err(Problem::malformed(
            "the JWS protected header has \"crit\"; this server understands no JWS extensions",
        ));
    }
    let alg = raw
        .alg
        .ok_or_else(|| Problem::malformed("the JWS protected header has no \"alg\""))?;
    let alg = JwsAlgorithm::from_name(&alg)?;
    let text = |value: Option<Value>, name: &str| -> Result<Option<String>, Problem> {
        match value {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(Problem::malformed(format!(
                "the JWS header member \"{name}\" is not a string"
            ))),
        }
    };
    let url = text(raw.url, "url")?
        .ok_or_else(|| Problem::malformed("the JWS protected header has no \"url\""))?;
    let nonce = text(raw.nonce, "nonce")?;
    let signer = match (raw.jwk, text(raw.kid, "kid")?) {
        (Some(jwk), None) => Signer::Key(AccountKey::from_json(&jwk)?),
        (None, Some(kid)) => Signer::Account(kid),
        (Some(_), Some(_)) => {
            return Err(Problem::malformed(
                "the JWS protected header has both \"jwk\" and \"kid\"; exactly one is allowed",
            ));
        }
        (None, None) => {
            return Err(Problem::malformed(
                "the JWS protected header has neither \"jwk\" nor \"kid\"",
            ));
        }
    };
    Ok(ProtectedHeader {
        alg,
        nonce,
        url,
        signer,
    })
}

fn parse_payload(bytes: &[u8]) -> Result<Payload, Problem> {
    if bytes.is_empty() {
        return Ok(Payload::Empty);
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| Problem::malformed(format!("the JWS payload is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(Problem::malformed("the JWS payload is not a JSON object"));
    }
    Ok(Payload::Json(value))
}
