//! The uplink's client certificate from a real trustd (its CA key in a software TPM), as on the
//! appliance: a key made in memory, certified under profile `service`; the control centre's
//! Alertmanager trusts the site's root, and notifications arrive.

mod uplink_support;

use std::net::Ipv4Addr;
use std::sync::Arc;

use appliance::dbus::Bus;
use appliance::dbus::testbus::TestBus;
use appliance::testtrustd::{SITE_DOMAIN, Trustd};
use sited::uplink::{ClientIdentitySource, Outbox};
use tokio_util::sync::CancellationToken;
use uplink_support::{Alertmanager, ago, alert, notification, wait_status};

#[tokio::test(flavor = "multi_thread")]
async fn notifications_arrive_under_a_certificate_from_trustd() {
    let bus = TestBus::start().expect("a private dbus-daemon");
    let (_trustd, site_root) = Trustd::start(bus.address(), "").await;
    let mut am = Alertmanager::prepare(Ipv4Addr::new(127, 72, 3, 1));
    am.trust_clients_of(&site_root);
    am.launch().await;

    let state = tempfile::tempdir().unwrap();
    let mut settings = am.settings();
    settings.client = ClientIdentitySource::Trustd {
        name: format!("sited.{SITE_DOMAIN}"),
    };
    let outbox = Arc::new(
        Outbox::open_on_bus(
            state.path(),
            settings,
            Bus::Address(bus.address().to_owned()),
        )
        .unwrap(),
    );
    let cancel = CancellationToken::new();
    tokio::spawn(Arc::clone(&outbox).run(cancel.clone()));
    outbox
        .enqueue(notification(
            "ups-low-battery",
            "raised",
            "critical",
            ago(5),
        ))
        .unwrap();
    am.wait_for("the alert", |a| alert(a, "ups-low-battery").is_some())
        .await;
    let status = wait_status(&outbox, "one delivered", |s| s.delivered_total == 1).await;
    let identity = status.identity.unwrap();
    assert!(identity.starts_with("trustd (serial "), "{identity}");
    cancel.cancel();
}
