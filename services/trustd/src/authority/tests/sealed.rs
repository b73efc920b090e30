//! Sealed and lockdown: what each stops, that a refusal leaves no trace, and how each ends.

use time::OffsetDateTime;

use super::*;
use crate::ca::{IssueError, NotReady, Profile};

#[test]
fn a_tampered_boot_seals_the_ca_and_every_signing_operation_is_refused_without_a_trace() {
    let mut site = Site::start();
    let authority = site.open_root();
    let issued = issue(&authority, "api");
    let mut before = Snapshot::take(&site);

    site.tamper_boot();
    // The first issuance learns it from the TPM's refusal, after it was given a serial of the
    // reserved block; the serial is handed back, since no certificate can carry it.
    let error = authority
        .issue(
            &csr(&[&format!("db.{SITE}")]),
            Profile::Service,
            None,
            "test:issuer",
        )
        .unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, AuthorityError::Sealed { .. }), "{message}");
    assert!(
        message.starts_with("the CA is sealed, so trustd does not issue certificates:")
            && message.contains("PCR 16 of this boot differs")
            && message.ends_with("nothing was changed"),
        "{message}"
    );
    assert_eq!(Snapshot::take(&site), before);

    let status = authority.status().unwrap();
    assert_eq!(status.state.name(), "sealed");
    let AuthorityState::Sealed { reason } = &status.state else {
        panic!("{:?}", status.state)
    };
    assert!(reason.contains("PCR 16"), "{reason}");

    // Every other signing operation is refused before anything is touched.
    let refused = [
        authority
            .issue(
                &csr(&[&format!("db.{SITE}")]),
                Profile::Service,
                None,
                "test:issuer",
            )
            .map(|_| ()),
        authority
            .revoke(
                &issued.certificate.serial,
                RevocationReason::KeyCompromise,
                "test:operator",
            )
            .map(|_| ()),
        authority
            .refresh_crl(OffsetDateTime::now_utc() + time::Duration::hours(23))
            .map(|_| ()),
        authority.sign_audit_digest("hubd", [7; 32]).map(|_| ()),
        authority.signed_tree_head().map(|_| ()),
    ];
    for result in refused {
        let error = result.unwrap_err();
        assert!(matches!(error, AuthorityError::Sealed { .. }), "{error}");
    }
    assert_eq!(Snapshot::take(&site), before);
    let (done, refused) =
        authority.checkpoint(OffsetDateTime::now_utc() + time::Duration::hours(23));
    assert_eq!(done, Checkpoint::default());
    assert!(!refused.is_empty());
    assert_eq!(Snapshot::take(&site), before);

    // A restart while sealed opens (status must say why) and still refuses.
    drop(authority);
    let authority = site.open();
    assert_eq!(authority.status().unwrap().state.name(), "sealed");
    assert!(matches!(
        authority.issue(&csr(&[&format!("db.{SITE}")]), Profile::Service, None, "t"),
        Err(AuthorityError::Sealed { .. })
    ));
    // The stop abandoned the unused rest of the block reserved before it, and nothing else.
    before
        .serials
        .iter_mut()
        .filter(|(_, state)| state == "reserved")
        .for_each(|(_, state)| *state = "abandoned".to_owned());
    assert_eq!(Snapshot::take(&site), before);

    // A trusted boot again (the PCRs reset): the same authority notices and issues.
    site.tpm.restart().unwrap();
    issue(&authority, "db");
    assert_eq!(authority.status().unwrap().state, AuthorityState::Ready);
}

#[test]
fn lockdown_stops_issuance_revocation_and_crls_but_not_audit_signatures_or_tree_heads() {
    let site = Site::start();
    let authority = site.open_root();
    let issued = issue(&authority, "api");
    authority.set_lockdown(true).unwrap();
    let before = Snapshot::take(&site);

    let status = authority.status().unwrap();
    assert_eq!(status.state, AuthorityState::Lockdown);
    assert!(status.lockdown);

    let error = authority
        .issue(
            &csr(&[&format!("db.{SITE}")]),
            Profile::Service,
            None,
            "test:issuer",
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the site is in lockdown: trustd does not issue certificates until the site leaves \
         lockdown; nothing was changed"
    );
    assert!(matches!(
        authority.revoke(
            &issued.certificate.serial,
            RevocationReason::KeyCompromise,
            "t"
        ),
        Err(AuthorityError::Lockdown("revoke certificates"))
    ));
    assert!(matches!(
        authority.refresh_crl(OffsetDateTime::now_utc() + time::Duration::hours(23)),
        Err(AuthorityError::Lockdown("sign a new CRL"))
    ));
    assert!(matches!(
        authority.create_root(&site_identity()),
        Err(AuthorityError::Lockdown(_))
    ));
    // Audit trails must keep being sealed during an incident, and tree heads only attest.
    let signature = authority.sign_audit_digest("sited", [1; 32]).unwrap();
    verify_audit_signature(
        authority.public_key_sec1(),
        &AuditService::new("sited").unwrap(),
        &[1; 32],
        &signature,
    )
    .unwrap();
    assert_eq!(authority.signed_tree_head().unwrap().head.size, 1);
    assert_eq!(Snapshot::take(&site), before);

    // Lockdown survives a restart (fail closed until sited says otherwise).
    drop(authority);
    let authority = site.open();
    assert!(authority.lockdown());
    assert!(matches!(
        authority.issue(&csr(&[&format!("db.{SITE}")]), Profile::Service, None, "t"),
        Err(AuthorityError::Lockdown(_))
    ));
    authority.set_lockdown(false).unwrap();
    issue(&authority, "db");
    assert_eq!(authority.status().unwrap().state, AuthorityState::Ready);
}

#[test]
fn before_a_root_exists_the_authority_is_initialised_and_does_not_issue() {
    let site = Site::start();
    let authority = site.open();
    let status = authority.status().unwrap();
    assert_eq!(
        status.state,
        AuthorityState::Initialised {
            reason: NotReady::Uninitialised
        }
    );
    assert_eq!(status.crl, None);
    assert!(authority.root_pem().is_none());
    let error = authority
        .issue(
            &csr(&[&format!("api.{SITE}")]),
            Profile::Service,
            None,
            "test:issuer",
        )
        .unwrap_err();
    assert!(
        matches!(
            error,
            AuthorityError::Issue(IssueError::NotReady(NotReady::Uninitialised))
        ),
        "{error}"
    );
    assert_eq!(authority.store().serial_counts().unwrap().len(), 0);

    authority.create_root(&site_identity()).unwrap();
    let status = authority.status().unwrap();
    assert_eq!(status.state, AuthorityState::Ready);
    assert_eq!(status.crl.map(|crl| crl.number), Some(1));
    // The root's serial is recorded as the CA's, so no leaf can ever get it.
    assert_eq!(
        authority
            .store()
            .serial_counts()
            .unwrap()
            .get(&SerialState::Ca)
            .copied(),
        Some(1)
    );
}
