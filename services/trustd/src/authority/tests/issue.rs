//! Issuance through the whole pipeline: CSR → TPM signature → log → store → proof.

use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::ca::{IssueError, Profile};

#[test]
fn an_issued_certificate_is_logged_recorded_and_provable() {
    let site = Site::start();
    let authority = site.open_root();
    let issued = issue(&authority, "api");
    assert_eq!(issued.log_index, 0);

    // The log holds exactly the certificate handed out.
    let entry = authority.lock_log().entry(0).unwrap();
    assert_eq!(entry.certificate_der(), &issued.certificate.der[..]);
    assert_eq!(entry.timestamp_ms(), issued.logged_at_ms);

    // The store knows who asked, for what, and where it is logged.
    let record = authority
        .certificate(&issued.certificate.serial)
        .unwrap()
        .expect("a record");
    assert_eq!(record.profile, Some(Profile::Service));
    assert_eq!(record.requester.as_deref(), Some("test:issuer"));
    assert_eq!(record.facts.names, vec![format!("api.{SITE}")]);
    assert_eq!(record.facts.not_after, issued.certificate.not_after);
    assert_eq!(record.log_index, 0);
    assert!(!record.recovered);
    assert_eq!(record.revocation, None);
    assert_eq!(
        authority
            .store()
            .serial_state(&issued.certificate.serial)
            .unwrap(),
        Some(SerialState::Issued)
    );

    // A proof bundle for it verifies with nothing but the CA public key.
    let bundle = authority
        .proof_bundle(Some(issued.log_index), None)
        .unwrap();
    bundle.verify(authority.public_key_sec1()).unwrap();
    let inclusion = bundle.inclusion.as_ref().unwrap();
    assert_eq!(
        inclusion.entry.certificate_der(),
        &issued.certificate.der[..]
    );
    // ... and survives the JSON round trip `bunkerctl ca log verify` reads.
    crate::translog::parse_proof_bundle(bundle.to_json().as_bytes())
        .unwrap()
        .verify(authority.public_key_sec1())
        .unwrap();

    // openssl agrees the certificate chains to the root.
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("root.pem"), authority.root_pem().unwrap()).unwrap();
    std::fs::write(dir.path().join("leaf.pem"), &issued.certificate.chain_pem).unwrap();
    let (ok, output) = openssl(dir.path(), &["verify", "-CAfile", "root.pem", "leaf.pem"]);
    assert!(ok, "{output}");

    // A verifier that kept the head of size 1 gets a consistency proof to a later head.
    let old = authority
        .tree_head_of_size(1)
        .unwrap()
        .expect("the head the proof used");
    assert_eq!(old, bundle.tree_head);
    issue(&authority, "db");
    let later = authority.proof_bundle(None, Some(&old)).unwrap();
    assert_eq!(later.tree_head.head.size, 2);
    later.verify(authority.public_key_sec1()).unwrap();

    let status = authority.status().unwrap();
    assert_eq!(status.state, AuthorityState::Ready);
    assert_eq!((status.issued, status.revoked, status.log_size), (2, 0, 2));
    assert_eq!(status.signed_tree_head_size, Some(2));
    assert_eq!(status.policy.mode, "pcr");
    assert_eq!(status.policy.pcr_selection, SELECTION.to_vec());
    assert_eq!(status.root_fingerprint.as_ref().map(String::len), Some(64));
    assert_eq!(status.crl.map(|crl| crl.number), Some(1));
}

#[test]
fn refused_requests_change_nothing() {
    let site = Site::start();
    let authority = site.open_root();
    issue(&authority, "api");
    let before = Snapshot::take(&site);

    let garbage = authority.issue(b"not a CSR", Profile::Service, None, "test:issuer");
    let message = garbage.unwrap_err().to_string();
    assert!(
        message.starts_with("the certificate request is refused"),
        "{message}"
    );

    let outside = authority.issue(
        &csr(&["api.stockholm.bunker.example"]),
        Profile::Service,
        None,
        "test:issuer",
    );
    let error = outside.unwrap_err();
    assert!(error.is_caller_error(), "{error}");
    assert!(
        matches!(error, AuthorityError::Issue(IssueError::Names(_))),
        "{error}"
    );

    let short = authority.issue(
        &csr(&[&format!("api.{SITE}")]),
        Profile::Service,
        Some(Duration::from_secs(1)),
        "test:issuer",
    );
    assert!(matches!(
        short,
        Err(AuthorityError::Issue(IssueError::LifetimeTooShort { .. }))
    ));

    for requester in ["", "line\nbreak", &"x".repeat(MAX_REQUESTER_LEN + 1)] {
        let result = authority.issue(
            &csr(&[&format!("api.{SITE}")]),
            Profile::Service,
            None,
            requester,
        );
        assert!(
            matches!(result, Err(AuthorityError::BadRequester(_))),
            "{requester:?}"
        );
    }

    assert_eq!(Snapshot::take(&site), before);
}

#[test]
fn a_restart_keeps_every_certificate_and_draws_fresh_serials() {
    let site = Site::start();
    let authority = site.open_root();
    let first: Vec<Issued> = (0..3)
        .map(|i| issue(&authority, &format!("svc{i}")))
        .collect();
    drop(authority);

    let authority = site.open();
    assert_eq!(authority.reconciliation(), &Reconciliation::default());
    for issued in &first {
        let record = authority
            .certificate(&issued.certificate.serial)
            .unwrap()
            .unwrap();
        assert_eq!(record.log_index, issued.log_index);
    }
    let next = issue(&authority, "after-restart");
    assert_eq!(next.log_index, 3);
    assert!(
        first
            .iter()
            .all(|i| i.certificate.serial != next.certificate.serial)
    );
    assert_eq!(authority.status().unwrap().issued, 4);
}

#[test]
fn concurrent_issuance_keeps_log_and_store_in_step() {
    let site = Site::start();
    let authority = site.open_root();
    let issued: Vec<Issued> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let authority = &authority;
                scope.spawn(move || {
                    (0..5)
                        .map(|i| issue(authority, &format!("w{worker}-{i}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let indexes: HashSet<u64> = issued.iter().map(|i| i.log_index).collect();
    assert_eq!(indexes, (0..20).collect());
    let serials: HashSet<_> = issued.iter().map(|i| i.certificate.serial).collect();
    assert_eq!(serials.len(), 20);
    let rows = authority.store().logged_rows().unwrap();
    assert_eq!(rows.len(), 20);
    for issued in &issued {
        let entry = authority.lock_log().entry(issued.log_index).unwrap();
        assert_eq!(entry.certificate_der(), &issued.certificate.der[..]);
    }
    // Every serial still reserved is an unused one of the current block.
    assert_eq!(
        authority
            .store()
            .serial_counts()
            .unwrap()
            .get(&SerialState::Reserved)
            .copied()
            .unwrap_or(0),
        authority.store().unused_serials() as u64
    );
}

#[test]
fn list_filters_by_status_profile_and_name_and_pages() {
    let site = Site::start();
    let authority = site.open_root();
    let api = issue(&authority, "api");
    let _db = issue(&authority, "db");
    let device = authority
        .issue(
            &csr(&[&format!("miner-7.devices.{SITE}")]),
            Profile::Device,
            None,
            "acme:account/3",
        )
        .unwrap();
    authority
        .revoke(
            &api.certificate.serial,
            RevocationReason::Superseded,
            "test:operator",
        )
        .unwrap();

    let all = authority.list(&ListFilter::default()).unwrap();
    assert_eq!(
        all.iter().map(|r| r.log_index).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );

    let revoked = authority
        .list(&ListFilter {
            status: Some(CertificateStatus::Revoked),
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].facts.serial, api.certificate.serial);
    let revocation = revoked[0].revocation.as_ref().unwrap();
    assert_eq!(revocation.reason, RevocationReason::Superseded);
    assert_eq!(revocation.requester, "test:operator");

    let valid = authority
        .list(&ListFilter {
            status: Some(CertificateStatus::Valid),
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(valid.len(), 2);

    let devices = authority
        .list(&ListFilter {
            profile: Some(Profile::Device),
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].facts.serial, device.certificate.serial);
    assert_eq!(devices[0].requester.as_deref(), Some("acme:account/3"));

    let by_name = authority
        .list(&ListFilter {
            name_contains: Some("MINER-7".into()),
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(by_name.len(), 1);
    // LIKE wildcards in the text are literal characters, not patterns.
    let wildcard = authority
        .list(&ListFilter {
            name_contains: Some("%".into()),
            ..ListFilter::default()
        })
        .unwrap();
    assert!(wildcard.is_empty());

    let page = authority
        .list(&ListFilter {
            after_log_index: Some(0),
            limit: 1,
            ..ListFilter::default()
        })
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.log_index).collect::<Vec<_>>(),
        vec![1]
    );
}
