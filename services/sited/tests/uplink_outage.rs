//! Store-and-forward against Debian's real Alertmanager: notifications queue while it is down
//! (and the status says so) and arrive in order when it returns, with the alarms still active
//! sent again (a restarted Alertmanager has forgotten them); an outbox reopened after a crash
//! with a torn last record delivers every notification it acknowledged; a full queue drops
//! info before warning and never a critical notification.

mod uplink_support;

use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::Arc;

use appliance::config::{Bounded, DurationSecs};
use sited::uplink::notification::rfc3339;
use sited::uplink::{Notification, Outbox};
use tokio_util::sync::CancellationToken;
use uplink_support::{Alertmanager, ago, alert, journal_path, notification, wait_status};

fn run(outbox: &Arc<Outbox>) -> CancellationToken {
    let cancel = CancellationToken::new();
    tokio::spawn(Arc::clone(outbox).run(cancel.clone()));
    cancel
}

#[tokio::test]
async fn notifications_queue_while_alertmanager_is_down_and_arrive_in_order() {
    let mut am = Alertmanager::start(Ipv4Addr::new(127, 72, 2, 1)).await;
    let state = tempfile::tempdir().unwrap();
    let outbox = Arc::new(Outbox::open(state.path(), am.settings()).unwrap());
    let cancel = run(&outbox);
    let intrusion_at = ago(120);
    outbox
        .enqueue(notification(
            "intrusion",
            "raised",
            "critical",
            intrusion_at,
        ))
        .unwrap();
    am.wait_for("the intrusion alert", |a| alert(a, "intrusion").is_some())
        .await;

    // The uplink is cut: Alertmanager is gone (and forgets everything it held).
    am.stop();
    let door_closed_at = ago(30);
    let flap_again_at = ago(10);
    let during = [
        notification("door-open", "raised", "critical", ago(60)),
        notification("door-open", "cleared", "", door_closed_at),
        notification("arrester-trip", "raised", "warning", ago(50)),
        notification("arrester-trip", "cleared", "", ago(40)),
        notification("arrester-trip", "raised", "warning", flap_again_at),
        notification("hall-a-hot", "raised", "info", ago(5)),
    ];
    for n in during.clone() {
        outbox.enqueue(n).unwrap();
    }
    let status = wait_status(&outbox, "a failed attempt", |s| {
        s.last_error.is_some() && !s.reachable
    })
    .await;
    assert_eq!(status.queued, during.len(), "{status:#?}");
    assert_eq!(status.delivered_total, 1);

    // The uplink returns.
    am.launch().await;
    let status = wait_status(&outbox, "the queue delivered", |s| s.queued == 0).await;
    assert_eq!(status.delivered_total, 1 + during.len() as u64);
    let alerts = am
        .wait_for("the active alarms", |a| {
            alert(a, "intrusion").is_some()
                && alert(a, "arrester-trip").is_some()
                && alert(a, "hall-a-hot").is_some()
        })
        .await;
    // In order: the door's clear came after its raise, so it is resolved (not listed); the
    // arrester's last raise came after its clear, so it fires since then.
    assert!(alert(&alerts, "door-open").is_none(), "{alerts:#?}");
    assert_eq!(
        alert(&alerts, "arrester-trip").unwrap()["startsAt"],
        rfc3339(flap_again_at)
    );
    // Raised before the outage and still active: sent again, with its own start.
    assert_eq!(
        alert(&alerts, "intrusion").unwrap()["startsAt"],
        rfc3339(intrusion_at)
    );
    assert!(outbox.status().reachable);
    assert_eq!(outbox.status().last_error, None);
    cancel.cancel();
}

#[tokio::test]
async fn an_outbox_reopened_after_a_crash_delivers_every_acknowledged_notification() {
    let mut am = Alertmanager::prepare(Ipv4Addr::new(127, 72, 2, 2));
    let state = tempfile::tempdir().unwrap();
    let acknowledged = [
        notification("generator-fail", "raised", "critical", ago(40)),
        notification("seal-pressure-low", "raised", "warning", ago(30)),
        notification("filter-fault", "raised", "info", ago(20)),
    ];
    {
        // Alertmanager unreachable; the daemon is killed: no flush, no shutdown.
        let outbox = Outbox::open(state.path(), am.settings()).unwrap();
        for n in acknowledged.clone() {
            outbox.enqueue(n).unwrap();
        }
    }
    // The power went while a fourth notification was being written: its `enqueue` never
    // returned, and half of it is on disk.
    let whole = std::fs::read(journal_path(state.path())).unwrap();
    let first_record_len = 12 + u32::from_le_bytes(whole[..4].try_into().unwrap()) as usize;
    std::fs::OpenOptions::new()
        .append(true)
        .open(journal_path(state.path()))
        .unwrap()
        .write_all(&whole[..first_record_len / 2])
        .unwrap();

    let outbox = Arc::new(Outbox::open(state.path(), am.settings()).unwrap());
    assert_eq!(outbox.status().queued, acknowledged.len());
    am.launch().await;
    let cancel = run(&outbox);
    let alerts = am
        .wait_for("every acknowledged notification", |a| {
            acknowledged.iter().all(|n| alert(a, &n.alarm).is_some())
        })
        .await;
    for n in &acknowledged {
        let arrived = alert(&alerts, &n.alarm).unwrap();
        assert_eq!(arrived["startsAt"], rfc3339(n.at));
        assert_eq!(arrived["labels"]["severity"], n.severity);
    }
    let status = wait_status(&outbox, "the queue delivered", |s| s.queued == 0).await;
    assert_eq!(status.delivered_total, acknowledged.len() as u64);
    cancel.cancel();
}

#[tokio::test]
async fn a_full_queue_drops_info_first_and_never_a_critical_notification() {
    let mut am = Alertmanager::prepare(Ipv4Addr::new(127, 72, 2, 3));
    let state = tempfile::tempdir().unwrap();
    let mut settings = am.settings();
    settings.queue_limit = Bounded::from_const(4);
    let outbox = Arc::new(Outbox::open(state.path(), settings).unwrap());
    let cancel = run(&outbox);
    let sequence: Vec<Notification> = vec![
        notification("i1", "raised", "info", ago(70)),
        notification("i2", "raised", "info", ago(60)),
        notification("c1", "raised", "critical", ago(50)),
        notification("c2", "raised", "critical", ago(40)),
        notification("c3", "raised", "critical", ago(30)), // drops i1
        notification("c4", "raised", "critical", ago(20)), // drops i2
        notification("w1", "raised", "warning", ago(10)),  // dropped itself
        notification("c5", "raised", "critical", ago(5)),  // kept beyond the limit
    ];
    for n in sequence {
        outbox.enqueue(n).unwrap();
    }
    let status = outbox.status();
    assert_eq!(status.dropped_total, 3);
    assert_eq!(status.queued, 5);

    am.launch().await;
    let status = wait_status(&outbox, "the queue delivered", |s| s.queued == 0).await;
    assert_eq!(status.delivered_total, 5, "the five critical notifications");
    // Every critical alarm arrived; the dropped ones' history is gone, but as they are still
    // active the firing set brings them to the control centre all the same.
    am.wait_for("every active alarm", |a| {
        ["c1", "c2", "c3", "c4", "c5", "i1", "i2", "w1"]
            .iter()
            .all(|name| alert(a, name).is_some())
    })
    .await;
    cancel.cancel();
}

#[tokio::test]
async fn a_restarted_alertmanager_gets_the_active_alarms_again_without_a_new_notification() {
    let mut am = Alertmanager::start(Ipv4Addr::new(127, 72, 2, 4)).await;
    let state = tempfile::tempdir().unwrap();
    let mut settings = am.settings();
    settings.resend_every = DurationSecs::from_const(5);
    let outbox = Arc::new(Outbox::open(state.path(), settings).unwrap());
    let raised_at = ago(300);
    let active = notification("shield-se-low", "raised", "critical", raised_at);
    outbox.set_active(vec![active]);
    let cancel = run(&outbox);
    // Nothing queued: the active set alone reaches the control centre, and again and again.
    let first = am
        .wait_for("the active alarm", |a| alert(a, "shield-se-low").is_some())
        .await;
    let first_update = alert(&first, "shield-se-low").unwrap()["updatedAt"].clone();
    am.wait_for("the active alarm sent again", |a| {
        alert(a, "shield-se-low").is_some_and(|x| {
            x["updatedAt"].as_str().unwrap_or_default() > first_update.as_str().unwrap()
        })
    })
    .await;

    // Alertmanager restarts and forgets it; the re-sending brings it back.
    am.stop();
    am.launch().await;
    let alerts = am
        .wait_for("the active alarm again", |a| {
            alert(a, "shield-se-low").is_some()
        })
        .await;
    assert_eq!(
        alert(&alerts, "shield-se-low").unwrap()["startsAt"],
        rfc3339(raised_at)
    );
    assert_eq!(
        outbox.status().delivered_total,
        0,
        "no notification was queued"
    );
    cancel.cancel();
}
