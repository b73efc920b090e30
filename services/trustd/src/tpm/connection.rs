//! The one connection trustd keeps to the TPM, and the storage key everything hangs under.
//!
//! A single long-lived ESAPI context serves the whole process: swtpm's TCP server handles one
//! client at a time, and `/dev/tpmrm0` gains nothing from more. `tss_esapi::Context` is `Send`
//! but not `Sync`, so it sits behind a mutex; TPM commands are serialised there anyway.
//!
//! The link can break underneath us, or the TPM can be reset behind a link the TCTI silently
//! re-established (swtpm restarted in tests), which drops every loaded object. Work runs
//! through `TpmConnection::run`, which reopens the context and retries once when the first
//! attempt failed that way; every reopening starts a new *epoch*, and objects loaded in an
//! older epoch must be loaded again.

use std::str::FromStr;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::structures::{
    EccPoint, PcrSelectSize, PcrSelectionListBuilder, PcrSlot, Public, PublicBuilder,
    PublicEccParametersBuilder, SymmetricDefinitionObject,
};
use tss_esapi::tcti_ldr::TctiNameConf;

use super::TpmError;
use super::pcr::{self, PcrValue};
use super::response;

/// The TPM on the appliance: the kernel's resource manager, so other tools can share the TPM.
pub const APPLIANCE_TCTI: &str = "device:/dev/tpmrm0";

/// The environment variable tpm2-tools reads; trustd honours it when no TCTI is configured, so
/// the same shell that runs `tpm2_pcrread` against a test TPM can run trustd.
pub const TCTI_ENV: &str = "TPM2TOOLS_TCTI";

/// `TSS2_LOG` value that silences tpm2-tss' own stderr lines (see [`quiet_tss_logging`]).
pub const QUIET_TSS2_LOG: &str = "all+none";

/// Where the TCTI configuration came from, for the status trustd reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TctiSource {
    /// trustd's configuration file.
    Configured,
    /// The `TPM2TOOLS_TCTI` environment variable.
    Environment,
    /// Nothing was configured: the appliance's [`APPLIANCE_TCTI`].
    Default,
}

/// Makes tpm2-tss quiet on stderr unless the operator asked for its logs (`TSS2_LOG` set).
///
/// tpm2-tss prints `WARNING`/`ERROR` lines for every failed command, including the expected
/// policy failures of a sealed CA, which would drown the journal. Nothing is lost: every
/// failure reaches trustd as an error value carrying the TPM response code and a sentence,
/// and trustd logs those itself. A unit file can do the same with `Environment=TSS2_LOG=…`.
///
/// # Safety
///
/// It sets an environment variable, so no other thread may exist yet (call it first thing in
/// `main`, before the async runtime starts): C code such as tpm2-tss and glibc reads the
/// environment without the lock Rust's own accessors take.
pub unsafe fn quiet_tss_logging() {
    if std::env::var_os("TSS2_LOG").is_none() {
        // SAFETY: the caller guarantees that this process has a single thread.
        unsafe { std::env::set_var("TSS2_LOG", QUIET_TSS2_LOG) };
    }
}

/// Errors that may mean the TPM link was lost, so [`TpmConnection::run`] knows when to reopen.
pub(crate) trait LinkFault {
    /// Whether the operation failed because the connection to the TPM broke.
    fn link_lost(&self) -> bool;
}

impl LinkFault for TpmError {
    fn link_lost(&self) -> bool {
        matches!(self, TpmError::Command { cause, .. } if response::connection_lost(cause))
    }
}

/// A connection to the TPM, shared by everything in trustd that uses it.
pub struct TpmConnection {
    tcti: String,
    source: TctiSource,
    link: Mutex<Link>,
}

/// The ESAPI context, absent after the link was lost and until it is reopened.
struct Link {
    context: Option<Context>,
    epoch: u64,
}

impl std::fmt::Debug for TpmConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmConnection")
            .field("tcti", &self.tcti)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl TpmConnection {
    /// Opens the TPM named by `configured`, else by `$TPM2TOOLS_TCTI`, else the appliance's
    /// `/dev/tpmrm0`.
    pub fn open(configured: Option<&str>) -> Result<Self, TpmError> {
        let env = std::env::var(TCTI_ENV).ok();
        let (tcti, source) = resolve_tcti(configured, env.as_deref());
        Self::open_with_source(tcti, source)
    }

    /// Opens the TPM through exactly this TCTI configuration (tests: `swtpm:host=…,port=…`).
    pub fn open_tcti(tcti: &str) -> Result<Self, TpmError> {
        Self::open_with_source(tcti.to_owned(), TctiSource::Configured)
    }

    fn open_with_source(tcti: String, source: TctiSource) -> Result<Self, TpmError> {
        let context = new_context(&tcti)?;
        Ok(Self {
            tcti,
            source,
            link: Mutex::new(Link {
                context: Some(context),
                epoch: 1,
            }),
        })
    }

    /// The TCTI configuration in use.
    pub fn tcti(&self) -> &str {
        &self.tcti
    }

    /// Where the TCTI configuration came from.
    pub fn source(&self) -> TctiSource {
        self.source
    }

    /// The current values of `selection` in the SHA-256 bank, in ascending PCR order.
    pub fn read_pcrs(&self, selection: &[u8]) -> Result<Vec<PcrValue>, TpmError> {
        let selection = pcr::normalise_selection(selection)?;
        self.run(|context, _| read_pcrs(context, &selection))
    }

    /// Runs `op` on the context; reopens the link and runs `op` once more if the first attempt
    /// failed because the link was lost. `op` receives the epoch: objects it loaded in an
    /// earlier epoch are gone.
    pub(crate) fn run<T, E>(
        &self,
        mut op: impl FnMut(&mut Context, u64) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<TpmError> + LinkFault,
    {
        let mut link = self.lock();
        let mut retried = false;
        loop {
            if link.context.is_none() {
                link.context = Some(new_context(&self.tcti)?);
                link.epoch += 1;
                tracing::info!(tcti = %self.tcti, "reconnected to the TPM");
            }
            let epoch = link.epoch;
            let context = link.context.as_mut().expect("opened just above");
            match op(context, epoch) {
                Err(e) if e.link_lost() => {
                    tracing::warn!(tcti = %self.tcti, "the connection to the TPM was lost");
                    link.discard();
                    if retried {
                        return Err(e);
                    }
                    retried = true;
                }
                result => return result,
            }
        }
    }

    /// The context for a command that must not be retried (flushing an object on drop).
    /// `None` if the link is down; the returned epoch says which objects are loaded.
    pub(crate) fn with_open_context<T>(
        &self,
        op: impl FnOnce(&mut Context, u64) -> T,
    ) -> Option<T> {
        let mut link = self.lock();
        let epoch = link.epoch;
        link.context.as_mut().map(|context| op(context, epoch))
    }

    fn lock(&self) -> MutexGuard<'_, Link> {
        // A panic while holding the lock leaves at worst a session loaded in the TPM; the
        // context itself stays consistent, so keep using it.
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Link {
    /// Drops a context whose link is gone. Its destructor tries to flush what it had loaded;
    /// on a dead link those attempts fail harmlessly (and on a restarted TPM the objects are
    /// gone anyway), and its file descriptor and memory are released.
    fn discard(&mut self) {
        self.context = None;
    }
}

/// Picks the TCTI: configuration first, then the environment, then the appliance default.
pub fn resolve_tcti(configured: Option<&str>, env: Option<&str>) -> (String, TctiSource) {
    fn non_empty(value: Option<&str>) -> Option<&str> {
        value.map(str::trim).filter(|v| !v.is_empty())
    }
    if let Some(tcti) = non_empty(configured) {
        (tcti.to_owned(), TctiSource::Configured)
    } else if let Some(tcti) = non_empty(env) {
        (tcti.to_owned(), TctiSource::Environment)
    } else {
        (APPLIANCE_TCTI.to_owned(), TctiSource::Default)
    }
}

fn new_context(tcti: &str) -> Result<Context, TpmError> {
    let conf = TctiNameConf::from_str(tcti).map_err(|e| TpmError::BadTcti {
        tcti: tcti.to_owned(),
        detail: response::describe(&e),
    })?;
    Context::new(conf).map_err(|e| TpmError::Open {
        tcti: tcti.to_owned(),
        detail: response::describe(&e),
    })
}

/// Wraps a failed command with what trustd was doing, for messages an operator can act on.
pub(crate) fn command(action: &'static str) -> impl FnOnce(tss_esapi::Error) -> TpmError {
    move |cause| TpmError::Command { action, cause }
}

/// The storage root key's template: ECC P-256, restricted decryption, AES-128-CFB for its
/// children, in the owner hierarchy.
///
/// A primary key is derived from the hierarchy's seed and its template, so the same template
/// gives the same key after every boot: trustd recreates it at start instead of persisting it
/// with EvictControl (no NV slot used, nothing to clean up). Changing this template changes the
/// SRK and orphans every CA key created under it, so it must never change.
pub(crate) fn srk_template() -> Result<Public, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(command("building the storage key template"))?;
    let parameters = PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()
    .map_err(command("building the storage key template"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(command("building the storage key template"))
}

/// Creates (recreates, after the first time) the storage root key; the caller flushes it.
///
/// Uses the owner hierarchy with an empty authorisation, as systemd and the TCG provisioning
/// guidance leave it.
pub(crate) fn create_srk(context: &mut Context) -> Result<KeyHandle, TpmError> {
    let template = srk_template()?;
    context
        .execute_with_nullauth_session(|c| {
            c.create_primary(Hierarchy::Owner, template, None, None, None, None)
        })
        .map(|created| created.key_handle)
        .map_err(command(
            "creating the storage root key in the owner hierarchy",
        ))
}

/// The PCR selection list tss-esapi passes to the TPM (SHA-256 bank, 3-octet bitmap, the
/// encoding [`pcr::marshal_pcr_selection`] reproduces offline).
pub(crate) fn selection_list(
    selection: &[u8],
) -> Result<tss_esapi::structures::PcrSelectionList, TpmError> {
    let slots = selection
        .iter()
        .map(|&index| PcrSlot::try_from(1u32 << index))
        .collect::<Result<Vec<_>, _>>()
        .map_err(command("building a PCR selection"))?;
    PcrSelectionListBuilder::new()
        .with_size_of_select(PcrSelectSize::ThreeOctets)
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map_err(command("building a PCR selection"))
}

/// Reads `selection` (valid and sorted) from the SHA-256 bank.
pub(crate) fn read_pcrs(
    context: &mut Context,
    selection: &[u8],
) -> Result<Vec<PcrValue>, TpmError> {
    let mut values = Vec::with_capacity(selection.len());
    // TPM2_PCR_Read returns at most 8 digests per call.
    for chunk in selection.chunks(8) {
        let (_, read, digests) = context
            .pcr_read(selection_list(chunk)?)
            .map_err(command("reading PCRs"))?;
        let read: Vec<u8> = read
            .get_selections()
            .iter()
            .flat_map(|s| s.selected())
            .map(|slot| u32::from(slot).trailing_zeros() as u8)
            .collect();
        if read != chunk {
            return Err(TpmError::Faulty(format!(
                "PCRs {read:?} of the SHA-256 bank when asked for {chunk:?} (is the SHA-256 bank allocated?)"
            )));
        }
        for (&index, digest) in chunk.iter().zip(digests.value()) {
            let sha256 = digest.value().try_into().map_err(|_| {
                TpmError::Faulty(format!(
                    "a {}-byte value for PCR {index} in the SHA-256 bank",
                    digest.len()
                ))
            })?;
            values.push(PcrValue { pcr: index, sha256 });
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_beats_environment_beats_default() {
        let swtpm = "swtpm:host=127.0.0.1,port=2321";
        assert_eq!(
            resolve_tcti(Some(swtpm), Some("device:/dev/tpm0")),
            (swtpm.to_owned(), TctiSource::Configured)
        );
        assert_eq!(
            resolve_tcti(None, Some(swtpm)),
            (swtpm.to_owned(), TctiSource::Environment)
        );
        assert_eq!(
            resolve_tcti(Some("  "), Some("")),
            (APPLIANCE_TCTI.to_owned(), TctiSource::Default)
        );
    }

    #[test]
    fn a_malformed_tcti_is_named_in_the_error() {
        let err = TpmConnection::open_tcti("nosuchtcti:foo").unwrap_err();
        assert!(err.to_string().contains("nosuchtcti:foo"), "{err}");
    }
}
