//! The TUF role keys of a release, and `keys.toml`, the file that says which key files belong
//! to which role and how many of them must sign.
//!
//! `keys.toml` names key files relative to its own directory (or absolute), one table per role:
//!
//! ```toml
//! [root]
//! threshold = 2
//! keys = ["root-1.pk8", "root-2.pk8"]
//! ```
//!
//! [`generate`] makes DEVELOPMENT keys (Ed25519, PKCS#8) for tests and `make release`: root 2 of
//! 2, so thresholds are exercised by every build, and one key each for targets, snapshot and
//! timestamp. Real root keys never sit next to the online ones: a production `keys.toml` may
//! name root key files that are absent, since only `tuf-root` reads them.

use std::fs::{DirBuilder, Permissions};
use std::num::NonZeroU64;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use updated::repository::generate_signing_key;
use updated::{ReleaseKeys, RoleSigners};

use crate::ReleaseError;

/// The file in a TUF key directory that lists each role's key files and threshold.
pub const KEYS_FILE: &str = "keys.toml";

/// One role's entry in `keys.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleEntry {
    threshold: NonZeroU64,
    keys: Vec<PathBuf>,
}

/// `keys.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    root: RoleEntry,
    targets: RoleEntry,
    snapshot: RoleEntry,
    timestamp: RoleEntry,
}

/// The development key set: role, number of keys, threshold.
const DEVELOPMENT_ROLES: [(&str, usize, u64); 4] = [
    ("root", 2, 2),
    ("targets", 1, 1),
    ("snapshot", 1, 1),
    ("timestamp", 1, 1),
];

/// Reads `DIR/keys.toml` into the release keys it names (paths resolved against `dir`). The
/// key files themselves are read only when something is signed with them.
pub fn load(dir: &Path) -> Result<ReleaseKeys, ReleaseError> {
    let bad = |reason: String| ReleaseError::TufKeys {
        dir: dir.to_owned(),
        reason,
    };
    let path = dir.join(KEYS_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| bad(format!("{} cannot be read ({e})", path.display())))?;
    let file: KeysFile = toml::from_str(&text)
        .map_err(|e| bad(format!("{} is malformed: {}", path.display(), e.message())))?;
    let signers = |role: &str, entry: RoleEntry| {
        if (entry.keys.len() as u64) < entry.threshold.get() {
            return Err(bad(format!(
                "the {role} role needs {} signatures but {KEYS_FILE} names {} keys",
                entry.threshold,
                entry.keys.len()
            )));
        }
        Ok(RoleSigners {
            key_files: entry.keys.iter().map(|key| dir.join(key)).collect(),
            threshold: entry.threshold,
        })
    };
    Ok(ReleaseKeys {
        root: signers("root", file.root)?,
        targets: signers("targets", file.targets)?,
        snapshot: signers("snapshot", file.snapshot)?,
        timestamp: signers("timestamp", file.timestamp)?,
    })
}

/// Makes a DEVELOPMENT key set in `dir` (created 0700; every file 0600) and returns its keys.
/// Refuses a `dir` that holds anything: keys are never overwritten. The keys are made in a
/// sibling directory and moved into place whole, so a failure leaves no partial key set.
pub fn generate(dir: &Path) -> Result<ReleaseKeys, ReleaseError> {
    let bad = |reason: String| ReleaseError::TufKeys {
        dir: dir.to_owned(),
        reason,
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(bad(
                    "the directory is not empty; existing keys are never overwritten".to_owned(),
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bad(e.to_string())),
    }
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(|e| bad(format!("{} cannot be created ({e})", parent.display())))?;
    let staging = tempfile::Builder::new()
        .prefix(".tuf-keys.")
        .tempdir_in(&parent)
        .map_err(|e| {
            bad(format!(
                "no staging directory in {} ({e})",
                parent.display()
            ))
        })?;
    let mut listing = String::from(
        "# DEVELOPMENT TUF keys made by `bunkeros-release tuf-keys`: never for a real release.\n\
         # Key files (PKCS#8) relative to this directory, and how many must sign, per role.\n",
    );
    for (role, count, threshold) in DEVELOPMENT_ROLES {
        let names: Vec<String> = (1..=count)
            .map(|n| match count {
                1 => format!("{role}.pk8"),
                _ => format!("{role}-{n}.pk8"),
            })
            .collect();
        for name in &names {
            private_file(staging.path(), name, |path| {
                generate_signing_key(path).map_err(|e| bad(e.to_string()))
            })?;
        }
        let quoted: Vec<String> = names.iter().map(|name| format!("{name:?}")).collect();
        listing.push_str(&format!(
            "\n[{role}]\nthreshold = {threshold}\nkeys = [{}]\n",
            quoted.join(", ")
        ));
    }
    private_file(staging.path(), KEYS_FILE, |path| {
        std::fs::write(path, &listing).map_err(|e| bad(e.to_string()))
    })?;
    std::fs::set_permissions(staging.path(), Permissions::from_mode(0o700))
        .map_err(|e| bad(e.to_string()))?;
    if dir.exists() {
        // empty (checked above): replaced by the staged directory
        std::fs::remove_dir(dir).map_err(|e| bad(e.to_string()))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        bad(format!("the keys could not be moved into place ({e})"))
    })?;
    load(dir)
}

/// Creates `dir/name` empty with mode 0600 before `fill` writes it, so key bytes never sit in
/// a file others can read.
fn private_file(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&Path) -> Result<(), ReleaseError>,
) -> Result<(), ReleaseError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| ReleaseError::TufKeys {
            dir: dir.to_owned(),
            reason: format!("{name} cannot be created ({e})"),
        })?;
    fill(&path)
}
