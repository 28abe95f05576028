//! Where a run's untrusted part runs: in a confined worker process per run (the default),
//! or, only when an operator chose it, on a task in the agent service.
//!
//! Why: model answers and tool results are attacker-influenced. The worker that reads
//! them ([`conversation`]) holds nothing worth stealing and can reach nothing but its
//! broker ([`crate::run`]) over one socket: no network, no files, no processes (see
//! `docs/SANDBOX.md`). The broker decides every request against what it gave the worker.
//!
//! Each run's worker is admitted only if what it got meets the minimum — the operator's
//! (configured) raised by the tenant's (`TenantSettings.sandbox_minimum`) — and if every
//! escape attempt it made once confined failed ([`admit`], a pure decision). An operator
//! may accept a weaker sandbox than its own minimum (never below the tenant's); the run
//! then records the shortfall and that it was accepted.

pub(crate) mod conversation;
pub(crate) mod protocol;

use std::path::PathBuf;
use std::process::ExitCode;

use tokio::io::{AsyncRead, AsyncWrite};
use warden_proto::common::v1::SandboxMinimum;
use warden_proto::storage::v1::{SandboxCheck, SandboxRecord};
pub use warden_sandbox::selfcheck::Check;
use warden_sandbox::selfcheck::Outcome;

pub use warden_sandbox::{Attestation, Policy, Required, SeccompMode, probe};

/// How runs are isolated.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// Each run's worker is `program args…`, confined by `warden-sandbox`.
    Sandbox(SandboxOptions),
    /// The worker's code runs on a task in this process: no confinement. Only for hosts
    /// where no sandbox can be made, by an explicit operator choice; every run records it.
    InProcess,
}

/// A confined worker per run.
#[derive(Debug, Clone)]
pub struct SandboxOptions {
    /// The worker executable (`warden`, with `args` `["worker"]`).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Limits, and the operator's minimum (`policy.min`).
    pub policy: Policy,
    /// Start runs whose sandbox is below the operator's minimum (logged, recorded).
    pub accept_weaker: bool,
    /// Escapes each worker attempts once confined; any that succeeds stops the run.
    pub self_checks: Vec<Check>,
}

impl SandboxOptions {
    /// The `warden` binary itself as the worker, with the default limits and minimum, and
    /// the self checks that matter on every host: no socket but Unix, no name resolution,
    /// no program started, and none of `paths` read (the agent's own key files).
    pub fn warden_worker(program: PathBuf, paths: &[PathBuf], connect: &[String]) -> Self {
        let mut self_checks = vec![
            Check::InetSocket,
            Check::Resolve {
                host: "localhost".into(),
            },
            Check::CreateFile {
                dir: std::env::temp_dir(),
            },
            Check::Spawn {
                program: program.clone(),
            },
        ];
        self_checks.extend(
            connect
                .iter()
                .map(|addr| Check::TcpConnect { addr: addr.clone() }),
        );
        self_checks.extend(paths.iter().map(|p| Check::ReadFile { path: p.clone() }));
        SandboxOptions {
            program,
            args: vec!["worker".into()],
            policy: Policy::default(),
            accept_weaker: false,
            self_checks,
        }
    }
}

/// The tenant's floor as the sandbox crate's type (unset: none).
pub(crate) fn tenant_minimum(m: Option<&SandboxMinimum>) -> Required {
    let m = m.cloned().unwrap_or_default();
    Required {
        landlock_abi: m.landlock_abi.min(u32::from(u8::MAX)) as u8,
        seccomp: m.seccomp_filter,
        network_namespace: m.network_namespace,
    }
}

fn stricter(a: Required, b: Required) -> Required {
    Required {
        landlock_abi: a.landlock_abi.max(b.landlock_abi),
        seccomp: a.seccomp || b.seccomp,
        network_namespace: a.network_namespace || b.network_namespace,
    }
}

/// Nothing required.
const NOTHING: Required = Required {
    landlock_abi: 0,
    seccomp: false,
    network_namespace: false,
};

/// Whether a worker that got `got` (`None`: not isolated at all) and whose escape
/// attempts gave `checks` may run: the record to keep, or why it may not.
pub(crate) fn admit(
    got: Option<&Attestation>,
    operator: Required,
    accept_weaker: bool,
    tenant: Required,
    checks: &[(Check, Outcome)],
) -> Result<SandboxRecord, (SandboxRecord, String)> {
    let a = got.copied().unwrap_or(Attestation::NONE);
    let mut record = SandboxRecord {
        isolated: got.is_some(),
        landlock_abi: u32::from(a.landlock_abi),
        landlock_fully_enforced: a.landlock_fully_enforced,
        seccomp_filter: a.seccomp == SeccompMode::Filter,
        network_namespace: a.network_namespace,
        no_new_privs: a.no_new_privs,
        capabilities_dropped: a.capabilities_dropped,
        self_checks: checks
            .iter()
            .map(|(c, o)| SandboxCheck {
                attempt: attempt(c),
                refused: !o.allowed,
                errno: o.errno.unwrap_or(0),
            })
            .collect(),
        ..Default::default()
    };
    let tenant_short = a.shortfall(&tenant);
    if !tenant_short.is_empty() || (got.is_none() && tenant != NOTHING) {
        record.shortfall = tenant_short.clone();
        let why = if got.is_none() {
            "runs are not isolated on this agent service".to_owned()
        } else {
            tenant_short.join("; ")
        };
        return Err((
            record,
            format!("not started: the sandbox is below the tenant's minimum ({why})"),
        ));
    }
    let required = stricter(operator, tenant);
    let mut short = a.shortfall(&required);
    if got.is_none() {
        short.insert(0, "the worker runs inside the agent service".into());
    }
    record.shortfall = short.clone();
    if !short.is_empty() {
        if !accept_weaker {
            return Err((
                record,
                format!(
                    "not started: the sandbox is below the operator's minimum ({})",
                    short.join("; ")
                ),
            ));
        }
        record.accepted_below_minimum = true;
    }
    if let Some((c, _)) = checks.iter().find(|(_, o)| o.allowed) {
        return Err((
            record,
            format!(
                "stopped: the sandbox let the worker {}; nothing was sent to it",
                attempt(c)
            ),
        ));
    }
    Ok(record)
}

/// A check in words for the record.
fn attempt(c: &Check) -> String {
    match c {
        Check::TcpConnect { addr } => format!("open a TCP connection to {addr}"),
        Check::Resolve { host } => format!("resolve {host}"),
        Check::ReadFile { path } => format!("read {}", path.display()),
        Check::CreateFile { dir } => format!("create a file in {}", dir.display()),
        Check::Spawn { program } => format!("start {}", program.display()),
        Check::InetSocket => "open an AF_INET socket".into(),
        Check::SignalProcess { pid } => format!("signal process {pid}"),
        Check::IoUring => "set up io_uring".into(),
        other => format!("{other:?}"),
    }
}

/// A started worker: its end of the link, and what keeps it alive.
pub(crate) struct Started {
    pub io: Box<dyn Io>,
    pub attestation: Option<Attestation>,
    pub pid: u32,
    pub keeper: Keeper,
}

pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Ends the worker when dropped (its process is killed, or its task aborted).
pub(crate) enum Keeper {
    Process(tokio::process::Child),
    Task(tokio::task::JoinHandle<()>),
}

impl Keeper {
    /// How the worker ended, once its link broke (waits briefly for the process).
    pub(crate) async fn ended(&mut self) -> String {
        match self {
            Keeper::Process(child) => {
                match tokio::time::timeout(std::time::Duration::from_secs(2), child.wait()).await {
                    Ok(Ok(status)) => describe(status),
                    Ok(Err(e)) => format!("its status could not be read: {e}"),
                    Err(_) => {
                        let _ = child.kill().await;
                        "it closed its socket and was killed".into()
                    }
                }
            }
            Keeper::Task(task) => {
                if task.is_finished() {
                    "its task ended".into()
                } else {
                    task.abort();
                    "its task was stopped".into()
                }
            }
        }
    }
}

impl Keeper {
    /// Ends the worker and waits for it, so no process (not even a zombie) outlives the run.
    pub(crate) async fn stop(&mut self) {
        match self {
            Keeper::Process(child) => {
                let _ = child.kill().await;
            }
            Keeper::Task(task) => {
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        match self {
            // `kill_on_drop` is set by warden-sandbox; this makes it immediate.
            Keeper::Process(child) => {
                let _ = child.start_kill();
            }
            Keeper::Task(task) => task.abort(),
        }
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(9)) => "it was killed (SIGKILL)".into(),
        (_, Some(24)) => "it used up its CPU time (SIGXCPU)".into(),
        (_, Some(sig)) => format!("it was ended by signal {sig}"),
        (Some(code), _) => format!("it exited with status {code}"),
        _ => "it ended".into(),
    }
}

impl Isolation {
    /// Starts one run's worker (not yet admitted: see [`admit`]).
    pub(crate) async fn start(&self) -> Result<Started, String> {
        match self {
            Isolation::Sandbox(o) => {
                // The decision is [`admit`]'s, with the tenant's minimum and the operator's
                // acceptance; the spawn itself only confines and checks the report.
                let policy = Policy {
                    min: NOTHING,
                    ..o.policy.clone()
                };
                let args: Vec<&str> = o.args.iter().map(String::as_str).collect();
                let w = warden_sandbox::spawn(&o.program, &args, &policy)
                    .await
                    .map_err(|e| format!("the run's sandboxed worker could not start: {e}"))?;
                let pid = w.child.id().unwrap_or(0);
                Ok(Started {
                    io: Box::new(w.socket),
                    attestation: Some(w.attestation),
                    pid,
                    keeper: Keeper::Process(w.child),
                })
            }
            Isolation::InProcess => {
                let (ours, theirs) = tokio::io::duplex(1 << 20);
                let task = tokio::spawn(async move {
                    if let Err(e) = conversation::converse(theirs).await {
                        tracing::warn!("an in-process run worker stopped: {e}");
                    }
                });
                Ok(Started {
                    io: Box::new(ours),
                    attestation: None,
                    pid: std::process::id(),
                    keeper: Keeper::Task(task),
                })
            }
        }
    }

    /// The operator's minimum and whether a weaker sandbox is accepted.
    pub(crate) fn operator_minimum(&self) -> (Required, bool) {
        match self {
            Isolation::Sandbox(o) => (o.policy.min, o.accept_weaker),
            // Chosen explicitly: nothing is required by the operator.
            Isolation::InProcess => (NOTHING, true),
        }
    }

    /// The escapes each worker attempts.
    pub(crate) fn self_checks(&self) -> &[Check] {
        match self {
            Isolation::Sandbox(o) => &o.self_checks,
            Isolation::InProcess => &[],
        }
    }
}

/// `main` of a worker process (`warden worker`): confine this process first, while it
/// has one thread, then serve one run's conversation over the inherited socket.
pub fn worker_main() -> ExitCode {
    let confined = match warden_sandbox::enter_worker() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("the worker could not confine itself: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("the worker could not start its runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async move {
        confined
            .socket
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let socket =
            tokio::net::UnixStream::from_std(confined.socket).map_err(|e| e.to_string())?;
        conversation::converse(socket)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("the worker stopped: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confined(abi: u8, netns: bool) -> Attestation {
        Attestation {
            landlock_abi: abi,
            landlock_fully_enforced: false,
            seccomp: SeccompMode::Filter,
            network_namespace: netns,
            no_new_privs: true,
            capabilities_dropped: true,
        }
    }

    fn refused(c: Check) -> (Check, Outcome) {
        (
            c,
            Outcome {
                allowed: false,
                errno: Some(1),
                detail: String::new(),
            },
        )
    }

    #[test]
    fn a_worker_meeting_both_minimums_with_every_escape_refused_is_admitted() {
        let r = admit(
            Some(&confined(7, false)),
            Required::default(),
            false,
            NOTHING,
            &[refused(Check::InetSocket)],
        )
        .unwrap();
        assert!(r.isolated && r.seccomp_filter && r.shortfall.is_empty());
        assert!(!r.accepted_below_minimum);
        assert_eq!(r.self_checks.len(), 1);
        assert!(r.self_checks[0].refused);
    }

    #[test]
    fn the_tenants_minimum_is_never_waived_the_operators_only_when_accepted() {
        let tenant = Required {
            landlock_abi: 0,
            seccomp: false,
            network_namespace: true,
        };
        let (rec, why) = admit(
            Some(&confined(7, false)),
            Required::default(),
            true,
            tenant,
            &[],
        )
        .unwrap_err();
        assert!(why.contains("tenant's minimum"), "{why}");
        assert_eq!(rec.shortfall.len(), 1);
        let strict = Required {
            landlock_abi: 9,
            ..Required::default()
        };
        let (_, why) = admit(Some(&confined(7, false)), strict, false, NOTHING, &[]).unwrap_err();
        assert!(
            why.contains("operator's minimum") && why.contains("ABI 9"),
            "{why}"
        );
        let rec = admit(Some(&confined(7, false)), strict, true, NOTHING, &[]).unwrap();
        assert!(rec.accepted_below_minimum);
        assert_eq!(rec.shortfall.len(), 1);
    }

    #[test]
    fn in_process_runs_are_recorded_as_such_and_refused_when_the_tenant_asks_for_more() {
        let rec = admit(None, NOTHING, true, NOTHING, &[]).unwrap();
        assert!(!rec.isolated && rec.accepted_below_minimum);
        assert!(rec.shortfall[0].contains("inside the agent service"));
        let (_, why) = admit(None, NOTHING, true, Required::default(), &[]).unwrap_err();
        assert!(why.contains("not isolated"), "{why}");
    }

    #[test]
    fn an_escape_that_succeeded_stops_the_run_and_says_which() {
        let open = (
            Check::TcpConnect {
                addr: "127.0.0.1:1".into(),
            },
            Outcome {
                allowed: true,
                errno: None,
                detail: String::new(),
            },
        );
        let (rec, why) = admit(
            Some(&confined(7, false)),
            Required::default(),
            false,
            NOTHING,
            &[refused(Check::InetSocket), open],
        )
        .unwrap_err();
        assert!(why.contains("TCP connection to 127.0.0.1:1"), "{why}");
        assert!(!rec.self_checks[1].refused);
    }
}
