//! BunkerOS signed image updates (issue 7), the TUF core.
//!
//! A release is a TUF repository (Bottlerocket's `tough`): `repository` writes one from a
//! directory of image artefacts and the release keys (what `make release` will call), `verify`
//! loads one offline on the appliance against the root shipped in the running image and refuses
//! anything that is not genuine, current and newer. Fetching over HTTPS, writing slots, boot
//! counting and the health gate come later; this crate knows nothing of slots or D-Bus.

pub mod boot_entries;
pub mod disk_layout;
pub mod image_version;
pub mod install;
pub mod repository;
pub mod settings;
pub mod update_metrics;
pub mod update_state;
pub mod verify;

pub use image_version::ImageVersion;
pub use repository::{
    ReleaseError, ReleaseFacts, ReleaseKeys, ReleaseSpec, RoleSigners, RootSpec, is_roothash,
};
pub use verify::{RunningImage, SeenVersions, UpdateRefused, VerifiedUpdate, verify_update};
