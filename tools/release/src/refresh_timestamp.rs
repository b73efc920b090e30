//! Re-signing `timestamp.json` of a repository whose content does not change.
//!
//! The timestamp's short expiry is how an appliance notices a frozen mirror (an attacker
//! replaying an old, genuine repository). An honest mirror that simply has no new release
//! would expire the same way, so the timestamp key re-signs the same snapshot under the next
//! version and a new expiry: only the timestamp key is needed, the most exposed and the
//! cheapest to rotate. Snapshot and targets keep their own expiry; when those run out, only a
//! new release helps, and the output says when that is.

use std::num::NonZeroU64;
use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use tough::editor::signed::SignedRole;
use tough::key_source::{KeySource, LocalKeySource};
use tough::schema::{KeyHolder, Root, Signed, Snapshot, Targets, Timestamp};
use updated::ReleaseKeys;

use crate::ReleaseError;
use crate::pcr_policy::write_atomically;
use crate::release_repo::{metadata_dir, read_json};
use crate::tuf_root;

/// What a refresh did, and how long the release it keeps alive can last.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub previous_version: u64,
    pub version: u64,
    pub expires: jiff::Timestamp,
    /// The snapshot and targets metadata the timestamp names, and when they expire.
    pub snapshot_version: u64,
    pub snapshot_expires: jiff::Timestamp,
    pub targets_expires: jiff::Timestamp,
}

/// Re-signs `repo`'s timestamp.json with the next version and an expiry `days` from now.
pub async fn refresh(
    keys: &ReleaseKeys,
    repo: &Path,
    days: u32,
) -> Result<Refreshed, ReleaseError> {
    let bad = |reason: String| ReleaseError::Repository {
        repo: repo.to_owned(),
        reason,
    };
    let dir = metadata_dir(repo);
    let root = newest_root(&dir).map_err(&bad)?;
    let current: Signed<Timestamp> = read_json(&dir.join("timestamp.json")).map_err(&bad)?;
    root.signed.verify_role(&current).map_err(|e| {
        bad(format!(
            "its timestamp.json does not verify against its root ({e})"
        ))
    })?;
    let snapshot_version = current
        .signed
        .meta
        .get("snapshot.json")
        .map(|meta| meta.version.get())
        .ok_or_else(|| bad("its timestamp.json names no snapshot".to_owned()))?;
    let snapshot: Signed<Snapshot> =
        read_json(&dir.join(format!("{snapshot_version}.snapshot.json"))).map_err(&bad)?;
    let targets_version = snapshot
        .signed
        .meta
        .get("targets.json")
        .map(|meta| meta.version.get())
        .ok_or_else(|| bad("its snapshot names no targets".to_owned()))?;
    let targets: Signed<Targets> =
        read_json(&dir.join(format!("{targets_version}.targets.json"))).map_err(&bad)?;

    let version = current
        .signed
        .version
        .checked_add(1)
        .ok_or_else(|| bad("the timestamp version cannot grow further".to_owned()))?;
    let expires = tuf_root::days_from_now(days).map_err(&bad)?;
    let mut next = Timestamp::new(current.signed.spec_version.clone(), version, expires);
    next.meta = current.signed.meta.clone();
    next._extra = current.signed._extra.clone();
    let signers: Vec<Box<dyn KeySource>> = keys
        .timestamp
        .key_files
        .iter()
        .map(|path| Box::new(LocalKeySource { path: path.clone() }) as Box<dyn KeySource>)
        .collect();
    let signed = SignedRole::new(
        next,
        &KeyHolder::Root(root.signed.clone()),
        &signers,
        &SystemRandom::new(),
    )
    .await
    .map_err(|e| bad(format!("the timestamp could not be signed ({e})")))?;
    root.signed
        .verify_role(signed.signed())
        .map_err(|e| bad(format!("the new timestamp does not verify ({e})")))?;
    write_atomically(&dir.join("timestamp.json"), signed.buffer())?;
    Ok(Refreshed {
        previous_version: current.signed.version.get(),
        version: version.get(),
        expires,
        snapshot_version,
        snapshot_expires: snapshot.signed.expires,
        targets_expires: targets.signed.expires,
    })
}

/// The highest `N.root.json` of the repository (after root rotations, the one in force).
fn newest_root(dir: &Path) -> Result<Signed<Root>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{} ({e})", dir.display()))?;
    let mut newest: Option<NonZeroU64> = None;
    for entry in entries {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        if let Some(version) = name
            .strip_suffix(".root.json")
            .and_then(|v| v.parse::<NonZeroU64>().ok())
        {
            newest = newest.max(Some(version));
        }
    }
    let version = newest.ok_or("it holds no N.root.json")?;
    let path = dir.join(format!("{version}.root.json"));
    let bytes = std::fs::read(&path).map_err(|e| format!("{} ({e})", path.display()))?;
    tuf_root::parse(&bytes).map_err(|reason| format!("{}: {reason}", path.display()))
}
