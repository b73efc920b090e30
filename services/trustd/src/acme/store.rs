//! The ACME server's state: durable accounts, in-memory orders, authorisations, challenges,
//! issued-certificate records and nonces.
//!
//! Accounts are written to the state directory, one file each (`account-<id>.json`, atomic
//! writes), *before* memory changes, so a failed write changes nothing and a crash loses at
//! most the request in flight. Everything else is short-lived and bounded (see
//! [`super::config::Limits`]), and expired entries are pruned as new orders arrive.

use std::collections::HashMap;

use appliance::state::{StateDir, StateError};
use time::OffsetDateTime;

use super::model::{
    Account, Authorization, AuthorizationStatus, ChallengeStatus, IssuedRecord, Order,
    OrderProgress, OrderStatus, StoredAccount,
};
use super::nonce::NonceStore;
use super::problem::Problem;

/// Prefix of account state files.
const ACCOUNT_FILE_PREFIX: &str = "account-";

/// Why the account store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading the directory or a file failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// An account file holds something unusable.
    #[error(
        "the ACME account file {file} is not usable: {reason}; move it away to drop the account"
    )]
    BadAccount {
        /// The file name.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// Counts of what the store holds, for tests ("a refused request changes nothing") and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSummary {
    /// Accounts.
    pub accounts: usize,
    /// Orders.
    pub orders: usize,
    /// Authorisations.
    pub authorizations: usize,
    /// Certificate records.
    pub certificates: usize,
    /// Outstanding nonces.
    pub nonces: usize,
}

/// Everything the ACME server knows.
#[derive(Debug)]
pub struct AcmeStore {
    state: StateDir,
    accounts: HashMap<String, Account>,
    by_thumbprint: HashMap<String, String>,
    pub(super) orders: HashMap<String, Order>,
    pub(super) authorizations: HashMap<String, Authorization>,
    pub(super) challenges: HashMap<String, String>,
    pub(super) certificates: HashMap<String, IssuedRecord>,
    pub(super) by_fingerprint: HashMap<[u8; 32], String>,
    /// Issued and not yet used nonces.
    pub nonces: NonceStore,
}

impl AcmeStore {
    /// Opens the store in `state`, loading every account.
    pub fn open(state: StateDir, max_nonces: usize) -> Result<Self, StoreError> {
        let mut store = Self {
            accounts: HashMap::new(),
            by_thumbprint: HashMap::new(),
            orders: HashMap::new(),
            authorizations: HashMap::new(),
            challenges: HashMap::new(),
            certificates: HashMap::new(),
            by_fingerprint: HashMap::new(),
            nonces: NonceStore::new(max_nonces),
            state,
        };
        let directory = store.state.path().to_path_buf();
        let entries = std::fs::read_dir(&directory).map_err(|source| StateError::Directory {
            path: directory.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| StateError::Directory {
                path: directory.clone(),
                source,
            })?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.starts_with(ACCOUNT_FILE_PREFIX) && name.ends_with(".json") {
                store.load_account(&name)?;
            }
        }
        Ok(store)
    }

    fn load_account(&mut self, file: &str) -> Result<(), StoreError> {
        let bad = |reason: String| StoreError::BadAccount {
            file: file.to_owned(),
            reason,
        };
        let Some(stored) = self.state.read_json::<StoredAccount>(file)? else {
            return Ok(());
        };
        if account_file(&stored.id) != file {
            return Err(bad(format!("it holds account {:?}", stored.id)));
        }
        let account = Account::from_stored(stored).map_err(bad)?;
        if let Some(other) = self.by_thumbprint.get(&account.thumbprint) {
            return Err(bad(format!("its key is also account {other}'s")));
        }
        self.by_thumbprint
            .insert(account.thumbprint.clone(), account.id.clone());
        self.accounts.insert(account.id.clone(), account);
        Ok(())
    }

    /// The account `id`.
    pub fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.get(id)
    }

    /// How many accounts exist.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// The account whose key has `thumbprint`.
    pub fn account_by_thumbprint(&self, thumbprint: &str) -> Option<&Account> {
        self.by_thumbprint
            .get(thumbprint)
            .and_then(|id| self.accounts.get(id))
    }

    /// Writes `account` (new or changed) to disk, then to memory. A failed write changes
    /// nothing. The caller has checked that a changed key belongs to no other account.
    pub fn save_account(&mut self, account: Account) -> Result<(), Problem> {
        self.state
            .write_json(&account_file(&account.id), &account.to_stored())
            .map_err(|e| {
                tracing::error!(error = %e, "ACME: cannot write an account");
                Problem::internal("the account could not be stored; nothing was changed")
            })?;
        if let Some(previous) = self.accounts.get(&account.id) {
            self.by_thumbprint.remove(&previous.thumbprint);
        }
        self.by_thumbprint
            .insert(account.thumbprint.clone(), account.id.clone());
        self.accounts.insert(account.id.clone(), account);
        Ok(())
    }

    /// Counts, for tests and status.
    pub fn summary(&self) -> StoreSummary {
        StoreSummary {
            accounts: self.accounts.len(),
            orders: self.orders.len(),
            authorizations: self.authorizations.len(),
            certificates: self.certificates.len(),
            nonces: self.nonces.len(),
        }
    }

    /// The order's status at `now`, with the problem that made it invalid.
    pub fn order_status(
        &self,
        order: &Order,
        now: OffsetDateTime,
    ) -> (OrderStatus, Option<Problem>) {
        match &order.progress {
            OrderProgress::Issued(_) => return (OrderStatus::Valid, None),
            OrderProgress::Processing => return (OrderStatus::Processing, None),
            OrderProgress::Open => {}
        }
        if now >= order.expires {
            return (
                OrderStatus::Invalid,
                Some(Problem::malformed(
                    "the order expired before it was finalized",
                )),
            );
        }
        let mut all_valid = true;
        for id in &order.authorizations {
            let Some(authz) = self.authorizations.get(id) else {
                return (
                    OrderStatus::Invalid,
                    Some(Problem::malformed("an authorization of the order expired")),
                );
            };
            match authz.status_at(now) {
                AuthorizationStatus::Valid => {}
                AuthorizationStatus::Pending => all_valid = false,
                AuthorizationStatus::Invalid => {
                    let error = authz
                        .challenges
                        .iter()
                        .find_map(|c| c.error.clone())
                        .unwrap_or_else(|| Problem::unauthorized("an authorization failed"));
                    return (OrderStatus::Invalid, Some(error));
                }
                AuthorizationStatus::Deactivated => {
                    return (
                        OrderStatus::Invalid,
                        Some(Problem::unauthorized(format!(
                            "the authorization for {} was deactivated",
                            authz.identifier.text()
                        ))),
                    );
                }
                AuthorizationStatus::Expired => {
                    return (
                        OrderStatus::Invalid,
                        Some(Problem::unauthorized(format!(
                            "the authorization for {} expired",
                            authz.identifier.text()
                        ))),
                    );
                }
            }
        }
        let status = if all_valid {
            OrderStatus::Ready
        } else {
            OrderStatus::Pending
        };
        (status, None)
    }

    /// Orders of `account` still in progress (pending, ready or processing) at `now`.
    pub fn open_orders_of(&self, account: &str, now: OffsetDateTime) -> usize {
        self.orders
            .values()
            .filter(|order| order.account == account)
            .filter(|order| {
                matches!(
                    self.order_status(order, now).0,
                    OrderStatus::Pending | OrderStatus::Ready | OrderStatus::Processing
                )
            })
            .count()
    }

    /// A valid authorisation of `account` for `identifier` that stays valid until `until`.
    pub fn reusable_authorization(
        &self,
        account: &str,
        identifier: &super::model::Identifier,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Option<&Authorization> {
        self.authorizations.values().find(|authz| {
            authz.account == account
                && &authz.identifier == identifier
                && authz.status_at(now) == AuthorizationStatus::Valid
                && authz.expires >= until
        })
    }

    /// Forgets what has expired: open orders past their expiry, issued ones past their
    /// certificate's download window, authorisations no order needs, challenge links, certificate chains past
    /// their download window and records past the certificate's expiry.
    pub fn prune(&mut self, now: OffsetDateTime) {
        let certificates = &self.certificates;
        self.orders.retain(|_, order| match &order.progress {
            OrderProgress::Open => now < order.expires,
            OrderProgress::Processing => true,
            // An issued order stays while its certificate can be downloaded.
            OrderProgress::Issued(id) => certificates
                .get(id)
                .is_some_and(|record| now < record.download_until),
        });
        let referenced: std::collections::HashSet<&String> = self
            .orders
            .values()
            .flat_map(|order| order.authorizations.iter())
            .collect();
        let keep: std::collections::HashSet<String> = self
            .authorizations
            .values()
            .filter(|authz| {
                referenced.contains(&authz.id) || authz.status_at(now) == AuthorizationStatus::Valid
            })
            .map(|authz| authz.id.clone())
            .collect();
        self.authorizations.retain(|id, _| keep.contains(id));
        self.challenges.retain(|_, authz| keep.contains(authz));
        for record in self.certificates.values_mut() {
            if now >= record.download_until {
                record.chain_pem = None;
            }
        }
        self.certificates.retain(|_, record| now < record.not_after);
        let certificates = &self.certificates;
        self.by_fingerprint
            .retain(|_, id| certificates.contains_key(id));
    }

    /// Whether some challenge of `authz` is being validated.
    pub fn is_validating(&self, authz: &Authorization) -> bool {
        authz
            .challenges
            .iter()
            .any(|c| c.status == ChallengeStatus::Processing)
    }
}

fn account_file(id: &str) -> String {
    format!("{ACCOUNT_FILE_PREFIX}{id}.json")
}
