//! The Landlock ruleset: it handles every filesystem and network right and every scope the
//! `landlock` crate knows, and grants none, so the worker can open, create, execute, rename or
//! remove nothing, bind or connect no TCP/UDP port, and signal or reach no abstract Unix socket
//! outside its own domain. Best effort: a kernel with an older ABI enforces what it supports, and
//! the ABI actually enforced is recorded (`Attestation::landlock_abi`).
//!
//! Landlock confines the calling thread and what it later creates, so it is applied while the
//! worker has one thread (see `crate::enter`).

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus, Scope,
};

use crate::error::SandboxError;

/// The newest ABI the `landlock` crate in use knows; rights of later ABIs cannot be requested.
pub const LANDLOCK_ABI_KNOWN: u8 = 10;
const NEWEST: ABI = ABI::V10;

/// What restricting the thread achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Enforced {
    pub abi: u8,
    pub fully: bool,
}

/// The Landlock ABI this kernel offers, capped at what the crate knows; 0 when Landlock is
/// missing or disabled.
pub(crate) fn host_abi() -> u8 {
    crate::sys::landlock_kernel_abi().map_or(0, |abi| abi.min(LANDLOCK_ABI_KNOWN))
}

/// Restricts the calling thread (and its future children and threads) with a ruleset that
/// grants nothing.
pub(crate) fn restrict_self() -> Result<Enforced, SandboxError> {
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(NEWEST))?
        .handle_access(AccessNet::from_all(NEWEST))?
        .scope(Scope::from_all(NEWEST))?
        .create()?
        .no_new_privs(true)
        .restrict_self()?;
    let abi = match status.ruleset {
        RulesetStatus::NotEnforced => 0,
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => {
            abi_number(ABI::from(status.landlock))
        }
    };
    Ok(Enforced {
        abi,
        fully: status.ruleset == RulesetStatus::FullyEnforced,
    })
}

/// The number of an ABI value from the crate.
fn abi_number(abi: ABI) -> u8 {
    (1..=LANDLOCK_ABI_KNOWN)
        .rev()
        .find(|&n| ABI::from(i32::from(n)) == abi)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_numbers_match_the_crate() {
        assert_eq!(abi_number(ABI::V1), 1);
        assert_eq!(abi_number(ABI::V7), 7);
        assert_eq!(abi_number(NEWEST), LANDLOCK_ABI_KNOWN);
        assert_eq!(abi_number(ABI::Unsupported), 0);
    }

    #[test]
    fn the_host_abi_never_exceeds_what_the_crate_knows() {
        assert!(host_abi() <= LANDLOCK_ABI_KNOWN);
    }
}
