//! `hubd`: secure hub routing between BunkerOS sites.
//!
//! Wiring only: the command line, the configuration and the peering files (refused with exit
//! status 78 before anything starts: every problem as FILE:LINE:COLUMN: sentence), logging, then
//! [`hubd::daemon::run`]. `--check-config` reads everything, prints what it read and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// BunkerOS secure hub routing: bilateral peering with pinned site roots, signed link-state
/// advertisements, paths chosen by jurisdiction.
#[derive(Debug, Parser)]
#[command(name = "hubd", version, about, long_about = None)]
struct Cli {
    /// Read the site layer from PATH instead of /var/lib/bunkeros/config/hubd.toml
    /// (the image's /usr/share/bunkeros/hubd.toml is still read first); PATH must exist
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Check hubd.toml and the peering files and exit: prints what was read (status 0) or
    /// every problem as FILE:LINE:COLUMN: sentence (status 78)
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let setup = match appliance::systemd::configure(
        hubd::config::SERVICE,
        cli.check_config,
        || hubd::config::load(cli.config.as_deref()),
        |setup| setup.report(),
    ) {
        Ok(setup) => setup,
        Err(exit) => return exit,
    };
    // The one privileged step, while this is the only thread: the TUN, then every capability
    // given up for the whole process (see hubd::privileges).
    let tun = match setup
        .config
        .tun
        .as_ref()
        .map(hubd::ip_plane::Tun::create)
        .transpose()
    {
        Ok(tun) => tun,
        Err(error) => {
            tracing::error!("creating the TUN interface ([tun]): {error}");
            eprintln!("hubd: creating the TUN interface ([tun]): {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = hubd::privileges::drop_all() {
        tracing::error!("cannot give up the process's capabilities: {error}");
        eprintln!("hubd: cannot give up the process's capabilities: {error}");
        return ExitCode::FAILURE;
    }
    appliance::systemd::run_daemon(hubd::config::SERVICE, hubd::daemon::run(setup, tun), |()| {
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
        let cli = Cli::try_parse_from(["hubd", "--config", "/x.toml", "--check-config"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/x.toml")));
        assert!(cli.check_config);
        assert!(Cli::try_parse_from(["hubd", "--config"]).is_err());
        assert!(!Cli::try_parse_from(["hubd"]).unwrap().check_config);
        assert!(Cli::try_parse_from(["hubd", "--bogus"]).is_err());
    }
}
