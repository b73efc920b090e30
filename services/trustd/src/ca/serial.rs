//! Certificate serial numbers: random, positive, never used twice.
//!
//! Serials are 128 random bits with the top bit cleared (so the DER INTEGER is positive and fits
//! in 16 bytes, well under RFC 5280's 20-octet limit): unpredictable, which defeats the chosen-
//! prefix collision attacks that sequential serials enabled, and needing no counter that a crash
//! could roll back. Uniqueness is still checked, because a broken random source must stop
//! issuance instead of producing two certificates with one serial. The record of used serials
//! belongs to the issued-certificate store; this module only defines the seam
//! ([`SerialLedger`]) and an in-memory record for tests and tools.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Length of a serial in bytes.
pub const SERIAL_LEN: usize = 16;

/// How many fresh serials issuance draws before it concludes the random source is broken.
pub const SERIAL_ATTEMPTS: usize = 4;

/// A certificate serial number as this CA issues them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CertificateSerial([u8; SERIAL_LEN]);

/// Why no serial number could be assigned.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    /// The operating system's random source failed.
    #[error("the system random source failed: {0}")]
    Random(String),
    /// Every drawn serial was already used: the random source is not random.
    #[error(
        "{SERIAL_ATTEMPTS} random serial numbers in a row were already used; the random source is broken, issuance stops"
    )]
    Exhausted,
    /// The ledger could not record the serial.
    #[error("cannot record the serial number: {0}")]
    Ledger(String),
}

impl CertificateSerial {
    /// Draws a fresh serial from the operating system's random source.
    pub fn random() -> Result<Self, SerialError> {
        let mut bytes = [0u8; SERIAL_LEN];
        getrandom::fill(&mut bytes).map_err(|e| SerialError::Random(e.to_string()))?;
        Ok(Self::from_random_bytes(bytes))
    }

    /// The serial made from 16 random bytes: top bit cleared (positive), never zero.
    pub fn from_random_bytes(mut bytes: [u8; SERIAL_LEN]) -> Self {
        bytes[0] &= 0x7f;
        if bytes.iter().all(|b| *b == 0) {
            bytes[SERIAL_LEN - 1] = 1;
        }
        Self(bytes)
    }

    /// The serial as it appears in a certificate (big-endian INTEGER content, minus leading
    /// zero bytes), e.g. to compare with a parsed certificate.
    pub fn to_integer_bytes(&self) -> Vec<u8> {
        let first = self
            .0
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(SERIAL_LEN - 1);
        self.0[first..].to_vec()
    }

    /// The 16 bytes.
    pub fn as_bytes(&self) -> &[u8; SERIAL_LEN] {
        &self.0
    }

    /// Lowercase hex of the 16 bytes, the form logs, D-Bus and `bunkerctl` show.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the form [`CertificateSerial::to_hex`] writes.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes: [u8; SERIAL_LEN] = hex::decode(text).ok()?.try_into().ok()?;
        (bytes[0] & 0x80 == 0).then_some(Self(bytes))
    }

    pub(crate) fn to_rcgen(self) -> rcgen::SerialNumber {
        rcgen::SerialNumber::from_slice(&self.to_integer_bytes())
    }
}

impl fmt::Display for CertificateSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for CertificateSerial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertificateSerial({})", self.to_hex())
    }
}

impl Serialize for CertificateSerial {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for CertificateSerial {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::from_hex(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is not a 16-byte positive serial in hex"))
        })
    }
}

/// The record of every serial the CA has ever put in a certificate.
///
/// [`SerialLedger::reserve`] is called *before* the certificate is signed and must be durable
/// when it returns `Ok(true)`: a crash after signing can then only waste a serial, never reuse
/// one. The issued-certificate store implements it over its own records.
pub trait SerialLedger: Send + Sync {
    /// Records `serial` as used. `Ok(true)` if it was unused, `Ok(false)` if it was already
    /// recorded (the caller draws another), `Err` if the record could not be made.
    fn reserve(&self, serial: &CertificateSerial) -> Result<bool, SerialError>;

    /// A fresh serial for one certificate, already durably reserved. By default one is drawn
    /// and reserved on the spot ([`assign_serial_from`]); a ledger may instead hand out serials
    /// it reserved earlier, in a block, provided each goes to one caller only and none that a
    /// crash left unused is ever handed out again.
    fn assign(&self) -> Result<CertificateSerial, SerialError> {
        assign_serial_from(self, CertificateSerial::random)
    }
}

/// Serials remembered for the life of the process: for tests, and for one-shot tools whose
/// certificates are tracked elsewhere. A running CA uses the persistent store instead.
#[derive(Debug, Default)]
pub struct MemorySerialLedger {
    used: Mutex<HashSet<CertificateSerial>>,
}

impl MemorySerialLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many serials were reserved.
    pub fn len(&self) -> usize {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no serial was reserved yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `serial` was reserved.
    pub fn contains(&self, serial: &CertificateSerial) -> bool {
        self.used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(serial)
    }
}

impl SerialLedger for MemorySerialLedger {
    fn reserve(&self, serial: &CertificateSerial) -> Result<bool, SerialError> {
        Ok(self
            .used
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(*serial))
    }
}

/// A fresh serial from `ledger` ([`SerialLedger::assign`]).
pub fn assign_serial(ledger: &dyn SerialLedger) -> Result<CertificateSerial, SerialError> {
    ledger.assign()
}

/// Draws serials until `ledger` accepts one, at most [`SERIAL_ATTEMPTS`] (tests give a broken
/// source of candidates).
pub fn assign_serial_from<L: SerialLedger + ?Sized>(
    ledger: &L,
    mut draw: impl FnMut() -> Result<CertificateSerial, SerialError>,
) -> Result<CertificateSerial, SerialError> {
    for _ in 0..SERIAL_ATTEMPTS {
        let serial = draw()?;
        if ledger.reserve(&serial)? {
            return Ok(serial);
        }
        tracing::error!(%serial, "a random serial number was already used; drawing another");
    }
    Err(SerialError::Exhausted)
}
