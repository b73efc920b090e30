//! Shared fixtures of updated's integration tests: release keys, a signed root, releases of
//! made-up artefacts, and verifying them as the appliance does; a GPT disk image and an ESP with
//! slot A installed.

// Each test binary uses its own part of this module.
#![allow(dead_code)]

use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use gpt::GptConfig;
use gpt::mbr::ProtectiveMBR;
use gpt::partition_types;
use updated::disk_layout::{DiskLayout, Slot, slot_uuids};

use jiff::{SignedDuration, Timestamp};
use tempfile::TempDir;
use updated::repository::{generate_signing_key, write_release, write_root};
use updated::{
    ReleaseFacts, ReleaseKeys, ReleaseSpec, RoleSigners, RootSpec, RunningImage, UpdateRefused,
    verify_update,
};

pub const PROFILE: &str = "qemu-x86_64";

pub const ARTEFACTS: [&str; 3] = ["bunkeros.uki.efi", "root.squashfs", "root.verity"];

pub struct Fixture {
    pub dir: TempDir,
    pub keys: ReleaseKeys,
    pub root_json: PathBuf,
}

pub fn version(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap()
}

pub fn days_from_now(days: i64) -> Timestamp {
    Timestamp::now()
        .checked_add(SignedDuration::from_hours(24 * days))
        .unwrap()
}

pub fn signers(dir: &Path, role: &str, count: usize, threshold: u64) -> RoleSigners {
    let key_files = (0..count)
        .map(|i| {
            let path = dir.join(format!("{role}-{i}.pk8"));
            generate_signing_key(&path).unwrap();
            path
        })
        .collect();
    RoleSigners {
        key_files,
        threshold: version(threshold),
    }
}

/// Release keys (root: 2 of 2, the online roles one key each) and a signed root.json.
pub async fn fixture() -> Fixture {
    let dir = TempDir::new().unwrap();
    let key_dir = dir.path().join("keys");
    std::fs::create_dir(&key_dir).unwrap();
    let keys = ReleaseKeys {
        root: signers(&key_dir, "root", 2, 2),
        targets: signers(&key_dir, "targets", 1, 1),
        snapshot: signers(&key_dir, "snapshot", 1, 1),
        timestamp: signers(&key_dir, "timestamp", 1, 1),
    };
    let root_spec = RootSpec {
        version: version(1),
        expires: days_from_now(365),
    };
    let root_json = write_root(&keys, root_spec, &dir.path().join("root"))
        .await
        .unwrap();
    Fixture {
        dir,
        keys,
        root_json,
    }
}

pub fn spec(image: &str, metadata_version: u64) -> ReleaseSpec {
    ReleaseSpec {
        facts: ReleaseFacts {
            image_version: image.parse().unwrap(),
            profile: PROFILE.to_owned(),
            roothash: roothash_of(image),
        },
        metadata_version: version(metadata_version),
        targets_expires: days_from_now(90),
        snapshot_expires: days_from_now(30),
        timestamp_expires: days_from_now(7),
    }
}

/// A root hash per image version, as the build would compute it from the image's root.
pub fn roothash_of(image: &str) -> String {
    use std::fmt::Write;
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, image.as_bytes());
    digest.as_ref().iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

pub fn running(version: &str) -> RunningImage {
    RunningImage {
        version: version.parse().unwrap(),
        profile: PROFILE.to_owned(),
    }
}

/// The bytes of an artefact of a release: distinct per artefact and per image version.
pub fn artefact_bytes(name: &str, image: &str) -> Vec<u8> {
    let seed = format!("{name} {image} ");
    seed.bytes()
        .cycle()
        .take(40_000 + name.len() * 1_000)
        .collect()
}

impl Fixture {
    /// Writes a release of `image` with metadata version `metadata_version` into its own
    /// repository directory and returns that directory.
    pub async fn release(&self, label: &str, spec: ReleaseSpec) -> PathBuf {
        let image = spec.facts.image_version.to_string();
        let artefacts = ARTEFACTS.map(|name| (name, artefact_bytes(name, &image)));
        self.release_of(label, spec, &artefacts).await
    }

    /// Writes a release of the given artefacts (name, bytes) and returns its directory.
    pub async fn release_of(
        &self,
        label: &str,
        spec: ReleaseSpec,
        files: &[(&str, Vec<u8>)],
    ) -> PathBuf {
        let artefacts = self.dir.path().join(format!("{label}-artefacts"));
        std::fs::create_dir(&artefacts).unwrap();
        for (name, bytes) in files {
            std::fs::write(artefacts.join(name), bytes).unwrap();
        }
        let repo = self.dir.path().join(label);
        write_release(&self.root_json, &artefacts, &spec, &self.keys, &repo)
            .await
            .unwrap();
        repo
    }

    pub fn trusted_root(&self) -> Vec<u8> {
        std::fs::read(&self.root_json).unwrap()
    }

    pub fn state(&self, label: &str) -> PathBuf {
        let state = self.dir.path().join(format!("{label}-state"));
        std::fs::create_dir_all(&state).unwrap();
        state
    }

    pub async fn verify(
        &self,
        repo: &Path,
        state: &Path,
        running_version: &str,
    ) -> Result<updated::VerifiedUpdate, UpdateRefused> {
        verify_update(&self.trusted_root(), repo, state, &running(running_version)).await
    }
}

/// The file of a target in a repository (consistent snapshots: `<sha256>.<name>`).
pub fn target_file(repo: &Path, name: &str) -> PathBuf {
    let suffix = format!(".{name}");
    std::fs::read_dir(repo.join("targets"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with(&suffix)
        })
        .unwrap()
}
pub const MIB: u64 = 1 << 20;

/// The image's partitions, in assemble.sh's order, with small sizes.
pub const PARTITIONS: [(&str, u64); 6] = [
    ("esp", MIB),
    ("root-a", 2 * MIB),
    ("root-a-verity", MIB),
    ("root-b", 10 * MIB),
    ("root-b-verity", MIB),
    ("data", MIB),
];

/// The booted image's bytes in slot A.
pub const SLOT_A_ROOT: &[u8] = b"slot a root file system, version 0.1.0";
pub const SLOT_A_VERITY: &[u8] = b"slot a verity tree";

pub fn make_disk(path: &Path) {
    make_disk_with(path, &PARTITIONS);
}

/// A GPT disk image at `path` with `partitions` (name, bytes) in order.
pub fn make_disk_with(path: &Path, partitions: &[(&str, u64)]) {
    let total: u64 = partitions.iter().map(|(_, size)| size).sum::<u64>() + 2 * MIB;
    let mut file = std::fs::OpenOptions::new()
        .create_new(true)
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    file.set_len(total).unwrap();
    ProtectiveMBR::with_lb_size(u32::try_from(total / 512 - 1).unwrap())
        .overwrite_lba0(&mut file)
        .unwrap();
    let mut disk = GptConfig::new()
        .writable(true)
        .create_from_device(file, None)
        .unwrap();
    for &(name, size) in partitions {
        let kind = if name == "esp" {
            partition_types::EFI
        } else {
            partition_types::LINUX_FS
        };
        disk.add_partition(name, size, kind, 0, None).unwrap();
    }
    disk.write().unwrap().sync_all().unwrap();
}

/// A GPT disk image (`dir/disk.img`) with the image's six partitions and slot A installed, and
/// an ESP directory (`dir/esp`) with slot A's blessed entry and facts: the disk and the ESP.
pub fn slot_a_appliance(dir: &Path) -> (PathBuf, PathBuf) {
    let disk = dir.join("disk.img");
    make_disk(&disk);
    let mut layout = DiskLayout::read(&disk).unwrap();
    let slot_a = layout.slot(Slot::A).clone();
    let file = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    file.write_all_at(SLOT_A_ROOT, slot_a.root.offset).unwrap();
    file.write_all_at(SLOT_A_VERITY, slot_a.verity.offset)
        .unwrap();
    let (root, verity) = slot_uuids(&roothash_of("0.1.0")).unwrap();
    layout.set_slot_uuids(Slot::A, root, verity).unwrap();

    let esp_dir = dir.join("esp");
    std::fs::create_dir_all(esp_dir.join("EFI/Linux")).unwrap();
    std::fs::write(esp_dir.join("EFI/Linux/bunkeros-a.efi"), b"slot a uki").unwrap();
    std::fs::create_dir_all(esp_dir.join("bunkeros/a")).unwrap();
    std::fs::write(esp_dir.join("bunkeros/a/roothash"), roothash_of("0.1.0")).unwrap();
    std::fs::write(esp_dir.join("bunkeros/a/version"), "0.1.0").unwrap();
    (disk, esp_dir)
}
