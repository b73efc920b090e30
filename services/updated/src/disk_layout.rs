//! The appliance disk: its GPT, the two root slots on it, and writing into a slot's partitions.
//!
//! The image (image/scripts/assemble.sh) lays out one GPT disk with partitions labelled `esp`,
//! `root-a`, `root-a-verity`, `root-b`, `root-b-verity` and `data`. A slot is found by those GPT
//! partition names. A slot's UKI finds its root by partition UUID: the root partition's UUID is
//! the first half of the image's dm-verity root hash, the verity partition's the second half
//! (systemd's convention, `systemd.verity_root_data=PARTUUID=…`). So setting those two UUIDs is
//! what makes a written slot findable, and giving them random values first makes sure no UKI
//! finds a slot while it is being rewritten.
//!
//! The partition table is changed one GPT copy at a time, each synced before the next, so a
//! power cut always leaves one intact copy (see `disk_layout_gpt.rs`).

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use gpt::disk::LogicalBlockSize;
use gpt::partition::Partition;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWrite;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::repository::is_roothash;
use gpt_table::GptTable;

/// Bytes gathered before one positioned write into a partition.
pub const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// One of the two root slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    /// The slot's name as the image writes it: `a` or `b`.
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }

    /// The slot that is not this one.
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// The slot named `name` (`a` or `b`, as `/run/bunkeros/slot/name` holds it, newline allowed).
    pub fn from_name(name: &str) -> Option<Slot> {
        match name.trim() {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        }
    }

    /// The GPT name of the slot's root partition.
    pub fn root_label(self) -> String {
        format!("root-{}", self.name())
    }

    /// The GPT name of the slot's dm-verity hash partition.
    pub fn verity_label(self) -> String {
        format!("root-{}-verity", self.name())
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why the disk could not be read or changed. Reading changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("the disk {path} could not be opened: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "the disk {path} has no intact GPT (neither the primary nor the backup copy): {detail}"
    )]
    Gpt { path: PathBuf, detail: String },
    #[error("the disk {path} has no partition named {label:?}")]
    MissingPartition { path: PathBuf, label: String },
    #[error("the disk {path} has more than one partition named {label:?}")]
    DuplicatePartition { path: PathBuf, label: String },
    #[error(
        "the disk {path} has gaps in its partition table, which this writer would renumber; refusing to change it"
    )]
    SparseTable { path: PathBuf },
    #[error("{0:?} is not a dm-verity root hash (64 lowercase hex digits)")]
    NotARoothash(String),
    #[error("writing the partition table of {path} failed: {detail}")]
    WriteTable { path: PathBuf, detail: String },
}

/// Where a partition lies on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpan {
    /// The GPT partition name, e.g. `root-b`.
    pub label: String,
    /// The partition number (`/dev/vda3` is 3).
    pub number: u32,
    /// Byte offset of the partition's first byte on the disk.
    pub offset: u64,
    /// The partition's size in bytes.
    pub length: u64,
    /// The partition's unique GUID, as `blkid` prints PARTUUID.
    pub uuid: Uuid,
}

/// A slot's two partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotPartitions {
    pub root: PartitionSpan,
    pub verity: PartitionSpan,
}

/// The slots of the appliance disk, as its GPT says.
#[derive(Debug, Clone)]
pub struct DiskLayout {
    path: PathBuf,
    a: SlotPartitions,
    b: SlotPartitions,
}

/// The partition UUIDs of a slot whose image has dm-verity root hash `roothash`: the root
/// partition's is the hash's first 32 hex digits in 8-4-4-4-12 form, the verity partition's the
/// last 32 (assemble.sh's `as_uuid "${roothash:0:32}"` and `"${roothash:32:32}"`). The UUID's
/// string is what PARTUUID= matches; gpt stores the first three fields little-endian.
pub fn slot_uuids(roothash: &str) -> Result<(Uuid, Uuid), DiskError> {
    if !is_roothash(roothash) {
        return Err(DiskError::NotARoothash(roothash.to_owned()));
    }
    let half = |hex: &str| Uuid::parse_str(hex).expect("32 hex digits are a UUID");
    Ok((half(&roothash[..32]), half(&roothash[32..])))
}

/// The whole disk holding the partition labelled `esp`, as a device path: `/dev/disk/by-
/// partlabel/esp` resolves to the partition's node (`/dev/vda1`, `/dev/nvme0n1p1`), and sysfs
/// places each partition under its disk (`/sys/class/block/vda1` → `…/block/vda/vda1`). `dev`
/// and `sys` are `/dev` and `/sys` on the appliance, other trees in tests.
pub fn find_disk(dev: &Path, sys: &Path) -> Result<PathBuf, DiskError> {
    let link = dev.join("disk/by-partlabel/esp");
    let not_found = |detail: String| DiskError::Gpt {
        path: link.clone(),
        detail,
    };
    let partition = std::fs::canonicalize(&link)
        .map_err(|e| not_found(format!("the ESP partition cannot be resolved: {e}")))?;
    let name = partition
        .file_name()
        .ok_or_else(|| not_found(format!("{} names no device", partition.display())))?;
    let in_sysfs = sys.join("class/block").join(name);
    let disk = std::fs::canonicalize(&in_sysfs)
        .map_err(|e| not_found(format!("{} cannot be resolved: {e}", in_sysfs.display())))?
        .parent()
        .and_then(Path::file_name)
        .map(|disk| dev.join(disk))
        .ok_or_else(|| not_found(format!("{} has no parent disk", in_sysfs.display())))?;
    if !std::fs::exists(in_sysfs.join("partition")).unwrap_or(false) {
        return Err(not_found(format!(
            "{} is not a partition",
            partition.display()
        )));
    }
    Ok(disk)
}

impl DiskLayout {
    /// Reads the GPT of the disk at `path` (a block device, or an image file in tests) and finds
    /// both slots' partitions by name.
    pub fn read(path: &Path) -> Result<DiskLayout, DiskError> {
        let table = GptTable::read(path)?;
        let (partitions, lb_size) = (&table.partitions, table.lb_size);
        let slot = |slot: Slot| -> Result<SlotPartitions, DiskError> {
            Ok(SlotPartitions {
                root: find_span(path, partitions, &slot.root_label(), lb_size)?,
                verity: find_span(path, partitions, &slot.verity_label(), lb_size)?,
            })
        };
        Ok(DiskLayout {
            path: path.to_owned(),
            a: slot(Slot::A)?,
            b: slot(Slot::B)?,
        })
    }

    /// The disk's own path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A slot's partitions.
    pub fn slot(&self, slot: Slot) -> &SlotPartitions {
        match slot {
            Slot::A => &self.a,
            Slot::B => &self.b,
        }
    }

    /// Gives the slot's two partitions random UUIDs, so no UKI's PARTUUID= finds the slot: done
    /// before its content is rewritten.
    pub fn randomise_slot_uuids(&mut self, slot: Slot) -> Result<(), DiskError> {
        self.set_slot_uuids(slot, Uuid::new_v4(), Uuid::new_v4())
    }

    /// Sets the UUIDs of the slot's root and verity partitions in both GPT headers (backup first,
    /// each synced), then re-reads the table to report the new spans.
    pub fn set_slot_uuids(
        &mut self,
        slot: Slot,
        root: Uuid,
        verity: Uuid,
    ) -> Result<(), DiskError> {
        let write_error = |detail: String| DiskError::WriteTable {
            path: self.path.clone(),
            detail,
        };
        let mut table = GptTable::read(&self.path)?;
        if !table.is_dense() {
            return Err(DiskError::SparseTable {
                path: self.path.clone(),
            });
        }
        let spans = self.slot(slot).clone();
        for (span, uuid) in [(&spans.root, root), (&spans.verity, verity)] {
            let entry = table
                .partitions
                .get_mut(&span.number)
                .filter(|entry| entry.name == span.label)
                .ok_or_else(|| write_error(format!("partition {} moved", span.label)))?;
            entry.part_guid = uuid;
        }
        table.write(&self.path).map_err(write_error)?;
        *self = DiskLayout::read(&self.path)?;
        tracing::info!(slot = %slot, %root, %verity, disk = %self.path.display(), "slot partition UUIDs set");
        Ok(())
    }

    /// A writer for the slot partition `span`: positioned writes at its offset, refusing any
    /// byte beyond its end.
    pub fn partition_writer(&self, span: &PartitionSpan) -> Result<PartitionWriter, DiskError> {
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|source| DiskError::Open {
                path: self.path.clone(),
                source,
            })?;
        Ok(PartitionWriter::new(file, span.clone()))
    }
}

fn find_span(
    path: &Path,
    partitions: &std::collections::BTreeMap<u32, Partition>,
    label: &str,
    lb_size: LogicalBlockSize,
) -> Result<PartitionSpan, DiskError> {
    let mut found = partitions.iter().filter(|(_, p)| p.name == label);
    let (number, partition) = found.next().ok_or_else(|| DiskError::MissingPartition {
        path: path.to_owned(),
        label: label.to_owned(),
    })?;
    if found.next().is_some() {
        return Err(DiskError::DuplicatePartition {
            path: path.to_owned(),
            label: label.to_owned(),
        });
    }
    let bad = |e: io::Error| DiskError::Gpt {
        path: path.to_owned(),
        detail: format!("partition {label}: {e}"),
    };
    Ok(PartitionSpan {
        label: label.to_owned(),
        number: *number,
        offset: partition.bytes_start(lb_size).map_err(bad)?,
        length: partition.bytes_len(lb_size).map_err(bad)?,
        uuid: partition.part_guid,
    })
}

/// Streams bytes into one partition: gathered into buffers of [`WRITE_BUFFER_BYTES`], each full
/// buffer written at its position on a blocking thread while the next one fills (two buffers,
/// so reading and hashing the target overlap the disk write). Writing past the partition's end
/// fails before any of those bytes reach the disk. Call [`PartitionWriter::sync`] before
/// anything refers to the data.
pub struct PartitionWriter {
    file: Arc<File>,
    span: PartitionSpan,
    /// Bytes on the disk (written, not necessarily synced), from the partition's start.
    written: u64,
    /// The buffer being filled.
    buffer: Vec<u8>,
    /// The buffer being written, and its length.
    in_flight: Option<(JoinHandle<io::Result<Vec<u8>>>, u64)>,
    /// A written buffer, kept for reuse.
    spare: Option<Vec<u8>>,
}

impl PartitionWriter {
    fn new(file: File, span: PartitionSpan) -> PartitionWriter {
        PartitionWriter {
            file: Arc::new(file),
            span,
            written: 0,
            buffer: Vec::with_capacity(WRITE_BUFFER_BYTES),
            in_flight: None,
            spare: None,
        }
    }

    /// The partition this writer fills.
    pub fn span(&self) -> &PartitionSpan {
        &self.span
    }

    /// Bytes accepted so far (written, being written, or buffered).
    pub fn accepted(&self) -> u64 {
        let in_flight = self.in_flight.as_ref().map_or(0, |(_, length)| *length);
        self.written + in_flight + self.buffer.len() as u64
    }

    /// Flushes the buffers and waits until the disk holds every byte (fsync of the disk).
    pub async fn sync(mut self) -> io::Result<u64> {
        tokio::io::AsyncWriteExt::flush(&mut self).await?;
        let file = Arc::clone(&self.file);
        tokio::task::spawn_blocking(move || file.sync_all())
            .await
            .map_err(io::Error::other)??;
        Ok(self.written)
    }

    /// Waits for the write in flight, if any, and keeps its buffer for reuse.
    fn poll_in_flight(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some((handle, length)) = self.in_flight.as_mut() {
            let result = ready!(Pin::new(handle).poll(cx));
            self.written += *length;
            self.in_flight = None;
            let mut buffer = result.map_err(io::Error::other)??;
            buffer.clear();
            self.spare = Some(buffer);
        }
        Poll::Ready(Ok(()))
    }

    /// Starts writing the filled buffer at its position on a blocking thread; only called with
    /// no write in flight, so the position is right after the bytes written.
    fn start_write(&mut self) {
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER_BYTES));
        let buffer = std::mem::replace(&mut self.buffer, next);
        let length = buffer.len() as u64;
        let file = Arc::clone(&self.file);
        let position = self.span.offset + self.written;
        let handle = tokio::task::spawn_blocking(move || {
            file.write_all_at(&buffer, position).map(|()| buffer)
        });
        self.in_flight = Some((handle, length));
    }
}

impl AsyncWrite for PartitionWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.accepted() + bytes.len() as u64 > this.span.length {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "partition {} holds {} bytes; refusing to write past its end",
                    this.span.label, this.span.length
                ),
            )));
        }
        if this.buffer.len() == WRITE_BUFFER_BYTES {
            ready!(this.poll_in_flight(cx))?;
            this.start_write();
        }
        let room = WRITE_BUFFER_BYTES - this.buffer.len();
        let taken = room.min(bytes.len());
        this.buffer.extend_from_slice(&bytes[..taken]);
        if this.buffer.len() == WRITE_BUFFER_BYTES && this.in_flight.is_none() {
            this.start_write();
        }
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_in_flight(cx))?;
        if !this.buffer.is_empty() {
            this.start_write();
            ready!(this.poll_in_flight(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// Reads `length` bytes of a partition from its start and returns their SHA-256, to check that
/// the disk kept what was written. The span is first dropped from the page cache (the writes
/// were synced, so its pages are clean and the kernel may discard them): the read then comes
/// from the device, not from the memory the bytes were written from.
pub async fn partition_sha256(
    disk: &Path,
    span: &PartitionSpan,
    length: u64,
) -> io::Result<[u8; 32]> {
    let disk = disk.to_owned();
    let offset = span.offset;
    tokio::task::spawn_blocking(move || {
        let file = File::open(&disk)?;
        rustix::fs::fadvise(
            &file,
            offset,
            std::num::NonZeroU64::new(length),
            rustix::fs::Advice::DontNeed,
        )?;
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut buffer = vec![0u8; WRITE_BUFFER_BYTES];
        let mut done = 0u64;
        while done < length {
            let take = (length - done).min(WRITE_BUFFER_BYTES as u64) as usize;
            file.read_exact_at(&mut buffer[..take], offset + done)?;
            context.update(&buffer[..take]);
            done += take as u64;
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.finish().as_ref());
        Ok(digest)
    })
    .await
    .map_err(io::Error::other)?
}

#[path = "disk_layout_gpt.rs"]
mod gpt_table;

#[cfg(test)]
#[path = "disk_layout_tests.rs"]
mod tests;
