//! sited's alarms reach the control centre's Alertmanager (Debian's, mutual TLS) through the
//! daemon: raised while the uplink is down, they wait in the journal (the status says so) and
//! arrive when it returns; a cleared alarm resolves its alert.

mod daemon_support;
mod uplink_support;

use std::net::Ipv4Addr;

use daemon_support::{SiteUnderTest, eventually, live_site};
use sited::uplink::ClientIdentitySource;
use uplink_support::{Alertmanager, alert};

/// The `[uplink]` table for `am`.
fn uplink_layer(am: &Alertmanager) -> String {
    let settings = am.settings();
    let ClientIdentitySource::Pem { chain, key } = &settings.client else {
        unreachable!("the test Alertmanager's settings use PEM files")
    };
    format!(
        "[uplink]\nalertmanager = \"{}\"\nserver_ca = \"{}\"\nretry_first = 1\nretry_max = 2\n\
         client = {{ source = \"pem\", chain = \"{}\", key = \"{}\" }}\n",
        settings.alertmanager,
        settings.server_ca.display(),
        chain.display(),
        key.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_raised_while_the_uplink_is_down_arrive_when_it_returns() {
    let mut am = Alertmanager::prepare(Ipv4Addr::new(127, 72, 9, 1));
    let site = SiteUnderTest::start("127.71.9.1:0", live_site(), &uplink_layer(&am)).await;
    let site1 = site.site1().await;
    site.wait_state("normal").await;

    site.site.handle().set_intrusion(1, true).unwrap();
    site.wait_alarm("intrusion-1", true).await;
    eventually("the status says the notification waits", || {
        let site1 = site1.clone();
        async move {
            let status: serde_json::Value =
                serde_json::from_str(&site1.status().await.unwrap()).unwrap();
            let uplink = &status["uplink"];
            uplink["configured"] == true
                && uplink["queued"].as_u64() >= Some(1)
                && uplink["reachable"] == false
                && uplink["last_error"].is_string()
        }
    })
    .await;

    am.launch().await;
    let alerts = am
        .wait_for("intrusion-1 firing at the control centre", |a| {
            alert(a, "intrusion-1").is_some_and(|x| x["status"]["state"] == "active")
        })
        .await;
    let intrusion = alert(&alerts, "intrusion-1").unwrap();
    assert_eq!(intrusion["labels"]["site"], "qemu-bunker", "{intrusion}");
    assert_eq!(intrusion["labels"]["severity"], "critical", "{intrusion}");

    site.site.handle().set_intrusion(1, false).unwrap();
    site.wait_alarm("intrusion-1", false).await;
    am.wait_for("intrusion-1 resolved", |a| {
        alert(a, "intrusion-1").is_none_or(|x| x["status"]["state"] != "active")
    })
    .await;
    eventually("the metrics say the uplink is reachable", || {
        let reachable = site.sited.metric("sited_uplink_reachable");
        async move { reachable == Some(1.0) }
    })
    .await;
}
