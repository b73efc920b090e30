//! The uplink against Debian's real Alertmanager over HTTPS with mutual TLS: alerts arrive with
//! their labels and annotations, a cleared alarm resolves its alert, an escalation moves the
//! alert to its targets, and a client without the site's certificate is refused.

mod uplink_support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use appliance::tls::{Identity, PinnedRoot};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rcgen::ExtendedKeyUsagePurpose;
use sited::uplink::notification::rfc3339;
use sited::uplink::{Notification, Outbox};
use tokio_util::sync::CancellationToken;
use uplink_support::{Alertmanager, Ca, PORT, ago, alert, notification, wait_status};

fn run(outbox: &Arc<Outbox>) -> CancellationToken {
    let cancel = CancellationToken::new();
    tokio::spawn(Arc::clone(outbox).run(cancel.clone()));
    cancel
}

#[tokio::test]
async fn alerts_arrive_with_their_labels_and_annotations() {
    let am = Alertmanager::start(Ipv4Addr::new(127, 72, 1, 1)).await;
    let state = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(state.path(), am.settings()).unwrap());
    let cancel = run(&outbox);
    let raised_at = ago(30);
    let mut door = notification("hall-a.door-open", "raised", "critical", raised_at);
    door.summary = "Shielded door hall-a is open".into();
    outbox.enqueue(door).unwrap();

    let alerts = am
        .wait_for("the door alert", |a| alert(a, "hall-a.door-open").is_some())
        .await;
    let door = alert(&alerts, "hall-a.door-open").unwrap();
    assert_eq!(door["labels"]["site"], "bunker-7");
    assert_eq!(door["labels"]["severity"], "critical");
    assert!(door["labels"].get("notify").is_none(), "no targets yet");
    assert_eq!(
        door["annotations"]["summary"],
        "Shielded door hall-a is open"
    );
    assert_eq!(door["annotations"]["change"], "raised");
    assert_eq!(door["startsAt"], rfc3339(raised_at));
    assert_eq!(door["status"]["state"], "active");
    let status = wait_status(&outbox, "one delivered", |s| s.delivered_total == 1).await;
    assert_eq!(status.queued, 0);
    assert!(status.reachable);
    assert!(status.last_delivery_at.is_some());
    assert_eq!(status.last_error, None);
    cancel.cancel();
}

#[tokio::test]
async fn a_cleared_alarm_resolves_its_alert() {
    let am = Alertmanager::start(Ipv4Addr::new(127, 72, 1, 2)).await;
    let state = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(state.path(), am.settings()).unwrap());
    let cancel = run(&outbox);
    outbox
        .enqueue(notification("ups-on-battery", "raised", "warning", ago(20)))
        .unwrap();
    outbox
        .enqueue(notification("hall-b-hot", "raised", "warning", ago(20)))
        .unwrap();
    am.wait_for("both alerts", |a| {
        alert(a, "ups-on-battery").is_some() && alert(a, "hall-b-hot").is_some()
    })
    .await;

    outbox
        .enqueue(notification("ups-on-battery", "cleared", "", ago(1)))
        .unwrap();
    // Resolved alerts leave Alertmanager's list of alerts; the other one stays.
    let alerts = am
        .wait_for("the UPS alert resolved", |a| {
            alert(a, "ups-on-battery").is_none()
        })
        .await;
    assert!(alert(&alerts, "hall-b-hot").is_some());
    assert_eq!(outbox.status().firing, 1);
    cancel.cancel();
}

#[tokio::test]
async fn an_escalation_moves_the_alert_to_its_targets() {
    let am = Alertmanager::start(Ipv4Addr::new(127, 72, 1, 3)).await;
    let state = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(state.path(), am.settings()).unwrap());
    let cancel = run(&outbox);
    outbox
        .enqueue(notification("hall-a-hot", "raised", "warning", ago(600)))
        .unwrap();
    am.wait_for("the warning", |a| alert(a, "hall-a-hot").is_some())
        .await;
    outbox
        .enqueue(Notification {
            summary: String::new(),
            notify: vec!["shift-lead".into()],
            ..notification("hall-a-hot", "escalated", "critical", ago(1))
        })
        .unwrap();
    let alerts = am
        .wait_for("only the escalated alert", |a| {
            let mine: Vec<_> = a
                .iter()
                .filter(|x| x["labels"]["alertname"] == "hall-a-hot")
                .collect();
            mine.len() == 1 && mine[0]["labels"]["severity"] == "critical"
        })
        .await;
    let escalated = alert(&alerts, "hall-a-hot").unwrap();
    assert_eq!(escalated["labels"]["notify"], "shift-lead");
    assert_eq!(escalated["annotations"]["summary"], "hall-a-hot: raised");
    assert_eq!(escalated["annotations"]["change"], "escalated");
    cancel.cancel();
}

#[tokio::test]
async fn a_client_without_the_sites_certificate_is_refused() {
    let am = Alertmanager::start(Ipv4Addr::new(127, 72, 1, 4)).await;
    // The site's certificate gets in (the tests read back with it).
    am.client().alerts().await.unwrap();

    // No certificate at all.
    let root = PinnedRoot::from_pem(am.control_centre.pem.as_bytes()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.der().clone()).unwrap();
    let anonymous = rustls::ClientConfig::builder_with_provider(appliance::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let refused = get_alerts(Arc::new(anonymous), "127.72.1.4").await;
    assert!(
        refused.is_err(),
        "a client without a certificate got an answer: {refused:?}"
    );

    // A certificate from a CA Alertmanager does not trust.
    let stranger = Ca::new("stranger CA");
    let (chain, key) = stranger.leaf(
        "sited.elsewhere.example",
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let identity = Identity::from_pem(chain.as_bytes(), key.as_bytes()).unwrap();
    let refused = am.client_as(&identity).alerts().await;
    assert!(
        refused.is_err(),
        "a stranger's certificate got an answer: {refused:?}"
    );
}

/// `GET /api/v2/alerts` with `tls`: the status, or why there was none.
async fn get_alerts(tls: Arc<rustls::ClientConfig>, ip: &str) -> Result<u16, String> {
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect((ip, PORT))
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from(ip.to_owned()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        let request = hyper::Request::get("/api/v2/alerts")
            .header(hyper::header::HOST, format!("{ip}:{PORT}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        Ok(status)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?
}

#[tokio::test]
async fn alarms_the_active_set_adds_arrive_without_waiting_for_the_next_resend() {
    let am = Alertmanager::start(Ipv4Addr::new(127, 72, 1, 5)).await;
    let state = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(state.path(), am.settings()).unwrap());
    let cancel = run(&outbox);
    let ups = notification("ups-on-battery", "raised", "warning", ago(10));
    outbox.enqueue(ups.clone()).unwrap();
    am.wait_for("the UPS alert", |a| alert(a, "ups-on-battery").is_some())
        .await;
    // A silence on the intrusion alarm expired: no notification, but it is active. The next
    // periodic re-send is a minute away (longer than the wait below allows).
    let intrusion_at = ago(300);
    let intrusion = notification("intrusion", "raised", "critical", intrusion_at);
    outbox.set_active(vec![ups, intrusion]);
    let alerts = am
        .wait_for("the intrusion alert", |a| alert(a, "intrusion").is_some())
        .await;
    assert_eq!(
        alert(&alerts, "intrusion").unwrap()["startsAt"],
        rfc3339(intrusion_at)
    );
    cancel.cancel();
}
