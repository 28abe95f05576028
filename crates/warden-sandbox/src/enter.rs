//! The worker's side: confine this process (Landlock, capabilities, seccomp) and report what it
//! got to the parent.
//!
//! Why here and not between fork and exec: Landlock also governs exec, and a ruleset that grants
//! nothing would forbid executing the worker itself; a seccomp filter refusing execve would
//! forbid it too. So the parent sets up what exec does not undo (limits, namespace,
//! no_new_privs, descriptors) and the worker confines itself first thing in `main`, before it
//! starts a runtime, reads any input or creates a thread: Landlock confines only the calling
//! thread (and what it creates later), so `enter` refuses to run with more than one thread.

use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};

use crate::error::SandboxError;
use crate::frame;
use crate::landlock_rules;
use crate::policy::{Attestation, Policy, SeccompMode};
use crate::procfs;
use crate::seccomp;
use crate::sys;

/// The environment variable through which [`crate::spawn`] passes the [`Policy`] (JSON).
pub const POLICY_ENV: &str = "WARDEN_SANDBOX_POLICY";

/// The exit status of a worker that could not reach its policy's minimum (after it reported
/// what it got).
pub const EXIT_BELOW_MINIMUM: i32 = 97;

/// The first frame a worker sends on its socket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub(crate) enum Handshake {
    /// Confined, meeting the minimum.
    Entered { attestation: Attestation },
    /// Confined as far as the host allows, below the minimum; the worker exits.
    BelowMinimum { attestation: Attestation },
    /// Entering failed.
    Failed { reason: String },
}

/// A confined worker's end: what it got and its socket to the parent.
#[derive(Debug)]
pub struct Confined {
    /// What the worker got (already sent to the parent).
    pub attestation: Attestation,
    /// The socket to the parent (descriptor 3), blocking. For tokio:
    /// `set_nonblocking(true)` then `tokio::net::UnixStream::from_std`.
    pub socket: UnixStream,
}

/// Confines this process as far as the host allows and returns what it got.
///
/// Applies, in order: all capabilities dropped, `PR_SET_NO_NEW_PRIVS`, a Landlock ruleset
/// granting nothing (best effort: the ABI enforced is recorded), the seccomp filters. Reads what
/// it needs from `/proc` first (thread count, network namespace): Landlock hides it afterwards.
///
/// Returns [`SandboxError::BelowMinimum`] when the result is below `policy.min`; the process
/// stays confined as far as it got. Must be called while the process has a single thread
/// ([`SandboxError::NotSingleThreaded`] otherwise). Limits are not set here: they are the
/// parent's (`crate::spawn`), set before exec.
pub fn enter(policy: &Policy) -> Result<Attestation, SandboxError> {
    let own = procfs::read_status("self")?;
    match own.threads {
        Some(1) => {}
        Some(threads) => return Err(SandboxError::NotSingleThreaded { threads }),
        None => {
            return Err(SandboxError::os(
                "counting this process's threads",
                std::io::Error::other("no Threads line in /proc/self/status"),
            ));
        }
    }
    let network_namespace = own_network_is_isolated();

    drop_capabilities()?;
    rustix::thread::set_no_new_privs(true)
        .map_err(|e| SandboxError::os("setting no_new_privs", e))?;

    let landlock = if landlock_rules::host_abi() > 0 {
        landlock_rules::restrict_self()?
    } else {
        landlock_rules::Enforced {
            abi: 0,
            fully: false,
        }
    };
    if seccomp::available() {
        seccomp::install(std::process::id())?;
    }

    // Ask the kernel what is now in force rather than trusting the steps above.
    let seccomp_mode = match rustix::thread::secure_computing_mode() {
        Ok(rustix::thread::SecureComputingMode::Filter) => SeccompMode::Filter,
        _ => SeccompMode::None,
    };
    let capabilities = rustix::thread::capabilities(None)
        .map_err(|e| SandboxError::os("reading this thread's capabilities", e))?;
    let attestation = Attestation {
        landlock_abi: landlock.abi,
        landlock_fully_enforced: landlock.fully,
        seccomp: seccomp_mode,
        network_namespace,
        no_new_privs: rustix::thread::no_new_privs().unwrap_or(false),
        capabilities_dropped: capabilities.effective.is_empty()
            && capabilities.permitted.is_empty()
            && capabilities.inheritable.is_empty(),
    };
    if attestation.meets(&policy.min) {
        Ok(attestation)
    } else {
        Err(SandboxError::BelowMinimum {
            got: attestation,
            required: policy.min,
        })
    }
}

/// Empties the ambient, effective, permitted and inheritable sets (a worker started as root
/// keeps uid 0 but no privilege; the bounding set matters only across exec, which is refused).
fn drop_capabilities() -> Result<(), SandboxError> {
    rustix::thread::clear_ambient_capability_set()
        .map_err(|e| SandboxError::os("clearing the ambient capabilities", e))?;
    let empty = rustix::thread::CapabilitySet::empty();
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: empty,
            permitted: empty,
            inheritable: empty,
        },
    )
    .map_err(|e| SandboxError::os("dropping capabilities", e))
}

/// In a network namespace other than its parent's, with loopback only. False when anything
/// cannot be read (the parent checks too).
fn own_network_is_isolated() -> bool {
    let parent = rustix::process::getppid().map(|pid| pid.as_raw_pid().to_string());
    let parent_ns = parent.and_then(|pid| procfs::read_network_namespace(&pid).ok());
    let own_ns = procfs::read_network_namespace("self").ok();
    let interfaces = procfs::read_interfaces("self").unwrap_or_default();
    procfs::is_isolated_network(own_ns, parent_ns, &interfaces)
}

/// Called first thing in a worker's `main`: reads the policy the parent passed
/// ([`POLICY_ENV`]), takes the socket at descriptor 3, [`enter`]s the sandbox and sends the
/// parent the outcome as the first frame on the socket.
///
/// If the sandbox is below the policy's minimum, this reports it and exits the process with
/// [`EXIT_BELOW_MINIMUM`]; it does not return. Other failures are reported to the parent too
/// (when the socket could be taken) and returned.
pub fn enter_worker() -> Result<Confined, SandboxError> {
    let mut socket = sys::adopt_worker_socket()?;
    let policy = match read_policy() {
        Ok(policy) => policy,
        Err(e) => return Err(report_failure(&mut socket, e)),
    };
    match enter(&policy) {
        Ok(attestation) => {
            frame::write_frame_blocking(&mut socket, &Handshake::Entered { attestation })?;
            Ok(Confined {
                attestation,
                socket,
            })
        }
        Err(SandboxError::BelowMinimum { got, .. }) => {
            // Nothing to do if this write fails: the parent sees the exit status.
            let _ = frame::write_frame_blocking(
                &mut socket,
                &Handshake::BelowMinimum { attestation: got },
            );
            std::process::exit(EXIT_BELOW_MINIMUM)
        }
        Err(e) => Err(report_failure(&mut socket, e)),
    }
}

fn report_failure(socket: &mut UnixStream, error: SandboxError) -> SandboxError {
    let _ = frame::write_frame_blocking(
        socket,
        &Handshake::Failed {
            reason: error.to_string(),
        },
    );
    error
}

fn read_policy() -> Result<Policy, SandboxError> {
    let text = std::env::var(POLICY_ENV).map_err(|_| SandboxError::NotAWorker {
        reason: format!("{POLICY_ENV} is not set"),
    })?;
    serde_json::from_str(&text).map_err(|e| SandboxError::NotAWorker {
        reason: format!("{POLICY_ENV} is not a policy: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_are_tagged_json() -> Result<(), serde_json::Error> {
        let text = serde_json::to_string(&Handshake::BelowMinimum {
            attestation: Attestation::NONE,
        })?;
        assert!(text.starts_with("{\"outcome\":\"below_minimum\""), "{text}");
        let back: Handshake = serde_json::from_str(&text)?;
        assert_eq!(
            back,
            Handshake::BelowMinimum {
                attestation: Attestation::NONE
            }
        );
        Ok(())
    }

    #[test]
    fn entering_with_threads_is_refused_before_anything_is_applied() {
        // A second thread, alive during the call, whatever the harness does; the call must
        // refuse before confining anything (or the rest of the suite would fail).
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || stopped.recv());
        let result = enter(&Policy::default());
        drop(stop);
        let _ = other.join();
        assert!(
            matches!(result, Err(SandboxError::NotSingleThreaded { threads }) if threads > 1),
            "{result:?}"
        );
        assert_eq!(
            procfs::read_status("self")
                .map(|s| s.seccomp)
                .ok()
                .flatten(),
            Some(0),
            "the test process must not have been confined"
        );
    }
}
