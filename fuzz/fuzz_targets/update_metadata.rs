//! updated's TUF metadata and release parsing (bytes from a USB stick or a mirror anyone could
//! have written): parsed as each role's schema with serde_json as tough does, then put in place
//! of one file of a genuine release repository (`fixtures/update_metadata`, signed by test keys
//! with expiry in 2099) and run through the appliance's full `verify_update` and target
//! streaming against the fixed trusted root. Hostile bytes must give a refusal, never a panic or
//! a hang; and whatever verifies must be the genuine release, byte for byte.
//!
//! The first input byte picks the file the rest replaces: timestamp, snapshot, targets, a newer
//! root (`2.root.json`, a root rotation), the trusted root itself, or a target's bytes.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tough::schema::{Root, Signed, Snapshot, Targets, Timestamp};
use updated::{ReleaseFacts, RunningImage, UpdateRefused, VerifiedUpdate, verify_update};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/update_metadata");
/// The target whose bytes the last mode replaces.
const TARGET: &str = "root.verity";

/// The fixture copied to a scratch directory once, and what the genuine release is.
struct Workspace {
    repository: PathBuf,
    state: PathBuf,
    trusted_root: Vec<u8>,
    running: RunningImage,
    genuine: ReleaseFacts,
    genuine_target: Vec<u8>,
    runtime: tokio::runtime::Runtime,
}

fn workspace() -> &'static Workspace {
    static WORKSPACE: OnceLock<Workspace> = OnceLock::new();
    WORKSPACE.get_or_init(|| {
        let scratch = std::env::temp_dir().join(format!(
            "bunkeros-fuzz-update-metadata-{}",
            std::process::id()
        ));
        let repository = scratch.join("repository");
        copy_tree(&Path::new(FIXTURE).join("repository"), &repository);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut workspace = Workspace {
            state: scratch.join("state"),
            repository,
            trusted_root: std::fs::read(Path::new(FIXTURE).join("root.json")).unwrap(),
            running: RunningImage {
                version: "0.1.0".parse().unwrap(),
                profile: "qemu-x86_64".to_owned(),
            },
            genuine: ReleaseFacts {
                image_version: "0.2.0".parse().unwrap(),
                profile: String::new(),
                roothash: String::new(),
            },
            genuine_target: Vec::new(),
            runtime,
        };
        let update = workspace
            .verify(&workspace.trusted_root)
            .expect("the fixture is a genuine release");
        workspace.genuine = update.facts().clone();
        workspace.genuine_target = workspace
            .runtime
            .block_on(stream(&update))
            .expect("the fixture's target streams");
        workspace
    })
}

impl Workspace {
    /// `verify_update` as the appliance runs it, from a fresh state directory.
    fn verify(&self, trusted_root: &[u8]) -> Result<VerifiedUpdate, UpdateRefused> {
        let _ = std::fs::remove_dir_all(&self.state);
        std::fs::create_dir_all(&self.state).unwrap();
        self.runtime.block_on(verify_update(
            trusted_root,
            &self.repository,
            &self.state,
            &self.running,
        ))
    }

    fn metadata_file(&self, suffix: &str) -> PathBuf {
        find(&self.repository.join("metadata"), suffix)
    }

    /// Replaces `file` with `bytes` for the duration of `check`, then puts the original back.
    fn with_file_replaced(&self, file: &Path, bytes: &[u8], check: impl FnOnce(&Workspace)) {
        let original = std::fs::read(file).ok();
        std::fs::write(file, bytes).unwrap();
        check(self);
        match original {
            Some(original) => std::fs::write(file, original).unwrap(),
            None => std::fs::remove_file(file).unwrap(),
        }
    }

    /// Whatever verifies must be the genuine release: no forged field passes.
    fn check_verifies_only_as_genuine(&self, trusted_root: &[u8]) {
        if let Ok(update) = self.verify(trusted_root) {
            assert_eq!(update.facts(), &self.genuine);
            if let Ok(bytes) = self.runtime.block_on(stream(&update)) {
                assert_eq!(bytes, self.genuine_target);
            }
        }
    }
}

async fn stream(update: &VerifiedUpdate) -> Result<Vec<u8>, UpdateRefused> {
    let mut sink = Vec::new();
    update.stream_target(TARGET, &mut sink).await?;
    Ok(sink)
}

fn find(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.to_str().unwrap().ends_with(suffix))
        .unwrap_or_else(|| panic!("the fixture has no {suffix} in {}", dir.display()))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    // The schema parsing tough does for each role, alone.
    let _ = serde_json::from_slice::<Signed<Root>>(bytes);
    let _ = serde_json::from_slice::<Signed<Timestamp>>(bytes);
    let _ = serde_json::from_slice::<Signed<Snapshot>>(bytes);
    let _ = serde_json::from_slice::<Signed<Targets>>(bytes);

    let workspace = workspace();
    match mode % 6 {
        0 => {
            let file = workspace.metadata_file("/timestamp.json");
            workspace.with_file_replaced(&file, bytes, |w| {
                w.check_verifies_only_as_genuine(&w.trusted_root)
            });
        }
        1 => {
            let file = workspace.metadata_file(".snapshot.json");
            workspace.with_file_replaced(&file, bytes, |w| {
                w.check_verifies_only_as_genuine(&w.trusted_root)
            });
        }
        2 => {
            let file = workspace.metadata_file(".targets.json");
            workspace.with_file_replaced(&file, bytes, |w| {
                w.check_verifies_only_as_genuine(&w.trusted_root)
            });
        }
        3 => {
            let file = workspace.repository.join("metadata/2.root.json");
            workspace.with_file_replaced(&file, bytes, |w| {
                w.check_verifies_only_as_genuine(&w.trusted_root)
            });
        }
        4 => {
            // A trusted root that is not the fixture's cannot verify the fixture's release
            // unless it holds the same keys; parse and verify must still never panic.
            let _ = workspace.verify(bytes);
        }
        _ => {
            let file = find(&workspace.repository.join("targets"), &format!(".{TARGET}"));
            workspace.with_file_replaced(&file, bytes, |w| {
                w.check_verifies_only_as_genuine(&w.trusted_root)
            });
        }
    }
});
