//! BunkerOS signed image updates (issue 7).
//!
//! A release is a TUF repository (Bottlerocket's `tough`): `repository` writes one from an image
//! build and the release keys (`bunkeros-release publish`), `verify` loads one on the appliance
//! against the root shipped in the running image and refuses anything that is not genuine,
//! current, newer and for this hardware profile; `source` says where it is read from (a
//! directory, the update medium, an HTTPS mirror through `mirror`'s transport). `install` writes
//! it into the inactive slot (`disk_layout`: the GPT and the slot partitions; `boot_entries`: the
//! UKIs with systemd-boot's boot counter on the ESP) and `update_state` records what became of it.
//! After booting the new slot `health_gate` decides whether it is blessed or the appliance falls
//! back (`gate_run`: the `updated health-gate` command). The daemon (`daemon`, `controller`,
//! `update1`, `update_metrics`) serves all of it on `org.bunkeros.Update1`.

pub mod boot_entries;
pub mod booted;
pub mod controller;
pub mod daemon;
pub mod disk_layout;
pub mod gate_run;
pub mod health_gate;
pub mod image_version;
pub mod install;
pub mod mirror;
pub mod repository;
pub mod rollout;
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
