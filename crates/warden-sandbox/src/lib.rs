//! Starts a worker process confined so that it can do nothing but talk over one inherited Unix
//! socket, and proves to the parent what confinement it got.
//!
//! Why: the agent service runs each investigation's untrusted part (building prompts, reading
//! model answers, deciding tool calls) in a worker that talks only to a broker. If a model
//! answer or tool output subverts that code, the worker still cannot read or write a file,
//! reach the network, start a program, or touch another process.
//!
//! How, on Linux (see `docs/SANDBOX.md` for what is and is not guaranteed):
//! - the parent ([`spawn`]) hands the worker one end of a socket pair as descriptor 3, sets
//!   limits (address space, CPU, descriptors, no core dumps), no_new_privs and, when it holds
//!   `CAP_SYS_ADMIN`, a fresh empty network namespace, between fork and exec;
//! - the worker ([`enter_worker`], first thing in `main`, while single-threaded) drops all
//!   capabilities, applies a Landlock ruleset granting nothing and a seccomp filter refusing the
//!   network, processes, exec and the kernel's riskier interfaces, then reports its
//!   [`Attestation`] as the first frame on the socket;
//! - the parent checks that report against `/proc/<pid>` and refuses a worker below the
//!   policy's minimum ([`SandboxError::BelowMinimum`]).
//!
//! Landlock and seccomp carry the guarantee without privileges or user namespaces; the network
//! namespace is an extra layer when the parent is privileged.

mod enter;
mod error;
pub mod frame;
mod landlock_rules;
mod policy;
mod probe;
mod procfs;
mod seccomp;
pub mod selfcheck;
mod spawn;
mod sys;

pub use enter::{Confined, EXIT_BELOW_MINIMUM, POLICY_ENV, enter, enter_worker};
pub use error::SandboxError;
pub use landlock_rules::LANDLOCK_ABI_KNOWN;
pub use policy::{Attestation, Policy, Required, SeccompMode};
pub use probe::probe;
pub use spawn::{HANDSHAKE_TIMEOUT, Worker, spawn};
pub use sys::WORKER_SOCKET_FD;
