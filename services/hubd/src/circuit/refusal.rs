//! [`CircuitRefusal`]: why a hub on the route did not carry a circuit, as it tells the source.

use std::fmt;

use super::route::RouteError;
use super::wire::DecodeError;

/// Why a hub refused a circuit. Sent back to the source in [`super::CircuitReply::Refused`] as
/// one byte ([`code`](Self::code)), counted by [`label`](Self::label); both are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CircuitRefusal {
    /// This hub carries no transit now (operator setting or site lockdown).
    NoTransit,
    /// The peer the circuit came from is not granted transit through this hub.
    NotGranted,
    /// The link to the next hub on the route is not up here.
    NoLink,
    /// The circuit came from another hub than the one before this hub on the route.
    WrongPreviousHop,
    /// The circuit came over another link than the route names.
    WrongLink,
    /// A hub is on the route twice.
    Loop,
    /// This hub is not on the route, or is its source.
    NotOnRoute,
    /// The destination holds no certificate chain for the source: it cannot authenticate it.
    UnknownSource,
    /// The destination has no room for another circuit now.
    Busy,
    /// The open frame does not decode, or carries receipts that cannot be there yet.
    Malformed,
    /// The open frame, or the next hop, did not come in time.
    Timeout,
    /// This hub could not sign its receipt (its key failed).
    CannotSign,
}

impl CircuitRefusal {
    /// Every refusal, in code order.
    pub const ALL: [Self; 12] = [
        Self::NoTransit,
        Self::NotGranted,
        Self::NoLink,
        Self::WrongPreviousHop,
        Self::WrongLink,
        Self::Loop,
        Self::NotOnRoute,
        Self::UnknownSource,
        Self::Busy,
        Self::Malformed,
        Self::Timeout,
        Self::CannotSign,
    ];

    /// The label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoTransit => "no_transit",
            Self::NotGranted => "not_granted",
            Self::NoLink => "no_link",
            Self::WrongPreviousHop => "wrong_previous_hop",
            Self::WrongLink => "wrong_link",
            Self::Loop => "loop",
            Self::NotOnRoute => "not_on_route",
            Self::UnknownSource => "unknown_source",
            Self::Busy => "busy",
            Self::Malformed => "malformed",
            Self::Timeout => "timeout",
            Self::CannotSign => "cannot_sign",
        }
    }

    /// The byte on the wire: 1 to 12, in [`ALL`](Self::ALL) order.
    pub fn code(self) -> u8 {
        let index = Self::ALL
            .iter()
            .position(|refusal| *refusal == self)
            .expect("ALL lists every refusal");
        u8::try_from(index + 1).expect("fewer than 255 refusals")
    }

    /// The refusal of a byte, `None` for a code this version does not know.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// The refusal for an open frame that does not decode: `loop` when that is why.
    pub fn of_decode_error(error: &DecodeError) -> Self {
        match error {
            DecodeError::Route(RouteError::Loop(_)) => Self::Loop,
            _ => Self::Malformed,
        }
    }
}

impl fmt::Display for CircuitRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_labels_are_one_to_one() {
        let mut labels: Vec<_> = CircuitRefusal::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), CircuitRefusal::ALL.len());
        for refusal in CircuitRefusal::ALL {
            assert_eq!(CircuitRefusal::from_code(refusal.code()), Some(refusal));
        }
        assert_eq!(CircuitRefusal::NoTransit.code(), 1);
        assert_eq!(CircuitRefusal::from_code(0), None);
        assert_eq!(CircuitRefusal::from_code(13), None);
    }
}
