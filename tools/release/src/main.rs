//! `bunkeros-release`: wiring only. Each subcommand calls the library; an error is printed as
//! one sentence and exits 1 (a bad command line exits 2, as clap does), with nothing written.

use std::path::PathBuf;
use std::process::ExitCode;

use bunkeros_release::ReleaseError;
use bunkeros_release::pcr_policy::{self, parse_pcr_assignment};
use bunkeros_release::release_key::ReleaseKey;
use clap::{Parser, Subcommand};
use trustd::tpm::PcrValue;

/// The release signing tool of the BunkerOS image build.
#[derive(Debug, Parser)]
#[command(name = "bunkeros-release", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sign an image's predicted PCR values for trustd (the SignedPcrPolicy JSON trustd loads)
    SignPcrPolicy {
        /// The release key: an unencrypted PKCS#8 PEM P-256 private key
        #[arg(long, value_name = "KEY.pem")]
        key: PathBuf,
        /// A PCR and its predicted SHA-256 value, e.g. `11=<64 hex digits>`; repeat for more
        #[arg(long = "pcr", value_name = "N=HEX", required = true, value_parser = parse_pcr_assignment)]
        pcrs: Vec<PcrValue>,
        /// Where to write the signed policy (replaced atomically)
        #[arg(long, value_name = "FILE.json")]
        out: PathBuf,
    },
    /// Print the release key's public half as PEM, the form trustd's `policy.release_key` reads
    PublicKey {
        /// The release key: an unencrypted PKCS#8 PEM P-256 private key
        #[arg(long, value_name = "KEY.pem")]
        key: PathBuf,
    },
}

fn run(command: Command) -> Result<(), ReleaseError> {
    match command {
        Command::SignPcrPolicy { key, pcrs, out } => {
            let key = ReleaseKey::load(&key)?;
            let signed = pcr_policy::sign(&key, pcrs)?;
            pcr_policy::write_atomically(&out, &pcr_policy::to_json(&signed))?;
            let pcrs: Vec<String> = signed
                .pcr_values
                .iter()
                .map(|value| value.pcr.to_string())
                .collect();
            println!(
                "{}: PCR {} signed by the release key {}",
                out.display(),
                pcrs.join(", "),
                key.fingerprint()
            );
        }
        Command::PublicKey { key } => {
            print!("{}", ReleaseKey::load(&key)?.public_key_pem());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bunkeros-release: {error}");
            ExitCode::FAILURE
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
}
