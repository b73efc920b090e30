//! The real `trustd` binary following the site's state: a stand-in for sited
//! ([`StandInSite`], the `org.bunkeros.Site1` contract on the same private bus) puts the site in
//! lockdown and takes it out again, leaves, and comes back, while trustd runs against swtpm.

mod common;

use appliance::dbus::contracts::{SiteState, Trust1Proxy, trust_errors};
use appliance::dbus::testsite::StandInSite;
use common::*;
use serde_json::Value;

async fn status(trust: &Trust1Proxy<'_>) -> Value {
    serde_json::from_str(&trust.status().await.unwrap()).unwrap()
}

/// Waits for the `STATUS=` line trustd sends when its state changes; returns it.
fn status_line_starting(appliance: &mut Appliance, prefix: &str) -> String {
    let messages = appliance.notifications_until(|m| status_of(m).starts_with(prefix));
    status_of(messages.last().unwrap())
}

fn metric(appliance: &Appliance, line: &str) -> bool {
    let (code, metrics) = http_get(appliance.metrics_port, "/metrics");
    assert_eq!(code, 200);
    String::from_utf8(metrics)
        .unwrap()
        .lines()
        .any(|l| l == line)
}

async fn issue_is_refused_for_lockdown(trust: &Trust1Proxy<'_>) {
    let before = status(trust).await;
    let refused = trust
        .issue(&csr(&["web.bunker.test"]), "service", "")
        .await
        .unwrap_err();
    assert_eq!(error_name(&refused), trust_errors::LOCKDOWN, "{refused}");
    assert!(refused.to_string().contains("lockdown"), "{refused}");
    let after = status(trust).await;
    assert_eq!(
        after["certificates"], before["certificates"],
        "nothing issued"
    );
    assert_eq!(
        after["log"]["size"], before["log"]["size"],
        "nothing logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn issuance_stops_while_sited_has_the_site_in_lockdown() {
    // PCR 16 only: swtpm has no boot measurements, and the test must not depend on them.
    let mut appliance =
        Appliance::new("[policy]\nmode = \"pcr\"\npcrs = [16]\npcr11_prediction = \"\"\n");
    let bus = appliance.bus.bus();
    let sited = StandInSite::start(&bus, SiteState::Normal, "")
        .await
        .expect("the stand-in owns org.bunkeros.Site1");

    let ready = appliance.start();
    assert!(ready.starts_with("ready: "), "{ready}");
    let trust = appliance.proxy().await;
    trust
        .issue(&csr(&["web.bunker.test"]), "service", "")
        .await
        .expect("a normal site issues");

    // lockdown: the status line changes without waiting for the periodic refresh
    sited
        .set(SiteState::Lockdown, "door 3 of hall B was forced open")
        .await
        .unwrap();
    let line = status_line_starting(&mut appliance, "lockdown: ");
    assert!(line.contains("no certificate is issued"), "{line}");
    let locked = status(&trust).await;
    assert_eq!(locked["state"], "lockdown", "{locked}");
    assert_eq!(locked["lockdown"], true);
    assert!(metric(&appliance, "trustd_state{state=\"lockdown\"} 1"));
    issue_is_refused_for_lockdown(&trust).await;

    // a change of reason within lockdown changes nothing for the CA
    sited
        .set(
            SiteState::Lockdown,
            "doors 3 and 4 of hall B were forced open",
        )
        .await
        .unwrap();
    issue_is_refused_for_lockdown(&trust).await;

    // warning and critical are not lockdown
    sited
        .set(SiteState::Critical, "hall B is sealed off; guards on site")
        .await
        .unwrap();
    status_line_starting(&mut appliance, "ready: ");
    assert_eq!(status(&trust).await["lockdown"], false);
    assert!(metric(&appliance, "trustd_state{state=\"ready\"} 1"));
    trust
        .issue(&csr(&["api.bunker.test"]), "service", "")
        .await
        .expect("issuance resumes when the site leaves lockdown");

    // lockdown again, then sited goes away: trustd stays locked down, across its own restart
    sited
        .set(SiteState::Lockdown, "shielding breach in hall B")
        .await
        .unwrap();
    status_line_starting(&mut appliance, "lockdown: ");
    sited.stop().await.unwrap();
    issue_is_refused_for_lockdown(&trust).await;
    let (stopped, _) = appliance.stop();
    assert!(stopped.success(), "{stopped}");
    let ready = appliance.start();
    assert!(ready.starts_with("lockdown: "), "{ready}");
    let trust = appliance.proxy().await;
    issue_is_refused_for_lockdown(&trust).await;

    // sited comes back with the site normal: trustd follows it
    let sited = StandInSite::start(&bus, SiteState::Normal, "")
        .await
        .expect("a restarted stand-in owns org.bunkeros.Site1");
    status_line_starting(&mut appliance, "ready: ");
    trust
        .issue(&csr(&["www.bunker.test"]), "service", "")
        .await
        .expect("issuance resumes");

    // sited in lockdown while trustd is down: trustd is never READY as issuing
    let (stopped, _) = appliance.stop();
    assert!(stopped.success(), "{stopped}");
    sited
        .set(SiteState::Lockdown, "intrusion alarm, hall A")
        .await
        .unwrap();
    let ready = appliance.start();
    assert!(ready.starts_with("lockdown: "), "{ready}");
    let trust = appliance.proxy().await;
    issue_is_refused_for_lockdown(&trust).await;
    appliance.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_first_start_in_lockdown_sets_the_ca_up_once_the_site_leaves_it() {
    let mut appliance =
        Appliance::new("[policy]\nmode = \"pcr\"\npcrs = [16]\npcr11_prediction = \"\"\n");
    let bus = appliance.bus.bus();
    let sited = StandInSite::start(&bus, SiteState::Lockdown, "commissioning")
        .await
        .expect("the stand-in owns org.bunkeros.Site1");

    // The very first start: the root cannot be signed in lockdown, so there is none yet.
    let ready = appliance.start();
    assert!(ready.starts_with("lockdown: "), "{ready}");
    let trust = appliance.proxy().await;
    let before = status(&trust).await;
    assert!(before["ca"].is_null(), "no CA certificate yet: {before}");
    assert!(trust.root_certificate().await.is_err(), "no root yet");

    // The site leaves lockdown: trustd makes its root without a restart, and issues.
    sited.set(SiteState::Normal, "").await.unwrap();
    let line = status_line_starting(&mut appliance, "ready: ");
    assert!(line.contains("BunkerOS Site CA"), "{line}");
    let after = status(&trust).await;
    assert_eq!(after["ca"]["kind"], "root", "{after}");
    trust
        .issue(&csr(&["web.bunker.test"]), "service", "")
        .await
        .expect("issuance works once the root exists");
    appliance.stop();
}
