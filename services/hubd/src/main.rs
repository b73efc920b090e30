//! `hubd`: secure hub routing between BunkerOS sites.
//!
//! Wiring only. The crate holds hubd's control plane (peering, signed advertisements, trust,
//! topology, path selection); the binary checks a hub's configuration: `--check-config` reads
//! `hubd.toml` and every peering file, and prints what it read or every problem as
//! FILE:LINE:COLUMN: sentence (exit status 78). It is required: there is no daemon mode yet.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// BunkerOS secure hub routing: bilateral peering with pinned site roots, signed link-state
/// advertisements, paths chosen by jurisdiction. Checks a hub's configuration and peering files.
#[derive(Debug, Parser)]
#[command(name = "hubd", version, about, long_about = None)]
struct Cli {
    /// Read the site layer from PATH instead of /var/lib/bunkeros/config/hubd.toml
    /// (the image's /usr/share/bunkeros/hubd.toml is still read first); PATH must exist
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Check hubd.toml and the peering files and exit: prints what was read (status 0) or
    /// every problem as FILE:LINE:COLUMN: sentence (status 78)
    #[arg(long, required = true)]
    check_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    debug_assert!(cli.check_config, "clap requires --check-config");
    match hubd::config::load(cli.config.as_deref()) {
        Ok(setup) => {
            print!("{}", setup.report());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            error.exit_code()
        }
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
    fn config_and_check_config() {
        let cli = Cli::try_parse_from(["hubd", "--config", "/x.toml", "--check-config"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/x.toml")));
        assert!(cli.check_config);
        assert!(Cli::try_parse_from(["hubd", "--config"]).is_err());
        assert!(
            Cli::try_parse_from(["hubd"]).is_err(),
            "--check-config is required"
        );
        assert!(Cli::try_parse_from(["hubd", "--bogus"]).is_err());
    }
}
