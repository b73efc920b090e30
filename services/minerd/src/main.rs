//! `minerd`: mining orchestration for a site of ASIC miners.
//!
//! Wiring only: the command line, the configuration (refused with exit status 78 before
//! anything starts: every problem as FILE:LINE:COLUMN: sentence), logging, then
//! [`minerd::daemon::run`]. `--check-config` reads the configuration, prints what it read and
//! exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// BunkerOS mining orchestration: discovery, telemetry, the Stratum proxy with pool failover,
/// curtailment and crypto-jacking protection for the site's miners.
#[derive(Debug, Parser)]
#[command(name = "minerd", version, about, long_about = None)]
struct Cli {
    /// Read the site layer from PATH instead of /var/lib/bunkeros/config/minerd.toml
    /// (the image's /usr/share/bunkeros/minerd.toml is still read first); PATH must exist
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Check minerd.toml and exit: prints what was read (status 0) or every problem as
    /// FILE:LINE:COLUMN: sentence (status 78)
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let setup = match appliance::systemd::configure(
        minerd::config::SERVICE,
        cli.check_config,
        || minerd::config::load(cli.config.as_deref()),
        |setup| setup.report(),
    ) {
        Ok(setup) => setup,
        Err(exit) => return exit,
    };
    appliance::systemd::run_daemon(minerd::config::SERVICE, minerd::daemon::run(setup), |()| {
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
    fn config_and_check_config() {
        let cli = Cli::try_parse_from(["minerd", "--config", "/x.toml", "--check-config"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/x.toml")));
        assert!(cli.check_config);
        assert!(Cli::try_parse_from(["minerd", "--config"]).is_err());
        assert!(!Cli::try_parse_from(["minerd"]).unwrap().check_config);
        assert!(Cli::try_parse_from(["minerd", "--bogus"]).is_err());
    }
}
