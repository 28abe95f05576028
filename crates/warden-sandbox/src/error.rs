//! Everything that can stop a worker from starting confined, worded for the operator who reads
//! it: what failed and, where it helps, what to do.

use std::path::PathBuf;
use std::time::Duration;

use crate::policy::{Attestation, Required};

/// Why a worker could not be started or confined.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The worker could not reach the policy's minimum: the run is refused.
    #[error(
        "the worker's sandbox is below the required minimum: {}",
        got.shortfall(required).join("; ")
    )]
    BelowMinimum {
        /// What the worker got.
        got: Attestation,
        /// What the policy required.
        required: Required,
    },

    /// What the worker said it got differs from what the kernel shows for it.
    #[error(
        "the worker's attestation does not match the kernel: {what} is {observed} but the worker claimed {claimed}"
    )]
    AttestationMismatch {
        /// The property compared.
        what: &'static str,
        /// What the worker claimed.
        claimed: String,
        /// What the parent observed in `/proc`.
        observed: String,
    },

    /// The parent could not read what it needs to check the worker in `/proc`.
    #[error("cannot check the worker's confinement: reading {path} failed: {source}")]
    Verify {
        /// The file read.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The worker program could not be started.
    #[error("cannot start the worker {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The worker started but did not report its confinement.
    #[error("the worker (pid {pid}) did not report its sandbox: {reason}")]
    Handshake {
        /// The worker's process id.
        pid: u32,
        /// What went wrong, with the worker's exit status when it had exited.
        reason: String,
    },

    /// The worker did not report its sandbox in time.
    #[error("the worker (pid {pid}) did not report its sandbox within {after:?}; it was killed")]
    HandshakeTimeout {
        /// The worker's process id.
        pid: u32,
        /// How long the parent waited.
        after: Duration,
    },

    /// The worker reported that entering the sandbox failed.
    #[error("the worker could not enter its sandbox: {reason}")]
    WorkerFailed {
        /// The worker's own account.
        reason: String,
    },

    /// `enter` was called with more than one thread: Landlock confines only the calling thread,
    /// so the others would escape.
    #[error(
        "the sandbox must be entered while the process has one thread, but it has {threads}; \
         call enter before starting a runtime or any thread"
    )]
    NotSingleThreaded {
        /// Threads counted in `/proc/self/status`.
        threads: u32,
    },

    /// This process was not started by [`crate::spawn`] (or its environment was tampered with).
    #[error("this process was not started as a sandboxed worker: {reason}")]
    NotAWorker {
        /// What is missing.
        reason: String,
    },

    /// Building or installing the Landlock ruleset failed.
    #[error("cannot install the Landlock ruleset: {0}")]
    Landlock(#[from] landlock::RulesetError),

    /// Building or installing the seccomp filter failed.
    #[error("cannot install the seccomp filter: {0}")]
    Seccomp(String),

    /// A system call the sandbox relies on failed.
    #[error("{what} failed: {source}")]
    Os {
        /// The call, in words.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A handshake frame was malformed or too large.
    #[error("bad frame on the worker socket: {0}")]
    Frame(String),
}

impl SandboxError {
    /// Wraps an I/O error from the system call described by `what`.
    pub(crate) fn os(what: &'static str, source: impl Into<std::io::Error>) -> SandboxError {
        SandboxError::Os {
            what,
            source: source.into(),
        }
    }
}
