//! Orders (RFC 8555 §7.4): new orders with their authorisations, finalize, and the
//! certificate download.
//!
//! The profile is chosen when the order is created, from its names
//! ([`super::config::ProfileSelector`]): one order, one profile, so a device name and a service
//! name cannot share a certificate. Finalize checks the CSR against the order before the order
//! moves, and hands the backend only requests whose every name the account proved control of.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::encoding::{from_b64url, random_id};
use super::model::{
    Authorization, AuthorizationStatus, Challenge, ChallengeStatus, ChallengeType, Identifier,
    IssuedRecord, Order, OrderProgress, OrderStatus,
};
use super::problem::{Problem, ProblemType};
use super::service::{AcmeService, Authenticated, Reply, ReplyBody, backend_problem};
use crate::ca::{Profile, SubjectName, parse_csr};

impl AcmeService {
    /// newOrder (§7.4).
    pub(super) fn new_order(&self, request: &Authenticated) -> Result<Reply, Problem> {
        let account = request.account()?;
        let payload = request.jws.json()?;
        for field in ["notBefore", "notAfter"] {
            if payload.get(field).is_some_and(|v| !v.is_null()) {
                return Err(Problem::malformed(format!(
                    "\"{field}\" is not accepted: validity is set by the certificate profile; omit it"
                )));
            }
        }
        let identifiers = self.parse_identifiers(payload.get("identifiers"))?;
        let profile = self.profile_for(&identifiers)?;
        let names: Vec<SubjectName> = identifiers.iter().map(Identifier::subject_name).collect();
        self.backend
            .check_names(profile, &names)
            .map_err(backend_problem)?;

        let now = Self::now();
        let expires = now + Duration::from_secs(self.config.limits.order_lifetime_secs);
        let mut store = self.lock();
        store.prune(now);
        if store.open_orders_of(&account.id, now)
            >= self.config.limits.max_pending_orders_per_account
        {
            return Err(Problem::new(
                ProblemType::RateLimited,
                format!(
                    "the account has {} orders in progress; finish or let some expire first",
                    self.config.limits.max_pending_orders_per_account
                ),
            ));
        }
        if store.orders.len() >= self.config.limits.max_orders {
            return Err(Problem::new(
                ProblemType::RateLimited,
                "the server holds too many orders; retry in a few minutes",
            ));
        }
        let mut authorizations = Vec::new();
        for identifier in &identifiers {
            let reused = (self.config.limits.authorization_reuse_secs > 0)
                .then(|| store.reusable_authorization(&account.id, identifier, now, expires))
                .flatten()
                .map(|authz| authz.id.clone());
            let id = match reused {
                Some(id) => id,
                None => {
                    let authz = new_authorization(&account.id, identifier, expires);
                    for challenge in &authz.challenges {
                        store
                            .challenges
                            .insert(challenge.id.clone(), authz.id.clone());
                    }
                    let id = authz.id.clone();
                    store.authorizations.insert(id.clone(), authz);
                    id
                }
            };
            authorizations.push(id);
        }
        let order = Order {
            id: random_id(),
            account: account.id.clone(),
            identifiers,
            profile,
            authorizations,
            expires,
            progress: OrderProgress::Open,
        };
        let (status, error) = store.order_status(&order, now);
        let url = self.urls.order(&order.id);
        let body = order.to_json(&self.urls, status, error.as_ref());
        store.orders.insert(order.id.clone(), order);
        Ok(Reply::json(201, body).located(url))
    }

    /// POST-as-GET of an order.
    pub(super) fn order(&self, request: &Authenticated, id: &str) -> Result<Reply, Problem> {
        let account = request.account()?;
        let store = self.lock();
        let order = owned_order(&store.orders, id, &account.id)?;
        let (status, error) = store.order_status(order, Self::now());
        let body = order.to_json(&self.urls, status, error.as_ref());
        Ok(Reply::json(200, body).located(self.urls.order(id)))
    }

    /// Finalize (§7.4): check the CSR, issue through the backend, and make the order valid.
    pub(super) async fn finalize(
        &self,
        request: &Authenticated,
        id: &str,
    ) -> Result<Reply, Problem> {
        let account = request.account()?;
        let csr_der = {
            let store = self.lock();
            let order = owned_order(&store.orders, id, &account.id)?;
            let (status, _) = store.order_status(order, Self::now());
            if status != OrderStatus::Ready {
                return Err(Problem::new(
                    ProblemType::OrderNotReady,
                    format!("the order is {}, not ready", status_name(status)),
                ));
            }
            let csr_der = csr_from_payload(request.jws.json()?)?;
            check_csr(&csr_der, &order.identifiers, account)?;
            csr_der
        };
        let profile = self.begin_processing(id, &account.id)?;
        let backend = std::sync::Arc::clone(&self.backend);
        let requester = self.requester(account);
        let issued =
            tokio::task::spawn_blocking(move || backend.issue(&csr_der, profile, &requester))
                .await
                .map_err(|e| Problem::internal(format!("the issuance task failed: {e}")));
        let issued = issued
            .and_then(|r| r.map_err(backend_problem))
            .and_then(|issued| {
                let facts = leaf_facts(&issued.cert_pem)?;
                Ok((issued, facts))
            });
        let mut store = self.lock();
        let (issued, (fingerprint, not_after)) = match issued {
            Ok(issued) => issued,
            Err(problem) => {
                // The refusal leaves the order ready, as it was: the client may fix and retry.
                if let Some(order) = store.orders.get_mut(id) {
                    order.progress = OrderProgress::Open;
                }
                return Err(problem);
            }
        };
        let certificate_id = random_id();
        let order = store
            .orders
            .get_mut(id)
            .ok_or_else(|| Problem::internal("the order vanished during issuance"))?;
        order.progress = OrderProgress::Issued(certificate_id.clone());
        // Downloadable for an order's lifetime from now, however late the order finalized.
        let lifetime = Duration::from_secs(self.config.limits.order_lifetime_secs);
        let download_until = order.expires.max(Self::now() + lifetime);
        let order = order.clone();
        store.certificates.insert(
            certificate_id.clone(),
            IssuedRecord {
                account: account.id.clone(),
                chain_pem: Some(issued.chain_pem),
                download_until,
                not_after,
                fingerprint,
                revoked: false,
            },
        );
        store.by_fingerprint.insert(fingerprint, certificate_id);
        tracing::info!(serial = %issued.serial, order = %self.urls.order(id), %profile, "ACME: certificate issued");
        let body = order.to_json(&self.urls, OrderStatus::Valid, None);
        Ok(Reply::json(200, body).located(self.urls.order(id)))
    }

    /// Moves a ready order to processing, unless another finalize got there first.
    fn begin_processing(&self, id: &str, account: &str) -> Result<Profile, Problem> {
        let mut store = self.lock();
        let order = owned_order(&store.orders, id, account)?;
        let (status, _) = store.order_status(order, Self::now());
        if status != OrderStatus::Ready {
            return Err(Problem::new(
                ProblemType::OrderNotReady,
                format!("the order is {}, not ready", status_name(status)),
            ));
        }
        let order = store
            .orders
            .get_mut(id)
            .ok_or_else(|| Problem::not_found("order"))?;
        order.progress = OrderProgress::Processing;
        Ok(order.profile)
    }

    /// POST-as-GET of a certificate chain (§7.4.2).
    pub(super) fn certificate(&self, request: &Authenticated, id: &str) -> Result<Reply, Problem> {
        let account = request.account()?;
        let store = self.lock();
        let record = store
            .certificates
            .get(id)
            .ok_or_else(|| Problem::not_found("certificate"))?;
        if record.account != account.id {
            return Err(Problem::unauthorized(
                "the certificate belongs to another account",
            ));
        }
        let chain = record.chain_pem.clone().ok_or_else(|| {
            Problem::malformed("the certificate is no longer offered for download").with_status(404)
        })?;
        Ok(Reply::other(200, ReplyBody::PemChain(chain)))
    }

    fn parse_identifiers(&self, value: Option<&Value>) -> Result<Vec<Identifier>, Problem> {
        let entries = value
            .and_then(Value::as_array)
            .ok_or_else(|| Problem::malformed("the order needs an \"identifiers\" array"))?;
        let max = self.config.limits.max_identifiers;
        if entries.is_empty() || entries.len() > max {
            return Err(Problem::new(
                ProblemType::RejectedIdentifier,
                format!(
                    "an order names 1 to {max} identifiers; this one names {}",
                    entries.len()
                ),
            ));
        }
        let unique: BTreeSet<Identifier> = entries
            .iter()
            .map(Identifier::from_json)
            .collect::<Result<_, _>>()?;
        Ok(unique.into_iter().collect())
    }

    fn profile_for(&self, identifiers: &[Identifier]) -> Result<Profile, Problem> {
        let mut chosen: Option<Profile> = None;
        for identifier in identifiers {
            let profile = match identifier {
                Identifier::Dns(name) => self.profiles.for_dns(name).ok_or_else(|| {
                    Problem::new(
                        ProblemType::RejectedIdentifier,
                        format!(
                            "\"{name}\" is not a name this CA certifies through ACME (names below: {})",
                            self.profiles.suffixes()
                        ),
                    )
                })?,
                Identifier::Ip(address) => self.profiles.for_ip().ok_or_else(|| {
                    Problem::new(
                        ProblemType::RejectedIdentifier,
                        format!("IP address identifiers ({address}) are not enabled on this server"),
                    )
                })?,
            };
            match chosen {
                Some(other) if other != profile => {
                    return Err(Problem::new(
                        ProblemType::RejectedIdentifier,
                        format!(
                            "the order mixes {other} and {profile} names; order each kind separately"
                        ),
                    ));
                }
                _ => chosen = Some(profile),
            }
        }
        chosen.ok_or_else(|| Problem::malformed("the order names no identifier"))
    }
}

/// A fresh pending authorisation with both challenge types.
fn new_authorization(
    account: &str,
    identifier: &Identifier,
    expires: OffsetDateTime,
) -> Authorization {
    let challenge = |kind| Challenge {
        id: random_id(),
        kind,
        token: super::encoding::b64url(&super::encoding::random_bytes::<32>()),
        status: ChallengeStatus::Pending,
        validated: None,
        error: None,
    };
    Authorization {
        id: random_id(),
        account: account.to_owned(),
        identifier: identifier.clone(),
        status: AuthorizationStatus::Pending,
        expires,
        challenges: vec![
            challenge(ChallengeType::Http01),
            challenge(ChallengeType::TlsAlpn01),
        ],
    }
}

/// The order `id`, if it exists and belongs to `account`.
fn owned_order<'a>(
    orders: &'a std::collections::HashMap<String, Order>,
    id: &str,
    account: &str,
) -> Result<&'a Order, Problem> {
    let order = orders.get(id).ok_or_else(|| Problem::not_found("order"))?;
    if order.account != account {
        return Err(Problem::unauthorized(
            "the order belongs to another account",
        ));
    }
    Ok(order)
}

fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Pending => "pending (authorizations are not all valid)",
        OrderStatus::Ready => "ready",
        OrderStatus::Processing => "already being processed",
        OrderStatus::Valid => "already valid (the certificate was issued)",
        OrderStatus::Invalid => "invalid",
    }
}

fn csr_from_payload(payload: &Value) -> Result<Vec<u8>, Problem> {
    let text = payload
        .get("csr")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::malformed("finalize needs a \"csr\" string"))?;
    from_b64url(text)
        .ok_or_else(|| Problem::new(ProblemType::BadCsr, "\"csr\" is not unpadded base64url DER"))
}

/// The CSR must be well-formed, name exactly the order's identifiers, and not certify the
/// account key (RFC 8555 §11.1: the two keys must differ).
fn check_csr(
    der: &[u8],
    identifiers: &[Identifier],
    account: &super::model::Account,
) -> Result<(), Problem> {
    let bad = |detail: String| Problem::new(ProblemType::BadCsr, detail);
    let csr = parse_csr(der).map_err(|e| bad(e.to_string()))?;
    let expected: BTreeSet<SubjectName> =
        identifiers.iter().map(Identifier::subject_name).collect();
    let mut requested: BTreeSet<SubjectName> = csr.names().iter().cloned().collect();
    if let Some(cn) = csr.common_name() {
        if !expected.iter().any(|name| name.text() == cn) {
            return Err(bad(format!(
                "the CSR's common name \"{}\" is not one of the order's identifiers",
                super::jwk::quote(cn)
            )));
        }
        if requested.is_empty() {
            requested = expected
                .iter()
                .filter(|n| n.text() == cn)
                .cloned()
                .collect();
        }
    }
    if requested != expected {
        let list = |set: &BTreeSet<SubjectName>| {
            set.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(bad(format!(
            "the CSR names [{}] but the order is for [{}]",
            list(&requested),
            list(&expected)
        )));
    }
    let (_, parsed) = x509_parser::certification_request::X509CertificationRequest::from_der(der)
        .map_err(|e| bad(e.to_string()))?;
    if account
        .key
        .is_key_of(&parsed.certification_request_info.subject_pki)
    {
        return Err(bad(
            "the CSR's key is the account key; use a separate key for the certificate".into(),
        ));
    }
    Ok(())
}

/// The leaf's SHA-256 fingerprint and end of validity, from the backend's PEM.
fn leaf_facts(cert_pem: &str) -> Result<([u8; 32], OffsetDateTime), Problem> {
    let broken =
        |why: String| Problem::internal(format!("the issued certificate is unreadable: {why}"));
    let der = pem::parse(cert_pem)
        .map_err(|e| broken(e.to_string()))?
        .into_contents();
    let (_, certificate) = X509Certificate::from_der(&der).map_err(|e| broken(e.to_string()))?;
    let not_after = certificate.validity().not_after.to_datetime();
    Ok((Sha256::digest(&der).into(), not_after))
}
