//! `bunkeros-release`: what the image build does with the release signing key.
//!
//! The release key (ECDSA P-256, PKCS#8 PEM, kept offline in production) signs each image's
//! PCR 11 prediction, so that trustd's CA key, bound to the release key by TPM2_PolicyAuthorize,
//! stays usable on every image a release approved ([`trustd::tpm::SignedPcrPolicy`]). The
//! format, the signature and the policy reference are trustd's own code, called from here: what
//! the build signs is, by construction, what trustd loads.
//!
//! An image build becomes an update as a TUF release (`updated`'s repository code, tough): the
//! image carries the TUF root it trusts, and `publish` adds each build to a repository directory
//! (a USB stick, a mirror) whose metadata the appliance verifies before it writes a slot.
//!
//! Reading order: [`release_key`] (reading the private key, showing its public half) →
//! [`pcr_policy`] (PCR values from the command line, the signed policy, the file it goes to) →
//! [`tuf_keys`] (the TUF role keys and `keys.toml`) → [`tuf_root`] (the signed `root.json`) →
//! [`image_build`] (what an image build is, checked) → [`release_repo`] (what a repository
//! already holds) → [`publish`] (one build into a repository) → [`refresh_timestamp`] →
//! [`verify_repo`] (the appliance's verification, run before a repository ships).

pub mod image_build;
pub mod pcr_policy;
pub mod publish;
pub mod refresh_timestamp;
pub mod release_key;
pub mod release_repo;
pub mod tuf_keys;
pub mod tuf_root;
pub mod verify_repo;

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
    /// The TUF key directory cannot be made or read.
    #[error("cannot use the TUF keys in {}: {reason}", dir.display())]
    TufKeys {
        /// The key directory as given.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A TUF root is unreadable, not signed by its own root keys, or not usable.
    #[error("the TUF root {} is not usable: {reason}", path.display())]
    TufRoot {
        /// The root.json as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The image build directory is not a complete, consistent image build.
    #[error("{} is not a usable image build: {reason}", dir.display())]
    ImageBuild {
        /// The image build directory as given.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The release repository cannot be read, or does not take this release.
    #[error("cannot publish into {}: {reason}", repo.display())]
    Repository {
        /// The repository directory as given.
        repo: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The repository does not verify as an appliance verifies it.
    #[error("the repository {} does not verify: {reason}", repo.display())]
    Verify {
        /// The repository directory as given.
        repo: PathBuf,
        /// The appliance's refusal.
        reason: String,
    },
    /// Writing or signing the TUF metadata failed.
    #[error("{0}")]
    Tuf(#[from] updated::ReleaseError),
}
