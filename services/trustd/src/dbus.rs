//! `org.bunkeros.Trust1` at `/org/bunkeros/Trust1`: the CA on the system bus.
//!
//! The edge between D-Bus and the [`Authority`]: arguments are parsed here into typed values,
//! the authority decides, and its refusals become D-Bus errors named in
//! [`appliance::dbus::contracts::trust_errors`] whose message is the authority's sentence.
//! Every call runs on tokio's blocking pool, because the TPM signs in milliseconds and SQLite
//! writes with `fsync`: the bus connection keeps serving other callers meanwhile.
//!
//! Who may call what is the bus policy's job (`image/dbus-1/org.bunkeros.Trust1.conf`: `Issue`,
//! `Revoke`, `IntermediateRequest` and `InstallChain` for root and `bunkeros-operators`,
//! `SignAuditDigest` for the services, the rest — `Quote` included — for everyone); trustd records the caller's uid, as the bus daemon vouches for it, as the
//! requester of every issuance and revocation (`dbus:uid=N`), so the store says who asked, and
//! logs it with every change of the CA's own certificate.
//!
//! Lockdown is not set over this interface: [`crate::site_lockdown`] drives
//! [`Authority::set_lockdown`] from sited's `org.bunkeros.Site1` state.

use std::str::FromStr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use zbus::message::Header;
use zbus::{Connection, interface};

use crate::authority::{
    Authority, AuthorityError, CertificateRecord, CertificateStatus, ListFilter, RevocationReason,
};
use crate::ca::{CertificateSerial, InstalledChain, IssueError, Lifetime, Profile};
use crate::metrics::TrustMetrics;
use crate::status_report::{rfc3339, status_json};
use crate::translog::SignedTreeHead;

/// A refusal or failure, as the D-Bus error trustd answers with.
#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.bunkeros.Trust1.Error")]
pub enum TrustError {
    /// A failure of zbus itself.
    #[zbus(error)]
    ZBus(zbus::Error),
    /// The CA key is sealed.
    Sealed(String),
    /// The site is in lockdown.
    Lockdown(String),
    /// The request is refused.
    InvalidRequest(String),
    /// No such certificate or log entry.
    NotFound(String),
    /// Revoked before.
    AlreadyRevoked(String),
    /// The CA cannot issue yet.
    NotReady(String),
    /// The caller may not do this (checked by trustd beyond the bus policy).
    AccessDenied(String),
    /// trustd failed.
    Failed(String),
}

impl From<AuthorityError> for TrustError {
    fn from(error: AuthorityError) -> Self {
        let message = error.to_string();
        match &error {
            AuthorityError::Sealed { .. } | AuthorityError::Issue(IssueError::Sealed(_)) => {
                Self::Sealed(message)
            }
            AuthorityError::Lockdown(_) => Self::Lockdown(message),
            AuthorityError::UnknownSerial(_) => Self::NotFound(message),
            AuthorityError::AlreadyRevoked { .. } => Self::AlreadyRevoked(message),
            AuthorityError::NoCaCertificate
            | AuthorityError::Issue(IssueError::NotReady(_) | IssueError::CaExpiresTooSoon(_)) => {
                Self::NotReady(message)
            }
            _ if error.is_caller_error() => Self::InvalidRequest(message),
            _ => {
                tracing::error!(error = %message, "a D-Bus request failed inside trustd");
                Self::Failed(message)
            }
        }
    }
}

impl TrustError {
    /// The short name used as the `result` label of the request metrics.
    fn kind(&self) -> &'static str {
        match self {
            Self::ZBus(_) => "bus_error",
            Self::Sealed(_) => "sealed",
            Self::Lockdown(_) => "lockdown",
            Self::InvalidRequest(_) => "invalid_request",
            Self::NotFound(_) => "not_found",
            Self::AlreadyRevoked(_) => "already_revoked",
            Self::NotReady(_) => "not_ready",
            Self::AccessDenied(_) => "access_denied",
            Self::Failed(_) => "failed",
        }
    }
}

/// The object served at `/org/bunkeros/Trust1`.
pub struct Trust1 {
    authority: Arc<Authority>,
    metrics: TrustMetrics,
}

impl Trust1 {
    /// The interface over `authority`, counting requests in `metrics`.
    pub fn new(authority: Arc<Authority>, metrics: TrustMetrics) -> Self {
        Self { authority, metrics }
    }

    /// Runs `work` on the blocking pool with the authority, and counts the outcome.
    async fn call<T: Send + 'static>(
        &self,
        method: &'static str,
        work: impl FnOnce(&Authority) -> Result<T, TrustError> + Send + 'static,
    ) -> Result<T, TrustError> {
        let authority = Arc::clone(&self.authority);
        let result = tokio::task::spawn_blocking(move || work(&authority))
            .await
            .unwrap_or_else(|e| Err(TrustError::Failed(format!("the request panicked: {e}"))));
        let outcome = match &result {
            Ok(_) => "ok",
            Err(error) => error.kind(),
        };
        self.metrics.count_request(method, outcome);
        result
    }
}

#[interface(name = "org.bunkeros.Trust1")]
impl Trust1 {
    /// `Issue(csr_pem s, profile s, lifetime s) -> (cert_pem s, chain_pem s, serial s, log_index t)`
    async fn issue(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
        csr_pem: String,
        profile: String,
        lifetime: String,
    ) -> Result<(String, String, String, u64), TrustError> {
        let requester = requester(connection, &header).await?;
        let profile =
            Profile::from_str(&profile).map_err(|e| TrustError::InvalidRequest(e.to_string()))?;
        let uid = caller_uid(connection, &header).await?;
        let passwd = std::fs::read_to_string(PASSWD).unwrap_or_default();
        if let Err(refusal) = service_may_issue(user_name(&passwd, uid), profile) {
            self.metrics.count_request("Issue", "access_denied");
            return Err(refusal);
        }
        let lifetime = parse_lifetime(&lifetime)?;
        self.call("Issue", move |authority| {
            let issued = authority.issue(
                csr_pem.as_bytes(),
                profile,
                lifetime.map(|l| l.as_duration()),
                &requester,
            )?;
            Ok((
                issued.certificate.pem,
                issued.certificate.chain_pem,
                issued.certificate.serial.to_hex(),
                issued.log_index,
            ))
        })
        .await
    }

    /// `Revoke(serial s, reason s)`
    async fn revoke(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
        serial: String,
        reason: String,
    ) -> Result<(), TrustError> {
        let requester = requester(connection, &header).await?;
        let serial = parse_serial(&serial)?;
        let reason = parse_reason(&reason)?;
        self.call("Revoke", move |authority| {
            authority.revoke(&serial, reason, &requester)?;
            Ok(())
        })
        .await
    }

    /// `Status() -> s`: the status document (see [`crate::status_report`]).
    async fn status(&self) -> Result<String, TrustError> {
        self.call("Status", |authority| {
            Ok(status_json(&authority.status()?, authority.public_key_sec1()).to_string())
        })
        .await
    }

    /// `List(filter s) -> s`: matching certificates as a JSON array.
    async fn list(&self, filter: String) -> Result<String, TrustError> {
        let filter = parse_filter(&filter)?;
        self.call("List", move |authority| {
            let records = authority.list(&filter)?;
            let rows: Vec<Value> = records.iter().map(record_json).collect();
            Ok(Value::Array(rows).to_string())
        })
        .await
    }

    /// `SignAuditDigest(service s, digest ay) -> ay`; a service signs only under its own name
    /// (the caller's user name), root under any.
    async fn sign_audit_digest(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
        service: String,
        digest: Vec<u8>,
    ) -> Result<Vec<u8>, TrustError> {
        let uid = caller_uid(connection, &header).await?;
        if uid != 0 {
            let passwd = std::fs::read_to_string(PASSWD).unwrap_or_default();
            if user_name(&passwd, uid) != Some(service.as_str()) {
                self.metrics
                    .count_request("SignAuditDigest", "access_denied");
                return Err(TrustError::AccessDenied(format!(
                    "uid {uid} may sign audit digests only under its own user name, not as `{}`",
                    crate::ca::names::quote_untrusted(&service, 40)
                )));
            }
        }
        let digest: [u8; 32] = digest.as_slice().try_into().map_err(|_| {
            TrustError::InvalidRequest(format!(
                "the digest is {} bytes; an audit digest is a SHA-256 of 32 bytes",
                digest.len()
            ))
        })?;
        self.call("SignAuditDigest", move |authority| {
            Ok(authority.sign_audit_digest(&service, digest)?)
        })
        .await
    }

    /// `Quote(nonce ay) -> (attest ay, signature ay)`: a TPM2_Quote of PCR 11 (SHA-256 bank)
    /// with `nonce` (1 to 64 bytes) as qualifying data, signed by the CA key: the marshalled
    /// `TPMS_ATTEST` and the DER ECDSA signature over its SHA-256 (see
    /// [`crate::authority::quote`]). For anyone; in lockdown too; refused when sealed.
    async fn quote(&self, nonce: Vec<u8>) -> Result<(Vec<u8>, Vec<u8>), TrustError> {
        self.call("Quote", move |authority| {
            let quote = authority.quote(&nonce)?;
            Ok((quote.attest, quote.signature_der))
        })
        .await
    }

    /// `TreeHead() -> s`: a signed tree head covering the log (JSON).
    async fn tree_head(&self) -> Result<String, TrustError> {
        self.call("TreeHead", |authority| {
            Ok(authority.signed_tree_head()?.to_json())
        })
        .await
    }

    /// `InclusionProof(index t) -> s`: a proof bundle for the entry at `index` (JSON).
    async fn inclusion_proof(&self, index: u64) -> Result<String, TrustError> {
        self.call("InclusionProof", move |authority| {
            let size = authority.status()?.log_size;
            if index >= size {
                return Err(TrustError::NotFound(format!(
                    "the transparency log has {size} entries; there is no entry {index}"
                )));
            }
            Ok(authority.proof_bundle(Some(index), None)?.to_json())
        })
        .await
    }

    /// `ConsistencyProof(old_tree_head s) -> s`: a proof bundle from a head the caller kept.
    async fn consistency_proof(&self, old_tree_head: String) -> Result<String, TrustError> {
        let old = SignedTreeHead::from_json(old_tree_head.as_bytes()).map_err(|e| {
            TrustError::InvalidRequest(format!("the old tree head is not a tree head: {e}"))
        })?;
        self.call("ConsistencyProof", move |authority| {
            old.verify(authority.public_key_sec1()).map_err(|e| {
                TrustError::InvalidRequest(format!(
                    "the old tree head was not signed by this CA ({e}); only heads this CA signed can be proved consistent"
                ))
            })?;
            Ok(authority.proof_bundle(None, Some(&old))?.to_json())
        })
        .await
    }

    /// `IntermediateRequest() -> s`: the request (PEM) for the offline root to sign: the
    /// outstanding one while the CA waits for its chain, a fresh one to renew an installed
    /// intermediate. Changes nothing.
    async fn intermediate_request(&self) -> Result<String, TrustError> {
        self.call("IntermediateRequest", |authority| {
            Ok(authority.intermediate_request()?)
        })
        .await
    }

    /// `InstallChain(chain_pem s) -> s`: installs the chain the offline root returned (PEM,
    /// this CA's certificate first, the root last) once it verifies for this CA's key, and
    /// returns what was installed (see [`installed_json`]). A refused chain changes nothing.
    async fn install_chain(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] connection: &Connection,
        chain_pem: String,
    ) -> Result<String, TrustError> {
        let requester = requester(connection, &header).await?;
        self.call("InstallChain", move |authority| {
            let installed = authority.install_chain(&chain_pem)?;
            tracing::info!(
                %requester,
                subject = %installed.subject,
                root = %installed.root_subject,
                root_fingerprint = %installed.root_fingerprint,
                "the CA certificate was {} over D-Bus",
                if installed.renewal { "renewed" } else { "installed" }
            );
            Ok(installed_json(&installed).to_string())
        })
        .await
    }

    /// `RootCertificate() -> s`: the root certificate (PEM).
    async fn root_certificate(&self) -> Result<String, TrustError> {
        self.call("RootCertificate", |authority| {
            authority
                .root_pem()
                .ok_or_else(|| TrustError::NotReady("the CA has no certificate yet".to_owned()))
        })
        .await
    }
}

/// Where user names come from: the appliance's users are made at image build time.
const PASSWD: &str = "/etc/passwd";

/// `dbus:uid=N` for the caller, as the bus daemon knows it.
async fn requester(connection: &Connection, header: &Header<'_>) -> Result<String, TrustError> {
    Ok(format!(
        "dbus:uid={}",
        caller_uid(connection, header).await?
    ))
}

/// The caller's uid, as the bus daemon vouches for it.
async fn caller_uid(connection: &Connection, header: &Header<'_>) -> Result<u32, TrustError> {
    let sender = header
        .sender()
        .ok_or_else(|| TrustError::Failed("the call carries no sender".to_owned()))?;
    zbus::fdo::DBusProxy::new(connection)
        .await?
        .get_connection_unix_user(sender.clone().into())
        .await
        .map_err(|e| TrustError::Failed(format!("cannot learn the caller's uid: {e}")))
}

/// Services that may call `Issue` (the bus policy lets them) get only their own profile: hubd
/// its hub certificate, sited the `service` certificate its uplink presents to the control
/// centre; nothing a person or a device would use. Root and operators are not limited here.
fn service_may_issue(caller: Option<&str>, profile: Profile) -> Result<(), TrustError> {
    let only = match caller {
        Some("hubd") => Profile::Hub,
        Some("sited") => Profile::Service,
        _ => return Ok(()),
    };
    if profile == only {
        return Ok(());
    }
    Err(TrustError::AccessDenied(format!(
        "{} may request only `{}` certificates, not `{}`",
        caller.unwrap_or_default(),
        only.name(),
        profile.name()
    )))
}

/// The name of `uid` in `passwd` (the text of `/etc/passwd`).
fn user_name(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then_some(name)
    })
}

fn parse_lifetime(text: &str) -> Result<Option<Lifetime>, TrustError> {
    if text.is_empty() {
        return Ok(None);
    }
    Lifetime::from_str(text)
        .map(Some)
        .map_err(|e| TrustError::InvalidRequest(e.to_string()))
}

fn parse_serial(text: &str) -> Result<CertificateSerial, TrustError> {
    let cleaned: String = text
        .trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    // Accept the serial as openssl prints it too (fewer digits when it starts with zeros).
    let padded = format!("{cleaned:0>32}");
    CertificateSerial::from_hex(&padded).ok_or_else(|| {
        TrustError::InvalidRequest(format!(
            "`{}` is not a serial number of this CA (up to 32 hex digits)",
            crate::ca::names::quote_untrusted(text, 40)
        ))
    })
}

fn parse_reason(text: &str) -> Result<RevocationReason, TrustError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(RevocationReason::Unspecified);
    }
    if let Ok(code) = text.parse::<u8>() {
        return Ok(RevocationReason::from_code(code)?);
    }
    RevocationReason::ALL
        .into_iter()
        .find(|reason| reason.name().eq_ignore_ascii_case(text))
        .ok_or_else(|| {
            let names: Vec<&str> = RevocationReason::ALL.iter().map(|r| r.name()).collect();
            TrustError::InvalidRequest(format!(
                "`{}` is not a revocation reason; use one of {}",
                crate::ca::names::quote_untrusted(text, 40),
                names.join(", ")
            ))
        })
}

/// The `List` filter as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterWire {
    status: Option<String>,
    profile: Option<String>,
    name: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

fn parse_filter(text: &str) -> Result<ListFilter, TrustError> {
    let invalid = |reason: String| TrustError::InvalidRequest(format!("the filter: {reason}"));
    let wire: FilterWire = if text.trim().is_empty() {
        FilterWire::default()
    } else {
        serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?
    };
    let status = match wire.status.as_deref() {
        None => None,
        Some("valid") => Some(CertificateStatus::Valid),
        Some("expired") => Some(CertificateStatus::Expired),
        Some("revoked") => Some(CertificateStatus::Revoked),
        Some(other) => {
            return Err(invalid(format!(
                "status `{}` is not valid, expired or revoked",
                crate::ca::names::quote_untrusted(other, 40)
            )));
        }
    };
    let profile = wire
        .profile
        .as_deref()
        .map(Profile::from_str)
        .transpose()
        .map_err(|e| invalid(e.to_string()))?;
    Ok(ListFilter {
        status,
        profile,
        name_contains: wire.name,
        after_log_index: wire.after,
        limit: wire
            .limit
            .unwrap_or(ListFilter::default().limit)
            .min(ListFilter::MAX_LIMIT),
    })
}

/// What `InstallChain` installed, as JSON: `kind`, `renewal` (whether it replaced an installed
/// certificate), `subject`, `issuer`, `not_before`, `not_after`, `root_subject`,
/// `root_fingerprint` (SHA-256 of the root certificate, what relying parties pin).
pub fn installed_json(installed: &InstalledChain) -> Value {
    json!({
        "kind": "intermediate",
        "renewal": installed.renewal,
        "subject": installed.subject,
        "issuer": installed.issuer,
        "not_before": rfc3339(installed.not_before),
        "not_after": rfc3339(installed.not_after),
        "root_subject": installed.root_subject,
        "root_fingerprint": installed.root_fingerprint,
    })
}

/// One certificate of `List` as JSON.
pub fn record_json(record: &CertificateRecord) -> Value {
    json!({
        "serial": record.facts.serial.to_hex(),
        "common_name": record.facts.common_name,
        "names": record.facts.names,
        "not_before": rfc3339(record.facts.not_before),
        "not_after": rfc3339(record.facts.not_after),
        "profile": record.profile.map(|p| p.name()),
        "requester": record.requester,
        "log_index": record.log_index,
        "logged_at_ms": record.logged_at_ms,
        "recovered": record.recovered,
        "revocation": record.revocation.as_ref().map(|r| json!({
            "reason": r.reason.name(),
            "revoked_at": rfc3339(r.revoked_at),
            "requester": r.requester,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_read_as_trustd_and_openssl_print_them() {
        let full = "0123456789abcdef0123456789abcdef";
        assert_eq!(parse_serial(full).unwrap().to_hex(), full);
        let openssl = "123456789ABCDEF0123456789ABCDEF";
        assert_eq!(parse_serial(openssl).unwrap().to_hex(), full);
        assert_eq!(
            parse_serial("01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef")
                .unwrap()
                .to_hex(),
            full
        );
        assert!(matches!(
            parse_serial("xyz"),
            Err(TrustError::InvalidRequest(_))
        ));
        assert!(parse_serial(&"1".repeat(33)).is_err());
    }

    #[test]
    fn reasons_are_names_or_codes() {
        assert_eq!(parse_reason("").unwrap(), RevocationReason::Unspecified);
        assert_eq!(
            parse_reason("keyCompromise").unwrap(),
            RevocationReason::KeyCompromise
        );
        assert_eq!(parse_reason("4").unwrap(), RevocationReason::Superseded);
        assert!(matches!(
            parse_reason("7"),
            Err(TrustError::InvalidRequest(_))
        ));
        let err = parse_reason("because").unwrap_err();
        assert!(format!("{err:?}").contains("keyCompromise"), "{err:?}");
    }

    #[test]
    fn filters_are_json_objects() {
        let all = parse_filter("").unwrap();
        assert_eq!(all, ListFilter::default());
        let some = parse_filter(
            r#"{"status": "revoked", "profile": "device", "name": "miner", "after": 4, "limit": 5000}"#,
        )
        .unwrap();
        assert_eq!(some.status, Some(CertificateStatus::Revoked));
        assert_eq!(some.profile, Some(Profile::Device));
        assert_eq!(some.name_contains.as_deref(), Some("miner"));
        assert_eq!(some.after_log_index, Some(4));
        assert_eq!(some.limit, ListFilter::MAX_LIMIT);
        assert!(parse_filter(r#"{"status": "gone"}"#).is_err());
        assert!(parse_filter(r#"{"colour": "red"}"#).is_err());
        assert!(parse_filter("[").is_err());
    }

    #[test]
    fn every_error_has_a_name_from_the_contract() {
        use appliance::dbus::contracts::trust_errors;
        use zbus::DBusError as _;
        let text = || String::from("x");
        for error in [
            TrustError::Sealed(text()),
            TrustError::Lockdown(text()),
            TrustError::InvalidRequest(text()),
            TrustError::NotFound(text()),
            TrustError::AlreadyRevoked(text()),
            TrustError::NotReady(text()),
            TrustError::AccessDenied(text()),
            TrustError::Failed(text()),
        ] {
            let name = error.name().to_string();
            assert!(trust_errors::ALL.contains(&name.as_str()), "{name}");
        }
    }

    #[test]
    fn hubd_and_sited_may_issue_only_their_own_profiles() {
        assert!(service_may_issue(Some("hubd"), Profile::Hub).is_ok());
        for profile in [Profile::Service, Profile::Operator, Profile::Device] {
            let refused = service_may_issue(Some("hubd"), profile).unwrap_err();
            assert!(
                matches!(refused, TrustError::AccessDenied(_)),
                "{profile:?}"
            );
        }
        assert!(service_may_issue(Some("sited"), Profile::Service).is_ok());
        for profile in [Profile::Hub, Profile::Operator, Profile::Device] {
            let refused = service_may_issue(Some("sited"), profile).unwrap_err();
            assert!(
                matches!(refused, TrustError::AccessDenied(_)),
                "{profile:?}"
            );
        }
        for caller in [Some("root"), Some("alice"), None] {
            assert!(
                service_may_issue(caller, Profile::Service).is_ok(),
                "{caller:?}"
            );
        }
    }

    #[test]
    fn user_names_come_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      hubd:x:995:995:hubd:/nonexistent:/usr/sbin/nologin\n\
                      broken\n";
        assert_eq!(user_name(passwd, 995), Some("hubd"));
        assert_eq!(user_name(passwd, 0), Some("root"));
        assert_eq!(user_name(passwd, 1000), None);
    }

    #[test]
    fn lifetimes_are_optional() {
        assert_eq!(parse_lifetime("").unwrap(), None);
        assert_eq!(parse_lifetime("12h").unwrap(), Some(Lifetime::hours(12)));
        assert!(parse_lifetime("soon").is_err());
    }
}
