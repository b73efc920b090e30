//! The certificate an updated presents on the exchange between hubs: issued by the local
//! trustd for a key made in memory, replaced two thirds into its life, retried every minute
//! while trustd cannot issue (sealed, not started yet), so the exchange comes up by itself
//! once it can.

use std::sync::{PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use appliance::dbus::Bus;
use appliance::tls::Identity;
use appliance::tls::trustd_issue::{self, RequestedName};
use tokio_util::sync::CancellationToken;

/// How long to wait before asking trustd again after it issued nothing.
const RETRY_EVERY: Duration = Duration::from_secs(60);

/// The current identity, or why there is none yet.
#[derive(Debug)]
pub struct ExchangeCertificate {
    name: RequestedName,
    profile: &'static str,
    current: RwLock<Current>,
}

#[derive(Debug)]
struct Current {
    /// The identity and when its certificate expires.
    identity: Option<(Identity, SystemTime)>,
    /// Why there is no (newer) identity: trustd's last refusal.
    why: String,
}

impl ExchangeCertificate {
    /// A certificate for `name` under `profile`, asked for by [`keep_fresh`](Self::keep_fresh).
    pub fn from_trustd(name: RequestedName, profile: &'static str) -> ExchangeCertificate {
        ExchangeCertificate {
            name,
            profile,
            current: RwLock::new(Current {
                identity: None,
                why: "trustd has not been asked yet".to_owned(),
            }),
        }
    }

    /// An identity made elsewhere, used as it is: nothing renews it (tests, and the other
    /// ends of tests that carry the exchange through hubd).
    pub fn fixed(identity: Identity) -> ExchangeCertificate {
        let not_after = trustd_issue::validity(identity.leaf().as_ref())
            .map_or(SystemTime::UNIX_EPOCH, |(_, not_after)| not_after);
        ExchangeCertificate {
            name: RequestedName::Uri(String::new()),
            profile: "",
            current: RwLock::new(Current {
                identity: Some((identity, not_after)),
                why: String::new(),
            }),
        }
    }

    /// The identity to present, or the sentence saying why there is none (never one whose
    /// certificate has expired: a peer would only answer with an opaque TLS alert).
    pub fn identity(&self) -> Result<Identity, String> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        match &current.identity {
            Some((identity, not_after)) if SystemTime::now() < *not_after => Ok(identity.clone()),
            Some(_) => Err(format!(
                "the exchange certificate has expired and trustd issued no new one: {}",
                current.why
            )),
            None => Err(current.why.clone()),
        }
    }

    /// Asks trustd on `bus` now, again at each renewal time, and every minute while it fails,
    /// until `cancel` fires.
    pub async fn keep_fresh(&self, bus: Bus, cancel: CancellationToken) {
        loop {
            let wait = match trustd_issue::issue_identity(&bus, &self.name, self.profile).await {
                Ok(issued) => {
                    tracing::info!(
                        serial = %issued.serial, profile = self.profile,
                        "the rollout exchange has its certificate from trustd"
                    );
                    let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                    current.identity = Some((issued.identity, issued.not_after));
                    drop(current);
                    issued
                        .renew_at
                        .duration_since(SystemTime::now())
                        .unwrap_or_default()
                        .max(RETRY_EVERY)
                }
                Err(error) => {
                    let sentence =
                        format!("trustd issued no certificate for the exchange: {error}");
                    tracing::warn!("{sentence}; asking again in {} s", RETRY_EVERY.as_secs());
                    // A certificate not yet expired stays in use until it is replaced.
                    self.current
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .why = sentence;
                    RETRY_EVERY
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
