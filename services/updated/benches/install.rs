//! `make bench` for updated: how fast a release is verified and written into the inactive
//! slot, against `dd` of the same files to the same kind of target in the same run.
//!
//! A release the size of a real one (`UPDATE_BENCH_ROOT_MIB` of root squashfs, default 160; a
//! 2 MiB verity tree; a 48 MiB UKI: image/build.sh's figures) is published with test TUF keys.
//! updated's path: verify the metadata against the root (as the appliance does), then
//! `install_update` into slot B of a GPT disk image file on this machine's disk: stream while
//! hashing, fsync, read back and compare, set the partition UUIDs, write the boot entry.
//! Baseline: `dd bs=1M conv=notrunc,fsync` of the same three files to the same offsets of the
//! same disk image (the UKI to a file beside the ESP), which neither verifies nor reads back.
//! Each side runs `UPDATE_BENCH_ROUNDS` times (default 3), alternating; medians are printed.
//! The time from `install` to a blessed slot under TCG is measured by the QEMU update test
//! (`make test-update`), which prints it.

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{MIB, fixture, make_disk_with, roothash_of, spec};
use updated::boot_entries::Esp;
use updated::disk_layout::{DiskLayout, Slot, slot_uuids};
use updated::install::{InstallTarget, install_update};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Pseudo-random bytes (xorshift): incompressible like a squashfs, cheap to make.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn dd(source: &Path, target: &Path, offset: u64) {
    let status = Command::new("dd")
        .arg(format!("if={}", source.display()))
        .arg(format!("of={}", target.display()))
        .args([
            "bs=1M",
            "conv=notrunc,fsync",
            "oflag=seek_bytes",
            "status=none",
        ])
        .arg(format!("seek={offset}"))
        .status()
        .expect("dd runs");
    assert!(status.success(), "dd of {} failed", source.display());
}

fn main() {
    let root_mib = env_u64("UPDATE_BENCH_ROOT_MIB", 160);
    let rounds = env_u64("UPDATE_BENCH_ROUNDS", 3).max(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fx = runtime.block_on(fixture());
    let files = [
        ("root.squashfs", noise((root_mib * MIB) as usize, 1)),
        ("root.verity", noise((2 * MIB) as usize, 2)),
        ("bunkeros.uki.efi", noise((48 * MIB) as usize, 3)),
    ];
    let bytes: u64 = files.iter().map(|(_, b)| b.len() as u64).sum();
    let repo = runtime.block_on(fx.release_of("bench", spec("0.1.1", 1), &files));
    let artefacts = fx.dir.path().join("bench-artefacts");

    let work = fx.dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let disk = work.join("disk.img");
    let partitions = [
        ("esp", 64 * MIB),
        ("root-a", 4 * MIB),
        ("root-a-verity", MIB),
        ("root-b", (root_mib + 8) * MIB),
        ("root-b-verity", 4 * MIB),
        ("data", MIB),
    ];
    make_disk_with(&disk, &partitions);
    let mut layout = DiskLayout::read(&disk).unwrap();
    let (root, verity) = slot_uuids(&roothash_of("0.1.0")).unwrap();
    layout.set_slot_uuids(Slot::A, root, verity).unwrap();
    let b = layout.slot(Slot::B).clone();
    let esp_dir = work.join("esp");
    std::fs::create_dir_all(esp_dir.join("EFI/Linux")).unwrap();
    std::fs::write(esp_dir.join("EFI/Linux/bunkeros-a.efi"), b"slot a").unwrap();
    let esp = Esp::new(&esp_dir);
    let booted_roothash = roothash_of("0.1.0");

    println!(
        "updated install: {} MiB per release ({root_mib} MiB root, 2 MiB verity, 48 MiB UKI) into a GPT disk image, {rounds} rounds each",
        bytes / MIB
    );
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let state = fx.state(&format!("bench-{round}"));
        let started = Instant::now();
        let update = runtime
            .block_on(fx.verify(&repo, &state, "0.1.0"))
            .expect("the bench release verifies");
        let target = InstallTarget {
            disk: &disk,
            esp: &esp,
            booted: Slot::A,
            booted_roothash: &booted_roothash,
            tries: 3,
        };
        runtime
            .block_on(install_update(&update, &target, &mut |_| {}))
            .expect("the bench release installs");
        ours.push(started.elapsed());

        let started = Instant::now();
        dd(&artefacts.join("root.squashfs"), &disk, b.root.offset);
        dd(&artefacts.join("root.verity"), &disk, b.verity.offset);
        dd(
            &artefacts.join("bunkeros.uki.efi"),
            &esp_dir.join("EFI/Linux/dd-copy.efi"),
            0,
        );
        baseline.push(started.elapsed());
    }
    let rate = |d: Duration| bytes as f64 / MIB as f64 / d.as_secs_f64();
    let (ours, baseline) = (median(ours), median(baseline));
    println!(
        "  updated (verify metadata, stream + hash, fsync, read back + compare, UUIDs, boot entry): {:.2} s, {:.0} MiB/s",
        ours.as_secs_f64(),
        rate(ours)
    );
    println!(
        "  dd bs=1M conv=fsync of the same files to the same targets:                            {:.2} s, {:.0} MiB/s",
        baseline.as_secs_f64(),
        rate(baseline)
    );
    println!(
        "  ratio: updated takes {:.2}x dd's time ({:.0} % of dd's throughput)",
        ours.as_secs_f64() / baseline.as_secs_f64(),
        100.0 * rate(ours) / rate(baseline)
    );
}
