//! Publishing one image build into a release repository directory (`make release`).
//!
//! One directory (a USB stick, a mirror) accumulates releases: consistent snapshots name every
//! file but `timestamp.json` by version or digest, so a new release only adds files. The new
//! release is written completely into a staging directory beside the repository first, then
//! moved in, `timestamp.json` last: a reader sees either the previous release or the new one,
//! and a failure anywhere before the move leaves the repository as it was (the staging
//! directory, `.publish.*` inside the repository or beside a new one, is removed).

use std::path::{Path, PathBuf};

use updated::repository::write_release;
use updated::{ReleaseFacts, ReleaseKeys, ReleaseSpec};

use crate::ReleaseError;
use crate::image_build::{self, ImageBuild};
use crate::release_repo::{self, RepoState};
use crate::tuf_root::{self, days_from_now};

/// How long each role's metadata of a release stays valid.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    pub targets_days: u32,
    pub snapshot_days: u32,
    pub timestamp_days: u32,
}

impl Default for Expiry {
    /// Targets 90 days, snapshot 30, timestamp 7: a mirror or stick older than a week is
    /// noticed (no freeze) unless `refresh-timestamp` re-signs it.
    fn default() -> Expiry {
        Expiry {
            targets_days: 90,
            snapshot_days: 30,
            timestamp_days: 7,
        }
    }
}

/// What was published.
#[derive(Debug, Clone)]
pub struct Published {
    pub facts: ReleaseFacts,
    pub metadata_version: u64,
    pub targets_expires: jiff::Timestamp,
    pub snapshot_expires: jiff::Timestamp,
    pub timestamp_expires: jiff::Timestamp,
    pub bytes: u64,
    pub artefacts: usize,
}

/// Publishes the image build in `image_dir` into `repo` under the root `root_json`.
pub async fn publish(
    image_dir: &Path,
    keys: &ReleaseKeys,
    root_json: &Path,
    repo: &Path,
    expiry: Expiry,
) -> Result<Published, ReleaseError> {
    let bad = |reason: String| ReleaseError::Repository {
        repo: repo.to_owned(),
        reason,
    };
    let build = image_build::read(image_dir)?;
    let root_bytes = std::fs::read(root_json).map_err(|e| ReleaseError::TufRoot {
        path: root_json.to_owned(),
        reason: format!("it cannot be read ({e})"),
    })?;
    tuf_root::parse(&root_bytes).map_err(|reason| ReleaseError::TufRoot {
        path: root_json.to_owned(),
        reason,
    })?;
    let state = release_repo::read(repo)?;
    admit(&state, &build, &root_bytes).map_err(bad)?;
    let spec = ReleaseSpec {
        facts: build.facts.clone(),
        metadata_version: state.next_metadata_version(),
        targets_expires: days_from_now(expiry.targets_days).map_err(&bad)?,
        snapshot_expires: days_from_now(expiry.snapshot_days).map_err(&bad)?,
        timestamp_expires: days_from_now(expiry.timestamp_days).map_err(&bad)?,
    };

    // Staged on the repository's own file system (inside it when it exists: it may be a mount
    // point, a USB stick), so the final moves are renames.
    let staging_parent = if repo.is_dir() {
        repo.to_owned()
    } else {
        parent_of(repo)
    };
    std::fs::create_dir_all(&staging_parent).map_err(|e| {
        bad(format!(
            "{} cannot be created ({e})",
            staging_parent.display()
        ))
    })?;
    let staging = tempfile::Builder::new()
        .prefix(".publish.")
        .tempdir_in(&staging_parent)
        .map_err(|e| {
            bad(format!(
                "no staging directory in {} ({e})",
                staging_parent.display()
            ))
        })?;
    let artefacts = staging.path().join("artefacts");
    stage_artefacts(&build, &artefacts).map_err(&bad)?;
    let staged_repo = staging.path().join("repo");
    write_release(root_json, &artefacts, &spec, keys, &staged_repo).await?;
    move_into(&staged_repo, repo).map_err(&bad)?;

    Ok(Published {
        facts: build.facts,
        metadata_version: spec.metadata_version.get(),
        targets_expires: spec.targets_expires,
        snapshot_expires: spec.snapshot_expires,
        timestamp_expires: spec.timestamp_expires,
        bytes: build.bytes,
        artefacts: build.artefacts.len(),
    })
}

/// Whether `repo` takes this build: the same root, the same profile, a newer image version.
fn admit(state: &RepoState, build: &ImageBuild, root_bytes: &[u8]) -> Result<(), String> {
    if let Some(existing) = &state.root
        && existing != root_bytes
    {
        return Err(
            "its metadata/root.json differs from the given root: the repository was published under another root"
                .to_owned(),
        );
    }
    if let Some(newest) = &state.newest {
        if newest.profile != build.facts.profile {
            return Err(format!(
                "it holds releases for the profile {:?}, not {:?}: one repository per profile",
                newest.profile, build.facts.profile
            ));
        }
        if build.facts.image_version <= newest.image_version {
            return Err(format!(
                "image {} is not newer than {}, the newest release already there",
                build.facts.image_version, newest.image_version
            ));
        }
    }
    Ok(())
}

/// Links (or, across file systems, copies) the release artefacts into `dir`: `write_release`
/// publishes every file of one directory, and the image build holds more than the release.
fn stage_artefacts(build: &ImageBuild, dir: &Path) -> Result<(), String> {
    std::fs::create_dir(dir).map_err(|e| format!("{} cannot be created ({e})", dir.display()))?;
    for source in &build.artefacts {
        let name = source.file_name().expect("artefacts are files");
        let staged = dir.join(name);
        if std::fs::hard_link(source, &staged).is_err() {
            std::fs::copy(source, &staged)
                .map_err(|e| format!("{} cannot be staged ({e})", source.display()))?;
        }
    }
    Ok(())
}

/// Moves a staged release into `repo`: artefacts and versioned metadata first (new names, or
/// digests and versions already there with the same content), `timestamp.json` last.
fn move_into(staged: &Path, repo: &Path) -> Result<(), String> {
    for sub in ["targets", "metadata"] {
        let to = repo.join(sub);
        std::fs::create_dir_all(&to)
            .map_err(|e| format!("{} cannot be created ({e})", to.display()))?;
        let from = staged.join(sub);
        let entries = std::fs::read_dir(&from).map_err(|e| format!("{} ({e})", from.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| e.to_string())?;
            let name = entry.file_name();
            if name == "timestamp.json" {
                continue;
            }
            let destination = to.join(&name);
            if destination.exists() {
                continue;
            }
            rename(&entry.path(), &destination)?;
        }
    }
    rename(
        &staged.join("metadata/timestamp.json"),
        &repo.join("metadata/timestamp.json"),
    )
}

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to).map_err(|e| format!("{} cannot be written ({e})", to.display()))
}

fn parent_of(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    absolute
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("/"))
}
