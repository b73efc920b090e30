//! Verifying a release repository as an appliance would, before it ships: the same
//! `updated::verify_update`, against the root the images carry, with a fresh state (nothing
//! seen yet), for an appliance of the given profile running the given version.

use std::path::Path;

use updated::{ImageVersion, ReleaseFacts, RunningImage, SeenVersions, verify_update};

use crate::ReleaseError;

/// What verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub facts: ReleaseFacts,
    pub versions: SeenVersions,
    /// Each target and its signed length, by name.
    pub targets: Vec<(String, u64)>,
}

/// Verifies `repo` against the trusted root `root` for an appliance running `running`.
pub async fn verify(
    root: &Path,
    repo: &Path,
    running: &RunningImage,
) -> Result<Verified, ReleaseError> {
    let trusted_root = std::fs::read(root).map_err(|e| ReleaseError::TufRoot {
        path: root.to_owned(),
        reason: format!("it cannot be read ({e})"),
    })?;
    let refused = |reason: String| ReleaseError::Verify {
        repo: repo.to_owned(),
        reason,
    };
    let state = tempfile::tempdir().map_err(|e| refused(format!("no state directory ({e})")))?;
    let update = verify_update(&trusted_root, repo, state.path(), running)
        .await
        .map_err(|e| refused(e.to_string()))?;
    let mut names = update.target_names();
    names.sort();
    let targets = names
        .into_iter()
        .map(|name| {
            let length = update.target_length(&name).unwrap_or(0);
            (name, length)
        })
        .collect();
    Ok(Verified {
        facts: update.facts().clone(),
        versions: update.versions(),
        targets,
    })
}

/// The running image `verify-repo` judges against by default: older than any release.
pub const NO_IMAGE: ImageVersion = ImageVersion::new(0, 0, 0);
