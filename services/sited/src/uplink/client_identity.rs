//! The certificate this site presents to the control centre's Alertmanager.
//!
//! `source = "trustd"` (the appliance's way, as hubd does it for its links): a fresh P-256 key
//! made in memory, a request for the configured DNS name sent to the local trustd
//! (`org.bunkeros.Trust1.Issue`, profile `service`, whose certificates carry clientAuth), and
//! the chain it returns. The key never touches the disk; a restarted sited gets a new
//! certificate, and a running one a new key and certificate two thirds into the certificate's
//! life. `source = "pem"`: files, where no trustd runs (and in tests).

use std::time::SystemTime;

use appliance::dbus::Bus;
use appliance::tls::Identity;
use appliance::tls::trustd_issue::{self, IssueError, RequestedName};

use super::settings::{ClientIdentitySource, UplinkSettings};

/// The trustd profile the uplink's client certificate is issued under.
pub const TRUSTD_PROFILE: &str = "service";

/// Why there is no client identity (yet).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{0}")]
    Pem(String),
    #[error("trustd did not issue the uplink certificate: {0}")]
    Trustd(#[from] IssueError),
}

/// The identity and when to replace it.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub identity: Identity,
    /// For the log: `trustd (serial 1f…)` or `PEM <chain>`.
    pub source: String,
    /// Two thirds into a trustd certificate's life; `None` for PEM files.
    pub renew_at: Option<SystemTime>,
}

/// Obtains the identity `[uplink.client]` names; `bus` is where trustd is.
pub async fn obtain(settings: &UplinkSettings, bus: &Bus) -> Result<ClientIdentity, IdentityError> {
    match &settings.client {
        ClientIdentitySource::Pem { chain, .. } => Ok(ClientIdentity {
            identity: settings.pem_identity().map_err(IdentityError::Pem)?,
            source: format!("PEM {}", chain.display()),
            renew_at: None,
        }),
        ClientIdentitySource::Trustd { name } => from_trustd(name, bus).await,
    }
}

async fn from_trustd(name: &str, bus: &Bus) -> Result<ClientIdentity, IdentityError> {
    let issued =
        trustd_issue::issue_identity(bus, &RequestedName::Dns(name.to_owned()), TRUSTD_PROFILE)
            .await?;
    Ok(ClientIdentity {
        identity: issued.identity,
        source: format!("trustd (serial {})", issued.serial),
        renew_at: Some(issued.renew_at),
    })
}
