//! `sited`: monitoring of the EMP-shielded site.
//!
//! Wiring only: the command line, the configuration (the hardware profile and `sited.toml`,
//! refused with exit status 78 before anything starts: every problem as FILE:LINE:COLUMN:
//! sentence), logging, then [`sited::daemon::run`]. `--check-config` reads the configuration,
//! prints what it read and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// BunkerOS site monitoring: sensors (Modbus TCP, NUT, SNMP, hwmon), rules and alarms,
/// relays, the site's state and power budget on org.bunkeros.Site1.
#[derive(Debug, Parser)]
#[command(name = "sited", version, about, long_about = None)]
struct Cli {
    /// Read the site layer from PATH instead of /var/lib/bunkeros/config/sited.toml
    /// (the image's /usr/share/bunkeros/sited.toml is still read first); PATH must exist
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Read the hardware profile from PATH instead of /usr/share/bunkeros/profile.toml
    #[arg(long, value_name = "PATH")]
    profile: Option<PathBuf>,

    /// Check sited.toml against the hardware profile and exit: prints what was read
    /// (status 0) or every problem as FILE:LINE:COLUMN: sentence (status 78)
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let setup = match appliance::systemd::configure(
        sited::settings::SERVICE,
        cli.check_config,
        || sited::settings::load(cli.config.as_deref(), cli.profile.as_deref()),
        |setup| setup.report(),
    ) {
        Ok(setup) => setup,
        Err(exit) => return exit,
    };
    appliance::systemd::run_daemon(sited::settings::SERVICE, sited::daemon::run(setup), |()| {
        ExitCode::SUCCESS
    })
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
    fn config_profile_and_check_config() {
        let cli = Cli::try_parse_from([
            "sited",
            "--config",
            "/x.toml",
            "--profile",
            "/p.toml",
            "--check-config",
        ])
        .unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/x.toml")));
        assert_eq!(cli.profile, Some(PathBuf::from("/p.toml")));
        assert!(cli.check_config);
        assert!(Cli::try_parse_from(["sited", "--bogus"]).is_err());
    }
}
