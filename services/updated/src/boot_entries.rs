//! The slots' boot entries on the ESP (mounted at /efi on the appliance).
//!
//! Each slot boots from one UKI, `EFI/Linux/bunkeros-<slot>[+LEFT[-DONE]].efi`, named by
//! systemd-boot's boot counting: `bunkeros-b+3.efi` has three tries; systemd-boot renames it
//! `+2-1` as it boots it; `systemd-bless-boot good` renames it `bunkeros-b.efi` (blessed), `bad`
//! to `+0-N`, which sorts last. Beside it, `bunkeros/<slot>/` holds what the slot is (`roothash`,
//! `version`) and its PCR 11 prediction for trustd (`pcr11.*`).
//!
//! Ordering is what keeps a half-written slot unbootable: removing a slot deletes its UKI first,
//! installing one renames its UKI into place last, after everything else is on the disk.
//! The ESP is vfat, which has no atomic rename guarantee across a power cut; a rename followed by
//! a directory fsync is the best it offers, and a lost rename only means the slot is not offered.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::ImageVersion;
use crate::disk_layout::Slot;

/// A UKI name prefix of BunkerOS slots (`bunkeros-a.efi`, `bunkeros-b+3.efi`, ...).
const ENTRY_PREFIX: &str = "bunkeros-";
/// The directory of type #2 (UKI) entries on the ESP.
const LINUX_DIR: &str = "EFI/Linux";
/// The directory of per-slot facts on the ESP.
const FACTS_DIR: &str = "bunkeros";
/// Tries a newly installed slot gets before systemd-boot gives up on it.
pub const DEFAULT_TRIES: u32 = 3;

/// A boot entry's boot-counting state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// No counter: blessed by `systemd-bless-boot good` (or never counted).
    Blessed,
    /// Tries left; `done` boots were attempted without a blessing yet.
    Trying { left: u32, done: u32 },
    /// No tries left: marked bad, or every try failed.
    Bad { done: u32 },
}

/// A slot's UKI on the ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootEntry {
    pub slot: Slot,
    /// The file name in `EFI/Linux`.
    pub file_name: String,
    pub state: EntryState,
}

/// What a slot is, written beside its UKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFacts {
    pub roothash: String,
    pub version: ImageVersion,
    /// Further files for `bunkeros/<slot>/` (the PCR 11 prediction: `pcr11.expected`,
    /// `pcr11.json`, `pcr11.policy.json`), name and content.
    pub files: Vec<(String, Vec<u8>)>,
}

/// Why the ESP could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum EspError {
    #[error("the ESP path {path} could not be {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error("the ESP holds two boot entries for slot {slot} ({first} and {second})")]
    TwoEntries {
        slot: Slot,
        first: String,
        second: String,
    },
    #[error("{0:?} is not a plain file name for a slot's facts")]
    BadFactName(String),
    #[error("the slot facts file {path} is malformed: {detail}")]
    BadFacts { path: PathBuf, detail: String },
}

/// Parses a UKI file name of a BunkerOS slot; `None` for any other file.
pub fn parse_entry_name(file_name: &str) -> Option<BootEntry> {
    let stem = file_name.strip_prefix(ENTRY_PREFIX)?.strip_suffix(".efi")?;
    let (slot, counter) = match stem.split_once('+') {
        Some((slot, counter)) => (slot, Some(counter)),
        None => (stem, None),
    };
    let slot = match slot {
        "a" => Slot::A,
        "b" => Slot::B,
        _ => return None,
    };
    let state = match counter {
        None => EntryState::Blessed,
        Some(counter) => {
            let (left, done) = match counter.split_once('-') {
                Some((left, done)) => (left, done),
                None => (counter, "0"),
            };
            let left: u32 = plain_number(left)?;
            let done: u32 = plain_number(done)?;
            if left == 0 {
                EntryState::Bad { done }
            } else {
                EntryState::Trying { left, done }
            }
        }
    };
    Some(BootEntry {
        slot,
        file_name: file_name.to_owned(),
        state,
    })
}

/// Digits only (systemd-boot's parser takes no signs or spaces).
fn plain_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The ESP, at a directory (`/efi` on the appliance).
#[derive(Debug, Clone)]
pub struct Esp {
    root: PathBuf,
}

impl Esp {
    pub fn new(root: impl Into<PathBuf>) -> Esp {
        Esp { root: root.into() }
    }

    /// The ESP's mount point.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn linux_dir(&self) -> PathBuf {
        self.root.join(LINUX_DIR)
    }

    /// The directory of a slot's facts.
    pub fn facts_dir(&self, slot: Slot) -> PathBuf {
        self.root.join(FACTS_DIR).join(slot.name())
    }

    /// A name for the UKI being written that systemd-boot ignores (hidden, not `.efi`).
    pub fn staging_path(&self, slot: Slot) -> PathBuf {
        self.linux_dir()
            .join(format!(".{ENTRY_PREFIX}{}.partial", slot.name()))
    }

    /// Every BunkerOS boot entry on the ESP, sorted by file name.
    pub fn entries(&self) -> Result<Vec<BootEntry>, EspError> {
        let dir = self.linux_dir();
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io_error(&dir, "listed", source)),
        };
        let mut entries = Vec::new();
        for item in listing {
            let item = item.map_err(|source| io_error(&dir, "listed", source))?;
            if let Some(entry) = item.file_name().to_str().and_then(parse_entry_name) {
                entries.push(entry);
            }
        }
        entries.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        Ok(entries)
    }

    /// The boot entry of `slot`, if it has one; two entries for one slot are an error.
    pub fn entry(&self, slot: Slot) -> Result<Option<BootEntry>, EspError> {
        let mut found = self.entries()?.into_iter().filter(|e| e.slot == slot);
        let first = found.next();
        if let (Some(first), Some(second)) = (&first, found.next()) {
            return Err(EspError::TwoEntries {
                slot,
                first: first.file_name.clone(),
                second: second.file_name,
            });
        }
        Ok(first)
    }

    /// The slot systemd-boot will boot next, as its boot counting orders entries: those with
    /// tries left or blessed before those marked bad, and among each the newer image version
    /// (from the slots' facts; a slot without facts counts as oldest) first.
    pub fn next_boot(&self) -> Result<Option<Slot>, EspError> {
        let mut candidates = Vec::new();
        for entry in self.entries()? {
            let version = self.slot_facts(entry.slot)?.map(|(_, version)| version);
            let bad = matches!(entry.state, EntryState::Bad { .. });
            candidates.push((!bad, version, entry.slot));
        }
        Ok(candidates
            .into_iter()
            .max_by_key(|(good, version, _)| (*good, *version))
            .map(|(_, _, slot)| slot))
    }

    /// The root hash and version recorded for `slot`, if both files are there.
    pub fn slot_facts(&self, slot: Slot) -> Result<Option<(String, ImageVersion)>, EspError> {
        let dir = self.facts_dir(slot);
        let read = |name: &str| -> Result<Option<String>, EspError> {
            let path = dir.join(name);
            match fs::read_to_string(&path) {
                Ok(text) => Ok(Some(text.trim().to_owned())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(io_error(&path, "read", source)),
            }
        };
        let (Some(roothash), Some(version)) = (read("roothash")?, read("version")?) else {
            return Ok(None);
        };
        let version = version.parse().map_err(|_| EspError::BadFacts {
            path: dir.join("version"),
            detail: format!("{version:?} is not an image version"),
        })?;
        Ok(Some((roothash, version)))
    }

    /// Makes `slot` unbootable and forgets what it was: its UKI (any counter state) and any
    /// half-written one go first, synced, then its facts directory.
    pub fn remove_slot(&self, slot: Slot) -> Result<(), EspError> {
        let linux = self.linux_dir();
        for entry in self.entries()?.into_iter().filter(|e| e.slot == slot) {
            remove_file(&linux.join(&entry.file_name))?;
        }
        remove_file(&self.staging_path(slot))?;
        sync_dir(&linux)?;
        let facts = self.facts_dir(slot);
        match fs::remove_dir_all(&facts) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(io_error(&facts, "removed", source)),
        }
        sync_dir(&self.root.join(FACTS_DIR))?;
        tracing::info!(slot = %slot, esp = %self.root.display(), "slot boot entry removed");
        Ok(())
    }

    /// Creates the staging file the slot's UKI is streamed into (see [`Esp::staging_path`]).
    pub async fn stage_uki(&self, slot: Slot) -> Result<StagedUki, EspError> {
        let linux = self.linux_dir();
        tokio::fs::create_dir_all(&linux)
            .await
            .map_err(|source| io_error(&linux, "created", source))?;
        let path = self.staging_path(slot);
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|source| io_error(&path, "created", source))?;
        Ok(StagedUki { slot, path, file })
    }

    /// Makes `slot` bootable with `tries` boot attempts: its facts written and synced, then the
    /// staged UKI synced and renamed to `bunkeros-<slot>+<tries>.efi`, then the directory synced.
    pub async fn install_slot(
        &self,
        facts: &SlotFacts,
        uki: StagedUki,
        tries: u32,
    ) -> Result<BootEntry, EspError> {
        let slot = uki.slot;
        uki.file
            .sync_all()
            .await
            .map_err(|source| io_error(&uki.path, "synced", source))?;
        drop(uki.file);
        let esp = self.clone();
        let facts = facts.clone();
        let staged = uki.path;
        tokio::task::spawn_blocking(move || esp.commit_slot(slot, &facts, &staged, tries))
            .await
            .map_err(|e| io_error(self.root(), "written", io::Error::other(e)))?
    }

    fn commit_slot(
        &self,
        slot: Slot,
        facts: &SlotFacts,
        staged: &Path,
        tries: u32,
    ) -> Result<BootEntry, EspError> {
        let dir = self.facts_dir(slot);
        fs::create_dir_all(&dir).map_err(|source| io_error(&dir, "created", source))?;
        let version = facts.version.to_string();
        let mut files: Vec<(&str, &[u8])> = vec![
            ("roothash", facts.roothash.as_bytes()),
            ("version", version.as_bytes()),
        ];
        files.extend(facts.files.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
        for (name, bytes) in files {
            if name.is_empty() || name.contains('/') || name.starts_with('.') {
                return Err(EspError::BadFactName(name.to_owned()));
            }
            write_synced(&dir.join(name), bytes)?;
        }
        sync_dir(&dir)?;
        sync_dir(&self.root.join(FACTS_DIR))?;
        let file_name = format!("{ENTRY_PREFIX}{}+{tries}.efi", slot.name());
        let linux = self.linux_dir();
        let target = linux.join(&file_name);
        fs::rename(staged, &target).map_err(|source| io_error(&target, "renamed", source))?;
        sync_dir(&linux)?;
        tracing::info!(slot = %slot, entry = %file_name, version = %facts.version, "slot boot entry installed");
        Ok(parse_entry_name(&file_name).expect("the name just built parses"))
    }
}

/// The UKI of a slot being written, under a name systemd-boot ignores.
#[derive(Debug)]
pub struct StagedUki {
    slot: Slot,
    path: PathBuf,
    file: tokio::fs::File,
}

impl StagedUki {
    /// The file to stream the UKI into.
    pub fn file_mut(&mut self) -> &mut tokio::fs::File {
        &mut self.file
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), EspError> {
    let mut file = File::create(path).map_err(|source| io_error(path, "created", source))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error(path, "written", source))
}

fn remove_file(path: &Path) -> Result<(), EspError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error(path, "removed", source)),
    }
}

/// Flushes a directory's entries (a rename or removal in it) to the disk.
fn sync_dir(dir: &Path) -> Result<(), EspError> {
    match File::open(dir) {
        Ok(handle) => handle
            .sync_all()
            .map_err(|source| io_error(dir, "synced", source)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(io_error(dir, "opened", source)),
    }
}

fn io_error(path: &Path, action: &'static str, source: io::Error) -> EspError {
    EspError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

#[cfg(test)]
#[path = "boot_entries_tests.rs"]
mod tests;
