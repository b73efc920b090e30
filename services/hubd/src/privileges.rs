//! Least privilege at start: hubd's unit grants it one capability, `CAP_NET_ADMIN`, and only so
//! that it can create its TUN interface. [`drop_all`] gives every capability up for good, right
//! after the TUN exists (or at once, for a hub without `[tun]`), while the process still has one
//! thread: capabilities belong to each thread, so dropping them before the async runtime starts
//! its workers drops them for the whole process. With `NoNewPrivileges=yes` nothing can give them
//! back: the daemon that speaks to the network never holds a capability.

use std::io;

use rustix::thread::{CapabilitySet, CapabilitySets};

/// Empties the ambient, effective, permitted and inheritable capability sets of this thread
/// (call it while the process has only this thread).
pub fn drop_all() -> io::Result<()> {
    // The ambient set cannot outgrow permitted ∩ inheritable; clearing it first is explicit.
    rustix::thread::clear_ambient_capability_set().map_err(io::Error::from)?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(io::Error::from)
}

/// Whether this thread holds any capability in its effective or permitted set.
pub fn holds_any() -> io::Result<bool> {
    let sets = rustix::thread::capabilities(None).map_err(io::Error::from)?;
    Ok(!sets.effective.is_empty() || !sets.permitted.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_dropping_nothing_is_held_even_for_root() {
        use std::os::unix::fs::PermissionsExt;
        // A file no one may read by its mode: only a capability (CAP_DAC_OVERRIDE) opens it.
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("locked");
        std::fs::write(&locked, b"secret").unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        let privileged = holds_any().unwrap();
        // On a thread of its own: the test harness's other threads keep theirs.
        std::thread::spawn(move || {
            if privileged {
                assert!(
                    std::fs::read(&locked).is_ok(),
                    "with capabilities, root reads it"
                );
            }
            drop_all().unwrap();
            assert!(!holds_any().unwrap());
            assert!(std::fs::read(&locked).is_err(), "without them, nobody does");
        })
        .join()
        .unwrap();
    }
}
