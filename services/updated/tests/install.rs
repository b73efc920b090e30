//! Installing a verified release into the inactive slot of a real GPT disk image file, with an
//! ESP directory beside it: what lands where, what is refused before anything is written, and
//! a process killed mid-write (the power-loss case) leaving slot A bootable and B retryable.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gpt::GptConfig;
use updated::boot_entries::{EntryState, Esp};
use updated::disk_layout::{DiskLayout, Slot};
use updated::install::{InstallError, InstallTarget, Phase, Progress, install_update};
use updated::update_state::Outcome;
use updated::{UpdateRefused, VerifiedUpdate};

use support::{
    ARTEFACTS, Fixture, MIB, SLOT_A_ROOT, SLOT_A_VERITY, artefact_bytes, fixture, roothash_of,
    slot_a_appliance, spec, target_file,
};

/// A disk image and an ESP with slot A installed (blessed entry, facts, UUIDs from its hash).
struct Appliance {
    disk: PathBuf,
    esp: Esp,
}

fn appliance(dir: &Path) -> Appliance {
    let (disk, esp) = slot_a_appliance(dir);
    Appliance {
        disk,
        esp: Esp::new(esp),
    }
}

impl Appliance {
    fn target<'a>(&'a self, roothash: &'a str) -> InstallTarget<'a> {
        InstallTarget {
            disk: &self.disk,
            esp: &self.esp,
            booted: Slot::A,
            booted_roothash: roothash,
            tries: 3,
        }
    }

    fn partition_bytes(&self, label: &str, length: usize) -> Vec<u8> {
        let layout = DiskLayout::read(&self.disk).unwrap();
        let span = [Slot::A, Slot::B]
            .iter()
            .flat_map(|slot| {
                let p = layout.slot(*slot);
                [p.root.clone(), p.verity.clone()]
            })
            .find(|span| span.label == label)
            .unwrap();
        let mut bytes = vec![0; length];
        std::fs::File::open(&self.disk)
            .unwrap()
            .read_exact_at(&mut bytes, span.offset)
            .unwrap();
        bytes
    }

    /// Slot A as set up: its entry, facts, bytes and partition UUIDs.
    fn assert_slot_a_untouched(&self) {
        let entry = self.esp.entry(Slot::A).unwrap().unwrap();
        assert_eq!(entry.file_name, "bunkeros-a.efi");
        assert_eq!(
            std::fs::read(self.esp.root().join("EFI/Linux/bunkeros-a.efi")).unwrap(),
            b"slot a uki"
        );
        assert_eq!(
            self.esp.slot_facts(Slot::A).unwrap(),
            Some((roothash_of("0.1.0"), "0.1.0".parse().unwrap()))
        );
        assert_eq!(
            self.partition_bytes("root-a", SLOT_A_ROOT.len()),
            SLOT_A_ROOT
        );
        assert_eq!(
            self.partition_bytes("root-a-verity", SLOT_A_VERITY.len()),
            SLOT_A_VERITY
        );
        let (root, verity) = uuid_strings(&roothash_of("0.1.0"));
        assert_eq!(
            partuuids_on_disk(&self.disk, "root-a"),
            [root.clone(), root]
        );
        assert_eq!(
            partuuids_on_disk(&self.disk, "root-a-verity"),
            [verity.clone(), verity]
        );
    }

    fn assert_no_slot_b(&self) {
        assert_eq!(self.esp.entry(Slot::B).unwrap(), None);
        assert!(!self.esp.facts_dir(Slot::B).exists());
        assert!(!self.esp.staging_path(Slot::B).exists());
    }
}

/// assemble.sh's `as_uuid`: 32 hex digits in 8-4-4-4-12 form.
fn as_uuid(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn uuid_strings(roothash: &str) -> (String, String) {
    (as_uuid(&roothash[..32]), as_uuid(&roothash[32..]))
}

/// The PARTUUID of partition `label` as firmware and blkid read it, decoded by hand from the
/// raw entry (GUID fields 1-3 little-endian, the rest as stored), in the primary and the backup
/// partition arrays.
fn partuuids_on_disk(disk: &Path, label: &str) -> [String; 2] {
    let file = std::fs::File::open(disk).unwrap();
    let mut lba1 = [0u8; 512];
    file.read_exact_at(&mut lba1, 512).unwrap();
    let backup_lba = u64::from_le_bytes(lba1[32..40].try_into().unwrap());
    let mut backup = [0u8; 512];
    file.read_exact_at(&mut backup, backup_lba * 512).unwrap();
    [lba1, backup].map(|header| {
        assert_eq!(&header[..8], b"EFI PART");
        let array = u64::from_le_bytes(header[72..80].try_into().unwrap()) * 512;
        (0..128)
            .map(|i| {
                let mut entry = [0u8; 128];
                file.read_exact_at(&mut entry, array + i * 128).unwrap();
                entry
            })
            .find(|entry| {
                let name: Vec<u16> = entry[56..]
                    .chunks(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
                    .take_while(|&c| c != 0)
                    .collect();
                String::from_utf16(&name).unwrap() == label
            })
            .map(|entry| {
                let g = &entry[16..32];
                let hex =
                    |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
                let le = |bytes: &[u8]| hex(&bytes.iter().rev().copied().collect::<Vec<u8>>());
                format!(
                    "{}-{}-{}-{}-{}",
                    le(&g[..4]),
                    le(&g[4..6]),
                    le(&g[6..8]),
                    hex(&g[8..10]),
                    hex(&g[10..])
                )
            })
            .unwrap()
    })
}

/// The PARTUUIDs `sfdisk --json` reports, by partition name, when util-linux is installed.
fn sfdisk_partuuids(disk: &Path) -> Option<Vec<(String, String)>> {
    let output = Command::new("sfdisk")
        .arg("--json")
        .arg(disk)
        .output()
        .ok()?;
    assert!(output.status.success(), "{output:?}");
    let table: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    Some(
        table["partitiontable"]["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_owned(),
                    p["uuid"].as_str().unwrap().to_lowercase(),
                )
            })
            .collect(),
    )
}

async fn verified(fx: &Fixture, repo: &Path, state: &str) -> VerifiedUpdate {
    fx.verify(repo, &fx.state(state), "0.1.0").await.unwrap()
}

async fn install(
    update: &VerifiedUpdate,
    appliance: &Appliance,
) -> (
    Result<updated::install::Installed, InstallError>,
    Vec<Progress>,
) {
    let booted = roothash_of("0.1.0");
    let mut seen = Vec::new();
    let result = install_update(update, &appliance.target(&booted), &mut |p| seen.push(p)).await;
    (result, seen)
}

#[tokio::test]
async fn a_release_lands_in_slot_b_and_becomes_the_next_boot() {
    let fx = fixture().await;
    let mut artefacts = ARTEFACTS
        .map(|name| (name, artefact_bytes(name, "0.1.1")))
        .to_vec();
    artefacts.push(("pcr11.json", b"{\"pcr11\": \"prediction\"}".to_vec()));
    let repo = fx.release_of("r", spec("0.1.1", 1), &artefacts).await;
    let appliance = appliance(fx.dir.path());
    let update = verified(&fx, &repo, "s").await;

    let (result, progress) = install(&update, &appliance).await;
    let installed = result.unwrap();

    assert_eq!(installed.slot, Slot::B);
    assert_eq!(installed.entry.file_name, "bunkeros-b+3.efi");
    assert_eq!(
        installed.entry.state,
        EntryState::Trying { left: 3, done: 0 }
    );
    assert_eq!(appliance.esp.entry(Slot::B).unwrap(), Some(installed.entry));
    for (name, label) in [
        ("root.squashfs", "root-b"),
        ("root.verity", "root-b-verity"),
    ] {
        let expected = artefact_bytes(name, "0.1.1");
        assert_eq!(
            appliance.partition_bytes(label, expected.len()),
            expected,
            "{label}"
        );
    }
    let esp = appliance.esp.root();
    assert_eq!(
        std::fs::read(esp.join("EFI/Linux/bunkeros-b+3.efi")).unwrap(),
        artefact_bytes("bunkeros.uki.efi", "0.1.1")
    );
    assert_eq!(
        appliance.esp.slot_facts(Slot::B).unwrap(),
        Some((roothash_of("0.1.1"), "0.1.1".parse().unwrap()))
    );
    assert_eq!(
        std::fs::read(esp.join("bunkeros/b/pcr11.json")).unwrap(),
        b"{\"pcr11\": \"prediction\"}"
    );

    let (root_uuid, verity_uuid) = uuid_strings(&roothash_of("0.1.1"));
    assert_eq!(
        partuuids_on_disk(&appliance.disk, "root-b"),
        [root_uuid.clone(), root_uuid.clone()]
    );
    assert_eq!(
        partuuids_on_disk(&appliance.disk, "root-b-verity"),
        [verity_uuid.clone(), verity_uuid.clone()]
    );
    if let Some(uuids) = sfdisk_partuuids(&appliance.disk) {
        assert!(
            uuids.contains(&("root-b".to_owned(), root_uuid)),
            "{uuids:?}"
        );
        assert!(
            uuids.contains(&("root-b-verity".to_owned(), verity_uuid)),
            "{uuids:?}"
        );
    }
    appliance.assert_slot_a_untouched();

    let phases: Vec<Phase> = progress.iter().map(|p| p.phase).collect();
    for phase in [
        Phase::WriteRoot,
        Phase::WriteVerity,
        Phase::Verify,
        Phase::BootEntry,
    ] {
        let last = progress.iter().rfind(|p| p.phase == phase).unwrap();
        assert_eq!(last.done, last.total, "{phase:?} ends complete");
    }
    let first = |phase| phases.iter().position(|p| *p == phase).unwrap();
    assert!(first(Phase::WriteRoot) < first(Phase::WriteVerity));
    assert!(first(Phase::WriteVerity) < first(Phase::Verify));
    assert!(first(Phase::Verify) < first(Phase::BootEntry));
}

#[tokio::test]
async fn a_tampered_root_is_refused_and_slot_b_gets_no_entry() {
    let fx = fixture().await;
    let repo = fx.release("r", spec("0.1.1", 1)).await;
    let file = target_file(&repo, "root.squashfs");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[20_000] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let appliance = appliance(fx.dir.path());
    let update = verified(&fx, &repo, "s").await;

    let (result, _) = install(&update, &appliance).await;
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            InstallError::Refused {
                target: "root.squashfs",
                source: UpdateRefused::Tampered { .. }
            }
        ),
        "{error}"
    );
    assert_eq!(error.outcome(), Outcome::Failed);
    appliance.assert_no_slot_b();
    appliance.assert_slot_a_untouched();
}

#[tokio::test]
async fn a_target_larger_than_its_partition_is_refused_before_writing() {
    let fx = fixture().await;
    let mut artefacts = ARTEFACTS
        .map(|name| (name, artefact_bytes(name, "0.1.1")))
        .to_vec();
    artefacts[2].1 = vec![7; (MIB + 1) as usize]; // root.verity, one byte over root-b-verity
    let repo = fx.release_of("r", spec("0.1.1", 1), &artefacts).await;
    let appliance = appliance(fx.dir.path());
    let before = std::fs::read(&appliance.disk).unwrap();
    let update = verified(&fx, &repo, "s").await;

    let (result, progress) = install(&update, &appliance).await;
    let error = result.unwrap_err();
    assert!(
        matches!(&error, InstallError::TooLarge { target: "root.verity", length, partition, capacity }
            if *length == MIB + 1 && partition == "root-b-verity" && *capacity == MIB),
        "{error}"
    );
    assert_eq!(error.outcome(), Outcome::Refused);
    assert!(progress.is_empty());
    assert!(
        std::fs::read(&appliance.disk).unwrap() == before,
        "the disk was not written"
    );
    appliance.assert_slot_a_untouched();
}

#[tokio::test]
async fn the_booted_image_is_not_installed_again() {
    let fx = fixture().await;
    let repo = fx.release("r", spec("0.1.1", 1)).await;
    let appliance = appliance(fx.dir.path());
    let update = verified(&fx, &repo, "s").await;
    let booted = roothash_of("0.1.1");
    let error = install_update(&update, &appliance.target(&booted), &mut |_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, InstallError::SameImage { .. }), "{error}");
    appliance.assert_slot_a_untouched();
}

#[tokio::test]
async fn a_partition_writer_fills_its_partition_and_refuses_one_byte_more() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::TempDir::new().unwrap();
    let appliance = appliance(dir.path());
    let layout = DiskLayout::read(&appliance.disk).unwrap();
    let span = layout.slot(Slot::B).verity.clone();
    let mut writer = layout.partition_writer(&span).unwrap();
    let chunk = vec![0xa5; 64 * 1024];
    for _ in 0..span.length / chunk.len() as u64 {
        writer.write_all(&chunk).await.unwrap();
    }
    let error = writer.write_all(b"x").await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::StorageFull);
    assert!(error.to_string().contains("root-b-verity"), "{error}");
    assert_eq!(writer.sync().await.unwrap(), span.length);
    assert_eq!(
        appliance.partition_bytes("root-b-verity", span.length as usize),
        vec![0xa5; span.length as usize]
    );
    let mut after = [0xffu8; 4096];
    std::fs::File::open(&appliance.disk)
        .unwrap()
        .read_exact_at(&mut after, span.offset + span.length)
        .unwrap();
    assert_eq!(after, [0u8; 4096], "the next partition is untouched");
}

#[tokio::test]
async fn a_disk_that_did_not_keep_the_root_is_caught_by_the_read_back() {
    let fx = fixture().await;
    let repo = fx.release("r", spec("0.1.1", 1)).await;
    let appliance = appliance(fx.dir.path());
    let update = verified(&fx, &repo, "s").await;
    let root_b = DiskLayout::read(&appliance.disk)
        .unwrap()
        .slot(Slot::B)
        .root
        .clone();
    let disk = std::fs::OpenOptions::new()
        .write(true)
        .open(&appliance.disk)
        .unwrap();
    // Between the synced write and the read-back, a byte of root-b changes on the "disk".
    let mut corrupt = |p: Progress| {
        if p.phase == Phase::Verify && p.done == 0 {
            disk.write_all_at(b"?", root_b.offset + 1000).unwrap();
        }
    };
    let booted = roothash_of("0.1.0");
    let error = install_update(&update, &appliance.target(&booted), &mut corrupt)
        .await
        .unwrap_err();
    assert!(
        matches!(error, InstallError::ReadBack { target: "root.squashfs", ref partition } if partition == "root-b"),
        "{error}"
    );
    appliance.assert_no_slot_b();
    appliance.assert_slot_a_untouched();
}

#[tokio::test]
async fn the_fallback_slot_is_not_overwritten_while_the_booted_slot_is_on_trial() {
    let fx = fixture().await;
    let repo = fx.release("r", spec("0.1.1", 1)).await;
    let appliance = appliance(fx.dir.path());
    let linux = appliance.esp.root().join("EFI/Linux");
    std::fs::rename(
        linux.join("bunkeros-a.efi"),
        linux.join("bunkeros-a+2-1.efi"),
    )
    .unwrap();
    let before = std::fs::read(&appliance.disk).unwrap();
    let update = verified(&fx, &repo, "s").await;

    let (result, _) = install(&update, &appliance).await;
    let error = result.unwrap_err();
    assert!(
        matches!(
            error,
            InstallError::BootedNotBlessed {
                booted: Slot::A,
                inactive: Slot::B,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("bunkeros-a+2-1.efi"), "{error}");
    assert_eq!(error.outcome(), Outcome::Refused);
    assert!(
        std::fs::read(&appliance.disk).unwrap() == before,
        "the disk was not written"
    );
}

/// The byte offsets of the primary and backup partition arrays (from their headers).
fn gpt_array_offsets(disk: &Path) -> [u64; 2] {
    let file = std::fs::File::open(disk).unwrap();
    let mut primary = [0u8; 512];
    file.read_exact_at(&mut primary, 512).unwrap();
    let backup_lba = u64::from_le_bytes(primary[32..40].try_into().unwrap());
    let mut backup = [0u8; 512];
    file.read_exact_at(&mut backup, backup_lba * 512).unwrap();
    [primary, backup].map(|header| u64::from_le_bytes(header[72..80].try_into().unwrap()) * 512)
}

fn gpt_arrays(disk: &Path) -> [Vec<u8>; 2] {
    let file = std::fs::File::open(disk).unwrap();
    gpt_array_offsets(disk).map(|offset| {
        let mut array = vec![0u8; 128 * 128];
        file.read_exact_at(&mut array, offset).unwrap();
        array
    })
}

/// Tears one GPT copy as a power cut during its array write would: a byte of the `data` entry
/// (the sixth) changes, so that copy's array CRC no longer matches its header.
fn tear_gpt_copy(disk: &Path, copy: usize) {
    let offset = gpt_array_offsets(disk)[copy] + 5 * 128 + 60;
    let file = std::fs::OpenOptions::new().write(true).open(disk).unwrap();
    file.write_all_at(b"X", offset).unwrap();
}

#[tokio::test]
async fn a_torn_gpt_copy_is_read_around_and_healed_by_the_install() {
    for (copy, name) in [(0, "primary"), (1, "backup")] {
        let fx = fixture().await;
        let repo = fx.release("r", spec("0.1.1", 1)).await;
        let appliance = appliance(fx.dir.path());
        tear_gpt_copy(&appliance.disk, copy);
        let [primary, backup] = gpt_arrays(&appliance.disk);
        assert_ne!(primary, backup, "{name} torn");
        if copy == 0 {
            assert!(
                GptConfig::new().open(&appliance.disk).is_err(),
                "gpt alone refuses it"
            );
        }
        let update = verified(&fx, &repo, "s").await;

        let (result, _) = install(&update, &appliance).await;
        result.unwrap();

        let [primary, backup] = gpt_arrays(&appliance.disk);
        assert_eq!(primary, backup, "both copies rewritten after a torn {name}");
        GptConfig::new()
            .only_valid_headers(true)
            .open(&appliance.disk)
            .unwrap();
        let (root_uuid, _) = uuid_strings(&roothash_of("0.1.1"));
        assert_eq!(
            partuuids_on_disk(&appliance.disk, "root-b"),
            [root_uuid.clone(), root_uuid]
        );
        appliance.assert_slot_a_untouched();
    }
}

/// Environment variable naming the directory the killed child installs from.
const CHILD_DIR: &str = "UPDATED_TEST_INSTALL_CHILD_DIR";
/// Bytes of the large root image the killed install writes.
const LARGE_ROOT: usize = 8 * MIB as usize;
/// Root bytes the child writes before the parent kills it.
const KILL_AFTER: u64 = 2 * MIB;

fn large_release_artefacts() -> Vec<(&'static str, Vec<u8>)> {
    let mut artefacts = ARTEFACTS
        .map(|name| (name, artefact_bytes(name, "0.1.1")))
        .to_vec();
    artefacts[1].1 = (0..LARGE_ROOT).map(|i| (i % 251) as u8).collect(); // root.squashfs
    artefacts
}

/// The child half of `killed_mid_write_...`: installs with a slow progress callback, printing
/// each report, until the parent kills it. Run only by that test.
#[tokio::test]
#[ignore = "the child process of killed_mid_write_leaves_a_bootable_and_a_retry_succeeds"]
async fn child_installs_slowly_until_killed() {
    let dir = PathBuf::from(std::env::var_os(CHILD_DIR).expect("run by the parent test"));
    let trusted_root = std::fs::read(dir.join("root.json")).unwrap();
    let running = support::running("0.1.0");
    let update = updated::verify_update(
        &trusted_root,
        &dir.join("repo"),
        &dir.join("child-state"),
        &running,
    )
    .await
    .unwrap();
    let esp = Esp::new(dir.join("esp"));
    let booted = roothash_of("0.1.0");
    let target = InstallTarget {
        disk: &dir.join("disk.img"),
        esp: &esp,
        booted: Slot::A,
        booted_roothash: &booted,
        tries: 3,
    };
    // Once past KILL_AFTER bytes of the root the child stalls, mid-write, until it is killed
    // (60 s only bounds a parent that never kills it).
    let mut report = |p: Progress| {
        println!("progress {} {} {}", p.phase.name(), p.done, p.total);
        if p.phase == Phase::WriteRoot && p.done >= KILL_AFTER {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    };
    let result = install_update(&update, &target, &mut report).await;
    println!("finished {result:?}");
}

#[tokio::test]
async fn killed_mid_write_leaves_a_bootable_and_a_retry_succeeds() {
    let fx = fixture().await;
    let repo = fx
        .release_of("repo", spec("0.1.1", 1), &large_release_artefacts())
        .await;
    std::fs::copy(&fx.root_json, fx.dir.path().join("root.json")).unwrap();
    let appliance = appliance(fx.dir.path());

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child_installs_slowly_until_killed",
            "--nocapture",
        ])
        .env(CHILD_DIR, fx.dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let killed_at = loop {
        let line = lines
            .next()
            .expect("the child finished before it was killed")
            .unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_ne!(fields.first(), Some(&"finished"), "{line}");
        if fields.len() == 4 && fields[0] == "progress" && fields[1] == "write-root" {
            let done: u64 = fields[2].parse().unwrap();
            if done >= KILL_AFTER {
                break done;
            }
        }
    };
    child.kill().unwrap(); // SIGKILL: no destructor, no cleanup runs in the child
    child.wait().unwrap();
    assert!(killed_at < LARGE_ROOT as u64, "killed mid-write");

    appliance.assert_no_slot_b();
    appliance.assert_slot_a_untouched();
    let b_root = partuuids_on_disk(&appliance.disk, "root-b");
    let (installed_uuid, _) = uuid_strings(&roothash_of("0.1.1"));
    assert_ne!(
        b_root[0], installed_uuid,
        "the half-written slot is not findable by its hash"
    );

    let update = verified(&fx, &repo, "retry").await;
    let (result, _) = install(&update, &appliance).await;
    let installed = result.unwrap();
    assert_eq!(installed.entry.file_name, "bunkeros-b+3.efi");
    let expected = &large_release_artefacts()[1].1;
    assert_eq!(
        &appliance.partition_bytes("root-b", expected.len()),
        expected
    );
    assert_eq!(
        partuuids_on_disk(&appliance.disk, "root-b"),
        [installed_uuid.clone(), installed_uuid]
    );
    appliance.assert_slot_a_untouched();
}
