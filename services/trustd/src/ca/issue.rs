//! Issuing a leaf certificate from a checked request.
//!
//! The order of the steps is deliberate. Everything that can refuse without side effects
//! (readiness, names, constraints, lifetime) runs first, so a refused request changes no state.
//! The serial is then reserved in the ledger *before* the TPM signs, so a crash can waste a
//! serial but never reuse one. The TPM's refusal is reported as itself (`Sealed`), never
//! retried with anything else. Finally the certificate is parsed back and its signature checked
//! with the CA's public key, so a faulty TPM or encoder cannot hand out a broken certificate.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, DistinguishedName, DnType, IsCa};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::csr::ParsedCsr;
use super::hierarchy::certificate_pem;
use super::lifetime::{BACKDATE, Lifetime, MIN_LIFETIME};
use super::name_rules::{self, AuthorisedSubject, NameRuleError};
use super::profile::Profile;
use super::serial::{self, CertificateSerial, SerialError};
use super::signer::{CaSigner, SigningFailure, sign_with};
use super::subject::{KeyKind, SubjectName};
use super::{CertificateAuthority, Stage};
use crate::ca_key::SignError;

/// Why the CA cannot issue at all right now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    /// Neither root nor intermediate exists.
    #[error("the CA has no certificate yet; create a root or request an intermediate first")]
    Uninitialised,
    /// The intermediate's chain has not been installed. The sentence is the operator's whole
    /// procedure: the status line is where they look first.
    #[error(
        "waiting for the offline root to sign this CA: run `bunkerctl ca csr > site-ca.csr`, have the offline root sign it as a CA (CA:TRUE, pathlen:0, keyCertSign, cRLSign), then `bunkerctl ca install-chain chain.pem` (the intermediate first, then the offline root)"
    )]
    AwaitingChain,
    /// The CA certificate is not valid yet (clock behind?).
    #[error("the CA certificate is valid only from {0}; check the system clock")]
    NotYetValid(OffsetDateTime),
    /// The CA certificate expired.
    #[error("the CA certificate expired at {0}")]
    Expired(OffsetDateTime),
}

/// Why a certificate was not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The CA cannot issue at all.
    #[error("the CA cannot issue: {0}")]
    NotReady(#[from] NotReady),
    /// The names are not allowed for the profile.
    #[error(transparent)]
    Names(#[from] NameRuleError),
    /// A name the CA certificate's name constraints exclude.
    #[error("\"{0}\" is outside the name constraints of the CA certificate")]
    OutsideCaConstraints(String),
    /// A requested lifetime below the minimum.
    #[error("a lifetime of {requested} was asked for; certificates live at least {MIN_LIFETIME}")]
    LifetimeTooShort {
        /// What was asked for.
        requested: Lifetime,
    },
    /// The CA certificate expires too soon for any useful leaf.
    #[error("the CA certificate expires at {0}, too soon to issue; renew the CA certificate")]
    CaExpiresTooSoon(OffsetDateTime),
    /// No serial number could be assigned.
    #[error(transparent)]
    Serial(#[from] SerialError),
    /// The CA key is sealed: the boot measurements do not satisfy its policy.
    #[error("the CA is sealed and issues nothing: {0}")]
    Sealed(String),
    /// The TPM failed.
    #[error("the TPM failed to sign: {0}")]
    Tpm(String),
    /// rcgen could not encode the certificate.
    #[error("cannot encode the certificate: {0}")]
    Encode(String),
    /// The signed certificate failed its check against the CA key; it was not handed out.
    #[error("the signed certificate failed its own check and was discarded: {0}")]
    SelfCheck(String),
}

impl From<SigningFailure> for IssueError {
    fn from(failure: SigningFailure) -> Self {
        match failure {
            SigningFailure::Key(SignError::Sealed(reason)) => Self::Sealed(reason),
            SigningFailure::Key(SignError::Tpm(reason)) => Self::Tpm(reason),
            SigningFailure::Encode(error) => Self::Encode(error.to_string()),
        }
    }
}

/// A certificate the CA signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The certificate, PEM.
    pub pem: String,
    /// The certificate followed by the CA certificates a peer must send (PEM), for ACME
    /// downloads and TLS servers.
    pub chain_pem: String,
    /// Its serial number.
    pub serial: CertificateSerial,
    /// Start of validity (backdated by [`BACKDATE`] for clock skew).
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The profile it was issued under.
    pub profile: Profile,
    /// The subject's key type.
    pub key: KeyKind,
    /// The subject CN, if any.
    pub common_name: Option<String>,
    /// The subject alternative names.
    pub names: Vec<SubjectName>,
}

/// The subject's public key as rcgen writes it into the certificate.
struct LeafKey<'a> {
    kind: KeyKind,
    bits: &'a [u8],
}

impl rcgen::PublicKeyData for LeafKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.bits
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.kind.rcgen_algorithm()
    }
}

impl CertificateAuthority {
    /// Issues a certificate for `csr` under `profile`. `requested_lifetime` is cut to the
    /// profile's maximum and to the CA certificate's expiry; `None` asks for the profile's
    /// default.
    pub fn issue(
        &self,
        csr: &ParsedCsr,
        profile: Profile,
        requested_lifetime: Option<Duration>,
    ) -> Result<IssuedCertificate, IssueError> {
        self.issue_at(csr, profile, requested_lifetime, OffsetDateTime::now_utc())
    }

    /// [`CertificateAuthority::issue`] at a given time; tests use it to reach expiry edges.
    pub(crate) fn issue_at(
        &self,
        csr: &ParsedCsr,
        profile: Profile,
        requested_lifetime: Option<Duration>,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        // Certificates carry whole seconds; so do the times reported beside them.
        let now = now.replace_nanosecond(0).unwrap_or(now);
        let active = self.readiness(now)?;
        let subject = name_rules::authorise(&self.policy, profile, csr.common_name(), csr.names())?;
        // Defence in depth: `open` and `install_chain` already refuse a policy wider than the
        // CA certificates' constraints, so this only fires if that reasoning has a hole.
        if let Some(name) = subject
            .names
            .iter()
            .find(|name| !active.scopes.iter().all(|scope| scope.permits(name)))
        {
            return Err(IssueError::OutsideCaConstraints(name.text()));
        }
        let not_after = self.not_after(profile, requested_lifetime, now, active.not_after)?;
        let serial = serial::assign_serial(self.serials.as_ref())?;
        let not_before = now - BACKDATE;
        let params = leaf_params(profile, csr.key(), &subject, serial, not_before, not_after)?;
        let der = self.sign_leaf(active, &params, csr)?;
        self.check_issued(&der, csr, &serial)?;

        let pem = certificate_pem(&der);
        let chain_pem = format!("{pem}{}", self.chain_pem());
        tracing::info!(
            %serial,
            %profile,
            names = ?subject.names.iter().map(SubjectName::text).collect::<Vec<_>>(),
            %not_after,
            "issued a certificate"
        );
        Ok(IssuedCertificate {
            der,
            pem,
            chain_pem,
            serial,
            not_before,
            not_after,
            profile,
            key: csr.key(),
            common_name: subject.common_name,
            names: subject.names,
        })
    }

    /// Signs the leaf with the TPM key; a refusal keeps its real cause.
    fn sign_leaf(
        &self,
        active: &super::ActiveCa,
        params: &CertificateParams,
        csr: &ParsedCsr,
    ) -> Result<Vec<u8>, IssueError> {
        let leaf_key = LeafKey {
            kind: csr.key(),
            bits: csr.public_key(),
        };
        let signer = CaSigner::new(Arc::clone(&self.key));
        let certificate = sign_with(&signer, |signer| {
            let issuer = active.issuer(signer)?;
            params.signed_by(&leaf_key, &issuer)
        })?;
        Ok(certificate.der().to_vec())
    }

    /// The active CA, if it may issue at `now`.
    pub(crate) fn readiness(&self, now: OffsetDateTime) -> Result<&super::ActiveCa, NotReady> {
        match &self.stage {
            Stage::Uninitialised => Err(NotReady::Uninitialised),
            Stage::AwaitingChain { .. } => Err(NotReady::AwaitingChain),
            Stage::Active(active) if now < active.not_before => {
                Err(NotReady::NotYetValid(active.not_before))
            }
            Stage::Active(active) if now >= active.not_after => {
                Err(NotReady::Expired(active.not_after))
            }
            Stage::Active(active) => Ok(active),
        }
    }

    /// The leaf's notAfter: the requested (or default) lifetime, cut to the profile maximum
    /// and to the CA certificate's own end.
    fn not_after(
        &self,
        profile: Profile,
        requested: Option<Duration>,
        now: OffsetDateTime,
        ca_not_after: OffsetDateTime,
    ) -> Result<OffsetDateTime, IssueError> {
        let rules = self.policy.profile(profile);
        let lifetime = match requested.map(Lifetime::from) {
            None => rules.default_lifetime,
            Some(requested) if requested < MIN_LIFETIME => {
                return Err(IssueError::LifetimeTooShort { requested });
            }
            Some(requested) => requested.min(rules.max_lifetime),
        };
        let not_after = lifetime.after(now).min(ca_not_after);
        if not_after < MIN_LIFETIME.after(now) {
            return Err(IssueError::CaExpiresTooSoon(ca_not_after));
        }
        Ok(not_after)
    }

    /// Parses the signed certificate back: the CA key's signature must verify, and the serial
    /// and subject key must be the ones intended.
    fn check_issued(
        &self,
        der: &[u8],
        csr: &ParsedCsr,
        serial: &CertificateSerial,
    ) -> Result<(), IssueError> {
        let failed = |what: &str| IssueError::SelfCheck(what.to_owned());
        let (rest, certificate) =
            X509Certificate::from_der(der).map_err(|e| failed(&e.to_string()))?;
        if !rest.is_empty() {
            return Err(failed("bytes follow the certificate"));
        }
        let (_, ca) = X509Certificate::from_der(self.ca_der())
            .map_err(|e| failed(&format!("the CA certificate does not parse: {e}")))?;
        certificate
            .verify_signature(Some(ca.public_key()))
            .map_err(|_| failed("the signature does not verify with the CA key"))?;
        let written: Vec<u8> = certificate
            .raw_serial()
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        if written != serial.to_integer_bytes() {
            return Err(failed("the serial number differs from the one reserved"));
        }
        if certificate.public_key().subject_public_key.data.as_ref() != csr.public_key() {
            return Err(failed("the subject key differs from the request's"));
        }
        Ok(())
    }

    fn ca_der(&self) -> &[u8] {
        match &self.stage {
            Stage::Active(active) => &active.chain[0],
            _ => &[],
        }
    }
}

/// The leaf's contents: the profile's usages, never CA:TRUE, the authorised names, and a CN
/// only if the request had one.
fn leaf_params(
    profile: Profile,
    key: KeyKind,
    subject: &AuthorisedSubject,
    serial: CertificateSerial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, IssueError> {
    let mut params = CertificateParams::default();
    params.serial_number = Some(serial.to_rcgen());
    params.not_before = not_before;
    params.not_after = not_after;
    // Written out as basicConstraints cA=FALSE (critical), with a subject key identifier.
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = profile
        .key_usages(key)
        .into_iter()
        .map(|usage| usage.to_rcgen())
        .collect();
    params.extended_key_usages = profile
        .extended_key_usages()
        .iter()
        .map(|usage| usage.to_rcgen())
        .collect();
    let mut distinguished_name = DistinguishedName::new();
    if let Some(cn) = &subject.common_name {
        distinguished_name.push(DnType::CommonName, cn.clone());
    }
    params.distinguished_name = distinguished_name;
    params.subject_alt_names = subject
        .names
        .iter()
        .map(SubjectName::to_rcgen)
        .collect::<Result<_, _>>()
        .map_err(|e| IssueError::Encode(e.to_string()))?;
    Ok(params)
}
