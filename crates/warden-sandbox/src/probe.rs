//! What this host can give a worker, without confining anything: for an operator's banner
//! (`warden up`) and for choosing a policy's minimum.

use crate::landlock_rules::{self, LANDLOCK_ABI_KNOWN};
use crate::policy::{Attestation, SeccompMode};
use crate::procfs;
use crate::seccomp;

/// The attestation a worker spawned from this process would get on this host.
///
/// `network_namespace` is true when this process holds `CAP_SYS_ADMIN` (so [`crate::spawn`]
/// creates one); no_new_privs and dropping capabilities are always possible.
pub fn probe() -> Attestation {
    let landlock_abi = landlock_rules::host_abi();
    Attestation {
        landlock_abi,
        landlock_fully_enforced: landlock_abi >= LANDLOCK_ABI_KNOWN,
        seccomp: if seccomp::available() {
            SeccompMode::Filter
        } else {
            SeccompMode::None
        },
        network_namespace: procfs::read_status("self").is_ok_and(|status| status.has_sys_admin()),
        no_new_privs: true,
        capabilities_dropped: true,
    }
}
