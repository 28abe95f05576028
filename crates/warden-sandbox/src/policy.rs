//! What a worker is allowed (limits), what it must reach (the minimum), and what it got (the
//! attestation), as plain data, with the one decision over them: does what it got meet the
//! minimum. Kept apart from the system calls so the decision is tested on its own.

use serde::{Deserialize, Serialize};

/// Limits a worker runs under and the confinement it must reach.
///
/// Passed to [`crate::spawn`] in the parent; the worker receives the same value (as JSON in the
/// environment variable [`crate::POLICY_ENV`]) and hands it to [`crate::enter`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// `RLIMIT_AS`: the worker's whole address space, in bytes (code, stacks, heap). An
    /// allocation beyond it fails (`mmap` returns `ENOMEM`).
    pub memory_bytes: u64,
    /// `RLIMIT_CPU`: CPU seconds (user + system) the worker may use in its life. At the limit it
    /// gets `SIGXCPU`, one second later `SIGKILL`.
    pub cpu_seconds: u64,
    /// `RLIMIT_NOFILE`: the highest descriptor number plus one the worker may open. The worker
    /// needs a few for its runtime (epoll, eventfd) besides 0-3.
    pub max_open_files: u64,
    /// The confinement the worker must reach; [`crate::spawn`] refuses a worker below it.
    pub min: Required,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            memory_bytes: 1 << 30,
            cpu_seconds: 600,
            max_open_files: 64,
            min: Required::default(),
        }
    }
}

/// The least confinement a run accepts. A worker that cannot reach it is refused
/// ([`crate::SandboxError::BelowMinimum`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Required {
    /// Lowest Landlock ABI the worker must have enforced; 0 means Landlock is not required.
    pub landlock_abi: u8,
    /// A seccomp filter must be installed.
    pub seccomp: bool,
    /// The worker must be in a network namespace of its own with nothing but loopback (only
    /// possible when the parent has `CAP_SYS_ADMIN`).
    pub network_namespace: bool,
}

impl Default for Required {
    /// Landlock (any ABI: the seccomp filter closes the gaps of ABI 1, see `docs/SANDBOX.md`)
    /// and seccomp; no network namespace, which unprivileged parents cannot create.
    fn default() -> Self {
        Required {
            landlock_abi: 1,
            seccomp: true,
            network_namespace: false,
        }
    }
}

/// Whether a seccomp filter is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeccompMode {
    /// A filter is installed (`/proc/<pid>/status` shows `Seccomp: 2`).
    Filter,
    /// No seccomp restriction.
    None,
}

/// What confinement a process actually got (from [`crate::enter`]) or a host can give (from
/// [`crate::probe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    /// The Landlock ABI enforced; 0 means none. Capped at the highest ABI the `landlock` crate
    /// knows ([`crate::LANDLOCK_ABI_KNOWN`]).
    pub landlock_abi: u8,
    /// Every filesystem, network and scope restriction the `landlock` crate knows is enforced
    /// (false on kernels older than [`crate::LANDLOCK_ABI_KNOWN`], where some are missing).
    pub landlock_fully_enforced: bool,
    /// The seccomp filter.
    pub seccomp: SeccompMode,
    /// In a network namespace of its own whose only interface is loopback.
    pub network_namespace: bool,
    /// `PR_SET_NO_NEW_PRIVS` is set: no exec can raise privileges.
    pub no_new_privs: bool,
    /// The effective, permitted and inheritable capability sets are empty.
    pub capabilities_dropped: bool,
}

impl Attestation {
    /// Nothing enforced.
    pub const NONE: Attestation = Attestation {
        landlock_abi: 0,
        landlock_fully_enforced: false,
        seccomp: SeccompMode::None,
        network_namespace: false,
        no_new_privs: false,
        capabilities_dropped: false,
    };

    /// What this attestation lacks to meet `required`, one plain sentence each; empty when it
    /// meets it.
    pub fn shortfall(&self, required: &Required) -> Vec<String> {
        let mut missing = Vec::new();
        if self.landlock_abi < required.landlock_abi {
            missing.push(if self.landlock_abi == 0 {
                format!(
                    "Landlock ABI {} is required but Landlock is not enforced",
                    required.landlock_abi
                )
            } else {
                format!(
                    "Landlock ABI {} is required but only ABI {} is enforced",
                    required.landlock_abi, self.landlock_abi
                )
            });
        }
        if required.seccomp && self.seccomp != SeccompMode::Filter {
            missing.push("a seccomp filter is required but none is installed".to_owned());
        }
        if required.network_namespace && !self.network_namespace {
            missing.push(
                "an empty network namespace is required but the worker shares a network \
                 (creating one needs CAP_SYS_ADMIN)"
                    .to_owned(),
            );
        }
        missing
    }

    /// True when nothing is missing to meet `required`.
    pub fn meets(&self, required: &Required) -> bool {
        self.shortfall(required).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Attestation {
        Attestation {
            landlock_abi: 7,
            landlock_fully_enforced: false,
            seccomp: SeccompMode::Filter,
            network_namespace: true,
            no_new_privs: true,
            capabilities_dropped: true,
        }
    }

    #[test]
    fn a_full_attestation_meets_the_strictest_requirement_it_reaches() {
        let required = Required {
            landlock_abi: 7,
            seccomp: true,
            network_namespace: true,
        };
        assert!(full().meets(&required));
        assert!(full().shortfall(&required).is_empty());
    }

    #[test]
    fn each_missing_piece_is_named() {
        let required = Required {
            landlock_abi: 8,
            seccomp: true,
            network_namespace: true,
        };
        let got = Attestation {
            seccomp: SeccompMode::None,
            network_namespace: false,
            ..full()
        };
        let missing = got.shortfall(&required);
        assert_eq!(missing.len(), 3, "{missing:?}");
        assert!(missing[0].contains("ABI 8") && missing[0].contains("ABI 7"));
        assert!(missing[1].contains("seccomp"));
        assert!(missing[2].contains("network namespace"));
        assert!(!got.meets(&required));
    }

    #[test]
    fn nothing_required_is_met_by_nothing() {
        let required = Required {
            landlock_abi: 0,
            seccomp: false,
            network_namespace: false,
        };
        assert!(Attestation::NONE.meets(&required));
        assert!(!Attestation::NONE.meets(&Required::default()));
    }

    #[test]
    fn no_landlock_is_said_plainly() {
        let missing = Attestation::NONE.shortfall(&Required::default());
        assert!(missing[0].contains("not enforced"), "{missing:?}");
    }

    #[test]
    fn attestation_round_trips_as_json() -> Result<(), serde_json::Error> {
        let text = serde_json::to_string(&full())?;
        assert!(text.contains("\"seccomp\":\"filter\""), "{text}");
        let back: Attestation = serde_json::from_str(&text)?;
        assert_eq!(back, full());
        Ok(())
    }
}
