use serde_json::json;

use super::*;

/// sited's `Status` document as it sends it (keys as `sited::documents::status` writes them).
fn status(state: &str, reason: &str, active: u64, unacknowledged: u64, critical: u64) -> Value {
    json!({
        "state": state,
        "reason": reason,
        "power_budget_w": 550000.0,
        "thermal_headroom_c": 12.5,
        "power": {"source": "grid", "why": ""},
        "sensors": {"total": 40, "ok": 40, "lost": 0},
        "alarms": {"active": active, "unacknowledged": unacknowledged, "critical": critical},
        "silences": 0,
        "relays": [],
        "uplink": {"configured": false, "queued": 0},
        "log": {"records": 3, "last_sealed_seq": null},
        "taken_at": "2026-01-01T12:00:00Z",
    })
}

fn alarm(name: &str, severity: &str, active: bool, summary: &str) -> Value {
    json!({
        "alarm": name,
        "severity": severity,
        "summary": summary,
        "active": active,
        "raised_at": "2026-01-01T11:59:00Z",
        "cleared_at": null,
        "acknowledged": null,
        "escalation_step": 0,
        "site_state": "normal",
        "inhibited_by": null,
        "silenced_by": null,
        "sensors": [],
        "detail": null,
    })
}

#[test]
fn a_normal_site_is_two_lines() {
    let site = SiteSummary::Present {
        status: status("normal", "", 0, 0, 0),
        alarms: json!([]),
    };
    assert_eq!(
        render(&site, Palette::Plain),
        "Site: normal\n  budget 550.00 kW from grid · alarms 0 active, 0 unacknowledged, 0 critical\n"
    );
}

#[test]
fn lockdown_shows_why_and_the_first_critical_alarm() {
    let site = SiteSummary::Present {
        status: status("lockdown", "intrusion contact 1 is active", 2, 2, 2),
        alarms: json!([
            alarm("hall-1-hot", "warning", true, "hall 1 is running warm"),
            alarm(
                "arrester-1-tripped",
                "critical",
                false,
                "surge arrester 1 has tripped"
            ),
            alarm(
                "intrusion-1",
                "critical",
                true,
                "intrusion contact 1 is active"
            ),
            alarm(
                "intrusion-2",
                "critical",
                true,
                "intrusion contact 2 is active"
            ),
        ]),
    };
    assert_eq!(
        render(&site, Palette::Plain),
        "\
Site: lockdown — intrusion contact 1 is active
  budget 550.00 kW from grid · alarms 2 active, 2 unacknowledged, 2 critical
  critical intrusion-1: intrusion contact 1 is active
"
    );
}

#[test]
fn colour_marks_the_state_and_the_critical_alarm() {
    let site = SiteSummary::Present {
        status: status("lockdown", "intrusion", 1, 1, 1),
        alarms: json!([alarm("intrusion-1", "critical", true, "intrusion")]),
    };
    let text = render(&site, Palette::Ansi);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Site: \x1b[31mlockdown\x1b[0m — intrusion");
    assert_eq!(lines[2], "\x1b[31m  critical intrusion-1: intrusion\x1b[0m");
    let normal = SiteSummary::Present {
        status: status("normal", "", 0, 0, 0),
        alarms: json!([]),
    };
    assert!(render(&normal, Palette::Ansi).starts_with("Site: \x1b[32mnormal\x1b[0m\n"));
}

#[test]
fn sited_absent_is_a_site_without_monitoring_not_an_error() {
    assert_eq!(
        render(&SiteSummary::Absent, Palette::Plain),
        "Site: not monitored (sited is not on the system bus)\n"
    );
    assert_eq!(
        render(&SiteSummary::Absent, Palette::Ansi),
        "\x1b[2mSite: not monitored (sited is not on the system bus)\x1b[0m\n"
    );
}

#[test]
fn an_unreadable_site_says_why_in_one_line() {
    let text = render(
        &SiteSummary::Unreadable("sited did not answer within 3 s".into()),
        Palette::Plain,
    );
    assert_eq!(text, "Site: unknown (sited did not answer within 3 s)\n");
    assert_eq!(
        parsed("{\"state\":", "[]"),
        SiteSummary::Unreadable("sited sent a document that is not JSON".into())
    );
}

#[test]
fn fields_sited_does_not_send_show_as_dashes() {
    let site = parsed(r#"{"state":"warning"}"#, "null");
    assert_eq!(
        render(&site, Palette::Plain),
        "Site: warning\n  budget - · alarms - active, - unacknowledged, - critical\n"
    );
}

#[test]
fn every_line_fits_the_console_and_cannot_send_escape_sequences() {
    let long = "the grid feed is lost and the generators did not start ".repeat(3);
    let site = SiteSummary::Present {
        status: status("critical", &format!("{long}\x1b[2J"), 1, 1, 1),
        alarms: json!([alarm(
            "grid-lost",
            "critical",
            true,
            &format!("\x1b[2J{long}")
        )]),
    };
    let text = render(&site, Palette::Plain);
    for line in text.lines() {
        assert!(line.chars().count() <= CONSOLE_WIDTH, "{line:?}");
        assert!(!line.contains('\x1b'), "{line:?}");
    }
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("Site: critical — the grid feed is lost"));
    assert!(lines[0].ends_with('…'));
    assert!(lines[2].starts_with("  critical grid-lost: ?[2Jthe grid feed"));
    assert!(lines[2].ends_with('…'));
}

/// The read side on a private bus: nobody owns Site1 (absent), then a stand-in that owns it but
/// serves only the state properties (on the bus, but its answer is a refusal, said in one line).
#[tokio::test(flavor = "multi_thread")]
async fn absent_and_refusing_sited_on_a_real_bus() {
    use appliance::dbus::contracts::SiteState;
    use appliance::dbus::testbus::TestBus;
    use appliance::dbus::testsite::StandInSite;

    let bus = TestBus::start().expect("dbus-daemon starts");
    let connection = zbus::connection::Builder::address(bus.address())
        .unwrap()
        .build()
        .await
        .unwrap();
    assert_eq!(read(&connection).await, SiteSummary::Absent);

    let site = StandInSite::start(&bus.bus(), SiteState::Normal, "")
        .await
        .expect("the stand-in serves Site1");
    match read(&connection).await {
        SiteSummary::Unreadable(why) => {
            assert!(why.starts_with("sited: UnknownMethod: "), "{why}");
            let line = render(&SiteSummary::Unreadable(why), Palette::Plain);
            assert!(line.starts_with("Site: unknown (sited: UnknownMethod"));
            assert_eq!(line.lines().count(), 1);
        }
        other => panic!("a stand-in without Status is unreadable, not {other:?}"),
    }
    site.stop().await.unwrap();
    assert_eq!(read(&connection).await, SiteSummary::Absent);
}
