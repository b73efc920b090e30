//! Authorisations and challenges (RFC 8555 §7.5): reading them, deactivating an
//! authorisation, and answering a client's "ready" by validating in the background.
//!
//! The client's POST to a challenge only starts the check; the response says `processing` and
//! the client polls the authorisation. The check itself ([`super::validation`]) runs as a
//! task, and its outcome is recorded in one step: the challenge becomes `valid` (and with it
//! the authorisation) or `invalid` with the RFC 8555 error that says what the server saw.

use std::sync::Arc;
use std::time::Duration;

use super::model::{AuthorizationStatus, ChallengeStatus};
use super::problem::Problem;
use super::service::{AcmeService, Authenticated, Reply};
use super::validation::ValidationRequest;

impl AcmeService {
    /// POST to an authorisation: POST-as-GET, or deactivation (§7.5.2).
    pub(super) fn authorization(
        &self,
        request: &Authenticated,
        id: &str,
    ) -> Result<Reply, Problem> {
        let account = request.account()?;
        let now = Self::now();
        let mut store = self.lock();
        let authz = store
            .authorizations
            .get_mut(id)
            .ok_or_else(|| Problem::not_found("authorization"))?;
        if authz.account != account.id {
            return Err(Problem::unauthorized(
                "the authorization belongs to another account",
            ));
        }
        if !request.jws.is_post_as_get() {
            let payload = request.jws.json()?;
            match payload.get("status").and_then(|s| s.as_str()) {
                Some("deactivated") => {
                    let status = authz.status_at(now);
                    if !matches!(
                        status,
                        AuthorizationStatus::Pending | AuthorizationStatus::Valid
                    ) {
                        return Err(Problem::malformed(format!(
                            "only pending or valid authorizations can be deactivated; this one is {}",
                            serde_json::to_value(status).unwrap_or_default()
                        )));
                    }
                    authz.status = AuthorizationStatus::Deactivated;
                }
                _ => {
                    return Err(Problem::malformed(
                        "an authorization accepts only POST-as-GET or {\"status\": \"deactivated\"}",
                    ));
                }
            }
        }
        let busy = authz
            .challenges
            .iter()
            .any(|c| c.status == ChallengeStatus::Processing);
        let body = authz.to_json(&self.urls, now);
        Ok(Reply::json(200, body)
            .located(self.urls.authorization(id))
            .retry_after_if(busy, 1))
    }

    /// POST to a challenge: POST-as-GET, or `{}` to have it validated (§7.5.1).
    pub(super) fn challenge(
        self: &Arc<Self>,
        request: &Authenticated,
        id: &str,
    ) -> Result<Reply, Problem> {
        let account = request.account()?;
        let now = Self::now();
        let mut store = self.lock();
        let authz_id = store
            .challenges
            .get(id)
            .cloned()
            .ok_or_else(|| Problem::not_found("challenge"))?;
        let validating = store
            .authorizations
            .get(&authz_id)
            .is_some_and(|authz| store.is_validating(authz));
        let authz = store
            .authorizations
            .get_mut(&authz_id)
            .ok_or_else(|| Problem::not_found("challenge"))?;
        if authz.account != account.id {
            return Err(Problem::unauthorized(
                "the challenge belongs to another account",
            ));
        }
        if !request.jws.is_post_as_get() {
            request.jws.json()?;
        }
        let start = !request.jws.is_post_as_get()
            && authz.status_at(now) == AuthorizationStatus::Pending
            && !validating;
        let identifier = authz.identifier.clone();
        let challenge = authz
            .challenges
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| Problem::not_found("challenge"))?;
        if start && challenge.status == ChallengeStatus::Pending {
            challenge.status = ChallengeStatus::Processing;
            let validation = ValidationRequest {
                identifier,
                kind: challenge.kind,
                token: challenge.token.clone(),
                key_authorization: format!("{}.{}", challenge.token, account.thumbprint),
            };
            let service = Arc::clone(self);
            let (authz, challenge) = (authz_id.clone(), id.to_owned());
            tokio::spawn(async move {
                let outcome = service.validator.validate(&validation).await;
                service.record_validation(&authz, &challenge, outcome);
            });
        }
        let busy = challenge.status == ChallengeStatus::Processing;
        let body = challenge.to_json(&self.urls);
        Ok(Reply::json(200, body)
            .up(self.urls.authorization(&authz_id))
            .retry_after_if(busy, 1))
    }

    /// Records a validation's outcome on the challenge and its authorisation.
    fn record_validation(&self, authz_id: &str, challenge_id: &str, outcome: Result<(), Problem>) {
        let now = Self::now();
        // Valid for the reuse window, plus the life of an order created at its very end.
        let limits = &self.config.limits;
        let lifetime =
            Duration::from_secs(limits.authorization_reuse_secs + limits.order_lifetime_secs);
        let mut store = self.lock();
        let Some(authz) = store.authorizations.get_mut(authz_id) else {
            return;
        };
        let identifier = authz.identifier.text();
        let Some(challenge) = authz.challenges.iter_mut().find(|c| c.id == challenge_id) else {
            return;
        };
        match outcome {
            Ok(()) => {
                challenge.status = ChallengeStatus::Valid;
                challenge.validated = Some(now);
                authz.status = AuthorizationStatus::Valid;
                authz.expires = now + lifetime;
                tracing::info!(%identifier, challenge = challenge.kind.name(), "ACME: challenge valid");
            }
            Err(problem) => {
                tracing::info!(%identifier, challenge = challenge.kind.name(), error = %problem, "ACME: challenge failed");
                challenge.status = ChallengeStatus::Invalid;
                challenge.error = Some(problem);
                authz.status = AuthorizationStatus::Invalid;
            }
        }
    }
}
