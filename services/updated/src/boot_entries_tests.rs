use super::*;

fn state(name: &str) -> Option<(Slot, EntryState)> {
    parse_entry_name(name).map(|entry| (entry.slot, entry.state))
}

#[test]
fn entry_names_parse_as_systemd_boot_counts_them() {
    assert_eq!(
        state("bunkeros-a.efi"),
        Some((Slot::A, EntryState::Blessed))
    );
    assert_eq!(
        state("bunkeros-b+3.efi"),
        Some((Slot::B, EntryState::Trying { left: 3, done: 0 }))
    );
    assert_eq!(
        state("bunkeros-b+2-1.efi"),
        Some((Slot::B, EntryState::Trying { left: 2, done: 1 }))
    );
    assert_eq!(
        state("bunkeros-b+0-3.efi"),
        Some((Slot::B, EntryState::Bad { done: 3 }))
    );
    assert_eq!(
        state("bunkeros-b+0.efi"),
        Some((Slot::B, EntryState::Bad { done: 0 }))
    );
}

#[test]
fn other_files_are_not_slot_entries() {
    for name in [
        "bunkeros-c.efi",
        "bunkeros-a.EFI.bak",
        ".bunkeros-b.partial",
        "bunkeros-b+.efi",
        "bunkeros-b+x-1.efi",
        "bunkeros-b+1-.efi",
        "bunkeros-b+-1.efi",
        "linux.efi",
        "bunkeros-ab.efi",
    ] {
        assert_eq!(parse_entry_name(name), None, "{name}");
    }
}

#[tokio::test]
async fn install_then_remove_leaves_no_trace_of_the_slot() {
    let dir = tempfile::TempDir::new().unwrap();
    let esp = Esp::new(dir.path());
    let facts = SlotFacts {
        roothash: "ab".repeat(32),
        version: ImageVersion::new(0, 1, 1),
        files: vec![("pcr11.json".to_owned(), b"{}".to_vec())],
    };
    let mut uki = esp.stage_uki(Slot::B).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(uki.file_mut(), b"uki bytes")
        .await
        .unwrap();
    assert_eq!(
        esp.entries().unwrap(),
        vec![],
        "a staged UKI is not an entry"
    );
    let entry = esp.install_slot(&facts, uki, 3).await.unwrap();
    assert_eq!(entry.file_name, "bunkeros-b+3.efi");
    assert_eq!(esp.entry(Slot::B).unwrap(), Some(entry));
    assert_eq!(
        esp.slot_facts(Slot::B).unwrap(),
        Some((facts.roothash.clone(), facts.version))
    );
    assert_eq!(
        fs::read(dir.path().join("bunkeros/b/pcr11.json")).unwrap(),
        b"{}"
    );
    esp.remove_slot(Slot::B).unwrap();
    assert_eq!(esp.entries().unwrap(), vec![]);
    assert!(!dir.path().join("bunkeros/b").exists());
}

#[tokio::test]
async fn a_fact_file_name_that_leaves_the_directory_is_refused_and_nothing_is_bootable() {
    let dir = tempfile::TempDir::new().unwrap();
    let esp = Esp::new(dir.path());
    let facts = SlotFacts {
        roothash: "ab".repeat(32),
        version: ImageVersion::new(0, 1, 1),
        files: vec![("../escape".to_owned(), b"x".to_vec())],
    };
    let uki = esp.stage_uki(Slot::B).await.unwrap();
    let error = esp.install_slot(&facts, uki, 3).await.unwrap_err();
    assert!(matches!(error, EspError::BadFactName(_)), "{error}");
    assert_eq!(esp.entries().unwrap(), vec![]);
    assert!(!dir.path().join("bunkeros/escape").exists());
}

fn esp_with(entries: &[&str], versions: &[(Slot, &str)]) -> (tempfile::TempDir, Esp) {
    let dir = tempfile::TempDir::new().unwrap();
    let linux = dir.path().join(LINUX_DIR);
    fs::create_dir_all(&linux).unwrap();
    for name in entries {
        fs::write(linux.join(name), b"uki").unwrap();
    }
    let esp = Esp::new(dir.path());
    for (slot, version) in versions {
        let facts = esp.facts_dir(*slot);
        fs::create_dir_all(&facts).unwrap();
        fs::write(facts.join("roothash"), "ab".repeat(32)).unwrap();
        fs::write(facts.join("version"), version).unwrap();
    }
    (dir, esp)
}

#[test]
fn the_next_boot_is_the_newest_slot_not_marked_bad() {
    let versions = [(Slot::A, "0.1.0"), (Slot::B, "0.1.1")];
    for (entries, next) in [
        (&["bunkeros-a.efi", "bunkeros-b+3.efi"][..], Some(Slot::B)),
        (&["bunkeros-a.efi", "bunkeros-b+1-2.efi"][..], Some(Slot::B)),
        (&["bunkeros-a.efi", "bunkeros-b.efi"][..], Some(Slot::B)),
        (&["bunkeros-a.efi", "bunkeros-b+0-3.efi"][..], Some(Slot::A)),
        (&["bunkeros-a.efi"][..], Some(Slot::A)),
        (&[][..], None),
    ] {
        let (_dir, esp) = esp_with(entries, &versions);
        assert_eq!(esp.next_boot().unwrap(), next, "{entries:?}");
    }
    let (_dir, esp) = esp_with(
        &["bunkeros-a.efi", "bunkeros-b+3.efi"],
        &[(Slot::B, "0.1.1")],
    );
    assert_eq!(
        esp.next_boot().unwrap(),
        Some(Slot::B),
        "a slot without facts is oldest"
    );
}
