//! The recorded update state across boots: an install pending its first boot, then what the
//! boot entry's counter says (systemd-boot renames the UKI as it boots it, systemd-bless-boot as
//! it blesses or marks it bad), the health gate's verdict, and a malformed state file.

use std::path::Path;

use appliance::state::StateDir;
use tempfile::TempDir;
use updated::boot_entries::{BootEntry, Esp, parse_entry_name};
use updated::disk_layout::Slot;
use updated::install::Installed;
use updated::update_state::{
    BootVerdict, BootedSystem, HISTORY_LIMIT, Outcome, STATE_FILE, UpdateStateError,
    UpdateStateStore,
};
use updated::{ImageVersion, ReleaseFacts};

const OLD_HASH: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const NEW_HASH: &str = "2222222222222222222222222222222222222222222222222222222222222222";

struct World {
    dir: TempDir,
    store: UpdateStateStore,
    esp: Esp,
}

/// Slot A (0.1.0) blessed and booted; 0.1.1 installed into slot B with 3 tries and recorded.
fn installed_world() -> World {
    let dir = TempDir::new().unwrap();
    let linux = dir.path().join("esp/EFI/Linux");
    std::fs::create_dir_all(&linux).unwrap();
    std::fs::write(linux.join("bunkeros-a.efi"), b"a").unwrap();
    std::fs::write(linux.join("bunkeros-b+3.efi"), b"b").unwrap();
    let store = UpdateStateStore::new(StateDir::open(dir.path().join("state")).unwrap());
    let installed = Installed {
        slot: Slot::B,
        entry: parse_entry_name("bunkeros-b+3.efi").unwrap(),
        facts: ReleaseFacts {
            image_version: ImageVersion::new(0, 1, 1),
            profile: "qemu-x86_64".to_owned(),
            roothash: NEW_HASH.to_owned(),
        },
    };
    store.record_installed(&installed).unwrap();
    let esp = Esp::new(dir.path().join("esp"));
    World { dir, store, esp }
}

impl World {
    /// Renames slot B's entry as systemd-boot or systemd-bless-boot would.
    fn rename_b(&self, to: &str) {
        let entry = self.esp.entry(Slot::B).unwrap().unwrap();
        let linux = self.esp.root().join("EFI/Linux");
        std::fs::rename(linux.join(entry.file_name), linux.join(to)).unwrap();
    }

    fn entries(&self) -> Vec<BootEntry> {
        self.esp.entries().unwrap()
    }

    fn state_file(&self) -> std::path::PathBuf {
        self.dir.path().join("state").join(STATE_FILE)
    }
}

fn booted(slot: Slot) -> BootedSystem {
    match slot {
        Slot::A => BootedSystem {
            slot,
            roothash: OLD_HASH.to_owned(),
            version: ImageVersion::new(0, 1, 0),
        },
        Slot::B => BootedSystem {
            slot,
            roothash: NEW_HASH.to_owned(),
            version: ImageVersion::new(0, 1, 1),
        },
    }
}

#[test]
fn an_install_is_recorded_as_pending_its_first_boot() {
    let world = installed_world();
    let state = world.store.load().unwrap();
    let pending = state.pending.unwrap();
    assert_eq!(pending.slot, Slot::B);
    assert_eq!(pending.version, ImageVersion::new(0, 1, 1));
    assert_eq!(pending.roothash, NEW_HASH);
    let last = state.last.unwrap();
    assert_eq!(last.outcome, Outcome::Installed);
    assert_eq!(
        last.reason,
        "0.1.1 was written to slot b and is the next boot (bunkeros-b+3.efi)"
    );
    assert_eq!(state.history, vec![last]);
}

#[test]
fn the_new_slot_booting_on_a_try_awaits_the_health_gate() {
    let world = installed_world();
    world.rename_b("bunkeros-b+2-1.efi");
    let verdict = world
        .store
        .reconcile_after_boot(&booted(Slot::B), &world.entries())
        .unwrap();
    assert_eq!(
        verdict,
        BootVerdict::AwaitingGate {
            slot: Slot::B,
            version: ImageVersion::new(0, 1, 1)
        }
    );
    let state = world.store.load().unwrap();
    assert!(
        state.pending.is_some(),
        "still pending until the gate decides"
    );
    assert_eq!(state.last.unwrap().outcome, Outcome::Installed);
}

#[test]
fn a_blessed_new_slot_is_recorded_blessed() {
    let world = installed_world();
    world.rename_b("bunkeros-b.efi");
    let verdict = world
        .store
        .reconcile_after_boot(&booted(Slot::B), &world.entries())
        .unwrap();
    assert_eq!(
        verdict,
        BootVerdict::Blessed {
            slot: Slot::B,
            version: ImageVersion::new(0, 1, 1)
        }
    );
    let state = world.store.load().unwrap();
    assert_eq!(state.pending, None);
    let last = state.last.unwrap();
    assert_eq!(last.outcome, Outcome::Blessed);
    assert_eq!(last.reason, "slot b (0.1.1) booted and was blessed");
}

#[test]
fn a_new_slot_marked_bad_is_recorded_as_a_fallback_with_its_reason() {
    let world = installed_world();
    world.rename_b("bunkeros-b+0-1.efi");
    let verdict = world
        .store
        .reconcile_after_boot(&booted(Slot::A), &world.entries())
        .unwrap();
    let reason =
        "slot b (0.1.1) was marked bad after 1 boot attempt; the appliance runs slot a (0.1.0)";
    assert_eq!(
        verdict,
        BootVerdict::FellBack {
            reason: reason.to_owned()
        }
    );
    let state = world.store.load().unwrap();
    assert_eq!(state.pending, None);
    let outcomes: Vec<Outcome> = state.history.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::Installed, Outcome::FellBack]);
    assert_eq!(state.last.unwrap().reason, reason);

    let again = world
        .store
        .reconcile_after_boot(&booted(Slot::A), &world.entries())
        .unwrap();
    assert_eq!(again, BootVerdict::NothingPending, "recorded once");
    assert_eq!(world.store.load().unwrap().history.len(), 2);
}

#[test]
fn the_marked_bad_slot_still_running_says_the_next_boot_falls_back() {
    let world = installed_world();
    world.rename_b("bunkeros-b+0-2.efi");
    let verdict = world
        .store
        .reconcile_after_boot(&booted(Slot::B), &world.entries())
        .unwrap();
    assert_eq!(
        verdict,
        BootVerdict::MarkedBad {
            reason: "slot b (0.1.1) was marked bad after 2 boot attempts; the next boot falls back"
                .to_owned()
        }
    );
    assert!(world.store.load().unwrap().pending.is_some());
}

#[test]
fn a_lost_entry_is_a_fallback_too() {
    let world = installed_world();
    std::fs::remove_file(world.esp.root().join("EFI/Linux/bunkeros-b+3.efi")).unwrap();
    let verdict = world
        .store
        .reconcile_after_boot(&booted(Slot::A), &world.entries())
        .unwrap();
    assert_eq!(
        verdict,
        BootVerdict::FellBack {
            reason: "slot b (0.1.1) lost its boot entry; the appliance runs slot a (0.1.0)"
                .to_owned()
        }
    );
}

#[test]
fn the_health_gate_verdict_is_recorded() {
    let world = installed_world();
    let state = world
        .store
        .record_gate("trustd could not sign within 120 s", false)
        .unwrap();
    let last = state.last.unwrap();
    assert_eq!(last.outcome, Outcome::FellBack);
    assert_eq!(last.slot, Some(Slot::B));
    assert_eq!(last.version, Some(ImageVersion::new(0, 1, 1)));
    assert_eq!(last.reason, "trustd could not sign within 120 s");
    assert_eq!(state.pending, None);

    let world = installed_world();
    let state = world
        .store
        .record_gate("every service is ready", true)
        .unwrap();
    assert_eq!(state.last.unwrap().outcome, Outcome::Blessed);
}

#[test]
fn what_acting_on_the_verdict_did_amends_the_record_without_a_second_result() {
    let world = installed_world();
    let recorded = world
        .store
        .record_gate("slot b failed its health gate and was marked bad.", false)
        .unwrap()
        .last
        .unwrap();
    let before = world.store.load().unwrap().history.len();
    let state = world
        .store
        .amend_last(
            &recorded,
            "But marking it bad failed (no ESP): it falls back once its boot tries run out.",
        )
        .unwrap();
    let expected = "slot b failed its health gate and was marked bad. But marking it bad failed \
                    (no ESP): it falls back once its boot tries run out.";
    assert_eq!(state.last.as_ref().unwrap().reason, expected);
    assert_eq!(state.history.len(), before, "the same result, amended");
    assert_eq!(state.history.last().unwrap().reason, expected);
    assert_eq!(
        world.store.load().unwrap().last.unwrap().reason,
        expected,
        "persisted"
    );

    // A result recorded meanwhile (by the daemon) is never amended with the gate's note.
    let meanwhile = world
        .store
        .record_gate("every service is ready", true)
        .unwrap();
    let state = world
        .store
        .amend_last(&recorded, "But blessing it failed.")
        .unwrap();
    assert_eq!(state.last, meanwhile.last);
}

#[test]
fn a_refusal_keeps_the_pending_install_and_a_failure_clears_it() {
    let world = installed_world();
    let state = world
        .store
        .record_not_installed(Outcome::Refused, None, None, "the release is expired")
        .unwrap();
    assert!(state.pending.is_some());
    let state = world
        .store
        .record_not_installed(
            Outcome::Failed,
            Some(ImageVersion::new(0, 1, 2)),
            Some(Slot::B),
            "writing failed",
        )
        .unwrap();
    assert_eq!(state.pending, None);
}

#[test]
fn the_history_is_bounded_and_keeps_the_newest() {
    let world = installed_world();
    for i in 0..HISTORY_LIMIT + 5 {
        world
            .store
            .record_not_installed(Outcome::Refused, None, None, &format!("refusal {i}"))
            .unwrap();
    }
    let state = world.store.load().unwrap();
    assert_eq!(state.history.len(), HISTORY_LIMIT);
    let newest = format!("refusal {}", HISTORY_LIMIT + 4);
    assert_eq!(state.history.last().unwrap().reason, newest);
    assert_eq!(state.last.unwrap().reason, newest);
}

fn assert_malformed_and_untouched(world: &World, bytes: &[u8]) {
    let error = world.store.load().unwrap_err();
    assert!(
        matches!(error, UpdateStateError::Malformed { .. }),
        "{error}"
    );
    assert!(error.to_string().contains(STATE_FILE), "{error}");
    let error = world
        .store
        .reconcile_after_boot(&booted(Slot::A), &world.entries())
        .unwrap_err();
    assert!(matches!(error, UpdateStateError::Malformed { .. }));
    assert!(world.store.record_gate("healthy", true).is_err());
    assert!(
        world
            .store
            .record_not_installed(Outcome::Refused, None, None, "x")
            .is_err()
    );
    assert_eq!(
        std::fs::read(world.state_file()).unwrap(),
        bytes,
        "nothing overwritten"
    );
}

fn overwrite(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_malformed_state_file_is_a_clear_error_and_is_not_overwritten() {
    let world = installed_world();
    let garbage = b"{\"pending\": {\"version\": \"0.1\"";
    overwrite(&world.state_file(), garbage);
    assert_malformed_and_untouched(&world, garbage);

    let bad_hash = br#"{"pending": {"version": "0.1.1", "slot": "b", "roothash": "zz", "installed_at": 1}, "last": null, "history": []}"#;
    overwrite(&world.state_file(), bad_hash);
    assert_malformed_and_untouched(&world, bad_hash);

    let unknown_field = br#"{"pending": null, "last": null, "history": [], "extra": 1}"#;
    overwrite(&world.state_file(), unknown_field);
    assert_malformed_and_untouched(&world, unknown_field);
}
