//! Peering files: one `<peer hub id>.toml` per peer in the peers directory.
//!
//! ```toml
//! hub = "paris-1"                 # the peer's hub id; the file is named after it
//! jurisdiction = "FR"             # ISO 3166-1 alpha-2
//! root = "roots/paris.pem"        # the peer site's root CA (PEM, one certificate), relative
//!                                 # to this file; or root_pem = """-----BEGIN CERTIFICATE-----..."""
//!
//! [[link]]                        # one per cable; the same numbers in the peer's file
//! id = 1
//! address = "198.51.100.7:7400"   # the peer's IP:port on this link
//!
//! [grant]                         # what the peer may use through this hub; nothing by default
//! transit = false
//! prefixes = ["10.20.0.0/16"]
//! services = ["records-db"]
//! ```
//!
//! Each file is read with [`appliance::config::load_file`], so a mistake is reported as
//! `FILE:LINE:COLUMN: sentence` and refuses the whole configuration (exit status 78).

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use appliance::config::{ConfigError, ConfigProblem, Invalid, Origin, load_file};
use appliance::tls::PinnedRoot;
use serde::Deserialize;

use crate::grant::Grant;
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::LinkId;
use crate::peering::{PeerLink, PeeringAgreement, PeeringError, Peers};

/// A peering file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PeerFile {
    hub: HubId,
    jurisdiction: Jurisdiction,
    root: Option<PathBuf>,
    root_pem: Option<String>,
    #[serde(default, rename = "link")]
    links: Vec<LinkEntry>,
    #[serde(default)]
    grant: Grant,
}

/// One `[[link]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkEntry {
    id: LinkId,
    address: SocketAddr,
}

/// Reads every `*.toml` file in `dir` (sorted by name) as a peering agreement of hub `own`.
///
/// A directory that does not exist holds no peers. Every problem in every file is reported.
pub fn load_dir(dir: &Path, own: &HubId) -> Result<Peers, ConfigError> {
    let mut peers = Peers::new(own.clone());
    let paths = match peer_files(dir) {
        Ok(paths) => paths,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(peers),
        Err(source) => {
            return Err(ConfigProblem::Unreadable {
                path: dir.to_path_buf(),
                source,
            }
            .into());
        }
    };
    let mut problems = Vec::new();
    for path in paths {
        match load(&path, own) {
            Ok(agreement) => {
                if let Err(error) = peers.add(agreement) {
                    problems.push(ConfigProblem::Invalid {
                        origin: Origin::File(path.clone()),
                        message: error.to_string(),
                    });
                }
            }
            Err(error) => problems.extend(error_problems(error)),
        }
    }
    if problems.is_empty() {
        Ok(peers)
    } else {
        Err(ConfigError::new(problems))
    }
}

fn error_problems(error: ConfigError) -> Vec<ConfigProblem> {
    // ConfigError exposes its problems by reference only; rebuild them as owned values.
    error
        .problems()
        .iter()
        .map(|problem| match problem {
            ConfigProblem::Missing { path } => ConfigProblem::Missing { path: path.clone() },
            ConfigProblem::Unreadable { path, source } => ConfigProblem::Unreadable {
                path: path.clone(),
                source: io::Error::new(source.kind(), source.to_string()),
            },
            ConfigProblem::NotAFile { path } => ConfigProblem::NotAFile { path: path.clone() },
            ConfigProblem::NotUtf8 { origin, byte } => ConfigProblem::NotUtf8 {
                origin: origin.clone(),
                byte: *byte,
            },
            ConfigProblem::Invalid { origin, message } => ConfigProblem::Invalid {
                origin: origin.clone(),
                message: message.clone(),
            },
            ConfigProblem::Rejected {
                origin,
                key,
                reason,
            } => ConfigProblem::Rejected {
                origin: origin.clone(),
                key: key.clone(),
                reason: reason.clone(),
            },
        })
        .collect()
}

/// The `*.toml` files of `dir`, sorted.
fn peer_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Reads one peering file of hub `own`.
pub fn load(path: &Path, own: &HubId) -> Result<PeeringAgreement, ConfigError> {
    let mut agreement = None;
    load_file(path, |file: &PeerFile| {
        let mut problems = Vec::new();
        check_name(path, file, own, &mut problems);
        let root = pinned_root(path, file, &mut problems);
        if let (Some(root), true) = (root, problems.is_empty()) {
            match agreement_of(file, root) {
                Ok(made) => agreement = Some(made),
                Err(error) => problems.push(invalid_for(error)),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    })?;
    // Accepted means the closure made the agreement; say so rather than panic if it ever did not.
    agreement.ok_or_else(|| {
        ConfigProblem::Invalid {
            origin: Origin::File(path.to_path_buf()),
            message: "the peering file was accepted but made no agreement".into(),
        }
        .into()
    })
}

fn check_name(path: &Path, file: &PeerFile, own: &HubId, problems: &mut Vec<Invalid>) {
    if file.hub == *own {
        problems.push(Invalid::new(
            "hub",
            format!("{own} is this hub; a peering file names another hub"),
        ));
    }
    let stem = path.file_stem().and_then(|stem| stem.to_str());
    if stem != Some(file.hub.as_str()) {
        problems.push(Invalid::new(
            "hub",
            format!(
                "names hub {}, but the file is not {}.toml; name each peering file after its peer",
                file.hub, file.hub
            ),
        ));
    }
}

/// The pinned root from `root` (a PEM file, relative to the peering file) or `root_pem`.
fn pinned_root(path: &Path, file: &PeerFile, problems: &mut Vec<Invalid>) -> Option<PinnedRoot> {
    let (key, pem) = match (&file.root, &file.root_pem) {
        (Some(_), Some(_)) => {
            problems.push(Invalid::new(
                "root_pem",
                "give the peer's root either as a file (`root`) or inline (`root_pem`), not both",
            ));
            return None;
        }
        (None, None) => {
            problems.push(Invalid::new(
                "hub",
                "the peer site's root certificate is missing: set `root` (a PEM file) or `root_pem`",
            ));
            return None;
        }
        (Some(root), None) => {
            let root = path.parent().unwrap_or(Path::new("/")).join(root);
            match fs::read(&root) {
                Ok(pem) => ("root", pem),
                Err(e) => {
                    problems.push(Invalid::new(
                        "root",
                        format!("cannot read {}: {e}", root.display()),
                    ));
                    return None;
                }
            }
        }
        (None, Some(pem)) => ("root_pem", pem.as_bytes().to_vec()),
    };
    match PinnedRoot::from_pem(&pem) {
        Ok(root) => Some(root),
        Err(error) => {
            problems.push(Invalid::new(
                key,
                format!("not a usable root certificate: {error}"),
            ));
            None
        }
    }
}

fn agreement_of(file: &PeerFile, root: PinnedRoot) -> Result<PeeringAgreement, PeeringError> {
    let links = file
        .links
        .iter()
        .map(|entry| PeerLink {
            id: entry.id,
            address: entry.address,
        })
        .collect();
    PeeringAgreement::new(
        file.hub.clone(),
        file.jurisdiction,
        links,
        root,
        file.grant.clone(),
    )
}

/// An agreement's refusal, at the key an operator edits.
fn invalid_for(error: PeeringError) -> Invalid {
    let key = match &error {
        PeeringError::DuplicateLinkId { index, .. } => format!("link[{index}].id"),
        PeeringError::DuplicateAddress { index, .. } => format!("link[{index}].address"),
        PeeringError::Root { .. } => "root".to_owned(),
        PeeringError::NoLinks(_) | PeeringError::OwnHub(_) | PeeringError::DuplicatePeer(_) => {
            "hub".to_owned()
        }
    };
    Invalid::new(key, error.to_string())
}
