//! `bunkeros-release`'s TUF subcommands as `make release` runs them: development keys, the
//! root an image trusts, image builds published into one accumulating repository, and the
//! result verified by `updated::verify_update` exactly as the appliance verifies it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest as _, Sha256};
use tempfile::TempDir;
use updated::{RunningImage, UpdateRefused, VerifiedUpdate, verify_update};

const PROFILE: &str = "qemu-x86_64";

fn release_tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bunkeros-release"))
        .args(args)
        .output()
        .expect("bunkeros-release runs")
}

fn succeeds(args: &[&str]) -> String {
    let output = release_tool(args);
    assert!(
        output.status.success(),
        "bunkeros-release {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs a command that must fail, and returns its error: exit 1, one line on stderr.
fn refused(args: &[&str]) -> String {
    let output = release_tool(args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "bunkeros-release {args:?}: {output:?}"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "one sentence: {stderr}");
    stderr
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Development keys and the root made from them, as `make release` makes them on first use.
struct Fixture {
    dir: TempDir,
    keys: PathBuf,
    root: PathBuf,
    repo: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TempDir::new().unwrap();
        let keys = dir.path().join("keys/tuf");
        let root = keys.join("root.json");
        succeeds(&["tuf-keys", "--dir", text(&keys)]);
        succeeds(&["tuf-root", "--keys", text(&keys), "--out", text(&root)]);
        let repo = dir.path().join("release/qemu-x86_64");
        Fixture {
            dir,
            keys,
            root,
            repo,
        }
    }

    /// A fake image build of `version`: small artefacts, SHA256SUMS and build-info as
    /// image/build.sh writes them.
    fn image(&self, version: &str) -> PathBuf {
        let dir = self.dir.path().join(format!("image-{version}"));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "root.squashfs",
            "root.verity",
            "bunkeros.uki.efi",
            "pcr11.json",
            "pcr11.policy.json",
        ] {
            std::fs::write(dir.join(name), artefact_bytes(name, version)).unwrap();
        }
        let roothash = sha256_hex(format!("root of {version}").as_bytes());
        let pcr11 = sha256_hex(format!("pcr 11 of {version}").as_bytes());
        std::fs::write(dir.join("roothash"), format!("{roothash}\n")).unwrap();
        std::fs::write(dir.join("pcr11.expected"), format!("{pcr11}\n")).unwrap();
        let sums: String = ["bunkeros.uki.efi", "root.squashfs", "root.verity"]
            .iter()
            .map(|name| {
                let bytes = std::fs::read(dir.join(name)).unwrap();
                format!("{}  {name}\n", sha256_hex(&bytes))
            })
            .collect();
        std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
        std::fs::write(
            dir.join("build-info"),
            format!(
                "inputs=0123\nversion={version}\nprofile={PROFILE}\nsource_date_epoch=1700000000\n\
                 roothash={roothash}\npcr11={pcr11}\nimage_sha256=abcd\n"
            ),
        )
        .unwrap();
        dir
    }

    fn publish_args<'a>(&'a self, image: &'a Path) -> Vec<&'a str> {
        vec![
            "publish",
            "--image-dir",
            text(image),
            "--keys",
            text(&self.keys),
            "--root",
            text(&self.root),
            "--repo",
            text(&self.repo),
        ]
    }

    fn publish(&self, version: &str) -> String {
        let image = self.image(version);
        succeeds(&self.publish_args(&image))
    }

    fn state(&self, label: &str) -> PathBuf {
        let state = self.dir.path().join(format!("state-{label}"));
        std::fs::create_dir_all(&state).unwrap();
        state
    }

    async fn verify(&self, state: &Path, running: &str) -> Result<VerifiedUpdate, UpdateRefused> {
        let running = RunningImage {
            version: running.parse().unwrap(),
            profile: PROFILE.to_owned(),
        };
        let root = std::fs::read(&self.root).unwrap();
        verify_update(&root, &self.repo, state, &running).await
    }

    /// Every file of the repository and its SHA-256, by path relative to it.
    fn tree(&self) -> BTreeMap<String, String> {
        let mut tree = BTreeMap::new();
        for sub in ["metadata", "targets"] {
            let Ok(entries) = std::fs::read_dir(self.repo.join(sub)) else {
                continue;
            };
            for entry in entries {
                let entry = entry.unwrap();
                let bytes = std::fs::read(entry.path()).unwrap();
                tree.insert(
                    format!("{sub}/{}", entry.file_name().to_string_lossy()),
                    sha256_hex(&bytes),
                );
            }
        }
        tree
    }
}

fn artefact_bytes(name: &str, version: &str) -> Vec<u8> {
    format!("{name} of BunkerOS {version}\n")
        .bytes()
        .cycle()
        .take(10_000 + name.len() * 100)
        .collect()
}

async fn streamed(update: &VerifiedUpdate, name: &str) -> Vec<u8> {
    let mut sink = Vec::new();
    update.stream_target(name, &mut sink).await.unwrap();
    sink
}

#[tokio::test]
async fn releases_accumulate_in_one_repository_and_verify() {
    let fixture = Fixture::new();
    let printed = fixture.publish("0.1.0");
    assert!(printed.contains("published image 0.1.0"), "{printed}");
    assert!(printed.contains("metadata version  1"), "{printed}");

    let first = fixture.verify(&fixture.state("a"), "0.0.9").await.unwrap();
    assert_eq!(first.facts().image_version.to_string(), "0.1.0");
    assert_eq!(first.facts().profile, PROFILE);
    assert_eq!(
        first.facts().roothash,
        sha256_hex("root of 0.1.0".as_bytes())
    );
    let mut names = first.target_names();
    names.sort();
    assert_eq!(
        names,
        [
            "bunkeros.uki.efi",
            "pcr11.expected",
            "pcr11.json",
            "pcr11.policy.json",
            "root.squashfs",
            "root.verity"
        ]
    );
    assert_eq!(
        streamed(&first, "root.verity").await,
        artefact_bytes("root.verity", "0.1.0")
    );
    let after_first = fixture.tree();

    let printed = fixture.publish("0.1.1");
    assert!(printed.contains("metadata version  2"), "{printed}");
    let after_second = fixture.tree();
    for (path, digest) in &after_first {
        if path != "metadata/timestamp.json" {
            assert_eq!(
                after_second.get(path),
                Some(digest),
                "{path} of the first release is kept as it was"
            );
        }
    }
    assert!(after_second.contains_key("metadata/2.targets.json"));
    assert_eq!(
        after_second.len(),
        after_first.len() + 2 + 6,
        "the second release adds its targets and snapshot metadata and six artefacts"
    );

    // An appliance on 0.1.0 (which saw the first release) is offered 0.1.1.
    let state = fixture.state("b");
    fixture.verify(&state, "0.0.9").await.unwrap();
    let second = fixture.verify(&state, "0.1.0").await.unwrap();
    assert_eq!(second.facts().image_version.to_string(), "0.1.1");
    assert_eq!(
        streamed(&second, "root.squashfs").await,
        artefact_bytes("root.squashfs", "0.1.1")
    );
    assert_eq!(second.versions().timestamp, 2);

    // The same check from the command line, before a repository ships.
    let verify_args = |running: &'static str| {
        vec![
            "verify-repo",
            "--root",
            text(&fixture.root),
            "--repo",
            text(&fixture.repo),
            "--profile",
            PROFILE,
            "--running",
            running,
        ]
    };
    let printed = succeeds(&verify_args("0.1.0"));
    assert!(printed.contains("image 0.1.1 for qemu-x86_64"), "{printed}");
    assert!(
        printed.contains("metadata: root 1, targets 2, snapshot 2, timestamp 2"),
        "{printed}"
    );
    assert!(printed.contains("root.squashfs (11300 bytes)"), "{printed}");
    let error = refused(&verify_args("0.1.1"));
    assert!(
        error.contains("not newer than the running 0.1.1"),
        "{error}"
    );
}

#[tokio::test]
async fn an_older_version_or_another_root_is_refused() {
    let fixture = Fixture::new();
    fixture.publish("0.1.1");
    let before = fixture.tree();
    for version in ["0.1.1", "0.1.0"] {
        let image = fixture.image(version);
        let error = refused(&fixture.publish_args(&image));
        assert!(
            error.contains(&format!(
                "image {version} is not newer than 0.1.1, the newest release already there"
            )),
            "{error}"
        );
        assert_eq!(fixture.tree(), before, "nothing written");
    }

    // Another key set's root: its releases would not verify against the images' root.
    let other = Fixture::new();
    let image = fixture.image("0.2.0");
    let mut args = fixture.publish_args(&image);
    args[4] = text(&other.keys);
    args[6] = text(&other.root);
    let error = refused(&args);
    assert!(
        error.contains("the repository was published under another root"),
        "{error}"
    );
    assert_eq!(fixture.tree(), before, "nothing written");

    let update = fixture.verify(&fixture.state("a"), "0.1.0").await.unwrap();
    assert_eq!(update.facts().image_version.to_string(), "0.1.1");
}

#[tokio::test]
async fn a_corrupt_or_incomplete_image_build_is_refused_with_nothing_written() {
    let fixture = Fixture::new();

    let image = fixture.image("0.1.0");
    let mut verity = std::fs::read(image.join("root.verity")).unwrap();
    verity[100] ^= 1;
    std::fs::write(image.join("root.verity"), verity).unwrap();
    let error = refused(&fixture.publish_args(&image));
    assert!(
        error.contains("root.verity has SHA-256") && error.contains("but SHA256SUMS says"),
        "{error}"
    );
    assert!(!fixture.repo.exists(), "no repository was created");

    fixture.publish("0.1.0");
    let before = fixture.tree();
    let image = fixture.image("0.2.0");
    std::fs::remove_file(image.join("pcr11.policy.json")).unwrap();
    let error = refused(&fixture.publish_args(&image));
    assert!(
        error.contains("the artefact pcr11.policy.json is missing"),
        "{error}"
    );

    let image = fixture.image("0.3.0");
    std::fs::write(image.join("roothash"), format!("{}\n", "0".repeat(64))).unwrap();
    let error = refused(&fixture.publish_args(&image));
    assert!(
        error.contains("the roothash file says") && error.contains("but build-info says"),
        "{error}"
    );
    assert_eq!(fixture.tree(), before, "nothing written");
    let leftovers: Vec<_> = std::fs::read_dir(&fixture.repo)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name != "metadata" && name != "targets")
        .collect();
    assert!(leftovers.is_empty(), "no staging left: {leftovers:?}");
    let update = fixture.verify(&fixture.state("a"), "0.0.9").await.unwrap();
    assert_eq!(update.facts().image_version.to_string(), "0.1.0");
}

#[tokio::test]
async fn refresh_timestamp_keeps_an_unchanged_repository_current() {
    let fixture = Fixture::new();
    let image = fixture.image("0.1.0");
    let mut args = fixture.publish_args(&image);
    args.extend(["--timestamp-days", "1"]);
    succeeds(&args);
    let state = fixture.state("a");
    fixture.verify(&state, "0.0.9").await.unwrap();
    let before = fixture.tree();
    let timestamp = |fixture: &Fixture| -> serde_json::Value {
        let bytes = std::fs::read(fixture.repo.join("metadata/timestamp.json")).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let old = timestamp(&fixture);

    let printed = succeeds(&[
        "refresh-timestamp",
        "--keys",
        text(&fixture.keys),
        "--repo",
        text(&fixture.repo),
        "--days",
        "30",
    ]);
    assert!(printed.contains("timestamp version 1 -> 2"), "{printed}");
    let new = timestamp(&fixture);
    assert_eq!(new["signed"]["version"], 2);
    assert_eq!(
        new["signed"]["meta"], old["signed"]["meta"],
        "the same snapshot"
    );
    let expires = |value: &serde_json::Value| -> jiff::Timestamp {
        value["signed"]["expires"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let in_29_days = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 29))
        .unwrap();
    assert!(expires(&old) < in_29_days && expires(&new) > in_29_days);
    let after = fixture.tree();
    assert_eq!(after.len(), before.len(), "only timestamp.json changed");
    for (path, digest) in &before {
        assert_eq!(
            after.get(path) == Some(digest),
            path != "metadata/timestamp.json",
            "{path}"
        );
    }

    // The appliance that saw version 1 takes version 2; so does a new one.
    let update = fixture.verify(&state, "0.0.9").await.unwrap();
    assert_eq!(update.versions().timestamp, 2);
    let update = fixture.verify(&fixture.state("b"), "0.0.9").await.unwrap();
    assert_eq!(update.facts().image_version.to_string(), "0.1.0");

    // A later release still publishes above the refreshed timestamp.
    let printed = fixture.publish("0.1.1");
    assert!(printed.contains("metadata version  3"), "{printed}");
    let update = fixture.verify(&state, "0.1.0").await.unwrap();
    assert_eq!(update.versions().timestamp, 3);
}

#[test]
fn tuf_keys_are_private_and_never_overwritten() {
    let dir = TempDir::new().unwrap();
    let keys = dir.path().join("tuf");
    succeeds(&["tuf-keys", "--dir", text(&keys)]);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&keys), 0o700);
    let mut files: Vec<_> = std::fs::read_dir(&keys)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<_> = files
        .iter()
        .map(|path| path.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "keys.toml",
            "root-1.pk8",
            "root-2.pk8",
            "snapshot.pk8",
            "targets.pk8",
            "timestamp.pk8"
        ]
    );
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    let listing = std::fs::read_to_string(keys.join("keys.toml")).unwrap();
    assert!(
        listing.contains("[root]\nthreshold = 2\nkeys = [\"root-1.pk8\", \"root-2.pk8\"]"),
        "{listing}"
    );
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();

    let error = refused(&["tuf-keys", "--dir", text(&keys)]);
    assert!(
        error.contains("existing keys are never overwritten"),
        "{error}"
    );
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(before, after);
    let siblings = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(siblings, 1, "no staging directory left beside the keys");
}

#[test]
fn the_root_threshold_is_checked_and_a_root_is_never_replaced() {
    let fixture = Fixture::new();
    let printed = succeeds(&["check-tuf-root", "--root", text(&fixture.root)]);
    assert!(
        printed.contains("root 2 of 2, targets 1 of 1, snapshot 1 of 1, timestamp 1 of 1"),
        "{printed}"
    );
    let error = refused(&[
        "tuf-root",
        "--keys",
        text(&fixture.keys),
        "--out",
        text(&fixture.root),
    ]);
    assert!(error.contains("it exists already"), "{error}");

    // One of the two root signatures altered: below the threshold of 2.
    let mut root: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fixture.root).unwrap()).unwrap();
    let sig = root["signatures"][1]["sig"].as_str().unwrap().to_owned();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    root["signatures"][1]["sig"] = format!("{flipped}{}", &sig[1..]).into();
    let forged = fixture.dir.path().join("forged-root.json");
    std::fs::write(&forged, serde_json::to_vec(&root).unwrap()).unwrap();
    let error = refused(&["check-tuf-root", "--root", text(&forged)]);
    assert!(
        error.contains("is not signed by enough of its own root keys"),
        "{error}"
    );
    let image = fixture.image("0.1.0");
    let mut args = fixture.publish_args(&image);
    args[6] = text(&forged);
    let error = refused(&args);
    assert!(error.contains("not signed by enough"), "{error}");
    assert!(!fixture.repo.exists());
}
