//! Accounts (RFC 8555 §7.3): creation, lookup by key, update, deactivation, key rollover.
//!
//! Accounts are open: anyone who reaches the listener may register one, because an account
//! proves nothing by itself. What it may get certified is decided per name, by challenges
//! against the site's own network, and by the CA's profiles. Contacts are optional `mailto:`
//! URLs, kept for the operator; the appliance sends no mail.

use serde_json::{Value, json};

use super::encoding::random_id;
use super::jwk::{AccountKey, quote};
use super::jws::{Signer, parse_jws};
use super::model::{Account, AccountStatus};
use super::problem::{Problem, ProblemType};
use super::service::{AcmeService, Authenticated, Reply};

/// Most contacts on one account.
const MAX_CONTACTS: usize = 8;
/// Longest contact URL.
const MAX_CONTACT_LEN: usize = 254;

impl AcmeService {
    /// newAccount (§7.3, §7.3.1).
    pub(super) fn new_account(&self, request: &Authenticated) -> Result<Reply, Problem> {
        let key = request.key().ok_or_else(|| {
            Problem::malformed("newAccount must carry the account key as \"jwk\"")
        })?;
        let payload = request.jws.json()?;
        let only_existing = optional_bool(payload, "onlyReturnExisting")?.unwrap_or(false);
        let terms_agreed = optional_bool(payload, "termsOfServiceAgreed")?.unwrap_or(false);
        let contact = parse_contacts(payload.get("contact"))?;

        let mut store = self.lock();
        if let Some(existing) = store.account_by_thumbprint(&key.thumbprint()) {
            if existing.status != AccountStatus::Valid {
                return Err(Problem::unauthorized(
                    "the account with this key is deactivated",
                ));
            }
            let url = self.urls.account(&existing.id);
            return Ok(Reply::json(200, existing.to_json(&self.urls)).located(url));
        }
        if only_existing {
            return Err(Problem::new(
                ProblemType::AccountDoesNotExist,
                "no account exists for this key",
            ));
        }
        if store.account_count() >= self.config.limits.max_accounts {
            return Err(Problem::new(
                ProblemType::RateLimited,
                "the server holds as many accounts as it is configured for; ask the operator",
            ));
        }
        if self.config.terms_of_service.is_some() && !terms_agreed {
            return Err(Problem::malformed(
                "the terms of service must be agreed to (termsOfServiceAgreed: true)",
            ));
        }
        let account = Account {
            id: random_id(),
            thumbprint: key.thumbprint(),
            key: key.clone(),
            contact,
            status: AccountStatus::Valid,
            terms_agreed,
            created: Self::now(),
        };
        let url = self.urls.account(&account.id);
        let body = account.to_json(&self.urls);
        store.save_account(account)?;
        tracing::info!(account = %url, "ACME: new account");
        Ok(Reply::json(201, body).located(url))
    }

    /// POST to an account URL: POST-as-GET, contact update, or deactivation (§7.3.2, §7.3.6).
    pub(super) fn account_request(
        &self,
        request: &Authenticated,
        id: &str,
    ) -> Result<Reply, Problem> {
        let account = own_account(request, id)?;
        let url = self.urls.account(&account.id);
        if request.jws.is_post_as_get() {
            return Ok(Reply::json(200, account.to_json(&self.urls)).located(url));
        }
        let payload = request.jws.json()?;
        let mut updated = account.clone();
        if let Some(status) = payload.get("status") {
            match status.as_str() {
                Some("deactivated") => updated.status = AccountStatus::Deactivated,
                Some("valid") => {}
                _ => {
                    return Err(Problem::malformed(
                        "an account's status can only be changed to \"deactivated\"",
                    ));
                }
            }
        }
        if payload.get("contact").is_some() {
            updated.contact = parse_contacts(payload.get("contact"))?;
        }
        if let Some(agreed) = optional_bool(payload, "termsOfServiceAgreed")? {
            updated.terms_agreed |= agreed;
        }
        if updated != *account {
            self.lock().save_account(updated.clone())?;
            if updated.status == AccountStatus::Deactivated {
                tracing::info!(account = %url, "ACME: account deactivated");
            }
        }
        Ok(Reply::json(200, updated.to_json(&self.urls)).located(url))
    }

    /// The account's orders still in memory (§7.1.2.1).
    pub(super) fn account_orders(
        &self,
        request: &Authenticated,
        id: &str,
    ) -> Result<Reply, Problem> {
        let account = own_account(request, id)?;
        let store = self.lock();
        let mut orders: Vec<&super::model::Order> = store
            .orders
            .values()
            .filter(|order| order.account == account.id)
            .collect();
        orders.sort_by_key(|order| order.expires);
        let urls: Vec<String> = orders
            .iter()
            .map(|order| self.urls.order(&order.id))
            .collect();
        Ok(Reply::json(200, json!({ "orders": urls })))
    }

    /// Account key rollover (§7.3.5): the outer JWS is signed by the old key, the inner by the
    /// new one, so both holders agree.
    pub(super) fn key_change(&self, request: &Authenticated) -> Result<Reply, Problem> {
        let account = request.account()?;
        let inner_bytes = serde_json::to_vec(request.jws.json()?)
            .map_err(|e| Problem::malformed(format!("the keyChange payload is unusable: {e}")))?;
        let inner = parse_jws(&inner_bytes)?;
        let Signer::Key(new_key) = &inner.header.signer else {
            return Err(Problem::malformed(
                "the inner keyChange JWS must carry the new key as \"jwk\"",
            ));
        };
        if inner.header.nonce.is_some() {
            return Err(Problem::malformed(
                "the inner keyChange JWS must not carry a nonce",
            ));
        }
        if inner.header.url != request.jws.header.url {
            return Err(Problem::malformed(
                "the inner keyChange JWS \"url\" differs from the outer one",
            ));
        }
        inner.verify(new_key)?;
        let payload = inner.json()?;
        let account_url = self.urls.account(&account.id);
        if payload.get("account").and_then(Value::as_str) != Some(account_url.as_str()) {
            return Err(Problem::unauthorized(
                "the inner keyChange payload names another account",
            ));
        }
        let old_key = payload
            .get("oldKey")
            .ok_or_else(|| Problem::malformed("the inner keyChange payload has no \"oldKey\""))
            .and_then(AccountKey::from_json)?;
        if old_key != account.key {
            return Err(Problem::unauthorized(
                "\"oldKey\" is not the account's current key",
            ));
        }
        let mut store = self.lock();
        if let Some(other) = store.account_by_thumbprint(&new_key.thumbprint()) {
            let url = self.urls.account(&other.id);
            return Err(Problem::malformed(format!(
                "the new key is already the key of account {url}"
            ))
            .with_status(409));
        }
        let mut updated = account.clone();
        updated.thumbprint = new_key.thumbprint();
        updated.key = new_key.clone();
        let body = updated.to_json(&self.urls);
        store.save_account(updated)?;
        tracing::info!(account = %account_url, "ACME: account key changed");
        Ok(Reply::json(200, body).located(account_url))
    }
}

/// The request's account, which must be the one the URL names.
fn own_account<'a>(request: &'a Authenticated, id: &str) -> Result<&'a Account, Problem> {
    let account = request.account()?;
    if account.id != id {
        return Err(Problem::unauthorized(
            "the request is signed by another account",
        ));
    }
    Ok(account)
}

fn optional_bool(payload: &Value, name: &str) -> Result<Option<bool>, Problem> {
    match payload.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(_) => Err(Problem::malformed(format!(
            "\"{name}\" must be true or false"
        ))),
    }
}

/// Parses `contact`: `mailto:` URLs with one plain address each (RFC 8555 §7.3).
fn parse_contacts(value: Option<&Value>) -> Result<Vec<String>, Problem> {
    let entries = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(Problem::malformed("\"contact\" must be an array of URLs")),
    };
    if entries.len() > MAX_CONTACTS {
        return Err(Problem::new(
            ProblemType::InvalidContact,
            format!("at most {MAX_CONTACTS} contacts are accepted"),
        ));
    }
    entries
        .iter()
        .map(|entry| {
            let text = entry
                .as_str()
                .ok_or_else(|| Problem::malformed("each contact must be a string"))?;
            check_contact(text)?;
            Ok(text.to_owned())
        })
        .collect()
}

fn check_contact(text: &str) -> Result<(), Problem> {
    let invalid = |why: &str| {
        Problem::new(
            ProblemType::InvalidContact,
            format!("the contact \"{}\" is not usable: {why}", quote(text)),
        )
    };
    if text.len() > MAX_CONTACT_LEN {
        return Err(invalid("it is too long"));
    }
    let Some((scheme, address)) = text.split_once(':') else {
        return Err(invalid("it is not a URL"));
    };
    if !scheme.eq_ignore_ascii_case("mailto") {
        return Err(Problem::new(
            ProblemType::UnsupportedContact,
            format!(
                "only mailto: contacts are supported, not \"{}:\"",
                quote(scheme)
            ),
        ));
    }
    if address.contains(['?', ',', '%']) {
        return Err(invalid(
            "one plain address, without header fields or encodings",
        ));
    }
    if address
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(invalid(
            "it contains spaces, control or non-ASCII characters",
        ));
    }
    match address.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.contains('@') =>
        {
            Ok(())
        }
        _ => Err(invalid("it is not of the form mailto:name@domain")),
    }
}
