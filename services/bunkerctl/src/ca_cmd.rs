//! `bunkerctl ca`: the operator's side of trustd, over `org.bunkeros.Trust1` on the system bus.
//!
//! Every subcommand but `log verify` asks trustd; `log verify` checks a proof bundle offline with
//! trustd's own verification code and needs nothing but the bundle and the CA's key.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use appliance::dbus::contracts::{TRUST, Trust1Proxy};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::bus_call;
use crate::ca_log::{self, VerifyArgs};
use crate::ca_view;
use crate::terminal::Palette;

/// What the operator does with the request `bunkerctl ca csr` printed.
const NEXT_STEP: &str = "have the offline root sign it as a CA (basicConstraints critical \
    CA:TRUE, pathlen:0; keyUsage keyCertSign, cRLSign), then `bunkerctl ca install-chain \
    chain.pem` with the intermediate first and the offline root after it";

/// How long trustd may take to answer (an issuance waits for the TPM and an fsync).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// `bunkerctl ca …`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum CaCommand {
    /// Whether the CA issues (ready, sealed, lockdown, initialised), its TPM policy, root and counts
    #[command(after_help = "\
Exit status: 0 when the CA is ready to issue, 3 when it is not (sealed, lockdown, no certificate \
yet), 1 when trustd cannot be reached.")]
    Status {
        /// Print trustd's status document (JSON) as it sent it
        #[arg(long)]
        json: bool,
    },
    /// Print the site root certificate (PEM): the trust anchor relying parties pin
    Root,
    /// Issue a certificate from a certificate signing request
    Issue(IssueArgs),
    /// Revoke a certificate by its serial number; trustd publishes a new CRL at once
    Revoke {
        /// The serial, in hex as `bunkerctl ca list` or `openssl x509 -serial` print it
        serial: String,
        /// RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged,
        /// superseded, cessationOfOperation, privilegeWithdrawn, aACompromise (or its code)
        #[arg(long, default_value = "unspecified")]
        reason: String,
    },
    /// List the certificates the CA issued, in log order
    List(ListArgs),
    /// The transparency log: signed tree heads, proofs, and offline verification
    Log {
        #[command(subcommand)]
        cmd: LogCommand,
    },
    /// Print the request (PEM) for the offline root to sign, when the CA is an intermediate
    /// (`[site] ca = "intermediate"`): the outstanding one, or a fresh one to renew
    #[command(after_help = "\
The offline root signs it as a CA certificate (basicConstraints critical CA:TRUE, pathlen:0; \
keyUsage keyCertSign, cRLSign); `bunkerctl ca install-chain` takes the result back.")]
    Csr {
        /// Write the request here; default: standard output
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Install the chain the offline root signed: this CA's certificate first, then the root
    #[command(after_help = "\
trustd checks the chain before it counts: the first certificate must be for the CA's TPM key and \
a CA, every signature must verify up to a self-signed root, and every certificate must be valid \
now. A CA that already has an intermediate certificate takes only a renewal of it (same subject, \
same offline root); a self-signed root takes no chain.")]
    InstallChain {
        /// The chain, PEM (`-` reads standard input)
        chain: PathBuf,
    },
}

/// `bunkerctl ca issue`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct IssueArgs {
    /// The certificate signing request, PEM or DER (`-` reads standard input)
    pub csr: PathBuf,
    /// The certificate profile: hub, service, operator or device
    #[arg(long)]
    pub profile: String,
    /// How long the certificate lives (`12h`, `7d`); default: the profile's default, and never
    /// more than the profile's maximum
    #[arg(long)]
    pub lifetime: Option<String>,
    /// Write the certificate (PEM) here; default: standard output
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Write the chain a TLS peer sends (leaf first, PEM) here
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// Print one line of JSON: serial, log_index, not_after, cert_pem, chain_pem
    #[arg(long)]
    pub json: bool,
}

/// `bunkerctl ca list`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct ListArgs {
    /// Only certificates that are `valid`, `expired` or `revoked` now
    #[arg(long)]
    pub status: Option<String>,
    /// Only this profile
    #[arg(long)]
    pub profile: Option<String>,
    /// Only certificates whose CN or a name contains TEXT
    #[arg(long, value_name = "TEXT")]
    pub name: Option<String>,
    /// Only certificates after this log index (paging)
    #[arg(long, value_name = "INDEX")]
    pub after: Option<u64>,
    /// At most this many (1 to 1000)
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,
    /// Print trustd's JSON array instead of the table
    #[arg(long)]
    pub json: bool,
}

/// `bunkerctl ca log …`
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum LogCommand {
    /// Print a signed tree head covering the whole log (JSON); keep it to ask for a
    /// consistency proof later
    Head,
    /// Fetch the proof bundle (JSON) that log entry INDEX is in a tree head the CA signed
    Proof {
        /// The log index (`bunkerctl ca list` shows it; `ca issue` prints it)
        index: u64,
        /// Write the bundle here; default: standard output
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Fetch the proof bundle (JSON) that today's log extends a tree head you kept
    Consistency {
        /// A tree head saved from `bunkerctl ca log head`
        old_head: PathBuf,
        /// Write the bundle here; default: standard output
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Check a proof bundle offline, with nothing but the CA's certificate or public key
    Verify(VerifyArgs),
}

/// Runs a `ca` subcommand and returns its exit status.
pub fn run(cmd: CaCommand) -> Result<ExitCode> {
    if let CaCommand::Log {
        cmd: LogCommand::Verify(args),
    } = cmd
    {
        return ca_log::verify(&args, &mut std::io::stdout().lock());
    }
    bus_call::on_system_bus(ANSWER_TIMEOUT, async |connection| {
        let trust = Trust1Proxy::new(connection)
            .await
            .context("creating the org.bunkeros.Trust1 proxy")?;
        ask(&trust, cmd).await
    })
}

async fn ask(trust: &Trust1Proxy<'_>, cmd: CaCommand) -> Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    match cmd {
        CaCommand::Status { json } => {
            let text = trust.status().await.map_err(refused)?;
            let status: Value = serde_json::from_str(&text).context("trustd's status document")?;
            if json {
                writeln!(stdout, "{text}")?;
            } else {
                write!(
                    stdout,
                    "{}",
                    ca_view::render_status(&status, Palette::for_stdout())
                )?;
            }
            Ok(ExitCode::from(if status["state"] == "ready" {
                0
            } else {
                3
            }))
        }
        CaCommand::Root => {
            write!(
                stdout,
                "{}",
                trust.root_certificate().await.map_err(refused)?
            )?;
            Ok(ExitCode::SUCCESS)
        }
        CaCommand::Issue(args) => issue(trust, &args, &mut stdout).await,
        CaCommand::Revoke { serial, reason } => {
            trust.revoke(&serial, &reason).await.map_err(refused)?;
            writeln!(
                stdout,
                "revoked {serial} ({reason}); trustd published a new CRL"
            )?;
            Ok(ExitCode::SUCCESS)
        }
        CaCommand::List(args) => {
            let text = trust.list(&list_filter(&args)).await.map_err(refused)?;
            if args.json {
                writeln!(stdout, "{text}")?;
            } else {
                let rows: Value = serde_json::from_str(&text).context("trustd's list")?;
                write!(stdout, "{}", ca_view::render_list(&rows))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        CaCommand::Log { cmd } => match cmd {
            LogCommand::Head => {
                writeln!(stdout, "{}", trust.tree_head().await.map_err(refused)?)?;
                Ok(ExitCode::SUCCESS)
            }
            LogCommand::Proof { index, out } => {
                let bundle = trust.inclusion_proof(index).await.map_err(refused)?;
                emit(&bundle, out.as_deref(), &mut stdout)
            }
            LogCommand::Consistency { old_head, out } => {
                let head = read_input(&old_head)?;
                let head = String::from_utf8(head).context("the old tree head is not text")?;
                let bundle = trust
                    .consistency_proof(head.trim())
                    .await
                    .map_err(refused)?;
                emit(&bundle, out.as_deref(), &mut stdout)
            }
            LogCommand::Verify(_) => unreachable!("verified offline above"),
        },
        CaCommand::Csr { out } => {
            let request = trust.intermediate_request().await.map_err(refused)?;
            match out {
                Some(path) => {
                    write_file(&path, &request)?;
                    writeln!(
                        stdout,
                        "wrote the request for the offline root to {}; {NEXT_STEP}",
                        path.display()
                    )?;
                }
                None => {
                    write!(stdout, "{request}")?;
                    eprintln!("the request for the offline root; {NEXT_STEP}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CaCommand::InstallChain { chain } => install_chain(trust, &chain, &mut stdout).await,
    }
}

async fn install_chain(
    trust: &Trust1Proxy<'_>,
    path: &Path,
    stdout: &mut impl Write,
) -> Result<ExitCode> {
    let chain = read_input(path)?;
    let chain = String::from_utf8(chain).map_err(|_| {
        anyhow!(
            "{} is not PEM text; give the chain as PEM certificates, the intermediate first, then the offline root",
            path.display()
        )
    })?;
    let text = trust.install_chain(&chain).await.map_err(refused)?;
    let installed: Value = serde_json::from_str(&text).context("trustd's answer")?;
    write!(stdout, "{}", ca_view::render_installed(&installed))?;
    Ok(ExitCode::SUCCESS)
}

async fn issue(
    trust: &Trust1Proxy<'_>,
    args: &IssueArgs,
    stdout: &mut impl Write,
) -> Result<ExitCode> {
    let csr = read_input(&args.csr)?;
    let csr = if csr.starts_with(b"-----BEGIN") {
        String::from_utf8(csr).context("the request is not text")?
    } else {
        // DER: wrap it, so the request travels as the same PEM text either way.
        pem_wrap("CERTIFICATE REQUEST", &csr)
    };
    let (cert, chain, serial, log_index) = trust
        .issue(&csr, &args.profile, args.lifetime.as_deref().unwrap_or(""))
        .await
        .map_err(refused)?;
    let not_after = ca_view::not_after(&cert).unwrap_or_default();
    if let Some(path) = &args.cert {
        write_file(path, &cert)?;
    }
    if let Some(path) = &args.chain {
        write_file(path, &chain)?;
    }
    if args.json {
        let line = json!({
            "serial": serial,
            "log_index": log_index,
            "not_after": not_after,
            "cert_pem": cert,
            "chain_pem": chain,
        });
        writeln!(stdout, "{line}")?;
    } else if args.cert.is_none() {
        write!(stdout, "{cert}")?;
        eprintln!(
            "issued {serial} (log index {log_index}), {} profile, valid until {not_after}",
            args.profile
        );
    } else {
        writeln!(
            stdout,
            "issued {serial} (log index {log_index}), {} profile, valid until {not_after}",
            args.profile
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The `List` filter document for `args`.
pub fn list_filter(args: &ListArgs) -> String {
    let mut filter = serde_json::Map::new();
    if let Some(status) = &args.status {
        filter.insert("status".into(), json!(status));
    }
    if let Some(profile) = &args.profile {
        filter.insert("profile".into(), json!(profile));
    }
    if let Some(name) = &args.name {
        filter.insert("name".into(), json!(name));
    }
    if let Some(after) = args.after {
        filter.insert("after".into(), json!(after));
    }
    filter.insert("limit".into(), json!(args.limit));
    Value::Object(filter).to_string()
}

/// A D-Bus refusal as one line: trustd's own sentence, or why trustd could not be asked.
fn refused(error: zbus::Error) -> anyhow::Error {
    bus_call::refused(
        TRUST,
        "issuing, revoking and setting up the CA are for root and members of bunkeros-operators",
        error,
    )
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    if path == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn emit(text: &str, out: Option<&Path>, stdout: &mut impl Write) -> Result<ExitCode> {
    match out {
        Some(path) => write_file(path, &format!("{text}\n"))?,
        None => writeln!(stdout, "{text}")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `der` as PEM with `label`.
fn pem_wrap(label: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(label, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_carry_only_what_was_asked() {
        let args = ListArgs {
            status: Some("revoked".into()),
            profile: None,
            name: Some("miner".into()),
            after: None,
            limit: 100,
            json: false,
        };
        let filter: Value = serde_json::from_str(&list_filter(&args)).unwrap();
        assert_eq!(
            filter,
            json!({"status": "revoked", "name": "miner", "limit": 100})
        );
    }

    #[test]
    fn der_requests_are_wrapped_as_pem() {
        assert_eq!(
            pem_wrap("X", b"hello"),
            "-----BEGIN X-----\naGVsbG8=\n-----END X-----\n"
        );
        let long = pem_wrap("X", &[0u8; 60]);
        assert!(long.lines().nth(1).unwrap().len() == 64, "{long}");
    }
}
