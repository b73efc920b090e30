//! A hub's signed evidence that it booted the release and found it healthy (issue 7, item 4):
//! what the hubs of a wave send the rollout's coordinator before the next wave may start.
//!
//! The evidence joins two things trustd's CA key (in the hub's TPM) signed in this boot:
//! - the health gate's statement for the boot ([`GateSignature`]): the CA key worked, so the
//!   release key approved this image for the key's `authorized` policy;
//! - a TPM2_Quote of PCR 11 (`Trust1.Quote`): the booted UKI, which a verifier compares with the
//!   release's `pcr11.expected`.
//!
//! The quote's qualifying data is not the coordinator's nonce itself but [`quote_binding`]: a
//! SHA-256 over a domain, the nonce and every claim of the evidence (hub, plan, wave, version,
//! slot, root hash, boot id). So the claims are signed by the TPM too; a hub cannot send a
//! genuine quote with another version or boot beside it, and an old quote answers no new nonce.
//!
//! [`verify_evidence`] checks everything against the hub's CA key, the release's PCR 11 and the
//! nonce the coordinator sent, and refuses with one sentence per problem.

#[path = "evidence/attest.rs"]
pub mod attest;

use appliance::audit_log::TrustedKey;
use appliance::dbus::contracts::Trust1Proxy;
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use zbus::Connection;
use zbus::proxy::CacheProperties;

use crate::booted::Booted;
use crate::disk_layout::Slot;
use crate::health_gate::{GateSignature, Verdict};
use attest::{ALG_SHA256, AttestMalformed, ST_ATTEST_QUOTE, TPM_GENERATED, parse_quote_attest};

/// Domain separation of [`quote_binding`]: no other BunkerOS digest starts so.
pub const BINDING_DOMAIN: &[u8] = b"bunkeros rollout evidence v1\0";

/// The longest coordinator nonce (it is hashed into the quote's qualifying data).
pub const MAX_NONCE_LEN: usize = 64;

/// The largest evidence document a coordinator reads (a verdict names a few dozen checks).
pub const MAX_EVIDENCE_LEN: usize = 256 * 1024;

/// What a hub reports for a wave of a rollout, as JSON between hubs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthEvidence {
    /// The hub that reports.
    pub hub: String,
    /// The rollout plan it answers.
    pub plan: String,
    /// The wave the hub is in.
    pub wave: u32,
    /// The image version it booted.
    pub version: String,
    /// The slot it booted from.
    pub slot: Slot,
    /// The dm-verity root hash of that slot (hex).
    pub roothash: String,
    /// The health gate's verdict on this boot.
    pub verdict: Verdict,
    /// trustd's signature over the gate's statement for this boot.
    pub gate_signature: GateSignature,
    /// The marshalled `TPMS_ATTEST` of the PCR 11 quote (hex).
    pub quote_attest: String,
    /// The CA key's DER ECDSA signature over `quote_attest` (hex).
    pub quote_signature: String,
    /// The coordinator's nonce this evidence answers (hex).
    pub nonce: String,
    /// When the hub made it (RFC 3339, the hub's clock; informational).
    pub made_at: String,
}

impl HealthEvidence {
    /// Reads evidence from JSON (from another hub: untrusted); the checks are
    /// [`verify_evidence`]'s.
    pub fn from_json(bytes: &[u8]) -> Result<Self, EvidenceRefused> {
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(EvidenceRefused::Malformed(format!(
                "it is {} bytes; evidence is at most {MAX_EVIDENCE_LEN}",
                bytes.len()
            )));
        }
        serde_json::from_slice(bytes).map_err(|e| EvidenceRefused::Malformed(e.to_string()))
    }

    /// The JSON a hub sends.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("evidence serialises: strings, numbers and enums")
    }
}

/// The quote's qualifying data for an evidence: SHA-256 of [`BINDING_DOMAIN`], then each of
/// nonce, hub, plan, the wave (u32 big-endian), version, slot name, root hash and boot id,
/// every variable field preceded by its length (u32 big-endian), so no two evidences share it.
#[allow(clippy::too_many_arguments)] // every claim the quote binds, each spelled out
pub fn quote_binding(
    nonce: &[u8],
    hub: &str,
    plan: &str,
    wave: u32,
    version: &str,
    slot: Slot,
    roothash: &str,
    boot_id: &str,
) -> [u8; 32] {
    let mut statement = BINDING_DOMAIN.to_vec();
    let mut field = |bytes: &[u8]| {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        statement.extend_from_slice(&len.to_be_bytes());
        statement.extend_from_slice(bytes);
    };
    field(nonce);
    field(hub.as_bytes());
    field(plan.as_bytes());
    field(&wave.to_be_bytes());
    field(version.as_bytes());
    field(slot.name().as_bytes());
    field(roothash.as_bytes());
    field(boot_id.as_bytes());
    digest(&SHA256, &statement)
        .as_ref()
        .try_into()
        .expect("SHA-256 digests are 32 bytes")
}

/// The binding of `evidence`'s own claims with `nonce`.
fn binding_of(evidence: &HealthEvidence, nonce: &[u8]) -> [u8; 32] {
    quote_binding(
        nonce,
        &evidence.hub,
        &evidence.plan,
        evidence.wave,
        &evidence.version,
        evidence.slot,
        &evidence.roothash,
        &evidence.gate_signature.boot_id,
    )
}

/// Why a hub could not make its evidence.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("the coordinator's nonce is {0} bytes; it must be 1 to {MAX_NONCE_LEN}")]
    BadNonce(usize),
    #[error("cannot reach trustd for a quote: {0}")]
    Bus(#[from] zbus::Error),
    #[error("trustd did not quote the booted image: {0}")]
    Quote(zbus::Error),
}

/// Which hub, plan and wave the evidence is for, and the coordinator's nonce.
#[derive(Debug, Clone, Copy)]
pub struct EvidenceRequest<'a> {
    pub hub: &'a str,
    pub plan: &'a str,
    pub wave: u32,
    pub nonce: &'a [u8],
}

/// Makes this hub's evidence for `request`: the gate's `verdict` and `signature` for this boot,
/// what `booted` says of the running image, and a quote from trustd over `connection` bound to
/// all of it.
pub async fn gather_evidence(
    connection: &Connection,
    request: EvidenceRequest<'_>,
    verdict: Verdict,
    signature: GateSignature,
    booted: &Booted,
) -> Result<HealthEvidence, EvidenceError> {
    if request.nonce.is_empty() || request.nonce.len() > MAX_NONCE_LEN {
        return Err(EvidenceError::BadNonce(request.nonce.len()));
    }
    let mut evidence = HealthEvidence {
        hub: request.hub.to_owned(),
        plan: request.plan.to_owned(),
        wave: request.wave,
        version: booted.image.version.to_string(),
        slot: booted.slot,
        roothash: booted.roothash.clone(),
        verdict,
        gate_signature: signature,
        quote_attest: String::new(),
        quote_signature: String::new(),
        nonce: hex::encode(request.nonce),
        made_at: jiff::Timestamp::now().to_string(),
    };
    let trust = Trust1Proxy::builder(connection)
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let (attest, signature) = trust
        .quote(&binding_of(&evidence, request.nonce))
        .await
        .map_err(EvidenceError::Quote)?;
    evidence.quote_attest = hex::encode(attest);
    evidence.quote_signature = hex::encode(signature);
    tracing::info!(
        hub = request.hub,
        plan = request.plan,
        wave = request.wave,
        version = %evidence.version,
        "made the health evidence for the rollout"
    );
    Ok(evidence)
}

/// A hub's CA public key, as the coordinator knows it (from the hub's certificate or its
/// trustd status).
#[derive(Debug, Clone)]
pub struct HubCaKey {
    sec1: Vec<u8>,
    trusted: TrustedKey,
}

impl HubCaKey {
    /// From the SEC1 point (uncompressed, 65 bytes, or compressed).
    pub fn from_sec1(sec1: &[u8]) -> Result<Self, appliance::audit_log::seal::KeyError> {
        Ok(Self {
            trusted: TrustedKey::from_sec1(sec1)?,
            sec1: sec1.to_vec(),
        })
    }

    /// From hex SEC1, as trustd's `Status().public_key` shows it.
    pub fn from_sec1_hex(text: &str) -> Result<Self, appliance::audit_log::seal::KeyError> {
        let sec1 =
            hex::decode(text.trim()).map_err(|_| appliance::audit_log::seal::KeyError::NotHex)?;
        Self::from_sec1(&sec1)
    }

    fn verifies(&self, message: &[u8], signature_der: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.sec1)
            .verify(message, signature_der)
            .is_ok()
    }
}

/// Why evidence is refused: the wave does not advance on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceRefused {
    #[error("the evidence is not an evidence document: {0}")]
    Malformed(String),
    #[error("the release's PCR 11 value `{0}` is not 64 hex digits")]
    BadExpectedPcr11(String),
    #[error("the evidence of {hub} has a {field} that is not hex")]
    NotHex { hub: String, field: &'static str },
    #[error("the evidence of {hub} answers another request: its nonce is not the one sent")]
    OtherNonce { hub: String },
    #[error("the quote of {hub} is not signed by its CA key")]
    QuoteSignature { hub: String },
    #[error("the quote of {hub} is not a TPM attestation: {problem}")]
    AttestMalformed {
        hub: String,
        problem: AttestMalformed,
    },
    #[error("the quote of {hub} was not generated by a TPM (magic {magic:#010x})")]
    NotTpmGenerated { hub: String, magic: u32 },
    #[error("the attestation of {hub} is not a quote (type {attest_type:#06x})")]
    NotAQuote { hub: String, attest_type: u16 },
    #[error(
        "the quote of {hub} was made for other claims: its qualifying data does not bind this nonce, hub, plan, wave, image and boot"
    )]
    NotBound { hub: String },
    #[error("the quote of {hub} selects {found}, not PCR 11 of the SHA-256 bank")]
    WrongSelection { hub: String, found: String },
    #[error("the quote's PCR 11 is not the release's: {hub} booted another image")]
    OtherImage { hub: String },
    #[error("the health gate of {hub} found its boot unhealthy: {summary}")]
    Unhealthy { hub: String, summary: String },
    #[error("the gate signature of {hub} is not the one its healthy verdict carries")]
    GateSignatureDiffers { hub: String },
    #[error("the health gate's signature of {hub} does not verify with its CA key")]
    GateSignature { hub: String },
}

/// Checks `evidence` from a hub whose CA key is `hub_ca_key`, against the release's PCR 11
/// value (`expected_pcr11`, hex: its `pcr11.expected`) and the nonce the coordinator sent.
pub fn verify_evidence(
    evidence: &HealthEvidence,
    hub_ca_key: &HubCaKey,
    expected_pcr11: &str,
    expected_nonce: &[u8],
) -> Result<(), EvidenceRefused> {
    let hub = shown(&evidence.hub);
    let expected_pcr11_value: [u8; 32] = hex::decode(expected_pcr11.trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| EvidenceRefused::BadExpectedPcr11(shown(expected_pcr11)))?;
    let not_hex = |field| EvidenceRefused::NotHex {
        hub: hub.clone(),
        field,
    };
    let nonce = hex::decode(&evidence.nonce).map_err(|_| not_hex("nonce"))?;
    if nonce != expected_nonce {
        return Err(EvidenceRefused::OtherNonce { hub });
    }
    let attest_bytes = hex::decode(&evidence.quote_attest).map_err(|_| not_hex("quote"))?;
    let signature =
        hex::decode(&evidence.quote_signature).map_err(|_| not_hex("quote signature"))?;
    if !hub_ca_key.verifies(&attest_bytes, &signature) {
        return Err(EvidenceRefused::QuoteSignature { hub });
    }
    let attest =
        parse_quote_attest(&attest_bytes).map_err(|problem| EvidenceRefused::AttestMalformed {
            hub: hub.clone(),
            problem,
        })?;
    if attest.magic != TPM_GENERATED {
        return Err(EvidenceRefused::NotTpmGenerated {
            hub,
            magic: attest.magic,
        });
    }
    if attest.attest_type != ST_ATTEST_QUOTE {
        return Err(EvidenceRefused::NotAQuote {
            hub,
            attest_type: attest.attest_type,
        });
    }
    if attest.extra_data != binding_of(evidence, &nonce) {
        return Err(EvidenceRefused::NotBound { hub });
    }
    check_selection(&attest.selections, &hub)?;
    if attest.pcr_digest != digest(&SHA256, &expected_pcr11_value).as_ref() {
        return Err(EvidenceRefused::OtherImage { hub });
    }
    check_gate(evidence, hub_ca_key, hub)
}

/// The quote must select PCR 11 of the SHA-256 bank and nothing else.
fn check_selection(selections: &[attest::PcrSelection], hub: &str) -> Result<(), EvidenceRefused> {
    let only_pcr11 = matches!(selections, [one] if one.hash == ALG_SHA256 && one.pcrs() == [11]);
    if only_pcr11 {
        return Ok(());
    }
    let found: Vec<String> = selections
        .iter()
        .map(|s| format!("bank {:#06x} PCRs {:?}", s.hash, s.pcrs()))
        .collect();
    Err(EvidenceRefused::WrongSelection {
        hub: hub.to_owned(),
        found: if found.is_empty() {
            "no PCRs".to_owned()
        } else {
            found.join(", ")
        },
    })
}

/// The verdict is healthy, carries the evidence's gate signature, and that verifies.
fn check_gate(
    evidence: &HealthEvidence,
    hub_ca_key: &HubCaKey,
    hub: String,
) -> Result<(), EvidenceRefused> {
    let Verdict::Healthy { signature, .. } = &evidence.verdict else {
        return Err(EvidenceRefused::Unhealthy {
            hub,
            summary: shown_long(&evidence.verdict.summary()),
        });
    };
    if *signature != evidence.gate_signature {
        return Err(EvidenceRefused::GateSignatureDiffers { hub });
    }
    if !evidence.gate_signature.verifies_with(&hub_ca_key.trusted) {
        return Err(EvidenceRefused::GateSignature { hub });
    }
    Ok(())
}

/// An untrusted name for a sentence: control characters escaped, at most 64 characters.
fn shown(text: &str) -> String {
    bounded(text, 64)
}

fn shown_long(text: &str) -> String {
    bounded(text, 512)
}

fn bounded(text: &str, limit: usize) -> String {
    let mut out: String = text
        .chars()
        .take(limit)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > limit {
        out.push('…');
    }
    out
}
