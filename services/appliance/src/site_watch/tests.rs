//! The watch against a real private `dbus-daemon`, with [`StandInSite`] as sited.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;
use zbus::export::futures_core::Stream;
use zbus::{MatchRule, MessageStream};

use super::{SiteReport, SiteWatch};
use crate::dbus::contracts::{SITE, SiteBudget, SiteState};
use crate::dbus::testbus::TestBus;
use crate::dbus::testsite::{ROOMY_BUDGET, StandInSite};
use crate::dbus::{Bus, connect};

/// Bound for what should be prompt on an idle machine.
const PATIENCE: Duration = Duration::from_secs(20);
/// How long a watch that heard something it should have ignored is given to show it; the
/// messages are already in its socket when this starts.
const QUIET: Duration = Duration::from_millis(500);

/// A report with the budget the stand-in starts with.
fn report(state: SiteState, reason: &str) -> Option<SiteReport> {
    budgeted(state, reason, ROOMY_BUDGET.0, ROOMY_BUDGET.1)
}

/// A report from a sited that publishes no budget.
fn plain(state: SiteState, reason: &str) -> Option<SiteReport> {
    Some(SiteReport {
        state,
        reason: reason.to_owned(),
        budget: None,
    })
}

fn budgeted(state: SiteState, reason: &str, watts: f64, headroom: f64) -> Option<SiteReport> {
    Some(SiteReport {
        state,
        reason: reason.to_owned(),
        budget: Some(SiteBudget::new(watts, headroom).expect("a budget a site can have")),
    })
}

async fn wait_for(reports: &mut watch::Receiver<Option<SiteReport>>, want: Option<SiteReport>) {
    let seen = tokio::time::timeout(PATIENCE, reports.wait_for(|r| *r == want))
        .await
        .map(|seen| seen.map(|_| ()));
    match seen {
        Ok(seen) => seen.expect("the watch is running"),
        Err(_) => panic!(
            "no report {want:?} within {PATIENCE:?}; last {:?}",
            *reports.borrow()
        ),
    }
}

/// Nothing is published for [`QUIET`], and the report is still `expected`.
async fn stays(reports: &mut watch::Receiver<Option<SiteReport>>, expected: Option<SiteReport>) {
    tokio::time::sleep(QUIET).await;
    assert!(
        !reports.has_changed().expect("the watch is running"),
        "published {:?}",
        *reports.borrow()
    );
    assert_eq!(*reports.borrow(), expected);
}

async fn site(bus: &Bus, state: SiteState, reason: &str) -> StandInSite {
    StandInSite::start(bus, state, reason)
        .await
        .expect("the stand-in owns org.bunkeros.Site1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_the_state_at_start_and_applies_every_change() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let sited = site(&bus.bus(), SiteState::Warning, "the UPS runs on battery").await;

    let watch = SiteWatch::start(bus.bus()).await.expect("watch starts");
    let started = report(SiteState::Warning, "the UPS runs on battery");
    assert_eq!(watch.latest(), started, "read before start returns");
    let mut reports = watch.reports();

    sited
        .set(SiteState::Lockdown, "door 3 was forced open")
        .await
        .unwrap();
    wait_for(
        &mut reports,
        report(SiteState::Lockdown, "door 3 was forced open"),
    )
    .await;
    sited
        .set(SiteState::Lockdown, "door 3 and door 4 were forced open")
        .await
        .unwrap();
    wait_for(
        &mut reports,
        report(SiteState::Lockdown, "door 3 and door 4 were forced open"),
    )
    .await;
    sited.set(SiteState::Normal, "").await.unwrap();
    wait_for(&mut reports, report(SiteState::Normal, "")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_sited_as_it_comes_goes_and_restarts() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let watch = SiteWatch::start(bus.bus()).await.expect("watch starts");
    assert_eq!(watch.latest(), None, "no sited on the bus");
    let mut reports = watch.reports();

    // sited arrives: no signal is sent, so only reading it on the new owner can tell
    let sited = site(&bus.bus(), SiteState::Critical, "inlet air at 41 °C").await;
    wait_for(
        &mut reports,
        report(SiteState::Critical, "inlet air at 41 °C"),
    )
    .await;

    sited.stop().await.unwrap();
    wait_for(&mut reports, None).await;

    // a restarted sited in another state, again without a signal
    let sited = site(
        &bus.bus(),
        SiteState::Lockdown,
        "shielding breach in hall B",
    )
    .await;
    wait_for(
        &mut reports,
        report(SiteState::Lockdown, "shielding breach in hall B"),
    )
    .await;
    sited
        .set(SiteState::Warning, "hall B resealed")
        .await
        .unwrap();
    wait_for(&mut reports, report(SiteState::Warning, "hall B resealed")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_changed_from_another_connection_is_ignored() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let sited = site(&bus.bus(), SiteState::Normal, "").await;
    let watch = SiteWatch::start(bus.bus()).await.expect("watch starts");
    let mut reports = watch.reports();
    assert_eq!(*reports.borrow_and_update(), report(SiteState::Normal, ""));

    // A witness that listens for StateChanged from anyone: it proves the bus does deliver the
    // forgeries below, so only the watch's check of the sender can keep them out.
    let witness = connect(&bus.bus()).await.unwrap();
    let rule = MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(SITE.bus_name)
        .unwrap()
        .member("StateChanged")
        .unwrap()
        .build();
    let mut witnessed = MessageStream::for_match_rule(rule, &witness, None)
        .await
        .unwrap();

    let forger = connect(&bus.bus()).await.unwrap();
    let dbus = zbus::fdo::DBusProxy::new(&forger).await.unwrap();
    // broadcast, as sited emits it
    forger
        .emit_signal(
            None::<&str>,
            SITE.object_path,
            SITE.bus_name,
            "StateChanged",
            &("lockdown", "forged broadcast"),
        )
        .await
        .unwrap();
    // and addressed to every connection on the bus, the watch's among them
    let own = forger.unique_name().unwrap().to_string();
    for name in dbus.list_names().await.unwrap() {
        if name.starts_with(':') && name.as_str() != own {
            forger
                .emit_signal(
                    Some(name.as_str()),
                    SITE.object_path,
                    SITE.bus_name,
                    "StateChanged",
                    &("lockdown", "forged unicast"),
                )
                .await
                .unwrap();
        }
    }
    // the bus has handled every forgery once it answers this
    dbus.get_id().await.unwrap();

    let mut forgeries = Vec::new();
    while forgeries.len() < 2 {
        let message = tokio::time::timeout(
            PATIENCE,
            poll_fn(|cx| Pin::new(&mut witnessed).poll_next(cx)),
        )
        .await
        .expect("the witness hears both forgeries")
        .expect("stream open")
        .unwrap();
        let (_, reason): (String, String) = message.body().deserialize().unwrap();
        forgeries.push(reason);
    }
    forgeries.sort();
    assert_eq!(forgeries, ["forged broadcast", "forged unicast"]);

    stays(&mut reports, report(SiteState::Normal, "")).await;

    // the watch still hears sited itself
    sited
        .set(SiteState::Warning, "generator test")
        .await
        .unwrap();
    wait_for(&mut reports, report(SiteState::Warning, "generator test")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_nobody_knows_changes_nothing() {
    let bus = TestBus::start().expect("private dbus-daemon");

    // read on a new owner: nothing was known, and still nothing is
    let watch = SiteWatch::start(bus.bus()).await.expect("watch starts");
    let mut reports = watch.reports();
    let sited = StandInSite::start_words(&bus.bus(), "meltdown", "a newer sited")
        .await
        .unwrap();
    stays(&mut reports, None).await;

    // a valid signal is applied, a malformed one is not
    sited.set(SiteState::Warning, "UPS test").await.unwrap();
    wait_for(&mut reports, report(SiteState::Warning, "UPS test")).await;
    for word in ["", "Normal", "all clear"] {
        sited.set_words(word, "").await.unwrap();
        stays(&mut reports, report(SiteState::Warning, "UPS test")).await;
    }
    sited.set(SiteState::Normal, "").await.unwrap();
    wait_for(&mut reports, report(SiteState::Normal, "")).await;

    // and a malformed read at start leaves the watch with no report
    sited.set_words("lockdown!", "").await.unwrap();
    let late = SiteWatch::start(bus.bus()).await.expect("watch starts");
    assert_eq!(late.latest(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeps_following_across_a_restart_of_the_bus() {
    let mut bus = TestBus::start().expect("private dbus-daemon");
    let sited = site(&bus.socket_bus(), SiteState::Critical, "cooling failure").await;
    let watch = SiteWatch::start(bus.socket_bus())
        .await
        .expect("watch starts");
    let mut reports = watch.reports();
    assert_eq!(
        *reports.borrow_and_update(),
        report(SiteState::Critical, "cooling failure")
    );

    bus.restart().expect("the bus starts again");
    wait_for(&mut reports, None).await;
    drop(sited);

    let _sited = site(&bus.socket_bus(), SiteState::Lockdown, "intrusion").await;
    wait_for(&mut reports, report(SiteState::Lockdown, "intrusion")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_ends_when_nobody_listens() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let watch = SiteWatch::start(bus.bus()).await.expect("watch starts");
    let reports = watch.reports();
    let dbus = zbus::fdo::DBusProxy::new(&connect(&bus.bus()).await.unwrap())
        .await
        .unwrap();
    let before = dbus.list_names().await.unwrap().len();
    drop(watch);
    drop(reports);
    // the watch's connection leaves the bus
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while dbus.list_names().await.unwrap().len() >= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the watch is still on the bus"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A sited that owns its name before it serves its object (or whose policy refuses us at first).
struct LateSite;

#[zbus::interface(name = "org.bunkeros.Site1")]
impl LateSite {
    #[zbus(property)]
    fn state(&self) -> String {
        "critical".to_owned()
    }

    #[zbus(property)]
    fn state_reason(&self) -> String {
        "the UPS is overloaded".to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sited_that_does_not_answer_yet_is_asked_again() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let watch = SiteWatch::start(bus.bus()).await.expect("watch starts");
    let mut reports = watch.reports();

    // the connection answers (UnknownObject) once its object server runs: start it, then
    // take the name, so the watch's read on the new owner is refused rather than unanswered
    let sited = connect(&bus.bus()).await.unwrap();
    let objects = sited.object_server();
    sited.request_name(SITE.bus_name).await.unwrap();
    stays(&mut reports, None).await;

    objects.at(SITE.object_path, LateSite).await.unwrap();
    wait_for(
        &mut reports,
        plain(SiteState::Critical, "the UPS is overloaded"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_the_budget_and_keeps_it_across_state_changes() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let sited = site(&bus.bus(), SiteState::Normal, "").await;
    sited.set_budget(180_000.0, 6.5).await.unwrap();
    let watch = SiteWatch::start(bus.bus()).await.expect("watch starts");
    assert_eq!(
        watch.latest(),
        budgeted(SiteState::Normal, "", 180_000.0, 6.5),
        "the budget is read with the state"
    );
    let mut reports = watch.reports();

    // the UPS goes on battery: the budget drops, the state stays
    sited.set_budget(40_000.0, 6.5).await.unwrap();
    wait_for(&mut reports, budgeted(SiteState::Normal, "", 40_000.0, 6.5)).await;
    // a state change keeps the budget last heard
    sited
        .set(SiteState::Warning, "the UPS runs on battery")
        .await
        .unwrap();
    wait_for(
        &mut reports,
        budgeted(SiteState::Warning, "the UPS runs on battery", 40_000.0, 6.5),
    )
    .await;
    // over temperature: negative headroom is a real reading
    sited.set_budget(40_000.0, -1.5).await.unwrap();
    wait_for(
        &mut reports,
        budgeted(
            SiteState::Warning,
            "the UPS runs on battery",
            40_000.0,
            -1.5,
        ),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_that_is_not_a_number_of_watts_is_ignored() {
    let bus = TestBus::start().expect("private dbus-daemon");
    let sited = site(&bus.bus(), SiteState::Normal, "").await;
    sited.set_budget(90_000.0, 4.0).await.unwrap();
    let watch = SiteWatch::start(bus.bus()).await.expect("watch starts");
    let mut reports = watch.reports();
    let kept = budgeted(SiteState::Normal, "", 90_000.0, 4.0);
    assert_eq!(*reports.borrow_and_update(), kept);

    for (watts, headroom) in [
        (f64::NAN, 4.0),
        (-5.0, 4.0),
        (f64::INFINITY, 4.0),
        (90_000.0, f64::NAN),
    ] {
        sited.set_budget(watts, headroom).await.unwrap();
        stays(&mut reports, kept.clone()).await;
    }
    // and a good one after the nonsense still counts
    sited.set_budget(70_000.0, 4.0).await.unwrap();
    wait_for(&mut reports, budgeted(SiteState::Normal, "", 70_000.0, 4.0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_raised_at_the_stand_in_are_recorded_in_order() {
    use crate::dbus::contracts::Site1Proxy;
    use crate::dbus::testsite::RaisedAlarm;
    let bus = TestBus::start().expect("private dbus-daemon");
    let sited = site(&bus.bus(), SiteState::Normal, "").await;
    let client = connect(&bus.bus()).await.unwrap();
    let proxy = Site1Proxy::new(&client).await.unwrap();
    proxy
        .raise_alarm(
            "minerd",
            "hijack/10.1.0.7",
            "critical",
            "foreign pool",
            "{}",
        )
        .await
        .unwrap();
    proxy
        .clear_alarm("minerd", "hijack/10.1.0.7")
        .await
        .unwrap();
    let alarms = sited.alarms().await.unwrap();
    assert_eq!(alarms.len(), 2);
    assert_eq!(
        alarms[0],
        RaisedAlarm {
            source: "minerd".into(),
            key: "hijack/10.1.0.7".into(),
            severity: Some("critical".into()),
            summary: "foreign pool".into(),
            detail: "{}".into(),
        }
    );
    assert_eq!(alarms[1].severity, None);
}
