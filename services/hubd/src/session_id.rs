//! [`SessionId`]: names one session of the data plane (a TCP connection carried between two
//! hubs, or a flow of IP packets) across every circuit it uses: the circuit that carries it is
//! replaced on failover, its id is not.

use std::fmt;
use std::str::FromStr;

/// The random 128-bit id of a session, chosen by the hub that opens it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

/// Text that is not 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a session id is 32 hexadecimal digits, not {0:?}")]
pub struct SessionIdError(String);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random source must work");
        Self(bytes)
    }

    /// The id of these bytes (as received in a frame).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The bytes, as sent in frames.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for SessionId {
    /// 32 lowercase hexadecimal digits: what `bunkerctl hub path SESSION` takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl FromStr for SessionId {
    type Err = SessionIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || SessionIdError(text.chars().take(40).collect());
        // Checked digit by digit: `from_str_radix` alone would take a sign (`+0`).
        if text.len() != 32 || !text.bytes().all(|digit| digit.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        let mut bytes = [0u8; 16];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_refusals() {
        let id = SessionId::random();
        assert_eq!(id.to_string().len(), 32);
        assert_eq!(id.to_string().parse::<SessionId>().unwrap(), id);
        assert_ne!(SessionId::random(), id, "two random ids differ");
        let upper = "00112233445566778899AABBCCDDEEFF"
            .parse::<SessionId>()
            .unwrap();
        assert_eq!(upper.to_string(), "00112233445566778899aabbccddeeff");
        for bad in [
            "",
            "0011",
            "00112233445566778899aabbccddeeffaa",
            "zz112233445566778899aabbccddeeff",
            "+0112233445566778899aabbccddeeff",
            "é0112233445566778899aabbccddeef",
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad:?} refused");
        }
    }
}
