//! `bunkerctl ca log verify`: checks a transparency-log proof bundle offline.
//!
//! The bundle (from `bunkerctl ca log proof` or `GET /log/proof?index=N`) is checked with
//! trustd's own verification code (`trustd::translog`) against the CA's public key and nothing
//! else: not trustd, not the network, not the operator who hands over the bundle. The key comes
//! from the CA certificate (`--ca`, for a site root that is the root certificate) or is given
//! as the SEC1 hex that `bunkerctl ca status` shows (`--public-key`). Optionally the bundle's
//! entry must be a given certificate (`--cert`), and its old tree head one the verifier kept
//! (`--old-head`), which is what turns "the CA signed these" into "this is what I saw before".

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use trustd::translog::{ProofBundle, SignedTreeHead, parse_proof_bundle};

/// `bunkerctl ca log verify`
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[command(after_help = "\
Exit status: 0 when everything the bundle claims verifies, 1 otherwise (with the reason).")]
pub struct VerifyArgs {
    /// The proof bundle (JSON; `-` reads standard input)
    pub bundle: PathBuf,
    /// The CA certificate (PEM) whose key signs the log: the site root, or the intermediate
    #[arg(
        long,
        visible_alias = "root",
        value_name = "CERT.pem",
        required_unless_present = "public_key",
        conflicts_with = "public_key"
    )]
    pub ca: Option<PathBuf>,
    /// The CA public key instead, as the hex SEC1 point `bunkerctl ca status` prints
    #[arg(long, value_name = "HEX")]
    pub public_key: Option<String>,
    /// Also require the bundle's entry to be exactly this certificate (PEM)
    #[arg(long, value_name = "CERT.pem")]
    pub cert: Option<PathBuf>,
    /// Also require the bundle's old tree head to be this one (JSON you kept from
    /// `bunkerctl ca log head`)
    #[arg(long, value_name = "HEAD.json")]
    pub old_head: Option<PathBuf>,
}

/// Verifies, printing what was proved; exit status 1 (through the error) when anything fails.
pub fn verify(args: &VerifyArgs, out: &mut impl Write) -> Result<ExitCode> {
    let bytes = read(&args.bundle)?;
    let bundle = parse_proof_bundle(&bytes)
        .map_err(|e| anyhow!("{} is not a proof bundle: {e}", args.bundle.display()))?;
    let key = ca_public_key(args)?;
    bundle
        .verify(&key)
        .map_err(|e| anyhow!("the proof does NOT verify: {e}"))?;
    check_expectations(args, &bundle)?;
    let head = &bundle.tree_head.head;
    writeln!(
        out,
        "OK: tree head of {}, signed by the CA at {} (root {})",
        entries(head.size),
        timestamp(head.timestamp_ms),
        hex(&head.root)
    )?;
    if let Some(inclusion) = &bundle.inclusion {
        writeln!(
            out,
            "OK: entry {} is in that tree: {}",
            inclusion.index,
            describe_certificate(inclusion.entry.certificate_der())
        )?;
    }
    if let Some(consistency) = &bundle.consistency {
        writeln!(
            out,
            "OK: the log of {} extends the one of {} signed at {}",
            entries(head.size),
            entries(consistency.old_tree_head.head.size),
            timestamp(consistency.old_tree_head.head.timestamp_ms)
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn check_expectations(args: &VerifyArgs, bundle: &ProofBundle) -> Result<()> {
    if let Some(path) = &args.cert {
        let expected = certificate_der(path)?;
        let Some(inclusion) = &bundle.inclusion else {
            bail!(
                "the bundle proves no entry, so it cannot prove {} is logged",
                path.display()
            );
        };
        if inclusion.entry.certificate_der() != expected.as_slice() {
            bail!(
                "the bundle proves entry {}, which is not the certificate in {}",
                inclusion.index,
                path.display()
            );
        }
    }
    if let Some(path) = &args.old_head {
        let kept = SignedTreeHead::from_json(read(path)?.trim_ascii())
            .map_err(|e| anyhow!("{} is not a tree head: {e}", path.display()))?;
        let Some(consistency) = &bundle.consistency else {
            bail!(
                "the bundle has no consistency proof from {}",
                path.display()
            );
        };
        if consistency.old_tree_head != kept {
            bail!(
                "the bundle's old tree head (size {}) is not the one in {} (size {})",
                consistency.old_tree_head.head.size,
                path.display(),
                kept.head.size
            );
        }
    }
    Ok(())
}

/// The CA key as SEC1 bytes, from `--ca` or `--public-key`.
fn ca_public_key(args: &VerifyArgs) -> Result<Vec<u8>> {
    if let Some(text) = &args.public_key {
        let text = text.trim();
        return decode_hex(text).ok_or_else(|| anyhow!("--public-key `{text}` is not hex"));
    }
    let path = args
        .ca
        .as_ref()
        .expect("clap requires --ca or --public-key");
    let der = certificate_der(path)?;
    let (_, certificate) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| anyhow!("{} is not an X.509 certificate: {e}", path.display()))?;
    Ok(certificate.public_key().subject_public_key.data.to_vec())
}

/// The DER of the first certificate in a PEM file.
fn certificate_der(path: &PathBuf) -> Result<Vec<u8>> {
    let text = read(path)?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text)
        .map_err(|e| anyhow!("{} holds no PEM certificate: {e}", path.display()))?;
    Ok(pem.contents)
}

/// `CN=…, names …, serial …` of a logged certificate.
fn describe_certificate(der: &[u8]) -> String {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, certificate)) => {
            let names: Vec<String> = certificate
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| san.value.general_names.iter().map(general_name).collect())
                .unwrap_or_default();
            format!(
                "certificate {} for {}, serial {}",
                certificate.subject(),
                if names.is_empty() {
                    "no names".to_owned()
                } else {
                    names.join(", ")
                },
                hex(certificate.raw_serial())
            )
        }
        Err(_) => format!("{} bytes that do not parse as a certificate", der.len()),
    }
}

/// A subject alternative name as openssl prints it: `DNS:web.bunker.test`, `IP:10.0.0.1`.
fn general_name(name: &x509_parser::extensions::GeneralName<'_>) -> String {
    use x509_parser::extensions::GeneralName;
    match name {
        GeneralName::DNSName(text) => format!("DNS:{text}"),
        GeneralName::RFC822Name(text) => format!("email:{text}"),
        GeneralName::URI(text) => format!("URI:{text}"),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => format!(
                "IP:{}",
                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default())
            ),
            16 => format!(
                "IP:{}",
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default())
            ),
            _ => format!("IP:{}", hex(bytes)),
        },
        other => other.to_string(),
    }
}

/// "1 entry", "12 entries".
fn entries(count: u64) -> String {
    if count == 1 {
        "1 entry".to_owned()
    } else {
        format!("{count} entries")
    }
}

fn read(path: &PathBuf) -> Result<Vec<u8>> {
    if path.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .context("reading standard input")?;
        return Ok(bytes);
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn timestamp(ms: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        assert_eq!(decode_hex("04ab").unwrap(), vec![4, 0xab]);
        assert_eq!(decode_hex("4ab"), None);
        assert_eq!(decode_hex("zz"), None);
        assert_eq!(hex(&[4, 0xab]), "04ab");
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(1_767_225_600_000), "2026-01-01T00:00:00Z");
    }
}
