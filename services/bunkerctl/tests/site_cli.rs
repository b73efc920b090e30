//! The real `bunkerctl site` binary on a private `dbus-daemon` without sited, and with only
//! `appliance::dbus::testsite`'s stand-in (which serves the site's state properties, not the
//! operators' methods). What sited answers is tested against sited itself; the subject here is
//! what the operator reads when sited cannot answer: one sentence and exit status 1.

use std::process::{Command, Output};

use appliance::dbus::contracts::SiteState;
use appliance::dbus::testbus::TestBus;
use appliance::dbus::testsite::StandInSite;

/// Every subcommand that asks sited over the bus.
const ASKING: [&[&str]; 7] = [
    &["site", "state"],
    &["site", "sensors", "--lost"],
    &["site", "alarms", "--all"],
    &["site", "ack", "door-1-open", "--note", "seal checked"],
    &[
        "site",
        "silence",
        "--alarm",
        "door-*",
        "--for",
        "2h",
        "--comment",
        "maintenance",
    ],
    &["site", "unsilence", "7"],
    &["site", "silences"],
];

fn bunkerctl(bus: &TestBus, args: &[&str]) -> Output {
    // The runtime's thread may block here: bunkerctl is a child process with its own runtime.
    tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_bunkerctl"))
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", bus.address())
            .output()
            .expect("bunkerctl runs")
    })
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn without_sited_every_command_says_it_is_not_running() {
    let bus = TestBus::start().expect("dbus-daemon starts");
    for args in ASKING {
        let absent = bunkerctl(&bus, args);
        assert_eq!(absent.status.code(), Some(1), "{args:?}");
        assert_eq!(absent.stdout, b"", "{args:?}");
        assert_eq!(
            stderr(&absent),
            "bunkerctl: sited is not running (org.bunkeros.Site1 is not on the system bus)\n",
            "{args:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sited_that_refuses_is_quoted_in_one_line() {
    let bus = TestBus::start().expect("dbus-daemon starts");
    let _site = StandInSite::start(&bus.bus(), SiteState::Normal, "")
        .await
        .expect("the stand-in serves Site1");
    for args in ASKING {
        let refused = bunkerctl(&bus, args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert_eq!(refused.stdout, b"", "{args:?}");
        let sentence = stderr(&refused);
        assert!(
            sentence.starts_with("bunkerctl: sited refused (UnknownMethod): "),
            "{args:?}: {sentence}"
        );
        assert_eq!(sentence.lines().count(), 1, "{sentence}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silence_too_long_is_refused_before_asking() {
    let bus = TestBus::start().expect("dbus-daemon starts");
    let refused = bunkerctl(
        &bus,
        &[
            "site",
            "silence",
            "--alarm",
            "door-*",
            "--for",
            "31d",
            "--comment",
            "c",
        ],
    );
    assert_eq!(
        refused.status.code(),
        Some(2),
        "a usage error, as clap reports them"
    );
    assert!(
        stderr(&refused).contains("a silence lasts from 1 s to 30 days"),
        "{}",
        stderr(&refused)
    );
}
