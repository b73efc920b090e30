//! `bunkerctl site`: the operator's view and controls of sited, over `org.bunkeros.Site1` on the
//! system bus.
//!
//! Reads ask sited once and print its document as text (or as sited sent it, with `--json`);
//! acknowledgements and silences are one call each, answered with sited's own sentence when it
//! refuses. The event log is verified offline from the file ([`crate::audit_verify`]).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use appliance::dbus::contracts::{SITE, Site1Proxy};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::Value;

use crate::audit_verify::{self, AuditCommand, Sited};
use crate::bus_call;
use crate::layout::{list, wrapped};
use crate::site_args::SilenceDuration;
use crate::site_view::{self, SensorFilter};
use crate::terminal::{Palette, print};
use crate::time_display::{format_utc, now_usec};

/// How long sited may take to answer (it answers from what it holds in memory).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// `bunkerctl site …`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum SiteCommand {
    /// The site on one screen: state and why, power budget and its source, thermal headroom,
    /// sensors ok/lost, alarms, silences, relays, the uplink's queue, the event log
    State {
        /// Print sited's status document (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
    /// The sensors by name: bus, value and unit, state, since when; why a lost one is lost
    Sensors {
        /// Only the lost sensors
        #[arg(long)]
        lost: bool,
        /// Only sensors whose name matches GLOB (`*` matches any run of characters)
        #[arg(long = "match", value_name = "GLOB")]
        pattern: Option<String>,
        /// Print sited's JSON array (the sensors shown) instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Active alarms and cleared ones waiting for acknowledgement, in raise order
    Alarms {
        /// Also the silenced and inhibited alarms (counted, not listed, without it)
        #[arg(long)]
        all: bool,
        /// Print sited's JSON array (the alarms shown) instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an alarm; recorded in sited's event log with your user id
    Ack {
        /// The alarm's name, as `bunkerctl site alarms` shows it
        alarm: String,
        /// Why, or what is being done about it
        #[arg(long, value_name = "TEXT", default_value = "")]
        note: String,
    },
    /// Hold back the notifications of alarms for a while (the alarms and the site state do not
    /// change); prints the silence's id
    #[command(after_help = "\
DURATION is a number and a unit, s, m, h or d (45s, 30m, 2h, 1d, or 1h30m), from 1 s to 30 days. \
GLOB matches alarm names (--alarm) or the names of the alarms' sensors (--sensor); `*` matches \
any run of characters.")]
    Silence(SilenceArgs),
    /// End a silence early
    Unsilence {
        /// The silence's id, as `bunkerctl site silences` shows it
        id: u64,
    },
    /// The silences in force: what they match, who set them and why, until when
    Silences {
        /// Print sited's JSON array as it sent it
        #[arg(long)]
        json: bool,
    },
    /// sited's event log (alarm transitions, acknowledgements, silences)
    Log {
        #[command(subcommand)]
        cmd: AuditCommand<Sited>,
    },
}

/// What `site silence` takes.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(group(ArgGroup::new("target").required(true).args(["alarm", "sensor"])))]
pub struct SilenceArgs {
    /// Silence the alarms whose name matches GLOB
    #[arg(long, value_name = "GLOB")]
    pub alarm: Option<String>,
    /// Silence the alarms on sensors whose name matches GLOB
    #[arg(long, value_name = "GLOB")]
    pub sensor: Option<String>,
    /// How long, e.g. 30m, 2h, 1d
    #[arg(long = "for", value_name = "DURATION", value_parser = SilenceDuration::parse)]
    pub duration: SilenceDuration,
    /// Why (recorded in sited's event log with your user id)
    #[arg(long, value_name = "TEXT")]
    pub comment: String,
}

impl SilenceArgs {
    /// What the silence matches, as sited's `Silence` takes it: (`alarm` or `sensor`, pattern).
    fn target(&self) -> (&'static str, &str) {
        match (&self.alarm, &self.sensor) {
            (Some(pattern), _) => ("alarm", pattern),
            (None, Some(pattern)) => ("sensor", pattern),
            // clap's group requires one of the two.
            (None, None) => ("alarm", ""),
        }
    }
}

/// Runs a `site` subcommand and returns its exit status.
pub fn run(cmd: SiteCommand) -> Result<ExitCode> {
    let call = match cmd {
        SiteCommand::Log { cmd } => return audit_verify::run(cmd),
        SiteCommand::State { json } => Call::State { json },
        SiteCommand::Sensors {
            lost,
            pattern,
            json,
        } => Call::Sensors {
            filter: SensorFilter {
                lost_only: lost,
                pattern,
            },
            json,
        },
        SiteCommand::Alarms { all, json } => Call::Alarms { all, json },
        SiteCommand::Silences { json } => Call::Silences { json },
        SiteCommand::Ack { alarm, note } => Call::Ack { alarm, note },
        SiteCommand::Silence(args) => Call::Silence(args),
        SiteCommand::Unsilence { id } => Call::Unsilence { id },
    };
    let palette = Palette::for_stdout();
    bus_call::on_system_bus(ANSWER_TIMEOUT, async |connection| {
        let site = Site1Proxy::new(connection)
            .await
            .context("creating the org.bunkeros.Site1 proxy")?;
        let text = ask(&site, call, palette).await?;
        print(&text)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// One call to sited: every subcommand but the offline `log verify`.
enum Call {
    State { json: bool },
    Sensors { filter: SensorFilter, json: bool },
    Alarms { all: bool, json: bool },
    Silences { json: bool },
    Ack { alarm: String, note: String },
    Silence(SilenceArgs),
    Unsilence { id: u64 },
}

/// What a call prints.
async fn ask(site: &Site1Proxy<'_>, call: Call, palette: Palette) -> Result<String> {
    let now = now_usec();
    match call {
        Call::State { json } => {
            let document = site.status().await.map_err(refused)?;
            rendered(&document, json, |status| {
                site_view::render_state(status, palette)
            })
        }
        Call::Sensors { filter, json } => {
            let sensors = parse(&site.sensors().await.map_err(refused)?)?;
            if json {
                return Ok(json_array(&sensors, |s| filter.keeps(s)));
            }
            Ok(site_view::render_sensors(&sensors, &filter, now, palette))
        }
        Call::Alarms { all, json } => {
            let alarms = parse(&site.alarms().await.map_err(refused)?)?;
            if json {
                return Ok(json_array(&alarms, |a| all || !site_view::held_back(a)));
            }
            Ok(site_view::render_alarms(&alarms, all, now, palette))
        }
        Call::Silences { json } => {
            let document = site.silences().await.map_err(refused)?;
            rendered(&document, json, |silences| {
                site_view::render_silences(silences, now, palette)
            })
        }
        Call::Ack { alarm, note } => {
            site.acknowledge(&alarm, &note).await.map_err(refused)?;
            Ok(format!(
                "alarm {alarm} acknowledged; recorded in sited's event log\n"
            ))
        }
        Call::Silence(args) => {
            let (what, pattern) = args.target();
            let id = site
                .silence(what, pattern, args.duration.seconds(), &args.comment)
                .await
                .map_err(refused)?;
            let until = now + args.duration.seconds() * 1_000_000;
            Ok(silenced_sentence(id, what, pattern, args.duration, until))
        }
        Call::Unsilence { id } => {
            site.unsilence(id).await.map_err(refused)?;
            Ok(format!(
                "silence {id} ended; the notifications of its alarms resume\n"
            ))
        }
    }
}

/// `document` as sited sent it (`json`), or as `render` lays it out.
fn rendered(document: &str, json: bool, render: impl FnOnce(&Value) -> String) -> Result<String> {
    if json {
        return Ok(format!("{document}\n"));
    }
    Ok(render(&parse(document)?))
}

fn parse(document: &str) -> Result<Value> {
    serde_json::from_str(document).context("sited's answer is not JSON")
}

/// The items of `array` that `keep` keeps, as one line of JSON.
fn json_array(array: &Value, keep: impl Fn(&Value) -> bool) -> String {
    let kept: Vec<&Value> = list(array).iter().filter(|item| keep(item)).collect();
    format!("{}\n", serde_json::to_string(&kept).unwrap_or_default())
}

/// What `site silence` prints: the id first, then what it holds back until when, and how to
/// end it.
pub fn silenced_sentence(
    id: u64,
    what: &str,
    pattern: &str,
    duration: SilenceDuration,
    until_usec: u64,
) -> String {
    let matching = match what {
        "sensor" => format!("alarms on sensors matching {pattern}"),
        _ => format!("alarms matching {pattern}"),
    };
    let mut out = format!("silence {id}\n");
    out.push_str(&wrapped(
        "  ",
        2,
        &format!(
            "holds back the notifications of {matching} for {duration}, until about {}; \
             end it early with: bunkerctl site unsilence {id}",
            format_utc(until_usec)
        ),
    ));
    out
}

/// A D-Bus refusal as one line: sited's own sentence, or why sited could not be asked.
pub fn refused(error: zbus::Error) -> anyhow::Error {
    bus_call::refused(
        SITE,
        "only root and members of bunkeros-operators may ask sited \
         (org.bunkeros.Site1.conf)",
        error,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use appliance::dbus::contracts::site_errors;

    fn method_error(name: &str, message: &str) -> zbus::Error {
        bus_call::method_error("/org/bunkeros/Site1", "Acknowledge", name, message)
    }

    #[test]
    fn refusals_are_sited_s_own_sentence() {
        let not_found = refused(method_error(
            site_errors::NOT_FOUND,
            "no alarm named door-9-open",
        ));
        assert_eq!(
            not_found.to_string(),
            "sited refused (NotFound): no alarm named door-9-open"
        );
        let twice = refused(method_error(
            site_errors::INVALID_ARGUMENT,
            "door-1-open is already acknowledged (by alice)",
        ));
        assert_eq!(
            twice.to_string(),
            "sited refused (InvalidArgument): door-1-open is already acknowledged (by alice)"
        );
        let denied = refused(method_error(
            "org.freedesktop.DBus.Error.AccessDenied",
            "Rejected send message",
        ));
        assert_eq!(
            denied.to_string(),
            "the system bus refused the call: only root and members of bunkeros-operators may \
             ask sited (org.bunkeros.Site1.conf)"
        );
        let absent = refused(method_error(
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "The name is not activatable",
        ));
        assert_eq!(
            absent.to_string(),
            "sited is not running (org.bunkeros.Site1 is not on the system bus)"
        );
    }

    #[test]
    fn a_silence_prints_its_id_first_and_how_to_end_it() {
        let two_hours = SilenceDuration::parse("2h").unwrap();
        // 2026-11-21T09:00:00Z
        let until = 1_795_251_600_000_000 + two_hours.seconds() * 1_000_000;
        let text = silenced_sentence(7, "sensor", "hall-a.temp*", two_hours, until);
        assert_eq!(
            text,
            "silence 7\n  holds back the notifications of alarms on sensors matching \
             hall-a.temp* for\n  2h, until about 2026-11-21 11:00:00 UTC; end it early with: \
             bunkerctl site\n  unsilence 7\n"
        );
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
        let first = silenced_sentence(9, "alarm", "door-*", two_hours, until);
        assert!(first.starts_with("silence 9\n"), "{first}");
        assert!(first.contains("of alarms matching door-*"), "{first}");
    }

    #[test]
    fn json_arrays_keep_what_the_filter_keeps() {
        let sensors: Value =
            serde_json::from_str(include_str!("../tests/site/sensors.json")).unwrap();
        let filter = SensorFilter {
            lost_only: true,
            pattern: None,
        };
        let printed = json_array(&sensors, |s| filter.keeps(s));
        let kept: Value = serde_json::from_str(&printed).unwrap();
        let names: Vec<&str> = kept
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["sensor"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["hall-a.temp", "ups-1.runtime"]);
    }
}
