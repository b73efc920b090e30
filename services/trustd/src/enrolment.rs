//! Enrolment: on the first start the CA key is created in the TPM under the configured policy;
//! on every later start the stored key is loaded, whatever the configuration says now.
//!
//! In `pcr` mode the key is bound to PCR 11 *as the image build predicted it* (the file on the
//! ESP) and to every other selected PCR as it is at enrolment. Binding PCR 11 to the prediction
//! rather than to the value read now means that an enrolment on a boot that is not the one the
//! build describes yields a key that stays sealed until that image boots: the TPM, not this
//! process, decides. In `authorized` mode the key is bound to the release key for the PCRs in
//! `signed_pcrs` (PCR 11 by default), and to the other PCRs of `pcrs` exactly as in `pcr` mode
//! (PCR 7 to its value at enrolment); the image's signed PCR policy is installed at every
//! start, and without it the CA is sealed (reported in the status, never worked around).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use appliance::state::StateDir;
use p256::ecdsa::VerifyingKey;
use p256::pkcs8::DecodePublicKey as _;

use crate::config::{PREDICTED_PCR, PolicyKind, PolicySection};
use crate::tpm::{
    PcrValue, PolicyError, PolicyMode, SignedPcrPolicy, TpmCaKey, TpmConnection, TpmError, pcr,
};

/// The `policyRef` of every release-signed PCR policy for the CA key: a signature the release
/// key made for another purpose does not unlock the CA.
pub const POLICY_REF: &[u8] = b"bunkeros-trustd-ca";

/// Why the CA key could not be loaded or enrolled.
#[derive(Debug, thiserror::Error)]
pub enum EnrolmentError {
    /// The TPM failed, or the stored key is unusable.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The configured policy cannot be built.
    #[error("cannot build the CA key policy: {0}")]
    Policy(#[from] PolicyError),
    /// The PCR 11 prediction could not be read.
    #[error(
        "cannot read the PCR 11 prediction {}: {reason}; the CA key is bound to the build's prediction (set policy.pcr11_prediction = \"\" to bind PCR 11 to its value at enrolment)",
        path.display()
    )]
    Prediction {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The release key could not be read.
    #[error("cannot use the release key {}: {reason}", path.display())]
    ReleaseKey {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// The CA key, and whether this start created it.
#[derive(Debug)]
pub struct EnrolledKey {
    /// The key in the TPM.
    pub key: TpmCaKey,
    /// True on the first start, when the key was created now.
    pub created: bool,
}

/// Loads the stored CA key, or creates it under the policy `config` describes.
///
/// A stored key keeps its own policy; when the configuration describes another one, a warning
/// says so (a key's policy cannot change without enrolling a new CA).
pub fn load_or_enrol(
    connection: Arc<TpmConnection>,
    state: &StateDir,
    config: &PolicySection,
) -> Result<EnrolledKey, EnrolmentError> {
    if let Some(key) = TpmCaKey::load(Arc::clone(&connection), state)? {
        warn_if_reconfigured(key.policy(), config);
        return Ok(EnrolledKey {
            key,
            created: false,
        });
    }
    let policy = policy_for_enrolment(&connection, config)?;
    let key = TpmCaKey::create(connection, state, policy)?;
    Ok(EnrolledKey { key, created: true })
}

/// The policy a new CA key is bound to.
pub fn policy_for_enrolment(
    connection: &TpmConnection,
    config: &PolicySection,
) -> Result<PolicyMode, EnrolmentError> {
    let selection = pcr::normalise_selection(&config.pcrs).map_err(PolicyError::from)?;
    match config.mode {
        PolicyKind::Pcr => Ok(PolicyMode::pcr(bound_values(
            connection, config, &selection,
        )?)?),
        PolicyKind::Authorized => {
            let release = read_release_key(&config.release_key)?;
            let signed =
                pcr::normalise_selection(&config.signed_pcrs).map_err(PolicyError::from)?;
            let fixed: Vec<u8> = selection
                .iter()
                .copied()
                .filter(|pcr| !signed.contains(pcr))
                .collect();
            let fixed = if fixed.is_empty() {
                Vec::new()
            } else {
                bound_values(connection, config, &fixed)?
            };
            Ok(PolicyMode::authorized(
                &release, POLICY_REF, &signed, fixed,
            )?)
        }
    }
}

/// The values a key is bound to for `selection`: PCR 11 as the build predicted it (unless the
/// prediction is switched off), every other PCR as it is now.
fn bound_values(
    connection: &TpmConnection,
    config: &PolicySection,
    selection: &[u8],
) -> Result<Vec<PcrValue>, EnrolmentError> {
    let mut values = connection.read_pcrs(selection)?;
    if let Some(path) = prediction_source(config)
        && selection.contains(&PREDICTED_PCR)
    {
        let path = path.as_path();
        let predicted = read_prediction(path)?;
        let slot = values
            .iter_mut()
            .find(|value| value.pcr == PREDICTED_PCR)
            .expect("read_pcrs returns every selected PCR");
        if *slot != predicted {
            tracing::warn!(
                prediction = %path.display(),
                "PCR 11 of this boot differs from the build's prediction; the CA key is \
                 bound to the prediction and stays sealed until the predicted image boots"
            );
        }
        *slot = predicted;
    }
    Ok(values)
}

/// Where the prediction is read from: `policy.pcr11_prediction` (on the appliance, the booted
/// slot's copy that bunkeros-slot.service publishes in /run/bunkeros/slot); `None` when the
/// prediction is switched off.
pub fn prediction_source(config: &PolicySection) -> Option<PathBuf> {
    config.prediction_file().map(Path::to_path_buf)
}

/// Installs the image's release-signed PCR policy (`authorized` mode; nothing to do in `pcr`
/// mode). A missing or unusable file is not fatal: the CA then reports itself sealed, with
/// the reason, and the error is returned for the journal.
pub fn install_signed_policy(key: &TpmCaKey, config: &PolicySection) -> Result<(), PolicyError> {
    if !matches!(key.policy(), PolicyMode::Authorized { .. }) {
        return Ok(());
    }
    let signed = SignedPcrPolicy::load(&config.signed_policy)?;
    key.install_signed_policy(&signed)
}

/// The prediction file's value for PCR 11 (one line of 64 hex digits).
pub fn read_prediction(path: &Path) -> Result<PcrValue, EnrolmentError> {
    let error = |reason: String| EnrolmentError::Prediction {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    PcrValue::from_prediction(PREDICTED_PCR, &text).map_err(|e| error(e.to_string()))
}

/// A P-256 public key from a PEM file (`-----BEGIN PUBLIC KEY-----`, as `openssl pkey -pubout`
/// writes it).
pub fn read_release_key(path: &Path) -> Result<VerifyingKey, EnrolmentError> {
    let error = |reason: String| EnrolmentError::ReleaseKey {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let block = pem::parse(text.trim()).map_err(|e| error(e.to_string()))?;
    if block.tag() != "PUBLIC KEY" {
        return Err(error(format!(
            "a PEM `{}` block, expected `PUBLIC KEY`",
            block.tag()
        )));
    }
    VerifyingKey::from_public_key_der(block.contents())
        .map_err(|e| error(format!("not a P-256 public key ({e})")))
}

/// The policy in words, for logs and the status line: `pcr 7+11`, `authorized 11`, or
/// `authorized 11, fixed 7` (PCR 11 release-signed, PCR 7 bound to its value at enrolment).
pub fn describe(policy: &PolicyMode) -> String {
    let fixed: Vec<u8> = policy.fixed().iter().map(|value| value.pcr).collect();
    let (PolicyMode::Pcr { selection, .. } | PolicyMode::Authorized { selection, .. }) = policy;
    let mode = match policy {
        PolicyMode::Pcr { .. } => PolicyKind::Pcr,
        PolicyMode::Authorized { .. } => PolicyKind::Authorized,
    };
    describe_parts(mode, selection, &fixed)
}

/// What the configuration would enrol, in the words of [`describe`].
fn describe_config(config: &PolicySection) -> String {
    let mut pcrs = config.pcrs.clone();
    pcrs.sort_unstable();
    pcrs.dedup();
    match config.mode {
        PolicyKind::Pcr => describe_parts(PolicyKind::Pcr, &pcrs, &[]),
        PolicyKind::Authorized => {
            let mut signed = config.signed_pcrs.clone();
            signed.sort_unstable();
            signed.dedup();
            let fixed: Vec<u8> = pcrs
                .iter()
                .copied()
                .filter(|pcr| !signed.contains(pcr))
                .collect();
            describe_parts(PolicyKind::Authorized, &signed, &fixed)
        }
    }
}

fn describe_parts(mode: PolicyKind, selection: &[u8], fixed: &[u8]) -> String {
    let join = |pcrs: &[u8]| {
        let names: Vec<String> = pcrs.iter().map(u8::to_string).collect();
        names.join("+")
    };
    let mut text = format!("{} {}", mode.name(), join(selection));
    if !fixed.is_empty() {
        text.push_str(&format!(", fixed {}", join(fixed)));
    }
    text
}

fn warn_if_reconfigured(stored: &PolicyMode, config: &PolicySection) {
    let stored_text = describe(stored);
    let configured = describe_config(config);
    if stored_text != configured {
        tracing::warn!(
            stored = %stored_text,
            configured = %configured,
            "the CA key was enrolled under another policy than the configured one; the stored \
             policy applies until a new CA is enrolled (move /var/lib/trustd away to enrol anew)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use appliance::testtpm::Swtpm;
    use tempfile::TempDir;

    fn section(pcrs: &[u8], prediction: &Path) -> PolicySection {
        PolicySection {
            mode: PolicyKind::Pcr,
            pcrs: pcrs.to_vec(),
            pcr11_prediction: prediction.to_path_buf(),
            ..PolicySection::default()
        }
    }

    #[test]
    fn pcr_11_is_bound_to_the_prediction_and_the_others_to_their_value_now() {
        let tpm = Swtpm::start().expect("swtpm starts");
        let connection = Arc::new(TpmConnection::open_tcti(&tpm.tcti()).unwrap());
        let dir = TempDir::new().unwrap();
        let prediction = dir.path().join("pcr11.expected");
        std::fs::write(&prediction, format!("{}\n", "ab".repeat(32))).unwrap();

        let policy = policy_for_enrolment(&connection, &section(&[16, 11], &prediction)).unwrap();
        let PolicyMode::Pcr { expected, .. } = &policy else {
            panic!("{policy:?}")
        };
        let now = connection.read_pcrs(&[16]).unwrap()[0];
        assert_eq!(
            expected[0],
            PcrValue {
                pcr: 11,
                sha256: [0xab; 32]
            }
        );
        assert_eq!(expected[1], now);
        assert_eq!(describe(&policy), "pcr 11+16");

        // enrolled on a boot whose PCR 11 is not the predicted one: created, and sealed
        let state = StateDir::new(dir.path().join("trustd")).unwrap();
        let enrolled = load_or_enrol(
            Arc::clone(&connection),
            &state,
            &section(&[11, 16], &prediction),
        )
        .unwrap();
        assert!(enrolled.created);
        assert!(!enrolled.key.policy_satisfied().unwrap());

        // a later start loads the same key, even with another configuration
        let again = load_or_enrol(
            Arc::clone(&connection),
            &state,
            &section(&[7], Path::new("")),
        )
        .unwrap();
        assert!(!again.created);
        assert_eq!(again.key.policy(), enrolled.key.policy());
    }

    #[test]
    fn without_a_prediction_pcr_11_is_bound_to_its_value_now() {
        let tpm = Swtpm::start().expect("swtpm starts");
        let connection = Arc::new(TpmConnection::open_tcti(&tpm.tcti()).unwrap());
        let dir = TempDir::new().unwrap();
        let state = StateDir::new(dir.path().join("trustd")).unwrap();
        let enrolled = load_or_enrol(
            Arc::clone(&connection),
            &state,
            &section(&[11], Path::new("")),
        )
        .unwrap();
        assert!(enrolled.key.policy_satisfied().unwrap());
    }

    #[test]
    fn a_missing_prediction_stops_enrolment_with_the_path() {
        let tpm = Swtpm::start().expect("swtpm starts");
        let connection = TpmConnection::open_tcti(&tpm.tcti()).unwrap();
        let missing = Path::new("/nonexistent/pcr11.expected");
        let err = policy_for_enrolment(&connection, &section(&[7, 11], missing)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/pcr11.expected"), "{text}");
        assert!(text.contains("pcr11_prediction = \"\""), "{text}");
        // a selection without PCR 11 does not need the prediction
        policy_for_enrolment(&connection, &section(&[7], missing)).unwrap();
    }

    /// An `authorized` section with a release key written to `dir`; the key is returned.
    fn authorized_section(
        dir: &Path,
        pcrs: &[u8],
        signed_pcrs: &[u8],
        prediction: &Path,
    ) -> (PolicySection, p256::ecdsa::SigningKey) {
        use p256::pkcs8::EncodePublicKey as _;
        let release = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
        let pem = release
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let key_file = dir.join("release.pem");
        std::fs::write(&key_file, pem).unwrap();
        let config = PolicySection {
            mode: PolicyKind::Authorized,
            release_key: key_file,
            signed_policy: dir.join("pcr-policy.json"),
            signed_pcrs: signed_pcrs.to_vec(),
            ..section(pcrs, prediction)
        };
        (config, release)
    }

    #[test]
    fn authorized_mode_signs_pcr_11_and_fixes_the_others_at_enrolment() {
        let tpm = Swtpm::start().expect("swtpm starts");
        let connection = Arc::new(TpmConnection::open_tcti(&tpm.tcti()).unwrap());
        let dir = TempDir::new().unwrap();
        let (config, release) =
            authorized_section(dir.path(), &[16, 11], &[11], Path::new("/nonexistent"));

        let policy = policy_for_enrolment(&connection, &config).unwrap();
        let PolicyMode::Authorized {
            selection, fixed, ..
        } = &policy
        else {
            panic!("{policy:?}")
        };
        assert_eq!(selection, &[11]);
        assert_eq!(fixed, &connection.read_pcrs(&[16]).unwrap());
        assert_eq!(describe(&policy), "authorized 11, fixed 16");
        assert_eq!(describe_config(&config), describe(&policy));

        // enrolled, then usable with the image's signed PCR 11 policy installed from its file
        let state = StateDir::new(dir.path().join("trustd")).unwrap();
        let enrolled = load_or_enrol(Arc::clone(&connection), &state, &config).unwrap();
        assert!(enrolled.created);
        assert_eq!(enrolled.key.policy(), &policy);
        let signed =
            SignedPcrPolicy::sign(&release, connection.read_pcrs(&[11]).unwrap(), POLICY_REF)
                .unwrap();
        std::fs::write(&config.signed_policy, serde_json::to_vec(&signed).unwrap()).unwrap();
        install_signed_policy(&enrolled.key, &config).unwrap();
        assert!(enrolled.key.policy_satisfied().unwrap());

        // all PCRs signed: nothing fixed, the prediction is not needed
        let (all_signed, _) =
            authorized_section(dir.path(), &[11, 16], &[16, 11], Path::new("/nonexistent"));
        let policy = policy_for_enrolment(&connection, &all_signed).unwrap();
        assert!(policy.fixed().is_empty());
        assert_eq!(describe(&policy), "authorized 11+16");
    }

    #[test]
    fn a_fixed_pcr_11_is_bound_to_the_prediction_as_in_pcr_mode() {
        let tpm = Swtpm::start().expect("swtpm starts");
        let connection = TpmConnection::open_tcti(&tpm.tcti()).unwrap();
        let dir = TempDir::new().unwrap();
        let prediction = dir.path().join("pcr11.expected");
        std::fs::write(&prediction, format!("{}\n", "cd".repeat(32))).unwrap();
        let (config, _) = authorized_section(dir.path(), &[11, 16], &[16], &prediction);
        let policy = policy_for_enrolment(&connection, &config).unwrap();
        assert_eq!(
            policy.fixed(),
            &[PcrValue {
                pcr: 11,
                sha256: [0xcd; 32]
            }]
        );
        assert_eq!(describe(&policy), "authorized 16, fixed 11");
    }

    #[test]
    fn release_keys_are_read_from_pem() {
        use p256::ecdsa::SigningKey;
        use p256::pkcs8::EncodePublicKey as _;
        let dir = TempDir::new().unwrap();
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = key
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        let path = dir.path().join("release.pem");
        std::fs::write(&path, pem).unwrap();
        assert_eq!(read_release_key(&path).unwrap(), *key.verifying_key());

        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = read_release_key(&path).unwrap_err().to_string();
        assert!(err.contains("expected `PUBLIC KEY`"), "{err}");
    }
}
