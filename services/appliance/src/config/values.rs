//! Validated value types for configuration fields.
//!
//! A range check done here, while serde reads the value, makes the error carry the position of
//! the offending number in the file (`minerd.toml:7:12: port 70000 is out of range ...`). The
//! same check done later in `validate()` could only point at the key. So every field with a
//! range uses one of these types instead of a bare integer.
//!
//! Integers are read as `i64` (what TOML integers are), so a negative number gets the same
//! "out of range" sentence as a too-large one instead of serde's "expected u64".

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A value outside the range its field accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value} is out of range, expected {}", bounds(*.min, *.max, .unit))]
pub struct OutOfRange {
    /// What the value is, in words: "port", "percentage", "duration", "value".
    pub what: &'static str,
    /// The value as written.
    pub value: i64,
    /// Smallest accepted value.
    pub min: u64,
    /// Largest accepted value.
    pub max: u64,
    /// Unit appended to the bounds, e.g. " seconds"; empty when there is none.
    pub unit: &'static str,
}

fn bounds(min: u64, max: u64, unit: &str) -> String {
    if max == u64::MAX {
        format!("at least {min}{unit}")
    } else {
        format!("{min} to {max}{unit}")
    }
}

/// Checks `value` against `min..=max`; `what` and `unit` name it in the error.
fn check_range(
    what: &'static str,
    value: i64,
    min: u64,
    max: u64,
    unit: &'static str,
) -> Result<u64, OutOfRange> {
    match u64::try_from(value) {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(OutOfRange {
            what,
            value,
            min,
            max,
            unit,
        }),
    }
}

/// A TCP/UDP port a service listens on or connects to: 1 to 65535.
///
/// Port 0 ("any free port") is refused: a peer or Prometheus could never find the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u16")]
pub struct Port(u16);

impl Port {
    /// The port, or `None` for 0.
    pub const fn new(port: u16) -> Option<Self> {
        if port == 0 { None } else { Some(Self(port)) }
    }

    /// For defaults in `const` items: fails to compile (or panics) on 0.
    pub const fn from_const(port: u16) -> Self {
        assert!(port != 0, "port 0 is not a valid configured port");
        Self(port)
    }

    /// The port number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<i64> for Port {
    type Error = OutOfRange;
    fn try_from(value: i64) -> Result<Self, OutOfRange> {
        let port = check_range("port", value, 1, u16::MAX.into(), "")?;
        Ok(Self(u16::try_from(port).expect("checked against u16::MAX")))
    }
}

impl From<Port> for u16 {
    fn from(port: Port) -> u16 {
        port.0
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A whole percentage, 0 to 100 (thresholds, headroom, duty cycles).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct Percent(u8);

impl Percent {
    /// The percentage, or `None` above 100.
    pub const fn new(percent: u8) -> Option<Self> {
        if percent <= 100 {
            Some(Self(percent))
        } else {
            None
        }
    }

    /// For defaults in `const` items: fails to compile (or panics) above 100.
    pub const fn from_const(percent: u8) -> Self {
        assert!(percent <= 100, "a percentage is at most 100");
        Self(percent)
    }

    /// The percentage, 0 to 100.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The percentage as a fraction, 0.0 to 1.0.
    pub fn fraction(self) -> f64 {
        f64::from(self.0) / 100.0
    }
}

impl TryFrom<i64> for Percent {
    type Error = OutOfRange;
    fn try_from(value: i64) -> Result<Self, OutOfRange> {
        let percent = check_range("percentage", value, 0, 100, "")?;
        Ok(Self(u8::try_from(percent).expect("checked against 100")))
    }
}

impl From<Percent> for u8 {
    fn from(percent: Percent) -> u8 {
        percent.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} %", self.0)
    }
}

/// A duration written as whole seconds, accepted only within `MIN..=MAX` seconds.
///
/// The bounds are part of the type, so the field declaration says what it accepts:
/// `failover_after: DurationSecs<1, 600>`. Whole seconds keep config files simple; anything
/// finer is not an operator's setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u64")]
pub struct DurationSecs<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> DurationSecs<MIN, MAX> {
    /// The duration, or `None` outside the bounds.
    pub const fn new(secs: u64) -> Option<Self> {
        if secs >= MIN && secs <= MAX {
            Some(Self(secs))
        } else {
            None
        }
    }

    /// For defaults in `const` items: fails to compile (or panics) outside the bounds.
    pub const fn from_const(secs: u64) -> Self {
        assert!(
            secs >= MIN && secs <= MAX,
            "default duration outside its bounds"
        );
        Self(secs)
    }

    /// Whole seconds.
    pub const fn secs(self) -> u64 {
        self.0
    }

    /// As a [`Duration`], for timers.
    pub const fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl<const MIN: u64, const MAX: u64> TryFrom<i64> for DurationSecs<MIN, MAX> {
    type Error = OutOfRange;
    fn try_from(value: i64) -> Result<Self, OutOfRange> {
        check_range("duration", value, MIN, MAX, " seconds").map(Self)
    }
}

impl<const MIN: u64, const MAX: u64> From<DurationSecs<MIN, MAX>> for u64 {
    fn from(duration: DurationSecs<MIN, MAX>) -> u64 {
        duration.0
    }
}

impl<const MIN: u64, const MAX: u64> From<DurationSecs<MIN, MAX>> for Duration {
    fn from(duration: DurationSecs<MIN, MAX>) -> Duration {
        duration.as_duration()
    }
}

impl<const MIN: u64, const MAX: u64> fmt::Display for DurationSecs<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} s", self.0)
    }
}

/// A count or size accepted only within `MIN..=MAX` (use `u64::MAX` for "no upper bound").
///
/// For sizes, counts and limits that have a unit only the field name knows, e.g.
/// `root_mib: Bounded<512, { u64::MAX }>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u64")]
pub struct Bounded<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Bounded<MIN, MAX> {
    /// The value, or `None` outside the bounds.
    pub const fn new(value: u64) -> Option<Self> {
        if value >= MIN && value <= MAX {
            Some(Self(value))
        } else {
            None
        }
    }

    /// For defaults in `const` items: fails to compile (or panics) outside the bounds.
    pub const fn from_const(value: u64) -> Self {
        assert!(
            value >= MIN && value <= MAX,
            "default value outside its bounds"
        );
        Self(value)
    }

    /// The value.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl<const MIN: u64, const MAX: u64> TryFrom<i64> for Bounded<MIN, MAX> {
    type Error = OutOfRange;
    fn try_from(value: i64) -> Result<Self, OutOfRange> {
        check_range("value", value, MIN, MAX, "").map(Self)
    }
}

impl<const MIN: u64, const MAX: u64> From<Bounded<MIN, MAX>> for u64 {
    fn from(value: Bounded<MIN, MAX>) -> u64 {
        value.0
    }
}

impl<const MIN: u64, const MAX: u64> fmt::Display for Bounded<MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A socket address on the loopback interface, for the metrics endpoint.
///
/// Metrics are unauthenticated, so they must never be reachable from the network: only
/// `127.0.0.0/8` and `[::1]` are accepted, with a non-zero port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LoopbackAddr(SocketAddr);

/// Why a string is not a [`LoopbackAddr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotLoopback {
    /// Not of the form `IP:PORT`.
    #[error("`{0}` is not an address like `127.0.0.1:9103` or `[::1]:9103`")]
    Unparsable(String),
    /// A real address, reachable from outside the appliance.
    #[error(
        "`{0}` is not a loopback address; metrics are served on loopback only \
         (127.0.0.0/8 or [::1])"
    )]
    NotLoopback(SocketAddr),
    /// Port 0 would bind a random port that nothing could scrape.
    #[error("`{0}` has port 0; give the port Prometheus scrapes, e.g. 9103")]
    PortZero(SocketAddr),
}

impl LoopbackAddr {
    /// `127.0.0.1:port`, the usual default.
    pub const fn localhost(port: Port) -> Self {
        Self(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port.get()))
    }

    /// Accepts `addr` only if it is a loopback address with a non-zero port.
    pub fn new(addr: SocketAddr) -> Result<Self, NotLoopback> {
        if !addr.ip().is_loopback() {
            Err(NotLoopback::NotLoopback(addr))
        } else if addr.port() == 0 {
            Err(NotLoopback::PortZero(addr))
        } else {
            Ok(Self(addr))
        }
    }

    /// The address to bind.
    pub const fn get(self) -> SocketAddr {
        self.0
    }
}

impl TryFrom<String> for LoopbackAddr {
    type Error = NotLoopback;
    fn try_from(text: String) -> Result<Self, NotLoopback> {
        let addr: SocketAddr = text
            .trim()
            .parse()
            .map_err(|_| NotLoopback::Unparsable(text))?;
        Self::new(addr)
    }
}

impl std::str::FromStr for LoopbackAddr {
    type Err = NotLoopback;
    fn from_str(text: &str) -> Result<Self, NotLoopback> {
        Self::try_from(text.to_string())
    }
}

impl From<LoopbackAddr> for String {
    fn from(addr: LoopbackAddr) -> String {
        addr.0.to_string()
    }
}

impl From<LoopbackAddr> for SocketAddr {
    fn from(addr: LoopbackAddr) -> SocketAddr {
        addr.0
    }
}

impl fmt::Display for LoopbackAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Fields {
        port: Option<Port>,
        percent: Option<Percent>,
        timeout: Option<DurationSecs<1, 600>>,
        size: Option<Bounded<512, { u64::MAX }>>,
        metrics: Option<LoopbackAddr>,
    }

    fn message(text: &str) -> String {
        toml::from_str::<Fields>(text)
            .unwrap_err()
            .message()
            .to_string()
    }

    #[test]
    fn ports() {
        assert_eq!(Port::try_from(1).unwrap().get(), 1);
        assert_eq!(Port::try_from(65535).unwrap().get(), 65535);
        assert_eq!(
            message("port = 70000").as_str(),
            "port 70000 is out of range, expected 1 to 65535"
        );
        assert_eq!(
            message("port = 0"),
            "port 0 is out of range, expected 1 to 65535"
        );
        assert_eq!(
            message("port = -5"),
            "port -5 is out of range, expected 1 to 65535"
        );
        assert_eq!(Port::new(0), None);
        const P: Port = Port::from_const(9103);
        assert_eq!(P.to_string(), "9103");
    }

    #[test]
    fn percentages() {
        assert_eq!(Percent::try_from(0).unwrap().get(), 0);
        assert_eq!(Percent::try_from(100).unwrap().fraction(), 1.0);
        assert_eq!(
            message("percent = 101"),
            "percentage 101 is out of range, expected 0 to 100"
        );
        assert_eq!(Percent::new(101), None);
    }

    #[test]
    fn durations_and_bounded_values() {
        let d = DurationSecs::<1, 600>::try_from(30).unwrap();
        assert_eq!(d.as_duration(), Duration::from_secs(30));
        assert_eq!(
            message("timeout = 0"),
            "duration 0 is out of range, expected 1 to 600 seconds"
        );
        assert_eq!(
            message("size = 100"),
            "value 100 is out of range, expected at least 512"
        );
        assert_eq!(Bounded::<512, { u64::MAX }>::new(512).unwrap().get(), 512);
        const D: DurationSecs<1, 600> = DurationSecs::from_const(5);
        assert_eq!(D.to_string(), "5 s");
    }

    #[test]
    fn loopback_addresses() {
        let v: Fields = toml::from_str("metrics = \"127.0.0.1:9103\"").unwrap();
        assert_eq!(v.metrics.unwrap().get(), "127.0.0.1:9103".parse().unwrap());
        assert!("[::1]:9103".parse::<LoopbackAddr>().is_ok());
        assert!("127.8.9.10:9103".parse::<LoopbackAddr>().is_ok());
        assert!(message("metrics = \"0.0.0.0:9103\"").contains("is not a loopback address"));
        assert!(message("metrics = \"10.0.0.1:9103\"").contains("not a loopback"));
        assert!(message("metrics = \"localhost\"").contains("is not an address like"));
        assert!(message("metrics = \"127.0.0.1:0\"").contains("port 0"));
        assert_eq!(
            LoopbackAddr::localhost(Port::from_const(9101)).to_string(),
            "127.0.0.1:9101"
        );
    }

    #[test]
    fn values_serialize_as_plain_toml() {
        let v = Fields {
            port: Port::new(9103),
            percent: Percent::new(50),
            timeout: DurationSecs::new(30),
            size: Bounded::new(1024),
            metrics: Some(LoopbackAddr::localhost(Port::from_const(9103))),
        };
        let text = toml::to_string(&v).unwrap();
        assert_eq!(toml::from_str::<Fields>(&text).unwrap(), v);
        assert!(text.contains("port = 9103"), "{text}");
    }
}
