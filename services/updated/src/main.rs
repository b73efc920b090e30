//! `updated`: signed A/B image updates.
//!
//! Wiring only: the command line, the configuration (`updated.toml`, refused with exit status
//! 78 before anything starts: every problem as FILE:LINE:COLUMN: sentence), logging, then the
//! daemon ([`updated::daemon::run`]) or, as `updated health-gate`, the health gate of a newly
//! booted slot ([`updated::gate_run::run`]). `--check-config` prints what was read and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// BunkerOS signed image updates: TUF-verified releases into the inactive slot, boot counting,
/// the health gate and automatic fallback, on org.bunkeros.Update1.
#[derive(Debug, Parser)]
#[command(name = "updated", version, about, long_about = None)]
struct Cli {
    /// Read the site layer from PATH instead of /var/lib/bunkeros/config/updated.toml
    /// (the image's /usr/share/bunkeros/updated.toml is still read first); PATH must exist
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,

    /// Check updated.toml and exit: prints what was read (status 0) or every problem as
    /// FILE:LINE:COLUMN: sentence (status 78)
    #[arg(long)]
    check_config: bool,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
enum Command {
    /// Judge a newly booted slot (run by updated-health-gate.service): wait until every
    /// BunkerOS service is ready, trustd signs, hubd's links are up and the site is not
    /// critical; on failure mark the slot bad, record why, and reboot into the previous slot
    HealthGate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let setup = match appliance::systemd::configure(
        updated::settings::SERVICE,
        cli.check_config,
        || updated::settings::load(cli.config.as_deref()),
        |setup| setup.report(),
    ) {
        Ok(setup) => setup,
        Err(exit) => return exit,
    };
    match cli.command {
        None => appliance::systemd::run_daemon(
            updated::settings::SERVICE,
            updated::daemon::run(setup),
            |()| ExitCode::SUCCESS,
        ),
        Some(Command::HealthGate) => appliance::systemd::run_daemon(
            updated::settings::SERVICE,
            updated::gate_run::run(setup),
            |healthy| {
                if healthy {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_daemon_by_default_and_the_gate_as_a_subcommand() {
        let cli = Cli::try_parse_from(["updated"]).unwrap();
        assert_eq!(cli.command, None);
        let cli = Cli::try_parse_from(["updated", "health-gate", "--config", "/x.toml"]).unwrap();
        assert_eq!(cli.command, Some(Command::HealthGate));
        assert_eq!(cli.config, Some(PathBuf::from("/x.toml")));
        assert!(Cli::try_parse_from(["updated", "--bogus"]).is_err());
    }
}
