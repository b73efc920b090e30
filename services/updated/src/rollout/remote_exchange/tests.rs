//! The exchange between hubs over real mutual TLS on loopback: what a hub may read and write,
//! and who is refused before a byte of a document moves.

use hyper::Method;
use tokio::io::AsyncWriteExt;

use super::test_pki::{COORDINATOR_NAME, TestCoordinator, TestSite};
use super::{CoordinatorExchange, RemoteError};
use crate::rollout::exchange::{DirectoryExchange, MAX_DOCUMENT_BYTES};
use crate::rollout::messages::samples::{instruction, report};
use rustls_pki_types::ServerName;

const PLAN: &str = "spring";

/// A coordinator with plan `spring` published and an instruction for lisbon-1 and oslo-1,
/// serving both hubs (each of its own site).
async fn coordinator() -> (
    tempfile::TempDir,
    DirectoryExchange,
    TestCoordinator,
    [TestSite; 2],
) {
    let dir = tempfile::tempdir().unwrap();
    let exchange = DirectoryExchange::new(dir.path());
    exchange.publish_plan(PLAN, "id = \"spring\"\n").unwrap();
    exchange
        .write_instruction(&instruction("lisbon-1"))
        .unwrap();
    exchange.write_instruction(&instruction("oslo-1")).unwrap();
    let sites = [TestSite::new("lisbon"), TestSite::new("oslo")];
    let coordinator = TestCoordinator::serve(
        exchange.clone(),
        &[("lisbon-1", &sites[0]), ("oslo-1", &sites[1])],
    )
    .await;
    (dir, exchange, coordinator, sites)
}

fn refused_status(result: Result<impl std::fmt::Debug, RemoteError>) -> u16 {
    match result {
        Err(RemoteError::Refused { status, .. }) => status,
        other => panic!("expected a refusal with an HTTP status, got {other:?}"),
    }
}

#[tokio::test]
async fn a_hub_reads_its_instructions_and_the_plan_and_writes_its_report() {
    let (_dir, exchange, coordinator, sites) = coordinator().await;
    let lisbon = coordinator.client("lisbon-1", &sites[0]);

    let instructions = lisbon.instructions().await.unwrap();
    assert_eq!(instructions.len(), 1, "only lisbon-1's own instruction");
    assert_eq!(instructions[0].as_ref().unwrap(), &instruction("lisbon-1"));
    assert_eq!(
        lisbon.plan(PLAN).await.unwrap().as_deref(),
        Some("id = \"spring\"\n")
    );
    assert_eq!(lisbon.plan("autumn").await.unwrap(), None);

    lisbon
        .write_report(&report(PLAN, "lisbon-1"))
        .await
        .unwrap();
    assert_eq!(
        exchange.read_report(PLAN, "lisbon-1").unwrap(),
        Some(report(PLAN, "lisbon-1")),
        "the report is in the coordinator's exchange as sent"
    );
}

#[tokio::test]
async fn a_hub_may_not_read_or_write_another_hubs_documents() {
    let (_dir, exchange, coordinator, sites) = coordinator().await;
    // lisbon-1's certificate, asking as oslo-1
    let impostor = coordinator.client_presenting("oslo-1", sites[0].hub_certificate("lisbon-1"));
    assert_eq!(refused_status(impostor.instructions().await), 403);
    assert_eq!(
        refused_status(impostor.write_report(&report(PLAN, "oslo-1")).await),
        403
    );
    assert_eq!(exchange.read_report(PLAN, "oslo-1").unwrap(), None);

    // oslo's own hub certificate from lisbon's site is still lisbon's
    let wrong_site = coordinator.client("oslo-1", &sites[0]);
    assert_eq!(
        refused_status(wrong_site.write_report(&report(PLAN, "oslo-1")).await),
        403
    );
    assert_eq!(exchange.read_report(PLAN, "oslo-1").unwrap(), None);
}

#[tokio::test]
async fn another_certificate_of_the_hubs_site_is_not_the_hub() {
    let (_dir, exchange, coordinator, sites) = coordinator().await;
    let device = coordinator.client_presenting(
        "lisbon-1",
        sites[0].device_certificate("miner-17.lisbon.bunker.test"),
    );
    let error = device.instructions().await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not its hub certificate (bunkeros:hub:lisbon-1)"),
        "{error}"
    );
    assert_eq!(
        refused_status(device.write_report(&report(PLAN, "lisbon-1")).await),
        403
    );
    assert_eq!(exchange.read_report(PLAN, "lisbon-1").unwrap(), None);
}

#[tokio::test]
async fn an_expired_certificate_is_not_presented_and_says_so() {
    let (_dir, _exchange, coordinator, sites) = coordinator().await;
    let certificate = sites[0].expired_hub_certificate("lisbon-1");
    assert!(certificate.identity().unwrap_err().contains("expired"));
    let expired = coordinator.client_presenting("lisbon-1", certificate);
    let error = expired.instructions().await.unwrap_err();
    assert!(matches!(error, RemoteError::NoCertificate(_)), "{error}");
}

#[tokio::test]
async fn a_hub_whose_root_is_not_pinned_is_refused_in_the_handshake() {
    let (_dir, exchange, coordinator, _sites) = coordinator().await;
    let stranger = coordinator.client("lisbon-1", &TestSite::new("elsewhere"));
    let error = stranger
        .write_report(&report(PLAN, "lisbon-1"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RemoteError::Unreachable { .. }),
        "refused in the handshake: {error}"
    );
    assert_eq!(exchange.read_report(PLAN, "lisbon-1").unwrap(), None);
}

#[tokio::test]
async fn a_coordinator_of_another_site_or_name_is_not_believed() {
    let (_dir, _exchange, coordinator, sites) = coordinator().await;
    let wrong_root = CoordinatorExchange::new(
        "lisbon-1",
        coordinator.address,
        ServerName::try_from(COORDINATOR_NAME).unwrap(),
        sites[1].root(),
        sites[0].hub_certificate("lisbon-1"),
    );
    let error = wrong_root.instructions().await.unwrap_err();
    assert!(
        error.to_string().contains("UnknownIssuer"),
        "the coordinator's chain does not lead to the pinned root: {error}"
    );
    let wrong_name = CoordinatorExchange::new(
        "lisbon-1",
        coordinator.address,
        ServerName::try_from("rollout.madrid.bunker.test").unwrap(),
        coordinator.site.root(),
        sites[0].hub_certificate("lisbon-1"),
    );
    let error = wrong_name.instructions().await.unwrap_err();
    assert!(
        error.to_string().contains("not valid for name"),
        "the certificate names another server: {error}"
    );
}

#[tokio::test]
async fn malformed_mismatched_oversized_and_planless_reports_change_nothing() {
    let (_dir, exchange, coordinator, sites) = coordinator().await;
    let lisbon = coordinator.client("lisbon-1", &sites[0]);
    let path = "/v1/rollout/plans/spring/reports/lisbon-1";
    let put = |body: Vec<u8>| lisbon.call(Method::PUT, path, Some(body), 4096);

    assert_eq!(refused_status(put(b"{\"plan_id\":".to_vec()).await), 400);
    let other_plan = serde_json::to_vec(&report("autumn", "lisbon-1")).unwrap();
    assert_eq!(
        refused_status(put(other_plan).await),
        400,
        "the body names another plan"
    );
    let mut unknown_field = serde_json::to_value(report(PLAN, "lisbon-1")).unwrap();
    unknown_field["approved"] = true.into();
    assert_eq!(
        refused_status(put(serde_json::to_vec(&unknown_field).unwrap()).await),
        400
    );
    let huge = vec![b' '; MAX_DOCUMENT_BYTES + 1];
    assert_eq!(refused_status(put(huge).await), 413);
    assert_eq!(exchange.read_report(PLAN, "lisbon-1").unwrap(), None);

    let error = lisbon
        .write_report(&report("autumn", "lisbon-1"))
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no such plan"),
        "a report for a plan the coordinator does not have: {error}"
    );
    assert!(!exchange.root().join("autumn").exists());

    for (method, bad) in [
        (Method::GET, "/v1/rollout/plans/..%2F..%2Fetc"),
        (Method::DELETE, path),
        (Method::GET, "/v1/rollout/plans/Spring%20Fever"),
    ] {
        let answer = lisbon.call(method, bad, None, 4096).await;
        assert!(
            matches!(
                answer,
                Ok(None) | Err(RemoteError::Refused { status: 400, .. })
            ),
            "{bad}: not served (404 or 400), got {answer:?}"
        );
    }
}

#[tokio::test]
async fn a_peer_that_speaks_no_tls_gets_nothing_and_the_exchange_serves_on() {
    let (_dir, _exchange, coordinator, sites) = coordinator().await;
    let mut plain = tokio::net::TcpStream::connect(coordinator.address)
        .await
        .unwrap();
    plain
        .write_all(b"PUT /v1/rollout/plans/spring/reports/lisbon-1 HTTP/1.1\r\n\r\n{}")
        .await
        .unwrap();
    drop(plain);
    let lisbon = coordinator.client("lisbon-1", &sites[0]);
    assert_eq!(lisbon.instructions().await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_answer_the_coordinator_could_not_take_is_sent_later_as_it_was() {
    use crate::rollout::agent::{AgentError, AgentStep, HubAgent};
    use crate::rollout::messages::ReportOutcome;
    use appliance::state::StateDir;

    let (dir, exchange, coordinator, sites) = coordinator().await;
    let state = StateDir::new(dir.path().join("lisbon-state")).unwrap();
    let agent = HubAgent::new(
        "lisbon-1",
        coordinator.client("lisbon-1", &sites[0]),
        state.clone(),
    );
    let plan_file = exchange.root().join(PLAN).join("plan.toml");

    // The install fails, and by the time the hub answers the coordinator cannot take the
    // report (its plan is gone: 404), so the answer stays with the hub.
    let error = agent
        .poll(1010, async |_: &_| {
            std::fs::remove_file(&plan_file).unwrap();
            Err("the mirror is down".to_owned())
        })
        .await
        .unwrap_err();
    assert!(matches!(error, AgentError::Remote(_)), "{error}");
    assert_eq!(exchange.read_report(PLAN, "lisbon-1").unwrap(), None);

    // Once the coordinator takes reports again, the next turn sends that very answer first,
    // and installs nothing again.
    exchange.publish_plan(PLAN, "id = \"spring\"\n").unwrap();
    let step = agent
        .poll(5000, async |_: &_| {
            panic!("the instruction was acted on already")
        })
        .await
        .unwrap();
    assert_eq!(step, AgentStep::Idle);
    let report = exchange.read_report(PLAN, "lisbon-1").unwrap().unwrap();
    assert_eq!(
        report.outcome,
        ReportOutcome::Failed {
            reason: "the install did not happen: the mirror is down".to_owned()
        }
    );
    assert_eq!(report.reported_at, 1010, "decided then, sent now");
}
