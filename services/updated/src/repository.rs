//! Making a release repository: TUF metadata over a directory of image artefacts.
//!
//! Layout written into the output directory (tuftool's): `metadata/` with `root.json`,
//! `N.root.json`, `N.targets.json`, `N.snapshot.json`, `timestamp.json`, and `targets/` with each
//! artefact as `<sha256>.<name>`. Consistent snapshots are on: every file but `timestamp.json` is
//! named by its version or digest, so one USB stick or mirror directory can accumulate releases
//! without overwriting a file an appliance may be reading, and a reader that sees a new
//! timestamp always finds the exact snapshot, targets and artefacts it names.
//!
//! The image version is signed inside `targets.json`: every artefact's custom metadata carries
//! `bunkeros_image_version`, so the version cannot be changed without the targets key.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use tough::editor::RepositoryEditor;
use tough::editor::signed::PathExists;
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::decoded::{Decoded, Hex};
use tough::schema::key::Key;
use tough::schema::{Role, RoleKeys, RoleType, Root, Signature, Signed, Target};

use crate::ImageVersion;

/// What a release is, as signed into every target's custom metadata and checked on the
/// appliance: the image version (no downgrade), the hardware profile (no image for another
/// machine), and the root hash of its dm-verity tree (which the UKI boots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseFacts {
    pub image_version: ImageVersion,
    pub profile: String,
    pub roothash: String,
}

impl ReleaseFacts {
    /// The custom metadata fields carrying these facts.
    fn custom_fields(&self) -> HashMap<String, serde_json::Value> {
        HashMap::from([
            (
                IMAGE_VERSION_FIELD.to_owned(),
                self.image_version.to_string().into(),
            ),
            (PROFILE_FIELD.to_owned(), self.profile.clone().into()),
            (ROOTHASH_FIELD.to_owned(), self.roothash.clone().into()),
        ])
    }
}

/// Whether `text` is a dm-verity root hash as the image build writes it: 64 lowercase hex digits.
pub fn is_roothash(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The custom metadata field of every target that names the release's image version.
pub const IMAGE_VERSION_FIELD: &str = "bunkeros_image_version";
/// The custom metadata field that names the hardware profile the image was built for.
pub const PROFILE_FIELD: &str = "bunkeros_profile";
/// The custom metadata field that carries the image's dm-verity root hash (64 hex digits): the
/// hash the UKI's command line names, from which the slot's partition UUIDs are derived.
pub const ROOTHASH_FIELD: &str = "bunkeros_roothash";

/// TUF specification version the metadata claims.
const SPEC_VERSION: &str = "1.0.0";

/// The keys of one TUF role and how many of them must sign.
#[derive(Debug, Clone)]
pub struct RoleSigners {
    /// PKCS#8 key files (Ed25519 or ECDSA P-256 DER, or PEM), as `tough::key_source` reads them.
    pub key_files: Vec<PathBuf>,
    pub threshold: NonZeroU64,
}

/// The release keys, one set per TUF role. Root keys are only needed to write `root.json`;
/// real ones stay offline and sign root rarely, the online roles sign every release.
#[derive(Debug, Clone)]
pub struct ReleaseKeys {
    pub root: RoleSigners,
    pub targets: RoleSigners,
    pub snapshot: RoleSigners,
    pub timestamp: RoleSigners,
}

/// What a `root.json` says besides its keys.
#[derive(Debug, Clone, Copy)]
pub struct RootSpec {
    pub version: NonZeroU64,
    pub expires: jiff::Timestamp,
}

/// One release: what it is (signed into every target) and the versions and expiry of the
/// metadata that sign it.
#[derive(Debug, Clone)]
pub struct ReleaseSpec {
    pub facts: ReleaseFacts,
    /// The version of targets, snapshot and timestamp for this release; must grow per release.
    pub metadata_version: NonZeroU64,
    pub targets_expires: jiff::Timestamp,
    pub snapshot_expires: jiff::Timestamp,
    pub timestamp_expires: jiff::Timestamp,
}

/// Why a release repository could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("signing key {path} could not be loaded: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error(
        "the {role} role needs {threshold} signatures but only {keys} distinct keys were given"
    )]
    Threshold {
        role: RoleType,
        threshold: u64,
        keys: usize,
    },
    #[error("the artefact directory {path} could not be read: {source}")]
    Artefacts {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the artefact directory {0} holds no files to release")]
    NoArtefacts(PathBuf),
    #[error("{path} could not be written: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the root metadata could not be signed: {0}")]
    SignRoot(String),
    #[error("the TUF metadata could not be built or written: {0}")]
    Tuf(Box<tough::error::Error>),
}

impl From<tough::error::Error> for ReleaseError {
    fn from(error: tough::error::Error) -> ReleaseError {
        // tough's error carries a backtrace; boxed so every `Result` here stays small
        ReleaseError::Tuf(Box::new(error))
    }
}

/// Writes a signed `root.json` (and `N.root.json`, for later root rotations) into `metadata_dir`,
/// signed by every root key, and returns the path of `root.json`: the file an image ships as
/// its trust anchor.
pub async fn write_root(
    keys: &ReleaseKeys,
    spec: RootSpec,
    metadata_dir: &Path,
) -> Result<PathBuf, ReleaseError> {
    let mut all_keys = HashMap::new();
    let mut roles = HashMap::new();
    for (role, signers) in [
        (RoleType::Root, &keys.root),
        (RoleType::Targets, &keys.targets),
        (RoleType::Snapshot, &keys.snapshot),
        (RoleType::Timestamp, &keys.timestamp),
    ] {
        let mut keyids = Vec::new();
        for path in &signers.key_files {
            let (keyid, key) = public_key(path).await?;
            if !keyids.contains(&keyid) {
                keyids.push(keyid.clone());
            }
            all_keys.insert(keyid, key);
        }
        if (keyids.len() as u64) < signers.threshold.get() {
            return Err(ReleaseError::Threshold {
                role,
                threshold: signers.threshold.get(),
                keys: keyids.len(),
            });
        }
        let role_keys = RoleKeys {
            keyids,
            threshold: signers.threshold,
            _extra: HashMap::new(),
        };
        roles.insert(role, role_keys);
    }
    let root = Root {
        spec_version: SPEC_VERSION.to_owned(),
        consistent_snapshot: true,
        version: spec.version,
        expires: spec.expires,
        keys: all_keys,
        roles,
        _extra: HashMap::new(),
    };
    let signed = sign_root(root, &keys.root.key_files).await?;
    let mut bytes = serde_json::to_vec_pretty(&signed)
        .map_err(|e| ReleaseError::SignRoot(format!("encoding failed: {e}")))?;
    bytes.push(b'\n');
    create_dir(metadata_dir).await?;
    let versioned = metadata_dir.join(format!("{}.root.json", spec.version));
    write_file(&versioned, &bytes).await?;
    let root_path = metadata_dir.join("root.json");
    write_file(&root_path, &bytes).await?;
    Ok(root_path)
}

/// Writes one release into `out_dir` (`metadata/`, `targets/`): every regular file of
/// `artefacts_dir` becomes a target carrying the image version, and targets, snapshot and
/// timestamp are signed with the online keys. `root_json` is the repository's current root.
pub async fn write_release(
    root_json: &Path,
    artefacts_dir: &Path,
    spec: &ReleaseSpec,
    keys: &ReleaseKeys,
    out_dir: &Path,
) -> Result<(), ReleaseError> {
    let mut editor = RepositoryEditor::new(root_json).await?;
    editor
        .targets_version(spec.metadata_version)?
        .targets_expires(spec.targets_expires)?
        .snapshot_version(spec.metadata_version)
        .snapshot_expires(spec.snapshot_expires)
        .timestamp_version(spec.metadata_version)
        .timestamp_expires(spec.timestamp_expires);
    let facts = spec.facts.custom_fields();
    for path in artefacts(artefacts_dir).await? {
        let mut target = Target::from_path(&path)
            .await
            .map_err(|e| ReleaseError::Artefacts {
                path: path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?;
        target.custom.extend(facts.clone());
        let name =
            path.file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| ReleaseError::Artefacts {
                    path: path.clone(),
                    source: std::io::Error::other("the file name is not UTF-8"),
                })?;
        editor.add_target(name, target)?;
    }
    let online: Vec<Box<dyn KeySource>> = [&keys.targets, &keys.snapshot, &keys.timestamp]
        .into_iter()
        .flat_map(|signers| signers.key_files.iter())
        .map(|path| Box::new(LocalKeySource { path: path.clone() }) as Box<dyn KeySource>)
        .collect();
    let signed = editor.sign(&online).await?;
    let metadata_dir = out_dir.join("metadata");
    let targets_dir = out_dir.join("targets");
    create_dir(&metadata_dir).await?;
    create_dir(&targets_dir).await?;
    signed.write(&metadata_dir).await?;
    signed
        .copy_targets(artefacts_dir, &targets_dir, PathExists::Skip)
        .await?;
    // The editor writes `N.root.json` only; an image ships `root.json` and tuftool's layout has it.
    let root_bytes =
        tokio::fs::read(root_json)
            .await
            .map_err(|source| ReleaseError::Artefacts {
                path: root_json.to_owned(),
                source,
            })?;
    write_file(&metadata_dir.join("root.json"), &root_bytes).await?;
    tracing::info!(
        image_version = %spec.facts.image_version,
        metadata_version = spec.metadata_version,
        out = %out_dir.display(),
        "release repository written"
    );
    Ok(())
}

/// Writes a fresh Ed25519 signing key (PKCS#8 DER) to `path`: test and development keys that
/// the build generates. Real release keys are made and kept offline.
pub fn generate_signing_key(path: &Path) -> Result<(), ReleaseError> {
    let rng = SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| {
        ReleaseError::Key {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    })?;
    std::fs::write(path, pkcs8.as_ref()).map_err(|source| ReleaseError::Write {
        path: path.to_owned(),
        source,
    })
}

async fn public_key(path: &Path) -> Result<(Decoded<Hex>, Key), ReleaseError> {
    let bad = |reason: String| ReleaseError::Key {
        path: path.to_owned(),
        reason,
    };
    let signer = LocalKeySource {
        path: path.to_owned(),
    }
    .as_sign()
    .await
    .map_err(|e| bad(e.to_string()))?;
    let key = signer.tuf_key();
    let keyid = key.key_id().map_err(|e| bad(e.to_string()))?;
    Ok((keyid, key))
}

/// Signs the canonical form of `root` with every given key (what `tuftool root sign` does).
async fn sign_root(root: Root, key_files: &[PathBuf]) -> Result<Signed<Root>, ReleaseError> {
    let canonical = root
        .canonical_form()
        .map_err(|e| ReleaseError::SignRoot(e.to_string()))?;
    let rng = SystemRandom::new();
    let mut signatures: Vec<Signature> = Vec::new();
    for path in key_files {
        let bad = |reason: String| ReleaseError::Key {
            path: path.clone(),
            reason,
        };
        let signer = LocalKeySource { path: path.clone() }
            .as_sign()
            .await
            .map_err(|e| bad(e.to_string()))?;
        let keyid = signer.tuf_key().key_id().map_err(|e| bad(e.to_string()))?;
        if signatures.iter().any(|s| s.keyid == keyid) {
            continue;
        }
        let sig = signer
            .sign(&canonical, &rng)
            .await
            .map_err(|e| bad(e.to_string()))?;
        signatures.push(Signature {
            keyid,
            sig: sig.into(),
        });
    }
    Ok(Signed {
        signed: root,
        signatures,
    })
}

/// The regular files of the artefact directory, sorted by name.
async fn artefacts(dir: &Path) -> Result<Vec<PathBuf>, ReleaseError> {
    let unreadable = |source| ReleaseError::Artefacts {
        path: dir.to_owned(),
        source,
    };
    let mut entries = tokio::fs::read_dir(dir).await.map_err(unreadable)?;
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(unreadable)? {
        if entry.file_type().await.map_err(unreadable)?.is_file() {
            files.push(entry.path());
        }
    }
    if files.is_empty() {
        return Err(ReleaseError::NoArtefacts(dir.to_owned()));
    }
    files.sort();
    Ok(files)
}

async fn create_dir(path: &Path) -> Result<(), ReleaseError> {
    tokio::fs::create_dir_all(path)
        .await
        .map_err(|source| ReleaseError::Write {
            path: path.to_owned(),
            source,
        })
}

async fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ReleaseError> {
    tokio::fs::write(path, bytes)
        .await
        .map_err(|source| ReleaseError::Write {
            path: path.to_owned(),
            source,
        })
}
