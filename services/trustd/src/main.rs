//! `trustd`: the site's certificate authority, its keys sealed in the TPM.
//!
//! Wiring only: the command line, the configuration (refused with exit status 78 before
//! anything starts), logging, then [`trustd::daemon::run`].

use std::path::PathBuf;
use std::process::ExitCode;

use appliance::config::{check_config, exit_on_error, load_and_report};
use clap::Parser;
use trustd::config::{SERVICE, TrustdConfig};

/// The BunkerOS site certificate authority: CA keys created and sealed in the TPM, issuance over
/// D-Bus (org.bunkeros.Trust1), the CRL and transparency-log proofs over read-only HTTP.
#[derive(Debug, Parser)]
#[command(name = "trustd", version, about, long_about = None)]
struct Cli {
    /// Read the site layer from PATH instead of /var/lib/bunkeros/config/trustd.toml
    /// (the image's /usr/share/bunkeros/trustd.toml is still read first); PATH must exist
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Check the configuration and exit: prints `config OK: read …` (status 0) or every
    /// problem as FILE:LINE:COLUMN: sentence (status 78)
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    // SAFETY: the first thing in main, before the runtime or any other thread exists.
    unsafe { trustd::tpm::quiet_tss_logging() };
    let cli = Cli::parse();
    if cli.check_config {
        return check_config::<TrustdConfig>(SERVICE, cli.config.as_deref());
    }
    appliance::logging::init(SERVICE);
    let config = exit_on_error(load_and_report::<TrustdConfig>(
        SERVICE,
        cli.config.as_deref(),
    ))
    .into_inner();
    appliance::systemd::run_daemon(SERVICE, trustd::daemon::run(config), |()| ExitCode::SUCCESS)
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
        let cli = Cli::try_parse_from(["trustd", "--config", "/x.toml", "--check-config"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/x.toml")));
        assert!(cli.check_config);
        assert!(Cli::try_parse_from(["trustd", "--config"]).is_err());
        assert!(Cli::try_parse_from(["trustd", "--bogus"]).is_err());
    }
}
