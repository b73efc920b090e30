//! BunkerOS signed image updates (issue 7), the TUF core.
//!
//! A release is a TUF repository (Bottlerocket's `tough`): `repository` writes one from a
//! directory of image artefacts and the release keys (what `make release` will call), `verify`
//! loads one offline on the appliance against the root shipped in the running image and refuses
//! anything that is not genuine, current and newer. `health_gate` decides after booting a new
//! slot whether the appliance is healthy (systemd units, trustd, hubd, sited over D-Bus) and
//! blesses the boot entry or rolls back.

pub mod health_gate;
pub mod image_version;
pub mod repository;
pub mod verify;

pub use image_version::ImageVersion;
pub use repository::{
    ReleaseError, ReleaseFacts, ReleaseKeys, ReleaseSpec, RoleSigners, RootSpec, is_roothash,
};
pub use verify::{RunningImage, SeenVersions, UpdateRefused, VerifiedUpdate, verify_update};
