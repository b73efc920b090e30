//! The release signing key: read from the PKCS#8 PEM file that
//! `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes.

use std::path::Path;

use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, LineEnding};
use sha2::{Digest as _, Sha256};

use crate::ReleaseError;

/// The PEM label of an unencrypted PKCS#8 private key.
const PKCS8_LABEL: &str = "PRIVATE KEY";

/// The release key, loaded.
#[derive(Debug, Clone)]
pub struct ReleaseKey {
    signing: SigningKey,
}

impl ReleaseKey {
    /// Reads an unencrypted PKCS#8 PEM P-256 private key. Other forms are refused with the
    /// command that converts them, since a build must never guess which key it holds.
    pub fn load(path: &Path) -> Result<Self, ReleaseError> {
        let error = |reason: String| ReleaseError::Key {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let block =
            pem::parse(text.trim()).map_err(|e| error(format!("it is not a PEM file ({e})")))?;
        match block.tag() {
            PKCS8_LABEL => {}
            "EC PRIVATE KEY" => {
                return Err(error(
                    "it holds a SEC1 `EC PRIVATE KEY`; convert it to PKCS#8 with \
                     `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`"
                        .to_owned(),
                ));
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(error(
                    "it is encrypted; give the build an unencrypted PKCS#8 key \
                     (`openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8`)"
                        .to_owned(),
                ));
            }
            other => {
                return Err(error(format!(
                    "it holds a PEM `{other}` block, not a `{PKCS8_LABEL}` (PKCS#8, as \
                     `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes it)"
                )));
            }
        }
        let signing = SigningKey::from_pkcs8_der(block.contents())
            .map_err(|e| error(format!("it is not a P-256 private key ({e})")))?;
        Ok(Self { signing })
    }

    /// The key as trustd's signing code takes it.
    pub fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The public half.
    pub fn verifying_key(&self) -> &VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public half as a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`), the form
    /// trustd's `policy.release_key` reads and `openssl pkey -pubout` writes.
    pub fn public_key_pem(&self) -> String {
        self.verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-256 public key always encodes")
    }

    /// SHA-256 of the public key's DER SubjectPublicKeyInfo, in hex: which key signed, for
    /// build logs (`openssl pkey -pubin -outform DER | sha256sum` gives the same).
    pub fn fingerprint(&self) -> String {
        let der = self
            .verifying_key()
            .to_public_key_der()
            .expect("a P-256 public key always encodes");
        hex::encode(Sha256::digest(der.as_bytes()))
    }
}
