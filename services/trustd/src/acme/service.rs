//! The ACME protocol engine, independent of sockets: a request (method, path, content type,
//! body) in, an [`AcmeResponse`] out.
//!
//! Every POST walks the same path before any handler runs: the URL must name a resource, the
//! body must be `application/jose+json` and parse as a JWS ([`parse_jws`]), the JWS `url` must
//! be this request's URL, the signing key must be the right kind for the resource (`jwk` for
//! newAccount, `kid` of an existing, valid account otherwise), the signature must verify, and
//! only then is the nonce used up. A request refused on that path changes nothing at all, its
//! nonce included; handlers in turn check everything before they change state.
//!
//! The handlers are in [`super::accounts`], [`super::orders`], [`super::challenges`] and
//! [`super::revocation`].

use std::sync::{Arc, Mutex, MutexGuard};

use hyper::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::backend::{AcmeBackend, BackendError};
use super::config::{AcmeConfig, ConfigError, ProfileSelector};
use super::jwk::AccountKey;
use super::jws::{Jws, Signer, parse_jws};
use super::model::Account;
use super::problem::{PROBLEM_CONTENT_TYPE, Problem, ProblemType};
use super::resources::{Resource, Urls};
use super::store::{AcmeStore, StoreSummary};
use super::validation::Validator;
use crate::ca::DnsName;

/// Media type of every signed request.
pub const JOSE_CONTENT_TYPE: &str = "application/jose+json";
/// Media type of a certificate chain download.
pub const PEM_CHAIN_CONTENT_TYPE: &str = "application/pem-certificate-chain";

/// A response, ready to be written by any HTTP server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers (`Content-Type`, `Replay-Nonce`, `Location`, `Link`, ...).
    pub headers: Vec<(&'static str, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl AcmeResponse {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// What a handler answers, before the common headers are added.
#[derive(Debug)]
pub(super) struct Reply {
    pub status: u16,
    pub body: ReplyBody,
    pub location: Option<String>,
    pub up: Option<String>,
    /// Seconds a polling client should wait (a validation or issuance is running).
    pub retry_after: Option<u64>,
}

/// A handler's body.
#[derive(Debug)]
pub(super) enum ReplyBody {
    Json(Value),
    PemChain(String),
    Empty,
}

impl Reply {
    pub fn json(status: u16, value: Value) -> Self {
        Self {
            status,
            body: ReplyBody::Json(value),
            location: None,
            up: None,
            retry_after: None,
        }
    }

    /// The reply with a body that is not JSON.
    pub fn other(status: u16, body: ReplyBody) -> Self {
        Self {
            body,
            ..Self::json(status, Value::Null)
        }
    }

    /// Asks a polling client to come back in `seconds` when `busy`.
    pub fn retry_after_if(mut self, busy: bool, seconds: u64) -> Self {
        if busy {
            self.retry_after = Some(seconds);
        }
        self
    }

    pub fn located(mut self, url: String) -> Self {
        self.location = Some(url);
        self
    }

    pub fn up(mut self, url: String) -> Self {
        self.up = Some(url);
        self
    }
}

/// A request whose JWS passed every check of the common path.
#[derive(Debug)]
pub(super) struct Authenticated {
    /// The verified JWS.
    pub jws: Jws,
    /// The account (for `kid` requests).
    pub account: Option<Account>,
}

impl Authenticated {
    /// The account of a `kid` request. Routing guarantees one for every resource but
    /// newAccount and revokeCert; this turns a routing slip into a refusal, not a panic.
    pub fn account(&self) -> Result<&Account, Problem> {
        self.account
            .as_ref()
            .ok_or_else(|| Problem::malformed("this request must be signed by an account (kid)"))
    }

    /// The `jwk` of a key-signed request.
    pub fn key(&self) -> Option<&AccountKey> {
        match &self.jws.header.signer {
            Signer::Key(key) => Some(key),
            Signer::Account(_) => None,
        }
    }
}

/// The ACME server's protocol engine.
pub struct AcmeService {
    pub(super) urls: Urls,
    pub(super) config: AcmeConfig,
    pub(super) profiles: ProfileSelector,
    pub(super) store: Mutex<AcmeStore>,
    pub(super) backend: Arc<dyn AcmeBackend>,
    pub(super) validator: Validator,
}

impl std::fmt::Debug for AcmeService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeService")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

impl AcmeService {
    /// An engine serving at `base_url` (the config's, or the listener's address), choosing
    /// profiles for `site`, with `store` and `backend`.
    pub fn new(
        config: AcmeConfig,
        base_url: String,
        site: &DnsName,
        store: AcmeStore,
        backend: Arc<dyn AcmeBackend>,
    ) -> Result<Arc<Self>, ConfigError> {
        config.validate()?;
        let profiles = config.profile_selector(site)?;
        let validator = Validator::new(config.validation.clone());
        Ok(Arc::new(Self {
            urls: Urls::new(base_url),
            profiles,
            store: Mutex::new(store),
            backend,
            validator,
            config,
        }))
    }

    /// The URL of the directory, what clients are configured with.
    pub fn directory_url(&self) -> String {
        self.urls.directory()
    }

    /// Counts of the state, for status and tests.
    pub fn summary(&self) -> StoreSummary {
        self.lock().summary()
    }

    /// Whether `nonce` is outstanding (for tests: a refused request must not use it up).
    pub fn nonce_is_outstanding(&self, nonce: &str) -> bool {
        self.lock().nonces.check(Some(nonce)).is_ok()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, AcmeStore> {
        // A panic while holding the lock cannot leave the maps half-changed in a way later
        // requests could misread: every handler changes state in single inserts after checks.
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// The `acme:<account URL>` requester string the backend records.
    pub(super) fn requester(&self, account: &Account) -> String {
        format!("acme:{}", self.urls.account(&account.id))
    }

    /// Handles one request.
    pub async fn handle(
        self: &Arc<Self>,
        method: &Method,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> AcmeResponse {
        let Some(resource) = Resource::from_path(path) else {
            return self.problem_response(&Problem::not_found("resource at this URL"), false);
        };
        match (&resource, method) {
            (Resource::Directory, &Method::GET) => {
                self.respond(Reply::json(200, self.directory()), false)
            }
            (Resource::NewNonce, &Method::HEAD | &Method::GET) => {
                let status = if method == Method::HEAD { 200 } else { 204 };
                let mut response = self.respond(Reply::other(status, ReplyBody::Empty), true);
                response.headers.push(("Cache-Control", "no-store".into()));
                response
            }
            (Resource::Directory | Resource::NewNonce, _) => {
                let mut response = self.problem_response(
                    &Problem::malformed("use GET (or HEAD for new-nonce) here").with_status(405),
                    false,
                );
                response.headers.push(("Allow", "GET, HEAD".into()));
                response
            }
            (_, &Method::POST) => {
                let result = self.post(&resource, path, content_type, body).await;
                match result {
                    Ok(reply) => self.respond(reply, true),
                    Err(problem) => self.problem_response(&problem, true),
                }
            }
            _ => {
                let mut response = self.problem_response(
                    &Problem::malformed(
                        "ACME resources are read with POST-as-GET (an empty JWS payload), not GET",
                    )
                    .with_status(405),
                    true,
                );
                response.headers.push(("Allow", "POST".into()));
                response
            }
        }
    }

    async fn post(
        self: &Arc<Self>,
        resource: &Resource,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Reply, Problem> {
        check_content_type(content_type)?;
        let jws = parse_jws(body)?;
        let request = self.authenticate(resource, path, jws)?;
        match resource {
            Resource::NewAccount => self.new_account(&request),
            Resource::Account(id) => self.account_request(&request, id),
            Resource::AccountOrders(id) => self.account_orders(&request, id),
            Resource::KeyChange => self.key_change(&request),
            Resource::NewOrder => self.new_order(&request),
            Resource::Order(id) => self.order(&request, id),
            Resource::Finalize(id) => self.finalize(&request, id).await,
            Resource::Certificate(id) => self.certificate(&request, id),
            Resource::Authorization(id) => self.authorization(&request, id),
            Resource::Challenge(id) => self.challenge(&request, id),
            Resource::RevokeCert => self.revoke(&request).await,
            Resource::Directory | Resource::NewNonce => {
                Err(Problem::malformed("use GET here").with_status(405))
            }
        }
    }

    /// The common path of every POST: url, key, signature, then the nonce.
    fn authenticate(
        &self,
        resource: &Resource,
        path: &str,
        jws: Jws,
    ) -> Result<Authenticated, Problem> {
        if jws.header.url != self.urls.of_path(path) {
            return Err(Problem::unauthorized(format!(
                "the JWS \"url\" is not this request's URL {}",
                self.urls.of_path(path)
            )));
        }
        let mut store = self.lock();
        let (account, key) = match (&jws.header.signer, resource) {
            (Signer::Key(key), Resource::NewAccount | Resource::RevokeCert) => (None, key.clone()),
            (Signer::Key(_), _) => {
                return Err(Problem::malformed(
                    "this request must name its account with \"kid\", not carry a \"jwk\"",
                ));
            }
            (Signer::Account(_), Resource::NewAccount) => {
                return Err(Problem::malformed(
                    "newAccount must carry the account key as \"jwk\", not a \"kid\"",
                ));
            }
            (Signer::Account(kid), _) => {
                let account = self
                    .urls
                    .account_id_of(kid)
                    .and_then(|id| store.account(&id))
                    .ok_or_else(|| {
                        Problem::new(
                            ProblemType::AccountDoesNotExist,
                            "the \"kid\" names no account of this server; register with newAccount",
                        )
                    })?;
                if account.status != super::model::AccountStatus::Valid {
                    return Err(Problem::unauthorized("the account is deactivated"));
                }
                (Some(account.clone()), account.key.clone())
            }
        };
        jws.verify(&key)?;
        store
            .nonces
            .consume(jws.header.nonce.as_deref())
            .map_err(|e| Problem::new(ProblemType::BadNonce, e.to_string()))?;
        Ok(Authenticated { jws, account })
    }

    fn directory(&self) -> Value {
        let mut meta = json!({ "externalAccountRequired": false });
        if let Some(terms) = &self.config.terms_of_service {
            meta["termsOfService"] = json!(terms);
        }
        json!({
            "newNonce": self.urls.new_nonce(),
            "newAccount": self.urls.new_account(),
            "newOrder": self.urls.new_order(),
            "revokeCert": self.urls.revoke_cert(),
            "keyChange": self.urls.key_change(),
            "meta": meta,
        })
    }

    fn respond(&self, reply: Reply, with_nonce: bool) -> AcmeResponse {
        let mut headers = Vec::new();
        let body = match reply.body {
            ReplyBody::Json(value) => {
                headers.push(("Content-Type", "application/json".to_owned()));
                serde_json::to_vec_pretty(&value).expect("a JSON value always serialises")
            }
            ReplyBody::PemChain(pem) => {
                headers.push(("Content-Type", PEM_CHAIN_CONTENT_TYPE.to_owned()));
                pem.into_bytes()
            }
            ReplyBody::Empty => Vec::new(),
        };
        if let Some(location) = reply.location {
            headers.push(("Location", location));
        }
        if let Some(up) = reply.up {
            headers.push(("Link", format!("<{up}>;rel=\"up\"")));
        }
        if let Some(seconds) = reply.retry_after {
            headers.push(("Retry-After", seconds.to_string()));
        }
        self.common_headers(&mut headers, with_nonce);
        AcmeResponse {
            status: reply.status,
            headers,
            body,
        }
    }

    /// A problem document response; errors on POST carry a fresh nonce so the client can
    /// retry at once (RFC 8555 §6.5).
    pub(super) fn problem_response(&self, problem: &Problem, with_nonce: bool) -> AcmeResponse {
        let mut headers = vec![("Content-Type", PROBLEM_CONTENT_TYPE.to_owned())];
        if problem.status == 503 {
            headers.push(("Retry-After", "60".to_owned()));
        }
        self.common_headers(
            &mut headers,
            with_nonce || problem.kind == ProblemType::BadNonce,
        );
        AcmeResponse {
            status: problem.status,
            headers,
            body: problem.to_json(),
        }
    }

    fn common_headers(&self, headers: &mut Vec<(&'static str, String)>, with_nonce: bool) {
        if with_nonce {
            headers.push(("Replay-Nonce", self.lock().nonces.issue()));
        }
        headers.push(("Link", format!("<{}>;rel=\"index\"", self.urls.directory())));
    }
}

/// The body must be `application/jose+json` (RFC 8555 §6.2); parameters are tolerated.
fn check_content_type(content_type: Option<&str>) -> Result<(), Problem> {
    let media_type = content_type
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    match media_type {
        Some(media) if media.eq_ignore_ascii_case(JOSE_CONTENT_TYPE) => Ok(()),
        _ => Err(Problem::malformed(format!(
            "the request's Content-Type must be {JOSE_CONTENT_TYPE}"
        ))
        .with_status(415)),
    }
}

/// The ACME problem for a backend refusal.
pub(super) fn backend_problem(error: BackendError) -> Problem {
    match error {
        BackendError::BadCsr(detail) => Problem::new(ProblemType::BadCsr, detail),
        BackendError::NamesRefused(detail) => Problem::new(ProblemType::RejectedIdentifier, detail),
        BackendError::Unavailable(detail) => Problem::internal(detail).with_status(503),
        BackendError::UnknownCertificate(detail) => Problem::malformed(detail).with_status(404),
        BackendError::AlreadyRevoked(detail) => Problem::new(ProblemType::AlreadyRevoked, detail),
        BackendError::Internal(detail) => Problem::internal(detail),
    }
}
