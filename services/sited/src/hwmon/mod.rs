//! Linux hwmon: the server's own temperatures and fans, read from sysfs (`/sys/class/hwmon`).
//!
//! [`tree`] finds the chips and inputs and reads one input (blocking file I/O, no async);
//! [`driver`] polls them off the runtime under a deadline and turns each poll into
//! [`crate::sensor::SensorEvent`]s under [`settings`].

pub mod driver;
pub mod settings;
pub mod tree;

pub use driver::HwmonDriver;
pub use settings::HwmonSettings;
pub use tree::{Input, Quantity};
