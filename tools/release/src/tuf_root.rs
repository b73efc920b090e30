//! The signed TUF `root.json`: the trust anchor an image ships at
//! /usr/share/bunkeros/update/root.json and every release repository carries.
//!
//! [`write`] signs version 1 with every root key (`updated::repository::write_root`); [`check`]
//! is what the image build runs on the root it is given: a file that is not a root signed by a
//! threshold of its own root keys, uses no consistent snapshots, or has expired, would leave
//! every appliance built with it unable to take any update.

use std::num::NonZeroU64;
use std::path::Path;

use tough::schema::{RoleType, Root, Signed};
use updated::repository::write_root;
use updated::{ReleaseKeys, RootSpec};

use crate::ReleaseError;
use crate::pcr_policy::write_atomically;

/// What [`check`] found in a root: enough to say which keys an image trusts.
#[derive(Debug, Clone)]
pub struct RootSummary {
    pub version: NonZeroU64,
    pub expires: jiff::Timestamp,
    /// Per role (root, targets, snapshot, timestamp): threshold and number of keys.
    pub roles: Vec<(RoleType, u64, usize)>,
}

impl std::fmt::Display for RootSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roles: Vec<String> = self
            .roles
            .iter()
            .map(|(role, threshold, keys)| format!("{role} {threshold} of {keys}"))
            .collect();
        write!(
            f,
            "version {}, expires {}, {}",
            self.version,
            self.expires.strftime("%Y-%m-%d"),
            roles.join(", ")
        )
    }
}

/// The expiry `days` days from now.
pub fn days_from_now(days: u32) -> Result<jiff::Timestamp, String> {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * i64::from(days)))
        .map_err(|e| format!("{days} days from now is not a date ({e})"))
}

/// Writes root.json version 1 for `keys`, expiring in `expires_days`, to `out`. Refuses to
/// replace an existing root: images and repositories trust it, and a new root must be a new
/// version signed by the old root keys (a root rotation), not a different version 1.
pub async fn write(
    keys: &ReleaseKeys,
    out: &Path,
    expires_days: u32,
) -> Result<RootSummary, ReleaseError> {
    let bad = |reason: String| ReleaseError::TufRoot {
        path: out.to_owned(),
        reason,
    };
    if out.exists() {
        return Err(bad(
            "it exists already; a root is never replaced by a different version 1".to_owned(),
        ));
    }
    let spec = RootSpec {
        version: NonZeroU64::MIN,
        expires: days_from_now(expires_days).map_err(bad)?,
    };
    let staging = tempfile::tempdir().map_err(|e| bad(format!("no staging directory ({e})")))?;
    let written = write_root(keys, spec, staging.path()).await?;
    let bytes = std::fs::read(&written).map_err(|e| bad(e.to_string()))?;
    let root = parse(&bytes).map_err(bad)?;
    write_atomically(out, &bytes)?;
    Ok(summary(&root))
}

/// Reads `path` as a signed TUF root and checks it can anchor updates: signed by a threshold
/// of its own root keys, consistent snapshots on, every role present, not expired.
pub fn check(path: &Path) -> Result<RootSummary, ReleaseError> {
    let bad = |reason: String| ReleaseError::TufRoot {
        path: path.to_owned(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| bad(format!("it cannot be read ({e})")))?;
    let root = parse(&bytes).map_err(bad)?;
    Ok(summary(&root))
}

/// Parses and checks root bytes (see [`check`]); the error is a reason.
pub fn parse(bytes: &[u8]) -> Result<Signed<Root>, String> {
    let root: Signed<Root> =
        serde_json::from_slice(bytes).map_err(|e| format!("it is not TUF root metadata ({e})"))?;
    root.signed
        .verify_role(&root)
        .map_err(|e| format!("it is not signed by enough of its own root keys ({e})"))?;
    if !root.signed.consistent_snapshot {
        return Err("it does not use consistent snapshots, which release repositories need".into());
    }
    for role in [
        RoleType::Root,
        RoleType::Targets,
        RoleType::Snapshot,
        RoleType::Timestamp,
    ] {
        if !root.signed.roles.contains_key(&role) {
            return Err(format!("it names no keys for the {role} role"));
        }
    }
    if root.signed.expires <= jiff::Timestamp::now() {
        return Err(format!(
            "it expired on {}",
            root.signed.expires.strftime("%Y-%m-%d")
        ));
    }
    Ok(root)
}

fn summary(root: &Signed<Root>) -> RootSummary {
    let roles = [
        RoleType::Root,
        RoleType::Targets,
        RoleType::Snapshot,
        RoleType::Timestamp,
    ]
    .into_iter()
    .filter_map(|role| {
        let keys = root.signed.roles.get(&role)?;
        Some((role, keys.threshold.get(), keys.keyids.len()))
    })
    .collect();
    RootSummary {
        version: root.signed.version,
        expires: root.signed.expires,
        roles,
    }
}
