//! The disk's GPT: read from whichever copy is intact, rewritten one copy at a time.
//!
//! A GPT has two copies, each a header and a partition array: the primary at the start of the
//! disk, the backup at its end. A power cut while one copy is rewritten can leave that copy torn
//! (its CRCs no longer match); firmware and the kernel then use the other. This module does the
//! same when reading, and when writing it rewrites the whole of the copy it did not read from
//! first, syncs, then the copy it trusted: at every instant one copy is intact, and a torn copy
//! left by an earlier power cut is healed by the next write.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use gpt::GptConfig;
use gpt::disk::LogicalBlockSize;
use gpt::header::{Header, HeaderBuilder};
use gpt::partition::Partition;

use super::DiskError;

/// A disk's partition table and the two headers to write it back with.
pub(super) struct GptTable {
    pub lb_size: LogicalBlockSize,
    /// Used entries by number (index in the array plus one).
    pub partitions: BTreeMap<u32, Partition>,
    /// The copy the table was read from, which is written last.
    trusted: Header,
    /// The other copy's header, rebuilt from the trusted one.
    other: Header,
}

impl GptTable {
    /// Reads the table from the primary copy, or from the backup when the primary is torn.
    pub fn read(path: &Path) -> Result<GptTable, DiskError> {
        let file = open(path, false)?;
        let disk = match GptConfig::new().open_from_device(file) {
            Ok(disk) => table_of(&disk),
            Err(primary_error) => {
                // gpt prefers a primary header with a valid CRC even when its array is torn;
                // hiding the primary makes it read the backup copy.
                let hidden = WithoutPrimary(open(path, false)?);
                match GptConfig::new().open_from_device(hidden) {
                    Ok(disk) => {
                        tracing::warn!(disk = %path.display(), %primary_error, "the primary GPT is damaged; reading the backup");
                        table_of(&disk)
                    }
                    Err(_) => {
                        return Err(DiskError::Gpt {
                            path: path.to_owned(),
                            detail: primary_error.to_string(),
                        });
                    }
                }
            }
        };
        let (lb_size, partitions, trusted) = disk;
        let trusted_is_primary = trusted.current_lba < trusted.backup_lba;
        let other = HeaderBuilder::from_header(&trusted)
            .primary(!trusted_is_primary)
            .build(lb_size)
            .map_err(|e| DiskError::Gpt {
                path: path.to_owned(),
                detail: format!("the other GPT header cannot be rebuilt: {e}"),
            })?;
        Ok(GptTable {
            lb_size,
            partitions,
            trusted,
            other,
        })
    }

    /// Whether the used entries are numbered 1..=n without gaps: [`GptTable::write`] packs them
    /// at the start of the array, so a table with gaps would be renumbered.
    pub fn is_dense(&self) -> bool {
        self.partitions
            .keys()
            .copied()
            .eq(1..=self.partitions.len() as u32)
    }

    /// Writes the table to both copies of the disk at `path`: the untrusted copy first, synced,
    /// then the trusted one, synced. Only for a dense table ([`GptTable::is_dense`]).
    pub fn write(mut self, path: &Path) -> Result<(), String> {
        let error = |e: &dyn std::fmt::Display| e.to_string();
        let mut file = open(path, true).map_err(|e| error(&e))?;
        for header in [&mut self.other, &mut self.trusted] {
            write_copy(&mut file, header, &self.partitions, self.lb_size).map_err(|e| error(&e))?;
        }
        Ok(())
    }
}

/// Writes every entry of one copy's array, zeroes the unused rest, writes its header (gpt
/// computes both CRCs from what is on the disk) and syncs.
fn write_copy(
    file: &mut File,
    header: &mut Header,
    partitions: &BTreeMap<u32, Partition>,
    lb_size: LogicalBlockSize,
) -> Result<(), Box<dyn std::error::Error>> {
    for (number, partition) in partitions {
        partition.write_to_device(
            file,
            u64::from(number - 1),
            header.part_start,
            lb_size,
            header.part_size,
        )?;
    }
    let used = partitions.len() as u64;
    let unused = u64::from(header.num_parts)
        .checked_sub(used)
        .ok_or("more partitions than the array holds")?;
    Partition::write_zero_entries_to_device(
        file,
        used,
        unused,
        header.part_start,
        lb_size,
        header.part_size,
    )?;
    if header.current_lba < header.backup_lba {
        header.write_primary(file, lb_size)?;
    } else {
        header.write_backup(file, lb_size)?;
    }
    file.sync_all()?;
    Ok(())
}

/// Block size, entries, and the header they were read with (gpt's `header()` is the primary
/// when valid, else the backup).
fn table_of<D>(disk: &gpt::GptDisk<D>) -> (LogicalBlockSize, BTreeMap<u32, Partition>, Header) {
    (
        *disk.logical_block_size(),
        disk.partitions().clone(),
        disk.header().clone(),
    )
}

fn open(path: &Path, write: bool) -> Result<File, DiskError> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .open(path)
        .map_err(|source| DiskError::Open {
            path: path.to_owned(),
            source,
        })
}

/// A read-only view of a disk whose primary GPT header (LBA 1) reads as zeros.
#[derive(Debug)]
struct WithoutPrimary(File);

/// gpt's default logical block size, the one both reads use.
const HIDDEN: std::ops::Range<u64> = 512..1024;

impl Read for WithoutPrimary {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let start = self.0.stream_position()?;
        let read = self.0.read(buffer)?;
        let end = start + read as u64;
        let from = start.max(HIDDEN.start);
        let to = end.min(HIDDEN.end);
        if from < to {
            buffer[(from - start) as usize..(to - start) as usize].fill(0);
        }
        Ok(read)
    }
}

impl Seek for WithoutPrimary {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.0.seek(position)
    }
}

impl Write for WithoutPrimary {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the damaged-primary view of a disk is read-only",
        ))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
