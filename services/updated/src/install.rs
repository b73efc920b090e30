//! Installing a verified release into the inactive slot and making it the next boot.
//!
//! The steps, in the order that keeps every moment safe to lose power in:
//! 1. refuse what cannot work before touching anything (the booted image again, a booted slot
//!    not yet blessed, a target larger than its partition, a release without its artefacts);
//! 2. remove the inactive slot's boot entry and give its partitions random UUIDs, so nothing
//!    boots or finds the slot while it is rewritten;
//! 3. stream `root.squashfs` and `root.verity` into the slot's partitions (tough checks length
//!    and SHA-256 as the bytes pass), sync;
//! 4. read both partitions back and compare their SHA-256 with the signed target hashes (a disk
//!    that did not keep what was written is caught here, not at boot);
//! 5. set the slot's partition UUIDs from the signed root hash;
//! 6. write the slot's facts and UKI, and rename the UKI to `bunkeros-<slot>+<tries>.efi` last.
//!
//! Any failure after step 2 removes the inactive slot's boot entry again; the booted slot is
//! never written.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;
use uuid::Uuid;

use crate::boot_entries::{BootEntry, EntryState, Esp, EspError, SlotFacts};
use crate::disk_layout::{
    DiskError, DiskLayout, PartitionSpan, Slot, SlotPartitions, partition_sha256, slot_uuids,
};
use crate::repository::ReleaseFacts;
use crate::verify::{UpdateRefused, VerifiedUpdate};

/// The release target holding the image's root file system.
pub const ROOT_TARGET: &str = "root.squashfs";
/// The release target holding the root's dm-verity hash tree.
pub const VERITY_TARGET: &str = "root.verity";
/// The release target holding the slot's UKI.
pub const UKI_TARGET: &str = "bunkeros.uki.efi";
/// Release targets copied into the slot's facts directory on the ESP when the release has them
/// (the PCR 11 prediction trustd's policy needs).
pub const FACT_TARGETS: [&str; 3] = ["pcr11.expected", "pcr11.json", "pcr11.policy.json"];
/// A facts file larger than this is not a PCR prediction; refused rather than read into memory.
const MAX_FACT_BYTES: u64 = 1 << 20;
/// Progress is reported at least this often, in bytes, while writing.
const PROGRESS_STEP: u64 = 1 << 20;

/// What the installer is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    WriteRoot,
    WriteVerity,
    Verify,
    BootEntry,
}

impl Phase {
    /// The phase's name as reported (`write-root`, `write-verity`, `verify`, `boot-entry`).
    pub fn name(self) -> &'static str {
        match self {
            Phase::WriteRoot => "write-root",
            Phase::WriteVerity => "write-verity",
            Phase::Verify => "verify",
            Phase::BootEntry => "boot-entry",
        }
    }
}

/// How far a phase is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub phase: Phase,
    pub done: u64,
    pub total: u64,
}

/// Where to install and what runs now.
#[derive(Debug, Clone, Copy)]
pub struct InstallTarget<'a> {
    /// The appliance disk (`/dev/vda`; an image file in tests).
    pub disk: &'a Path,
    /// The ESP (`/efi`).
    pub esp: &'a Esp,
    /// The booted slot (`/run/bunkeros/slot/name`); the other one is written.
    pub booted: Slot,
    /// The booted image's root hash (`/run/bunkeros/slot/roothash`).
    pub booted_roothash: &'a str,
    /// Boot attempts the new slot gets before systemd-boot falls back.
    pub tries: u32,
}

/// A release installed into a slot, waiting for its first boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub slot: Slot,
    pub entry: BootEntry,
    pub facts: ReleaseFacts,
}

/// Why a release was not installed. The booted slot is untouched and the inactive slot has no
/// boot entry.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("the release is the image the appliance already runs (root hash {roothash})")]
    SameImage { roothash: String },
    #[error(
        "the booted slot {booted} is not blessed ({detail}); writing slot {inactive} now would leave no slot to fall back to"
    )]
    BootedNotBlessed {
        booted: Slot,
        inactive: Slot,
        detail: String,
    },
    #[error("a new slot needs at least one boot try; 0 would mark it bad before it ever boots")]
    NoTries,
    #[error("the release has no target {0:?}, so it is not a BunkerOS image release")]
    MissingTarget(&'static str),
    #[error(
        "target {target} is {length} bytes but partition {partition} holds only {capacity}; nothing was written"
    )]
    TooLarge {
        target: &'static str,
        length: u64,
        partition: String,
        capacity: u64,
    },
    #[error("target {target} is {length} bytes, too large for a slot facts file")]
    FactTooLarge { target: &'static str, length: u64 },
    #[error("target {target} was refused while being written: {source}")]
    Refused {
        target: &'static str,
        source: UpdateRefused,
    },
    #[error("the slot could not be written: {0}")]
    Disk(#[from] DiskError),
    #[error("the boot entry could not be changed: {0}")]
    Esp(#[from] EspError),
    #[error("writing target {target} to partition {partition} failed: {source}")]
    Write {
        target: &'static str,
        partition: String,
        source: io::Error,
    },
    #[error(
        "partition {partition} does not hold what was written from {target} (its SHA-256 differs from the signed one): the disk did not keep the data"
    )]
    ReadBack {
        target: &'static str,
        partition: String,
    },
}

impl InstallError {
    /// How the update state records this error: refused when nothing was written (the checks
    /// before the inactive slot is touched), failed otherwise.
    pub fn outcome(&self) -> crate::update_state::Outcome {
        use crate::update_state::Outcome;
        match self {
            InstallError::SameImage { .. }
            | InstallError::BootedNotBlessed { .. }
            | InstallError::NoTries
            | InstallError::MissingTarget(_)
            | InstallError::TooLarge { .. } => Outcome::Refused,
            _ => Outcome::Failed,
        }
    }
}

/// Installs `update` into the slot not booted and makes it the next boot with `target.tries`
/// tries, reporting each phase through `progress`.
pub async fn install_update(
    update: &VerifiedUpdate,
    target: &InstallTarget<'_>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Installed, InstallError> {
    let plan = plan(update, target).await?;
    let slot = plan.slot;
    tracing::info!(slot = %slot, version = %update.facts().image_version, "installing release into the inactive slot");
    let esp = target.esp.clone();
    blocking(move || esp.remove_slot(slot)).await?;
    match write_slot(update, target, plan, progress).await {
        Ok(entry) => Ok(Installed {
            slot,
            entry,
            facts: update.facts().clone(),
        }),
        Err(error) => {
            tracing::warn!(slot = %slot, %error, "install failed; the inactive slot is left without a boot entry");
            let esp = target.esp.clone();
            if let Err(cleanup) = blocking(move || esp.remove_slot(slot)).await {
                tracing::warn!(slot = %slot, error = %cleanup, "could not remove the failed slot's boot entry");
            }
            Err(error)
        }
    }
}

/// What an install will write where, decided before anything is written.
struct Plan {
    slot: Slot,
    layout: DiskLayout,
    spans: SlotPartitions,
    root_length: u64,
    verity_length: u64,
    uki_length: u64,
    root_uuid: Uuid,
    verity_uuid: Uuid,
}

/// Refuses what cannot or must not be installed, touching nothing, and plans the rest.
async fn plan(update: &VerifiedUpdate, target: &InstallTarget<'_>) -> Result<Plan, InstallError> {
    let facts = update.facts();
    let slot = target.booted.other();
    if facts.roothash == target.booted_roothash {
        return Err(InstallError::SameImage {
            roothash: facts.roothash.clone(),
        });
    }
    if target.tries == 0 {
        return Err(InstallError::NoTries);
    }
    refuse_unless_booted_is_blessed(target).await?;
    let disk = target.disk.to_owned();
    let layout = blocking(move || DiskLayout::read(&disk)).await?;
    let spans = layout.slot(slot).clone();
    let (root_uuid, verity_uuid) = slot_uuids(&facts.roothash)?;
    Ok(Plan {
        slot,
        root_length: fitting_length(update, ROOT_TARGET, &spans.root)?,
        verity_length: fitting_length(update, VERITY_TARGET, &spans.verity)?,
        uki_length: update
            .target_length(UKI_TARGET)
            .ok_or(InstallError::MissingTarget(UKI_TARGET))?,
        layout,
        spans,
        root_uuid,
        verity_uuid,
    })
}

/// Steps 2 to 6 of the module doc, once the slot's boot entry is gone.
async fn write_slot(
    update: &VerifiedUpdate,
    target: &InstallTarget<'_>,
    plan: Plan,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<BootEntry, InstallError> {
    let Plan {
        slot,
        layout,
        spans,
        root_length,
        verity_length,
        uki_length,
        root_uuid,
        verity_uuid,
    } = plan;
    let layout = blocking(move || {
        let mut layout = layout;
        layout.randomise_slot_uuids(slot).map(|()| layout)
    })
    .await?;
    let root = (ROOT_TARGET, &spans.root, root_length);
    let verity = (VERITY_TARGET, &spans.verity, verity_length);
    write_target(update, &layout, root, Phase::WriteRoot, progress).await?;
    write_target(update, &layout, verity, Phase::WriteVerity, progress).await?;
    let total = root_length + verity_length;
    let mut verified = 0;
    progress(Progress {
        phase: Phase::Verify,
        done: 0,
        total,
    });
    for (name, span, length) in [root, verity] {
        check_read_back(update, target.disk, name, span, length).await?;
        verified += length;
        progress(Progress {
            phase: Phase::Verify,
            done: verified,
            total,
        });
    }
    blocking(move || {
        let mut layout = layout;
        layout.set_slot_uuids(slot, root_uuid, verity_uuid)
    })
    .await?;
    install_boot_entry(update, target, slot, uki_length, progress).await
}

/// Runs blocking disk or ESP work (opens, small writes, fsyncs) off the async threads.
async fn blocking<T, E>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, InstallError>
where
    T: Send + 'static,
    E: Send + 'static,
    InstallError: From<E>,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => Ok(result?),
        Err(join) => std::panic::resume_unwind(join.into_panic()),
    }
}

/// The slot written is the fallback of the booted one; while the booted slot is still on trial
/// (or has no entry to boot again), the inactive slot is the only known-good one and must stay.
async fn refuse_unless_booted_is_blessed(target: &InstallTarget<'_>) -> Result<(), InstallError> {
    let refuse = |detail: String| InstallError::BootedNotBlessed {
        booted: target.booted,
        inactive: target.booted.other(),
        detail,
    };
    let (esp, booted) = (target.esp.clone(), target.booted);
    match blocking(move || esp.entry(booted)).await? {
        Some(BootEntry {
            state: EntryState::Blessed,
            ..
        }) => Ok(()),
        Some(entry) => Err(refuse(format!(
            "its entry is {}, still counting boot tries",
            entry.file_name
        ))),
        None => Err(refuse("it has no boot entry on the ESP".to_owned())),
    }
}

/// The signed length of a slot target, refused when it does not fit its partition.
fn fitting_length(
    update: &VerifiedUpdate,
    name: &'static str,
    span: &PartitionSpan,
) -> Result<u64, InstallError> {
    let length = update
        .target_length(name)
        .ok_or(InstallError::MissingTarget(name))?;
    if length > span.length {
        return Err(InstallError::TooLarge {
            target: name,
            length,
            partition: span.label.clone(),
            capacity: span.length,
        });
    }
    Ok(length)
}

async fn write_target(
    update: &VerifiedUpdate,
    layout: &DiskLayout,
    (name, span, total): (&'static str, &PartitionSpan, u64),
    phase: Phase,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), InstallError> {
    let write_error = |source| InstallError::Write {
        target: name,
        partition: span.label.clone(),
        source,
    };
    let mut writer = layout.partition_writer(span)?;
    progress(Progress {
        phase,
        done: 0,
        total,
    });
    let mut sink = Reporting::new(&mut writer, phase, total, progress);
    update
        .stream_target(name, &mut sink)
        .await
        .map_err(|source| match source {
            UpdateRefused::Sink(source) => write_error(source),
            source => InstallError::Refused {
                target: name,
                source,
            },
        })?;
    writer.sync().await.map_err(write_error)?;
    Ok(())
}

async fn check_read_back(
    update: &VerifiedUpdate,
    disk: &Path,
    name: &'static str,
    span: &PartitionSpan,
    length: u64,
) -> Result<(), InstallError> {
    let read_back = partition_sha256(disk, span, length)
        .await
        .map_err(|source| InstallError::Write {
            target: name,
            partition: span.label.clone(),
            source,
        })?;
    if update.target_sha256(name).as_deref() != Some(read_back.as_slice()) {
        return Err(InstallError::ReadBack {
            target: name,
            partition: span.label.clone(),
        });
    }
    Ok(())
}

async fn install_boot_entry(
    update: &VerifiedUpdate,
    target: &InstallTarget<'_>,
    slot: Slot,
    uki_length: u64,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<BootEntry, InstallError> {
    let facts = update.facts();
    let mut files = Vec::new();
    for name in FACT_TARGETS {
        let Some(length) = update.target_length(name) else {
            continue;
        };
        if length > MAX_FACT_BYTES {
            return Err(InstallError::FactTooLarge {
                target: name,
                length,
            });
        }
        let mut bytes = Vec::new();
        update
            .stream_target(name, &mut bytes)
            .await
            .map_err(|source| InstallError::Refused {
                target: name,
                source,
            })?;
        files.push((name.to_owned(), bytes));
    }
    let mut uki = target.esp.stage_uki(slot).await?;
    progress(Progress {
        phase: Phase::BootEntry,
        done: 0,
        total: uki_length,
    });
    let mut sink = Reporting::new(uki.file_mut(), Phase::BootEntry, uki_length, progress);
    update
        .stream_target(UKI_TARGET, &mut sink)
        .await
        .map_err(|source| InstallError::Refused {
            target: UKI_TARGET,
            source,
        })?;
    let slot_facts = SlotFacts {
        roothash: facts.roothash.clone(),
        version: facts.image_version,
        files,
    };
    Ok(target
        .esp
        .install_slot(&slot_facts, uki, target.tries)
        .await?)
}

/// Passes writes through and reports progress every [`PROGRESS_STEP`] bytes and at the end.
struct Reporting<'a, W> {
    inner: &'a mut W,
    phase: Phase,
    total: u64,
    done: u64,
    reported: u64,
    progress: &'a mut (dyn FnMut(Progress) + Send),
}

impl<'a, W> Reporting<'a, W> {
    fn new(
        inner: &'a mut W,
        phase: Phase,
        total: u64,
        progress: &'a mut (dyn FnMut(Progress) + Send),
    ) -> Self {
        Reporting {
            inner,
            phase,
            total,
            done: 0,
            reported: 0,
            progress,
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Reporting<'_, W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut *this.inner).poll_write(cx, bytes))?;
        this.done += written as u64;
        if this.done - this.reported >= PROGRESS_STEP || this.done == this.total {
            this.reported = this.done;
            (this.progress)(Progress {
                phase: this.phase,
                done: this.done,
                total: this.total,
            });
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
}
