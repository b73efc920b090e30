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
    current: RwLock<Result<Identity, String>>,
}

impl ExchangeCertificate {
    /// A certificate for `name` under `profile`, asked for by [`keep_fresh`](Self::keep_fresh).
    pub fn from_trustd(name: RequestedName, profile: &'static str) -> ExchangeCertificate {
        ExchangeCertificate {
            name,
            profile,
            current: RwLock::new(Err("trustd has not been asked yet".to_owned())),
        }
    }

    /// An identity made elsewhere, used as it is: nothing renews it (tests, and the other
    /// ends of tests that carry the exchange through hubd).
    pub fn fixed(identity: Identity) -> ExchangeCertificate {
        ExchangeCertificate {
            name: RequestedName::Uri(String::new()),
            profile: "",
            current: RwLock::new(Ok(identity)),
        }
    }

    /// The identity to present, or the sentence saying why there is none.
    pub fn identity(&self) -> Result<Identity, String> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
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
                    self.set(Ok(issued.identity));
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
                    // A certificate still valid stays in use until it is replaced.
                    if self.identity().is_err() {
                        self.set(Err(sentence));
                    }
                    RETRY_EVERY
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn set(&self, value: Result<Identity, String>) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = value;
    }
}
