//! ACME's objects (RFC 8555 §7.1): accounts, orders, authorisations, challenges, identifiers,
//! with their life cycles and their JSON forms.
//!
//! Only accounts are durable ([`StoredAccount`]); orders, authorisations and challenges live
//! for an hour or so in memory, and a client whose order was lost to a restart simply orders
//! again, which every ACME client does on any error.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::encoding::rfc3339;
use super::jwk::{AccountKey, quote};
use super::problem::{Problem, ProblemType};
use super::resources::Urls;
use crate::ca::{DnsName, Profile, SubjectName};

/// What an order asks to be certified (RFC 8555 §9.7.7: `dns`; RFC 8738: `ip`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identifier {
    /// A DNS name, lowercase.
    Dns(DnsName),
    /// An IP address.
    Ip(IpAddr),
}

impl Identifier {
    /// Parses an identifier object from an order. DNS names are compared case-insensitively
    /// in ACME, so they are folded to the lowercase spelling the CA certifies.
    pub fn from_json(value: &Value) -> Result<Self, Problem> {
        let kind = value.get("type").and_then(Value::as_str);
        let text = value.get("value").and_then(Value::as_str);
        let (Some(kind), Some(text)) = (kind, text) else {
            return Err(Problem::malformed(
                "each identifier needs string members \"type\" and \"value\"",
            ));
        };
        match kind {
            "dns" => {
                let name = DnsName::parse(&text.to_ascii_lowercase()).map_err(|e| {
                    Problem::new(
                        ProblemType::RejectedIdentifier,
                        format!("\"{}\" is not a usable DNS name: {e}", quote(text)),
                    )
                })?;
                if name.is_wildcard() {
                    return Err(Problem::new(
                        ProblemType::RejectedIdentifier,
                        format!(
                            "\"{}\" is a wildcard; wildcards need dns-01, which this server does not offer",
                            quote(text)
                        ),
                    ));
                }
                Ok(Self::Dns(name))
            }
            "ip" => text.parse().map(Self::Ip).map_err(|_| {
                Problem::malformed(format!("\"{}\" is not an IP address", quote(text)))
            }),
            other => Err(Problem::new(
                ProblemType::UnsupportedIdentifier,
                format!(
                    "identifier type \"{}\" is not supported; use \"dns\" or \"ip\"",
                    quote(other)
                ),
            )),
        }
    }

    /// The identifier object.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Dns(name) => json!({"type": "dns", "value": name.as_str()}),
            Self::Ip(address) => json!({"type": "ip", "value": address.to_string()}),
        }
    }

    /// The name as a certificate carries it.
    pub fn subject_name(&self) -> SubjectName {
        match self {
            Self::Dns(name) => SubjectName::Dns(name.clone()),
            Self::Ip(address) => SubjectName::Ip(*address),
        }
    }

    /// The text of the name, for messages and for the address table.
    pub fn text(&self) -> String {
        match self {
            Self::Dns(name) => name.to_string(),
            Self::Ip(address) => address.to_string(),
        }
    }
}

/// An account's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountStatus {
    /// Usable.
    Valid,
    /// Deactivated by its holder; final.
    Deactivated,
}

/// An account: a key and its contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Random identifier, the last segment of the account URL.
    pub id: String,
    /// The key every request of this account is signed with.
    pub key: AccountKey,
    /// The key's RFC 7638 thumbprint (cached: it is in every key authorisation).
    pub thumbprint: String,
    /// `mailto:` contacts.
    pub contact: Vec<String>,
    /// Status.
    pub status: AccountStatus,
    /// Whether the terms of service were agreed to.
    pub terms_agreed: bool,
    /// Creation time.
    pub created: OffsetDateTime,
}

/// An account as written to the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredAccount {
    /// See [`Account::id`].
    pub id: String,
    /// The public JWK.
    pub key: Value,
    /// See [`Account::contact`].
    pub contact: Vec<String>,
    /// See [`Account::status`].
    pub status: AccountStatus,
    /// See [`Account::terms_agreed`].
    pub terms_agreed: bool,
    /// Creation time, Unix seconds.
    pub created: i64,
}

impl Account {
    /// The stored form.
    pub fn to_stored(&self) -> StoredAccount {
        StoredAccount {
            id: self.id.clone(),
            key: self.key.to_json(),
            contact: self.contact.clone(),
            status: self.status,
            terms_agreed: self.terms_agreed,
            created: self.created.unix_timestamp(),
        }
    }

    /// Rebuilds an account from its stored form, re-checking the key.
    pub fn from_stored(stored: StoredAccount) -> Result<Self, String> {
        let key = AccountKey::from_json(&stored.key).map_err(|p| p.detail)?;
        let created = OffsetDateTime::from_unix_timestamp(stored.created)
            .map_err(|e| format!("bad creation time: {e}"))?;
        Ok(Self {
            id: stored.id,
            thumbprint: key.thumbprint(),
            key,
            contact: stored.contact,
            status: stored.status,
            terms_agreed: stored.terms_agreed,
            created,
        })
    }

    /// The account object (RFC 8555 §7.1.2).
    pub fn to_json(&self, urls: &Urls) -> Value {
        json!({
            "status": self.status,
            "contact": self.contact,
            "termsOfServiceAgreed": self.terms_agreed,
            "orders": urls.account_orders(&self.id),
            "key": self.key.to_json(),
            "createdAt": rfc3339(self.created),
        })
    }
}

/// A challenge type this server validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeType {
    /// RFC 8555 §8.3: a file served over plain HTTP.
    Http01,
    /// RFC 8737: a self-signed certificate served with ALPN `acme-tls/1`.
    TlsAlpn01,
}

impl ChallengeType {
    /// The `type` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// A challenge's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChallengeStatus {
    /// Waiting for the client to say it is ready.
    Pending,
    /// Being validated.
    Processing,
    /// Validated.
    Valid,
    /// Validation failed; `error` says why.
    Invalid,
}

/// One way to prove control of an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Random identifier, the last segment of its URL.
    pub id: String,
    /// The type.
    pub kind: ChallengeType,
    /// 128 random bits, base64url.
    pub token: String,
    /// Status.
    pub status: ChallengeStatus,
    /// When it was validated.
    pub validated: Option<OffsetDateTime>,
    /// Why validation failed.
    pub error: Option<Problem>,
}

impl Challenge {
    /// The challenge object (RFC 8555 §8).
    pub fn to_json(&self, urls: &Urls) -> Value {
        let mut object = json!({
            "type": self.kind.name(),
            "url": urls.challenge(&self.id),
            "status": self.status,
            "token": self.token,
        });
        if let Some(at) = self.validated {
            object["validated"] = json!(rfc3339(at));
        }
        if let Some(error) = &self.error {
            object["error"] = error.to_value();
        }
        object
    }
}

/// An authorisation's stored status; `expired` is derived from the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizationStatus {
    /// No challenge has succeeded or failed yet.
    Pending,
    /// A challenge succeeded.
    Valid,
    /// A challenge failed.
    Invalid,
    /// Deactivated by the client.
    Deactivated,
    /// Past its expiry.
    Expired,
}

/// The account's proof, or attempt at proof, of control of one identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Random identifier.
    pub id: String,
    /// The account it belongs to.
    pub account: String,
    /// What it is about.
    pub identifier: Identifier,
    /// Stored status (see [`Authorization::status_at`]).
    pub status: AuthorizationStatus,
    /// Expiry: pending ones with their order, valid ones after the reuse window.
    pub expires: OffsetDateTime,
    /// The challenges offered.
    pub challenges: Vec<Challenge>,
}

impl Authorization {
    /// The status at `now`: pending and valid authorisations expire.
    pub fn status_at(&self, now: OffsetDateTime) -> AuthorizationStatus {
        match self.status {
            AuthorizationStatus::Pending | AuthorizationStatus::Valid if now >= self.expires => {
                AuthorizationStatus::Expired
            }
            status => status,
        }
    }

    /// The authorisation object (RFC 8555 §7.1.4).
    pub fn to_json(&self, urls: &Urls, now: OffsetDateTime) -> Value {
        json!({
            "identifier": self.identifier.to_json(),
            "status": self.status_at(now),
            "expires": rfc3339(self.expires),
            "challenges": self.challenges.iter().map(|c| c.to_json(urls)).collect::<Vec<_>>(),
        })
    }
}

/// An order's status (RFC 8555 §7.1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Some authorisation is still pending.
    Pending,
    /// Every authorisation is valid; waiting for finalize.
    Ready,
    /// Finalize is being processed.
    Processing,
    /// The certificate was issued.
    Valid,
    /// An authorisation failed or expired, or the order expired.
    Invalid,
}

/// Where an order is in its life, beyond what its authorisations say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderProgress {
    /// Waiting for authorisations, or for finalize.
    Open,
    /// The backend is issuing.
    Processing,
    /// Issued: the certificate's identifier.
    Issued(String),
}

/// A request for a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Random identifier.
    pub id: String,
    /// The account it belongs to.
    pub account: String,
    /// The names, sorted and without duplicates.
    pub identifiers: Vec<Identifier>,
    /// The profile the certificate will be issued under.
    pub profile: Profile,
    /// Its authorisations, one per identifier, in the same order.
    pub authorizations: Vec<String>,
    /// When it expires if not finalized.
    pub expires: OffsetDateTime,
    /// Progress.
    pub progress: OrderProgress,
}

impl Order {
    /// The order object (RFC 8555 §7.1.3), given its status and any error.
    pub fn to_json(&self, urls: &Urls, status: OrderStatus, error: Option<&Problem>) -> Value {
        let mut object = json!({
            "status": status,
            "expires": rfc3339(self.expires),
            "identifiers": self.identifiers.iter().map(Identifier::to_json).collect::<Vec<_>>(),
            "authorizations": self
                .authorizations
                .iter()
                .map(|id| urls.authorization(id))
                .collect::<Vec<_>>(),
            "finalize": urls.finalize(&self.id),
        });
        if let OrderProgress::Issued(certificate) = &self.progress {
            object["certificate"] = json!(urls.certificate(certificate));
        }
        if let Some(error) = error {
            object["error"] = error.to_value();
        }
        object
    }
}

/// A certificate issued through ACME: downloadable while its order is fresh, and remembered
/// as its account's until it expires, so the account can revoke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRecord {
    /// The account it was issued to.
    pub account: String,
    /// The chain the client downloads; dropped after `download_until` to bound memory.
    pub chain_pem: Option<String>,
    /// End of the download window (an order's lifetime after issuance, at least).
    pub download_until: OffsetDateTime,
    /// The leaf's end of validity: past it, the record is dropped.
    pub not_after: OffsetDateTime,
    /// SHA-256 of the leaf's DER, to find it from a revocation request.
    pub fingerprint: [u8; 32],
    /// Whether it was revoked through ACME.
    pub revoked: bool,
}
