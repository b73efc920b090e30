//! `trustd-signs`: the CA works in this boot. After a new image the CA key's TPM policy meets
//! new PCR 11 values; a slot on which trustd is sealed must not be blessed. So the gate asks for
//! a real signature, not only the status: trustd signs the gate's statement for this boot
//! through `SignAuditDigest`, and the signature is checked against the CA key of trustd's
//! status with appliance's seal verification (trustd's own domain separation). The signature is
//! kept as evidence for a rollout.

use appliance::audit_log::TrustedKey;
use appliance::dbus::contracts::{TRUST, Trust1Proxy};
use serde::Deserialize;
use zbus::Connection;
use zbus::proxy::CacheProperties;

use super::on_bus;
use super::verdict::{BootId, Check, GateSignature, check_names::TRUSTD_SIGNS, statement_digest};

/// The part of trustd's `Status()` document the gate reads (fields are only ever added).
#[derive(Debug, Deserialize)]
struct TrustStatus {
    state: String,
    reason: Option<String>,
    public_key: String,
}

/// Checks trustd; the signature when it passed.
pub async fn check_trustd_signs(
    connection: &Connection,
    sign_as: &str,
    boot: &BootId,
) -> (Check, Option<GateSignature>) {
    match sign_statement(connection, sign_as, boot).await {
        Ok(signature) => {
            let sentence = format!(
                "trustd signed the gate's statement for boot {} as {} with CA key {}",
                signature.boot_id,
                signature.service,
                &signature.key_id[..16]
            );
            (Check::pass(TRUSTD_SIGNS, sentence), Some(signature))
        }
        Err(why) => (
            Check::fail(TRUSTD_SIGNS, format!("trustd cannot sign: {why}")),
            None,
        ),
    }
}

async fn sign_statement(
    connection: &Connection,
    sign_as: &str,
    boot: &BootId,
) -> Result<GateSignature, String> {
    if !on_bus(connection, TRUST.bus_name).await? {
        return Err(format!(
            "trustd is not on the bus ({} has no owner)",
            TRUST.bus_name
        ));
    }
    let trust = Trust1Proxy::builder(connection)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(|e| format!("no proxy for trustd: {e}"))?;
    let status = trust
        .status()
        .await
        .map_err(|e| format!("Status() failed: {e}"))?;
    let (key, public_key) = usable_key(&status)?;
    let digest = statement_digest(boot.as_str());
    let signature = trust
        .sign_audit_digest(sign_as, &digest)
        .await
        .map_err(|e| format!("it refused to sign the gate's statement: {e}"))?;
    if !key.verifies(sign_as, &digest, &signature) {
        return Err("its signature does not verify with the CA key its status shows".to_owned());
    }
    Ok(GateSignature {
        boot_id: boot.as_str().to_owned(),
        service: sign_as.to_owned(),
        digest: hex::encode(digest),
        public_key,
        key_id: key.id().to_owned(),
        signature: hex::encode(signature),
    })
}

/// The CA key (and its hex as trustd wrote it) of a status in which trustd can sign, or why it
/// cannot.
///
/// `ready` and `lockdown` sign audit statements (trustd keeps signing its audit trail in
/// lockdown; the site's lockdown is the `site-state` check's to judge). `sealed` (the TPM
/// refuses the key under this boot's measurements) and `initialised` (no usable CA) do not.
fn usable_key(status: &str) -> Result<(TrustedKey, String), String> {
    let status: TrustStatus = serde_json::from_str(status)
        .map_err(|e| format!("its status is not the document the contract describes: {e}"))?;
    if status.state != "ready" && status.state != "lockdown" {
        let reason = status.reason.as_deref().unwrap_or("no reason given");
        return Err(format!("its CA is {}: {reason}", status.state));
    }
    let key = TrustedKey::from_sec1_hex(&status.public_key)
        .map_err(|e| format!("its status shows no usable CA public key ({e})"))?;
    Ok((key, status.public_key.trim().to_owned()))
}
