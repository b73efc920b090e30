//! The real `hubd` binary: `--check-config` prints what it read (status 0) or every problem as
//! FILE:LINE:COLUMN: sentence (status 78). The daemon itself is tested in `daemon.rs`.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

/// Runs hubd with `args`, the image and site defaults looked up under an empty scratch root.
fn hubd(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hubd"))
        .args(args)
        .env("BUNKEROS_ROOT", root)
        .output()
        .expect("hubd runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_config_prints_the_hub_and_its_peers() {
    let dir = TempDir::new().unwrap();
    let peers = dir.path().join("peers");
    fs::create_dir(&peers).unwrap();
    let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let root = params.self_signed(&root_key).unwrap();
    fs::write(peers.join("paris.pem"), root.pem()).unwrap();
    fs::write(
        peers.join("paris-1.toml"),
        "hub = \"paris-1\"\njurisdiction = \"FR\"\nroot = \"paris.pem\"\n\
         [[link]]\nid = 1\naddress = \"198.51.100.7:7400\"\n",
    )
    .unwrap();
    let config = dir.path().join("hubd.toml");
    fs::write(
        &config,
        format!(
            "[hub]\nid = \"madrid-1\"\njurisdiction = \"ES\"\npeers_dir = \"{}\"\n\
             [path_policy.no-france]\nexcluded_jurisdictions = [\"FR\"]\n",
            peers.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let out = hubd(dir.path(), &["--config", config, "--check-config"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("config OK: read {config}"));
    assert_eq!(
        lines[1],
        "hub madrid-1 (ES, Spain); links accepted on [::]:7400; metrics on 127.0.0.1:9102"
    );
    assert_eq!(lines[3], format!("peers: 1 in {}", peers.display()));
    assert!(
        lines[4].starts_with("  peer paris-1 (FR, France): link #1 198.51.100.7:7400; root key ")
    );
    assert_eq!(lines[5], "path policy no-france: excluding FR");
}

#[test]
fn a_bad_configuration_exits_78_with_the_line() {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("hubd.toml");
    fs::write(&config, "[hub]\nid = \"madrid-1\"\njurisdiction = \"XX\"\n").unwrap();
    let out = hubd(
        dir.path(),
        &["--config", config.to_str().unwrap(), "--check-config"],
    );
    assert_eq!(out.status.code(), Some(78));
    assert_eq!(
        text(&out.stderr).trim_end(),
        format!(
            "{}:3:16: `XX` is not an assigned ISO 3166-1 alpha-2 code",
            config.display()
        )
    );
    let missing = hubd(
        dir.path(),
        &["--config", "/nonexistent/hubd.toml", "--check-config"],
    );
    assert_eq!(missing.status.code(), Some(78));
    assert_eq!(
        text(&missing.stderr).trim_end(),
        "/nonexistent/hubd.toml: the file does not exist"
    );
}

#[test]
fn version_and_help() {
    let dir = TempDir::new().unwrap();
    let help = hubd(dir.path(), &["--help"]);
    assert!(help.status.success());
    assert!(text(&help.stdout).contains("--check-config"));
    let version = hubd(dir.path(), &["--version"]);
    assert!(version.status.success());
    assert!(text(&version.stdout).starts_with("hubd "));
}
