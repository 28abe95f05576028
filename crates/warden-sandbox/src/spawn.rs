//! The parent's side: start a worker confined, take its report, check the report against what
//! the kernel shows, and refuse a worker below the policy's minimum.
//!
//! The worker's report cannot be forged in a way that matters: it is written by our own code in
//! the worker before the worker has read a byte of input (the parent sends nothing before it has
//! accepted the report), and every claim the kernel exposes is checked in `/proc/<pid>`: seccomp
//! mode, no_new_privs, capabilities, the network namespace and its interfaces, and the limits.
//! Landlock is not visible from outside; the parent checks that the claimed ABI is the one this
//! kernel offers (same kernel, same crate).

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rustix::process::Resource;
use tokio::io::AsyncReadExt;
use tokio::net::UnixStream;
use tokio::process::{Child, ChildStderr, Command};

use crate::enter::{Handshake, POLICY_ENV};
use crate::error::SandboxError;
use crate::frame;
use crate::landlock_rules::{self, LANDLOCK_ABI_KNOWN};
use crate::policy::{Attestation, Policy, SeccompMode};
use crate::procfs::{self, ProcStatus};
use crate::sys::{self, ChildSetup, LimitSetting};

/// How long the parent waits for a worker's report.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the parent waits for a refused worker to exit before killing it.
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// A running, confined worker. Dropping it kills the worker (`SIGKILL`).
#[derive(Debug)]
pub struct Worker {
    /// The worker process (`kill_on_drop`). Its stderr is forwarded to `tracing` (target
    /// `warden_sandbox::worker`), line by line.
    pub child: Child,
    /// The parent's end of the socket; the worker has the other end as descriptor 3.
    pub socket: UnixStream,
    /// What the worker got, checked against `/proc`.
    pub attestation: Attestation,
}

impl Worker {
    /// The worker's process id (`None` once it has been reaped).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the worker and waits for it, so no zombie is left.
    pub async fn kill(mut self) -> std::io::Result<ExitStatus> {
        self.child.kill().await?;
        self.child.wait().await
    }
}

/// One limit: the name `/proc/<pid>/limits` gives it, the resource, soft and hard values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LimitSpec {
    pub proc_name: &'static str,
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// The limits a worker runs under. `RLIMIT_NPROC` is deliberately absent: it counts every
/// thread of the user across the host (so 0 would stop the worker's runtime from starting its
/// threads) and does not apply to root; the seccomp filter is what refuses new processes.
pub(crate) fn limits(policy: &Policy) -> Vec<LimitSpec> {
    let spec = |proc_name, resource, soft, hard| LimitSpec {
        proc_name,
        resource,
        soft,
        hard,
    };
    vec![
        spec(
            "Max address space",
            Resource::As,
            policy.memory_bytes,
            policy.memory_bytes,
        ),
        // SIGXCPU at the soft limit, SIGKILL a second later.
        spec(
            "Max cpu time",
            Resource::Cpu,
            policy.cpu_seconds,
            policy.cpu_seconds.saturating_add(1),
        ),
        spec(
            "Max open files",
            Resource::Nofile,
            policy.max_open_files,
            policy.max_open_files,
        ),
        // No core dumps: a worker's memory holds prompts and tenant data.
        spec("Max core file size", Resource::Core, 0, 0),
        // No regular file can be written anyway; SIGXFSZ if one ever were.
        spec("Max file size", Resource::Fsize, 0, 0),
        spec("Max locked memory", Resource::Memlock, 0, 0),
        spec("Max msgqueue size", Resource::Msgqueue, 0, 0),
    ]
}

/// Starts `program` confined under `policy` and returns once it has reported a sandbox that
/// meets `policy.min` and the report has been checked against the kernel.
///
/// The worker gets: the worker's end of a Unix socket pair as descriptor 3 (every other
/// descriptor above 2 closed on exec), stdin and stdout `/dev/null`, stderr a pipe forwarded to
/// `tracing`, an empty environment but [`POLICY_ENV`], `/` as working directory, a session of its
/// own, the policy's limits, no_new_privs and, when
/// this process holds `CAP_SYS_ADMIN`, a fresh network namespace (loopback only, down). The
/// worker must call [`crate::enter_worker`] first thing. It gets `SIGKILL` when this process
/// dies (it is forked from a thread that lives as long as the process), and when its [`Worker`]
/// is dropped.
pub async fn spawn(program: &Path, args: &[&str], policy: &Policy) -> Result<Worker, SandboxError> {
    let own_status = procfs::read_status("self")?;
    let (parent_end, worker_end) =
        StdUnixStream::pair().map_err(|e| SandboxError::os("creating the worker's socket", e))?;
    let policy_json = serde_json::to_string(policy)
        .map_err(|e| SandboxError::Frame(format!("cannot encode the policy: {e}")))?;

    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env(POLICY_ENV, policy_json)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    sys::install_pre_exec(
        &mut command,
        ChildSetup {
            socket_fd: worker_end.as_raw_fd(),
            parent_pid: std::process::id(),
            new_network_namespace: own_status.has_sys_admin(),
            limits: limits(policy)
                .into_iter()
                .map(|spec| LimitSetting {
                    resource: spec.resource,
                    soft: spec.soft,
                    hard: spec.hard,
                })
                .collect(),
        },
    );
    let mut child = spawn_from_long_lived_thread(command)
        .await
        .map_err(|source| SandboxError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
    drop(worker_end);
    let pid = child.id().unwrap_or(0);
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(forward_stderr(pid, stderr));
    }

    parent_end
        .set_nonblocking(true)
        .map_err(|e| SandboxError::os("preparing the worker's socket", e))?;
    let mut socket = UnixStream::from_std(parent_end)
        .map_err(|e| SandboxError::os("preparing the worker's socket", e))?;

    let handshake = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        frame::read_frame::<_, Handshake>(&mut socket, frame::HANDSHAKE_MAX),
    )
    .await;
    let attestation = match handshake {
        Err(_) => {
            let _ = child.kill().await;
            return Err(SandboxError::HandshakeTimeout {
                pid,
                after: HANDSHAKE_TIMEOUT,
            });
        }
        Ok(Err(e)) => {
            let _ = child.kill().await;
            return Err(SandboxError::Handshake {
                pid,
                reason: e.to_string(),
            });
        }
        Ok(Ok(None)) => {
            let status = exit_status(&mut child).await;
            return Err(SandboxError::Handshake {
                pid,
                reason: format!("it closed its socket without a report ({status})"),
            });
        }
        Ok(Ok(Some(Handshake::Failed { reason }))) => {
            let _ = child.kill().await;
            return Err(SandboxError::WorkerFailed { reason });
        }
        Ok(Ok(Some(Handshake::BelowMinimum { attestation }))) => {
            let _ = exit_status(&mut child).await;
            return Err(SandboxError::BelowMinimum {
                got: attestation,
                required: policy.min,
            });
        }
        Ok(Ok(Some(Handshake::Entered { attestation }))) => attestation,
    };

    let checked = observe(pid).and_then(|observed| {
        check_claims(
            &attestation,
            &observed,
            landlock_rules::host_abi(),
            &limits(policy),
        )
    });
    if let Err(e) = checked {
        let _ = child.kill().await;
        return Err(e);
    }
    if !attestation.meets(&policy.min) {
        let _ = child.kill().await;
        return Err(SandboxError::BelowMinimum {
            got: attestation,
            required: policy.min,
        });
    }
    Ok(Worker {
        child,
        socket,
        attestation,
    })
}

/// Work for the spawner thread.
type SpawnJob = Box<dyn FnOnce() + Send>;

/// The parent-death signal fires when the thread that forked the worker exits, not the process;
/// a tokio thread may exit at any time (blocking-pool threads idle out, `block_in_place` moves
/// work around). So every worker is forked by one thread that lives as long as the process.
fn spawner() -> std::io::Result<&'static std::sync::mpsc::Sender<SpawnJob>> {
    static SPAWNER: std::sync::OnceLock<std::sync::mpsc::Sender<SpawnJob>> =
        std::sync::OnceLock::new();
    static START: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if let Some(sender) = SPAWNER.get() {
        return Ok(sender);
    }
    let _starting = START
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(sender) = SPAWNER.get() {
        return Ok(sender);
    }
    let (sender, jobs) = std::sync::mpsc::channel::<SpawnJob>();
    std::thread::Builder::new()
        .name("warden-sandbox-spawner".to_owned())
        .spawn(move || {
            for job in jobs {
                job();
            }
        })?;
    Ok(SPAWNER.get_or_init(|| sender))
}

async fn spawn_from_long_lived_thread(mut command: Command) -> std::io::Result<Child> {
    let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
    let (reply, spawned) = tokio::sync::oneshot::channel();
    let job: SpawnJob = Box::new(move || {
        // The child is registered with the caller's runtime (exit notification, reaping).
        let _entered = runtime.enter();
        let _ = reply.send(command.spawn());
    });
    spawner()?
        .send(job)
        .map_err(|_| std::io::Error::other("the spawner thread has stopped"))?;
    spawned
        .await
        .map_err(|_| std::io::Error::other("the spawner thread dropped the request"))?
}

/// The child's exit status in words, killing it if it does not exit within a grace period.
async fn exit_status(child: &mut Child) -> String {
    match tokio::time::timeout(EXIT_GRACE, child.wait()).await {
        Ok(Ok(status)) => describe(status),
        Ok(Err(e)) => format!("its exit status could not be read: {e}"),
        Err(_) => {
            let _ = child.kill().await;
            "it did not exit and was killed".to_owned()
        }
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// What the kernel shows about a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Observed {
    pub status: ProcStatus,
    pub limits_text: String,
    pub isolated_network: bool,
}

fn observe(pid: u32) -> Result<Observed, SandboxError> {
    let who = pid.to_string();
    let status = procfs::read_status(&who)?;
    let limits_text = procfs::read_limits(&who)?;
    let own_ns = procfs::read_network_namespace("self")?;
    let worker_ns = procfs::read_network_namespace(&who)?;
    let interfaces = procfs::read_interfaces(&who)?;
    Ok(Observed {
        status,
        limits_text,
        isolated_network: procfs::is_isolated_network(Some(worker_ns), Some(own_ns), &interfaces),
    })
}

fn mismatch(what: &'static str, claimed: impl ToString, observed: impl ToString) -> SandboxError {
    SandboxError::AttestationMismatch {
        what,
        claimed: claimed.to_string(),
        observed: observed.to_string(),
    }
}

/// Checks each claim the kernel lets the parent see; the first difference is the error.
pub(crate) fn check_claims(
    claimed: &Attestation,
    observed: &Observed,
    host_landlock_abi: u8,
    limits: &[LimitSpec],
) -> Result<(), SandboxError> {
    let seccomp_filter = observed.status.seccomp == Some(2);
    if (claimed.seccomp == SeccompMode::Filter) != seccomp_filter {
        return Err(mismatch(
            "seccomp filter mode",
            claimed.seccomp == SeccompMode::Filter,
            format!("{:?}", observed.status.seccomp),
        ));
    }
    if Some(claimed.no_new_privs) != observed.status.no_new_privs {
        return Err(mismatch(
            "no_new_privs",
            claimed.no_new_privs,
            format!("{:?}", observed.status.no_new_privs),
        ));
    }
    let no_capabilities =
        observed.status.cap_effective == Some(0) && observed.status.cap_permitted == Some(0);
    if claimed.capabilities_dropped != no_capabilities {
        return Err(mismatch(
            "capabilities dropped",
            claimed.capabilities_dropped,
            no_capabilities,
        ));
    }
    if claimed.network_namespace != observed.isolated_network {
        return Err(mismatch(
            "an isolated network namespace",
            claimed.network_namespace,
            observed.isolated_network,
        ));
    }
    if claimed.landlock_abi != host_landlock_abi {
        return Err(mismatch(
            "the Landlock ABI (this kernel offers it to every process)",
            claimed.landlock_abi,
            host_landlock_abi,
        ));
    }
    if claimed.landlock_fully_enforced && host_landlock_abi < LANDLOCK_ABI_KNOWN {
        return Err(mismatch(
            "full Landlock enforcement",
            true,
            format!("impossible with ABI {host_landlock_abi}"),
        ));
    }
    for spec in limits {
        let seen = procfs::parse_limit(&observed.limits_text, spec.proc_name);
        let wanted = procfs::Limit {
            soft: Some(spec.soft),
            hard: Some(spec.hard),
        };
        if seen != Some(wanted) {
            return Err(mismatch(
                spec.proc_name,
                format!("{}/{} (set by the parent)", spec.soft, spec.hard),
                format!("{seen:?}"),
            ));
        }
    }
    Ok(())
}

/// Forwards the worker's stderr to `tracing`, one line at a time, each cut at 4 KiB and
/// escaped (a worker cannot forge log lines or send terminal escapes).
async fn forward_stderr(pid: u32, mut stderr: ChildStderr) {
    const LINE_MAX: usize = 4096;
    let mut line: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 1024];
    let emit = |line: &mut Vec<u8>| {
        if !line.is_empty() {
            let text = String::from_utf8_lossy(line);
            tracing::info!(target: "warden_sandbox::worker", worker_pid = pid, line = %text.escape_debug());
            line.clear();
        }
    };
    loop {
        let read = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        for &byte in &chunk[..read] {
            if byte == b'\n' {
                emit(&mut line);
            } else if line.len() < LINE_MAX {
                line.push(byte);
            }
        }
    }
    emit(&mut line);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attestation() -> Attestation {
        Attestation {
            landlock_abi: 7,
            landlock_fully_enforced: false,
            seccomp: SeccompMode::Filter,
            network_namespace: false,
            no_new_privs: true,
            capabilities_dropped: true,
        }
    }

    fn observed(policy: &Policy) -> Observed {
        let mut text = String::from("Limit  Soft Limit  Hard Limit  Units\n");
        for spec in limits(policy) {
            text.push_str(&format!(
                "{}    {}    {}    x\n",
                spec.proc_name, spec.soft, spec.hard
            ));
        }
        Observed {
            status: ProcStatus {
                threads: Some(3),
                no_new_privs: Some(true),
                seccomp: Some(2),
                cap_effective: Some(0),
                cap_permitted: Some(0),
            },
            limits_text: text,
            isolated_network: false,
        }
    }

    #[test]
    fn true_claims_pass() {
        let policy = Policy::default();
        assert!(check_claims(&attestation(), &observed(&policy), 7, &limits(&policy)).is_ok());
    }

    #[test]
    fn a_claimed_filter_the_kernel_does_not_show_is_caught() {
        let policy = Policy::default();
        let mut seen = observed(&policy);
        seen.status.seccomp = Some(0);
        let result = check_claims(&attestation(), &seen, 7, &limits(&policy));
        assert!(
            matches!(result, Err(SandboxError::AttestationMismatch { what, .. }) if what.contains("seccomp")),
            "{result:?}"
        );
    }

    #[test]
    fn each_kernel_visible_claim_is_checked() {
        let policy = Policy::default();
        let specs = limits(&policy);
        let cases: Vec<(&str, Attestation, Observed, u8)> = vec![
            (
                "no_new_privs",
                attestation(),
                Observed {
                    status: ProcStatus {
                        no_new_privs: Some(false),
                        ..observed(&policy).status
                    },
                    ..observed(&policy)
                },
                7,
            ),
            (
                "capabilities",
                attestation(),
                Observed {
                    status: ProcStatus {
                        cap_effective: Some(1 << 21),
                        ..observed(&policy).status
                    },
                    ..observed(&policy)
                },
                7,
            ),
            (
                "network",
                Attestation {
                    network_namespace: true,
                    ..attestation()
                },
                observed(&policy),
                7,
            ),
            ("Landlock ABI", attestation(), observed(&policy), 6),
            (
                "full Landlock",
                Attestation {
                    landlock_fully_enforced: true,
                    ..attestation()
                },
                observed(&policy),
                7,
            ),
            (
                "Max address space",
                attestation(),
                observed(&Policy {
                    memory_bytes: 1 << 40,
                    ..Policy::default()
                }),
                7,
            ),
        ];
        for (label, claimed, seen, abi) in cases {
            let result = check_claims(&claimed, &seen, abi, &specs);
            assert!(
                matches!(result, Err(SandboxError::AttestationMismatch { .. })),
                "{label}: {result:?}"
            );
        }
    }

    #[test]
    fn limits_follow_the_policy_and_leave_nproc_alone() {
        let policy = Policy {
            memory_bytes: 100,
            cpu_seconds: 5,
            max_open_files: 16,
            ..Policy::default()
        };
        let specs = limits(&policy);
        let find = |resource| specs.iter().find(|spec| spec.resource == resource).copied();
        assert_eq!(
            find(Resource::As).map(|s| (s.soft, s.hard)),
            Some((100, 100))
        );
        assert_eq!(find(Resource::Cpu).map(|s| (s.soft, s.hard)), Some((5, 6)));
        assert_eq!(
            find(Resource::Nofile).map(|s| (s.soft, s.hard)),
            Some((16, 16))
        );
        assert_eq!(find(Resource::Core).map(|s| (s.soft, s.hard)), Some((0, 0)));
        assert_eq!(find(Resource::Nproc), None);
    }
}
