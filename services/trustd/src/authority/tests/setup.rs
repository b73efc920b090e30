//! Setting up the CA's own certificate as the site configured it: what the first start does,
//! that it is never redone, and that lockdown and a sealed TPM stop it without a trace.

use super::*;
use crate::authority::setup::{CaSetup, SetUpOutcome};
use crate::ca::{CaKind, NotReady};
use crate::status_report::status_line;

fn setup(kind: CaKind) -> CaSetup {
    CaSetup {
        kind,
        site: site_identity(),
    }
}

fn ca_file(site: &Site) -> Option<Vec<u8>> {
    site.state.read("ca.json").unwrap()
}

#[test]
fn a_root_is_made_once_and_a_changed_configuration_is_not_obeyed() {
    let site = Site::start();
    let authority = site.open();
    assert_eq!(
        authority.set_up(&setup(CaKind::Root)).unwrap(),
        SetUpOutcome::CreatedRoot
    );
    assert_eq!(authority.status().unwrap().state, AuthorityState::Ready);
    let root = authority.root_pem().unwrap();
    for kind in [CaKind::Root, CaKind::Intermediate] {
        assert_eq!(
            authority.set_up(&setup(kind)).unwrap(),
            SetUpOutcome::AlreadySetUp
        );
    }
    assert_eq!(authority.root_pem().unwrap(), root);
    // A root answers to no offline root: no request, no chain, and the refusal is the caller's.
    let error = authority.intermediate_request().unwrap_err();
    assert!(error.is_caller_error(), "{error}");
    let error = authority.install_chain(&root).unwrap_err();
    assert!(error.is_caller_error(), "{error}");
    assert!(
        error.to_string().contains("would replace that anchor"),
        "{error}"
    );
    assert_eq!(authority.root_pem().unwrap(), root);
}

#[test]
fn an_intermediate_writes_its_request_once_and_waits_with_the_procedure_as_its_status() {
    let site = Site::start();
    let authority = site.open();
    // Asked for before the first start set anything up: nothing to show.
    let error = authority.intermediate_request().unwrap_err();
    assert!(error.to_string().contains("restart trustd"), "{error}");
    assert_eq!(
        authority.set_up(&setup(CaKind::Intermediate)).unwrap(),
        SetUpOutcome::WroteRequest
    );
    let status = authority.status().unwrap();
    assert_eq!(
        status.state,
        AuthorityState::Initialised {
            reason: NotReady::AwaitingChain
        }
    );
    let line = status_line(&status);
    for step in [
        "initialised: waiting for the offline root",
        "`bunkerctl ca csr > site-ca.csr`",
        "`bunkerctl ca install-chain chain.pem`",
    ] {
        assert!(line.contains(step), "{line}");
    }
    let request = authority.intermediate_request().unwrap();
    assert!(request.starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
    for kind in [CaKind::Intermediate, CaKind::Root] {
        assert_eq!(
            authority.set_up(&setup(kind)).unwrap(),
            SetUpOutcome::AlreadySetUp
        );
    }
    assert!(authority.root_pem().is_none(), "no root was made");
    assert_eq!(authority.intermediate_request().unwrap(), request);
    // A restart shows the same request: the one the operator may already have carried away.
    drop(authority);
    let authority = site.open();
    assert_eq!(authority.intermediate_request().unwrap(), request);
    let error = authority.install_chain("not a chain").unwrap_err();
    assert!(error.is_caller_error(), "{error}");
    assert_eq!(authority.intermediate_request().unwrap(), request);
}

#[test]
fn lockdown_and_a_sealed_ca_stop_the_set_up_and_leave_nothing() {
    let site = Site::start();
    let authority = site.open();
    authority.set_lockdown(true).unwrap();
    for kind in [CaKind::Root, CaKind::Intermediate] {
        let error = authority.set_up(&setup(kind)).unwrap_err();
        assert!(matches!(error, AuthorityError::Lockdown(_)), "{error}");
    }
    assert!(matches!(
        authority.intermediate_request(),
        Err(AuthorityError::Lockdown(_))
    ));
    assert!(matches!(
        authority.install_chain("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
        Err(AuthorityError::Lockdown(_))
    ));
    assert_eq!(ca_file(&site), None);
    authority.set_lockdown(false).unwrap();

    // The TPM refuses the key: learnt from the refused signature, reported as sealed.
    site.tamper_boot();
    let error = authority.set_up(&setup(CaKind::Intermediate)).unwrap_err();
    assert!(matches!(error, AuthorityError::Sealed { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("does not change the CA hierarchy"),
        "{error}"
    );
    assert_eq!(ca_file(&site), None);
    assert_eq!(authority.status().unwrap().state.name(), "sealed");
}
