//! Revocation (RFC 8555 §7.6).
//!
//! A revocation request is honoured when it is signed by
//! - the account the certificate was issued to through ACME,
//! - an account that currently holds valid authorisations for every name in the certificate
//!   (so a device that lost its account can still have its old certificate revoked after
//!   proving control again), or
//! - the certificate's own key (`jwk` = the certified key): whoever holds a compromised key may
//!   always kill its certificate.
//!
//! Reasons are limited to those an end entity may claim: `unspecified` (0), `keyCompromise`
//! (1), `affiliationChanged` (3), `superseded` (4) and `cessationOfOperation` (5).
//! `caCompromise`, `certificateHold`, `removeFromCRL`, `privilegeWithdrawn` and `aACompromise`
//! are the CA operator's to assert, through `bunkerctl`.

use std::collections::BTreeSet;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::encoding::from_b64url;
use super::model::{Account, AuthorizationStatus, Identifier};
use super::problem::{Problem, ProblemType};
use super::service::{AcmeService, Authenticated, Reply, ReplyBody, backend_problem};
use super::store::AcmeStore;
use crate::ca::DnsName;

/// RFC 5280 reason codes a subscriber may give.
const ALLOWED_REASONS: [u8; 5] = [0, 1, 3, 4, 5];

impl AcmeService {
    /// revokeCert.
    pub(super) async fn revoke(&self, request: &Authenticated) -> Result<Reply, Problem> {
        let payload = request.jws.json()?;
        let der = payload
            .get("certificate")
            .and_then(Value::as_str)
            .and_then(from_b64url)
            .ok_or_else(|| {
                Problem::malformed(
                    "revokeCert needs \"certificate\": the certificate's DER, base64url",
                )
            })?;
        let reason = parse_reason(payload.get("reason"))?;
        let (rest, certificate) = X509Certificate::from_der(&der).map_err(|e| {
            Problem::malformed(format!("\"certificate\" is not an X.509 certificate: {e}"))
        })?;
        if !rest.is_empty() {
            return Err(Problem::malformed("bytes follow the certificate"));
        }
        let fingerprint: [u8; 32] = Sha256::digest(&der).into();
        let requester = {
            let store = self.lock();
            let record = store
                .by_fingerprint
                .get(&fingerprint)
                .and_then(|id| store.certificates.get(id));
            if record.is_some_and(|r| r.revoked) {
                return Err(Problem::new(
                    ProblemType::AlreadyRevoked,
                    "the certificate is already revoked",
                ));
            }
            match (&request.account, request.key()) {
                (Some(account), _) => {
                    let owner = record.is_some_and(|r| r.account == account.id);
                    if !owner && !holds_authorizations(&store, account, &certificate) {
                        return Err(Problem::unauthorized(
                            "this account neither received the certificate nor holds valid authorizations for all its names",
                        ));
                    }
                    self.requester(account)
                }
                (None, Some(key)) => {
                    if !key.is_key_of(certificate.public_key()) {
                        return Err(Problem::unauthorized(
                            "the request is signed neither by an account nor by the certificate's key",
                        ));
                    }
                    "acme:certificate-key".to_owned()
                }
                (None, None) => return Err(Problem::unauthorized("the request names no signer")),
            }
        };
        let backend = std::sync::Arc::clone(&self.backend);
        let cert = der.clone();
        let who = requester.clone();
        tokio::task::spawn_blocking(move || backend.revoke(&cert, reason, &who))
            .await
            .map_err(|e| Problem::internal(format!("the revocation task failed: {e}")))?
            .map_err(backend_problem)?;
        let mut store = self.lock();
        if let Some(id) = store.by_fingerprint.get(&fingerprint).cloned()
            && let Some(record) = store.certificates.get_mut(&id)
        {
            record.revoked = true;
        }
        tracing::info!(%requester, reason, "ACME: certificate revoked");
        Ok(Reply::other(200, ReplyBody::Empty))
    }
}

fn parse_reason(value: Option<&Value>) -> Result<u8, Problem> {
    let code = match value {
        None | Some(Value::Null) => return Ok(0),
        Some(value) => value.as_u64(),
    };
    code.and_then(|c| u8::try_from(c).ok())
        .filter(|c| ALLOWED_REASONS.contains(c))
        .ok_or_else(|| {
            Problem::new(
                ProblemType::BadRevocationReason,
                "the reason must be 0 (unspecified), 1 (keyCompromise), 3 (affiliationChanged), 4 (superseded) or 5 (cessationOfOperation)",
            )
        })
}

/// Whether `account` holds a valid authorisation for every DNS and IP name of `certificate`.
fn holds_authorizations(
    store: &AcmeStore,
    account: &Account,
    certificate: &X509Certificate<'_>,
) -> bool {
    let names = certificate_identifiers(certificate);
    let now = AcmeService::now();
    !names.is_empty()
        && names.iter().all(|name| {
            store.authorizations.values().any(|authz| {
                authz.account == account.id
                    && &authz.identifier == name
                    && authz.status_at(now) == AuthorizationStatus::Valid
            })
        })
}

/// The DNS and IP names of a certificate; `None` names (URI, e-mail) make it unmatchable.
fn certificate_identifiers(certificate: &X509Certificate<'_>) -> BTreeSet<Identifier> {
    let mut names = BTreeSet::new();
    let Ok(Some(san)) = certificate.subject_alternative_name() else {
        return names;
    };
    for name in &san.value.general_names {
        let identifier = match name {
            GeneralName::DNSName(text) => DnsName::parse(text).ok().map(Identifier::Dns),
            GeneralName::IPAddress(bytes) => ip_from_bytes(bytes).map(Identifier::Ip),
            _ => None,
        };
        match identifier {
            Some(identifier) => {
                names.insert(identifier);
            }
            None => return BTreeSet::new(),
        }
    }
    names
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}
