use std::path::{Path, PathBuf};

use super::*;

/// Options whose trust anchor is a real CA certificate (so `https://` sources can be built).
fn options_with_ca(dir: &Path) -> MirrorOptions {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&key).unwrap();
    let path = dir.join("site-ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    MirrorOptions::new(vec![path])
}

fn no_mirror() -> MirrorOptions {
    MirrorOptions::new(Vec::new())
}

#[test]
fn directories_are_named_by_absolute_path_with_or_without_dir_prefix() {
    for text in [
        "/srv/releases/0.2.0",
        "dir:/srv/releases/0.2.0",
        "  /srv/releases/0.2.0\n",
    ] {
        let source = ReleaseSource::parse(text, &no_mirror()).unwrap();
        let ReleaseSource::Directory(path) = source else {
            panic!("{text:?} is not a directory source: {source}");
        };
        assert_eq!(path, PathBuf::from("/srv/releases/0.2.0"));
    }
}

#[test]
fn relative_paths_are_refused_with_a_sentence() {
    for text in ["dir:releases", "./releases", "releases/0.2.0"] {
        let error = ReleaseSource::parse(text, &no_mirror()).unwrap_err();
        assert!(
            matches!(error, SourceError::RelativePath(_)),
            "{text:?}: {error}"
        );
        assert!(error.to_string().contains("absolute path"), "{error}");
    }
}

#[test]
fn usb_names_the_update_medium_mount_point() {
    let source = ReleaseSource::parse("USB", &no_mirror()).unwrap();
    let ReleaseSource::Removable(path) = source else {
        panic!("usb is not the removable medium: {source}");
    };
    assert_eq!(path, PathBuf::from(UPDATE_MEDIUM_MOUNT));
}

#[test]
fn plain_http_is_refused_because_transport_security_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["http://mirror.site.example/bunkeros/", "HTTP://mirror/"] {
        let error = ReleaseSource::parse(text, &options_with_ca(dir.path())).unwrap_err();
        assert!(matches!(error, SourceError::PlainHttp(_)), "{error}");
        assert!(error.to_string().contains("transport security"), "{error}");
    }
}

#[test]
fn other_words_and_schemes_are_refused_naming_the_accepted_forms() {
    for text in ["", "stick", "ftp://mirror/releases", "file:///srv/releases"] {
        let error = ReleaseSource::parse(text, &no_mirror()).unwrap_err();
        assert!(matches!(error, SourceError::Unrecognised(_)), "{error}");
        assert!(error.to_string().contains("https:// mirror URL"), "{error}");
    }
}

#[test]
fn an_https_mirror_gets_a_base_url_ending_in_a_slash() {
    let dir = tempfile::tempdir().unwrap();
    let source = ReleaseSource::parse(
        "https://mirror.site.example/bunkeros",
        &options_with_ca(dir.path()),
    )
    .unwrap();
    let ReleaseSource::Mirror(mirror) = source else {
        panic!("not a mirror: {source}");
    };
    assert_eq!(
        mirror.url().as_str(),
        "https://mirror.site.example/bunkeros/"
    );
    assert_eq!(
        mirror.metadata_url().as_str(),
        "https://mirror.site.example/bunkeros/metadata/"
    );
    assert_eq!(
        mirror.targets_url().as_str(),
        "https://mirror.site.example/bunkeros/targets/"
    );
}

#[test]
fn a_mirror_needs_a_trust_anchor_that_holds_a_certificate() {
    let url = "https://mirror.site.example/bunkeros/";
    let error = ReleaseSource::parse(url, &no_mirror()).unwrap_err();
    assert!(matches!(error, SourceError::NoMirrorTrust), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let missing = MirrorOptions::new(vec![dir.path().join("absent.pem")]);
    let error = ReleaseSource::parse(url, &missing).unwrap_err();
    assert!(matches!(error, SourceError::MirrorTrust { .. }), "{error}");

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "just words\n").unwrap();
    let error = ReleaseSource::parse(url, &MirrorOptions::new(vec![not_pem])).unwrap_err();
    assert!(
        matches!(error, SourceError::MirrorTrust { ref detail, .. } if detail.contains("no PEM certificate")),
        "{error}"
    );
}

#[test]
fn mirror_urls_with_credentials_query_or_fragment_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = options_with_ca(dir.path());
    for text in [
        "https://user:secret@mirror/bunkeros/",
        "https://mirror/bunkeros/?channel=beta",
        "https://mirror/bunkeros/#latest",
    ] {
        let error = ReleaseSource::parse(text, &options).unwrap_err();
        assert!(
            matches!(error, SourceError::BadMirrorUrl { .. }),
            "{text:?}: {error}"
        );
    }
}

#[test]
fn mount_options_find_the_visible_mount_and_undo_escapes() {
    let mountinfo = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 8:17 / /run/bunkeros/update-medium rw,nosuid shared:5 - vfat /dev/sdb1 rw
41 40 8:17 / /run/bunkeros/update-medium ro,nosuid,nodev,noexec shared:6 - vfat /dev/sdb1 ro
42 22 8:33 / /media/with\\040space ro shared:7 - vfat /dev/sdc1 ro
";
    assert_eq!(
        mount_options(mountinfo, Path::new("/run/bunkeros/update-medium")),
        Some("ro,nosuid,nodev,noexec")
    );
    assert_eq!(
        mount_options(mountinfo, Path::new("/media/with space")),
        Some("ro")
    );
    assert_eq!(mount_options(mountinfo, Path::new("/run/bunkeros")), None);
    assert_eq!(unescape_mount_field("a\\134b\\777"), "a\\b\\777");
}

#[test]
fn an_absent_update_medium_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let error = check_medium(dir.path()).unwrap_err();
    assert!(matches!(error, SourceError::NotMounted { .. }), "{error}");
    assert!(error.to_string().contains("BUNKERUPD"), "{error}");
}

#[test]
fn a_mounted_file_system_without_a_release_is_a_clear_error() {
    // `/` is a mount point in every mount namespace, and holds no `metadata/`.
    let error = check_medium(Path::new("/")).unwrap_err();
    assert!(matches!(error, SourceError::NoRelease { .. }), "{error}");
    assert!(error.to_string().contains("metadata/"), "{error}");
}
