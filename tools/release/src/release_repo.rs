//! What a release repository directory already holds, as the publisher needs it: the highest
//! metadata version (a new release must be above it), the newest release's image version and
//! profile (a new one must be newer, for the same profile), and the root it was published
//! under. This is the publisher reading its own output, not the appliance's verification.

use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use tough::schema::{Signed, Targets, Timestamp};
use updated::ImageVersion;
use updated::repository::{IMAGE_VERSION_FIELD, PROFILE_FIELD};

use crate::ReleaseError;

/// The newest release in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewestRelease {
    pub image_version: ImageVersion,
    pub profile: String,
}

/// What a repository directory holds; empty for a directory that does not exist yet.
#[derive(Debug, Clone, Default)]
pub struct RepoState {
    /// The highest version of targets, snapshot or timestamp metadata; 0 when there is none.
    pub highest_metadata_version: u64,
    pub newest: Option<NewestRelease>,
    /// The bytes of `metadata/root.json`, if there is one.
    pub root: Option<Vec<u8>>,
}

impl RepoState {
    /// The metadata version of the next release.
    pub fn next_metadata_version(&self) -> NonZeroU64 {
        NonZeroU64::MIN.saturating_add(self.highest_metadata_version)
    }
}

/// The metadata directory of a repository.
pub fn metadata_dir(repo: &Path) -> PathBuf {
    repo.join("metadata")
}

/// Reads what `repo` holds.
pub fn read(repo: &Path) -> Result<RepoState, ReleaseError> {
    let bad = |reason: String| ReleaseError::Repository {
        repo: repo.to_owned(),
        reason,
    };
    let dir = metadata_dir(repo);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RepoState::default()),
        Err(e) => return Err(bad(format!("{} cannot be read ({e})", dir.display()))),
    };
    let mut state = RepoState::default();
    let mut newest_targets = 0;
    for entry in entries {
        let entry = entry.map_err(|e| bad(e.to_string()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        match versioned(&name) {
            Some((version, "targets")) => {
                newest_targets = newest_targets.max(version);
                state.highest_metadata_version = state.highest_metadata_version.max(version);
            }
            Some((version, "snapshot")) => {
                state.highest_metadata_version = state.highest_metadata_version.max(version);
            }
            _ => {}
        }
    }
    let timestamp_path = dir.join("timestamp.json");
    if timestamp_path.exists() {
        let timestamp: Signed<Timestamp> = read_json(&timestamp_path).map_err(&bad)?;
        state.highest_metadata_version = state
            .highest_metadata_version
            .max(timestamp.signed.version.get());
    }
    if newest_targets > 0 {
        let path = dir.join(format!("{newest_targets}.targets.json"));
        let targets: Signed<Targets> = read_json(&path).map_err(&bad)?;
        state.newest = Some(
            newest_release(&targets.signed)
                .map_err(|reason| bad(format!("{}: {reason}", path.display())))?,
        );
    }
    let root_path = dir.join("root.json");
    if root_path.exists() {
        let bytes = std::fs::read(&root_path)
            .map_err(|e| bad(format!("{} cannot be read ({e})", root_path.display())))?;
        state.root = Some(bytes);
    }
    Ok(state)
}

/// `N.role.json` → (N, role).
fn versioned(name: &str) -> Option<(u64, &str)> {
    let stem = name.strip_suffix(".json")?;
    let (version, role) = stem.split_once('.')?;
    Some((version.parse().ok()?, role))
}

/// The image version and profile every target of a release carries (the first target's: the
/// appliance refuses releases whose targets disagree).
fn newest_release(targets: &Targets) -> Result<NewestRelease, String> {
    let target = targets
        .targets
        .values()
        .next()
        .ok_or("it lists no targets")?;
    let field = |name: &str| {
        target
            .custom
            .get(name)
            .and_then(|value| value.as_str())
            .map(str::to_owned)
            .ok_or_else(|| format!("its targets carry no {name}"))
    };
    let image_version = field(IMAGE_VERSION_FIELD)?
        .parse()
        .map_err(|e| format!("its {IMAGE_VERSION_FIELD}: {e}"))?;
    Ok(NewestRelease {
        image_version,
        profile: field(PROFILE_FIELD)?,
    })
}

/// Reads a JSON metadata file; the error is a reason naming the file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("{} cannot be read ({e})", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{} is malformed ({e})", path.display()))
}
