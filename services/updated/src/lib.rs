//! BunkerOS signed image updates (issue 7), the TUF core.
//!
//! A release is a TUF repository (Bottlerocket's `tough`): `repository` writes one from a
//! directory of image artefacts and the release keys (what `make release` will call), `verify`
//! loads one offline on the appliance against the root shipped in the running image and refuses
//! anything that is not genuine, current and newer. `source` says where a release is read from
//! (a directory, the update medium, an HTTPS mirror through `mirror`'s transport).

pub mod boot_entries;
pub mod booted;
pub mod controller;
pub mod daemon;
pub mod disk_layout;
pub mod health_gate;
pub mod image_version;
pub mod install;
pub mod mirror;
pub mod reboot;
pub mod rollout;
pub mod repository;
pub mod settings;
pub mod source;
pub mod update1;
pub mod update_metrics;
pub mod update_state;
pub mod verify;

pub use image_version::ImageVersion;
pub use mirror::{HttpsTransport, MirrorFailure, MirrorOptions};
pub use repository::{
    ReleaseError, ReleaseFacts, ReleaseKeys, ReleaseSpec, RoleSigners, RootSpec, is_roothash,
};
pub use source::{Mirror, ReleaseSource, SourceError, UPDATE_MEDIUM_LABEL, UPDATE_MEDIUM_MOUNT};
pub use verify::{
    RunningImage, SeenVersions, UpdateRefused, VerifiedUpdate, verify_update, verify_update_from,
};
