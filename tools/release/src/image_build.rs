//! An image build's output directory (image/build.sh `--out`), as a release is made from it.
//!
//! The release facts come from `build-info` (`version`, `profile`, `roothash`); before anything
//! is published they are checked against the files themselves: `roothash` must say what
//! build-info says, `pcr11.expected` what its `pcr11` line says, and every artefact that
//! `SHA256SUMS` lists must still have that digest. A half-copied or altered build is refused
//! here, not discovered on an appliance.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use updated::{ImageVersion, ReleaseFacts, is_roothash};

use crate::ReleaseError;

/// The files of an image build that make up a release, in the order they are listed.
pub const RELEASE_ARTEFACTS: [&str; 6] = [
    "root.squashfs",
    "root.verity",
    "bunkeros.uki.efi",
    "pcr11.expected",
    "pcr11.json",
    "pcr11.policy.json",
];

/// The artefacts `SHA256SUMS` must list: a build whose big files carry no digest is refused.
const SUMMED_ARTEFACTS: [&str; 3] = ["root.squashfs", "root.verity", "bunkeros.uki.efi"];

/// A checked image build.
#[derive(Debug, Clone)]
pub struct ImageBuild {
    pub dir: PathBuf,
    pub facts: ReleaseFacts,
    /// The release artefacts, in [`RELEASE_ARTEFACTS`] order.
    pub artefacts: Vec<PathBuf>,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// Reads and checks the image build in `dir`.
pub fn read(dir: &Path) -> Result<ImageBuild, ReleaseError> {
    let bad = |reason: String| ReleaseError::ImageBuild {
        dir: dir.to_owned(),
        reason,
    };
    let info = read_text(dir, "build-info").map_err(&bad)?;
    let info = parse_build_info(&info);
    let field = |key: &str| {
        info.get(key)
            .cloned()
            .ok_or_else(|| bad(format!("build-info has no {key}= line")))
    };
    let image_version: ImageVersion = field("version")?
        .parse()
        .map_err(|e| bad(format!("build-info's version: {e}")))?;
    let profile = field("profile")?;
    if profile.is_empty() {
        return Err(bad("build-info's profile is empty".to_owned()));
    }
    let roothash = field("roothash")?;
    if !is_roothash(&roothash) {
        return Err(bad(format!(
            "build-info's roothash {roothash:?} is not 64 lowercase hex digits"
        )));
    }
    let file_roothash = read_text(dir, "roothash").map_err(&bad)?;
    if file_roothash.trim() != roothash {
        return Err(bad(format!(
            "the roothash file says {} but build-info says {roothash}",
            file_roothash.trim()
        )));
    }
    if let Some(pcr11) = info.get("pcr11") {
        let expected = read_text(dir, "pcr11.expected").map_err(&bad)?;
        if expected.trim() != pcr11 {
            return Err(bad(format!(
                "pcr11.expected says {} but build-info says {pcr11}",
                expected.trim()
            )));
        }
    }
    check_sums(dir).map_err(&bad)?;
    let mut artefacts = Vec::new();
    let mut bytes = 0;
    for name in RELEASE_ARTEFACTS {
        let path = dir.join(name);
        let meta = std::fs::metadata(&path)
            .map_err(|e| bad(format!("the artefact {name} is missing ({e})")))?;
        if !meta.is_file() {
            return Err(bad(format!("the artefact {name} is not a regular file")));
        }
        bytes += meta.len();
        artefacts.push(path);
    }
    Ok(ImageBuild {
        dir: dir.to_owned(),
        facts: ReleaseFacts {
            image_version,
            profile,
            roothash,
        },
        artefacts,
        bytes,
    })
}

/// `key=value` lines; other lines are ignored (build-info is written by image/build.sh).
fn parse_build_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// Checks every release artefact `SHA256SUMS` lists against its digest, and that the big ones
/// are listed at all.
fn check_sums(dir: &Path) -> Result<(), String> {
    let sums = read_text(dir, "SHA256SUMS")?;
    let mut listed = HashMap::new();
    for line in sums.lines().filter(|line| !line.trim().is_empty()) {
        let (digest, name) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("SHA256SUMS has a malformed line {line:?}"))?;
        // sha256sum marks binary mode with '*' before the name
        let name = name.trim_start().trim_start_matches('*');
        listed.insert(name.to_owned(), digest.to_ascii_lowercase());
    }
    for name in SUMMED_ARTEFACTS {
        if !listed.contains_key(name) {
            return Err(format!("SHA256SUMS does not list {name}"));
        }
    }
    for name in RELEASE_ARTEFACTS {
        let Some(expected) = listed.get(name) else {
            continue;
        };
        let actual = sha256_of(&dir.join(name))
            .map_err(|e| format!("the artefact {name} cannot be read ({e})"))?;
        if &actual != expected {
            return Err(format!(
                "{name} has SHA-256 {actual} but SHA256SUMS says {expected}: it was altered or copied incompletely"
            ));
        }
    }
    Ok(())
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn read_text(dir: &Path, name: &str) -> Result<String, String> {
    std::fs::read_to_string(dir.join(name)).map_err(|e| format!("{name} cannot be read ({e})"))
}
