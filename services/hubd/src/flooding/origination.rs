//! What goes into this hub's own advertisement, and when a latency change is worth a new one.

use std::time::SystemTime;

use appliance::tls::Identity;

use super::FloodingSettings;
use crate::advertisement::{
    Advertisement, AdvertisementParts, Flags, InvalidAdvertisement, SignError, SignedAdvertisement,
    Timestamp, Voucher, next_sequence,
};
use crate::hub_id::HubId;
use crate::jurisdiction::Jurisdiction;
use crate::link::Latency;

/// When a measured latency is far enough from the advertised one to re-originate: it moved by
/// more than `percent` of the advertised value and by more than `floor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyHysteresis {
    /// Relative change, in percent of the advertised latency.
    pub percent: u64,
    /// Smallest absolute change that counts.
    pub floor: Latency,
}

impl LatencyHysteresis {
    /// Whether `measured` differs materially from `advertised`.
    pub fn exceeded(&self, advertised: Latency, measured: Latency) -> bool {
        let (a, m) = (advertised.as_micros(), measured.as_micros());
        let change = a.abs_diff(m);
        change > self.floor.as_micros()
            && change.saturating_mul(100) > a.saturating_mul(self.percent)
    }
}

/// Why this hub's advertisement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum OriginationError {
    /// The values break a bound (e.g. more links up than an advertisement lists).
    #[error(transparent)]
    Invalid(#[from] InvalidAdvertisement),
    /// The hub key did not sign.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// This hub's advertisement values, without links, transit allowed.
pub(crate) fn own_parts(
    own: &HubId,
    jurisdiction: Jurisdiction,
    vouchers: &[Voucher],
    settings: FloodingSettings,
    previous: Option<u64>,
    now: SystemTime,
) -> AdvertisementParts {
    AdvertisementParts {
        origin: own.clone(),
        jurisdiction,
        flags: Flags::default(),
        sequence: next_sequence(previous, now),
        expires_at: Timestamp::from(now).plus_secs(settings.lifetime.as_secs()),
        links: Vec::new(),
        vouchers: vouchers.to_vec(),
        prefixes: Vec::new(),
    }
}

pub(crate) fn sign(
    identity: &Identity,
    parts: AdvertisementParts,
) -> Result<SignedAdvertisement, OriginationError> {
    Ok(SignedAdvertisement::sign(
        Advertisement::new(parts)?,
        identity,
    )?)
}
