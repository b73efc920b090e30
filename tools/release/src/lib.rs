//! `bunkeros-release`: what the image build does with the release signing key.
//!
//! The release key (ECDSA P-256, PKCS#8 PEM, kept offline in production) signs each image's
//! PCR 11 prediction, so that trustd's CA key, bound to the release key by TPM2_PolicyAuthorize,
//! stays usable on every image a release approved ([`trustd::tpm::SignedPcrPolicy`]). The
//! format, the signature and the policy reference are trustd's own code, called from here: what
//! the build signs is, by construction, what trustd loads.
//!
//! Reading order: [`release_key`] (reading the private key, showing its public half) →
//! [`pcr_policy`] (PCR values from the command line, the signed policy, the file it goes to).

pub mod pcr_policy;
pub mod release_key;

use std::path::PathBuf;

/// Why a release step failed; the sentence is what the build log shows.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// The release key file could not be read or is not a usable key.
    #[error("cannot use the release key {}: {reason}", path.display())]
    Key {
        /// The key file as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The PCR values do not make a policy trustd accepts.
    #[error("cannot sign the PCR policy: {0}")]
    Policy(#[from] trustd::tpm::PolicyError),
    /// The output file could not be written.
    #[error("cannot write {}: {reason}", path.display())]
    Output {
        /// The output file as given.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}
