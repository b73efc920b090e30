//! RFC 8555 problem documents (RFC 7807 with the `urn:ietf:params:acme:error:*` types).
//!
//! Every refusal the ACME server gives is one of these: a client library (certbot's `acme`,
//! lego) reads `type` to decide whether to retry (`badNonce`), re-register
//! (`accountDoesNotExist`) or give up, and shows `detail` to the operator. So each refusal
//! names the one thing that is wrong, in a sentence, and never echoes hostile input unquoted.

use serde::Serialize;

/// Media type of a problem document.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The ACME error types this server uses (RFC 8555 §6.7, RFC 8737).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProblemType {
    /// The request is not well-formed (JSON, JWS, fields).
    Malformed,
    /// The nonce is unknown, already used, or missing.
    BadNonce,
    /// The JWS `alg` is not one this server verifies.
    BadSignatureAlgorithm,
    /// The account key is of an unsupported type or too weak.
    BadPublicKey,
    /// The `kid` names no account (or `onlyReturnExisting` found none).
    AccountDoesNotExist,
    /// The requester may not do this (wrong account, deactivated account, URL mismatch).
    Unauthorized,
    /// The CSR is unusable or does not match the order.
    BadCsr,
    /// Finalize was sent while the order was not `ready`.
    OrderNotReady,
    /// The server will not issue for this identifier.
    RejectedIdentifier,
    /// The identifier type is not supported.
    UnsupportedIdentifier,
    /// A contact URL is malformed.
    InvalidContact,
    /// A contact URL has a scheme this server does not support.
    UnsupportedContact,
    /// The revocation reason is not allowed.
    BadRevocationReason,
    /// The certificate is already revoked.
    AlreadyRevoked,
    /// A per-account or global bound was reached.
    RateLimited,
    /// The terms of service must be agreed to.
    UserActionRequired,
    /// Challenge validation: the name did not resolve.
    Dns,
    /// Challenge validation: the server could not connect.
    Connection,
    /// Challenge validation: the response was wrong.
    IncorrectResponse,
    /// Challenge validation: the TLS handshake failed.
    Tls,
    /// The server failed (the CA is sealed, the TPM failed, a state write failed).
    ServerInternal,
}

impl ProblemType {
    /// The short name after `urn:ietf:params:acme:error:`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadNonce => "badNonce",
            Self::BadSignatureAlgorithm => "badSignatureAlgorithm",
            Self::BadPublicKey => "badPublicKey",
            Self::AccountDoesNotExist => "accountDoesNotExist",
            Self::Unauthorized => "unauthorized",
            Self::BadCsr => "badCSR",
            Self::OrderNotReady => "orderNotReady",
            Self::RejectedIdentifier => "rejectedIdentifier",
            Self::UnsupportedIdentifier => "unsupportedIdentifier",
            Self::InvalidContact => "invalidContact",
            Self::UnsupportedContact => "unsupportedContact",
            Self::BadRevocationReason => "badRevocationReason",
            Self::AlreadyRevoked => "alreadyRevoked",
            Self::RateLimited => "rateLimited",
            Self::UserActionRequired => "userActionRequired",
            Self::Dns => "dns",
            Self::Connection => "connection",
            Self::IncorrectResponse => "incorrectResponse",
            Self::Tls => "tls",
            Self::ServerInternal => "serverInternal",
        }
    }

    /// The full URN, e.g. `urn:ietf:params:acme:error:badNonce`.
    pub fn urn(self) -> String {
        format!("urn:ietf:params:acme:error:{}", self.name())
    }

    /// The HTTP status this type is sent with unless a more precise one applies.
    pub fn default_status(self) -> u16 {
        match self {
            Self::Unauthorized | Self::OrderNotReady | Self::UserActionRequired => 403,
            Self::RateLimited => 429,
            Self::ServerInternal => 500,
            _ => 400,
        }
    }
}

/// One refusal: an error type, a sentence, and the HTTP status it travels with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} ({status}): {detail}", kind.urn())]
pub struct Problem {
    /// The error type.
    pub kind: ProblemType,
    /// What is wrong, for the operator.
    pub detail: String,
    /// The HTTP status.
    pub status: u16,
    /// For `badSignatureAlgorithm`: the algorithms this server accepts (RFC 8555 §6.2).
    pub algorithms: Option<Vec<&'static str>>,
}

/// The wire form of a problem document.
#[derive(Serialize)]
struct ProblemDocument<'a> {
    #[serde(rename = "type")]
    kind: String,
    detail: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    algorithms: Option<&'a [&'static str]>,
}

impl Problem {
    /// A problem of `kind` with its usual HTTP status.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            status: kind.default_status(),
            algorithms: None,
        }
    }

    /// The same problem with another HTTP status (404, 405, 413, 415, 503, ...).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// `malformed`.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Malformed, detail)
    }

    /// `malformed` with 404: the URL names no resource.
    pub fn not_found(what: &str) -> Self {
        Self::malformed(format!("there is no such {what}")).with_status(404)
    }

    /// `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Unauthorized, detail)
    }

    /// `serverInternal`.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::ServerInternal, detail)
    }

    /// The problem document as JSON, the body of the error response.
    pub fn to_json(&self) -> Vec<u8> {
        let document = ProblemDocument {
            kind: self.kind.urn(),
            detail: &self.detail,
            status: self.status,
            algorithms: self.algorithms.as_deref(),
        };
        serde_json::to_vec(&document).expect("a problem document always serialises")
    }

    /// The problem as a JSON value, for the `error` field of a challenge or an order.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.to_json()).expect("a problem document is JSON")
    }
}
