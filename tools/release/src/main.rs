//! `bunkeros-release`: wiring only. Each subcommand calls the library; an error is printed as
//! one sentence and exits 1 (a bad command line exits 2, as clap does), with nothing written.

use std::path::PathBuf;
use std::process::ExitCode;

use bunkeros_release::ReleaseError;
use bunkeros_release::pcr_policy::{self, parse_pcr_assignment};
use bunkeros_release::publish::{self, Expiry, Published};
use bunkeros_release::refresh_timestamp::{self, Refreshed};
use bunkeros_release::release_key::ReleaseKey;
use bunkeros_release::verify_repo::{self, NO_IMAGE};
use bunkeros_release::{tuf_keys, tuf_root};
use clap::{Parser, Subcommand};
use trustd::tpm::PcrValue;
use updated::{ImageVersion, RunningImage};

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
    /// Make DEVELOPMENT TUF keys (root 2 of 2; targets, snapshot, timestamp 1 each) and keys.toml
    TufKeys {
        /// The key directory to create (0700); refused when it holds anything
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },
    /// Write the signed TUF root.json (version 1) for the keys in keys.toml
    TufRoot {
        /// The TUF key directory (its keys.toml names each role's key files)
        #[arg(long, value_name = "DIR")]
        keys: PathBuf,
        /// Where to write root.json; refused when it exists
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Days until the root expires
        #[arg(long, value_name = "DAYS", default_value_t = 365)]
        expires: u32,
    },
    /// Check that a file is a TUF root an image can trust: self-signed to threshold, not expired
    CheckTufRoot {
        /// The root.json to check
        #[arg(long, value_name = "FILE")]
        root: PathBuf,
    },
    /// Publish an image build as a TUF release into a repository directory (which accumulates)
    Publish {
        /// The image build's output directory (build-info, SHA256SUMS, the artefacts)
        #[arg(long, value_name = "DIR")]
        image_dir: PathBuf,
        /// The TUF key directory (its keys.toml names each role's key files)
        #[arg(long, value_name = "DIR")]
        keys: PathBuf,
        /// The TUF root the release is published under (the one the images trust)
        #[arg(long, value_name = "ROOT.json")]
        root: PathBuf,
        /// The repository directory (metadata/, targets/), created when missing
        #[arg(long, value_name = "REPO")]
        repo: PathBuf,
        /// Days until the targets metadata expires
        #[arg(long, value_name = "N", default_value_t = Expiry::default().targets_days)]
        targets_days: u32,
        /// Days until the snapshot metadata expires
        #[arg(long, value_name = "N", default_value_t = Expiry::default().snapshot_days)]
        snapshot_days: u32,
        /// Days until the timestamp metadata expires (refresh-timestamp extends it)
        #[arg(long, value_name = "N", default_value_t = Expiry::default().timestamp_days)]
        timestamp_days: u32,
    },
    /// Verify a repository as an appliance would (fresh state) against the root the images carry
    VerifyRepo {
        /// The TUF root the appliances trust (an image build's tuf-root.json)
        #[arg(long, value_name = "ROOT.json")]
        root: PathBuf,
        /// The repository directory
        #[arg(long, value_name = "REPO")]
        repo: PathBuf,
        /// The appliance's hardware profile
        #[arg(long, value_name = "NAME")]
        profile: String,
        /// The image version the appliance runs (the release must be newer)
        #[arg(long, value_name = "VERSION", default_value_t = NO_IMAGE)]
        running: ImageVersion,
    },
    /// Re-sign a repository's timestamp.json (next version, same snapshot) so it does not expire
    RefreshTimestamp {
        /// The TUF key directory (only the timestamp keys are read)
        #[arg(long, value_name = "DIR")]
        keys: PathBuf,
        /// The repository directory
        #[arg(long, value_name = "REPO")]
        repo: PathBuf,
        /// Days until the new timestamp expires
        #[arg(long, value_name = "N", default_value_t = Expiry::default().timestamp_days)]
        days: u32,
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
        Command::TufKeys { dir } => {
            tuf_keys::generate(&dir)?;
            println!(
                "{}: DEVELOPMENT TUF keys (root 2 of 2; targets, snapshot, timestamp 1 each), listed in {}",
                dir.display(),
                tuf_keys::KEYS_FILE
            );
        }
        Command::TufRoot { keys, out, expires } => {
            let keys = tuf_keys::load(&keys)?;
            let summary = block_on(tuf_root::write(&keys, &out, expires))?;
            println!("{}: TUF root {summary}", out.display());
        }
        Command::CheckTufRoot { root } => {
            let summary = tuf_root::check(&root)?;
            println!("{}: TUF root {summary}", root.display());
        }
        Command::Publish {
            image_dir,
            keys,
            root,
            repo,
            targets_days,
            snapshot_days,
            timestamp_days,
        } => {
            let keys = tuf_keys::load(&keys)?;
            let expiry = Expiry {
                targets_days,
                snapshot_days,
                timestamp_days,
            };
            let published = block_on(publish::publish(&image_dir, &keys, &root, &repo, expiry))?;
            print_published(&repo, &published);
        }
        Command::RefreshTimestamp { keys, repo, days } => {
            let keys = tuf_keys::load(&keys)?;
            let refreshed = block_on(refresh_timestamp::refresh(&keys, &repo, days))?;
            print_refreshed(&repo, &refreshed);
        }
        Command::VerifyRepo {
            root,
            repo,
            profile,
            running,
        } => {
            let running = RunningImage {
                version: running,
                profile,
            };
            let verified = block_on(verify_repo::verify(&root, &repo, &running))?;
            let facts = &verified.facts;
            println!(
                "{}: verifies against {}: image {} for {}, roothash {}",
                repo.display(),
                root.display(),
                facts.image_version,
                facts.profile,
                facts.roothash,
            );
            let seen = verified.versions;
            println!(
                "    metadata: root {}, targets {}, snapshot {}, timestamp {}",
                seen.root, seen.targets, seen.snapshot, seen.timestamp
            );
            for (name, length) in &verified.targets {
                println!("    {name} ({length} bytes)");
            }
        }
    }
    Ok(())
}

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime starts")
        .block_on(future)
}

fn date(timestamp: jiff::Timestamp) -> String {
    timestamp.strftime("%Y-%m-%d %H:%M UTC").to_string()
}

fn print_published(repo: &std::path::Path, published: &Published) {
    let facts = &published.facts;
    println!(
        "{}: published image {}",
        repo.display(),
        facts.image_version
    );
    println!("    profile           {}", facts.profile);
    println!("    roothash          {}", facts.roothash);
    println!("    metadata version  {}", published.metadata_version);
    println!(
        "    artefacts         {} files, {} bytes",
        published.artefacts, published.bytes
    );
    println!("    targets expire    {}", date(published.targets_expires));
    println!("    snapshot expires  {}", date(published.snapshot_expires));
    println!(
        "    timestamp expires {} (bunkeros-release refresh-timestamp extends it)",
        date(published.timestamp_expires)
    );
}

fn print_refreshed(repo: &std::path::Path, refreshed: &Refreshed) {
    println!(
        "{}: timestamp version {} -> {}, expires {} (snapshot version {})",
        repo.display(),
        refreshed.previous_version,
        refreshed.version,
        date(refreshed.expires),
        refreshed.snapshot_version
    );
    println!(
        "    snapshot expires {}, targets expire {}: a new release is needed before then",
        date(refreshed.snapshot_expires),
        date(refreshed.targets_expires)
    );
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
