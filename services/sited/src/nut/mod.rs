//! Network UPS Tools: a UPS read through `upsd`'s line protocol on TCP 3493.
//!
//! [`protocol`] parses what upsd sends (no I/O; the fuzz target `upsd_reply` drives it),
//! [`status`] reads `ups.status` flags, [`client`] keeps a connection to one upsd, and
//! [`driver`] turns each poll into [`crate::sensor::SensorEvent`]s under [`settings`].

pub mod client;
pub mod driver;
pub mod protocol;
pub mod settings;
pub mod status;

pub use client::{ClientError, Credentials, NutClient};
pub use driver::NutDriver;
pub use settings::NutSettings;
pub use status::{Flag, UpsStatus};
