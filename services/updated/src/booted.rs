//! What is running: the image's version and hardware profile (its os-release) and the slot this
//! boot came from (published by `bunkeros-slot.service` under `/run/bunkeros/slot/`).
//!
//! Both are read once at start. A path prefix stands in for `/` in tests (`$BUNKEROS_ROOT`, as
//! every service's configuration does).

use std::path::{Path, PathBuf};

use crate::disk_layout::Slot;
use crate::{ImageVersion, RunningImage, is_roothash};

/// The os-release of the running image.
const OS_RELEASE: &str = "usr/lib/os-release";
/// Where bunkeros-slot.service publishes the booted slot.
const SLOT_DIR: &str = "run/bunkeros/slot";
/// `IMAGE_ID` is `bunkeros-<profile>` (image/scripts/customize.sh).
const IMAGE_ID_PREFIX: &str = "bunkeros-";

/// The running image and the slot it booted from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Booted {
    pub image: RunningImage,
    pub slot: Slot,
    pub roothash: String,
}

/// Why the running image or slot could not be read: updated cannot judge an update without.
#[derive(Debug, thiserror::Error)]
pub enum BootedError {
    #[error("{path} could not be read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has no valid {key}: {detail}")]
    Field {
        path: PathBuf,
        key: &'static str,
        detail: String,
    },
}

impl Booted {
    /// Reads the running image and booted slot under `root` (`/` on the appliance).
    pub fn read(root: &Path) -> Result<Booted, BootedError> {
        let os_release = root.join(OS_RELEASE);
        let text = read(&os_release)?;
        let field = |key: &'static str| {
            os_release_value(&text, key).ok_or_else(|| BootedError::Field {
                path: os_release.clone(),
                key,
                detail: "missing".to_owned(),
            })
        };
        let version: ImageVersion = field("IMAGE_VERSION")?.parse().map_err(
            |e: crate::image_version::BadImageVersion| BootedError::Field {
                path: os_release.clone(),
                key: "IMAGE_VERSION",
                detail: e.to_string(),
            },
        )?;
        let image_id = field("IMAGE_ID")?;
        let profile = image_id
            .strip_prefix(IMAGE_ID_PREFIX)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| BootedError::Field {
                path: os_release.clone(),
                key: "IMAGE_ID",
                detail: format!("{image_id:?} does not start with {IMAGE_ID_PREFIX:?}"),
            })?
            .to_owned();

        let slot_dir = root.join(SLOT_DIR);
        let name_path = slot_dir.join("name");
        let name = read(&name_path)?;
        let slot = Slot::from_name(name.trim()).ok_or_else(|| BootedError::Field {
            path: name_path.clone(),
            key: "slot name",
            detail: format!("{:?} is neither a nor b", name.trim()),
        })?;
        let hash_path = slot_dir.join("roothash");
        let roothash = read(&hash_path)?.trim().to_owned();
        if !is_roothash(&roothash) {
            return Err(BootedError::Field {
                path: hash_path,
                key: "root hash",
                detail: "not 64 lowercase hex digits".to_owned(),
            });
        }
        Ok(Booted {
            image: RunningImage { version, profile },
            slot,
            roothash,
        })
    }
}

fn read(path: &Path) -> Result<String, BootedError> {
    std::fs::read_to_string(path).map_err(|source| BootedError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The value of `KEY=value` or `KEY="value"` in os-release text.
fn os_release_value(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix('=')?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        Some(value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(os_release: &str, slot: &str, hash: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("usr/lib")).unwrap();
        std::fs::write(root.path().join(OS_RELEASE), os_release).unwrap();
        std::fs::create_dir_all(root.path().join(SLOT_DIR)).unwrap();
        std::fs::write(root.path().join(SLOT_DIR).join("name"), slot).unwrap();
        std::fs::write(root.path().join(SLOT_DIR).join("roothash"), hash).unwrap();
        root
    }

    const OS: &str = "NAME=\"BunkerOS\"\nIMAGE_ID=bunkeros-qemu-x86_64\nIMAGE_VERSION=0.1.0\n";

    #[test]
    fn the_image_and_slot_are_read_as_the_image_writes_them() {
        let hash = "ab".repeat(32);
        let root = root_with(OS, "b\n", &format!("{hash}\n"));
        let booted = Booted::read(root.path()).unwrap();
        assert_eq!(booted.image.version, ImageVersion::new(0, 1, 0));
        assert_eq!(booted.image.profile, "qemu-x86_64");
        assert_eq!(booted.slot, Slot::B);
        assert_eq!(booted.roothash, hash);
    }

    #[test]
    fn anything_else_is_a_clear_error() {
        let hash = "ab".repeat(32);
        let bad_slot = root_with(OS, "c\n", &hash);
        assert!(
            Booted::read(bad_slot.path())
                .unwrap_err()
                .to_string()
                .contains("neither a nor b")
        );
        let bad_hash = root_with(OS, "a\n", "xyz");
        assert!(Booted::read(bad_hash.path()).is_err());
        let bad_version = root_with(
            "IMAGE_ID=bunkeros-qemu-x86_64\nIMAGE_VERSION=one\n",
            "a",
            &hash,
        );
        assert!(
            Booted::read(bad_version.path())
                .unwrap_err()
                .to_string()
                .contains("IMAGE_VERSION")
        );
        let other_os = root_with("IMAGE_ID=debian\nIMAGE_VERSION=0.1.0\n", "a", &hash);
        assert!(Booted::read(other_os.path()).is_err());
    }
}
