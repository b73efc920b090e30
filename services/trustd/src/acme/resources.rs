//! The server's URL space: every resource URL it hands out, and the reverse mapping from a
//! request path to the resource it names.
//!
//! Both live here so they cannot drift apart: a URL the server builds always routes back to the
//! same resource, which the JWS `url` check relies on.

/// A resource a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `/directory`.
    Directory,
    /// `/new-nonce`.
    NewNonce,
    /// `/new-account`.
    NewAccount,
    /// `/new-order`.
    NewOrder,
    /// `/revoke-cert`.
    RevokeCert,
    /// `/key-change`.
    KeyChange,
    /// `/account/<id>`.
    Account(String),
    /// `/account/<id>/orders`.
    AccountOrders(String),
    /// `/order/<id>`.
    Order(String),
    /// `/order/<id>/finalize`.
    Finalize(String),
    /// `/authz/<id>`.
    Authorization(String),
    /// `/challenge/<id>`.
    Challenge(String),
    /// `/certificate/<id>`.
    Certificate(String),
}

/// Longest identifier segment accepted in a path (ours are 22 characters).
const MAX_ID_LEN: usize = 64;

impl Resource {
    /// The resource `path` names, if any.
    pub fn from_path(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let id = |text: &str| -> Option<String> {
            let ok = !text.is_empty()
                && text.len() <= MAX_ID_LEN
                && super::encoding::is_b64url_text(text);
            ok.then(|| text.to_owned())
        };
        Some(match segments.as_slice() {
            ["directory"] => Self::Directory,
            ["new-nonce"] => Self::NewNonce,
            ["new-account"] => Self::NewAccount,
            ["new-order"] => Self::NewOrder,
            ["revoke-cert"] => Self::RevokeCert,
            ["key-change"] => Self::KeyChange,
            ["account", account] => Self::Account(id(account)?),
            ["account", account, "orders"] => Self::AccountOrders(id(account)?),
            ["order", order] => Self::Order(id(order)?),
            ["order", order, "finalize"] => Self::Finalize(id(order)?),
            ["authz", authz] => Self::Authorization(id(authz)?),
            ["challenge", challenge] => Self::Challenge(id(challenge)?),
            ["certificate", certificate] => Self::Certificate(id(certificate)?),
            _ => return None,
        })
    }
}

/// Builds the absolute URLs of resources from the server's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    base: String,
}

impl Urls {
    /// URLs under `base` (`https://host[:port]`, no trailing slash).
    pub fn new(base: impl Into<String>) -> Self {
        Self { base: base.into() }
    }

    /// The origin.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The absolute URL of a request `path` (what a JWS `url` must equal).
    pub fn of_path(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The directory.
    pub fn directory(&self) -> String {
        self.of_path("/directory")
    }

    /// newNonce.
    pub fn new_nonce(&self) -> String {
        self.of_path("/new-nonce")
    }

    /// newAccount.
    pub fn new_account(&self) -> String {
        self.of_path("/new-account")
    }

    /// newOrder.
    pub fn new_order(&self) -> String {
        self.of_path("/new-order")
    }

    /// revokeCert.
    pub fn revoke_cert(&self) -> String {
        self.of_path("/revoke-cert")
    }

    /// keyChange.
    pub fn key_change(&self) -> String {
        self.of_path("/key-change")
    }

    /// An account (its URL is also its `kid`).
    pub fn account(&self, id: &str) -> String {
        self.of_path(&format!("/account/{id}"))
    }

    /// An account's order list.
    pub fn account_orders(&self, id: &str) -> String {
        self.of_path(&format!("/account/{id}/orders"))
    }

    /// An order.
    pub fn order(&self, id: &str) -> String {
        self.of_path(&format!("/order/{id}"))
    }

    /// An order's finalize URL.
    pub fn finalize(&self, id: &str) -> String {
        self.of_path(&format!("/order/{id}/finalize"))
    }

    /// An authorisation.
    pub fn authorization(&self, id: &str) -> String {
        self.of_path(&format!("/authz/{id}"))
    }

    /// A challenge.
    pub fn challenge(&self, id: &str) -> String {
        self.of_path(&format!("/challenge/{id}"))
    }

    /// A certificate chain download.
    pub fn certificate(&self, id: &str) -> String {
        self.of_path(&format!("/certificate/{id}"))
    }

    /// The account id a `kid` names, if it is one of this server's account URLs.
    pub fn account_id_of(&self, kid: &str) -> Option<String> {
        let path = kid.strip_prefix(&self.base)?;
        match Resource::from_path(path)? {
            Resource::Account(id) => Some(id),
            _ => None,
        }
    }
}
