//! Test support: hubs with real P-256 keys, evidence they sign, and a judge that verifies it.
//!
//! The evidence here is a stand-in for `rollout::evidence::HealthEvidence` with the same
//! promise: a signature by the hub's pinned CA key over the booted image's PCR 11 and the
//! instruction's nonce. The judge checks all three for real, so a test that expects evidence to
//! be refused fails if it is not.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use serde_json::{Value as Json, json};

use super::coordinator::{EvidenceJudge, ExpectedEvidence};
use super::messages::Report;

/// The release's PCR 11 in these tests.
pub const RELEASE_PCR11: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
/// The PCR 11 of some other image.
pub const OTHER_PCR11: &str = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

const DOMAIN: &[u8] = b"bunkeros rollout test evidence\0";

/// A hub's CA key.
pub struct TestHub {
    pub id: String,
    key: EcdsaKeyPair,
}

impl TestHub {
    pub fn new(id: &str) -> TestHub {
        TestHub {
            id: id.to_owned(),
            key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("P-256 key"),
        }
    }

    /// The SEC1 public key in hex, as the plan pins it.
    pub fn ca_key_hex(&self) -> String {
        hex::encode(self.key.public_key().as_ref())
    }

    /// Evidence that this hub booted the image with `pcr11`, answering `nonce`.
    pub fn evidence(&self, pcr11: &str, nonce: &str) -> Json {
        let signature = self
            .key
            .sign(&SystemRandom::new(), &message(pcr11, nonce))
            .expect("signing");
        json!({"pcr11": pcr11, "nonce": nonce, "signature": hex::encode(signature.as_ref())})
    }
}

fn message(pcr11: &str, nonce: &str) -> Vec<u8> {
    [DOMAIN, pcr11.as_bytes(), b"\0", nonce.as_bytes()].concat()
}

/// Verifies the stand-in evidence: the signature with the pinned key, the PCR 11, the nonce.
pub struct SignatureJudge;

impl EvidenceJudge for SignatureJudge {
    fn judge(&self, expected: &ExpectedEvidence<'_>, report: &Report) -> Result<(), String> {
        let evidence = report.evidence.as_ref().ok_or("no evidence")?;
        let field = |name: &str| {
            evidence[name]
                .as_str()
                .ok_or_else(|| format!("the evidence has no {name}"))
        };
        let (pcr11, nonce) = (field("pcr11")?, field("nonce")?);
        let signature = hex::decode(field("signature")?).map_err(|e| e.to_string())?;
        let key = hex::decode(&expected.hub.ca_key).map_err(|e| e.to_string())?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key)
            .verify(&message(pcr11, nonce), &signature)
            .map_err(|_| format!("the signature is not by hub {}'s CA key", expected.hub.id))?;
        if nonce != expected.nonce {
            return Err("the quote answers another nonce".to_owned());
        }
        if pcr11 != expected.pcr11_hex {
            return Err(format!(
                "the hub booted an image with PCR 11 {pcr11}, not the release's"
            ));
        }
        Ok(())
    }
}

/// A plan over `hubs` with the given waves (each a list of indexes into `hubs`).
pub fn plan_text(hubs: &[TestHub], waves: &[&[usize]], soak: u64, timeout: u64) -> String {
    let mut text = format!(
        "id = \"spring\"\nrelease_version = \"0.2.0\"\nexpected_pcr11 = \"{RELEASE_PCR11}\"\n\
         source = \"usb\"\nsoak_secs = {soak}\nwave_timeout_secs = {timeout}\n"
    );
    for (i, wave) in waves.iter().enumerate() {
        let names: Vec<String> = wave
            .iter()
            .map(|&h| format!("\"{}\"", hubs[h].id))
            .collect();
        text.push_str(&format!(
            "[[wave]]\nname = \"w{}\"\nhubs = [{}]\n",
            i + 1,
            names.join(", ")
        ));
    }
    for hub in hubs {
        text.push_str(&format!(
            "[[hub]]\nid = \"{}\"\nca_key = \"{}\"\n",
            hub.id,
            hub.ca_key_hex()
        ));
    }
    text
}
