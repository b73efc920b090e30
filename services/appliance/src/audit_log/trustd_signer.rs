//! Seals signed by trustd over D-Bus (`org.bunkeros.Trust1.SignAuditDigest`).
//!
//! trustd signs under the caller's own user name only (root may name any service), so the
//! service name given here must be the user the service runs as (`minerd`, `sited`).

use zbus::Connection;

use super::seal::{SealSignature, SealSigner, SignError, SignFuture, valid_service_name};
use crate::dbus::contracts::Trust1Proxy;

/// A [`SealSigner`] that asks trustd.
#[derive(Debug, Clone)]
pub struct TrustdSigner {
    connection: Connection,
    service: String,
}

impl TrustdSigner {
    /// Signs as `service` through trustd on `connection`; `None` for a name trustd refuses.
    pub fn new(connection: Connection, service: &str) -> Option<Self> {
        valid_service_name(service).then(|| Self {
            connection,
            service: service.to_owned(),
        })
    }

    async fn sign_digest(&self, digest: [u8; 32]) -> Result<SealSignature, SignError> {
        let unavailable = |e: zbus::Error| SignError::Unavailable(format!("trustd: {e}"));
        let proxy = Trust1Proxy::new(&self.connection)
            .await
            .map_err(unavailable)?;
        // The key is read at each seal: it changes when the CA is re-created.
        let status = proxy.status().await.map_err(unavailable)?;
        let public_key_sec1 = public_key_of(&status)?;
        let signature_der = proxy
            .sign_audit_digest(&self.service, &digest)
            .await
            .map_err(unavailable)?;
        Ok(SealSignature {
            service: self.service.clone(),
            public_key_sec1,
            signature_der,
        })
    }
}

/// The CA public key (hex SEC1 under `public_key`) in trustd's `Status()` document.
fn public_key_of(status: &str) -> Result<Vec<u8>, SignError> {
    let document: serde_json::Value = serde_json::from_str(status)
        .map_err(|e| SignError::Invalid(format!("trustd's status is not JSON: {e}")))?;
    let hex_key = document
        .get("public_key")
        .and_then(|v| v.as_str())
        .ok_or_else(|| SignError::Invalid("trustd's status has no `public_key`".to_owned()))?;
    hex::decode(hex_key)
        .map_err(|_| SignError::Invalid("trustd's `public_key` is not hex".to_owned()))
}

impl SealSigner for TrustdSigner {
    fn sign(&self, digest: [u8; 32]) -> SignFuture<'_> {
        Box::pin(self.sign_digest(digest))
    }
}
