//! Verifying an update offline, on the appliance.
//!
//! Trust starts from the `root.json` shipped in the running image. tough checks signatures and
//! thresholds of every role, expiry, the hashes and versions snapshot and timestamp name (no
//! mix-and-match), and the metadata versions against its datastore (in the state directory):
//! it refuses a timestamp or snapshot older than the one it last accepted. The datastore is
//! tough's private cache, so this module also keeps its own record, `seen-versions.json`, of the
//! highest version of each role accepted, and refuses anything lower even when tough's cache
//! was lost. Last, the image version signed in targets must be newer than the running one.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tough::error::Error as TufError;
use tough::schema::RoleType;
use tough::{FilesystemTransport, Repository, RepositoryLoader, TargetName};

use crate::ImageVersion;
use crate::mirror::FetchFailed;
use crate::repository::{
    IMAGE_VERSION_FIELD, PROFILE_FIELD, ROOTHASH_FIELD, ReleaseFacts, is_roothash,
};
use crate::source::{ReleaseSource, SourceError, check_directory, check_medium};

/// File in the state directory that records the highest metadata versions accepted.
const SEEN_VERSIONS_FILE: &str = "seen-versions.json";
/// Directory in the state directory where tough keeps the metadata it last accepted.
const TUF_DATASTORE_DIR: &str = "tuf";

/// The highest version of each TUF role this appliance has accepted; 0 before the first update.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeenVersions {
    pub root: u64,
    pub targets: u64,
    pub snapshot: u64,
    pub timestamp: u64,
}

/// Why an update was refused. Every variant leaves the running image and the state untouched
/// except tough's datastore, which only ever moves forward to metadata that verified.
#[derive(Debug, thiserror::Error)]
pub enum UpdateRefused {
    #[error("the {role} metadata has expired, so it may be a frozen or stale release")]
    Expired { role: RoleType },
    #[error(
        "the {role} metadata is version {offered}, older than version {seen} already accepted: a rollback"
    )]
    Rollback {
        role: RoleType,
        seen: u64,
        offered: u64,
    },
    #[error("the {role} metadata is not signed by enough of its trusted keys: {detail}")]
    Signatures { role: String, detail: String },
    #[error("the root.json trusted by this image does not verify against itself: {detail}")]
    TrustedRoot { detail: String },
    #[error("{what} does not match the hash its signed metadata names: it was altered or mixed in")]
    Tampered { what: String },
    #[error(
        "the snapshot names {role} version {expected} but the repository holds version {fetched}: metadata from different releases"
    )]
    MixAndMatch {
        role: RoleType,
        expected: u64,
        fetched: u64,
    },
    #[error("{what} is longer than its signed metadata allows ({max_size} bytes)")]
    TooLong { what: &'static str, max_size: u64 },
    #[error("the repository could not be read: {detail}")]
    Unreadable { detail: String },
    #[error(
        "the system clock is earlier than a time already seen, so expiry cannot be trusted: {detail}"
    )]
    ClockWentBack { detail: String },
    #[error("the repository's metadata does not verify: {detail}")]
    Metadata { detail: String },
    #[error(
        "the release offers image {offered}, which is not newer than the running {running}: a downgrade"
    )]
    Downgrade {
        offered: ImageVersion,
        running: ImageVersion,
    },
    #[error("target {target} carries no valid signed {field}")]
    MissingFact { target: String, field: &'static str },
    #[error(
        "the release is an image for the hardware profile {offered:?}, but this appliance runs {running:?}"
    )]
    WrongProfile { offered: String, running: String },
    #[error("the targets disagree on their signed {field}, so the release is malformed")]
    MixedFacts { field: &'static str },
    #[error("the release has no target named {0:?}")]
    UnknownTarget(String),
    #[error("writing the verified target failed: {0}")]
    Sink(std::io::Error),
    #[error("the state file {path} is unreadable or malformed: {detail}")]
    State { path: PathBuf, detail: String },
    #[error(transparent)]
    Source(#[from] SourceError),
}

impl From<TufError> for UpdateRefused {
    fn from(error: TufError) -> UpdateRefused {
        if let Some(refusal) = mirror_failure(&error) {
            return refusal;
        }
        match error {
            TufError::ExpiredMetadata { role, .. } => UpdateRefused::Expired { role },
            TufError::OlderMetadata {
                role,
                current_version,
                new_version,
                ..
            } => UpdateRefused::Rollback {
                role,
                seen: current_version,
                offered: new_version,
            },
            TufError::VerifyMetadata { role, source, .. } => UpdateRefused::Signatures {
                role: role.to_string(),
                detail: source.to_string(),
            },
            TufError::VerifyRoleMetadata { role, source, .. } => UpdateRefused::Signatures {
                role,
                detail: source.to_string(),
            },
            TufError::VerifyTrustedMetadata { source, .. } => UpdateRefused::TrustedRoot {
                detail: source.to_string(),
            },
            TufError::HashMismatch { context, .. } => UpdateRefused::Tampered { what: context },
            TufError::VersionMismatch {
                role,
                fetched,
                expected,
                ..
            } => UpdateRefused::MixAndMatch {
                role,
                expected,
                fetched,
            },
            TufError::MaxSizeExceeded {
                max_size,
                specifier,
                ..
            } => UpdateRefused::TooLong {
                what: specifier,
                max_size,
            },
            // tough's hashing reader reports a digest or length failure through the transport
            e @ TufError::Transport { .. } => {
                integrity_failure(&e).unwrap_or_else(|| UpdateRefused::Unreadable {
                    detail: e.to_string(),
                })
            }
            e @ TufError::SystemTimeSteppedBackward { .. } => UpdateRefused::ClockWentBack {
                detail: e.to_string(),
            },
            other => UpdateRefused::Metadata {
                detail: other.to_string(),
            },
        }
    }
}

/// The hash or length failure inside a transport error, if that is what it is.
fn integrity_failure(error: &TufError) -> Option<UpdateRefused> {
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        match error.downcast_ref::<TufError>() {
            Some(TufError::HashMismatch { context, .. }) => {
                return Some(UpdateRefused::Tampered {
                    what: context.clone(),
                });
            }
            Some(TufError::MaxSizeExceeded {
                max_size,
                specifier,
                ..
            }) => {
                return Some(UpdateRefused::TooLong {
                    what: specifier,
                    max_size: *max_size,
                });
            }
            _ => cause = error.source(),
        }
    }
    None
}

/// The mirror's failure inside a tough error (a transport error somewhere in its causes).
fn mirror_failure(error: &TufError) -> Option<UpdateRefused> {
    let mut cause = std::error::Error::source(error);
    while let Some(error) = cause {
        if let Some(failed) = error.downcast_ref::<FetchFailed>() {
            return Some(UpdateRefused::Source(SourceError::Mirror {
                url: failed.url.clone(),
                tries: failed.tries,
                failure: failed.failure.clone(),
            }));
        }
        cause = error.source();
    }
    None
}

/// A release whose metadata verified and whose image is newer than the running one.
#[derive(Debug)]
pub struct VerifiedUpdate {
    repository: Repository,
    facts: ReleaseFacts,
    versions: SeenVersions,
}

/// The running image, against which a release is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningImage {
    pub version: ImageVersion,
    /// The hardware profile the image was built for (`IMAGE_ID` is `bunkeros-<profile>`).
    pub profile: String,
}

/// Loads the repository in `repository_dir` (`metadata/`, `targets/`: a USB stick or a local
/// directory) against `trusted_root` (the image's `root.json`), refuses rollbacks against the
/// state in `state_dir`, a release for another hardware profile and one not newer than
/// `running`, and records the accepted versions in `state_dir`.
pub async fn verify_update(
    trusted_root: &[u8],
    repository_dir: &Path,
    state_dir: &Path,
    running: &RunningImage,
) -> Result<VerifiedUpdate, UpdateRefused> {
    let source = ReleaseSource::Directory(repository_dir.to_owned());
    verify_update_from(&source, trusted_root, state_dir, running).await
}

/// Loads the release repository at `source` (a directory, the update medium, an HTTPS mirror)
/// against `trusted_root` (the image's `root.json`), and judges it as [`verify_update`] does.
/// The returned update streams its targets from the same source.
pub async fn verify_update_from(
    source: &ReleaseSource,
    trusted_root: &[u8],
    state_dir: &Path,
    running: &RunningImage,
) -> Result<VerifiedUpdate, UpdateRefused> {
    let seen = SeenVersions::load(state_dir).await?;
    let datastore = state_dir.join(TUF_DATASTORE_DIR);
    tokio::fs::create_dir_all(&datastore)
        .await
        .map_err(|e| UpdateRefused::State {
            path: datastore.clone(),
            detail: e.to_string(),
        })?;
    let repository = match source {
        ReleaseSource::Directory(directory) => {
            check_directory(directory)?;
            load_local(trusted_root, directory, datastore).await?
        }
        ReleaseSource::Removable(mount_point) => {
            check_medium(mount_point)?;
            load_local(trusted_root, mount_point, datastore).await?
        }
        ReleaseSource::Mirror(mirror) => {
            RepositoryLoader::new(&trusted_root, mirror.metadata_url(), mirror.targets_url())
                .transport(mirror.transport())
                .datastore(datastore)
                .load()
                .await?
        }
    };
    tracing::debug!(%source, "release metadata loaded");
    let versions = SeenVersions::of(&repository);
    versions.refuse_rollback_from(&seen)?;
    let facts = signed_facts(&repository)?;
    if facts.profile != running.profile {
        return Err(UpdateRefused::WrongProfile {
            offered: facts.profile,
            running: running.profile.clone(),
        });
    }
    if facts.image_version <= running.version {
        return Err(UpdateRefused::Downgrade {
            offered: facts.image_version,
            running: running.version,
        });
    }
    versions.store(state_dir).await?;
    tracing::info!(image_version = %facts.image_version, running = %running.version, ?versions, "update verified");
    Ok(VerifiedUpdate {
        repository,
        facts,
        versions,
    })
}

impl VerifiedUpdate {
    /// The image version signed in the release's targets.
    pub fn image_version(&self) -> ImageVersion {
        self.facts.image_version
    }

    /// What the release is (version, profile, root hash), as signed in its targets.
    pub fn facts(&self) -> &ReleaseFacts {
        &self.facts
    }

    /// The metadata versions of this release (now recorded as seen).
    pub fn versions(&self) -> SeenVersions {
        self.versions
    }

    /// When the release's timestamp expires: a mirror or medium must offer a fresher one by then.
    pub fn expires(&self) -> jiff::Timestamp {
        self.repository.timestamp().signed.expires
    }

    /// The names of the release's targets, sorted.
    pub fn target_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .repository
            .all_targets()
            .map(|(name, _)| name.raw().to_owned())
            .collect();
        names.sort();
        names
    }

    /// The signed length of a target, to size a slot or a progress bar before streaming.
    pub fn target_length(&self, name: &str) -> Option<u64> {
        self.repository
            .all_targets()
            .find(|(target, _)| target.raw() == name)
            .map(|(_, target)| target.length)
    }

    /// The signed SHA-256 of a target, to check that a disk kept what was streamed into it.
    pub fn target_sha256(&self, name: &str) -> Option<Vec<u8>> {
        self.repository
            .all_targets()
            .find(|(target, _)| target.raw() == name)
            .map(|(_, target)| target.hashes.sha256.to_vec())
    }

    /// Streams target `name` into `sink` while tough hashes it, and returns the bytes written.
    /// tough checks the length and SHA-256 as the bytes pass; on an error the bytes already
    /// written are not genuine and the caller must discard them (the inactive slot is only made
    /// bootable after this returns Ok).
    pub async fn stream_target<W>(&self, name: &str, sink: &mut W) -> Result<u64, UpdateRefused>
    where
        W: AsyncWrite + Unpin,
    {
        let target_name =
            TargetName::new(name).map_err(|_| UpdateRefused::UnknownTarget(name.to_owned()))?;
        let mut stream = self
            .repository
            .read_target(&target_name)
            .await?
            .ok_or_else(|| UpdateRefused::UnknownTarget(name.to_owned()))?;
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            sink.write_all(&chunk).await.map_err(UpdateRefused::Sink)?;
            written += chunk.len() as u64;
        }
        sink.flush().await.map_err(UpdateRefused::Sink)?;
        Ok(written)
    }
}

impl SeenVersions {
    /// The versions recorded in `state_dir`, or all zero when none were recorded yet.
    pub async fn load(state_dir: &Path) -> Result<SeenVersions, UpdateRefused> {
        let path = state_dir.join(SEEN_VERSIONS_FILE);
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(SeenVersions::default());
            }
            Err(e) => {
                return Err(UpdateRefused::State {
                    path,
                    detail: e.to_string(),
                });
            }
        };
        serde_json::from_slice(&bytes).map_err(|e| UpdateRefused::State {
            path,
            detail: e.to_string(),
        })
    }

    /// Records these versions in `state_dir` (written beside, then renamed over the old record,
    /// so a power loss leaves the old record or the new one).
    pub async fn store(&self, state_dir: &Path) -> Result<(), UpdateRefused> {
        let path = state_dir.join(SEEN_VERSIONS_FILE);
        let staging = state_dir.join(format!("{SEEN_VERSIONS_FILE}.new"));
        let state_error = |e: std::io::Error| UpdateRefused::State {
            path: path.clone(),
            detail: e.to_string(),
        };
        let bytes = serde_json::to_vec_pretty(self).expect("four integers always encode");
        tokio::fs::write(&staging, bytes)
            .await
            .map_err(state_error)?;
        tokio::fs::rename(&staging, &path)
            .await
            .map_err(state_error)
    }

    fn of(repository: &Repository) -> SeenVersions {
        SeenVersions {
            root: repository.root().signed.version.get(),
            targets: repository.targets().signed.version.get(),
            snapshot: repository.snapshot().signed.version.get(),
            timestamp: repository.timestamp().signed.version.get(),
        }
    }

    fn refuse_rollback_from(&self, seen: &SeenVersions) -> Result<(), UpdateRefused> {
        for (role, offered, seen) in [
            (RoleType::Root, self.root, seen.root),
            (RoleType::Targets, self.targets, seen.targets),
            (RoleType::Snapshot, self.snapshot, seen.snapshot),
            (RoleType::Timestamp, self.timestamp, seen.timestamp),
        ] {
            if offered < seen {
                return Err(UpdateRefused::Rollback {
                    role,
                    seen,
                    offered,
                });
            }
        }
        Ok(())
    }
}

/// The facts every target of the release carries in its signed custom metadata; they must agree.
fn signed_facts(repository: &Repository) -> Result<ReleaseFacts, UpdateRefused> {
    let mut found: Option<ReleaseFacts> = None;
    for (name, target) in repository.all_targets() {
        let field = |field: &'static str| {
            target
                .custom
                .get(field)
                .and_then(|v| v.as_str())
                .ok_or_else(|| UpdateRefused::MissingFact {
                    target: name.raw().to_owned(),
                    field,
                })
        };
        let missing = |field: &'static str| UpdateRefused::MissingFact {
            target: name.raw().to_owned(),
            field,
        };
        let facts = ReleaseFacts {
            image_version: field(IMAGE_VERSION_FIELD)?
                .parse::<ImageVersion>()
                .map_err(|_| missing(IMAGE_VERSION_FIELD))?,
            profile: field(PROFILE_FIELD)?.to_owned(),
            roothash: Some(field(ROOTHASH_FIELD)?)
                .filter(|hash| is_roothash(hash))
                .ok_or_else(|| missing(ROOTHASH_FIELD))?
                .to_owned(),
        };
        match &found {
            Some(first) => {
                if first.image_version != facts.image_version {
                    return Err(UpdateRefused::MixedFacts {
                        field: IMAGE_VERSION_FIELD,
                    });
                }
                if first.profile != facts.profile {
                    return Err(UpdateRefused::MixedFacts {
                        field: PROFILE_FIELD,
                    });
                }
                if first.roothash != facts.roothash {
                    return Err(UpdateRefused::MixedFacts {
                        field: ROOTHASH_FIELD,
                    });
                }
            }
            None => found = Some(facts),
        }
    }
    found.ok_or_else(|| UpdateRefused::Metadata {
        detail: "the release has no targets".to_owned(),
    })
}

/// Loads the repository in a local directory (`metadata/`, `targets/`).
async fn load_local(
    trusted_root: &[u8],
    directory: &Path,
    datastore: PathBuf,
) -> Result<Repository, UpdateRefused> {
    let metadata_url = directory_url(&directory.join("metadata"))?;
    let targets_url = directory_url(&directory.join("targets"))?;
    Ok(
        RepositoryLoader::new(&trusted_root, metadata_url, targets_url)
            .transport(FilesystemTransport)
            .datastore(datastore)
            .load()
            .await?,
    )
}

fn directory_url(path: &Path) -> Result<url::Url, UpdateRefused> {
    let absolute = std::path::absolute(path).map_err(|e| UpdateRefused::Unreadable {
        detail: format!("{}: {e}", path.display()),
    })?;
    url::Url::from_directory_path(&absolute).map_err(|()| UpdateRefused::Unreadable {
        detail: format!("{} is not a usable directory path", absolute.display()),
    })
}
