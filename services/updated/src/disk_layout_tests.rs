use std::os::unix::fs::symlink;

use super::*;

#[test]
fn slot_uuids_are_the_root_hash_halves_in_uuid_form() {
    let roothash = "0123456789abcdef0123456789abcdeffedcba9876543210fedcba9876543210";
    let (root, verity) = slot_uuids(roothash).unwrap();
    assert_eq!(root.to_string(), "01234567-89ab-cdef-0123-456789abcdef");
    assert_eq!(verity.to_string(), "fedcba98-7654-3210-fedc-ba9876543210");
    for bad in [
        "",
        "0123",
        &roothash.to_uppercase(),
        &format!("{roothash}0"),
    ] {
        assert!(
            matches!(slot_uuids(bad), Err(DiskError::NotARoothash(_))),
            "{bad}"
        );
    }
}

#[test]
fn slots_are_named_as_the_image_names_them() {
    assert_eq!(Slot::from_name("a\n"), Some(Slot::A));
    assert_eq!(Slot::from_name("b"), Some(Slot::B));
    assert_eq!(Slot::from_name("c"), None);
    assert_eq!(Slot::A.other(), Slot::B);
    assert_eq!(Slot::B.root_label(), "root-b");
    assert_eq!(Slot::B.verity_label(), "root-b-verity");
}

/// A /dev and /sys as udev and the kernel lay them out for `disk` with ESP partition `esp`.
fn device_trees(root: &Path, disk: &str, esp: &str) -> (PathBuf, PathBuf) {
    let dev = root.join("dev");
    let sys = root.join("sys");
    std::fs::create_dir_all(dev.join("disk/by-partlabel")).unwrap();
    std::fs::write(dev.join(esp), b"").unwrap();
    symlink(format!("../../{esp}"), dev.join("disk/by-partlabel/esp")).unwrap();
    let device = sys.join("devices/pci0000:00/block").join(disk);
    std::fs::create_dir_all(device.join(esp)).unwrap();
    std::fs::write(device.join(esp).join("partition"), b"1\n").unwrap();
    std::fs::create_dir_all(sys.join("class/block")).unwrap();
    symlink(device.join(esp), sys.join("class/block").join(esp)).unwrap();
    symlink(&device, sys.join("class/block").join(disk)).unwrap();
    (dev, sys)
}

#[test]
fn the_disk_is_the_parent_of_the_esp_partition() {
    for (disk, esp) in [("vda", "vda1"), ("nvme0n1", "nvme0n1p1")] {
        let dir = tempfile::TempDir::new().unwrap();
        let (dev, sys) = device_trees(dir.path(), disk, esp);
        assert_eq!(find_disk(&dev, &sys).unwrap(), dev.join(disk));
    }
}

#[test]
fn no_esp_label_or_a_whole_disk_is_an_error() {
    let dir = tempfile::TempDir::new().unwrap();
    let error = find_disk(&dir.path().join("dev"), &dir.path().join("sys")).unwrap_err();
    assert!(error.to_string().contains("by-partlabel/esp"), "{error}");

    let (dev, sys) = device_trees(dir.path(), "vda", "vda1");
    std::fs::remove_file(dev.join("disk/by-partlabel/esp")).unwrap();
    std::fs::write(dev.join("vda"), b"").unwrap();
    symlink("../../vda", dev.join("disk/by-partlabel/esp")).unwrap();
    let error = find_disk(&dev, &sys).unwrap_err();
    assert!(error.to_string().contains("is not a partition"), "{error}");
}
