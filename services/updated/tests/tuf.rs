//! The TUF core end to end, in temp dirs: a release written with the release keys, verified
//! offline against its root as the appliance does, and every way the issue names of handing
//! the appliance something that is not a genuine, current, newer release.

mod support;

use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tough::schema::RoleType;
use updated::repository::{write_release, write_root};
use updated::{ImageVersion, RootSpec, SeenVersions, UpdateRefused, verify_update};

use support::{
    ARTEFACTS, PROFILE, artefact_bytes, days_from_now, fixture, roothash_of, running, spec,
    target_file, version,
};

fn edit_json(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut value: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

/// Flips the first hex digit of the first signature.
fn flip_signature(value: &mut Value) {
    let sig = value["signatures"][0]["sig"].as_str().unwrap().to_owned();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    value["signatures"][0]["sig"] = Value::String(format!("{flipped}{}", &sig[1..]));
}

async fn stream(update: &updated::VerifiedUpdate, name: &str) -> Result<Vec<u8>, UpdateRefused> {
    let mut sink = Vec::new();
    let written = update.stream_target(name, &mut sink).await?;
    assert_eq!(written, sink.len() as u64);
    Ok(sink)
}

#[tokio::test]
async fn a_genuine_release_verifies_and_its_targets_read_back() {
    let fx = fixture().await;
    let repo = fx.release("r2", spec("0.2.0", 1)).await;
    let state = fx.state("a");
    let update = fx.verify(&repo, &state, "0.1.0").await.unwrap();
    assert_eq!(update.image_version(), ImageVersion::new(0, 2, 0));
    assert_eq!(update.facts().profile, PROFILE);
    assert_eq!(update.facts().roothash, roothash_of("0.2.0"));
    assert_eq!(update.target_names(), ARTEFACTS.map(String::from).to_vec());
    for name in ARTEFACTS {
        let expected = artefact_bytes(name, "0.2.0");
        assert_eq!(update.target_length(name), Some(expected.len() as u64));
        assert_eq!(stream(&update, name).await.unwrap(), expected, "{name}");
    }
    let seen = SeenVersions {
        root: 1,
        targets: 1,
        snapshot: 1,
        timestamp: 1,
    };
    assert_eq!(update.versions(), seen);
    assert_eq!(SeenVersions::load(&state).await.unwrap(), seen);
    assert!(matches!(
        update.stream_target("other.img", &mut Vec::new()).await,
        Err(UpdateRefused::UnknownTarget(_))
    ));
}

#[tokio::test]
async fn tampered_target_bytes_are_refused() {
    let fx = fixture().await;
    let repo = fx.release("r2", spec("0.2.0", 1)).await;
    let file = target_file(&repo, "root.squashfs");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[20_000] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let update = fx.verify(&repo, &fx.state("a"), "0.1.0").await.unwrap();
    let refused = stream(&update, "root.squashfs").await.unwrap_err();
    assert!(
        matches!(refused, UpdateRefused::Tampered { .. }),
        "{refused}"
    );
    // the untouched artefacts still read back
    assert!(stream(&update, "root.verity").await.is_ok());
}

#[tokio::test]
async fn a_truncated_target_is_refused() {
    let fx = fixture().await;
    let repo = fx.release("r2", spec("0.2.0", 1)).await;
    let file = target_file(&repo, "root.verity");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let update = fx.verify(&repo, &fx.state("a"), "0.1.0").await.unwrap();
    let refused = stream(&update, "root.verity").await.unwrap_err();
    assert!(
        matches!(refused, UpdateRefused::Tampered { .. }),
        "{refused}"
    );
}

#[tokio::test]
async fn a_flipped_signature_byte_is_refused() {
    let fx = fixture().await;
    let repo = fx.release("r2", spec("0.2.0", 1)).await;
    edit_json(&repo.join("metadata/timestamp.json"), flip_signature);
    let refused = fx.verify(&repo, &fx.state("a"), "0.1.0").await.unwrap_err();
    assert!(
        matches!(&refused, UpdateRefused::Signatures { role, .. } if role == "timestamp"),
        "{refused}"
    );
}

#[tokio::test]
async fn a_changed_metadata_field_is_refused() {
    let fx = fixture().await;
    // a later expiry written into a signed timestamp: its signature no longer matches
    let repo = fx.release("r2", spec("0.2.0", 1)).await;
    edit_json(&repo.join("metadata/timestamp.json"), |v| {
        v["signed"]["expires"] = Value::String("2099-01-01T00:00:00Z".into());
    });
    let refused = fx.verify(&repo, &fx.state("a"), "0.1.0").await.unwrap_err();
    assert!(
        matches!(refused, UpdateRefused::Signatures { .. }),
        "{refused}"
    );

    // a newer image version written into targets.json: the snapshot's hash of it no longer
    // matches (and its signature would not either)
    let repo = fx.release("r2b", spec("0.2.0", 1)).await;
    edit_json(&repo.join("metadata/1.targets.json"), |v| {
        let targets = v["signed"]["targets"].as_object_mut().unwrap();
        for target in targets.values_mut() {
            target["custom"]["bunkeros_image_version"] = Value::String("9.9.9".into());
        }
    });
    let refused = fx.verify(&repo, &fx.state("b"), "0.1.0").await.unwrap_err();
    assert!(
        matches!(refused, UpdateRefused::Tampered { .. }),
        "{refused}"
    );
}

#[tokio::test]
async fn an_expired_timestamp_is_refused() {
    let fx = fixture().await;
    let mut expired = spec("0.2.0", 1);
    expired.timestamp_expires = Timestamp::now()
        .checked_sub(SignedDuration::from_hours(1))
        .unwrap();
    let repo = fx.release("r2", expired).await;
    let refused = fx.verify(&repo, &fx.state("a"), "0.1.0").await.unwrap_err();
    assert!(
        matches!(
            refused,
            UpdateRefused::Expired {
                role: RoleType::Timestamp
            }
        ),
        "{refused}"
    );
}

#[tokio::test]
async fn a_root_below_its_signature_threshold_is_refused() {
    let fx = fixture().await;
    let repo = fx.release("r2", spec("0.2.0", 1)).await;
    // root needs 2 of 2 signatures; a root.json carrying one is not trusted, even as the anchor
    let mut root: Value = serde_json::from_slice(&fx.trusted_root()).unwrap();
    root["signatures"].as_array_mut().unwrap().pop();
    let one_signature = serde_json::to_vec_pretty(&root).unwrap();
    let refused = verify_update(&one_signature, &repo, &fx.state("a"), &running("0.1.0"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, UpdateRefused::TrustedRoot { .. }),
        "{refused}"
    );
    // the same signature twice still counts once
    let mut root: Value = serde_json::from_slice(&fx.trusted_root()).unwrap();
    let first = root["signatures"][0].clone();
    root["signatures"] = Value::Array(vec![first.clone(), first]);
    let doubled = serde_json::to_vec_pretty(&root).unwrap();
    let refused = verify_update(&doubled, &repo, &fx.state("b"), &running("0.1.0"))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, UpdateRefused::TrustedRoot { .. }),
        "{refused}"
    );
}

#[tokio::test]
async fn an_image_for_another_hardware_profile_is_refused() {
    let fx = fixture().await;
    let mut other = spec("0.2.0", 1);
    other.facts.profile = "pc-x86_64".to_owned();
    let repo = fx.release("r2", other).await;
    let state = fx.state("a");
    let refused = fx.verify(&repo, &state, "0.1.0").await.unwrap_err();
    assert!(
        matches!(&refused, UpdateRefused::WrongProfile { offered, running }
            if offered == "pc-x86_64" && running == PROFILE),
        "{refused}"
    );
    // nothing was recorded as seen for a release this machine cannot take
    assert_eq!(
        SeenVersions::load(&state).await.unwrap(),
        SeenVersions::default()
    );
}

#[tokio::test]
async fn an_image_not_newer_than_the_running_one_is_refused_as_a_downgrade() {
    let fx = fixture().await;
    let repo = fx.release("r2", spec("0.2.0", 1)).await;
    for running in ["0.2.0", "0.3.0", "1.0.0"] {
        let refused = fx
            .verify(&repo, &fx.state(running), running)
            .await
            .unwrap_err();
        assert!(
            matches!(refused, UpdateRefused::Downgrade { offered, .. } if offered == ImageVersion::new(0, 2, 0)),
            "{running}: {refused}"
        );
        // a refused update records nothing as seen
        let seen = SeenVersions::load(&fx.state(running)).await.unwrap();
        assert_eq!(seen, SeenVersions::default());
    }
}

#[tokio::test]
async fn older_metadata_after_newer_was_seen_is_refused_as_a_rollback() {
    let fx = fixture().await;
    let old = fx.release("r2", spec("0.2.0", 1)).await;
    let new = fx.release("r3", spec("0.3.0", 2)).await;
    let state = fx.state("a");
    fx.verify(&new, &state, "0.1.0").await.unwrap();

    // tough's datastore alone refuses the older timestamp (our record removed)
    std::fs::remove_file(state.join("seen-versions.json")).unwrap();
    let refused = fx.verify(&old, &state, "0.1.0").await.unwrap_err();
    assert!(
        matches!(
            refused,
            UpdateRefused::Rollback {
                role: RoleType::Timestamp,
                seen: 2,
                offered: 1
            }
        ),
        "{refused}"
    );

    // our record alone refuses it too (tough's datastore lost)
    SeenVersions {
        root: 1,
        targets: 2,
        snapshot: 2,
        timestamp: 2,
    }
    .store(&state)
    .await
    .unwrap();
    std::fs::remove_dir_all(state.join("tuf")).unwrap();
    let refused = fx.verify(&old, &state, "0.1.0").await.unwrap_err();
    assert!(
        matches!(
            refused,
            UpdateRefused::Rollback {
                seen: 2,
                offered: 1,
                ..
            }
        ),
        "{refused}"
    );

    // and the newer release still verifies with that state
    fx.verify(&new, &state, "0.1.0").await.unwrap();
}

#[tokio::test]
async fn metadata_mixed_from_two_releases_is_refused() {
    let fx = fixture().await;
    let current = fx.release("r3", spec("0.3.0", 2)).await;
    let other = fx.release("r2", spec("0.2.0", 1)).await;
    // targets.json from another release served under the name the current snapshot asks for
    std::fs::copy(
        other.join("metadata/1.targets.json"),
        current.join("metadata/2.targets.json"),
    )
    .unwrap();
    let refused = fx
        .verify(&current, &fx.state("a"), "0.1.0")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, UpdateRefused::Tampered { .. }),
        "{refused}"
    );

    // another release's snapshot under the current timestamp
    let current = fx.release("r3b", spec("0.3.0", 2)).await;
    std::fs::copy(
        other.join("metadata/1.snapshot.json"),
        current.join("metadata/2.snapshot.json"),
    )
    .unwrap();
    let refused = fx
        .verify(&current, &fx.state("b"), "0.1.0")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, UpdateRefused::Tampered { .. }),
        "{refused}"
    );
}

#[tokio::test]
async fn a_malformed_state_file_is_refused_not_ignored() {
    let fx = fixture().await;
    let repo = fx.release("r2", spec("0.2.0", 1)).await;
    let state = fx.state("a");
    std::fs::write(
        state.join("seen-versions.json"),
        b"{\"root\": 1, \"extra\": 2}",
    )
    .unwrap();
    let refused = fx.verify(&repo, &state, "0.1.0").await.unwrap_err();
    assert!(matches!(refused, UpdateRefused::State { .. }), "{refused}");
}

#[tokio::test]
async fn a_release_signed_by_other_keys_is_refused() {
    let fx = fixture().await;
    // an attacker with a complete key set and root of their own, but not this image's root
    let forger = fixture().await;
    let forged = forger.release("forged", spec("9.0.0", 1)).await;
    let refused = fx
        .verify(&forged, &fx.state("a"), "0.1.0")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, UpdateRefused::Signatures { .. }),
        "{refused}"
    );
    // the forged repository does verify against the forger's root: the refusal is about keys
    forger
        .verify(&forged, &forger.state("a"), "0.1.0")
        .await
        .unwrap();
}

#[tokio::test]
async fn release_writing_refuses_too_few_keys_and_an_empty_artefact_directory() {
    let fx = fixture().await;
    let mut keys = fx.keys.clone();
    keys.root.threshold = version(3);
    let spec_root = RootSpec {
        version: version(1),
        expires: days_from_now(365),
    };
    let refused = write_root(&keys, spec_root, &fx.dir.path().join("root3"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            updated::ReleaseError::Threshold {
                role: RoleType::Root,
                threshold: 3,
                keys: 2
            }
        ),
        "{refused}"
    );

    let empty = fx.dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = fx.dir.path().join("out");
    let refused = write_release(&fx.root_json, &empty, &spec("0.2.0", 1), &fx.keys, &out)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, updated::ReleaseError::NoArtefacts(_)),
        "{refused}"
    );
}
