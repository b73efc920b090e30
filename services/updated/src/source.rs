//! Where a release comes from: a directory, the update medium (a USB stick), or an HTTPS mirror.
//!
//! Bunkers may be air-gapped, so the offline sources come first: a release repository (what
//! `bunkeros-release` writes: `metadata/` and `targets/`) copied to a local directory, or to the
//! top level of a removable medium labelled `BUNKERUPD`, which systemd mounts read-only at
//! [`UPDATE_MEDIUM_MOUNT`]. A mirror serves the same layout over HTTPS (`<url>/metadata/`,
//! `<url>/targets/`). Every source is read through tough, so verification and streaming are the
//! same whichever the bytes came from.
//!
//! The operator names a source with one string ([`ReleaseSource::parse`]): `dir:/path` or an
//! absolute path, `usb`, or `https://…`. `http://` is refused: the metadata is signed, so a
//! tampered release would be refused anyway, but an operator who names a mirror expects the
//! transfer to be private and the server to be the one named, and plain HTTP gives neither.

use std::fmt;
use std::path::{Path, PathBuf};

use url::Url;

use crate::mirror::{HttpsTransport, MirrorFailure, MirrorOptions};

/// The file system label of the update medium.
pub const UPDATE_MEDIUM_LABEL: &str = "BUNKERUPD";
/// Where the image's mount unit mounts the update medium (read-only).
pub const UPDATE_MEDIUM_MOUNT: &str = "/run/bunkeros/update-medium";
/// The mount table of this process's mount namespace.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// What the operator may type, for error messages.
const SOURCE_FORMS: &str = "an absolute directory path (or dir:/path), `usb` for the update medium labelled BUNKERUPD, or an https:// mirror URL";

/// Where to read a release repository from.
#[derive(Debug, Clone)]
pub enum ReleaseSource {
    /// A local directory holding `metadata/` and `targets/`.
    Directory(PathBuf),
    /// The mount point of the update medium, which holds `metadata/` and `targets/` at its top.
    Removable(PathBuf),
    /// An HTTPS mirror.
    Mirror(Mirror),
}

/// An HTTPS mirror: the repository's base URL and the transport that trusts its CA.
#[derive(Debug, Clone)]
pub struct Mirror {
    url: Url,
    transport: HttpsTransport,
}

impl Mirror {
    /// A mirror at `url` (https only), trusting what `options` names.
    pub fn new(url: &str, options: &MirrorOptions) -> Result<Mirror, SourceError> {
        let url = mirror_url(url)?;
        let transport = HttpsTransport::new(options.clone())?;
        Ok(Mirror { url, transport })
    }

    /// The repository's base URL (ends with `/`).
    pub fn url(&self) -> &Url {
        &self.url
    }

    pub(crate) fn metadata_url(&self) -> Url {
        self.url
            .join("metadata/")
            .expect("a relative path joins any https URL")
    }

    pub(crate) fn targets_url(&self) -> Url {
        self.url
            .join("targets/")
            .expect("a relative path joins any https URL")
    }

    pub(crate) fn transport(&self) -> HttpsTransport {
        self.transport.clone()
    }
}

/// Why a source cannot be used. Nothing has been read or changed when one of these is returned.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0:?} is not a release source: give {SOURCE_FORMS}")]
    Unrecognised(String),
    #[error("{0:?} is a relative path: give the release directory as an absolute path")]
    RelativePath(String),
    #[error(
        "{0:?} is plain HTTP, which is refused: the release metadata is signed, but an operator naming a mirror expects transport security too; use https://"
    )]
    PlainHttp(String),
    #[error("the mirror URL {url:?} is not usable: {reason}")]
    BadMirrorUrl { url: String, reason: &'static str },
    #[error(
        "no CA is configured to trust an HTTPS mirror: set the mirror's trust anchors (the site CA's root certificate)"
    )]
    NoMirrorTrust,
    #[error("the mirror trust anchor {path} is not usable: {detail}")]
    MirrorTrust { path: PathBuf, detail: String },
    #[error(
        "no update medium is mounted at {path}: insert the USB stick labelled {UPDATE_MEDIUM_LABEL} (systemd mounts it there read-only)"
    )]
    NotMounted { path: PathBuf },
    #[error("the mount table {MOUNTINFO} cannot be read: {detail}")]
    MountTable { detail: String },
    #[error(
        "{path} holds no release: there is no readable metadata/ directory ({detail}); copy the directory bunkeros-release wrote (metadata/ and targets/) there"
    )]
    NoRelease { path: PathBuf, detail: String },
    #[error("fetching {url} from the mirror failed after {tries} tries: {failure}")]
    Mirror {
        url: String,
        tries: u32,
        failure: MirrorFailure,
    },
}

impl ReleaseSource {
    /// Parses what the operator typed: `dir:/path` or `/path`, `usb`, or `https://…`.
    /// `mirror` says whom an HTTPS mirror must be vouched for by; its CA files are read now, so
    /// a bad anchor is reported when the source is named.
    pub fn parse(text: &str, mirror: &MirrorOptions) -> Result<ReleaseSource, SourceError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("usb") {
            return Ok(ReleaseSource::Removable(PathBuf::from(UPDATE_MEDIUM_MOUNT)));
        }
        if let Some(path) = text.strip_prefix("dir:") {
            return absolute_directory(path);
        }
        if text.starts_with('/') {
            return absolute_directory(text);
        }
        let scheme = text.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some(scheme) if scheme.eq_ignore_ascii_case("https") => {
                Ok(ReleaseSource::Mirror(Mirror::new(text, mirror)?))
            }
            Some(scheme) if scheme.eq_ignore_ascii_case("http") => {
                Err(SourceError::PlainHttp(text.to_owned()))
            }
            Some(_) => Err(SourceError::Unrecognised(text.to_owned())),
            None if text.contains('/') || text.starts_with('.') => {
                Err(SourceError::RelativePath(text.to_owned()))
            }
            None => Err(SourceError::Unrecognised(text.to_owned())),
        }
    }
}

/// Checks the release directory `path` holds a readable `metadata/` directory.
pub fn check_directory(path: &Path) -> Result<(), SourceError> {
    let metadata = path.join("metadata");
    std::fs::read_dir(&metadata)
        .map(drop)
        .map_err(|e| SourceError::NoRelease {
            path: path.to_owned(),
            detail: format!("{}: {e}", metadata.display()),
        })
}

/// Checks a file system is mounted at `mount_point` (the update medium) and holds a release.
pub fn check_medium(mount_point: &Path) -> Result<(), SourceError> {
    let mountinfo = std::fs::read_to_string(MOUNTINFO).map_err(|e| SourceError::MountTable {
        detail: e.to_string(),
    })?;
    let Some(options) = mount_options(&mountinfo, mount_point) else {
        return Err(SourceError::NotMounted {
            path: mount_point.to_owned(),
        });
    };
    if !options.split(',').any(|option| option == "ro") {
        tracing::warn!(mount_point = %mount_point.display(), options, "the update medium is mounted writable; the image's unit mounts it read-only");
    }
    check_directory(mount_point)
}

impl fmt::Display for ReleaseSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseSource::Directory(path) => write!(f, "directory {}", path.display()),
            ReleaseSource::Removable(path) => write!(f, "update medium at {}", path.display()),
            ReleaseSource::Mirror(mirror) => write!(f, "mirror {}", mirror.url),
        }
    }
}

fn absolute_directory(path: &str) -> Result<ReleaseSource, SourceError> {
    if path.is_empty() {
        return Err(SourceError::Unrecognised(format!("dir:{path}")));
    }
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err(SourceError::RelativePath(path.display().to_string()));
    }
    Ok(ReleaseSource::Directory(path.to_owned()))
}

/// Checks `url` is an https URL a mirror can be reached at, and gives it a trailing `/` so the
/// repository's directories join below it.
fn mirror_url(text: &str) -> Result<Url, SourceError> {
    let bad = |reason| SourceError::BadMirrorUrl {
        url: text.to_owned(),
        reason,
    };
    let mut url = Url::parse(text).map_err(|_| bad("it does not parse as a URL"))?;
    if url.scheme() == "http" {
        return Err(SourceError::PlainHttp(text.to_owned()));
    }
    if url.scheme() != "https" {
        return Err(bad("only https:// mirrors are supported"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("it names no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "it carries credentials, which would end up in logs; a mirror needs none (the release is signed)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(
            "it has a query or fragment; give the repository's base URL",
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// The mount options of the file system mounted at `mount_point` in `mountinfo` (the format of
/// `/proc/self/mountinfo`), or `None` when nothing is mounted there. The last mount on a point
/// is the visible one.
pub fn mount_options<'a>(mountinfo: &'a str, mount_point: &Path) -> Option<&'a str> {
    let wanted = mount_point.to_str()?;
    mountinfo.lines().rev().find_map(|line| {
        let mut fields = line.split(' ');
        let point = fields.nth(4)?;
        let options = fields.next()?;
        (unescape_mount_field(point) == wanted).then_some(options)
    })
}

/// Undoes the kernel's octal escapes in a mountinfo path (`\040` for a space, and so on).
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && (b'0'..=b'3').contains(&d[0]))
            .filter(|d| d[1..].iter().all(|d| (b'0'..=b'7').contains(d)))
            .map(|d| (d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[path = "source_tests.rs"]
mod tests;
