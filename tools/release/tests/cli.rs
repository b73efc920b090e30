//! The real `bunkeros-release` binary, as the image build runs it: keys made by openssl, output
//! read back with trustd's own loader, checked by openssl, and used on a real TPM (swtpm).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use appliance::state::StateDir;
use appliance::testtpm::Swtpm;
use p256::ecdsa::VerifyingKey;
use tempfile::TempDir;
use trustd::ca_key::CaKey as _;
use trustd::enrolment::{POLICY_REF, read_release_key};
use trustd::tpm::{PolicyMode, SignedPcrPolicy, TpmCaKey, TpmConnection, authorized_policy_digest};

const PCR_11: &str = "c75b5dbceb51d6a6b64427c10e796a9b5086d4b27302db052432065890a5d5b2";
const PCR_4: &str = "4444444444444444444444444444444444444444444444444444444444444444";

fn release_tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bunkeros-release"))
        .args(args)
        .output()
        .expect("bunkeros-release runs")
}

fn openssl(args: &[&str]) -> Output {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs (Debian package openssl)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A release key exactly as the build makes one.
fn genpkey(dir: &Path, name: &str, curve: &str) -> PathBuf {
    let path = dir.join(name);
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        &format!("ec_paramgen_curve:{curve}"),
        "-out",
        path.to_str().unwrap(),
    ]);
    path
}

fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn public_key(key: &Path) -> VerifyingKey {
    let output = release_tool(&["public-key", "--key", text(key)]);
    assert!(output.status.success(), "{output:?}");
    let dir = TempDir::new().unwrap();
    let pem = dir.path().join("release.pub.pem");
    std::fs::write(&pem, &output.stdout).unwrap();
    read_release_key(&pem).expect("trustd reads the public key the tool prints")
}

/// Runs `sign-pcr-policy` and fails the test unless it succeeded.
fn sign(key: &Path, pcrs: &[String], out: &Path) {
    let mut args = vec!["sign-pcr-policy", "--key", text(key), "--out", text(out)];
    for pcr in pcrs {
        args.extend(["--pcr", pcr]);
    }
    let output = release_tool(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("signed by the release key"), "{said}");
}

#[test]
fn the_public_key_is_what_openssl_and_trustd_read() {
    let dir = TempDir::new().unwrap();
    let key = genpkey(dir.path(), "release-key.pem", "P-256");
    let ours = release_tool(&["public-key", "--key", text(&key)]);
    assert!(ours.status.success(), "{ours:?}");
    let theirs = openssl(&["pkey", "-in", text(&key), "-pubout"]);
    assert_eq!(
        String::from_utf8(ours.stdout).unwrap(),
        String::from_utf8(theirs.stdout).unwrap()
    );
    public_key(&key);
}

#[test]
fn a_signed_policy_loads_in_trustd_and_verifies_with_the_public_key_and_openssl() {
    let dir = TempDir::new().unwrap();
    let key = genpkey(dir.path(), "release-key.pem", "P-256");
    let out = dir.path().join("pcr11.policy.json");
    sign(&key, &[format!("11={PCR_11}")], &out);

    let signed = SignedPcrPolicy::load(&out).expect("trustd loads the tool's output");
    assert_eq!(signed.selection().unwrap(), vec![11]);
    assert_eq!(hex::encode(signed.pcr_values[0].sha256), PCR_11);
    let release = public_key(&key);
    signed.verify(&release, POLICY_REF).unwrap();
    let other = genpkey(dir.path(), "other.pem", "P-256");
    assert!(signed.verify(&public_key(&other), POLICY_REF).is_err());

    // The signature is plain ECDSA-SHA256 over approvedPolicy || policyRef: openssl agrees.
    let approved = authorized_policy_digest(&[11], &signed.pcr_values).unwrap();
    let message = dir.path().join("message");
    std::fs::write(&message, [&approved[..], POLICY_REF].concat()).unwrap();
    let signature = dir.path().join("signature.der");
    std::fs::write(&signature, &signed.signature).unwrap();
    let public = dir.path().join("release.pub.pem");
    std::fs::write(
        &public,
        openssl(&["pkey", "-in", text(&key), "-pubout"]).stdout,
    )
    .unwrap();
    let verified = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        text(&public),
        "-signature",
        text(&signature),
        text(&message),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&verified.stdout).trim(),
        "Verified OK"
    );
}

#[test]
fn two_builds_with_the_same_key_write_the_same_bytes() {
    let dir = TempDir::new().unwrap();
    let key = genpkey(dir.path(), "release-key.pem", "P-256");
    let first = dir.path().join("first.json");
    let second = dir.path().join("second.json");
    sign(
        &key,
        &[format!("11={PCR_11}"), format!("4={PCR_4}")],
        &first,
    );
    // Another run, the PCRs given in another order: RFC 6979 and sorted values, same file.
    sign(
        &key,
        &[format!("4={PCR_4}"), format!("11={PCR_11}")],
        &second,
    );
    let first = std::fs::read(&first).unwrap();
    assert_eq!(first, std::fs::read(&second).unwrap());
    let parsed = SignedPcrPolicy::from_json(&first).unwrap();
    assert_eq!(parsed.selection().unwrap(), vec![4, 11]);

    // Another key or another value: another signature.
    let other_key = genpkey(dir.path(), "other.pem", "P-256");
    let third = dir.path().join("third.json");
    sign(
        &other_key,
        &[format!("11={PCR_11}"), format!("4={PCR_4}")],
        &third,
    );
    assert_ne!(first, std::fs::read(&third).unwrap());
    let fourth = dir.path().join("fourth.json");
    sign(
        &key,
        &[format!("11={PCR_4}"), format!("4={PCR_4}")],
        &fourth,
    );
    assert_ne!(first, std::fs::read(&fourth).unwrap());
}

/// Runs `sign-pcr-policy` expecting a refusal: non-zero exit, the reason on stderr, no file.
fn refused(key: &Path, pcr: &str, out: &Path) -> String {
    let output = release_tool(&[
        "sign-pcr-policy",
        "--key",
        text(key),
        "--pcr",
        pcr,
        "--out",
        text(out),
    ]);
    assert!(!output.status.success(), "{output:?}");
    assert!(!out.exists(), "nothing may be written on failure");
    assert!(output.stdout.is_empty(), "{output:?}");
    String::from_utf8(output.stderr).unwrap()
}

#[test]
fn bad_keys_and_values_are_refused_with_a_reason_and_nothing_written() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("policy.json");
    let good_pcr = format!("11={PCR_11}");

    let missing = dir.path().join("missing.pem");
    let err = refused(&missing, &good_pcr, &out);
    assert!(err.contains("cannot use the release key"), "{err}");
    assert!(err.contains("missing.pem"), "{err}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key\n").unwrap();
    let err = refused(&garbage, &good_pcr, &out);
    assert!(err.contains("not a PEM file"), "{err}");

    let public = dir.path().join("public.pem");
    let key = genpkey(dir.path(), "release-key.pem", "P-256");
    std::fs::write(
        &public,
        openssl(&["pkey", "-in", text(&key), "-pubout"]).stdout,
    )
    .unwrap();
    let err = refused(&public, &good_pcr, &out);
    assert!(err.contains("`PUBLIC KEY`"), "{err}");
    assert!(err.contains("PKCS#8"), "{err}");

    let sec1 = dir.path().join("sec1.pem");
    let generated = openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout"]);
    std::fs::write(&sec1, generated.stdout).unwrap();
    let err = refused(&sec1, &good_pcr, &out);
    assert!(err.contains("openssl pkcs8 -topk8"), "{err}");

    let p384 = genpkey(dir.path(), "p384.pem", "P-384");
    let err = refused(&p384, &good_pcr, &out);
    assert!(err.contains("not a P-256 private key"), "{err}");
    let output = release_tool(&["public-key", "--key", text(&p384)]);
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());

    // Bad values: clap refuses the argument (exit 2) with the parser's sentence.
    for (pcr, expected) in [
        (format!("11={}", "zz".repeat(32)), "64 hexadecimal digits"),
        ("11=c75b".to_owned(), "64 hexadecimal digits"),
        (format!("11={PCR_11}00"), "64 hexadecimal digits"),
        (format!("24={PCR_11}"), "PCR 24 does not exist"),
        (PCR_11.to_owned(), "N=HEX"),
    ] {
        let err = refused(&key, &pcr, &out);
        assert!(err.contains(expected), "{pcr}: {err}");
    }
    // The same PCR twice is refused by trustd's policy code.
    let output = release_tool(&[
        "sign-pcr-policy",
        "--key",
        text(&key),
        "--pcr",
        &good_pcr,
        "--pcr",
        &good_pcr,
        "--out",
        text(&out),
    ]);
    assert!(!output.status.success());
    assert!(!out.exists());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("PCR 11 is listed twice"), "{err}");

    // An existing file is replaced only by a complete policy; a failure leaves it alone.
    std::fs::write(&out, "previous").unwrap();
    let output = release_tool(&[
        "sign-pcr-policy",
        "--key",
        text(&garbage),
        "--pcr",
        &good_pcr,
        "--out",
        text(&out),
    ]);
    assert!(!output.status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous");
}

#[test]
fn the_signed_policy_unlocks_a_ca_key_enrolled_as_the_appliance_enrols_it() {
    let tpm = Swtpm::start().expect("swtpm starts (Debian package swtpm)");
    let connection = Arc::new(TpmConnection::open_tcti(&tpm.tcti()).unwrap());
    let dir = TempDir::new().unwrap();
    let key = genpkey(dir.path(), "release-key.pem", "P-256");

    // PCR 11 release-signed, PCR 7 fixed at enrolment.
    let fixed = connection.read_pcrs(&[7]).unwrap();
    let policy = PolicyMode::authorized(&public_key(&key), POLICY_REF, &[11], fixed).unwrap();
    let state = StateDir::new(dir.path().join("trustd")).unwrap();
    let ca = TpmCaKey::create(Arc::clone(&connection), &state, policy).unwrap();

    // The build signs the PCR 11 this boot has.
    let pcr_11 = connection.read_pcrs(&[11]).unwrap()[0];
    let out = dir.path().join("pcr11.policy.json");
    sign(&key, &[format!("11={}", hex::encode(pcr_11.sha256))], &out);
    ca.install_signed_policy(&SignedPcrPolicy::load(&out).unwrap())
        .unwrap();
    let signature = ca.sign(b"issued under a release-signed policy").unwrap();
    assert!(!signature.is_empty());
    assert!(ca.policy_satisfied().unwrap());

    // A policy for another PCR 11 value does not unlock it.
    sign(&key, &[format!("11={PCR_11}")], &out);
    ca.install_signed_policy(&SignedPcrPolicy::load(&out).unwrap())
        .unwrap();
    assert!(ca.sign(b"not this image").is_err());
}
