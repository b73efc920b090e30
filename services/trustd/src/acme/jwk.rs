//! Account keys as JSON Web Keys (RFC 7517/7518), their thumbprints (RFC 7638), and signature
//! checks with aws-lc-rs.
//!
//! An ACME account *is* its key: every request is a JWS the key signed, and the key's
//! thumbprint is bound into every challenge response. So the key is parsed strictly, once, into
//! an [`AccountKey`] that can only hold keys this server verifies:
//! - ECDSA P-256 (`ES256`) and P-384 (`ES384`): what lego and most device clients use;
//! - RSA with a 2048- to 8192-bit modulus (`RS256`): certbot 2.1 creates RSA-2048 account keys
//!   by default. Account keys only sign requests to this server, so 2048 bits suffice here even
//!   though certified keys need 3072 ([`crate::ca::csr`]);
//! - Ed25519 (`EdDSA`).
//!
//! Everything else (private members, wrong lengths, points off the curve, leading zeros that
//! would give one key two thumbprints) is refused as `badPublicKey`. [`parse_jwk`] is a pure
//! function of its input, for fuzzing.

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::encoding::{b64url, from_b64url};
use super::problem::{Problem, ProblemType};

/// Smallest RSA account key accepted, in bits.
pub const MIN_RSA_ACCOUNT_BITS: usize = 2048;
/// Largest RSA account key accepted, in bits (the most aws-lc verifies).
pub const MAX_RSA_ACCOUNT_BITS: usize = 8192;
/// Largest JWK accepted as JSON: an RSA-8192 JWK is about 1.5 KiB.
pub const MAX_JWK_BYTES: usize = 8 * 1024;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

/// The JWS algorithms this server verifies, as sent in `badSignatureAlgorithm` problems.
pub const SUPPORTED_ALGORITHMS: [&str; 4] = ["ES256", "ES384", "RS256", "EdDSA"];

/// A JWS signature algorithm this server verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsAlgorithm {
    /// ECDSA P-256 with SHA-256, fixed-length `r || s`.
    Es256,
    /// ECDSA P-384 with SHA-384, fixed-length `r || s`.
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl JwsAlgorithm {
    /// The algorithm named by a JWS `alg`, or a `badSignatureAlgorithm` problem.
    pub fn from_name(name: &str) -> Result<Self, Problem> {
        match name {
            "ES256" => Ok(Self::Es256),
            "ES384" => Ok(Self::Es384),
            "RS256" => Ok(Self::Rs256),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(bad_algorithm(format!(
                "the JWS algorithm \"{}\" is not accepted (none, MACs and weak algorithms never are)",
                quote(other)
            ))),
        }
    }

    /// The `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }
}

/// An elliptic curve for ECDSA account keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// NIST P-256.
    P256,
    /// NIST P-384.
    P384,
}

impl Curve {
    fn jwk_name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }

    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    fn verification(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            Self::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            Self::P384 => &signature::ECDSA_P384_SHA384_FIXED,
        }
    }
}

/// An account's public key, well-formed and of a kind this server verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountKey {
    /// ECDSA: the coordinates, each exactly the curve's length.
    Ec {
        /// The curve.
        curve: Curve,
        /// X coordinate, big-endian.
        x: Vec<u8>,
        /// Y coordinate, big-endian.
        y: Vec<u8>,
    },
    /// RSA: modulus and exponent, big-endian without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// Ed25519: the 32-byte public key.
    Ed25519 {
        /// The key.
        x: Vec<u8>,
    },
}

/// Parses a JWK from JSON bytes; see [`AccountKey::from_json`].
pub fn parse_jwk(bytes: &[u8]) -> Result<AccountKey, Problem> {
    if bytes.len() > MAX_JWK_BYTES {
        return Err(bad_key(format!(
            "the JWK is {} bytes; at most {MAX_JWK_BYTES} are accepted",
            bytes.len()
        )));
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| bad_key(format!("the JWK is not JSON: {e}")))?;
    AccountKey::from_json(&value)
}

impl AccountKey {
    /// Parses a JWK JSON object into a key this server verifies, or `badPublicKey`.
    pub fn from_json(value: &Value) -> Result<Self, Problem> {
        let object = value
            .as_object()
            .ok_or_else(|| bad_key("the JWK is not a JSON object"))?;
        if ["d", "p", "q", "dp", "dq", "qi", "k"]
            .iter()
            .any(|private| object.contains_key(*private))
        {
            return Err(bad_key(
                "the JWK contains private key material; send only the public key (and consider this key compromised)",
            ));
        }
        let key = match member(object, "kty")? {
            "EC" => Self::ec_from_json(object)?,
            "RSA" => Self::rsa_from_json(object)?,
            "OKP" => match member(object, "crv")? {
                "Ed25519" => Self::Ed25519 {
                    x: fixed_bytes(object, "x", 32)?,
                },
                other => {
                    return Err(bad_key(format!(
                        "the OKP curve \"{}\" is not accepted; use Ed25519",
                        quote(other)
                    )));
                }
            },
            other => {
                return Err(bad_key(format!(
                    "the key type \"{}\" is not accepted; use EC (P-256, P-384), RSA or OKP (Ed25519)",
                    quote(other)
                )));
            }
        };
        key.check_usable()?;
        Ok(key)
    }

    fn ec_from_json(object: &Map<String, Value>) -> Result<Self, Problem> {
        let curve = match member(object, "crv")? {
            "P-256" => Curve::P256,
            "P-384" => Curve::P384,
            other => {
                return Err(bad_key(format!(
                    "the EC curve \"{}\" is not accepted; use P-256 or P-384",
                    quote(other)
                )));
            }
        };
        Ok(Self::Ec {
            curve,
            x: fixed_bytes(object, "x", curve.coordinate_len())?,
            y: fixed_bytes(object, "y", curve.coordinate_len())?,
        })
    }

    fn rsa_from_json(object: &Map<String, Value>) -> Result<Self, Problem> {
        let n = minimal_integer(object, "n")?;
        let e = minimal_integer(object, "e")?;
        let bits = (n.len() - 1) * 8 + (8 - n[0].leading_zeros() as usize);
        if !(MIN_RSA_ACCOUNT_BITS..=MAX_RSA_ACCOUNT_BITS).contains(&bits) {
            return Err(bad_key(format!(
                "the RSA key has {bits} bits; account keys need {MIN_RSA_ACCOUNT_BITS} to {MAX_RSA_ACCOUNT_BITS}"
            )));
        }
        Ok(Self::Rsa { n, e })
    }

    /// Loads the key into aws-lc once, so a point off the curve or a bad exponent is refused
    /// at parse time rather than as a mysterious signature failure.
    fn check_usable(&self) -> Result<(), Problem> {
        let usable = match self {
            Self::Ec { curve, .. } => {
                ParsedPublicKey::new(curve.verification(), self.sec1_point()).is_ok()
            }
            Self::Rsa { n, e } => RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
                .is_ok(),
            Self::Ed25519 { x } => ParsedPublicKey::new(&signature::ED25519, x).is_ok(),
        };
        if usable {
            Ok(())
        } else {
            Err(bad_key(
                "the public key is not a valid key (point not on the curve, or bad RSA exponent)",
            ))
        }
    }

    fn sec1_point(&self) -> Vec<u8> {
        match self {
            Self::Ec { x, y, .. } => [&[0x04][..], x, y].concat(),
            _ => Vec::new(),
        }
    }

    /// The RFC 7638 thumbprint: base64url(SHA-256(canonical JWK)). It names the account in
    /// key authorizations, so it must be the same for every spelling of the same key; the
    /// strict parsing above guarantees one spelling per key.
    pub fn thumbprint(&self) -> String {
        b64url(&Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// The required members in lexicographic order, no whitespace (RFC 7638 §3).
    fn canonical_json(&self) -> String {
        match self {
            Self::Ec { curve, x, y } => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                curve.jwk_name(),
                b64url(x),
                b64url(y)
            ),
            Self::Rsa { n, e } => {
                format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, b64url(e), b64url(n))
            }
            Self::Ed25519 { x } => {
                format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#, b64url(x))
            }
        }
    }

    /// The public JWK as JSON, for the account object and the state file.
    pub fn to_json(&self) -> Value {
        serde_json::from_str(&self.canonical_json()).expect("the canonical JWK is JSON")
    }

    /// The algorithm a JWS signed by this key must declare.
    pub fn algorithm(&self) -> JwsAlgorithm {
        match self {
            Self::Ec {
                curve: Curve::P256, ..
            } => JwsAlgorithm::Es256,
            Self::Ec {
                curve: Curve::P384, ..
            } => JwsAlgorithm::Es384,
            Self::Rsa { .. } => JwsAlgorithm::Rs256,
            Self::Ed25519 { .. } => JwsAlgorithm::EdDsa,
        }
    }

    /// Checks `signature` over `message` made with `alg`. The algorithm must be the key's own
    /// (`badSignatureAlgorithm` otherwise); a signature that does not verify is `malformed`.
    pub fn verify(&self, alg: JwsAlgorithm, message: &[u8], sig: &[u8]) -> Result<(), Problem> {
        if alg != self.algorithm() {
            return Err(bad_algorithm(format!(
                "the JWS says {} but the key is for {}",
                alg.name(),
                self.algorithm().name()
            )));
        }
        let verified = match self {
            Self::Ec { curve, .. } => {
                signature::UnparsedPublicKey::new(curve.verification(), self.sec1_point())
                    .verify(message, sig)
            }
            Self::Rsa { n, e } => RsaPublicKeyComponents { n, e }.verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                message,
                sig,
            ),
            Self::Ed25519 { x } => {
                signature::UnparsedPublicKey::new(&signature::ED25519, x).verify(message, sig)
            }
        };
        verified.map_err(|_| Problem::malformed("the JWS signature does not verify with the key"))
    }

    /// Whether a certificate's or CSR's public key is this key: for revocation signed with
    /// the certificate key, and to refuse certifying an account key.
    pub fn is_key_of(&self, spki: &SubjectPublicKeyInfo<'_>) -> bool {
        let algorithm = spki.algorithm.algorithm.to_id_string();
        let parameter = || {
            spki.algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string())
        };
        let bits = spki.subject_public_key.data.as_ref();
        match self {
            Self::Ec { curve, .. } => {
                let oid = match curve {
                    Curve::P256 => OID_P256,
                    Curve::P384 => OID_P384,
                };
                algorithm == OID_EC_PUBLIC_KEY
                    && parameter().as_deref() == Some(oid)
                    && bits == self.sec1_point().as_slice()
            }
            Self::Rsa { n, e } => {
                algorithm == OID_RSA
                    && matches!(spki.parsed(), Ok(PublicKey::RSA(rsa))
                        if strip_zeros(rsa.modulus) == n.as_slice()
                            && strip_zeros(rsa.exponent) == e.as_slice())
            }
            Self::Ed25519 { x } => algorithm == OID_ED25519 && bits == x.as_slice(),
        }
    }
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

fn member<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, Problem> {
    object
        .get(name)
        .ok_or_else(|| bad_key(format!("the JWK has no \"{name}\" member")))?
        .as_str()
        .ok_or_else(|| bad_key(format!("the JWK member \"{name}\" is not a string")))
}

fn decoded(object: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Problem> {
    from_b64url(member(object, name)?).ok_or_else(|| {
        bad_key(format!(
            "the JWK member \"{name}\" is not unpadded base64url"
        ))
    })
}

fn fixed_bytes(object: &Map<String, Value>, name: &str, len: usize) -> Result<Vec<u8>, Problem> {
    let bytes = decoded(object, name)?;
    if bytes.len() != len {
        return Err(bad_key(format!(
            "the JWK member \"{name}\" is {} bytes; this curve needs exactly {len}",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// An RSA integer, which RFC 7518 §6.3.1 requires in its shortest form.
fn minimal_integer(object: &Map<String, Value>, name: &str) -> Result<Vec<u8>, Problem> {
    let bytes = decoded(object, name)?;
    match bytes.first() {
        None => Err(bad_key(format!("the JWK member \"{name}\" is empty"))),
        Some(0) => Err(bad_key(format!(
            "the JWK member \"{name}\" has leading zero bytes; RFC 7518 requires the shortest form"
        ))),
        Some(_) => Ok(bytes),
    }
}

fn bad_key(detail: impl Into<String>) -> Problem {
    Problem::new(ProblemType::BadPublicKey, detail)
}

fn bad_algorithm(detail: String) -> Problem {
    let mut problem = Problem::new(ProblemType::BadSignatureAlgorithm, detail);
    problem.algorithms = Some(SUPPORTED_ALGORITHMS.to_vec());
    problem
}

/// Hostile text made safe for a problem's detail.
pub(crate) fn quote(text: &str) -> String {
    crate::ca::names::quote_untrusted(text, 64)
}
