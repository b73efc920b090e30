//! `[uplink]`: where notifications go, how the bunker proves who it is, how hard it retries.

use std::path::PathBuf;

use appliance::config::{Bounded, DurationSecs, Invalid};
use appliance::tls::{Identity, PinnedRoot};
use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};

/// The `[uplink]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkSettings {
    /// The control centre's Alertmanager: `https://HOST:PORT`, optionally with the path prefix
    /// it is served under (`https://cc.example:9093/alertmanager`).
    pub alertmanager: String,
    /// The CA certificate (PEM, exactly one) the Alertmanager's certificate must chain to;
    /// nothing else is trusted, not even the system's CAs.
    pub server_ca: PathBuf,
    /// `[uplink.client]`: the certificate this site presents.
    pub client: ClientIdentitySource,
    /// First pause after a failed delivery; each further failure doubles it.
    #[serde(default = "default_retry_first")]
    pub retry_first: DurationSecs<1, 3600>,
    /// Longest pause between delivery attempts.
    #[serde(default = "default_retry_max")]
    pub retry_max: DurationSecs<1, 86_400>,
    /// How often the firing alerts are sent again. Alertmanager resolves an alert nobody sent
    /// for its `resolve_timeout` (5 min by default): keep this well below it.
    #[serde(default = "default_resend_every")]
    pub resend_every: DurationSecs<5, 3600>,
    /// Most notifications kept waiting for delivery. When full, the oldest info notification
    /// is dropped first, then the oldest warning; critical ones are never dropped.
    #[serde(default = "default_queue_limit")]
    pub queue_limit: Bounded<1, 1_000_000>,
    /// Most notifications in one request.
    #[serde(default = "default_batch")]
    pub batch: Bounded<1, 1000>,
    /// Longest a connection and one request may take.
    #[serde(default = "default_timeout")]
    pub timeout: DurationSecs<1, 300>,
}

/// `[uplink.client]`: `source = "trustd"` (a key made in memory at every start, certified by
/// the local trustd under profile `service` for `name`; the key never touches the disk) or
/// `source = "pem"` with `chain` and `key` files, where no trustd runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientIdentitySource {
    Trustd {
        /// The DNS name certified, under the site's domain, e.g. `sited.bunker-7.example.net`.
        name: String,
    },
    Pem {
        /// The client certificate, then any intermediates.
        chain: PathBuf,
        /// Its private key (PKCS#8, SEC1 or PKCS#1).
        key: PathBuf,
    },
}

fn default_retry_first() -> DurationSecs<1, 3600> {
    DurationSecs::from_const(1)
}
fn default_retry_max() -> DurationSecs<1, 86_400> {
    DurationSecs::from_const(300)
}
fn default_resend_every() -> DurationSecs<5, 3600> {
    DurationSecs::from_const(60)
}
fn default_queue_limit() -> Bounded<1, 1_000_000> {
    Bounded::from_const(10_000)
}
fn default_batch() -> Bounded<1, 1000> {
    Bounded::from_const(100)
}
fn default_timeout() -> DurationSecs<1, 300> {
    DurationSecs::from_const(10)
}

/// The Alertmanager's address, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host to connect to (name or address, without brackets).
    pub host: String,
    pub port: u16,
    /// The name its certificate must carry.
    pub server_name: ServerName<'static>,
    /// `host:port` for the `Host` header.
    pub authority: String,
    /// The path prefix without a trailing slash (empty for none).
    pub prefix: String,
}

impl UplinkSettings {
    /// A sentence for every value that cannot work, keyed `uplink.<field>`.
    pub fn validate(&self) -> Result<(), Vec<Invalid>> {
        let mut problems = Vec::new();
        if let Err(reason) = self.endpoint() {
            problems.push(Invalid::new("uplink.alertmanager", reason));
        }
        if self.retry_first.secs() > self.retry_max.secs() {
            problems.push(Invalid::new(
                "uplink.retry_first",
                format!(
                    "must not be longer than `uplink.retry_max` ({})",
                    self.retry_max
                ),
            ));
        }
        if let Err(reason) = self.server_root() {
            problems.push(Invalid::new("uplink.server_ca", reason));
        }
        match &self.client {
            ClientIdentitySource::Trustd { name } => {
                if rustls_pki_types::DnsName::try_from(name.as_str()).is_err() || name.is_empty() {
                    problems.push(Invalid::new(
                        "uplink.client.name",
                        format!("`{name}` is not a DNS name"),
                    ));
                }
            }
            ClientIdentitySource::Pem { .. } => {
                if let Err(reason) = self.pem_identity() {
                    problems.push(Invalid::new("uplink.client", reason));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The Alertmanager's address, or why it is refused (a sentence's end).
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        parse_endpoint(&self.alertmanager)
    }

    /// The pinned CA of the control centre.
    pub fn server_root(&self) -> Result<PinnedRoot, String> {
        let pem = std::fs::read(&self.server_ca)
            .map_err(|e| format!("cannot read {}: {e}", self.server_ca.display()))?;
        PinnedRoot::from_pem(&pem).map_err(|e| format!("{}: {e}", self.server_ca.display()))
    }

    /// The client identity from `source = "pem"` files.
    pub fn pem_identity(&self) -> Result<Identity, String> {
        let ClientIdentitySource::Pem { chain, key } = &self.client else {
            return Err("the client identity comes from trustd, not from PEM files".to_owned());
        };
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        Identity::from_pem(&read(chain)?, &read(key)?).map_err(|e| {
            format!(
                "{} and {} do not make a client identity: {e}",
                chain.display(),
                key.display()
            )
        })
    }
}

/// `https://HOST[:PORT][/PREFIX]`; plain HTTP is refused: the uplink leaves the bunker.
fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let uri: hyper::Uri = text
        .parse()
        .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if uri.scheme_str() != Some("https") {
        return Err(format!(
            "`{text}` must start with https:// (the uplink always uses mutual TLS)"
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{text}` names no host"))?;
    if authority.as_str().contains('@') {
        return Err(format!("`{text}` must not carry a user name or password"));
    }
    if uri.query().is_some() {
        return Err(format!("`{text}` must not carry a query"));
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = authority.port_u16().unwrap_or(443);
    let server_name = ServerName::try_from(host.clone())
        .map_err(|_| format!("`{host}` is neither a DNS name nor an IP address"))?;
    Ok(Endpoint {
        host,
        port,
        server_name,
        authority: authority.as_str().to_owned(),
        prefix: uri.path().trim_end_matches('/').to_owned(),
    })
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
