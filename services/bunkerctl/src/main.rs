//! `bunkerctl`: the operator's command-line tool for a BunkerOS appliance.
//!
//! Wiring only: parse the command line, hand each subcommand to its module, turn its outcome into
//! an exit code. Errors are printed as one line with their causes, and exit with code 1.

mod audit_verify;
mod bus_call;
mod ca_cmd;
mod ca_log;
mod ca_view;
mod console;
mod console_site;
mod hub_cmd;
mod hub_view;
mod layout;
mod mining_cmd;
mod mining_job;
mod mining_view;
mod profile;
mod progress_bar;
mod site_args;
mod site_cmd;
mod site_view;
mod snapshot;
mod status;
mod status_cmd;
mod status_json;
mod status_view;
mod table;
mod terminal;
mod time_display;
mod update_cmd;
mod update_rollout;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The operator's tool for a BunkerOS appliance.
#[derive(Debug, Parser)]
#[command(name = "bunkerctl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show whether the BunkerOS services are running (systemd over the system D-Bus)
    Status(status_cmd::StatusArgs),
    /// Check or print a hardware profile
    Profile {
        #[command(subcommand)]
        cmd: profile::ProfileCommand,
    },
    /// The site certificate authority (trustd): status, issue, revoke, list, transparency log
    Ca {
        #[command(subcommand)]
        cmd: ca_cmd::CaCommand,
    },
    /// Secure hub routing (hubd): status, links, hubs, routes, paths under a policy
    Hub {
        #[command(subcommand)]
        cmd: hub_cmd::HubCommand,
    },
    /// Mining (minerd): the fleet, miners, hijacks, bulk actions with progress, audit log
    Mining {
        #[command(subcommand)]
        cmd: mining_cmd::MiningCommand,
    },
    /// The site (sited): state, sensors, alarms, acknowledgements, silences, the event log
    Site {
        #[command(subcommand)]
        cmd: site_cmd::SiteCommand,
    },
    /// Signed image updates (updated): slots, check and install a release with progress
    Update {
        #[command(subcommand)]
        cmd: update_cmd::UpdateCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Status(args) => status_cmd::run(args),
        Command::Profile { cmd } => profile::run(cmd),
        Command::Ca { cmd } => ca_cmd::run(cmd),
        Command::Hub { cmd } => hub_cmd::run(cmd),
        Command::Mining { cmd } => mining_cmd::run(cmd),
        Command::Site { cmd } => site_cmd::run(cmd),
        Command::Update { cmd } => update_cmd::run(cmd),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("bunkerctl: {error:#}");
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use status_cmd::StatusArgs;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bunkerctl").chain(args.iter().copied()))
    }

    fn status_args(args: &[&str]) -> Option<StatusArgs> {
        match parse(args).ok()?.command {
            Command::Status(status) => Some(status),
            Command::Profile { .. }
            | Command::Ca { .. }
            | Command::Hub { .. }
            | Command::Mining { .. }
            | Command::Site { .. }
            | Command::Update { .. } => None,
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn status_defaults_to_the_table() {
        assert_eq!(
            status_args(&["status"]),
            Some(StatusArgs {
                json: false,
                watch: None
            })
        );
    }

    #[test]
    fn status_json() {
        assert_eq!(
            status_args(&["status", "--json"]),
            Some(StatusArgs {
                json: true,
                watch: None
            })
        );
    }

    #[test]
    fn watch_takes_seconds_from_1_to_3600() {
        assert_eq!(
            status_args(&["status", "--watch", "1"]).and_then(|s| s.watch),
            Some(1)
        );
        assert_eq!(
            status_args(&["status", "--watch", "3600"]).and_then(|s| s.watch),
            Some(3600)
        );
        for refused in ["0", "3601", "-1", "soon"] {
            assert!(
                parse(&["status", "--watch", refused]).is_err(),
                "--watch {refused}"
            );
        }
        assert!(parse(&["status", "--watch"]).is_err());
    }

    #[test]
    fn watch_and_json_exclude_each_other() {
        assert!(parse(&["status", "--json", "--watch", "5"]).is_err());
    }

    #[test]
    fn profile_check_is_a_subcommand() {
        let cli = parse(&["profile", "check", "hardware/profiles/qemu-x86_64.toml"]);
        assert!(matches!(
            cli.map(|cli| cli.command),
            Ok(Command::Profile { .. })
        ));
    }

    #[test]
    fn ca_subcommands_parse() {
        use ca_cmd::{CaCommand, LogCommand};
        let ca = |args: &[&str]| match parse(args).map(|cli| cli.command) {
            Ok(Command::Ca { cmd }) => Some(cmd),
            _ => None,
        };
        assert_eq!(
            ca(&["ca", "status"]),
            Some(CaCommand::Status { json: false })
        );
        assert!(matches!(
            ca(&[
                "ca",
                "issue",
                "req.csr",
                "--profile",
                "service",
                "--cert",
                "c.pem"
            ]),
            Some(CaCommand::Issue(_))
        ));
        assert!(
            ca(&["ca", "issue", "req.csr"]).is_none(),
            "--profile is required"
        );
        assert!(matches!(
            ca(&["ca", "revoke", "0a0b", "--reason", "keyCompromise"]),
            Some(CaCommand::Revoke { .. })
        ));
        assert!(ca(&["ca", "list", "--limit", "0"]).is_none());
        assert!(matches!(
            ca(&["ca", "log", "proof", "3"]),
            Some(CaCommand::Log {
                cmd: LogCommand::Proof { index: 3, .. }
            })
        ));
        assert!(matches!(
            ca(&["ca", "log", "verify", "b.json", "--root", "root.pem"]),
            Some(CaCommand::Log {
                cmd: LogCommand::Verify(_)
            })
        ));
        assert!(
            ca(&["ca", "log", "verify", "b.json"]).is_none(),
            "a key is required"
        );
        assert_eq!(ca(&["ca", "csr"]), Some(CaCommand::Csr { out: None }));
        assert_eq!(
            ca(&["ca", "csr", "--out", "site-ca.csr"]),
            Some(CaCommand::Csr {
                out: Some("site-ca.csr".into())
            })
        );
        assert_eq!(
            ca(&["ca", "install-chain", "chain.pem"]),
            Some(CaCommand::InstallChain {
                chain: "chain.pem".into()
            })
        );
        assert!(
            ca(&["ca", "install-chain"]).is_none(),
            "the chain file is required"
        );
        assert!(
            ca(&[
                "ca",
                "log",
                "verify",
                "b.json",
                "--ca",
                "r.pem",
                "--public-key",
                "04"
            ])
            .is_none(),
            "one key only"
        );
    }

    #[test]
    fn hub_subcommands_parse() {
        use hub_cmd::HubCommand;
        let hub = |args: &[&str]| match parse(args).map(|cli| cli.command) {
            Ok(Command::Hub { cmd }) => Some(cmd),
            _ => None,
        };
        assert_eq!(
            hub(&["hub", "status"]),
            Some(HubCommand::Status { json: false })
        );
        assert_eq!(
            hub(&["hub", "status", "--json"]),
            Some(HubCommand::Status { json: true })
        );
        assert_eq!(
            hub(&["hub", "links"]),
            Some(HubCommand::Links { json: false })
        );
        assert_eq!(
            hub(&["hub", "hubs", "--json"]),
            Some(HubCommand::Hubs { json: true })
        );
        assert_eq!(
            hub(&["hub", "routes"]),
            Some(HubCommand::Routes { json: false })
        );
        assert_eq!(
            hub(&["hub", "paths", "sao-paulo-1"]),
            Some(HubCommand::Paths {
                destination: "sao-paulo-1".into(),
                policy: None,
                json: false
            })
        );
        assert_eq!(
            hub(&[
                "hub",
                "paths",
                "sao-paulo-1",
                "--policy",
                "no-france",
                "--json"
            ]),
            Some(HubCommand::Paths {
                destination: "sao-paulo-1".into(),
                policy: Some("no-france".into()),
                json: true
            })
        );
        assert!(
            hub(&["hub", "paths"]).is_none(),
            "the destination is required"
        );
        assert!(
            hub(&["hub", "paths", "sao-paulo-1", "--policy"]).is_none(),
            "--policy takes a name"
        );
        assert!(hub(&["hub"]).is_none(), "a hub subcommand is required");
    }

    #[test]
    fn mining_subcommands_parse() {
        use mining_cmd::MiningCommand;
        let mining = |args: &[&str]| match parse(args).map(|cli| cli.command) {
            Ok(Command::Mining { cmd }) => Some(cmd),
            _ => None,
        };
        assert_eq!(
            mining(&["mining", "miners"]),
            Some(MiningCommand::Miners {
                selection: "all".into(),
                json: false
            })
        );
        assert!(matches!(
            mining(&["mining", "power-target", "owner=acme", "2500", "--yes"]),
            Some(MiningCommand::PowerTarget { watts: 2500, .. })
        ));
        assert!(
            mining(&["mining", "power-target", "all", "0"]).is_none(),
            "a power target of 0 W means nothing"
        );
        assert!(
            mining(&["mining", "reboot"]).is_none(),
            "a selection is required"
        );
        assert!(
            mining(&["mining", "release", "10.1.0.7"]).is_none(),
            "--note is required"
        );
        assert!(
            mining(&["mining", "audit", "verify", "--trustd", "--key", "k.pem"]).is_none(),
            "one key only"
        );
        assert!(matches!(
            mining(&["mining", "audit", "verify"]),
            Some(MiningCommand::Audit { .. })
        ));
    }

    #[test]
    fn site_subcommands_parse() {
        use audit_verify::{AuditCommand, AuditedService, Minerd, Sited};
        use site_cmd::SiteCommand;
        let site = |args: &[&str]| match parse(args).map(|cli| cli.command) {
            Ok(Command::Site { cmd }) => Some(cmd),
            _ => None,
        };
        assert_eq!(
            site(&["site", "state"]),
            Some(SiteCommand::State { json: false })
        );
        assert_eq!(
            site(&["site", "state", "--json"]),
            Some(SiteCommand::State { json: true })
        );
        assert_eq!(
            site(&["site", "sensors", "--lost", "--match", "hall-a.*"]),
            Some(SiteCommand::Sensors {
                lost: true,
                pattern: Some("hall-a.*".into()),
                json: false
            })
        );
        assert_eq!(
            site(&["site", "alarms", "--all"]),
            Some(SiteCommand::Alarms {
                all: true,
                json: false
            })
        );
        assert_eq!(
            site(&["site", "ack", "door-1-open", "--note", "seal checked"]),
            Some(SiteCommand::Ack {
                alarm: "door-1-open".into(),
                note: "seal checked".into()
            })
        );
        assert_eq!(
            site(&["site", "ack", "door-1-open"]),
            Some(SiteCommand::Ack {
                alarm: "door-1-open".into(),
                note: String::new()
            })
        );
        assert!(site(&["site", "ack"]).is_none(), "the alarm is required");
        match site(&[
            "site",
            "silence",
            "--sensor",
            "hall-a.*",
            "--for",
            "2h",
            "--comment",
            "probe",
        ]) {
            Some(SiteCommand::Silence(args)) => {
                assert_eq!(args.sensor.as_deref(), Some("hall-a.*"));
                assert_eq!(args.alarm, None);
                assert_eq!(args.duration.seconds(), 7200);
                assert_eq!(args.comment, "probe");
            }
            other => panic!("{other:?}"),
        }
        let silence = |extra: &[&str]| {
            let mut args = vec!["site", "silence"];
            args.extend_from_slice(extra);
            site(&args)
        };
        assert!(
            silence(&["--for", "2h", "--comment", "c"]).is_none(),
            "--alarm or --sensor is required"
        );
        assert!(
            silence(&[
                "--alarm",
                "a",
                "--sensor",
                "s",
                "--for",
                "2h",
                "--comment",
                "c"
            ])
            .is_none(),
            "not both"
        );
        assert!(
            silence(&["--alarm", "a", "--comment", "c"]).is_none(),
            "--for is required"
        );
        assert!(
            silence(&["--alarm", "a", "--for", "2h"]).is_none(),
            "--comment is required"
        );
        assert!(
            silence(&["--alarm", "a", "--for", "31d", "--comment", "c"]).is_none(),
            "at most 30 days"
        );
        assert!(
            silence(&["--alarm", "a", "--for", "2", "--comment", "c"]).is_none(),
            "a unit is required"
        );
        assert_eq!(
            site(&["site", "unsilence", "7"]),
            Some(SiteCommand::Unsilence { id: 7 })
        );
        assert!(site(&["site", "unsilence", "seven"]).is_none());
        assert_eq!(
            site(&["site", "silences"]),
            Some(SiteCommand::Silences { json: false })
        );
        match site(&["site", "log", "verify"]) {
            Some(SiteCommand::Log {
                cmd: AuditCommand::Verify(args),
            }) => {
                assert_eq!(args.log.to_str(), Some(Sited::DEFAULT_LOG));
                assert_eq!(args.log.to_str(), Some("/var/lib/sited/audit.log"));
                assert!(!args.trustd && args.key.is_none());
            }
            other => panic!("{other:?}"),
        }
        assert!(
            site(&["site", "log", "verify", "--trustd", "--key", "k.pem"]).is_none(),
            "one key only"
        );
        assert!(matches!(
            site(&[
                "site",
                "log",
                "verify",
                "--log",
                "/tmp/a.log",
                "--key",
                "k.pem"
            ]),
            Some(SiteCommand::Log { .. })
        ));
        assert!(site(&["site"]).is_none(), "a site subcommand is required");

        // mining's log keeps its own default.
        match parse(&["mining", "audit", "verify"]).map(|cli| cli.command) {
            Ok(Command::Mining {
                cmd:
                    mining_cmd::MiningCommand::Audit {
                        cmd: AuditCommand::Verify(args),
                    },
            }) => assert_eq!(args.log.to_str(), Some(Minerd::DEFAULT_LOG)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_subcommand_is_required() {
        assert!(parse(&[]).is_err());
    }
}
