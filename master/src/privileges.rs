//! Capability handling shared by the master's spawn path and the runtime's
//! post-exec drop. Only the effective, permitted, inheritable and ambient
//! sets are cleared: dropping the bounding set needs CAP_SETPCAP, which the
//! stock RHEL SELinux policy denies to dovecot_t (reference §1.9).

use caps::CapSet;

/// Clears every capability this process holds.
pub fn clear_capabilities() -> Result<(), String> {
    for set in [CapSet::Ambient, CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        caps::clear(None, set).map_err(|e| format!("{set:?}: {e}"))?;
    }
    Ok(())
}
