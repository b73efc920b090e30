//! updated's rollout exchange carried by real `hubd` processes: the coordinating hub (Paris)
//! serves its directory exchange over updated's mutual TLS on its loopback and publishes it as
//! the `[[service]]` `rollout`; a hub (Madrid) reaches it only through its own hubd's listener,
//! across a transit hub. Through that path the hub reads its instruction and the plan, and its
//! report lands in the coordinator's exchange — so plans, instructions and reports travel hubd's
//! links end to end, the hub known to the coordinator by its own certificate inside the session.

mod common;

use std::time::Instant;

use common::CONVERGE;
use common::network::network_with;
use updated::rollout::exchange::DirectoryExchange;
use updated::rollout::messages::samples::{instruction, report};
use updated::rollout::remote_exchange::test_pki::{TestCoordinator, TestSite};

const PLAN: &str = "spring";
const PLAN_TEXT: &str = "id = \"spring\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_hub_reaches_the_coordinators_rollout_exchange_through_hubd() {
    // The coordinator (Paris's updated): plan `spring` and an instruction for madrid-1, served
    // on Paris's loopback to madrid-1 as known by its site's root.
    let madrid_site = TestSite::new("madrid");
    let dir = tempfile::tempdir().unwrap();
    let exchange = DirectoryExchange::new(dir.path());
    exchange.publish_plan(PLAN, PLAN_TEXT).unwrap();
    exchange
        .write_instruction(&instruction("madrid-1"))
        .unwrap();
    let coordinator = TestCoordinator::serve(exchange.clone(), &[("madrid-1", &madrid_site)]).await;

    // Paris's hubd publishes it as `rollout`; Madrid's reaches it through Lisbon.
    let mut net = network_with(
        &[("lisbon-1", "PT")],
        "",
        &[("rollout", coordinator.address)],
    )
    .await;
    net.start();
    net.converged(2.0).await;

    // Madrid's updated knows only its hubd's listener, never the coordinator's address.
    let listener = net.listeners["rollout"];
    assert_ne!(listener, coordinator.address);
    let madrid = coordinator.client_via(listener, "madrid-1", &madrid_site);

    // The first request is retried while the control plane settles (a refused session is reset).
    let deadline = Instant::now() + CONVERGE;
    let instructions = loop {
        match madrid.instructions().await {
            Ok(instructions) => break instructions,
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "the exchange not reached through hubd within {CONVERGE:?}: {error}; \
                     madrid:\n{}",
                    net.madrid.log()
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(instructions.len(), 1, "madrid-1's own instruction");
    assert_eq!(instructions[0].as_ref().unwrap(), &instruction("madrid-1"));
    assert_eq!(madrid.plan(PLAN).await.unwrap().as_deref(), Some(PLAN_TEXT));
    madrid
        .write_report(&report(PLAN, "madrid-1"))
        .await
        .unwrap();
    assert_eq!(
        exchange.read_report(PLAN, "madrid-1").unwrap(),
        Some(report(PLAN, "madrid-1")),
        "the report is in the coordinator's exchange as Madrid sent it"
    );

    // The requests went through hubd: sessions along Madrid → Lisbon → Paris, ended at Paris.
    let log = net.madrid.log();
    assert!(
        log.contains("madrid-1 (ES) → lisbon-1 (PT) → paris-1 (FR)"),
        "the sessions' path is logged as proven by the receipts:\n{log}"
    );
    let paris_log = net.paris.log();
    assert!(
        paris_log
            .lines()
            .any(|line| line.contains("session started") && line.contains("rollout")),
        "Paris ended the `rollout` sessions:\n{paris_log}"
    );
    net.madrid
        .wait_for(
            "hubd_sessions_started_total",
            "one session per request at madrid",
            |n| n >= 3.0,
        )
        .await;
}
