//! The CA key inside the TPM, usable only while the boot measurements satisfy its policy.
//!
//! The key is created by the TPM under a storage root key that is re-derived at every start,
//! is `fixedTPM` and `fixedParent` (it can never leave this TPM), and has no authorisation
//! value: only a policy session that proves the platform state can use it. On disk there is
//! only its public part, its TPM-wrapped private part and the policy it is bound to
//! ([`CaKeyBlob`]), written atomically to trustd's state directory. A copy of that file is
//! worthless on any other TPM, and on this one after a tampered boot.
//!
//! Reading order, following the data: [`connection`] (the TPM link and the storage root key)
//! → [`pcr`] (PCR values and offline policy digests) → [`policy`] (the two policy modes) →
//! [`signed_policy`] (release-signed PCR policies for `authorized` mode) → [`session`]
//! (running the policy, and why it may be refused) → [`blob`] (what is stored, and how a stored
//! key is checked) → [`ca_key`] (the key itself, which implements [`crate::ca_key::CaKey`]).

pub mod blob;
pub mod ca_key;
pub mod connection;
pub mod pcr;
pub mod policy;
mod response;
pub mod session;
pub mod signed_policy;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use appliance::state::StateError;

pub use blob::{CA_KEY_STATE_FILE, CaKeyBlob};
pub use ca_key::{PcrQuote, TpmCaKey};
pub use connection::{APPLIANCE_TCTI, TCTI_ENV, TctiSource, TpmConnection, quiet_tss_logging};
pub use pcr::{PcrError, PcrValue, Sha256Digest};
pub use policy::{PolicyError, PolicyMode};
pub use session::{PolicyStatus, SealedReason};
pub use signed_policy::{SignedPcrPolicy, authorized_policy_digest, policy_signing_digest};

/// Why the TPM, or the CA key in it, could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The TCTI configuration string is malformed.
    #[error(
        "`{tcti}` is not a TPM connection tpm2-tss understands (e.g. `device:/dev/tpmrm0`, `swtpm:host=127.0.0.1,port=2321`): {detail}"
    )]
    BadTcti {
        /// The configuration as given.
        tcti: String,
        /// What tpm2-tss said.
        detail: String,
    },
    /// The TPM could not be opened (device missing, no permission, swtpm not running, TCTI
    /// module not installed).
    #[error("cannot open the TPM through `{tcti}`: {detail}")]
    Open {
        /// The TCTI configuration used.
        tcti: String,
        /// What tpm2-tss said.
        detail: String,
    },
    /// A TPM command failed.
    #[error("the TPM failed while {action}: {}", response::describe(.cause))]
    Command {
        /// What trustd was doing, as a phrase ("loading the CA key").
        action: &'static str,
        /// The error from the TPM stack, with its response code.
        cause: tss_esapi::Error,
    },
    /// PCR selections or values are invalid.
    #[error("invalid PCR policy: {0}")]
    Pcr(#[from] PcrError),
    /// The policy definition is invalid.
    #[error("invalid CA key policy: {0}")]
    Policy(#[from] PolicyError),
    /// The state file could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The state file holds something that is not a usable CA key.
    #[error(
        "the CA key state file {} is not usable: {reason}. trustd never replaces a CA key on its own; restore the file from a backup or move it away to enrol a new CA",
        path.display()
    )]
    BlobInvalid {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TPM refuses the stored key: it was wrapped by another TPM (a copied disk), or this
    /// TPM was cleared since.
    #[error(
        "the CA key in {} does not load into this TPM ({detail}): it was created by another TPM, or this TPM's owner hierarchy was cleared. It cannot be recovered here, and trustd does not create a new CA key over it; move the file away to enrol a new CA",
        path.display()
    )]
    BlobForeign {
        /// The state file.
        path: PathBuf,
        /// The TPM's answer.
        detail: String,
    },
    /// [`TpmCaKey::create`] was asked to enrol while a CA key already exists.
    #[error(
        "a CA key already exists in {}; refusing to create another over it",
        path.display()
    )]
    AlreadyEnrolled {
        /// The existing state file.
        path: PathBuf,
    },
    /// The TPM answered something impossible (a fault in the TPM or the stack).
    #[error("the TPM returned {0}")]
    Faulty(String),
}
